//! Densities with known answers, for testing samplers and objectives: a Gaussian with full
//! covariance and a weighted Gaussian mixture, with exact energy, score, log-density and
//! samples, and their closed-form perturbations by the noise of annealed Langevin and of VE/VP
//! diffusions; and the one [`cholesky`] factorisation of the layers above.
//!
//! If x ~ p and x_t = α x + σ ε with ε ~ N(0, I), then a Gaussian N(m, Σ) becomes
//! N(α m, α²Σ + σ²I), and a mixture Σₖ wₖ N(mₖ, Σₖ) becomes Σₖ wₖ N(α mₖ, α²Σₖ + σ²I): the
//! perturbed score is known in closed form at every noise level.

use crate::sde::Sde;
use crate::target::{NoiseScore, ScoreDivergence, Target, TimeScore};
use crate::util::{row_sum, row_values};
use ebm_core::{DType, Rng, Tensor};

/// Lower Cholesky factor of a symmetric positive-definite `d×d` row-major matrix.
pub fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    assert_eq!(
        a.len(),
        d * d,
        "cholesky: {} entries for a {d}×{d} matrix",
        a.len()
    );
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if v.is_nan() || v <= 0.0 {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// Inverse of an SPD matrix from its Cholesky factor.
fn spd_inverse(l: &[f64], d: usize) -> Vec<f64> {
    // columns of L⁻¹ by forward substitution, then A⁻¹ = L⁻ᵀL⁻¹
    let mut li = vec![0.0; d * d];
    for c in 0..d {
        for i in 0..d {
            let rhs = if i == c { 1.0 } else { 0.0 };
            let s: f64 = (0..i).map(|k| l[i * d + k] * li[k * d + c]).sum();
            li[i * d + c] = (rhs - s) / l[i * d + i];
        }
    }
    let mut inv = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            inv[i * d + j] = (0..d).map(|k| li[k * d + i] * li[k * d + j]).sum();
        }
    }
    inv
}

/// A multivariate normal N(m, Σ) on ℝᵈ, with E(x) = −log N(x; m, Σ) (normalised).
#[derive(Clone, Debug)]
pub struct Gaussian {
    mean: Vec<f64>,
    cov: Vec<f64>,
    chol: Vec<f64>,
    prec: Vec<f64>,
    /// log((2π)^d det Σ)
    log_norm: f64,
}

impl Gaussian {
    /// N(mean, cov) with `cov` a row-major d×d SPD matrix; panics if it is not SPD.
    pub fn new(mean: &[f64], cov: &[f64]) -> Gaussian {
        let d = mean.len();
        assert_eq!(
            cov.len(),
            d * d,
            "Gaussian: mean of dimension {d} needs a {d}×{d} covariance, got {} entries",
            cov.len()
        );
        let chol = cholesky(cov, d)
            .unwrap_or_else(|| panic!("Gaussian: covariance {cov:?} is not positive definite"));
        let logdet: f64 = 2.0 * (0..d).map(|i| chol[i * d + i].ln()).sum::<f64>();
        Gaussian {
            mean: mean.to_vec(),
            cov: cov.to_vec(),
            prec: spd_inverse(&chol, d),
            chol,
            log_norm: d as f64 * std::f64::consts::TAU.ln() + logdet,
        }
    }

    /// N(mean, var·I).
    pub fn isotropic(mean: &[f64], var: f64) -> Gaussian {
        let d = mean.len();
        let cov: Vec<f64> = (0..d * d)
            .map(|k| if k / d == k % d { var } else { 0.0 })
            .collect();
        Gaussian::new(mean, &cov)
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean μ.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Σ, row-major.
    pub fn cov(&self) -> &[f64] {
        &self.cov
    }

    /// Σ⁻¹, row-major.
    pub fn precision(&self) -> &[f64] {
        &self.prec
    }

    /// tr Σ⁻¹ (minus the divergence of the score).
    pub fn trace_precision(&self) -> f64 {
        let d = self.dim();
        (0..d).map(|i| self.prec[i * d + i]).sum()
    }

    fn check(&self, x: &Tensor) {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.dim(),
            "Gaussian of dimension {}: input {:?} is not [B, {}]",
            self.dim(),
            x.shape(),
            self.dim()
        );
    }

