//! An energy with a closed-form density and score: the quadratic (Gaussian) energy with a
//! learnable mean and Cholesky factor, the model of the objectives' closed-form tests. (The
//! analytic densities that only need sampling and scoring, Gaussians and Gaussian mixtures, are
//! `ebm_samplers::analytic`'s.)

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
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Tensor {
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
        // A = [[2, 0.6], [0.6, 1]] = LLᵀ with L = [[√2, 0], [0.6/√2, √0.82]]
        let r2 = 2f64.sqrt();
        let l = Tensor::from_vec(vec![r2, 0.0, 0.6 / r2, 0.82f64.sqrt()], &[2, 2]);
        let q = Quadratic::new(Tensor::from_vec(vec![0.3f64, -0.2], &[2]), l);
        let a = q.precision().to_vec_f64();
        for (got, want) in a.iter().zip([2.0, 0.6, 0.6, 1.0]) {
            assert!((got - want).abs() < 1e-14, "precision {a:?}");
        }
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
        let xs = q.sample(m, &mut Rng::new(4)).to_vec_f64();
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
}
