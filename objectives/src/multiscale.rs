//! Multi-scale denoising score matching for noise-conditional models: NCSN's geometric σ
//! levels and the continuous-time VE and VP SDE versions.

use crate::{half_mean_sq, names, noise_conditional_model, ModelKind, Objective};
use ebm_autodiff::{GradOpts, Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{Conditioning, Model, NoiseConditionalModel};

/// How the noise level of each row is drawn, and what condition the model sees.
#[derive(Clone, Debug, PartialEq)]
pub enum NoiseSchedule {
    /// NCSN (Song & Ermon 2019): σ₁ > … > σ_L geometric from `sigma_max` to `sigma_min`,
    /// a level drawn uniformly per row; the model is conditioned on σ.
    Geometric {
        /// The largest level σ₁.
        sigma_max: f64,
        /// The smallest level σ_L.
        sigma_min: f64,
        /// The number of levels L.
        levels: usize,
    },
    /// Variance-exploding SDE (Song et al. 2021): t ~ U(t_min, 1),
    /// σ(t) = σ_min (σ_max/σ_min)ᵗ, x_t = x + σ(t)z; the model is conditioned on t.
    Ve {
        /// σ(0).
        sigma_min: f64,
        /// σ(1).
        sigma_max: f64,
        /// The smallest time drawn.
        t_min: f64,
    },
    /// Variance-preserving SDE (DDPM's continuous limit): β(t) = β_min + t(β_max − β_min),
    /// x_t = α(t)x + σ(t)z with α(t) = exp(−¼t²(β_max − β_min) − ½tβ_min),
    /// σ(t) = √(1 − α(t)²); the model is conditioned on t.
    Vp {
        /// β(0).
        beta_min: f64,
        /// β(1).
        beta_max: f64,
        /// The smallest time drawn.
        t_min: f64,
    },
}

impl NoiseSchedule {
    /// NCSN's geometric levels σ_i = σ_max (σ_min/σ_max)^{i/(L−1)}, i = 0…L−1.
    pub fn sigmas(&self) -> Vec<f64> {
        match *self {
            NoiseSchedule::Geometric {
                sigma_max,
                sigma_min,
                levels,
            } => (0..levels)
                .map(|i| {
                    let f = if levels > 1 {
                        i as f64 / (levels - 1) as f64
                    } else {
                        0.0
                    };
                    sigma_max * (sigma_min / sigma_max).powf(f)
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Per row: (condition c, mean coefficient α, noise scale σ).
    fn draw(&self, b: usize, rng: &mut Rng) -> Vec<(f64, f64, f64)> {
        match *self {
            NoiseSchedule::Geometric { .. } => {
                let s = self.sigmas();
                (0..b)
                    .map(|_| {
                        let sig = s[rng.below(s.len())];
                        (sig, 1.0, sig)
                    })
                    .collect()
            }
            NoiseSchedule::Ve {
                sigma_min,
                sigma_max,
                t_min,
            } => (0..b)
                .map(|_| {
                    let t = t_min + (1.0 - t_min) * rng.next_f64();
                    (t, 1.0, sigma_min * (sigma_max / sigma_min).powf(t))
                })
                .collect(),
            NoiseSchedule::Vp {
                beta_min,
                beta_max,
                t_min,
            } => (0..b)
                .map(|_| {
                    let t = t_min + (1.0 - t_min) * rng.next_f64();
                    let a = (-0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min).exp();
                    (t, a, (1.0 - a * a).sqrt())
                })
                .collect(),
        }
    }
}

/// Multi-scale DSM: J(θ) = mean_b λ(σ_b) · ½‖s_θ(x̃_b, c_b) + z_b/σ_b‖², x̃ = αx + σz, with the
/// weighting λ(σ) = σ² that makes every level's term O(1) (Song & Ermon 2019, eq. 6;
/// Song et al. 2021, eq. 7).
#[derive(Clone, Debug)]
pub struct MultiScaleDsm {
    /// How noise levels are drawn.
    pub schedule: NoiseSchedule,
}

impl MultiScaleDsm {
    /// The loss for a noise-conditional model with parameters `p` bound on `tape`.
    fn noise_conditional_loss(
        &self,
        tape: &Tape,
        model: &dyn NoiseConditionalModel,
        p: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let b = x.shape()[0];
        let dt = x.dtype();
        let levels = self.schedule.draw(b, rng);
        let col = |f: &dyn Fn(&(f64, f64, f64)) -> f64| {
            let v: Vec<f64> = levels.iter().map(f).collect();
            Tensor::from_f64s(&v, &[b, 1], dt)
        };
        let (alpha, sigma) = (col(&|l| l.1), col(&|l| l.2));
        let cond = Tensor::from_f64s(&levels.iter().map(|l| l.0).collect::<Vec<_>>(), &[b], dt);
        let z = rng.normal(x.shape(), dt);
        let x2 = x.reshape(&[b, usize::MAX]);
        let z2 = z.reshape(&[b, usize::MAX]);
        let xt = tape.var(x2.mul(&alpha).add(&z2.mul(&sigma)).reshape(x.shape()));
        let s = model
            .score_var(&xt, &cond, p, GradOpts::create_graph())
            .reshape(&[b, usize::MAX]);
        // λ(σ)·½‖s + z/σ‖² = ½‖σs + z‖²
        half_mean_sq(&s.mul_const(&sigma).add_const(&z2))
    }
}

impl Objective for MultiScaleDsm {
    fn name(&self) -> &'static str {
        match self.schedule {
            NoiseSchedule::Geometric { .. } => names::NCSN,
            NoiseSchedule::Ve { .. } => names::VE,
            NoiseSchedule::Vp { .. } => names::VP,
        }
    }

    /// NCSN conditions on σ, the SDEs on t.
    fn model_kind(&self) -> ModelKind {
        ModelKind::NoiseConditional(match self.schedule {
            NoiseSchedule::Geometric { .. } => Conditioning::LogSigma,
            NoiseSchedule::Ve { .. } | NoiseSchedule::Vp { .. } => Conditioning::Time,
        })
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
        let model = noise_conditional_model(model, self.name());
        self.noise_conditional_loss(tape, model, p, x, rng)
    }
}