    /// (x − m) as a tensor.
    fn centred(&self, x: &Tensor) -> Tensor {
        self.check(x);
        x.sub(&Tensor::from_f64s(&self.mean, &[self.dim()], x.dtype()))
    }

    fn prec_tensor(&self, dtype: DType) -> Tensor {
        let d = self.dim();
        Tensor::from_f64s(&self.prec, &[d, d], dtype)
    }

    /// log N(x; m, Σ) per row.
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        let c = self.centred(x);
        let q = row_sum(&c.matmul(&self.prec_tensor(x.dtype())).mul(&c));
        q.mul_scalar(-0.5).add_scalar(-0.5 * self.log_norm)
    }

    /// `n` exact draws, m + L z.
    pub fn sample(&self, n: usize, rng: &mut Rng, dtype: DType) -> Tensor {
        let d = self.dim();
        let z = rng.normal(&[n, d], DType::F64);
        let lt = Tensor::from_f64s(&self.chol, &[d, d], DType::F64);
        z.matmul_t(&lt, false, true)
            .add(&Tensor::from_f64s(&self.mean, &[d], DType::F64))
            .cast(dtype)
    }

    /// The law of α x + σ ε: N(α m, α²Σ + σ²I).
    pub fn perturbed(&self, alpha: f64, sigma: f64) -> Gaussian {
        let d = self.dim();
        let mean: Vec<f64> = self.mean.iter().map(|m| alpha * m).collect();
        let cov: Vec<f64> = (0..d * d)
            .map(|k| alpha * alpha * self.cov[k] + if k / d == k % d { sigma * sigma } else { 0.0 })
            .collect();
        Gaussian::new(&mean, &cov)
    }
}

impl Target for Gaussian {
    fn energy(&self, x: &Tensor) -> Tensor {
        self.log_prob(x).neg()
    }

    /// s(x) = −Σ⁻¹(x − m) (Σ⁻¹ is symmetric, so row-wise (x − m)Σ⁻¹).
    fn score(&self, x: &Tensor) -> Tensor {
        self.centred(x).matmul(&self.prec_tensor(x.dtype())).neg()
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let c = self.centred(x);
        let pc = c.matmul(&self.prec_tensor(x.dtype()));
        let e = row_sum(&pc.mul(&c))
            .mul_scalar(0.5)
            .add_scalar(0.5 * self.log_norm);
        (e, pc.neg())
    }
}

/// A weighted mixture Σₖ wₖ N(mₖ, Σₖ), with E(x) = −log p(x) (normalised).
#[derive(Clone, Debug)]
pub struct GaussianMixture {
    log_weights: Vec<f64>,
    components: Vec<Gaussian>,
}

impl GaussianMixture {
    /// Weights (normalised here) and components of equal dimension.
    pub fn new(weights: &[f64], components: Vec<Gaussian>) -> GaussianMixture {
        assert!(
            weights.len() == components.len() && !weights.is_empty(),
            "GaussianMixture: {} weights for {} components",
            weights.len(),
            components.len()
        );
        assert!(
            weights.iter().all(|&w| w > 0.0),
            "GaussianMixture: weights {weights:?} must be positive"
        );
        let d = components[0].dim();
        assert!(
            components.iter().all(|c| c.dim() == d),
            "GaussianMixture: components of different dimensions"
        );
        let total: f64 = weights.iter().sum();
        GaussianMixture {
            log_weights: weights.iter().map(|w| (w / total).ln()).collect(),
            components,
        }
    }

