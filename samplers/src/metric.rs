//! The mass matrix of Hamiltonian samplers and its estimation during warm-up.
//!
//! H(x, p) = E(x) + ½ pᵀM⁻¹p with p ~ N(0, M): the velocity is ẋ = M⁻¹p, so M⁻¹ ≈ Cov(x)
//! makes the target look isotropic to the integrator (Neal 2011, §4.1). Stan estimates M⁻¹ from
//! the draws of doubling warm-up windows ([`WarmupWindows`]) and shrinks the estimate toward
//! 10⁻³·I ([`Welford::metric`]).

use crate::analytic::cholesky;
use ebm_core::Rng;

/// Which mass matrix a Hamiltonian sampler uses and adapts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricKind {
    /// M = I, never adapted.
    Unit,
    /// Diagonal M⁻¹ = the draws' variances (Stan's default).
    #[default]
    Diagonal,
    /// Dense M⁻¹ = the draws' covariance.
    Dense,
}

/// An inverse mass matrix M⁻¹, with what the integrator needs of it.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// Diagonal M⁻¹.
    Diagonal(Vec<f64>),
    /// Dense M⁻¹ (row-major) and its lower Cholesky factor L, M⁻¹ = LLᵀ.
    Dense {
        /// M⁻¹, row-major.
        inv: Vec<f64>,
        /// Its lower Cholesky factor L.
        chol: Vec<f64>,
    },
}

impl Metric {
    /// M = I in `d` dimensions.
    pub fn unit(d: usize) -> Metric {
        Metric::Diagonal(vec![1.0; d])
    }

    /// A dense metric from M⁻¹; panics unless it is positive definite.
    pub fn dense(inv: Vec<f64>) -> Metric {
        let d = (inv.len() as f64).sqrt() as usize;
        let chol = cholesky(&inv, d)
            .unwrap_or_else(|| panic!("Metric::dense: M⁻¹ is not positive definite"));
        Metric::Dense { inv, chol }
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        match self {
            Metric::Diagonal(v) => v.len(),
            Metric::Dense { chol, .. } => (chol.len() as f64).sqrt() as usize,
        }
    }

    /// The velocity M⁻¹p.
    pub fn velocity(&self, p: &[f64], out: &mut [f64]) {
        match self {
            Metric::Diagonal(m) => {
                for ((o, mi), pi) in out.iter_mut().zip(m).zip(p) {
                    *o = mi * pi;
                }
            }
            Metric::Dense { inv, .. } => {
                let d = p.len();
                for (i, o) in out.iter_mut().enumerate() {
                    *o = inv[i * d..(i + 1) * d]
                        .iter()
                        .zip(p)
                        .map(|(a, b)| a * b)
                        .sum();
                }
            }
        }
    }

    /// The kinetic energy ½ pᵀM⁻¹p.
    pub fn kinetic(&self, p: &[f64]) -> f64 {
        match self {
            Metric::Diagonal(m) => 0.5 * m.iter().zip(p).map(|(mi, pi)| mi * pi * pi).sum::<f64>(),
            Metric::Dense { .. } => {
                let mut v = vec![0.0; p.len()];
                self.velocity(p, &mut v);
                0.5 * v.iter().zip(p).map(|(a, b)| a * b).sum::<f64>()
            }
        }
    }

    /// (M⁻¹a)·b: the U-turn criterion's projection of a momentum on a momentum sum.
    pub fn dot_velocity(&self, a: &[f64], b: &[f64]) -> f64 {
        match self {
            Metric::Diagonal(m) => m
                .iter()
                .zip(a)
                .zip(b)
                .map(|((mi, ai), bi)| mi * ai * bi)
                .sum(),
            Metric::Dense { .. } => {
                let mut v = vec![0.0; a.len()];
                self.velocity(a, &mut v);
                v.iter().zip(b).map(|(x, y)| x * y).sum()
            }
        }
    }

