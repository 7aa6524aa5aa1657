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
//!
//! [`ModelTarget`] is the one bridge from a model to the samplers (PCD's chains, AIS, `ebm
//! sample`, `ebm eval`). [`factory`] builds any objective from its name and named options
//! (one table, [`factory::OBJECTIVES`], read by the `ebm` command and library users alike).

pub mod bridge;
pub mod eval;
pub mod factory;
pub mod mle;
pub mod multiscale;
pub mod names;
pub mod nce;
pub mod score_matching;
pub mod train;

pub use bridge::{ModelTarget, CHUNK_ROWS};
pub use factory::{ObjectiveOptions, NAMES};
pub use mle::{ChainInit, MaximumLikelihood};
pub use multiscale::{MultiScaleDsm, NoiseSchedule};
pub use nce::{Nce, NoiseDistribution};
pub use score_matching::{
    DenoisingScoreMatching, ExactScoreMatching, Projection, SlicedScoreMatching,
};
pub use train::{train_step, TrainStep, TRAIN_BLOCK_ROWS};

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
        let objectives: Vec<Box<dyn Objective>> = vec![
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
        let names: Vec<&str> = objectives.iter().map(|o| o.name()).collect();
        assert_eq!(names, NAMES);
        let conditional: Vec<&str> = objectives
            .iter()
            .filter(|o| o.model_kind() != ModelKind::Energy)
            .map(|o| o.name())
            .collect();
        assert_eq!(conditional, [names::NCSN, names::VE, names::VP]);
    }
}
