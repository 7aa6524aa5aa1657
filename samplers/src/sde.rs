//! Forward diffusions dx = f(x, t) dt + g(t) dw on t ∈ [0, 1] and their reverse-time samplers
//! (Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole 2021, "Score-Based Generative Modeling
//! through Stochastic Differential Equations", ICLR; Algorithms 2–5 of its Appendix G).
//!
//! The reverse-time SDE (Anderson 1982) is dx = [f(x, t) − g(t)² ∇ₓ log p_t(x)] dt + g(t) dw̄,
//! run from t = 1 (the prior) down to a small t_end, with the score replaced by a model
//! s(x, t) ([`TimeScore`]).

use crate::target::TimeScore;
use crate::util::{axpby, axpy, noise_like, row_norms, row_sum};
use crate::Samples;
use ebm_core::{DType, Rng, Tensor};

/// A forward diffusion with an affine drift, so that p_t(x_t | x_0) = N(α(t) x₀, σ(t)² I).
pub trait Sde {
    /// The drift f(x, t).
    fn drift(&self, x: &Tensor, t: f64) -> Tensor;
    /// ∇ₓ·f(x, t) for rows of `d` elements (the drift is affine, so it does not depend on x).
    fn drift_div(&self, t: f64, d: usize) -> f64;
    /// The diffusion coefficient g(t).
    fn diffusion(&self, t: f64) -> f64;
    /// (α(t), σ(t)) of the perturbation kernel N(α(t) x₀, σ(t)² I).
    fn marginal(&self, t: f64) -> (f64, f64);
    /// The reverse-diffusion discretisation (f_Δ, G_Δ) of one step t → t − Δ, such that the
    /// forward chain is x_{t} = x_{t−Δ} + f_Δ(x_{t−Δ}) + G_Δ z (Song et al. 2021, App. E).
    fn discretize(&self, x: &Tensor, t: f64, dt: f64) -> (Tensor, f64);
    /// The Langevin-corrector scale αᵢ of Algorithms 4 (VE: 1) and 5 (VP: 1 − βᵢ).
    fn corrector_alpha(&self, t: f64, dt: f64) -> f64;
    /// A draw from the prior p₁ ≈ N(0, σ(1)² I).
    fn prior_sample(&self, shape: &[usize], rng: &mut Rng, dtype: DType) -> Tensor;
    /// log p₁(x) of the prior, per row.
    fn prior_log_prob(&self, x: &Tensor) -> Tensor;
}

fn isotropic_log_prob(x: &Tensor, var: f64) -> Tensor {
    let d: usize = x.shape()[1..].iter().product();
    row_sum(&x.square())
        .mul_scalar(-0.5 / var)
        .add_scalar(-0.5 * d as f64 * (std::f64::consts::TAU * var).ln())
}

/// Variance exploding: σ(t) = σ_min (σ_max/σ_min)ᵗ, f = 0, g(t) = σ(t) √(2 log(σ_max/σ_min)).
///
/// As in the paper's code, the perturbation kernel is taken as N(x₀, σ(t)² I), so p₀ is the
/// data convolved with N(0, σ_min² I); the prior is N(0, σ_max² I).
#[derive(Clone, Copy, Debug)]
pub struct VeSde {
    /// σ at t = 0.
    pub sigma_min: f64,
    /// σ at t = 1.
    pub sigma_max: f64,
}

impl VeSde {
    /// The VE SDE from `sigma_min` to `sigma_max`.
    pub fn new(sigma_min: f64, sigma_max: f64) -> VeSde {
        assert!(
            0.0 < sigma_min && sigma_min < sigma_max,
            "VeSde: need 0 < σ_min < σ_max, got {sigma_min}, {sigma_max}"
        );
        VeSde {
            sigma_min,
            sigma_max,
        }
    }

    /// σ(t).
    pub fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(t)
    }
}

impl Sde for VeSde {
    fn drift(&self, x: &Tensor, _t: f64) -> Tensor {
        x.zeros_like()
    }
    fn drift_div(&self, _t: f64, _d: usize) -> f64 {
        0.0
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.sigma(t) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt()
    }
    fn marginal(&self, t: f64) -> (f64, f64) {
        (1.0, self.sigma(t))
    }
    /// Algorithm 2: f_Δ = 0, G_Δ = √(σ(t)² − σ(t−Δ)²).
    fn discretize(&self, x: &Tensor, t: f64, dt: f64) -> (Tensor, f64) {
        let (s, sp) = (self.sigma(t), self.sigma(t - dt));
        (x.zeros_like(), (s * s - sp * sp).max(0.0).sqrt())
    }
    fn corrector_alpha(&self, _t: f64, _dt: f64) -> f64 {
        1.0
    }
    fn prior_sample(&self, shape: &[usize], rng: &mut Rng, dtype: DType) -> Tensor {
        rng.normal(shape, dtype).mul_scalar(self.sigma_max)
    }
    fn prior_log_prob(&self, x: &Tensor) -> Tensor {
        isotropic_log_prob(x, self.sigma_max * self.sigma_max)
    }
}

