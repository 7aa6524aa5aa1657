//! # ebm-objectives: every training method of the EBM literature, as plain functions
//!
//! Each objective turns (model, bound parameters, data batch, rng) into one scalar loss `Var`
//! on the caller's tape (DESIGN.md decision 3), so one training step ([`train_step`]) drives
//! them all and a researcher switches method with one argument. The model is any
//! [`Model`]: an energy E(x) for most objectives, a noise-conditional model s(x, c) for the
//! multi-scale ones ([`Objective::model_kind`] says which). Conventions: the score is
//! s = −∇ₓE; means are over the batch; ‖·‖² sums over features. Each objective documents its
//! formula and paper.
//!
//! | objective | what it fits | paper |
//! | --- | --- | --- |
//! | [`MaximumLikelihood`] (CD-k, PCD) | E by MCMC negatives | Hinton 2002; Tieleman 2008; Du & Mordatch 2019 |
//! | [`ExactScoreMatching`] | ½‖∇E‖² − tr ∇²E | Hyvärinen 2005 |
//! | [`SlicedScoreMatching`] (+ VR) | random projections of the above | Song et al. 2019 |
//! | [`DenoisingScoreMatching`] (+ control variate) | ½‖s(x+σz) + z/σ‖² | Vincent 2011; Wang et al. 2020 |
//! | [`MultiScaleDsm`] (NCSN, VE, VP) | noise-conditional DSM over σ or t | Song & Ermon 2019; Song et al. 2021 |
//! | [`Nce`] | logistic regression data vs noise, learnable log Z | Gutmann & Hyvärinen 2010 |
//! | [`ConditionalNce`] | data point vs noise drawn around it; SM as ε → 0 | Ceylan & Gutmann 2018 |
//! | [`FlowContrastive`] | NCE against a RealNVP noise trained adversarially | Gao et al. 2020 |
//! | [`MinimumProbabilityFlow`] | probability flowing out of the data to Gaussian neighbours | Sohl-Dickstein et al. 2011 |
//! | [`MinimumVelocity`] | velocity of the data under the model's Langevin diffusion | Movellan 2008 |
//! | [`KernelSteinDiscrepancy`] | kernel Stein discrepancy U-statistic | Liu, Lee & Jordan 2016 |
//! | [`LearnedStein`] | Stein discrepancy with a critic network (min–max) | Grathwohl et al. 2020 |
//! | [`GeneralizedScoreMatching`] | SM on [0, ∞)ᵈ or [0, 1]ᵈ with a boundary weight | Hyvärinen 2007; Yu, Drton & Shojaie 2019 |
//! | [`RatioMatching`] | SM's analogue for binary data: single-flip ratios | Hyvärinen 2007 |
//! | [`EnergyDiscrepancy`] | contrast of data and Gaussian-perturbed neighbours | Schröder et al. 2023 |
//! | [`DiffusionRecoveryLikelihood`] | likelihood of data given a noisy copy, short-run MCMC | Gao et al. 2021 |
//!
//! [`ModelTarget`] is the one bridge from a model to the samplers (PCD's chains, AIS, `ebm
//! sample`, `ebm eval`). [`factory`] builds any objective from its name and named options
//! (one table, [`factory::OBJECTIVES`], read by the `ebm` command and library users alike).

mod blocks;
pub mod bridge;
pub mod cnce;
pub mod drl;
pub mod energy_discrepancy;
pub mod eval;
pub mod factory;
pub mod fce;
pub mod generalized_sm;
pub mod ksd;
pub mod lsd;
pub mod min_velocity;
pub mod mle;
pub mod mpf;
pub mod multiscale;
pub mod names;
pub mod nce;
pub mod ratio_matching;
pub mod score_matching;
pub mod shard;
pub mod train;

pub use blocks::MIN_SPLIT_ROWS;
pub use bridge::{ModelTarget, CHUNK_ROWS};
pub use cnce::ConditionalNce;
pub use drl::DiffusionRecoveryLikelihood;
pub use energy_discrepancy::EnergyDiscrepancy;
pub use factory::{ObjectiveOptions, NAMES};
pub use fce::{FceOptions, FlowContrastive};
pub use generalized_sm::{BoundaryWeight, Domain, GeneralizedScoreMatching};
pub use ksd::{KernelSteinDiscrepancy, SteinKernel};
pub use lsd::{LearnedStein, LsdOptions};
pub use min_velocity::MinimumVelocity;
pub use mle::{ChainInit, MaximumLikelihood};
pub use mpf::MinimumProbabilityFlow;
pub use multiscale::{MultiScaleDsm, NoiseSchedule};
pub use nce::{Nce, NoiseDistribution};
pub use ratio_matching::RatioMatching;
pub use score_matching::{
    DenoisingScoreMatching, ExactScoreMatching, Projection, SlicedScoreMatching,
};
pub use shard::{shard_capacity, shard_rows};
pub use train::{train_step, train_step_shard, TrainStep, TRAIN_BLOCK_ROWS};

