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
///
/// Chains are independent rows, so large batches are evaluated in blocks of [`CHUNK_ROWS`]
/// rows: a block's activations (512 × 256 f32 = 0.5 MB) stay in cache across the forward and
/// backward passes, where a 10 000-chain batch (5 MB per activation) streams from memory on
/// every element-wise pass.
pub struct ModelTarget<'a>(pub &'a dyn EnergyModel);

/// Rows per block when a sampler evaluates a model on a large batch.
pub const CHUNK_ROWS: usize = 512;

/// `f` applied to blocks of at most [`CHUNK_ROWS`] rows of `x`, results joined along axis 0.
/// Blocks are independent: with several rayon threads they run in parallel (the same values:
/// each block is computed alone either way).
fn by_rows<const N: usize>(x: &Tensor, f: impl Fn(&Tensor) -> [Tensor; N] + Sync) -> [Tensor; N] {
    use rayon::prelude::*;
    let b = x.shape()[0];
    if b <= CHUNK_ROWS {
        return f(x);
    }
    let starts: Vec<usize> = (0..b).step_by(CHUNK_ROWS).collect();
    let block = |&start: &usize| f(&x.narrow(0, start, CHUNK_ROWS.min(b - start)));
    let parts: Vec<[Tensor; N]> = if rayon::current_num_threads() > 1 {
        starts.par_iter().map(block).collect()
    } else {
        starts.iter().map(block).collect()
    };
    std::array::from_fn(|k| {
        let col: Vec<Tensor> = parts.iter().map(|p| p[k].clone()).collect();
        Tensor::concat(&col, 0)
    })
}

impl Target for ModelTarget<'_> {
    fn energy(&self, x: &Tensor) -> Tensor {
        let [e] = by_rows(x, |c| [self.0.energy(c)]);
        e
    }
    fn score(&self, x: &Tensor) -> Tensor {
        let [s] = by_rows(x, |c| [self.0.score(c)]);
        s
    }
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let [e, s] = by_rows(x, |c| {
            let (e, s) = self.0.energy_and_score(c);
            [e, s]
        });
        (e, s)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::{DType, Rng};
    use ebm_nn::{Mlp, MlpConfig};

    #[test]
    fn blocked_evaluation_equals_whole_batch() {
        let mut rng = Rng::new(0);
        let model = Mlp::new(MlpConfig::new(&[2, 16, 16, 1]), &mut rng);
        let x = rng.normal(&[2 * CHUNK_ROWS + 37, 2], DType::F32);
        let t = ModelTarget(&model);
        let (e, s) = t.energy_and_score(&x);
        assert!(e.max_abs_diff(&model.energy(&x)) <= 1e-6 * (1.0 + e.max_abs()));
        assert!(s.max_abs_diff(&model.score(&x)) <= 1e-6 * (1.0 + s.max_abs()));
        assert!(t.score(&x).max_abs_diff(&s) == 0.0 && t.energy(&x).max_abs_diff(&e) == 0.0);
        // blocks in parallel give the same bits as one thread
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| (t.score(&x).to_vec_f64(), t.energy(&x).to_vec_f64()))
        };
        assert_eq!(on(1), on(2));
    }
}
