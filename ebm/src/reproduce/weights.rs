//! Experiment 5: score matching is blind to the weights of separated modes.
//!
//! On p = 0.2 N(−m, s²I) + 0.8 N(m, s²I) with the modes 10 s apart, the score ∇log p is, to
//! within exp(−50), the score of either component near it, whatever the weights: the equal
//! mixture q has almost the same score (Fisher divergence ≈ 0) though KL(p‖q) = 0.19 nats.
//! So score matching cannot learn the weights, and Langevin dynamics driven by even the exact
//! score cannot fix them: a chain never crosses between the modes, and each mode keeps the
//! share of chains that started in its basin. Annealed Langevin over scores of p ∗ N(0, σ²I)
//! (Song & Ermon 2019) starts where σ is large enough for the modes to overlap, so the chains
//! settle in proportion to the weights before the modes separate.
//!
//! Both samplers use the exact (noise-conditional) scores of p, the best any score model can
//! reach; a mode's weight is the share of the final chains on its side of x₀ = 0, with SE
//! √(w(1 − w)/n).

use super::common::mean_se;
use super::figure::{Bars, Figure, Panel};
use super::{Budget, Measured};
use crate::plot::Grid;
use ebm_core::{DType, Rng, Tensor};
use ebm_objectives::eval::fisher_divergence;
use ebm_samplers::analytic::{Gaussian, GaussianMixture, Perturbed};
use ebm_samplers::{AnnealedLangevin, Step, Target, Ula};
use serde::Serialize;

/// The weight of the left mode.
pub const SMALL_WEIGHT: f64 = 0.2;
/// The modes' centres (±M, 0) and their standard deviation.
const M: f64 = 2.5;
const S: f64 = 0.5;
/// The box the chains start in, uniformly, and the figures show.
const BOX: (f64, f64) = (-5.0, 5.0);

/// The mixture with left weight `w`.
pub fn mixture(w: f64) -> GaussianMixture {
    GaussianMixture::new(
        &[w, 1.0 - w],
        vec![
            Gaussian::isotropic(&[-M, 0.0], S * S),
            Gaussian::isotropic(&[M, 0.0], S * S),
        ],
    )
}

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct Numbers {
    /// The true weight of the left mode.
    pub true_weight: f64,
    /// ½E_p‖∇log q − ∇log p‖² for the equal mixture q, and KL(p‖q) (both Monte Carlo on exact
    /// draws, with SEs).
    pub fisher_equal_weights: f64,
    /// KL(p‖q) for the equal mixture q (nats).
    pub kl_equal_weights: f64,
    /// Its standard error.
    pub kl_se: f64,
    /// The left mode's share of the chains after Langevin on the exact score, and its SE.
    pub langevin_weight: f64,
    /// Its standard error.
    pub langevin_se: f64,
    /// The same after annealed Langevin on the exact perturbed scores.
    pub annealed_weight: f64,
    /// Its standard error.
    pub annealed_se: f64,
    /// Chains; Langevin steps (tied ε); annealed levels σ_max → σ_min and steps per level.
    pub chains: usize,
    /// Langevin's tied step ε.
    pub langevin_eps: f64,
    /// Langevin steps.
    pub langevin_steps: usize,
    /// Annealed Langevin's largest noise level.
    pub sigma_max: f64,
    /// Annealed Langevin's smallest noise level.
    pub sigma_min: f64,
    /// Annealed Langevin's noise levels.
    pub levels: usize,
    /// Annealed Langevin's steps per level.
    pub steps_per_level: usize,
    /// Final chains of both samplers (for the figure; not written).
    #[serde(skip)]
    pub samples: [Tensor; 2],
}

/// The left mode's share of the rows of `x`, and its SE.
fn left_share(x: &Tensor) -> (f64, f64) {
    let n = x.shape()[0] as f64;
    let w = x
        .narrow(1, 0, 1)
        .to_vec_f64()
        .iter()
        .filter(|v| **v < 0.0)
        .count() as f64
        / n;
    (w, (w * (1.0 - w) / n).sqrt())
}

