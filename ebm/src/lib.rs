//! # ebm: energy-based models in Rust
//!
//! One dependency for a researcher: this crate re-exports every layer —
//! [`core`] (tensors, RNG), [`autodiff`] (tape, any-order gradients), [`nn`] (MLPs,
//! noise-conditional nets, optimizers, checkpoints), [`samplers`] (Langevin to PF-ODE) and
//! [`objectives`] (CD/PCD, score matching, DSM, NCE, multi-scale DSM; evaluation) — plus a
//! [`prelude`], and the pieces of the `ebm` command: [`data`] (the `ebm-data` crate: toy
//! sets, digits, hardened CSV/`.npy` readers), [`train`] (the loop with exact resume and a
//! divergence guard), [`sample`], [`report`] (evaluation and output files) and [`plot`] (PNG
//! figures with an embedded font).
//!
//! What keeps the command reliable lives in its own modules: [`verify`] (every value of a
//! checkpoint checked before use), [`limits`] (bounds on every size), [`data::values`] (what
//! a data file's values must satisfy), [`guard`] (the divergence guard's checks of
//! the whole state), [`heldout`] (validation figure, best checkpoint, overfitting warning,
//! early stop), [`rundir`] (one writer per run directory), [`console`] (output a closed pipe
//! cannot kill), [`canvas`] (PNGs written atomically) and [`plot1d`] (figures of 1-D data).
//!
//! ```
//! use ebm::prelude::*;
//!
//! // 8-Gaussians, the 2-32-1 SiLU MLP, 5 steps of DSM with a control variate
//! let mut config = TrainConfig::default();
//! config.hidden = vec![32];
//! config.steps = 5;
//! config.batch = 64;
//! let mut t = ebm::train::Trainer::new(config).unwrap();
//! for _ in 0..5 {
//!     assert!(t.step_once(false).is_finite());
//! }
//! let x = Toy::EightGaussians.sample(4, &mut Rng::new(1));
//! assert_eq!(ModelTarget::new(&t.net).energy(&x).shape(), &[4]);
//! ```

pub use ebm_autodiff as autodiff;
pub use ebm_core as core;
pub use ebm_nn as nn;
pub use ebm_objectives as objectives;
pub use ebm_samplers as samplers;

pub use ebm_data as data;

pub mod canvas;
pub mod config;
pub mod console;
pub mod error;
pub mod guard;
pub mod heldout;
pub mod io;
pub mod limits;
pub mod model;
pub mod plot;
pub mod plot1d;
pub mod report;
pub mod rundir;
pub mod sample;
pub mod train;
pub mod verify;

/// The names most programs need.
pub mod prelude {
    pub use crate::config::TrainConfig;
    pub use crate::data::{DataSpec, Dataset, Toy};
    pub use crate::model::{Density, Net, Noise};
    pub use ebm_autodiff::{grad, grad_with, GradOpts, Tape, Var};
    pub use ebm_core::{DType, Rng, Tensor};
    pub use ebm_nn::{
        Activation, Checkpoint, EnergyModel, Mlp, MlpConfig, Model, Module, NoiseConditionalModel,
        Optimizer, Schedule,
    };
    pub use ebm_objectives::eval::{grid_log_z, nll};
    pub use ebm_objectives::{train_step, ModelTarget, Objective, TrainStep};
    pub use ebm_samplers::{Mala, Target, Ula};
}
