//! Evaluation: normalising constants (grid quadrature in d ≤ 2, annealed importance sampling
//! with forward and reverse runs above), test NLL (also by the probability-flow ODE, in bits per
//! dimension with dequantisation), and discrepancies between a model and data
//! (Fisher divergence, MMD, kernel Stein discrepancy).

pub mod ais;
pub mod discrepancy;
pub mod likelihood;
pub mod quadrature;

pub use ais::{ais_log_z, AisConfig, AisResult, DiagonalGaussian};
pub use discrepancy::{fisher_divergence, ksd, median_bandwidth, mmd2};
pub use likelihood::{pf_ode_nll, OdeNll, TimeModel};
pub use quadrature::{grid_log_z, GridLogZ};

use ebm_core::Tensor;
use ebm_samplers::target::Target;

/// Test negative log-likelihood in nats: mean E(x) + log Z.
pub fn nll(target: &impl Target, x: &Tensor, log_z: f64) -> f64 {
    target
        .energy(x)
        .cast(ebm_core::DType::F64)
        .mean_all()
        .item()
        + log_z
}
