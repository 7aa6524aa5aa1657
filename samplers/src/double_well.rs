//! The separable double well E(x) = h Σᵢ (xᵢ² − 1)²: two modes at ±1 in every coordinate
//! (2ᵈ in all) with a barrier of height h between them; torchebm's benchmark runs Langevin
//! on it (1024 chains × 128 dimensions). Its score is s(x) = −4h x(x² − 1), element by
//! element, and each coordinate's marginal p(xᵢ) ∝ exp(−h(xᵢ² − 1)²) is one-dimensional, so
//! moments are known by quadrature.

use crate::target::Target;
use ebm_core::ops::fastmath::dispatch;
use ebm_core::{CpuStorage, DType, Device, HostVec, Tensor};

/// E(x) = h Σᵢ (xᵢ² − 1)² on rows of `dim` coordinates.
#[derive(Clone, Debug)]
pub struct DoubleWell {
    /// Dimension d.
    pub dim: usize,
    /// Barrier height h (E at 0 minus E at a mode, per coordinate).
    pub barrier: f64,
}

impl DoubleWell {
    /// The double well in `dim` dimensions with barrier height `barrier` (> 0).
    pub fn new(dim: usize, barrier: f64) -> DoubleWell {
        assert!(dim >= 1, "DoubleWell: need d ≥ 1");
        assert!(
            barrier > 0.0 && barrier.is_finite(),
            "DoubleWell: barrier height {barrier} must be positive"
        );
        DoubleWell { dim, barrier }
    }

    /// E[xᵢ²] under one coordinate's marginal, by the midpoint rule on [−4, 4] (the density
    /// is below e⁻²²⁵ʰ outside).
    pub fn second_moment(&self) -> f64 {
        let (n, lo, hi) = (200_000, -4.0f64, 4.0f64);
        let dx = (hi - lo) / n as f64;
        let (mut z, mut m2) = (0.0, 0.0);
        for k in 0..n {
            let x = lo + (k as f64 + 0.5) * dx;
            let w = (-self.barrier * (x * x - 1.0).powi(2)).exp();
            z += w;
            m2 += w * x * x;
        }
        m2 / z
    }

    fn check(&self, x: &Tensor) {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.dim,
            "DoubleWell of dimension {}: input {:?} is not [B, {}]",
            self.dim,
            x.shape(),
            self.dim
        );
    }

    /// Energy per row and score in one pass over a host tensor (compiled for the CPU's widest
    /// vectors, into a pooled buffer: the pass is memory-bound).
    fn host<T: HostVec>(&self, x: &[T], want_energy: bool) -> (Vec<T>, Vec<T>) {
        let (h, minus_four_h) = (T::of(self.barrier), T::of(-4.0 * self.barrier));
        let mut s = ebm_core::pool::take::<T>(x.len());
        dispatch(
            #[inline(always)]
            || {
                for (s, &x) in s.iter_mut().zip(x) {
                    *s = minus_four_h * x * (x * x - T::one());
                }
            },
        );
        let e = if want_energy {
            x.chunks_exact(self.dim)
                .map(|r| {
                    h * r
                        .iter()
                        .map(|&x| (x * x - T::one()) * (x * x - T::one()))
                        .fold(T::zero(), |a, b| a + b)
                })
                .collect()
        } else {
            Vec::new()
        };
        (e, s)
    }

    /// (E, s), E only when `want_energy`: one host pass on the CPU, tensor ops elsewhere.
    fn eval(&self, x: &Tensor, want_energy: bool) -> (Option<Tensor>, Tensor) {
        self.check(x);
        let n = x.shape()[0];
        if x.device() == Device::Cpu {
            macro_rules! run {
                ($v:expr) => {{
                    let (e, s) = self.host($v, want_energy);
                    (
                        want_energy.then(|| Tensor::from_vec(e, &[n])),
                        Tensor::from_vec(s, x.shape()),
                    )
                }};
            }
            return match x.cpu() {
                CpuStorage::F32(v) => run!(v.as_slice()),
                CpuStorage::F64(v) => run!(v.as_slice()),
            };
        }
        self.eval_ops(x, want_energy)
    }

    /// (E, s) by tensor ops, for tensors off the CPU.
    fn eval_ops(&self, x: &Tensor, want_energy: bool) -> (Option<Tensor>, Tensor) {
        let u = x.square().add_scalar(-1.0);
        let s = x.mul(&u).mul_scalar(-4.0 * self.barrier);
        let e = want_energy.then(|| u.square().sum_axes(&[1], false).mul_scalar(self.barrier));
        (e, s)
    }

    /// The energies of `x` in f64, for tests.
    pub fn energy_f64(&self, x: &Tensor) -> Vec<f64> {
        self.energy(&x.cast(DType::F64)).to_vec_f64()
    }
}