    /// `k` equal-weight components N(mₖ, std²I) with means evenly spaced on a circle of
    /// radius `radius` in 2-D, the first at angle 0.
    pub fn ring(k: usize, radius: f64, std: f64) -> GaussianMixture {
        let components = (0..k)
            .map(|i| {
                let a = std::f64::consts::TAU * i as f64 / k as f64;
                Gaussian::isotropic(&[radius * a.cos(), radius * a.sin()], std * std)
            })
            .collect();
        GaussianMixture::new(&vec![1.0; k], components)
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.components[0].dim()
    }

    /// The normalised weights.
    pub fn weights(&self) -> Vec<f64> {
        self.log_weights.iter().map(|l| l.exp()).collect()
    }

    /// The components.
    pub fn components(&self) -> &[Gaussian] {
        &self.components
    }

    /// log wₖ + log N(x; mₖ, Σₖ) as `[B, K]`.
    fn joint(&self, x: &Tensor) -> Tensor {
        let b = x.shape()[0];
        let cols: Vec<Tensor> = self
            .components
            .iter()
            .zip(&self.log_weights)
            .map(|(c, lw)| c.log_prob(x).add_scalar(*lw).reshape(&[b, 1]))
            .collect();
        Tensor::concat(&cols, 1)
    }

    /// log p(x) per row (log-sum-exp over components).
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        self.joint(x).logsumexp(&[1], false)
    }

    /// Posterior component probabilities p(k | x), `[B, K]`.
    pub fn responsibilities(&self, x: &Tensor) -> Tensor {
        let j = self.joint(x);
        j.sub(&j.logsumexp(&[1], true)).exp()
    }

    /// `n` exact draws: a component by its weight, then an exact draw of it.
    pub fn sample(&self, n: usize, rng: &mut Rng, dtype: DType) -> Tensor {
        let (w, d) = (self.weights(), self.dim());
        let u = rng.uniform_vec(n);
        let draws: Vec<Vec<f64>> = self
            .components
            .iter()
            .map(|c| c.sample(n, rng, DType::F64).to_vec_f64())
            .collect();
        let mut out = Vec::with_capacity(n * d);
        for (i, ui) in u.iter().enumerate() {
            let mut acc = 0.0;
            let mut k = w.len() - 1;
            for (j, wj) in w.iter().enumerate() {
                acc += wj;
                if *ui < acc {
                    k = j;
                    break;
                }
            }
            out.extend_from_slice(&draws[k][i * d..(i + 1) * d]);
        }
        Tensor::from_f64s(&out, &[n, d], dtype)
    }

    /// The law of α x + σ ε: Σₖ wₖ N(α mₖ, α²Σₖ + σ²I).
    pub fn perturbed(&self, alpha: f64, sigma: f64) -> GaussianMixture {
        GaussianMixture {
            log_weights: self.log_weights.clone(),
            components: self
                .components
                .iter()
                .map(|c| c.perturbed(alpha, sigma))
                .collect(),
        }
    }
}

impl Target for GaussianMixture {
    fn energy(&self, x: &Tensor) -> Tensor {
        self.log_prob(x).neg()
    }

    /// s(x) = Σₖ p(k | x) sₖ(x).
    fn score(&self, x: &Tensor) -> Tensor {
        let r = self.responsibilities(x);
        let mut s = x.zeros_like();
        for (k, c) in self.components.iter().enumerate() {
            s = s.add(&c.score(x).mul(&r.narrow(1, k, 1)));
        }
        s
    }
}

/// A density family closed under x ↦ α x + σ ε (see the module docs).
pub trait Perturb: Sized {
    /// The law of α x + σ ε, ε ~ N(0, I).
    fn perturb(&self, alpha: f64, sigma: f64) -> Self;
}

impl Perturb for Gaussian {
    fn perturb(&self, alpha: f64, sigma: f64) -> Self {
        self.perturbed(alpha, sigma)
    }
}

