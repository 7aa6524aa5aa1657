//! Minimum velocity learning: the score-matching gradient from one short Langevin step.

use crate::{energy_model, names, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Model};

/// Minimum velocity learning (Movellan 2008, "A minimum velocity approach to learning";
/// Movellan 2008, "Contrastive divergence in Gaussian diffusions").
///
/// Start the model's Langevin diffusion dX = −∇E(X)dt + √2 dW at the data and watch the mean
/// of the sufficient statistics ∂θE move: its initial velocity is
/// v = d/dt E[∂θE(X_t)]|₀ = E_data[−∇ₓE·∇ₓ∂θE + Δₓ∂θE] = −∇θ J_SM, minus the gradient of the
/// score-matching loss J_SM = E[½‖∇ₓE‖² − ΔₓE]. The data are at equilibrium under the model
/// exactly when the velocity vanishes; learning drives it to zero by θ ← θ + λv.
///
/// The velocity is measured with one Langevin step of time η from each data point, in an
/// antithetic pair x± = x − η∇ₓE(x) ± √(2η) z (both detached), so no second derivative is
/// taken: the surrogate
///
/// L = (1/η) mean_b [E(x_b) − ½(E(x⁺_b) + E(x⁻_b))]
///
/// has ∇θL = −v̂. Its expectation over z is ∇θJ_SM + O(η), and the pair cancels the O(√η)
/// noise term of a single step, so the estimate's variance stays bounded as η → 0. This is
/// contrastive divergence with one infinitesimal, unadjusted step, rescaled by 1/η (Hyvärinen
/// 2007, "Connections between score matching, contrastive divergence, and pseudolikelihood").
/// Its minimiser is the score-matching one (for a Gaussian, the maximum-likelihood fit) up
/// to O(η).
#[derive(Clone, Debug, PartialEq)]
pub struct MinimumVelocity {
    /// The Langevin time step η (default 1e-3, in squared units of the data's scale).
    pub step: f64,
}

impl Default for MinimumVelocity {
    fn default() -> Self {
        MinimumVelocity { step: 1e-3 }
    }
}

impl MinimumVelocity {
    /// The surrogate for given Langevin noise `z` (shaped like `x`). The drift −η∇ₓE is
    /// taken at the model's current parameters, which are the values bound as `p`.
    pub fn loss_with_noise(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        z: &Tensor,
    ) -> Var {
        let eta = self.step;
        assert!(
            eta > 0.0,
            "minimum velocity: the step must be positive, got {eta}"
        );
        let drift = x.add(&model.score(x).mul_scalar(eta));
        let kick = z.mul_scalar((2.0 * eta).sqrt());
        let ends = Tensor::concat(&[drift.add(&kick), drift.sub(&kick)], 0);
        let b = x.shape()[0];
        let (e_x, e_ends) = crate::energies_of_both(tape, model, p, x, &ends);
        let e_ends = e_ends.reshape(&[2, b]).mean(&[0], false);
        e_x.sub(&e_ends).mean_all().mul_scalar(1.0 / eta)
    }
}

impl Objective for MinimumVelocity {
    fn name(&self) -> &'static str {
        names::MVL
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
        let z = rng.normal(x.shape(), x.dtype());
        self.loss_with_noise(tape, model, p, x, &z)
    }
}