/// Variance preserving: β(t) = β_min + t(β_max − β_min), f = −½β(t)x, g = √β(t);
/// α(t) = exp(−¼t²(β_max − β_min) − ½tβ_min), σ(t)² = 1 − α(t)². Prior N(0, I).
#[derive(Clone, Copy, Debug)]
pub struct VpSde {
    /// β at t = 0.
    pub beta_min: f64,
    /// β at t = 1.
    pub beta_max: f64,
}

impl VpSde {
    /// The VP SDE with β from `beta_min` to `beta_max`.
    pub fn new(beta_min: f64, beta_max: f64) -> VpSde {
        assert!(
            0.0 < beta_min && beta_min < beta_max,
            "VpSde: need 0 < β_min < β_max, got {beta_min}, {beta_max}"
        );
        VpSde { beta_min, beta_max }
    }

    /// β(t).
    pub fn beta(&self, t: f64) -> f64 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }
}

impl Default for VpSde {
    /// The paper's β_min = 0.1, β_max = 20.
    fn default() -> Self {
        VpSde::new(0.1, 20.0)
    }
}

impl Sde for VpSde {
    fn drift(&self, x: &Tensor, t: f64) -> Tensor {
        x.mul_scalar(-0.5 * self.beta(t))
    }
    fn drift_div(&self, t: f64, d: usize) -> f64 {
        -0.5 * self.beta(t) * d as f64
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.beta(t).sqrt()
    }
    fn marginal(&self, t: f64) -> (f64, f64) {
        let log_a = -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min;
        // 1 − α² = −expm1(2 log α), accurate for small t
        (log_a.exp(), (-(2.0 * log_a).exp_m1()).sqrt())
    }
    /// Algorithm 3 (DDPM ancestral sampling): βᵢ = β(t)Δ, f_Δ = (√(1 − βᵢ) − 1)x, G_Δ = √βᵢ.
    fn discretize(&self, x: &Tensor, t: f64, dt: f64) -> (Tensor, f64) {
        let b = self.beta(t) * dt;
        (x.mul_scalar((1.0 - b).sqrt() - 1.0), b.sqrt())
    }
    fn corrector_alpha(&self, t: f64, dt: f64) -> f64 {
        1.0 - self.beta(t) * dt
    }
    fn prior_sample(&self, shape: &[usize], rng: &mut Rng, dtype: DType) -> Tensor {
        rng.normal(shape, dtype)
    }
    fn prior_log_prob(&self, x: &Tensor) -> Tensor {
        isotropic_log_prob(x, 1.0)
    }
}

/// The predictor of a reverse-time SDE step t → t − Δ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Predictor {
    /// Euler–Maruyama on the reverse SDE:
    /// x ← x − [f(x, t) − g(t)² s(x, t)] Δ + g(t) √Δ z.
    EulerMaruyama,
    /// Reverse diffusion (Algorithms 2 and 3): x ← x − f_Δ(x) + G_Δ² s(x, t) + G_Δ z, with
    /// (f_Δ, G_Δ) from [`Sde::discretize`].
    ReverseDiffusion,
    /// No predictor: only the corrector moves (annealed Langevin dynamics on the SDE's levels).
    None,
}

/// The corrector run after each predictor step, at the new time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Corrector {
    /// No corrector.
    None,
    /// `steps` Langevin steps x ← x + ε s(x, t) + √(2ε) z with
    /// ε = 2 αᵢ (r ‖z‖ / ‖s‖)², r the signal-to-noise ratio `snr` (Algorithms 4 and 5).
    ///
    /// As in the paper's reference code, ‖z‖ and ‖s‖ are the batch means of the per-row norms,
    /// so all chains share one step size: per-row ratios are heavy-tailed in low dimension
    /// (‖s‖ → 0 near a mode makes ε unbounded).
    Langevin {
        /// The signal-to-noise ratio r.
        snr: f64,
        /// Langevin steps per predictor step.
        steps: usize,
    },
}

/// A reverse-time SDE sampler: `n_steps` uniform steps from t = 1 down to `t_end`, each a
/// predictor then a corrector (Song et al. 2021, Algorithm 1 with Algorithms 2–5).
#[derive(Clone, Debug)]
pub struct ReverseSde {
    /// Uniform time steps from t = 1 to `t_end`.
    pub n_steps: usize,
    /// The data end of the time interval.
    pub t_end: f64,
    /// The predictor of each step.
    pub predictor: Predictor,
    /// The corrector of each step.
    pub corrector: Corrector,
    /// Leave the noise out of the last predictor step (return its mean), as the paper's code
    /// does; the omitted variance is g(t_end)²Δ, far below the sample resolution.
    pub denoise: bool,
}

impl ReverseSde {
    /// Euler–Maruyama reverse diffusion, no corrector.
    pub fn euler_maruyama(n_steps: usize, t_end: f64) -> ReverseSde {
        ReverseSde {
            n_steps,
            t_end,
            predictor: Predictor::EulerMaruyama,
            corrector: Corrector::None,
            denoise: true,
        }
    }

