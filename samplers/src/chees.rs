//! ChEES-HMC: many chains of jittered HMC in lock-step, with the trajectory length adapted to
//! maximise the Change in the Estimator of the Expected Square (Hoffman, Radul & Sountsov 2021,
//! "An adaptive MCMC scheme for setting trajectory lengths in Hamiltonian Monte Carlo").
//!
//! Every iteration all chains share one step size ε and one number of leapfrog steps
//! L = ⌈hₖ T / ε⌉, where T is the trajectory length and hₖ ∈ (0, 1) the k-th element of the
//! base-2 Halton (van der Corput) sequence: jittering T breaks the periodicities of a fixed
//! length, and a low-discrepancy sequence does so with less variance than uniform draws. The
//! chains therefore advance as one `[n, d]` batch through the target with no per-chain control
//! flow, then each accepts or rejects by Metropolis–Hastings.
//!
//! Warm-up adapts, from the ensemble:
//! - ε by dual averaging toward an acceptance of 0.651 (Beskos et al. 2013), fed the harmonic
//!   mean of the chains' acceptance probabilities, which a few stuck chains pull down (the
//!   paper's choice: the arithmetic mean would let them stay stuck);
//! - log T by Adam (learning rate 0.025, β₁ = 0, β₂ = 0.95, the paper's settings; its steps
//!   damped as j^(−1/2) after the first third of warm-up, see [`adam_damping`]) ascending
//!   ChEES = ¼ E[(‖θ' − E θ'‖² − ‖θ − E θ‖²)²], whose gradient in log T, for chain m with
//!   proposal θ'ₘ, end velocity pₘ' and jittered length tₘ = hₖT, is estimated by
//!   ĝₘ = tₘ (‖θ'ₘ − θ̄'‖² − ‖θₘ − θ̄‖²) (θ'ₘ − θ̄')·pₘ' and averaged with the acceptance
//!   probabilities αₘ as weights (ĝ = Σαₘĝₘ / Σαₘ).
//!
//! Sampling then uses ε̄ (dual averaging's average) and T̄ = exp of the mean of log T over the
//! second half of warm-up. Adam's noisy iterate wanders around the ChEES optimum; BlackJAX's
//! moving average with weight k^(−1/2) on iteration k remembers only the last ~√k iterations
//! (~22 of 500), while the second half's mean averages ~250 of them after log T has climbed
//! from ε. Measured on bench/src/bin/samplers.rs (4 seeds × 2 runs): ESS per gradient +4% on
//! the M2 MLP energy (0.263 → 0.274) and +2% on the κ = 100 Gaussian (0.0223 → 0.0227); with
//! the damping of [`adam_damping`] on top, 0.294 on the MLP (8 seeds; BlackJAX 0.298) and
//! 0.0226 on the Gaussian (BlackJAX 0.0017).

use crate::mala::{acceptance_target, DualAveraging};
use crate::target::Target;
use crate::util::{axpy, noise_like, row_len, row_sum, select_rows};
use crate::{Record, Samples};
use ebm_core::{Rng, Tensor};

/// ChEES-HMC options; [`Chees::default`] follows the paper (target acceptance 0.651, Adam
/// 0.025 / β₁ 0 / β₂ 0.95, full jitter, at most 1000 leapfrog steps).
#[derive(Clone, Debug)]
pub struct Chees {
    /// Warm-up (adaptation) iterations, not recorded.
    pub warmup: usize,
    /// Sampling iterations.
    pub draws: usize,
    /// The initial step size; the initial trajectory length is one step.
    pub step_size: f64,
    /// Target acceptance of the step-size adaptation (harmonic mean over chains).
    pub target_accept: f64,
    /// Adam's learning rate on log T.
    pub learning_rate: f64,
    /// Adam's β₁ and β₂.
    pub adam_betas: (f64, f64),
    /// Jitter amount a: each iteration runs (1 − a + a·hₖ)·T.
    pub jitter: f64,
    /// Upper bound on L (and so T ≤ max_leapfrog·ε).
    pub max_leapfrog: usize,
    /// A chain with energy error above this is divergent: it rejects and is left out of the
    /// adaptation statistics.
    pub max_energy_error: f64,
    /// What to keep of the sampling iterations.
    pub record: Record,
}