use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{Conditioning, EnergyModel, Model, ModelRef, NoiseConditionalModel, Params};
use std::fmt;

/// The kind of model an objective trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// An energy E(x) ([`ebm_nn::EnergyModel`]).
    Energy,
    /// A noise-conditional model s(x, c) ([`ebm_nn::NoiseConditionalModel`]) whose condition c
    /// means what `Conditioning` says (σ for NCSN, t for the SDEs).
    NoiseConditional(Conditioning),
}

/// A training objective: one scalar loss per batch, for the kind of model it names.
pub trait Objective {
    /// Short name, one of [`NAMES`] ("dsm", "esm", …), as the CLI spells it.
    fn name(&self) -> &'static str;

    /// The kind of model the loss takes (default: an energy).
    fn model_kind(&self) -> ModelKind {
        ModelKind::Energy
    }

    /// Learnable parameters that belong to the objective rather than the model (NCE's log Z).
    fn params(&self) -> Option<&Params> {
        None
    }

    /// Mutable access to [`Objective::params`], for the optimizer.
    fn params_mut(&mut self) -> Option<&mut Params> {
        None
    }

    /// Tensors the objective carries from step to step besides its parameters (PCD's replay
    /// buffer), by name: what a checkpoint must hold to continue exactly.
    fn state(&self) -> Vec<(&'static str, Tensor)> {
        Vec::new()
    }

    /// Puts back a tensor of [`Objective::state`] (from a checkpoint).
    fn set_state(&mut self, name: &str, value: Tensor) -> Result<(), StateError> {
        let _ = value;
        Err(StateError::Unknown {
            objective: self.name(),
            name: name.to_string(),
        })
    }

    /// The model samples the last loss drew (CD/PCD's negatives), for diagnostics.
    fn negatives(&self) -> Option<&Tensor> {
        None
    }

    /// A permission, not part of the loss: `true` promises that evaluating the loss on
    /// consecutive row blocks of a batch, in order, and adding the block losses weighted by
    /// rows/B gives the whole-batch loss and gradient up to rounding, drawing the same random
    /// numbers. [`train_step`] then splits large batches to keep intermediates in cache. The
    /// default `false` is always correct.
    fn row_blocks_allowed(&self) -> bool {
        false
    }

    /// A copy of this objective that computes one row block's loss on another thread: for an
    /// objective whose loss changes no state it keeps. With workers, [`train_step`] gives each
    /// block ([`Objective::row_blocks_allowed`]) its own random stream (the caller's generator
    /// forked once, block i on stream i) and runs the blocks in parallel: the step is the same
    /// on any number of threads, and equals the whole-batch step in distribution rather than
    /// draw for draw. `None` (the default): blocks run in order on the caller's stream.
    fn block_worker(&self) -> Option<Box<dyn Objective + Send>> {
        None
    }

    /// The loss on `tape`. `p` are the model's parameters bound on that tape (in
    /// `model.params()` order), `q` the objective's own ([`Objective::params`]) bound likewise
    /// (empty when it has none). `x` is the data batch `[B, d]`. Panics when `model` is not of
    /// [`Objective::model_kind`].
    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var;
}

/// Why [`Objective::set_state`] refused a tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The objective keeps no state of that name.
    Unknown {
        /// The objective's name.
        objective: &'static str,
        /// The state asked for.
        name: String,
    },
    /// The tensor does not have the state's shape.
    Shape {
        /// The state's name.
        name: String,
        /// Its shape.
        expected: Vec<usize>,
        /// The tensor's.
        found: Vec<usize>,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Unknown { objective, name } => {
                write!(f, "objective `{objective}` keeps no state `{name}`")
            }
            StateError::Shape {
                name,
                expected,
                found,
            } => write!(
                f,
                "state `{name}` is {expected:?}, got a tensor of {found:?}"
            ),
        }
    }
}

impl std::error::Error for StateError {}

/// `model` as an energy, or a panic naming the objective that needs one.
pub(crate) fn energy_model<'a>(model: &'a dyn Model, objective: &str) -> &'a dyn EnergyModel {
    match model.view() {
        ModelRef::Energy(m) => m,
        other => panic!(
            "objective `{objective}` trains an energy model E(x), got {}",
            other.describe()
        ),
    }
}

/// `model` as a noise-conditional model, or a panic naming the objective that needs one.
pub(crate) fn noise_conditional_model<'a>(
    model: &'a dyn Model,
    objective: &str,
) -> &'a dyn NoiseConditionalModel {
    match model.view() {
        ModelRef::NoiseConditional(m) => m,
        other => panic!(
            "objective `{objective}` trains a noise-conditional model s(x, c), got {}",
            other.describe()
        ),
    }
}

