//! Targets with known answers that defeat naive samplers: an ill-conditioned correlated
//! Gaussian and Neal's funnel. The NUTS, ChEES and benchmark runs check themselves on these.

use crate::analytic::Gaussian;
use crate::target::Target;
use ebm_core::{DType, Rng, Tensor};

/// A correlated Gaussian N(m, Σ) on ℝᵈ with condition number κ: Σ = Q diag(λ) Qᵀ with
/// eigenvalues λᵢ = κ^{i/(d−1)} spaced evenly in log from 1 to κ, Q a random rotation (Gram–
/// Schmidt of a Gaussian matrix drawn from `seed`) and mᵢ = (−1)ⁱ.
#[derive(Clone, Debug)]
pub struct IllConditioned {
    /// The density (a [`Target`]).
    pub gaussian: Gaussian,
    /// The eigenvalues λ of Σ, ascending.
    pub eigenvalues: Vec<f64>,
}

impl IllConditioned {
    /// The d-dimensional Gaussian of condition number `kappa`, rotated by `seed`.
    pub fn new(d: usize, kappa: f64, seed: u64) -> IllConditioned {
        assert!(d >= 2 && kappa >= 1.0, "IllConditioned: need d ≥ 2, κ ≥ 1");
        let eigenvalues: Vec<f64> = (0..d)
            .map(|i| kappa.powf(i as f64 / (d - 1) as f64))
            .collect();
        // rows of q: an orthonormal basis (modified Gram–Schmidt on Gaussian rows)
        let mut q = Rng::new(seed).normal_vec(d * d);
        for i in 0..d {
            for j in 0..i {
                let dot: f64 = (0..d).map(|k| q[i * d + k] * q[j * d + k]).sum();
                for k in 0..d {
                    q[i * d + k] -= dot * q[j * d + k];
                }
            }
            let norm = (0..d).map(|k| q[i * d + k].powi(2)).sum::<f64>().sqrt();
            for k in 0..d {
                q[i * d + k] /= norm;
            }
        }
        // Σ = Σₖ λₖ qₖ qₖᵀ
        let mut cov = vec![0.0; d * d];
        for (k, lam) in eigenvalues.iter().enumerate() {
            for i in 0..d {
                for j in 0..d {
                    cov[i * d + j] += lam * q[k * d + i] * q[k * d + j];
                }
            }
        }
        // exact symmetry, whatever the rounding
        for i in 0..d {
            for j in 0..i {
                let avg = 0.5 * (cov[i * d + j] + cov[j * d + i]);
                cov[i * d + j] = avg;
                cov[j * d + i] = avg;
            }
        }
        let mean: Vec<f64> = (0..d)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        IllConditioned {
            gaussian: Gaussian::new(&mean, &cov),
            eigenvalues,
        }
    }
}

/// Neal's funnel (Neal 2003, "Slice sampling", §8): v ~ N(0, σ²) and xᵢ | v ~ N(0, eᵛ) for
/// i = 1 … d−1, with the point laid out as (v, x₁, …, x_{d−1}). Its neck (v ≪ 0) has scales
/// e^{v/2} many orders of magnitude below those of its mouth, which no single step size fits.
///
/// E(v, x) = v²/(2σ²) + Σᵢ (xᵢ² e^{−v}/2 + v/2) (normalised up to a constant), so
/// s_v = −v/σ² + ½ Σᵢ xᵢ² e^{−v} − (d−1)/2 and s_{xᵢ} = −xᵢ e^{−v}.
#[derive(Clone, Debug)]
pub struct Funnel {
    /// Dimension d (v and d − 1 coordinates x).
    pub dim: usize,
    /// The scale σ of v (Neal: 3).
    pub scale: f64,
}

impl Funnel {
    /// Neal's funnel in `dim` dimensions with σ = 3.
    pub fn new(dim: usize) -> Funnel {
        assert!(dim >= 2, "Funnel: need d ≥ 2, got {dim}");
        Funnel { dim, scale: 3.0 }
    }

