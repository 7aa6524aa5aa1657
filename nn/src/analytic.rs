//! Energies with closed-form densities and scores: a quadratic (Gaussian) energy with
//! learnable mean and Cholesky factor, and a mixture of diagonal Gaussians. They are the
//! ground truth of the objectives' closed-form tests and the samplers' statistical tests.

use crate::model::{EnergyModel, Module};
use crate::params::Params;
use ebm_autodiff::Var;
use ebm_core::{DType, Rng, Tensor};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Lower-triangular mask (ones on and below the diagonal) of size d×d.
fn tril_mask(d: usize, dtype: DType) -> Tensor {
    let v: Vec<f64> = (0..d * d)
        .map(|k| if k % d <= k / d { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_f64s(&v, &[d, d], dtype)
}

/// Cholesky factor of a symmetric positive-definite row-major d×d matrix (f64), or `None`.
pub fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if v <= 0.0 || !v.is_finite() {
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

/// E(x) = ½(x − μ)ᵀA(x − μ) with A = LLᵀ: a Gaussian N(μ, A⁻¹) up to its known log Z.
///
/// Parameters `mu [d]` and `l [d, d]`; L is lower-triangular (entries above the diagonal are
/// masked out and get zero gradient), so log det A = 2 Σ log|Lᵢᵢ|.
#[derive(Clone, Debug)]
pub struct Quadratic {
    params: Params,
    dim: usize,
}

impl Quadratic {
    /// From a mean `mu` [d] and a lower-triangular factor `l` [d, d] of the same dtype.
    pub fn new(mu: Tensor, l: Tensor) -> Quadratic {
        let d = mu.numel();
        assert!(
            mu.shape() == [d] && l.shape() == [d, d] && mu.dtype() == l.dtype(),
            "Quadratic: mu {} {:?} and L {} {:?} must be [d] and [d, d] of one dtype",
            mu.dtype(),
            mu.shape(),
            l.dtype(),
            l.shape()
        );
        let mut params = Params::new();
        params.push("mu", mu);
        params.push("l", l);
        Quadratic { params, dim: d }
    }

    /// The standard normal: μ = 0, L = I.
    pub fn standard(dim: usize, dtype: DType) -> Quadratic {
        let eye: Vec<f64> = (0..dim * dim)
            .map(|k| if k % dim == k / dim { 1.0 } else { 0.0 })
            .collect();
        Quadratic::new(
            Tensor::zeros(&[dim], dtype),
            Tensor::from_f64s(&eye, &[dim, dim], dtype),
        )
    }

    /// From a mean and a symmetric positive-definite precision matrix A [d, d] (its Cholesky
    /// factor becomes L); panics if A is not positive definite.
    pub fn from_precision(mu: Tensor, precision: &Tensor) -> Quadratic {
        let d = mu.numel();
        assert_eq!(
            precision.shape(),
            &[d, d],
            "Quadratic: precision {:?} must be [{d}, {d}]",
            precision.shape()
        );
        let l = cholesky(&precision.to_vec_f64(), d)
            .expect("Quadratic::from_precision: the precision is not positive definite");
        let dtype = mu.dtype();
        Quadratic::new(mu, Tensor::from_f64s(&l, &[d, d], dtype))
    }

    /// Data dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// μ.
    pub fn mu(&self) -> &Tensor {
        self.params.get(0)
    }

    /// L with its upper triangle zeroed.
    pub fn chol(&self) -> Tensor {
        let l = self.params.get(1);
        l.mul(&tril_mask(self.dim, l.dtype()))
    }

    /// The precision A = LLᵀ.
    pub fn precision(&self) -> Tensor {
        let l = self.chol();
        l.matmul_t(&l, false, true)
    }

    /// log Z = (d/2) log 2π − Σ log|Lᵢᵢ|, so that log p(x) = −E(x) − log Z.
    pub fn log_normalizer(&self) -> f64 {
        let l = self.chol().to_vec_f64();
        let d = self.dim;
        0.5 * d as f64 * LN_2PI - (0..d).map(|i| l[i * d + i].abs().ln()).sum::<f64>()
    }

    /// log p(x) per row.
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        self.energy(x).neg().add_scalar(-self.log_normalizer())
    }

    /// `n` exact draws from N(μ, A⁻¹): x = μ + L⁻ᵀz (back-substitution in f64).
    pub fn sample(&self, rng: &mut Rng, n: usize) -> Tensor {
        let d = self.dim;
        let l = self.chol().to_vec_f64();
        let mu = self.mu().to_vec_f64();
        let z = rng.normal_vec(n * d);
        let mut out = vec![0.0; n * d];
        for r in 0..n {
            // solve Lᵀ y = z: row i of Lᵀ is column i of L, nonzero for j ≥ i
            for i in (0..d).rev() {
                let s: f64 = (i + 1..d).map(|j| l[j * d + i] * out[r * d + j]).sum();
                out[r * d + i] = (z[r * d + i] - s) / l[i * d + i];
            }
            for i in 0..d {
                out[r * d + i] += mu[i];
            }
        }
        Tensor::from_f64s(&out, &[n, d], self.mu().dtype())
    }
}

impl Module for Quadratic {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "quadratic", "dim": self.dim })
    }
}