/// ½·mean_b ‖r_b‖² for a residual `r` [B, d]: the shape of every score-matching loss.
pub(crate) fn half_mean_sq(r: &Var) -> Var {
    r.square().sum(&[1], false).mean_all().mul_scalar(0.5)
}

/// The n×n identity.
pub(crate) fn eye(n: usize, dtype: ebm_core::DType) -> Tensor {
    let v: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_f64s(&v, &[n, n], dtype)
}

/// The rows x_b ± scale·z_bk: neighbours [B, m, d] of each row of `x` [B, d] for directions
/// `z` [B, K, d], with m = K, or m = 2K (the + then the − half) when `antithetic`.
pub(crate) fn neighbours(x: &Tensor, z: &Tensor, scale: f64, antithetic: bool) -> Tensor {
    let (b, d) = (x.shape()[0], x.shape()[1]);
    let step = z.mul_scalar(scale);
    let centre = x.reshape(&[b, 1, d]);
    if antithetic {
        Tensor::concat(&[centre.add(&step), centre.sub(&step)], 1)
    } else {
        centre.add(&step)
    }
}

/// The most rows [`energies_of_both`] stacks: past two training row blocks the products are
/// large enough on their own, and a stacked pass's activations outgrow a 1 MiB L2 cache (CD
/// with 10 steps on 1024 rows of 128 dimensions, width 128: 2.1% slower stacked than in two
/// passes; NCE on 128-row blocks of 64 dimensions, width 256: 6.5% faster stacked).
const STACKED_ROWS_MAX: usize = 2 * TRAIN_BLOCK_ROWS;

/// (E(a), E(b)) per row on the tape, for `a` and `b` of the same row shape, from one forward
/// pass over their rows stacked: each layer's product runs once over both instead of once
/// each, and each weight's gradient comes out of one product instead of two and their sum.
/// An energy is a function of each row alone ([`EnergyModel::energy_var`]), so the values
/// are those of two separate passes (which it runs past [`STACKED_ROWS_MAX`] rows): bit for
/// bit where each pass's products take the GEMM kernel (more than 4 rows), to rounding where
/// a part of a few rows would have taken the skinny dot products, whose sums run in another
/// order.
pub(crate) fn energies_of_both(
    tape: &Tape,
    model: &dyn EnergyModel,
    p: &[Var],
    a: &Tensor,
    b: &Tensor,
) -> (Var, Var) {
    let (na, nb) = (a.shape()[0], b.shape()[0]);
    if na + nb > STACKED_ROWS_MAX {
        let alone = |t: &Tensor| model.energy_var(&tape.constant(t.clone()), p);
        return (alone(a), alone(b));
    }
    let both = Tensor::concat(&[a.clone(), b.clone()], 0);
    let e = model.energy_var(&tape.constant(both), p);
    (e.narrow(0, 0, na), e.narrow(0, na, nb))
}

/// E(x_b) − E(y_bm) [B, m] on the tape, for data `x` [B, d] and neighbours `y` [B, m, d].
pub(crate) fn energy_gaps(
    tape: &Tape,
    model: &dyn EnergyModel,
    p: &[Var],
    x: &Tensor,
    y: &Tensor,
) -> Var {
    let (b, m, d) = (y.shape()[0], y.shape()[1], y.shape()[2]);
    let (e_x, e_y) = energies_of_both(tape, model, p, x, &y.reshape(&[b * m, d]));
    e_x.reshape(&[b, 1]).sub(&e_y.reshape(&[b, m]))
}