impl Target for DoubleWell {
    fn energy(&self, x: &Tensor) -> Tensor {
        self.eval(x, true).0.expect("asked for the energy")
    }

    fn score(&self, x: &Tensor) -> Tensor {
        self.eval(x, false).1
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (e, s) = self.eval(x, true);
        (e.expect("asked for the energy"), s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mala;
    use ebm_core::Rng;

    #[test]
    fn score_is_minus_the_energy_gradient_and_dtypes_agree() {
        let dw = DoubleWell::new(3, 2.0);
        let xv = [0.7, -0.3, 1.2, 0.0, -1.5, 1.0];
        let x = Tensor::from_f64s(&xv, &[2, 3], DType::F64);
        let (e, s) = dw.energy_and_score(&x);
        let sv = s.to_vec_f64();
        let h = 1e-6;
        for k in 0..6 {
            let (mut up, mut dn) = (xv.to_vec(), xv.to_vec());
            up[k] += h;
            dn[k] -= h;
            let eu = dw.energy_f64(&Tensor::from_f64s(&up, &[2, 3], DType::F64));
            let ed = dw.energy_f64(&Tensor::from_f64s(&dn, &[2, 3], DType::F64));
            let fd = -(eu[k / 3] - ed[k / 3]) / (2.0 * h);
            assert!((fd - sv[k]).abs() < 1e-6, "score[{k}] {} vs fd {fd}", sv[k]);
        }
        // E at the modes and the barrier: 0 at (±1, ±1, ±1), h per coordinate at 0
        let ev = e.to_vec_f64();
        let want0 =
            2.0 * ((0.49f64 - 1.0).powi(2) + (0.09f64 - 1.0).powi(2) + (1.44f64 - 1.0).powi(2));
        assert!((ev[0] - want0).abs() < 1e-12, "{} vs {want0}", ev[0]);
        assert!((ev[1] - 2.0 * (1.0 + 1.5625)).abs() < 1e-12);
        // f32 agrees with f64, and the score-only path with the joint one
        let (e32, s32) = dw.energy_and_score(&x.cast(DType::F32));
        assert_eq!(e32.dtype(), DType::F32);
        assert!(e32.cast(DType::F64).max_abs_diff(&e) < 1e-5);
        assert!(s32.cast(DType::F64).max_abs_diff(&s) < 1e-5);
        assert_eq!(dw.score(&x).to_vec_f64(), sv);
    }

    #[test]
    fn tensor_ops_agree_with_the_host_pass() {
        let dw = DoubleWell::new(5, 1.5);
        let x = Rng::new(3).normal(&[7, 5], DType::F64).mul_scalar(1.5);
        let (e, s) = dw.eval(&x, true);
        let (e2, s2) = dw.eval_ops(&x, true);
        assert!(s2.max_abs_diff(&s) < 1e-12);
        assert!(e2.unwrap().max_abs_diff(&e.unwrap()) < 1e-12);
    }

    #[test]
    fn mala_recovers_the_marginal_second_moment() {
        // 2000 independent chains × 4 coordinates; at h = 1 a coordinate crosses the barrier
        // often enough that 600 steps from N(0, I) forget the start
        let dw = DoubleWell::new(4, 1.0);
        let want = dw.second_moment();
        let mut rng = Rng::new(5);
        let x0 = rng.normal(&[2000, 4], DType::F64);
        let out = Mala::new(0.5, 200, 600).run(&dw, x0, &mut rng);
        // the final states of independent chains are iid draws: the SE of the mean of x² is
        // √(var/n) over the 2000 rows' per-row means
        let x = out.x.to_vec_f64();
        let rows: Vec<f64> = x
            .chunks_exact(4)
            .map(|r| r.iter().map(|v| v * v).sum::<f64>() / 4.0)
            .collect();
        let n = rows.len() as f64;
        let mean = rows.iter().sum::<f64>() / n;
        let var = rows.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se = (var / n).sqrt();
        assert!(
            (mean - want).abs() < 4.0 * se,
            "E[x²] {mean} vs {want} (4 SE = {})",
            4.0 * se
        );
        // and a chain stuck in its start's wells would show it: about half the coordinates
        // sit in each well
        let pos = x.iter().filter(|&&v| v > 0.0).count() as f64 / x.len() as f64;
        assert!(
            (pos - 0.5).abs() < 4.0 * (0.25 / x.len() as f64).sqrt(),
            "{pos}"
        );
    }
}
