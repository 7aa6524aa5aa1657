//! Conditional noise-contrastive estimation: each data point against noise drawn around it.

use crate::{energy_gaps, energy_model, names, neighbours, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Model};

/// Conditional NCE (Ceylan & Gutmann 2018, "Conditional noise-contrastive estimation of
/// unnormalised models").
///
/// Noise is drawn conditionally on each data point, y = x + εz, z ∼ N(0, I), and a classifier
/// tells the ordered pair (x, y) from (y, x). With a symmetric conditional q(y | x) = q(x | y)
/// the log-odds are G(x, y) = log p_θ(x) − log p_θ(y) = E(y) − E(x): the normaliser and the
/// noise density cancel, so nothing but the energy is learned. The loss (half the paper's,
/// which counts each pair twice) is
///
/// J = mean_{b,k} softplus(E(x_b) − E(y_bk)),
///
/// with κ noise draws per data point, in antithetic pairs x ± εz by default.
///
/// As ε → 0 it becomes score matching (the review's "SM from NCE"): with u = E(x) − E(x ± εz)
/// and softplus(u) = log 2 + u/2 + u²/8 + O(u⁴), a pair averages to
/// log 2 + (ε²/4)[½(zᵀ∇E)² − zᵀ∇²E z] + O(ε⁴), the sliced score-matching term with probe z.
/// So (4/ε²)∇θJ → ∇θJ_SM; the antithetic pair cancels the odd orders, leaving an O(ε²) error.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionalNce {
    /// Noise scale ε (default 0.1, in units of the data's scale).
    pub epsilon: f64,
    /// Noise draws per data point, κ (default 1; doubled by `antithetic`).
    pub noise_per_point: usize,
    /// Use each draw twice, as x + εz and x − εz (default true).
    pub antithetic: bool,
}

impl Default for ConditionalNce {
    fn default() -> Self {
        ConditionalNce {
            epsilon: 0.1,
            noise_per_point: 1,
            antithetic: true,
        }
    }
}

impl ConditionalNce {
    /// The directions ±√d·eᵢ for each of `rows` rows, as `[rows, d, d]` (κ = d draws per
    /// row; [`ConditionalNce::antithetic`] adds the minus signs). The 2d points form a
    /// symmetric law with identity covariance over which the sliced term ½(zᵀ∇E)² − zᵀ∇²E z
    /// averages to exactly the score-matching loss ½‖∇E‖² − tr ∇²E, so with them
    /// (4/ε²)∇θJ_CNCE differs from ∇θJ_SM by the expansion's O(ε²) remainder alone, with no
    /// Monte Carlo error.
    pub fn axis_directions(rows: usize, d: usize, dtype: ebm_core::DType) -> Tensor {
        let mut z = vec![0.0; rows * d * d];
        for r in 0..rows {
            for i in 0..d {
                z[(r * d + i) * d + i] = (d as f64).sqrt();
            }
        }
        Tensor::from_f64s(&z, &[rows, d, d], dtype)
    }

    /// The loss for given noise directions `z` [B, κ, d] (noise x + εz, and x − εz when
    /// antithetic).
    pub fn loss_with_noise(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        z: &Tensor,
    ) -> Var {
        let y = neighbours(x, z, self.epsilon, self.antithetic);
        energy_gaps(tape, model, p, x, &y).softplus().mean_all()
    }
}

impl Objective for ConditionalNce {
    fn name(&self) -> &'static str {
        names::CNCE
    }

    /// Row b's term depends on row b and its own noise, drawn in row order.
    fn row_blocks_allowed(&self) -> bool {
        true
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
        let (b, d) = (x.shape()[0], x.shape()[1]);
        let z = rng.normal(&[b, self.noise_per_point.max(1), d], x.dtype());
        self.loss_with_noise(tape, model, p, x, &z)
    }
}
