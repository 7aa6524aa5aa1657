//! Maximum likelihood with MCMC negatives: contrastive divergence and persistent CD.

use crate::{energy_model, names, ModelTarget, Objective, StateError};
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Model, ModelRef};
use ebm_samplers::replay::{ReplayBuffer, ShortRunSgld};
use ebm_samplers::ula::Ula;

/// The name of PCD's replay buffer in [`Objective::state`].
pub const REPLAY_BUFFER: &str = "replay_buffer";

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
    /// The Langevin dynamics that draw the negatives.
    pub langevin: Ula,
    /// Where the chains start.
    pub init: ChainInit,
    /// Weight α of the energy regulariser (0 to disable).
    pub alpha: f64,
    last_negatives: Option<Tensor>,
}

impl MaximumLikelihood {
    /// CD or PCD (by `init`) with `langevin` and regulariser weight `alpha`.
    pub fn new(langevin: Ula, init: ChainInit, alpha: f64) -> MaximumLikelihood {
        MaximumLikelihood {
            langevin,
            init,
            alpha,
            last_negatives: None,
        }
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
        contrastive_loss(tape, model, p, x, negatives, self.alpha)
    }
}

/// mean E(x⁺) − mean E(x⁻) + α·mean(E(x⁺)² + E(x⁻)²) for data `x` and detached negatives: the
/// surrogate whose gradient is the likelihood gradient's estimate, for every objective whose
/// negatives come from a sampler (CD, PCD, diffusion recovery likelihood).
pub(crate) fn contrastive_loss(
    tape: &Tape,
    model: &dyn EnergyModel,
    p: &[Var],
    x: &Tensor,
    negatives: &Tensor,
    alpha: f64,
) -> Var {
    let (e_pos, e_neg) = crate::energies_of_both(tape, model, p, x, negatives);
    let mut loss = e_pos.mean_all().sub(&e_neg.mean_all());
    if alpha != 0.0 {
        let reg = e_pos
            .square()
            .mean_all()
            .add(&e_neg.square().mean_all())
            .mul_scalar(alpha);
        loss = loss.add(&reg);
    }
    loss
}

impl Objective for MaximumLikelihood {
    fn name(&self) -> &'static str {
        match self.init {
            ChainInit::Data => names::CD,
            ChainInit::Persistent(_) => names::PCD,
        }
    }

    fn state(&self) -> Vec<(&'static str, Tensor)> {
        match &self.init {
            ChainInit::Data => Vec::new(),
            ChainInit::Persistent(buffer) => vec![(REPLAY_BUFFER, buffer.data().clone())],
        }
    }

    fn set_state(&mut self, name: &str, value: Tensor) -> Result<(), StateError> {
        let objective = self.name();
        match &mut self.init {
            ChainInit::Persistent(buffer) if name == REPLAY_BUFFER => {
                if value.shape() != buffer.data().shape() || value.dtype() != buffer.data().dtype()
                {
                    return Err(StateError::Shape {
                        name: name.to_string(),
                        expected: buffer.data().shape().to_vec(),
                        found: value.shape().to_vec(),
                    });
                }
                buffer.set_data(value);
                Ok(())
            }
            _ => Err(StateError::Unknown {
                objective,
                name: name.to_string(),
            }),
        }
    }

    fn negatives(&self) -> Option<&Tensor> {
        self.last_negatives.as_ref()
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        _q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let model = energy_model(model, self.name());
        let target = ModelTarget::of(ModelRef::Energy(model));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::DType;
    use ebm_nn::{Mlp, MlpConfig, Module};
    use ebm_samplers::replay::Init;
    use ebm_samplers::ula::Step;

    #[test]
    fn pcd_state_round_trips_and_refuses_what_does_not_fit() {
        let mut rng = Rng::new(0);
        let init = Init::Normal {
            mean: 0.0,
            std: 1.0,
        };
        let buffer = ReplayBuffer::new(16, &[2], init, DType::F32, &mut rng);
        let langevin = Ula::new(Step::Tied { eps: 0.1 }, 2);
        let mut pcd = MaximumLikelihood::new(langevin.clone(), ChainInit::Persistent(buffer), 0.0);
        let state = pcd.state();
        assert_eq!(state.len(), 1);
        assert_eq!(state[0].0, REPLAY_BUFFER);
        let other = rng.normal(&[16, 2], DType::F32);
        pcd.set_state(REPLAY_BUFFER, other.clone()).unwrap();
        assert_eq!(pcd.state()[0].1.max_abs_diff(&other), 0.0);
        let wrong = rng.normal(&[8, 2], DType::F32);
        assert_eq!(
            pcd.set_state(REPLAY_BUFFER, wrong).unwrap_err().to_string(),
            "state `replay_buffer` is [16, 2], got a tensor of [8, 2]"
        );
        assert!(matches!(
            pcd.set_state("log_z", other.clone()),
            Err(StateError::Unknown { .. })
        ));
        // CD keeps no state
        let mut cd = MaximumLikelihood::new(langevin, ChainInit::Data, 0.0);
        assert!(cd.state().is_empty());
        assert_eq!(
            cd.set_state(REPLAY_BUFFER, other).unwrap_err().to_string(),
            "objective `cd` keeps no state `replay_buffer`"
        );
        // the negatives of the last loss are the chains written back to the buffer
        assert!(pcd.negatives().is_none());
        let model = Mlp::new(MlpConfig::new(&[2, 4, 1]), &mut rng);
        let x = rng.normal(&[4, 2], DType::F32);
        let tape = Tape::new();
        let p = model.params().bind(&tape);
        pcd.loss(&tape, &model, &p, &[], &x, &mut rng);
        assert_eq!(pcd.negatives().unwrap().shape(), &[4, 2]);
    }
}