impl Perturb for GaussianMixture {
    fn perturb(&self, alpha: f64, sigma: f64) -> Self {
        self.perturbed(alpha, sigma)
    }
}

/// The exact noise-conditional score of an analytic density: s(x, σ) = ∇ log (p ∗ N(0, σ²I)).
#[derive(Clone, Debug)]
pub struct Perturbed<D> {
    /// The density before perturbation.
    pub data: D,
}

impl<D: Perturb + Target> NoiseScore for Perturbed<D> {
    fn score_sigma(&self, x: &Tensor, sigma: f64) -> Tensor {
        self.data.perturb(1.0, sigma).score(x)
    }
}

/// The exact marginal score of an analytic density diffused by an SDE: at time t,
/// p_t = law of α(t) x₀ + σ(t) ε (see [`Sde::marginal`]).
#[derive(Clone, Debug)]
pub struct Diffused<D, S> {
    /// The data density at t = 0.
    pub data: D,
    /// The diffusion.
    pub sde: S,
}

impl<D: Perturb, S: Sde> Diffused<D, S> {
    /// The exact marginal p_t.
    pub fn marginal(&self, t: f64) -> D {
        let (a, s) = self.sde.marginal(t);
        self.data.perturb(a, s)
    }
}

impl<D: Perturb + Target, S: Sde> TimeScore for Diffused<D, S> {
    fn score_t(&self, x: &Tensor, t: f64) -> Tensor {
        self.marginal(t).score(x)
    }
}

impl<S: Sde> ScoreDivergence for Diffused<Gaussian, S> {
    /// ∇·s = −tr Σₜ⁻¹, the same for every row.
    fn score_div(&self, x: &Tensor, t: f64) -> (Tensor, Tensor) {
        let g = self.marginal(t);
        let b = x.shape()[0];
        let div = vec![-g.trace_precision(); b];
        (g.score(x), row_values(&div, x.dtype()))
    }