    /// Predictor–corrector: reverse diffusion + one Langevin corrector step at `snr`.
    pub fn predictor_corrector(n_steps: usize, t_end: f64, snr: f64) -> ReverseSde {
        ReverseSde {
            n_steps,
            t_end,
            predictor: Predictor::ReverseDiffusion,
            corrector: Corrector::Langevin { snr, steps: 1 },
            denoise: true,
        }
    }

    /// Draws `n` samples of `row_shape` starting from the SDE's prior.
    pub fn sample<S: Sde>(
        &self,
        sde: &S,
        score: &impl TimeScore,
        n: usize,
        row_shape: &[usize],
        dtype: DType,
        rng: &mut Rng,
    ) -> Samples {
        let mut shape = vec![n];
        shape.extend_from_slice(row_shape);
        let x = sde.prior_sample(&shape, rng, dtype);
        self.run(sde, score, x, rng)
    }

    /// Runs the reverse chain from `x` at t = 1 (one row per chain).
    pub fn run<S: Sde>(
        &self,
        sde: &S,
        score: &impl TimeScore,
        mut x: Tensor,
        rng: &mut Rng,
    ) -> Samples {
        assert!(
            self.n_steps > 0 && 0.0 <= self.t_end && self.t_end < 1.0,
            "ReverseSde: need n_steps > 0 and 0 ≤ t_end < 1"
        );
        let dt = (1.0 - self.t_end) / self.n_steps as f64;
        let mut out = Samples::new(x.clone());
        let mut evals = 0;
        let mut corrector_steps = Vec::new();
        for i in 0..self.n_steps {
            let t = 1.0 - i as f64 * dt;
            let last = i + 1 == self.n_steps;
            let keep_noise = !(last && self.denoise);
            // predictor: t → t − Δ
            match self.predictor {
                Predictor::EulerMaruyama => {
                    let s = score.score_t(&x, t);
                    evals += 1;
                    let g = sde.diffusion(t);
                    let f = sde.drift(&x, t);
                    // x − (f − g²s)Δ = x − fΔ + g²Δ s
                    let z = noise_like(&x, rng);
                    let zc = if keep_noise { g * dt.sqrt() } else { 0.0 };
                    x = axpy(axpby(x, -dt, &f, g * g * dt, &s), zc, &z);
                }
                Predictor::ReverseDiffusion => {
                    let s = score.score_t(&x, t);
                    evals += 1;
                    let (f, gd) = sde.discretize(&x, t, dt);
                    let z = noise_like(&x, rng);
                    let zc = if keep_noise { gd } else { 0.0 };
                    x = axpy(axpby(x, -1.0, &f, gd * gd, &s), zc, &z);
                }
                Predictor::None => {}
            }
            // corrector at the new time
            if let Corrector::Langevin { snr, steps } = self.corrector {
                let tn = t - dt;
                let alpha = sde.corrector_alpha(t, dt);
                for _ in 0..steps {
                    let s = score.score_t(&x, tn);
                    evals += 1;
                    let z = noise_like(&x, rng);
                    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
                    let (zn, sn) = (mean(row_norms(&z)), mean(row_norms(&s)));
                    if !(sn > 0.0 && sn.is_finite()) {
                        // a zero score (an exact mode for every chain) sets no step; skip
                        continue;
                    }
                    let eps = 2.0 * alpha * (snr * zn / sn).powi(2);
                    corrector_steps.push(eps);
                    x = axpby(x, eps, &s, (2.0 * eps).sqrt(), &z);
                }
            }
        }
        out.x = x;
        out.stats.steps = self.n_steps;
        out.stats.score_evals = evals;
        out.stats.step_sizes = corrector_steps;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp_marginal_solves_its_moment_ode() {
        // d/dt E[x] = −½β m  and  d/dt Var = β(1 − Var) for data x₀ = 1 with Var₀ = 0:
        // α' = −½βα, and (σ²)' = β(1 − σ²).
        let sde = VpSde::default();
        let h = 1e-6;
        for &t in &[0.01, 0.3, 0.9] {
            let (a, s) = sde.marginal(t);
            let (ap, sp) = sde.marginal(t + h);
            let (am, sm) = sde.marginal(t - h);
            let da = (ap - am) / (2.0 * h);
            let dv = (sp * sp - sm * sm) / (2.0 * h);
            assert!((da + 0.5 * sde.beta(t) * a).abs() < 1e-6);
            assert!((dv - sde.beta(t) * (1.0 - s * s)).abs() < 1e-6);
        }
    }

    #[test]
    fn ve_diffusion_matches_its_variance() {
        // dσ²/dt = g²
        let sde = VeSde::new(0.01, 50.0);
        let h = 1e-6;
        for &t in &[0.0 + 1e-3, 0.5, 0.99] {
            let dv = (sde.sigma(t + h).powi(2) - sde.sigma(t - h).powi(2)) / (2.0 * h);
            let g2 = sde.diffusion(t).powi(2);
            assert!((dv - g2).abs() < 1e-6 * g2.max(1.0));
        }
    }
}