    /// `n` exact draws.
    pub fn sample(&self, n: usize, rng: &mut Rng, dtype: DType) -> Tensor {
        let z = rng.normal_vec(n * self.dim);
        let mut out = vec![0.0; n * self.dim];
        for (row, zr) in out.chunks_exact_mut(self.dim).zip(z.chunks_exact(self.dim)) {
            let v = self.scale * zr[0];
            row[0] = v;
            for i in 1..self.dim {
                row[i] = (0.5 * v).exp() * zr[i];
            }
        }
        Tensor::from_f64s(&out, &[n, self.dim], dtype)
    }

    fn rows(&self, x: &Tensor) -> Vec<f64> {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.dim,
            "Funnel of dimension {}: input {:?} is not [B, {}]",
            self.dim,
            x.shape(),
            self.dim
        );
        x.to_vec_f64()
    }

    /// Energy and score of one row.
    fn row(&self, r: &[f64], score: Option<&mut [f64]>) -> f64 {
        let v = r[0];
        let inv = (-v).exp();
        let sq: f64 = r[1..].iter().map(|x| x * x).sum();
        let k = (self.dim - 1) as f64;
        let s2 = self.scale * self.scale;
        if let Some(s) = score {
            s[0] = -v / s2 + 0.5 * sq * inv - 0.5 * k;
            for (si, xi) in s[1..].iter_mut().zip(&r[1..]) {
                *si = -xi * inv;
            }
        }
        v * v / (2.0 * s2) + 0.5 * sq * inv + 0.5 * k * v
    }
}

impl Target for Funnel {
    fn energy(&self, x: &Tensor) -> Tensor {
        let v = self.rows(x);
        let e: Vec<f64> = v
            .chunks_exact(self.dim)
            .map(|r| self.row(r, None))
            .collect();
        Tensor::from_f64s(&e, &[e.len()], x.dtype())
    }

    fn score(&self, x: &Tensor) -> Tensor {
        self.energy_and_score(x).1
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let v = self.rows(x);
        let mut s = vec![0.0; v.len()];
        let e: Vec<f64> = v
            .chunks_exact(self.dim)
            .zip(s.chunks_exact_mut(self.dim))
            .map(|(r, sr)| self.row(r, Some(sr)))
            .collect();
        (
            Tensor::from_f64s(&e, &[e.len()], x.dtype()),
            Tensor::from_f64s(&s, x.shape(), x.dtype()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ill_conditioned_covariance_has_the_stated_spectrum() {
        let t = IllConditioned::new(6, 100.0, 3);
        let cov = t.gaussian.cov();
        // tr Σ = Σλ and tr Σ⁻¹ = Σ 1/λ pin the spectrum's first moments
        let tr: f64 = (0..6).map(|i| cov[i * 6 + i]).sum();
        let want: f64 = t.eigenvalues.iter().sum();
        assert!((tr - want).abs() < 1e-9 * want, "{tr} vs {want}");
        let tri = t.gaussian.trace_precision();
        let want_i: f64 = t.eigenvalues.iter().map(|l| 1.0 / l).sum();
        assert!((tri - want_i).abs() < 1e-9 * want_i, "{tri} vs {want_i}");
        assert!((t.eigenvalues[5] / t.eigenvalues[0] - 100.0).abs() < 1e-9);
    }

    #[test]
    fn funnel_score_matches_finite_differences() {
        let f = Funnel::new(4);
        let x = Tensor::from_f64s(
            &[0.7, -0.3, 1.2, 0.4, -1.5, 0.2, -0.1, 2.0],
            &[2, 4],
            DType::F64,
        );
        let (e, s) = f.energy_and_score(&x);
        let (xv, sv) = (x.to_vec_f64(), s.to_vec_f64());
        let h = 1e-6;
        for k in 0..8 {
            let mut up = xv.clone();
            let mut dn = xv.clone();
            up[k] += h;
            dn[k] -= h;
            let eu = f
                .energy(&Tensor::from_f64s(&up, &[2, 4], DType::F64))
                .to_vec_f64();
            let ed = f
                .energy(&Tensor::from_f64s(&dn, &[2, 4], DType::F64))
                .to_vec_f64();
            let fd = -(eu[k / 4] - ed[k / 4]) / (2.0 * h);
            assert!((fd - sv[k]).abs() < 1e-6, "score[{k}] {} vs fd {fd}", sv[k]);
        }
        assert_eq!(e.shape(), &[2]);
    }
}
