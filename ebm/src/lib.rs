//! # ebm: energy-based models in Rust
//!
//! One dependency for a researcher: this crate re-exports every layer —
//! [`core`] (tensors, RNG), [`autodiff`] (tape, any-order gradients), [`nn`] (MLPs,
//! noise-conditional nets, your own energies, optimizers, checkpoints), [`samplers`] (Langevin
//! to NUTS and PF-ODE) and [`objectives`] (CD/PCD, score matching, DSM, NCE, multi-scale DSM;
//! evaluation) — plus [`data`] (the `ebm-data` crate: toy sets, digits, hardened CSV and, with
//! the `cli` feature, `.npy` readers) and a [`prelude`]. With the default `cli` feature it also
//! holds the pieces of the `ebm` command: `train` (the loop with exact resume and a divergence guard), `sample`, `report`
//! (evaluation and output files) and `plot` (PNG figures with an embedded font); without it
//! (`default-features = false`) the crate is the library alone, with none of the command's
//! dependencies.
//!
//! What keeps the command reliable lives in its own modules (all under `cli`): `verify` (every value of a
//! checkpoint checked before use), `limits` (bounds on every size), `data::values` (what a
//! data file's values and declared shapes must satisfy), `guard` (the divergence guard's checks of
//! the whole state), `heldout` (validation figure, best checkpoint, overfitting warning,
//! early stop), `rundir` (one writer per run directory), `console` (output a closed pipe
//! cannot kill), `canvas` (PNGs written atomically) and `plot1d` (figures of 1-D data).
//!
//! ```
//! use ebm::prelude::*;
//!
//! // your own energy: E(x) = ½ k ‖x − m‖² per row, its parameters by name
//! let mut model = CustomEnergy::new(&[("k", 0.5), ("m", 1.0)], |x: &Var, p: &ParamVars| {
//!     x.sub(&p["m"]).square().sum(&[1], false).mul(&p["k"]).mul_scalar(0.5)
//! });
//! let mut rng = Rng::new(0);
//! let data = rng.normal(&[2048, 2], DType::F64).mul_scalar(0.5); // N(0, ¼I): k = 4, m = 0
//! let opt = Optimizer::adam(0.1, model.params()).with_schedule(Schedule::cosine(200, 0.01));
//! let mut step = TrainStep::new(opt);
//! for _ in 0..200 {
//!     train_step(&mut ExactScoreMatching, &mut model, &mut step, &data, &mut rng);
//! }
//! assert!((model.param("k") - 4.0).abs() < 0.5 && model.param("m").abs() < 0.1);
//! let chains = Mala::default().with_warmup(100).with_draws(100).run(
//!     &ModelTarget::new(&model),
//!     rng.normal(&[64, 2], DType::F64),
//!     &mut rng,
//! );
//! assert_eq!(chains.x.col_mean().shape(), &[2]);
//! ```

pub use ebm_autodiff as autodiff;
pub use ebm_comm as comm;
pub use ebm_core as core;
pub use ebm_nn as nn;
pub use ebm_objectives as objectives;
pub use ebm_samplers as samplers;

pub use ebm_data as data;

#[cfg(feature = "cli")]
pub mod canvas;
#[cfg(feature = "cli")]
pub mod config;
#[cfg(feature = "cli")]
pub mod console;
#[cfg(feature = "cli")]
pub mod error;
#[cfg(feature = "cli")]
pub mod guard;
#[cfg(feature = "cli")]
pub mod heldout;
#[cfg(feature = "cli")]
pub mod io;
#[cfg(feature = "cli")]
pub mod limits;
#[cfg(feature = "cli")]
pub mod model;
#[cfg(feature = "cli")]
pub mod plot;
#[cfg(feature = "cli")]
pub mod plot1d;
#[cfg(feature = "cli")]
pub mod report;
#[cfg(feature = "cli")]
pub mod reproduce;
#[cfg(feature = "cli")]
pub mod rundir;
#[cfg(feature = "cli")]
pub mod sample;
/// ```
/// use ebm::prelude::*;
///
/// // 8-Gaussians, the 2-32-1 SiLU MLP, 5 steps of DSM with a control variate
/// let mut config = TrainConfig::default();
/// config.hidden = vec![32];
/// config.steps = 5;
/// config.batch = 64;
/// let mut t = ebm::train::Trainer::new(config).unwrap();
/// for _ in 0..5 {
///     assert!(t.step_once(false).is_finite());
/// }
/// let x = Toy::EightGaussians.sample(4, &mut Rng::new(1));
/// assert_eq!(ModelTarget::new(&t.net).energy(&x).shape(), &[4]);
/// ```
#[cfg(feature = "cli")]
pub mod train;
#[cfg(feature = "cli")]
pub mod verify;

/// The names a researcher's first program uses: tensors and the RNG, the tape and derivative
/// checks, parameters and models (your own energy included), every objective and the training
/// step, optimizers and schedules, samplers and the model bridge, and evaluation.
pub mod prelude {
    #[cfg(feature = "cli")]
    pub use crate::config::TrainConfig;
    pub use crate::data::Toy;
    pub use crate::data::{DataSpec, Dataset};
    #[cfg(feature = "cli")]
    pub use crate::model::{Density, Net, Noise};
    pub use ebm_autodiff::{
        grad, grad_with, gradcheck, gradgradcheck, hessian_diag, hvp, CheckOpts, GradOpts, Tape,
        Var,
    };
    pub use ebm_core::{DType, Rng, Tensor};
    pub use ebm_nn::{
        check_energy, param_grads, score_from_energy, Activation, Checkpoint, CustomEnergy, Ema,
        EnergyModel, Mlp, MlpConfig, Model, Module, NoiseConditionalModel, Optimizer, ParamVars,
        Params, RealNvp, Schedule,
    };
    pub use ebm_objectives::eval::{ais_log_z, grid_log_z, nll, AisConfig};
    pub use ebm_objectives::{
        train_step, BoundaryWeight, ChainInit, ConditionalNce, DenoisingScoreMatching,
        DiffusionRecoveryLikelihood, Domain, EnergyDiscrepancy, ExactScoreMatching, FceOptions,
        FlowContrastive, GeneralizedScoreMatching, KernelSteinDiscrepancy, LearnedStein,
        LsdOptions, MaximumLikelihood, MinimumProbabilityFlow, MinimumVelocity, ModelTarget,
        MultiScaleDsm, Nce, NoiseDistribution, NoiseSchedule, Objective, RatioMatching,
        SlicedScoreMatching, SteinKernel, TrainStep,
    };
    pub use ebm_samplers::{
        Chees, Estimate, Hmc, Mala, Nuts, Record, ReplayBuffer, Samples, Step, Target, Tempering,
        Ula, VarEnergy,
    };
}