impl EnergyModel for Quadratic {
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.dim,
            "Quadratic: x {:?} must be [B, {}]",
            x.shape(),
            self.dim
        );
        let l = p[1].mul_const(&tril_mask(self.dim, x.dtype()));
        x.sub(&p[0])
            .matmul(&l)
            .sum_squares(&[1], false)
            .mul_scalar(0.5)
    }

    /// ½‖(x − μ)L‖² per row, in closed form.
    fn energy(&self, x: &Tensor) -> Tensor {
        x.sub(self.mu())
            .matmul(&self.chol())
            .square()
            .sum_axes(&[1], false)
            .mul_scalar(0.5)
    }

    /// −A(x − μ), in closed form.
    fn score(&self, x: &Tensor) -> Tensor {
        let l = self.chol();
        x.sub(self.mu()).matmul(&l).matmul_t(&l, false, true).neg()
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let l = self.chol();
        let y = x.sub(self.mu()).matmul(&l);
        let e = y.square().sum_axes(&[1], false).mul_scalar(0.5);
        (e, y.matmul_t(&l, false, true).neg())
    }
}

/// A mixture of K diagonal Gaussians in d dimensions, E(x) = −log p(x) (normalised, so
/// log Z = 0), with its score in closed form.
///
/// Parameters: `logits [K]` (weights = softmax), `means [K, d]`, `log_std [K, d]`.
#[derive(Clone, Debug)]
pub struct GaussianMixture {
    params: Params,
    k: usize,
    dim: usize,
}

impl GaussianMixture {
    /// From positive weights (normalised here), means [K, d] and standard deviations [K, d];
    /// the dtype is that of `means`.
    pub fn new(weights: &[f64], means: &Tensor, stds: &Tensor) -> GaussianMixture {
        let k = weights.len();
        assert!(
            k > 0 && means.rank() == 2 && means.shape()[0] == k && stds.shape() == means.shape(),
            "GaussianMixture: {k} weights, means {:?} and stds {:?} must be [K], [K, d], [K, d]",
            means.shape(),
            stds.shape()
        );
        assert!(
            weights.iter().all(|&w| w > 0.0 && w.is_finite()),
            "GaussianMixture: weights {weights:?} must be positive"
        );
        assert!(
            stds.to_vec_f64().iter().all(|&s| s > 0.0 && s.is_finite()),
            "GaussianMixture: standard deviations must be positive"
        );
        let dtype = means.dtype();
        let total: f64 = weights.iter().sum();
        let logits: Vec<f64> = weights.iter().map(|w| (w / total).ln()).collect();
        let mut params = Params::new();
        params.push("logits", Tensor::from_f64s(&logits, &[k], dtype));
        params.push("means", means.clone());
        params.push("log_std", stds.cast(dtype).log());
        GaussianMixture {
            params,
            k,
            dim: means.shape()[1],
        }
    }