    /// A momentum p ~ N(0, M): z/√m for a diagonal M⁻¹ = m, L⁻ᵀz for M⁻¹ = LLᵀ (then
    /// Cov p = L⁻ᵀL⁻¹ = (LLᵀ)⁻¹ = M).
    pub fn sample_momentum(&self, rng: &mut Rng, out: &mut [f64]) {
        let z = rng.normal_vec(out.len());
        match self {
            Metric::Diagonal(m) => {
                for ((o, zi), mi) in out.iter_mut().zip(&z).zip(m) {
                    *o = zi / mi.sqrt();
                }
            }
            Metric::Dense { chol, .. } => {
                // back substitution Lᵀ p = z
                let d = out.len();
                for i in (0..d).rev() {
                    let s: f64 = (i + 1..d).map(|k| chol[k * d + i] * out[k]).sum();
                    out[i] = (z[i] - s) / chol[i * d + i];
                }
            }
        }
    }
}

/// Running mean and (co)variance of draws (Welford 1962), for the metric of one window.
#[derive(Clone, Debug)]
pub struct Welford {
    dense: bool,
    n: usize,
    mean: Vec<f64>,
    /// Σ (x − x̄)² per coordinate, or the full d×d co-moment when dense.
    m2: Vec<f64>,
}

impl Welford {
    /// An empty estimator in `d` dimensions.
    pub fn new(d: usize, dense: bool) -> Welford {
        Welford {
            dense,
            n: 0,
            mean: vec![0.0; d],
            m2: vec![0.0; if dense { d * d } else { d }],
        }
    }

    /// Adds one draw.
    pub fn add(&mut self, x: &[f64]) {
        self.n += 1;
        let d = self.mean.len();
        let delta: Vec<f64> = x.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        for (m, dl) in self.mean.iter_mut().zip(&delta) {
            *m += dl / self.n as f64;
        }
        if self.dense {
            for (row, di) in self.m2.chunks_exact_mut(d).zip(&delta) {
                for ((m2, xj), mj) in row.iter_mut().zip(x).zip(&self.mean) {
                    *m2 += di * (xj - mj);
                }
            }
        } else {
            for ((m2, dl), (xi, mi)) in self.m2.iter_mut().zip(&delta).zip(x.iter().zip(&self.mean))
            {
                *m2 += dl * (xi - mi);
            }
        }
    }

    /// Draws added.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Stan's regularised estimate: M⁻¹ = n/(n + 5)·Ĉ + 10⁻³·5/(n + 5)·I, with Ĉ the sample
    /// (co)variance (Stan reference manual, "HMC algorithm parameters"). Needs n ≥ 2.
    pub fn metric(&self) -> Metric {
        assert!(self.n >= 2, "Welford::metric: {} draws", self.n);
        let n = self.n as f64;
        let (a, b) = (n / (n + 5.0), 1e-3 * 5.0 / (n + 5.0));
        let d = self.mean.len();
        let c: Vec<f64> = self.m2.iter().map(|m| a * m / (n - 1.0)).collect();
        if self.dense {
            let mut c = c;
            for i in 0..d {
                c[i * d + i] += b;
            }
            Metric::dense(c)
        } else {
            Metric::Diagonal(c.into_iter().map(|v| v + b).collect())
        }
    }
}

/// Stan's windowed warm-up schedule (Stan reference manual, "Automatic parameter tuning"): an
/// initial fast interval of 75 iterations (step size only), slow windows of 25, 50, 100, …
/// iterations (the metric is re-estimated at the end of each, the last one stretched to the
/// end), a terminal fast interval of 50. When 75 + 25 + 50 exceed the warm-up, the intervals are
/// 15%, 75% and 10% of it; below 20 iterations only the step size adapts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmupWindows {
    /// The first iteration whose draw enters the metric estimate.
    pub start: usize,
    /// The last iteration of each slow window (the metric is updated after it).
    pub ends: Vec<usize>,
}