    /// vᵀ(∂s/∂x)v = −vᵀΣₜ⁻¹v.
    fn score_probe(&self, x: &Tensor, t: f64, v: &Tensor) -> (Tensor, Tensor) {
        let g = self.marginal(t);
        let q = row_sum(&v.matmul(&g.prec_tensor(v.dtype())).mul(v)).neg();
        (g.score(x), q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_factors() {
        // [[4, 2], [2, 3]] = L Lᵀ with L = [[2, 0], [1, √2]]
        let l = cholesky(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
        assert_eq!(l[0], 2.0);
        assert_eq!(l[1], 0.0);
        assert_eq!(l[2], 1.0);
        assert!((l[3] - 2f64.sqrt()).abs() < 1e-15);
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn eight_gaussians_normalise_and_sample_by_weight() {
        // FFJORD's 8-Gaussians (radius 2√2, σ = 0.5/√2), with the data crate's parameters
        let e = ebm_data::EIGHT_GAUSSIANS;
        let g = GaussianMixture::ring(e.modes, e.radius, e.std);
        // midpoint rule on [−6, 6]², 500 cells a side
        let h = 12.0 / 500.0;
        let mids: Vec<f64> = (0..500).map(|i| -6.0 + (i as f64 + 0.5) * h).collect();
        let pts: Vec<f64> = mids
            .iter()
            .flat_map(|&a| mids.iter().flat_map(move |&b| [a, b]))
            .collect();
        let grid = Tensor::from_vec(pts, &[mids.len() * mids.len(), 2]);
        let mass = g.log_prob(&grid).exp().sum_all().item() * h * h;
        assert!((mass - 1.0).abs() < 1e-6, "mass {mass}");
        let m = 80_000;
        let xs = g.sample(m, &mut Rng::new(2), DType::F64);
        // E‖x‖² = r² + 2σ² = 8 + 0.25; Var‖x‖² ≈ 4r²σ² + 8σ⁴ ≈ 4.1, se = √(4.1/m) = 0.0072
        let r2 = xs.square().sum_axes(&[1], false).mean_all().item();
        assert!((r2 - 8.25).abs() < 4.0 * 0.0072, "E|x|² {r2}");
        // each component gets 1/8 of the draws: se √(p(1−p)/m) = 0.00117
        let resp = g.responsibilities(&xs).mean_axes(&[0], false).to_vec_f64();
        for p in resp {
            assert!((p - 0.125).abs() < 4.0 * 0.00117, "share {p}");
        }
    }

    #[test]
    fn gaussian_density_and_score_match_hand_values() {
        // Σ = [[2, 1], [1, 2]]: det 3, Σ⁻¹ = [[2, −1], [−1, 2]]/3
        let g = Gaussian::new(&[1.0, -1.0], &[2.0, 1.0, 1.0, 2.0]);
        let x = Tensor::from_vec(vec![2.0f64, 0.0], &[1, 2]);
        // x − m = (1, 1); quad = (2 − 1 − 1 + 2)/3 = 2/3
        let want = -0.5 * (2.0 / 3.0) - 0.5 * ((std::f64::consts::TAU).powi(2) * 3.0).ln();
        assert!((g.log_prob(&x).item() - want).abs() < 1e-12);
        // s = −Σ⁻¹(1, 1) = −(1/3, 1/3)
        let s = g.score(&x).to_vec_f64();
        assert!((s[0] + 1.0 / 3.0).abs() < 1e-12 && (s[1] + 1.0 / 3.0).abs() < 1e-12);
        let (e, s2) = g.energy_and_score(&x);
        assert!((e.item() + want).abs() < 1e-12);
        assert!(s2.max_abs_diff(&g.score(&x)) < 1e-15);
        assert!((g.trace_precision() - 4.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mixture_score_is_the_gradient_of_its_log_density() {
        let m = GaussianMixture::new(
            &[0.2, 0.8],
            vec![
                Gaussian::isotropic(&[-1.0, 0.5], 0.7),
                Gaussian::new(&[1.0, 1.0], &[1.0, 0.3, 0.3, 0.5]),
            ],
        );
        let x = Tensor::from_vec(vec![0.1f64, 0.2, -0.7, 1.4], &[2, 2]);
        let s = m.score(&x).to_vec_f64();
        let h = 1e-6;
        for b in 0..2 {
            for i in 0..2 {
                let bump = |d: f64| {
                    let mut v = x.to_vec_f64();
                    v[2 * b + i] += d;
                    m.log_prob(&Tensor::from_vec(v, &[2, 2])).to_vec_f64()[b]
                };
                let fd = (bump(h) - bump(-h)) / (2.0 * h);
                assert!(
                    (fd - s[2 * b + i]).abs() < 1e-8,
                    "fd {fd} vs {}",
                    s[2 * b + i]
                );
            }
        }
    }

    #[test]
    fn samples_have_the_right_moments() {
        let g = Gaussian::new(&[1.0, -1.0], &[2.0, 1.2, 1.2, 1.0]);
        let n = 20_000;
        let x = g.sample(n, &mut Rng::new(3), DType::F64);
        let (mean, cov) = crate::diagnostics::mean_cov(&x);
        // standard errors: √(Σᵢᵢ/n) for means, √((ΣᵢᵢΣⱼⱼ + Σᵢⱼ²)/n) for covariances
        for (i, (m, t)) in mean.iter().zip(g.mean()).enumerate() {
            let se = (g.cov()[3 * i] / n as f64).sqrt();
            assert!((m - t).abs() < 4.0 * se);
        }
        for (k, (c, t)) in cov.iter().zip(g.cov()).enumerate() {
            let (i, j) = (k / 2, k % 2);
            let se = ((g.cov()[3 * i] * g.cov()[3 * j] + t * t) / n as f64).sqrt();
            assert!((c - t).abs() < 4.0 * se, "cov[{k}] {c} vs {t}");
        }
    }
}
