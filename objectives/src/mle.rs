//! Maximum likelihood with MCMC negatives: contrastive divergence and persistent CD.

use crate::Objective;
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::EnergyModel;
use ebm_samplers::replay::{ReplayBuffer, ShortRunSgld};
use ebm_samplers::target::Target;
use ebm_samplers::ula::Ula;

/// An energy model seen by a sampler: plain tensors in, energies and scores out, a fresh tape
/// per call (DESIGN.md decision 2).
pub struct ModelTarget<'a>(pub &'a dyn EnergyModel);

impl Target for ModelTarget<'_> {
    fn energy(&self, x: &Tensor) -> Tensor {
        self.0.energy(x)
    }
    fn score(&self, x: &Tensor) -> Tensor {
        self.0.score(x)
    }
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.0.energy_and_score(x)
    }
}

/// Where the negative chains start.
#[derive(Clone, Debug)]
pub enum ChainInit {
    /// At the data batch: contrastive divergence CD-k (Hinton 2002).
    Data,
    /// From persistent chains in a replay buffer: PCD / short-run SGLD (Tieleman 2008;
    /// Du & Mordatch 2019).
    Persistent(ReplayBuffer),
}

/// Maximum likelihood with MCMC: ∇θ(−log p_θ(x)) = ∇θE(x) − E_{p_θ}[∇θE], estimated with
/// negatives x⁻ from K Langevin steps. The surrogate loss whose gradient is that estimate is
/// mean E(x⁺) − mean E(x⁻) with x⁻ detached, plus the energy-magnitude regulariser
/// α·mean(E(x⁺)² + E(x⁻)²) of Du & Mordatch (2019), which keeps energies near 0.
#[derive(Clone, Debug)]
pub struct MaximumLikelihood {
    pub langevin: Ula,
    pub init: ChainInit,
    /// Weight α of the energy regulariser (0 to disable).
    pub alpha: f64,
    last_negatives: Option<Tensor>,
}

impl MaximumLikelihood {
    pub fn new(langevin: Ula, init: ChainInit, alpha: f64) -> MaximumLikelihood {
        MaximumLikelihood {
            langevin,
            init,
            alpha,
            last_negatives: None,
        }
    }

    /// The negatives of the last loss evaluation.
    pub fn last_negatives(&self) -> Option<&Tensor> {
        self.last_negatives.as_ref()
    }

    /// The surrogate loss for given negatives (the `pcd` loss of the fixtures).
    pub fn loss_with_negatives(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        negatives: &Tensor,
    ) -> Var {
        let e_pos = model.energy_var(&tape.constant(x.clone()), p);
        let e_neg = model.energy_var(&tape.constant(negatives.clone()), p);
        let mut loss = e_pos.mean_all().sub(&e_neg.mean_all());
        if self.alpha != 0.0 {
            let reg = e_pos
                .square()
                .mean_all()
                .add(&e_neg.square().mean_all())
                .mul_scalar(self.alpha);
            loss = loss.add(&reg);
        }
        loss
    }
}

impl Objective for MaximumLikelihood {
    fn name(&self) -> &'static str {
        match self.init {
            ChainInit::Data => "cd",
            ChainInit::Persistent(_) => "pcd",
        }
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        _q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let target = ModelTarget(model);
        let negatives = match &mut self.init {
            ChainInit::Data => self.langevin.run(&target, x.clone(), rng).x,
            ChainInit::Persistent(buffer) => {
                ShortRunSgld::new(self.langevin.clone())
                    .sample(&target, buffer, x.shape()[0], rng)
                    .samples
                    .x
            }
        };
        let loss = self.loss_with_negatives(tape, model, p, x, &negatives);
        self.last_negatives = Some(negatives);
        loss
    }
}