/// Bound parameters that the objective's optimizer should ascend: 2·stop_grad(q) − q has q's
/// values (exactly: 2q − q rounds to q) and the negated gradient, so descending a loss in
/// them ascends it in q. How an adversarial objective (a critic, a learned noise) plays its
/// max inside the one [`train_step`], where every optimizer descends.
pub(crate) fn reversed(q: &[Var]) -> Vec<Var> {
    q.iter()
        .map(|v| v.detach().mul_scalar(2.0).sub(v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::DType;
    use ebm_samplers::replay::{Init, ReplayBuffer};
    use ebm_samplers::ula::{Step, Ula};

    /// Every objective says one of [`NAMES`], and every name belongs to one objective.
    #[test]
    fn names_are_the_objectives_names() {
        let ula = || Ula::new(Step::Tied { eps: 0.1 }, 1);
        let buffer = ReplayBuffer::new(
            4,
            &[2],
            Init::Uniform { lo: -1.0, hi: 1.0 },
            DType::F32,
            &mut Rng::new(0),
        );
        let multi = |schedule| MultiScaleDsm { schedule };
        let mut objectives: Vec<Box<dyn Objective>> = vec![
            Box::new(DenoisingScoreMatching::new(0.1)),
            Box::new(DenoisingScoreMatching::with_control_variate(0.1)),
            Box::new(ExactScoreMatching),
            Box::new(SlicedScoreMatching::default()),
            Box::new(SlicedScoreMatching {
                variance_reduced: true,
                ..SlicedScoreMatching::default()
            }),
            Box::new(Nce::new(
                NoiseDistribution::isotropic(2, 1.0),
                1.0,
                0.0,
                DType::F32,
            )),
            Box::new(MaximumLikelihood::new(
                ula(),
                ChainInit::Persistent(buffer),
                0.0,
            )),
            Box::new(MaximumLikelihood::new(ula(), ChainInit::Data, 0.0)),
            Box::new(multi(NoiseSchedule::Geometric {
                sigma_max: 1.0,
                sigma_min: 0.1,
                levels: 2,
            })),
            Box::new(multi(NoiseSchedule::Ve {
                sigma_min: 0.1,
                sigma_max: 1.0,
                t_min: 1e-3,
            })),
            Box::new(multi(NoiseSchedule::Vp {
                beta_min: 0.1,
                beta_max: 20.0,
                t_min: 1e-3,
            })),
        ];
        let mut rng = Rng::new(1);
        objectives.extend::<Vec<Box<dyn Objective>>>(vec![
            Box::new(ConditionalNce::default()),
            Box::new(FlowContrastive::new(
                2,
                &FceOptions::default(),
                &mut rng,
                DType::F32,
            )),
            Box::new(MinimumProbabilityFlow::default()),
            Box::new(MinimumVelocity::default()),
            Box::new(KernelSteinDiscrepancy::default()),
            Box::new(LearnedStein::new(
                2,
                LsdOptions::default(),
                &mut rng,
                DType::F32,
            )),
            Box::new(GeneralizedScoreMatching::default()),
            Box::new(RatioMatching),
            Box::new(EnergyDiscrepancy::default()),
            Box::new(DiffusionRecoveryLikelihood::default()),
        ]);
        let names: Vec<&str> = objectives.iter().map(|o| o.name()).collect();
        assert_eq!(names, NAMES);
        let conditional: Vec<&str> = objectives
            .iter()
            .filter(|o| o.model_kind() != ModelKind::Energy)
            .map(|o| o.name())
            .collect();
        assert_eq!(conditional, [names::NCSN, names::VE, names::VP]);
    }

    /// Stacking the two parts is only a faster route: each energy is bit for bit what its own
    /// pass gives (row counts off the GEMM kernels' row tiles and the skinny output layer's
    /// groups of 4, f32 and f64) or, for a part of one row, equal to rounding; the gradient
    /// matches the two-pass one to rounding.
    #[test]
    fn stacked_energies_are_the_separate_ones() {
        use ebm_nn::{Mlp, MlpConfig, Module};
        let bits =
            |v: &Var| -> Vec<u64> { v.value().to_vec_f64().iter().map(|x| x.to_bits()).collect() };
        for dtype in [DType::F32, DType::F64] {
            let mut rng = Rng::new(3);
            let mlp = Mlp::with_dtype(MlpConfig::new(&[5, 40, 40, 1]), &mut rng, dtype);
            // the last pair is past STACKED_ROWS_MAX: two passes, the same values
            for (na, nb) in [(13, 7), (1, 30), (24, 5), (300, 260)] {
                let a = rng.normal(&[na, 5], dtype);
                let b = rng.normal(&[nb, 5], dtype);
                let tape = Tape::new();
                let p = mlp.params().bind(&tape);
                let (ea, eb) = energies_of_both(&tape, &mlp, &p, &a, &b);
                let alone = |x: &Tensor| mlp.energy_var(&tape.constant(x.clone()), &p);
                let (sa, sb) = (alone(&a), alone(&b));
                if na > 4 {
                    assert_eq!(bits(&ea), bits(&sa), "{dtype:?} {na}+{nb}: first part");
                    assert_eq!(bits(&eb), bits(&sb), "{dtype:?} {na}+{nb}: second part");
                }
                let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
                for (e, s) in [(&ea, &sa), (&eb, &sb)] {
                    let scale = 1.0 + s.value().max_abs();
                    assert!(
                        e.value().max_abs_diff(s.value()) <= tol * scale,
                        "{dtype:?} {na}+{nb}"
                    );
                }
                let stacked = ebm_nn::param_grads(&ea.mean_all().sub(&eb.mean_all()), &p);
                let separate = ebm_nn::param_grads(&sa.mean_all().sub(&sb.mean_all()), &p);
                for (g, h) in stacked.iter().zip(&separate) {
                    let scale = 1.0 + h.max_abs();
                    assert!(g.max_abs_diff(h) <= tol * scale, "{dtype:?} {na}+{nb}");
                }
            }
        }
    }
}
