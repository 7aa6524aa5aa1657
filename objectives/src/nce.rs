//! Noise contrastive estimation with a learnable normaliser.

use crate::{energy_model, names, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{EnergyModel, Model, Params};
use ebm_samplers::analytic::cholesky;

/// The noise distribution q of NCE: a Gaussian N(μ, LLᵀ) with a closed-form log-density.
#[derive(Clone, Debug)]
pub struct NoiseDistribution {
    mean: Vec<f64>,
    /// Lower-triangular Cholesky factor of the covariance, row-major d×d.
    chol: Vec<f64>,
    dim: usize,
}

impl NoiseDistribution {
    /// N(0, σ²I) in d dimensions.
    pub fn isotropic(dim: usize, std: f64) -> NoiseDistribution {
        let mut chol = vec![0.0; dim * dim];
        for i in 0..dim {
            chol[i * dim + i] = std;
        }
        NoiseDistribution {
            mean: vec![0.0; dim],
            chol,
            dim,
        }
    }

    /// The Gaussian with the data's mean and covariance (inflated by `inflate`² so the noise
    /// covers the data's tails), the usual NCE choice when no better q is known.
    pub fn fitted(data: &Tensor, inflate: f64) -> NoiseDistribution {
        let n = data.shape()[0];
        let d = data.numel() / n;
        let x = data.reshape(&[n, d]).to_vec_f64();
        let mut mean = vec![0.0; d];
        for r in 0..n {
            for j in 0..d {
                mean[j] += x[r * d + j] / n as f64;
            }
        }
        let mut cov = vec![0.0; d * d];
        for r in 0..n {
            for i in 0..d {
                let di = x[r * d + i] - mean[i];
                for j in 0..d {
                    cov[i * d + j] += di * (x[r * d + j] - mean[j]) / (n as f64 - 1.0).max(1.0);
                }
            }
        }
        for v in cov.iter_mut() {
            *v *= inflate * inflate;
        }
        for i in 0..d {
            // keep the factorisation defined for degenerate data at any scale: a shift relative
            // to the variance stays above the rounding of collinear columns of variance 10¹⁸
            cov[i * d + i] += 1e-9 * cov[i * d + i].max(1.0);
        }
        let chol = cholesky(&cov, d)
            .expect("a covariance with a positive diagonal shift is positive definite");
        NoiseDistribution { mean, chol, dim: d }
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The per-dimension standard deviations when the covariance is diagonal (L is diagonal):
    /// then sampling and the log-density are element-wise tensor ops instead of O(d²) loops.
    fn diagonal_std(&self) -> Option<Vec<f64>> {
        let d = self.dim;
        let off_diag_zero = (0..d).all(|i| (0..i).all(|j| self.chol[i * d + j] == 0.0));
        off_diag_zero.then(|| (0..d).map(|i| self.chol[i * d + i]).collect())
    }

    /// `n` samples μ + Lz.
    pub fn sample(&self, n: usize, rng: &mut Rng, dtype: DType) -> Tensor {
        let d = self.dim;
        if let Some(std) = self.diagonal_std() {
            let s = Tensor::from_f64s(&std, &[d], dtype);
            let m = Tensor::from_f64s(&self.mean, &[d], dtype);
            return rng.normal(&[n, d], dtype).mul(&s).add(&m);
        }
        let z = rng.normal_vec(n * d);
        let mut out = vec![0.0; n * d];
        for r in 0..n {
            for i in 0..d {
                let mut v = self.mean[i];
                for j in 0..=i {
                    v += self.chol[i * d + j] * z[r * d + j];
                }
                out[r * d + i] = v;
            }
        }
        Tensor::from_f64s(&out, &[n, d], dtype)
    }

    /// log q(x) per row: −½‖L⁻¹(x − μ)‖² − Σ log Lᵢᵢ − (d/2) log 2π.
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        let n = x.shape()[0];
        let d = self.dim;
        let log_det: f64 = (0..d).map(|i| self.chol[i * d + i].ln()).sum();
        let c = -log_det - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        if let Some(std) = self.diagonal_std() {
            let inv = Tensor::from_f64s(
                &std.iter().map(|s| 1.0 / s).collect::<Vec<_>>(),
                &[d],
                x.dtype(),
            );
            let m = Tensor::from_f64s(&self.mean, &[d], x.dtype());
            return x
                .reshape(&[n, d])
                .sub(&m)
                .mul(&inv)
                .square()
                .sum_axes(&[1], false)
                .mul_scalar(-0.5)
                .add_scalar(c);
        }
        let xv = x.reshape(&[n, d]).to_vec_f64();
        let mut out = Vec::with_capacity(n);
        let mut w = vec![0.0; d];
        for r in 0..n {
            // forward substitution L w = x − μ
            for i in 0..d {
                let row = &self.chol[i * d..i * d + i];
                let v = xv[r * d + i]
                    - self.mean[i]
                    - row.iter().zip(&w[..i]).map(|(l, w)| l * w).sum::<f64>();
                w[i] = v / self.chol[i * d + i];
            }
            out.push(c - 0.5 * w.iter().map(|v| v * v).sum::<f64>());
        }
        Tensor::from_f64s(&out, &[n], x.dtype())
    }
}

/// Noise contrastive estimation (Gutmann & Hyvärinen 2010, "Noise-contrastive estimation: a
/// new estimation principle for unnormalized statistical models").
///
/// The model log-density is log p_θ(x) = −E(x) − log Z with log Z a learnable scalar
/// (the parameter `log_z`; c = −log Z in the paper's notation). With ν noise samples per data
/// point and G(u) = log p_θ(u) − log q(u) − log ν, NCE is logistic regression of data against
/// noise: J = −mean_data log σ(G(x)) − ν·mean_noise log σ(−G(y)). Its minimiser is the true
/// density when the family contains it, normaliser included.
#[derive(Clone, Debug)]
pub struct Nce {
    /// The noise distribution q.
    pub noise: NoiseDistribution,
    /// Noise samples per data sample (ν).
    pub nu: f64,
    params: Params,
}

impl Nce {
    /// NCE with noise `noise`, ratio ν, and log Z initialised to `log_z0`.
    pub fn new(noise: NoiseDistribution, nu: f64, log_z0: f64, dtype: DType) -> Nce {
        assert!(nu > 0.0, "NCE: the noise ratio must be positive, got {nu}");
        let mut params = Params::new();
        params.push("log_z", Tensor::scalar(log_z0, dtype));
        Nce { noise, nu, params }
    }

    /// The current estimate of log Z.
    pub fn log_z(&self) -> f64 {
        self.params.get(0).item()
    }

    /// The loss for given noise samples `y` (ν·B rows, rounded).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_with_noise(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        q: &[Var],
        x: &Tensor,
        y: &Tensor,
    ) -> Var {
        let log_z = &q[0];
        let log_nu = self.nu.ln();
        let (e_x, e_y) = crate::energies_of_both(tape, model, p, x, y);
        let g = |e: Var, u: &Tensor| {
            let lq = self.noise.log_prob(u).cast(u.dtype());
            e.neg().sub(log_z).add_const(&lq.neg()).add_scalar(-log_nu)
        };
        let data_term = g(e_x, x).log_sigmoid().mean_all();
        let noise_term = g(e_y, y).neg().log_sigmoid().mean_all().mul_scalar(self.nu);
        data_term.add(&noise_term).neg()
    }
}

impl Objective for Nce {
    fn name(&self) -> &'static str {
        names::NCE
    }

    fn params(&self) -> Option<&Params> {
        Some(&self.params)
    }

    fn params_mut(&mut self) -> Option<&mut Params> {
        Some(&mut self.params)
    }

    /// Each term is a mean over the block's data rows or its noise rows; a block of r rows
    /// draws round(νr) noise rows, so with a whole ν the block losses weighted by r/B add up to
    /// the whole batch's (in distribution: each block draws from its own stream).
    fn row_blocks_allowed(&self) -> bool {
        self.nu.fract() == 0.0
    }

    fn block_worker(&self) -> Option<Box<dyn Objective + Send>> {
        Some(Box::new(self.clone()))
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let model = energy_model(model, self.name());
        let m = ((x.shape()[0] as f64) * self.nu).round().max(1.0) as usize;
        let y = self.noise.sample(m, rng, x.dtype());
        self.loss_with_noise(tape, model, p, q, x, &y)
    }
}
