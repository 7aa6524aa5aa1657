//! Energy discrepancy: a contrast of the data with Gaussian-perturbed neighbours, free of
//! scores and of MCMC.

use crate::{energy_gaps, energy_model, names, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Model};

/// Energy discrepancy (Schröder, Ou, Lim, Zhao, Luo & Duncan 2023, "Energy discrepancies: a
/// score-independent loss for energy-based models").
///
/// For the Gaussian perturbation q(y | x) = N(y; x, tI),
/// ED(p_data, E) = E_data[E(x)] + E_{x∼data, y∼q(·|x)} log ∫ q(y | x′) e^{−E(x′)} dx′,
/// uniquely minimised (up to a constant in E) at E = −log p_data + c for any t > 0: as
/// t → 0 it approaches score matching and as t → ∞ maximum likelihood. The inner integral
/// is estimated with x′_m = y + √t ξ′_m (q is symmetric), and the loss is the paper's
/// w-stabilised estimator with M contrasts per data point:
///
/// L = mean_b log( w/M + (1/M) Σ_m exp(E(x_b) − E(x_b + √t ξ_b + √t ξ′_bm)) ),
///
/// where the w/M term (the data point itself among its contrasts) bounds the loss below by
/// log(w/M) and keeps it from collapsing when the energy runs away; it fades as M grows.
/// Only energies are evaluated: M + 1 per data point, no gradients in x, no chains.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyDiscrepancy {
    /// Variance t of the Gaussian perturbation (default 0.25, in squared units of the data's
    /// scale).
    pub t: f64,
    /// Contrasts per data point, M (default 32).
    pub contrasts: usize,
    /// Stabiliser w (default 1; 0 gives the plain estimator).
    pub w: f64,
}

impl Default for EnergyDiscrepancy {
    fn default() -> Self {
        EnergyDiscrepancy {
            t: 0.25,
            contrasts: 32,
            w: 1.0,
        }
    }
}

impl EnergyDiscrepancy {
    /// The loss for given standard-normal draws `xi` [B, M + 1, d]: ξ_b is `xi[b, 0]`, the
    /// ξ′_bm are `xi[b, 1..]`.
    pub fn loss_with_noise(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        xi: &Tensor,
    ) -> Var {
        let (b, d) = (x.shape()[0], x.shape()[1]);
        let m = xi.shape()[1] - 1;
        assert!(m >= 1, "energy discrepancy: needs at least one contrast");
        let root_t = self.t.sqrt();
        let y = x.add(&xi.narrow(1, 0, 1).reshape(&[b, d]).mul_scalar(root_t));
        let contrasts = y
            .reshape(&[b, 1, d])
            .add(&xi.narrow(1, 1, m).mul_scalar(root_t));
        let gaps = energy_gaps(tape, model, p, x, &contrasts);
        let terms = if self.w > 0.0 {
            let log_w = tape.constant(Tensor::full(&[b, 1], self.w.ln(), x.dtype()));
            Var::concat(&[log_w, gaps], 1)
        } else {
            gaps
        };
        terms
            .logsumexp(&[1], false)
            .add_scalar(-(m as f64).ln())
            .mean_all()
    }
}

impl Objective for EnergyDiscrepancy {
    fn name(&self) -> &'static str {
        names::ED
    }

    /// Row b's term depends on row b and its own draws, drawn in row order.
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
        let xi = rng.normal(&[b, self.contrasts.max(1) + 1, d], x.dtype());
        self.loss_with_noise(tape, model, p, x, &xi)
    }
}
