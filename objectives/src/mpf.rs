//! Minimum probability flow with continuous-space Gaussian neighbours.

use crate::{energy_gaps, energy_model, names, neighbours, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Model};

/// Minimum probability flow (Sohl-Dickstein, Battaglino & DeWeese 2011, "Minimum probability
/// flow learning"), in continuous space.
///
/// MPF sets up dynamics whose stationary law is p_θ, with transition rates
/// Γ(x → x') = g(x' | x) exp(½(E(x) − E(x'))), and minimises the probability that flows out
/// of the data in an infinitesimal time: K(θ) = E_{x∼data} ∫ g(x' | x) exp(½(E(x) − E(x')))
/// dx'. Here the connectivity g is the symmetric Gaussian proposal x' = x + σz, z ∼ N(0, I),
/// estimated with M neighbours per data point (in antithetic pairs x ± σz by default, which
/// cancels the odd orders of the expansion in σ):
///
/// K̂ = mean_{b,m} exp(½(E(x_b) − E(x_b + σz_bm))).
///
/// With g symmetric, data drawn from p_θ make the flow's gradient vanish (the integrand's
/// p(x)·exp(½(E(x) − E(x'))) = exp(−½(E(x) + E(x')))/Z is symmetric in x and x'), so the
/// true parameters are a stationary point at any σ; for an exponential family K is convex in
/// the natural parameters. Expanding in σ, K = 1 + (σ²/4)·J_SM + O(σ⁴) with J_SM the
/// score-matching loss (the paper's §3: SM is MPF's small-step limit). The loss reported is
/// the rescaled (4/σ²)(K̂ − 1), of SM's scale for any σ (the paper's overall factor is free).
#[derive(Clone, Debug, PartialEq)]
pub struct MinimumProbabilityFlow {
    /// Standard deviation σ of the Gaussian neighbour proposal (default 0.1: in units of
    /// the data's scale, small enough that neighbours stay near the data).
    pub sigma: f64,
    /// Neighbours per data point, M (default 4).
    pub neighbours: usize,
    /// Draw the neighbours in pairs x ± σz (default true; M is then rounded up to even).
    pub antithetic: bool,
}

impl Default for MinimumProbabilityFlow {
    fn default() -> Self {
        MinimumProbabilityFlow {
            sigma: 0.1,
            neighbours: 4,
            antithetic: true,
        }
    }
}

impl MinimumProbabilityFlow {
    /// Proposal draws per data point (half the neighbours when antithetic).
    fn draws(&self) -> usize {
        let m = self.neighbours.max(1);
        if self.antithetic {
            m.div_ceil(2)
        } else {
            m
        }
    }

    /// The loss for given proposal draws `z` [B, K, d] (neighbours x + σz, and x − σz when
    /// antithetic).
    pub fn loss_with_noise(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        z: &Tensor,
    ) -> Var {
        let y = neighbours(x, z, self.sigma, self.antithetic);
        let flow = energy_gaps(tape, model, p, x, &y)
            .mul_scalar(0.5)
            .exp()
            .mean_all();
        flow.add_scalar(-1.0)
            .mul_scalar(4.0 / (self.sigma * self.sigma))
    }
}

impl Objective for MinimumProbabilityFlow {
    fn name(&self) -> &'static str {
        names::MPF
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
        let z = rng.normal(&[b, self.draws(), d], x.dtype());
        self.loss_with_noise(tape, model, p, x, &z)
    }
}