    /// Components with one standard deviation each (isotropic).
    pub fn isotropic(weights: &[f64], means: &Tensor, stds: &[f64]) -> GaussianMixture {
        let d = means.shape().get(1).copied().unwrap_or(0);
        assert_eq!(
            stds.len(),
            weights.len(),
            "GaussianMixture: one std per component"
        );
        let s: Vec<f64> = stds
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s, d))
            .collect();
        let stds = Tensor::from_f64s(&s, means.shape(), means.dtype());
        GaussianMixture::new(weights, means, &stds)
    }

    /// `k` equal-weight isotropic components of standard deviation `std` evenly spaced on a
    /// circle of radius `radius` in 2-D, the first at angle 0.
    pub fn ring(k: usize, radius: f64, std: f64, dtype: DType) -> GaussianMixture {
        let means: Vec<f64> = (0..k)
            .flat_map(|i| {
                let a = std::f64::consts::TAU * i as f64 / k as f64;
                [radius * a.cos(), radius * a.sin()]
            })
            .collect();
        GaussianMixture::isotropic(
            &vec![1.0; k],
            &Tensor::from_f64s(&means, &[k, 2], dtype),
            &vec![std; k],
        )
    }

    /// FFJORD's 8-Gaussians: centres 4(cos kπ/4, sin kπ/4)/√2, standard deviation 0.5/√2.
    pub fn eight_gaussians(dtype: DType) -> GaussianMixture {
        let s = std::f64::consts::SQRT_2;
        GaussianMixture::ring(8, 4.0 / s, 0.5 / s, dtype)
    }

    /// Number of components K.
    pub fn components(&self) -> usize {
        self.k
    }

    /// Data dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Mixture weights (softmax of the logits), in f64.
    pub fn weights(&self) -> Vec<f64> {
        let l = self.params.get(0).to_vec_f64();
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = l.iter().map(|v| (v - m).exp()).sum();
        l.iter().map(|v| (v - m).exp() / z).collect()
    }

    /// Means [K, d].
    pub fn means(&self) -> &Tensor {
        self.params.get(1)
    }

    /// Standard deviations [K, d].
    pub fn stds(&self) -> Tensor {
        self.params.get(2).exp()
    }

    /// log πₖ + log N(x; μₖ, σₖ²) for every row and component, [B, K], and x − μₖ [B, K, d]
    /// and 1/σₖ² [K, d] for the score.
    fn components_log_density(&self, x: &Tensor) -> (Tensor, Tensor, Tensor) {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.dim,
            "GaussianMixture: x {:?} must be [B, {}]",
            x.shape(),
            self.dim
        );
        let b = x.shape()[0];
        let (logits, means, log_std) = (self.params.get(0), self.params.get(1), self.params.get(2));
        let diff = x.reshape(&[b, 1, self.dim]).sub(means);
        let inv_var = log_std.mul_scalar(-2.0).exp();
        let quad = diff.square().mul(&inv_var).sum_axes(&[2], false);
        let log_pi = logits.sub(&logits.logsumexp(&[0], true));
        let comp = quad
            .mul_scalar(-0.5)
            .add(&log_pi.sub(&log_std.sum_axes(&[1], false)))
            .add_scalar(-0.5 * self.dim as f64 * LN_2PI);
        (comp, diff, inv_var)
    }

    /// log p(x) per row.
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        self.components_log_density(x).0.logsumexp(&[1], false)
    }

    /// Posterior component probabilities p(k | x), [B, K].
    pub fn responsibilities(&self, x: &Tensor) -> Tensor {
        let comp = self.components_log_density(x).0;
        comp.sub(&comp.logsumexp(&[1], true)).exp()
    }

    /// `n` exact draws: a component by its weight, then μₖ + σₖ ⊙ z.
    pub fn sample(&self, rng: &mut Rng, n: usize) -> Tensor {
        let d = self.dim;
        let w = self.weights();
        let means = self.means().to_vec_f64();
        let stds = self.stds().to_vec_f64();
        let u = rng.uniform_vec(n);
        let z = rng.normal_vec(n * d);
        let mut out = Vec::with_capacity(n * d);
        for r in 0..n {
            let mut acc = 0.0;
            let mut c = self.k - 1;
            for (j, wj) in w.iter().enumerate() {
                acc += wj;
                if u[r] < acc {
                    c = j;
                    break;
                }
            }
            for i in 0..d {
                out.push(means[c * d + i] + stds[c * d + i] * z[r * d + i]);
            }
        }
        Tensor::from_f64s(&out, &[n, d], self.means().dtype())
    }
}

