//! Annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating Gradients
//! of the Data Distribution", Algorithm 1).
//!
//! For noise levels σ₁ > σ₂ > … > σ_L (geometric), run T Langevin steps at each level with step
//! αᵢ = ε σᵢ²/σ_L²:  x ← x + (αᵢ/2) s(x, σᵢ) + √αᵢ z.  Scaling α with σ² keeps the signal-to-noise
//! ratio of every level the same. At large σ the perturbed modes overlap and chains move
//! between them freely, so mass settles in proportion to the mode weights before the modes
//! separate — which plain Langevin on the clean density cannot do.
//!
//! Optional final denoising (Tweedie's formula; Jolicoeur-Martineau et al. 2021, Song & Ermon
//! 2020): x ← x + σ_L² s(x, σ_L), the posterior mean E[x₀ | x], which removes the σ_L noise.

use crate::target::NoiseScore;
use crate::util::{axpby, axpy, noise_like};
use crate::{Record, Samples};
use ebm_core::{Rng, Tensor};

/// Annealed Langevin dynamics over a decreasing noise schedule.
#[derive(Clone, Debug)]
pub struct AnnealedLangevin {
    /// σ₁ > … > σ_L.
    pub sigmas: Vec<f64>,
    /// ε: the step at the last level, α_L = ε.
    pub eps: f64,
    /// T: Langevin steps per level.
    pub steps_per_level: usize,
    /// Apply x ← x + σ_L² s(x, σ_L) at the end.
    pub denoise: bool,
    /// Records along the whole run (step index counts all levels).
    pub record: Record,
}

impl AnnealedLangevin {
    /// L levels geometric from `sigma_max` down to `sigma_min`, no final denoising.
    pub fn geometric(
        sigma_max: f64,
        sigma_min: f64,
        levels: usize,
        eps: f64,
        steps_per_level: usize,
    ) -> AnnealedLangevin {
        AnnealedLangevin {
            sigmas: geometric_sigmas(sigma_max, sigma_min, levels),
            eps,
            steps_per_level,
            denoise: false,
            record: Record::none(),
        }
    }

    /// With the final denoising step when `denoise` (see the field).
    pub fn with_denoise(mut self, denoise: bool) -> AnnealedLangevin {
        self.denoise = denoise;
        self
    }

    /// αᵢ = ε σᵢ²/σ_L² for every level.
    pub fn step_sizes(&self) -> Vec<f64> {
        let last = *self
            .sigmas
            .last()
            .expect("AnnealedLangevin: no noise levels");
        self.sigmas
            .iter()
            .map(|s| self.eps * s * s / (last * last))
            .collect()
    }

    /// Runs every level from `x0` (one row per chain).
    pub fn run(&self, score: &impl NoiseScore, x0: Tensor, rng: &mut Rng) -> Samples {
        let mut out = Samples::new(Tensor::zeros(&[0], x0.dtype()));
        let mut x = x0;
        let mut k = 0;
        for (&sigma, alpha) in self.sigmas.iter().zip(self.step_sizes()) {
            for _ in 0..self.steps_per_level {
                let s = score.score_sigma(&x, sigma);
                out.stats.score_evals += 1;
                let z = noise_like(&x, rng);
                x = axpby(x, 0.5 * alpha, &s, alpha.sqrt(), &z);
                out.record(&self.record, k, &x, None);
                k += 1;
            }
            out.stats.step_sizes.push(alpha);
        }
        if self.denoise {
            let last = *self
                .sigmas
                .last()
                .expect("AnnealedLangevin: no noise levels");
            let s = score.score_sigma(&x, last);
            out.stats.score_evals += 1;
            x = axpy(x, last * last, &s);
        }
        out.x = x;
        out.stats.steps = k;
        out
    }
}

/// σᵢ = σ_max (σ_min/σ_max)^((i−1)/(L−1)), i = 1..L.
pub fn geometric_sigmas(sigma_max: f64, sigma_min: f64, levels: usize) -> Vec<f64> {
    assert!(
        levels >= 1 && 0.0 < sigma_min && sigma_min <= sigma_max,
        "geometric_sigmas: need L ≥ 1 and 0 < σ_min ≤ σ_max, got {levels}, {sigma_min}, {sigma_max}"
    );
    if levels == 1 {
        return vec![sigma_max];
    }
    let r = (sigma_min / sigma_max).ln() / (levels - 1) as f64;
    (0..levels)
        .map(|i| sigma_max * (r * i as f64).exp())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_geometric_and_steps_scale_with_sigma_squared() {
        let a = AnnealedLangevin::geometric(20.0, 1.0, 10, 0.1, 100);
        assert!((a.sigmas[0] - 20.0).abs() < 1e-12 && (a.sigmas[9] - 1.0).abs() < 1e-12);
        let r = a.sigmas[1] / a.sigmas[0];
        assert!(a.sigmas.windows(2).all(|w| (w[1] / w[0] - r).abs() < 1e-12));
        let al = a.step_sizes();
        assert!((al[9] - 0.1).abs() < 1e-15 && (al[0] - 0.1 * 400.0).abs() < 1e-9);
    }
}