/// Runs both samplers.
pub fn measure(budget: Budget, rng: &mut Rng) -> Numbers {
    let p = mixture(SMALL_WEIGHT);
    let q = mixture(0.5);
    let chains = budget.pick(5000, 2000);
    let exact = p.sample(chains, rng, DType::F64);
    let fisher = fisher_divergence(&q.score(&exact), &p.score(&exact));
    let (kl, kl_se) = mean_se(&p.log_prob(&exact).sub(&q.log_prob(&exact)).to_vec_f64());
    let mut x0 = || rng.uniform(&[chains, 2], BOX.0, BOX.1, DType::F64);
    let (x_ula, x_ald) = (x0(), x0());
    let (eps, steps) = (0.1, budget.pick(2000, 1000));
    let langevin = Ula::new(Step::Tied { eps }, steps).run(&p, x_ula, rng).x;
    let (sigma_max, sigma_min, levels) = (2.0 * M, 0.05, 10);
    let per_level = budget.pick(200, 60);
    // α_L = 0.1 σ_L²: every level's step a tenth of its noise variance
    let ald = AnnealedLangevin::geometric(
        sigma_max,
        sigma_min,
        levels,
        0.1 * sigma_min.powi(2),
        per_level,
    );
    let annealed = ald.run(&Perturbed { data: p }, x_ald, rng).x;
    let (lw, lse) = left_share(&langevin);
    let (aw, ase) = left_share(&annealed);
    Numbers {
        true_weight: SMALL_WEIGHT,
        fisher_equal_weights: fisher,
        kl_equal_weights: kl,
        kl_se,
        langevin_weight: lw,
        langevin_se: lse,
        annealed_weight: aw,
        annealed_se: ase,
        chains,
        langevin_eps: eps,
        langevin_steps: steps,
        sigma_max,
        sigma_min,
        levels,
        steps_per_level: per_level,
        samples: [langevin, annealed],
    }
}

impl Measured for Numbers {
    /// Langevin's weight is more than 10 SE off the truth, annealed Langevin's within 4 SE,
    /// and the equal-weight mixture's Fisher divergence is below 10⁻³ of its KL.
    fn holds(&self) -> bool {
        (self.langevin_weight - self.true_weight).abs() > 10.0 * self.langevin_se
            && (self.annealed_weight - self.true_weight).abs() < 4.0 * self.annealed_se
            && self.fisher_equal_weights < 1e-3 * self.kl_equal_weights
    }

    /// The measured figures in a sentence.
    fn summary(&self) -> String {
        format!(
            "small-mode weight {}: Langevin on the exact score gives {:.3} ± {:.3}, annealed Langevin {:.3} ± {:.3}; the equal-weight mixture's Fisher divergence is {:.1e} against a KL of {:.3} ± {:.3} nats",
            self.true_weight, self.langevin_weight, self.langevin_se, self.annealed_weight,
            self.annealed_se, self.fisher_equal_weights, self.kl_equal_weights, self.kl_se
        )
    }

    /// Weights as bars, and each sampler's chains as a histogram.
    fn figure(&self) -> Figure {
        let bars = Bars {
            title: "weight of the small mode (± SE)".into(),
            y_label: "share of chains at x₀ < 0".into(),
            bars: vec![
                (
                    "Langevin, exact score".into(),
                    self.langevin_weight,
                    self.langevin_se,
                    1,
                ),
                (
                    "annealed Langevin".into(),
                    self.annealed_weight,
                    self.annealed_se,
                    0,
                ),
            ],
            references: vec![(
                format!("true weight {}", self.true_weight),
                self.true_weight,
            )],
            y_range: (0.0, 0.8),
        };
        let bounds = [BOX, BOX];
        let density = |title: &str, x: &Tensor| Panel::Density {
            title: title.into(),
            grid: Grid::histogram(x, &bounds, 80),
            points: None,
        };
        let truth = Panel::Density {
            title: "data: 0.2 / 0.8".into(),
            grid: Grid::of(&mixture(self.true_weight), &bounds, 80),
            points: None,
        };
        let title = format!(
            "Score matching is blind to mode weights: {} chains from U[−5, 5]² on the exact scores",
            self.chains
        );
        Figure::new(
            title,
            vec![
                Panel::Bars(bars),
                truth,
                density("Langevin: chains", &self.samples[0]),
                density("annealed Langevin: chains", &self.samples[1]),
            ],
            2,
            (520, 440),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn langevin_keeps_the_starting_shares_and_annealing_recovers_the_weights() {
        let n = measure(Budget::Quick, &mut Rng::new(5));
        let z_ula = (n.langevin_weight - n.true_weight) / n.langevin_se;
        let z_ald = (n.annealed_weight - n.true_weight) / n.annealed_se;
        assert!(z_ula > 10.0, "Langevin's weight is only {z_ula:.1} SE off");
        assert!(
            z_ald.abs() < 4.0,
            "annealed Langevin's weight is {z_ald:.1} SE off"
        );
        assert!(n.holds(), "{}", n.summary());
    }
}