impl Module for GaussianMixture {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "gaussian_mixture", "components": self.k, "dim": self.dim })
    }
}

impl EnergyModel for GaussianMixture {
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.dim,
            "GaussianMixture: x {:?} must be [B, {}]",
            x.shape(),
            self.dim
        );
        let b = x.shape()[0];
        let (logits, means, log_std) = (&p[0], &p[1], &p[2]);
        let diff = x.reshape(&[b, 1, self.dim]).sub(means);
        let z = diff.mul(&log_std.neg().exp());
        let comp = z
            .sum_squares(&[2], false)
            .mul_scalar(-0.5)
            .add(&logits.log_softmax(0).sub(&log_std.sum(&[1], false)))
            .add_scalar(-0.5 * self.dim as f64 * LN_2PI);
        comp.logsumexp(&[1], false).neg()
    }

    /// −log p(x), in closed form.
    fn energy(&self, x: &Tensor) -> Tensor {
        self.log_prob(x).neg()
    }

    /// ∇ₓ log p(x) = −Σₖ p(k|x) (x − μₖ)/σₖ², in closed form.
    fn score(&self, x: &Tensor) -> Tensor {
        self.energy_and_score(x).1
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (comp, diff, inv_var) = self.components_log_density(x);
        let lse = comp.logsumexp(&[1], true);
        let r = comp.sub(&lse).exp();
        let b = x.shape()[0];
        let s = diff
            .mul(&inv_var)
            .mul(&r.reshape(&[b, self.k, 1]))
            .sum_axes(&[1], false)
            .neg();
        (lse.reshape(&[b]).neg(), s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_autodiff::{GradOpts, Tape};

    fn autodiff_score(m: &dyn EnergyModel, x: &Tensor) -> Tensor {
        let tape = Tape::new();
        let p = m.params().constants(&tape);
        m.score_var(&tape.var(x.clone()), &p, GradOpts::default())
            .value()
            .clone()
    }

    fn on_tape_energy(m: &dyn EnergyModel, x: &Tensor) -> Tensor {
        let tape = Tape::new();
        let p = m.params().constants(&tape);
        m.energy_var(&tape.constant(x.clone()), &p).value().clone()
    }

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
    fn quadratic_closed_forms_agree_with_autodiff() {
        let mu = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], &[3]);
        // upper-triangle junk must be ignored
        let l = Tensor::from_vec(
            vec![1.5f64, 9.0, 9.0, 0.3, 0.8, 9.0, -0.2, 0.4, 1.1],
            &[3, 3],
        );
        let q = Quadratic::new(mu, l);
        let x = Rng::new(0).normal(&[7, 3], DType::F64);
        let s = q.score(&x);
        assert!(s.max_abs_diff(&autodiff_score(&q, &x)) < 1e-12);
        assert!(q.energy(&x).max_abs_diff(&on_tape_energy(&q, &x)) < 1e-12);
        // the score is −A(x − μ) with A from precision()
        let want = x.sub(q.mu()).matmul(&q.precision()).neg();
        assert!(s.max_abs_diff(&want) < 1e-12);
        // log Z = (3/2) log 2π − log(1.5·0.8·1.1)
        let lz = 1.5 * LN_2PI - (1.5f64 * 0.8 * 1.1).ln();
        assert!((q.log_normalizer() - lz).abs() < 1e-12);
    }

    #[test]
    fn quadratic_density_normalises_and_samples_have_its_moments() {
        // 2-D: integrate exp(log p) on a grid
        let a = Tensor::from_vec(vec![2.0f64, 0.6, 0.6, 1.0], &[2, 2]);
        let q = Quadratic::from_precision(Tensor::from_vec(vec![0.3f64, -0.2], &[2]), &a);
        let (n, lo, hi) = (400usize, -8.0, 8.0);
        let h = (hi - lo) / n as f64;
        let pts: Vec<f64> = (0..n * n)
            .flat_map(|k| {
                [
                    lo + (k / n) as f64 * h + h / 2.0,
                    lo + (k % n) as f64 * h + h / 2.0,
                ]
            })
            .collect();
        let grid = Tensor::from_vec(pts, &[n * n, 2]);
        let mass = q.log_prob(&grid).exp().sum_all().item() * h * h;
        assert!((mass - 1.0).abs() < 1e-6, "mass {mass}");
        // covariance A⁻¹ = [[1, −0.6], [−0.6, 2]] / 1.64
        let m = 100_000;
        let xs = q.sample(&mut Rng::new(4), m).to_vec_f64();
        let mean0 = xs.iter().step_by(2).sum::<f64>() / m as f64;
        let var1 = xs
            .iter()
            .skip(1)
            .step_by(2)
            .map(|v| (v + 0.2).powi(2))
            .sum::<f64>()
            / m as f64;
        let cov01 = xs
            .chunks(2)
            .map(|r| (r[0] - 0.3) * (r[1] + 0.2))
            .sum::<f64>()
            / m as f64;
        // standard errors: sd(x0)/√m = 0.78/316 = 0.0025; var(x1) ≈ 1.22, se = 1.22·√(2/m) = 0.0055;
        // cov se ≈ √(Σ00Σ11 + Σ01²)/√m = 0.0034
        assert!((mean0 - 0.3).abs() < 4.0 * 0.0025, "mean {mean0}");
        assert!((var1 - 2.0 / 1.64).abs() < 4.0 * 0.0055, "var {var1}");
        assert!((cov01 + 0.6 / 1.64).abs() < 4.0 * 0.0034, "cov {cov01}");
    }

    #[test]
    fn mixture_closed_forms_agree_with_autodiff() {
        let means = Tensor::from_vec(vec![0.0f64, 0.0, 2.0, -1.0, -3.0, 1.0], &[3, 2]);
        let stds = Tensor::from_vec(vec![1.0f64, 0.5, 0.7, 0.7, 2.0, 0.3], &[3, 2]);
        let g = GaussianMixture::new(&[0.2, 0.5, 0.3], &means, &stds);
        let x = Rng::new(1).normal(&[9, 2], DType::F64).mul_scalar(2.0);
        assert!(g.score(&x).max_abs_diff(&autodiff_score(&g, &x)) < 1e-12);
        assert!(g.energy(&x).max_abs_diff(&on_tape_energy(&g, &x)) < 1e-12);
        let w = g.weights();
        assert!((w[1] - 0.5).abs() < 1e-15);
        let r = g.responsibilities(&x).sum_axes(&[1], false);
        assert!(r.max_abs_diff(&r.ones_like()) < 1e-12);
    }

    #[test]
    fn mixture_normalises_and_samples_by_weight() {
        let g = GaussianMixture::eight_gaussians(DType::F64);
        let (n, lo, hi) = (500usize, -6.0, 6.0);
        let h = (hi - lo) / n as f64;
        let pts: Vec<f64> = (0..n * n)
            .flat_map(|k| {
                [
                    lo + (k / n) as f64 * h + h / 2.0,
                    lo + (k % n) as f64 * h + h / 2.0,
                ]
            })
            .collect();
        let mass = g
            .log_prob(&Tensor::from_vec(pts, &[n * n, 2]))
            .exp()
            .sum_all()
            .item()
            * h
            * h;
        assert!((mass - 1.0).abs() < 1e-6, "mass {mass}");
        let m = 80_000;
        let xs = g.sample(&mut Rng::new(2), m);
        // E‖x‖² = r² + 2σ² = 8 + 0.25; Var‖x‖² ≈ 4r²σ² + 8σ⁴ ≈ 4.1, se = √(4.1/m) = 0.0072
        let r2 = xs.square().sum_axes(&[1], false).mean_all().item();
        assert!((r2 - 8.25).abs() < 4.0 * 0.0072, "E|x|² {r2}");
        // each component gets 1/8 of the draws: se √(p(1−p)/m) = 0.00117
        let resp = g.responsibilities(&xs).mean_axes(&[0], false).to_vec_f64();
        for p in resp {
            assert!((p - 0.125).abs() < 4.0 * 0.00117, "share {p}");
        }
    }
}