impl Default for Chees {
    fn default() -> Chees {
        Chees {
            warmup: 1000,
            draws: 1000,
            step_size: 0.1,
            target_accept: 0.651,
            learning_rate: 0.025,
            adam_betas: (0.0, 0.95),
            jitter: 1.0,
            max_leapfrog: 1000,
            max_energy_error: 1000.0,
            record: Record::every(1),
        }
    }
}

/// The k-th element (k ≥ 1) of the base-2 van der Corput sequence, in (0, 1).
pub fn halton(mut k: u64) -> f64 {
    let (mut f, mut r) = (0.5, 0.0);
    while k > 0 {
        r += f * (k & 1) as f64;
        k >>= 1;
        f *= 0.5;
    }
    r
}

/// Adam on one scalar, ascending.
struct Adam {
    lr: f64,
    b1: f64,
    b2: f64,
    m: f64,
    v: f64,
    t: i32,
}

impl Adam {
    fn step(&mut self, g: f64) -> f64 {
        self.t += 1;
        self.m = self.b1 * self.m + (1.0 - self.b1) * g;
        self.v = self.b2 * self.v + (1.0 - self.b2) * g * g;
        let m_hat = self.m / (1.0 - self.b1.powi(self.t));
        let v_hat = self.v / (1.0 - self.b2.powi(self.t));
        self.lr * m_hat / (v_hat.sqrt() + 1e-8)
    }
}

/// The factor on Adam's step in log T at warm-up iteration k: 1 for the first third of
/// warm-up, so that log T can climb from ln ε to the target's scale at the paper's rate (the
/// κ = 100 Gaussian needs T ≈ 18 from ε ≈ 0.1), then j^(−1/2) with j = 1, 2, … counting from
/// there, so that the iterate settles instead of wandering ±lr around the optimum. With the
/// full rate throughout T settled ~15% short on the M2 MLP energy (2.98 vs 3.45) and ESS per
/// gradient was 7% lower (0.274 vs 0.294, 8 seeds); damping from a quarter or an eighth in
/// instead cut the Gaussian's T short (14.5 from an eighth).
fn adam_damping(k: usize, warmup: usize) -> f64 {
    let start = warmup / 3;
    if k < start {
        1.0
    } else {
        ((k - start + 1) as f64).powf(-0.5)
    }
}

/// The ChEES gradient in log T from the ensemble (see the module docs); divergent chains get
/// weight 0. `x`, `y`, `p` are `[n·d]` row-major.
fn chees_gradient(x: &[f64], y: &[f64], p: &[f64], alpha: &[f64], t: f64, d: usize) -> f64 {
    let n = alpha.len();
    let w_sum: f64 = alpha.iter().sum();
    if w_sum <= 0.0 {
        return 0.0;
    }
    let mut x_bar = vec![0.0; d];
    let mut y_bar = vec![0.0; d];
    for c in 0..n {
        for j in 0..d {
            x_bar[j] += x[c * d + j] / n as f64;
            // BlackJAX weights the proposals' mean by acceptance, as rejected proposals are
            // not draws from the chain
            y_bar[j] += alpha[c] * y[c * d + j] / w_sum;
        }
    }
    let mut g = 0.0;
    for c in 0..n {
        if alpha[c] == 0.0 {
            continue;
        }
        let (mut dy2, mut dx2, mut yp) = (0.0, 0.0, 0.0);
        for j in 0..d {
            let (dy, dx) = (y[c * d + j] - y_bar[j], x[c * d + j] - x_bar[j]);
            dy2 += dy * dy;
            dx2 += dx * dx;
            yp += dy * p[c * d + j];
        }
        g += alpha[c] * t * (dy2 - dx2) * yp;
    }
    g / w_sum
}

impl Chees {
    /// The defaults with `warmup` adaptation iterations and `draws` sampling iterations.
    pub fn new(warmup: usize, draws: usize) -> Chees {
        Chees {
            warmup,
            draws,
            ..Chees::default()
        }
    }

    /// Sets the initial step size.
    pub fn with_step_size(mut self, eps: f64) -> Chees {
        assert!(eps > 0.0, "Chees: step size {eps} must be positive");
        self.step_size = eps;
        self
    }