impl WarmupWindows {
    /// The schedule for `warmup` iterations.
    pub fn new(warmup: usize) -> WarmupWindows {
        if warmup < 20 {
            return WarmupWindows {
                start: warmup,
                ends: Vec::new(),
            };
        }
        let (mut init, mut term, mut base) = (75, 50, 25);
        if init + base + term > warmup {
            init = (0.15 * warmup as f64) as usize;
            term = (0.1 * warmup as f64) as usize;
            base = warmup - init - term;
        }
        let last = warmup - term - 1;
        let mut size = base;
        let mut next = init + size - 1;
        let mut ends = Vec::new();
        loop {
            ends.push(next);
            if next >= last {
                break;
            }
            size *= 2;
            next += size;
            if next + 2 * size >= warmup - term {
                next = last;
            }
        }
        WarmupWindows { start: init, ends }
    }

    /// Whether iteration `k`'s draw enters the metric estimate.
    pub fn collects(&self, k: usize) -> bool {
        k >= self.start && self.ends.last().is_some_and(|&e| k <= e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stan_windows() {
        // Stan's default 1000 warm-up iterations: 75 | 25 50 100 200 500 | 50
        let w = WarmupWindows::new(1000);
        assert_eq!(w.start, 75);
        assert_eq!(w.ends, vec![99, 149, 249, 449, 949]);
        assert!(w.collects(75) && w.collects(949) && !w.collects(74) && !w.collects(950));
        // 100 iterations: 15 | 75 | 10
        assert_eq!(WarmupWindows::new(100).ends, vec![89]);
        assert_eq!(WarmupWindows::new(100).start, 15);
        assert!(WarmupWindows::new(10).ends.is_empty());
    }

    #[test]
    fn dense_momentum_has_covariance_m() {
        // M⁻¹ = [[4, 1], [1, 2]] ⇒ Cov p = M = (1/7)[[2, −1], [−1, 4]]
        let m = Metric::dense(vec![4.0, 1.0, 1.0, 2.0]);
        let mut rng = Rng::new(1);
        let n = 40_000;
        let mut w = Welford::new(2, true);
        let mut p = [0.0; 2];
        for _ in 0..n {
            m.sample_momentum(&mut rng, &mut p);
            w.add(&p);
        }
        let c: Vec<f64> = w.m2.iter().map(|v| v / (n as f64 - 1.0)).collect();
        let want: [f64; 4] = [2.0 / 7.0, -1.0 / 7.0, -1.0 / 7.0, 4.0 / 7.0];
        // SE of a covariance entry: √((ΣᵢᵢΣⱼⱼ + Σᵢⱼ²)/n)
        for i in 0..2 {
            for j in 0..2 {
                let se = ((want[3 * i] * want[3 * j] + want[2 * i + j].powi(2)) / n as f64).sqrt();
                assert!((c[2 * i + j] - want[2 * i + j]).abs() < 4.0 * se, "{c:?}");
            }
        }
        // kinetic energy ½pᵀM⁻¹p and the velocity agree
        let mut v = [0.0; 2];
        m.velocity(&[1.0, -2.0], &mut v);
        assert_eq!(v, [2.0, -3.0]);
        assert_eq!(m.kinetic(&[1.0, -2.0]), 0.5 * (2.0 + 6.0));
    }

    #[test]
    fn welford_matches_two_pass_variance() {
        let xs = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.0], [2.0, 4.0]];
        let mut w = Welford::new(2, false);
        xs.iter().for_each(|x| w.add(x));
        let n = 4.0;
        let Metric::Diagonal(m) = w.metric() else {
            unreachable!()
        };
        for j in 0..2 {
            let mean = xs.iter().map(|x| x[j]).sum::<f64>() / n;
            let var = xs.iter().map(|x| (x[j] - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let want = n / (n + 5.0) * var + 1e-3 * 5.0 / (n + 5.0);
            assert!((m[j] - want).abs() < 1e-12);
        }
    }
}