    /// Sets the target acceptance of the step-size adaptation (harmonic mean over chains).
    pub fn with_target_accept(mut self, delta: f64) -> Chees {
        self.target_accept = acceptance_target(delta, "Chees");
        self
    }

    /// Sets what to record of the sampling iterations.
    pub fn with_record(mut self, record: Record) -> Chees {
        self.record = record;
        self
    }

    /// Runs warm-up then sampling on every row of `x0` (one chain per row, all in lock-step).
    ///
    /// `Stats`: `step_size` and `trajectory_length` are the adapted ε̄ and T̄; `step_sizes` the
    /// warm-up path of ε; `accept_rate` the mean acceptance probability over sampling
    /// iterations; `grad_evals` counts per chain.
    pub fn run(&self, target: &impl Target, x0: Tensor, rng: &mut Rng) -> Samples {
        let (n, d) = (x0.shape()[0], row_len(&x0));
        assert!(
            n >= 2,
            "Chees: the adaptation needs at least 2 chains, got {n}"
        );
        let mut out = Samples::new(x0.clone());
        let (mut x, (mut e, mut s)) = (x0.clone(), target.energy_and_score(&x0));
        let mut da = DualAveraging::new(self.step_size, self.target_accept);
        let (b1, b2) = self.adam_betas;
        let mut adam = Adam {
            lr: self.learning_rate,
            b1,
            b2,
            m: 0.0,
            v: 0.0,
            t: 0,
        };
        let mut eps = self.step_size;
        let mut log_t = self.step_size.ln();
        // Σ log T and the count over the second half of warm-up
        let (mut log_t_sum, mut log_t_count) = (0.0, 0usize);
        let (mut calls, mut grads, mut sampling_grads) = (1usize, n, 0usize);
        let mut accepted = vec![0usize; n];
        let mut prob_sum = 0.0;
        for k in 0..self.warmup + self.draws {
            let warm = k < self.warmup;
            let h = 1.0 - self.jitter + self.jitter * halton(k as u64 + 1);
            let t_len = h * log_t.exp();
            let steps = ((t_len / eps).ceil() as usize).clamp(1, self.max_leapfrog);
            // leapfrog, all chains at once
            let p0 = noise_like(&x, rng);
            let mut p = axpy(p0.clone(), 0.5 * eps, &s);
            let (mut y, mut ey, mut sy) = (x.clone(), e.clone(), s.clone());
            for l in 0..steps {
                y = axpy(y, eps, &p);
                let last = l + 1 == steps;
                if last {
                    (ey, sy) = target.energy_and_score(&y);
                } else {
                    sy = target.score(&y);
                }
                p = axpy(p, if last { 0.5 * eps } else { eps }, &sy);
            }
            calls += steps;
            grads += n * steps;
            if !warm {
                sampling_grads += n * steps;
            }
            let h0 = e.to_vec_f64();
            let k0 = row_sum(&p0.square()).to_vec_f64();
            let h1 = ey.to_vec_f64();
            let k1 = row_sum(&p.square()).to_vec_f64();
            let mut alpha = vec![0.0; n];
            let mut divergent = vec![false; n];
            for c in 0..n {
                let dh = (h1[c] + 0.5 * k1[c]) - (h0[c] + 0.5 * k0[c]);
                divergent[c] = dh.is_nan() || dh > self.max_energy_error;
                alpha[c] = if divergent[c] {
                    0.0
                } else {
                    (-dh).exp().min(1.0)
                };
            }
            let u = rng.uniform_vec(n);
            let acc: Vec<bool> = u.iter().zip(&alpha).map(|(u, a)| u < a).collect();
            let n_div = divergent.iter().filter(|&&v| v).count();
            if warm {
                out.stats.warmup_divergences += n_div;
                // harmonic mean over non-divergent chains (0 if any of them has α = 0)
                let live: Vec<f64> = (0..n)
                    .filter(|&c| !divergent[c])
                    .map(|c| alpha[c])
                    .collect();
                let hm = if live.is_empty() || live.contains(&0.0) {
                    0.0
                } else {
                    live.len() as f64 / live.iter().map(|a| 1.0 / a).sum::<f64>()
                };
                eps = da.update(hm);
                out.stats.step_sizes.push(eps);
                let g = chees_gradient(
                    &x.to_vec_f64(),
                    &y.to_vec_f64(),
                    &p.to_vec_f64(),
                    &alpha,
                    t_len,
                    d,
                );
                if g.is_finite() {
                    log_t += adam_damping(k, self.warmup) * adam.step(g);
                }
                log_t = log_t.clamp(eps.ln(), (self.max_leapfrog as f64 * eps).ln());
                if 2 * (k + 1) > self.warmup {
                    log_t_sum += log_t;
                    log_t_count += 1;
                }
                if k + 1 == self.warmup {
                    eps = da.final_step();
                    let log_t_bar = log_t_sum / log_t_count as f64;
                    log_t = log_t_bar.clamp(eps.ln(), (self.max_leapfrog as f64 * eps).ln());
                }
            } else {
                out.stats.divergences += n_div;
                prob_sum += alpha.iter().sum::<f64>();
                for (a, &ok) in accepted.iter_mut().zip(&acc) {
                    *a += ok as usize;
                }
            }
            x = select_rows(&acc, &y, &x);
            e = select_rows(&acc, &ey, &e);
            s = select_rows(&acc, &sy, &s);
            if !warm {
                out.record(&self.record, k - self.warmup, &x, Some(&e));
            }
        }
        let draws = self.draws.max(1) as f64;
        let st = &mut out.stats;
        st.steps = self.draws;
        st.warmup = self.warmup;
        st.chain_accept_rate = accepted.iter().map(|&a| a as f64 / draws).collect();
        st.accept_rate = Some(prob_sum / (draws * n as f64));
        st.step_size = Some(eps);
        st.trajectory_length = Some(log_t.exp());
        st.score_evals = calls;
        st.energy_evals = 1 + self.warmup + self.draws;
        st.grad_evals = grads;
        st.sampling_grad_evals = sampling_grads;
        out.x = x;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halton_fills_the_unit_interval_evenly() {
        assert_eq!(
            (1..8).map(halton).collect::<Vec<_>>(),
            vec![0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]
        );
        // the first 2^10 − 1 points are the multiples of 2^−10 in (0, 1)
        let mut v: Vec<f64> = (1..1024).map(halton).collect();
        v.sort_by(f64::total_cmp);
        assert!(v
            .iter()
            .enumerate()
            .all(|(i, &h)| h == (i + 1) as f64 / 1024.0));
    }

    #[test]
    fn chees_gradient_is_the_derivative_of_the_criterion() {
        // For one exact harmonic trajectory per chain on N(0, σ²) (θ' = θ cos ω + σp sin ω,
        // ω = t/σ, velocity p' = −(θ/σ) sin ω + p cos ω), the estimator at weight 1 equals
        // t·∂/∂t of ¼(‖θ' − θ̄'‖² − ‖θ − θ̄‖²)² averaged over chains, with the ensemble means
        // held fixed (the estimator does not differentiate θ̄'): compare with a finite
        // difference of that criterion in log t.
        let (sigma, n) = (2.0, 5);
        let mut rng = Rng::new(3);
        let th = rng.normal_vec(n);
        let p0 = rng.normal_vec(n);
        let flow = |t: f64| -> (Vec<f64>, Vec<f64>) {
            let w = t / sigma;
            let y = (0..n)
                .map(|c| sigma * th[c] * w.cos() + sigma * p0[c] * w.sin())
                .collect();
            let p = (0..n).map(|c| -th[c] * w.sin() + p0[c] * w.cos()).collect();
            (y, p)
        };
        let x: Vec<f64> = th.iter().map(|v| sigma * v).collect();
        let t = 1.3;
        let yb = flow(t).0.iter().sum::<f64>() / n as f64;
        let crit = |t: f64| -> f64 {
            let (y, _) = flow(t);
            let xb = x.iter().sum::<f64>() / n as f64;
            (0..n)
                .map(|c| 0.25 * ((y[c] - yb).powi(2) - (x[c] - xb).powi(2)).powi(2))
                .sum::<f64>()
                / n as f64
        };
        let (y, p) = flow(t);
        let g = chees_gradient(&x, &y, &p, &vec![1.0; n], t, 1);
        let h: f64 = 1e-6;
        let fd = (crit(t * h.exp()) - crit(t * (-h).exp())) / (2.0 * h);
        assert!((g - fd).abs() < 1e-6 * fd.abs().max(1.0), "{g} vs {fd}");
    }
}
