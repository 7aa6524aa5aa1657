//! The probability-flow ODE of a diffusion (Song et al. 2021, "Score-Based Generative Modeling
//! through SDEs", §4.3 and Appendix D):
//!
//!   dx/dt = v(x, t) = f(x, t) − ½ g(t)² ∇ₓ log p_t(x),
//!
//! whose solutions carry p₁ to p₀ with the same marginals p_t as the SDE. Integrated from the
//! prior down to t_end it samples; integrated up from data it gives exact log-likelihoods by
//! the instantaneous change of variables (Chen et al. 2018, "Neural ODEs"):
//!
//!   d log p_t(x_t)/dt = −∇ₓ·v(x_t, t)   ⇒   log p_{t_end}(x) = log p₁(x₁) + ∫_{t_end}^1 ∇ₓ·v dt,
//!
//! with ∇ₓ·v = ∇ₓ·f − ½g² ∇ₓ·s, the score's divergence exact (d backward passes) or estimated
//! by Hutchinson's trace estimator with one probe held fixed over the solve (Grathwohl et al.
//! 2019, "FFJORD").
//!
//! Solvers: Euler, Heun (explicit trapezoid, 2nd order) and adaptive Dormand–Prince RK5(4)
//! (Dormand & Prince 1980) with the step-size control of Hairer, Nørsett & Wanner, "Solving
//! Ordinary Differential Equations I", §II.4. All chains share the step; the error norm is the
//! largest per-row RMS, so every chain meets the tolerance.

use crate::sde::Sde;
use crate::target::{ScoreDivergence, TimeScore};
use crate::util::{axpy, batch};
use crate::{Samples, Stats};
use ebm_core::{DType, Rng, Tensor};

/// An ODE solver on [t₀, t₁] (either direction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OdeSolver {
    /// y ← y + h v(t, y), `n_steps` uniform steps.
    Euler {
        /// Uniform steps.
        n_steps: usize,
    },
    /// Heun: k₁ = v(t, y), k₂ = v(t + h, y + h k₁), y ← y + (h/2)(k₁ + k₂).
    Heun {
        /// Uniform steps.
        n_steps: usize,
    },
    /// Adaptive Dormand–Prince RK5(4): a step is accepted when the largest per-row RMS of
    /// err/(atol + rtol·max(|y|, |y'|)) is ≤ 1; the next step is h·clamp(0.9 err^(−1/5), 0.2, 10).
    Rk45 {
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
        /// The most steps before giving up (accepted and rejected).
        max_steps: usize,
    },
}

impl OdeSolver {
    /// RK45 with the given tolerances and at most 100,000 steps.
    pub fn rk45(rtol: f64, atol: f64) -> OdeSolver {
        OdeSolver::Rk45 {
            rtol,
            atol,
            max_steps: 100_000,
        }
    }
}

/// The probe distribution of Hutchinson's estimator (E[vvᵀ] = I for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// ±1 entries: the lowest-variance choice, Var = 2Σ_{i≠j} A_ij² (Hutchinson 1990).
    Rademacher,
    /// N(0, 1) entries: Var = 2‖A‖_F².
    Gaussian,
}

/// How the likelihood integrand gets ∇ₓ·s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// d backward passes (or the analytic divergence).
    Exact,
    /// vᵀ(∂s/∂x)v with one probe v per chain, fixed over the solve: unbiased, one pass.
    Hutchinson(Probe),
}

/// Log-likelihoods by the probability-flow ODE.
#[derive(Clone, Debug)]
pub struct Likelihood {
    /// log p_{t_end}(x) = log p₁(x₁) + Δ with the SDE's prior, per row.
    pub log_prob: Tensor,
    /// The prior term log p₁(x₁).
    pub prior_log_prob: Tensor,
    /// Δ = ∫_{t_end}^1 ∇ₓ·v(x_t, t) dt per row: add it to another terminal density if p₁ is
    /// known better than the SDE's prior.
    pub delta: Tensor,
    /// x₁, the end of each trajectory.
    pub x_end: Tensor,
    /// Work counters.
    pub stats: Stats,
}

/// The probability-flow ODE sampler and likelihood.
#[derive(Clone, Debug)]
pub struct PfOde {
    /// The integrator.
    pub solver: OdeSolver,
    /// The data end of the time interval (the paper uses 1e-5 for VE, 1e-3 for VP sampling).
    pub t_end: f64,
}

/// ODE state: a list of tensors, each with the batch as its first axis.
type State = Vec<Tensor>;

/// y + Σ cᵢ kᵢ component-wise.
fn comb(y: &[Tensor], terms: &[(f64, &State)]) -> State {
    y.iter()
        .enumerate()
        .map(|(j, yj)| {
            let mut out = yj.clone();
            for (c, k) in terms {
                if *c != 0.0 {
                    out = axpy(out, *c, &k[j]);
                }
            }
            out
        })
        .collect()
}

/// max over rows of √(mean over the row's elements of (eᵢ/(atol + rtol·max(|aᵢ|, |bᵢ|)))²).
fn error_norm(err: &[Tensor], a: &[Tensor], b: &[Tensor], rtol: f64, atol: f64) -> f64 {
    let rows = batch(&err[0]);
    let mut sum = vec![0.0; rows];
    let mut count = 0usize;
    for ((e, a), b) in err.iter().zip(a).zip(b) {
        let (e, a, b) = (e.to_vec_f64(), a.to_vec_f64(), b.to_vec_f64());
        let per = e.len() / rows;
        count += per;
        for (r, acc) in sum.iter_mut().enumerate() {
            for i in r * per..(r + 1) * per {
                let sc = atol + rtol * a[i].abs().max(b[i].abs());
                *acc += (e[i] / sc).powi(2);
            }
        }
    }
    sum.into_iter()
        .map(|s| (s / count as f64).sqrt())
        .fold(0.0, f64::max)
}

// Dormand–Prince 5(4) tableau.
const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
        0.0,
    ],
    [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// 5th-order weights minus the embedded 4th-order weights.
const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

/// Integrates dy/dt = field(t, y) from t0 to t1 with `solver`.
pub fn integrate(
    solver: OdeSolver,
    field: &mut dyn FnMut(f64, &[Tensor]) -> State,
    y0: State,
    t0: f64,
    t1: f64,
    stats: &mut Stats,
) -> State {
    let span = t1 - t0;
    let mut y = y0;
    match solver {
        OdeSolver::Euler { n_steps } | OdeSolver::Heun { n_steps } => {
            assert!(n_steps > 0, "integrate: n_steps must be positive");
            let heun = matches!(solver, OdeSolver::Heun { .. });
            let h = span / n_steps as f64;
            for i in 0..n_steps {
                let t = t0 + i as f64 * h;
                let k1 = field(t, &y);
                stats.score_evals += 1;
                if heun {
                    let yp = comb(&y, &[(h, &k1)]);
                    let k2 = field(t + h, &yp);
                    stats.score_evals += 1;
                    y = comb(&y, &[(0.5 * h, &k1), (0.5 * h, &k2)]);
                } else {
                    y = comb(&y, &[(h, &k1)]);
                }
                stats.step_sizes.push(h.abs());
            }
            stats.steps = n_steps;
            y
        }
        OdeSolver::Rk45 {
            rtol,
            atol,
            max_steps,
        } => {
            let dir = span.signum();
            let mut t = t0;
            let mut k1 = field(t, &y);
            stats.score_evals += 1;
            // initial step (Hairer, Nørsett & Wanner §II.4)
            let scale = |v: &[Tensor]| error_norm(v, &y, &y, rtol, atol);
            let (d0, d1) = (scale(&y), scale(&k1));
            let h0 = if d0 < 1e-5 || d1 < 1e-5 {
                1e-6
            } else {
                0.01 * d0 / d1
            };
            let y1 = comb(&y, &[(dir * h0, &k1)]);
            let f1 = field(t + dir * h0, &y1);
            stats.score_evals += 1;
            let diff = comb(&f1, &[(-1.0, &k1)]);
            let d2 = scale(&diff) / h0;
            let h1 = if d1.max(d2) <= 1e-15 {
                (h0 * 1e-3).max(1e-6)
            } else {
                (0.01 / d1.max(d2)).powf(0.2)
            };
            let mut h = (100.0 * h0).min(h1).min(span.abs());
            let mut steps = 0;
            while dir * (t1 - t) > 1e-14 * span.abs().max(1.0) {
                assert!(
                    steps < max_steps,
                    "RK45: no convergence in {max_steps} steps (t = {t}, h = {h})"
                );
                steps += 1;
                h = h.min((t1 - t).abs());
                let hs = dir * h;
                let mut k: Vec<State> = vec![k1.clone()];
                for s in 1..7 {
                    let terms: Vec<(f64, &State)> = (0..s)
                        .filter(|&j| A[s][j] != 0.0)
                        .map(|j| (hs * A[s][j], &k[j]))
                        .collect();
                    let ys = comb(&y, &terms);
                    k.push(field(t + C[s] * hs, &ys));
                    stats.score_evals += 1;
                }
                // the 7th stage is evaluated at the 5th-order solution (FSAL)
                let y_new = comb(
                    &y,
                    &(0..6)
                        .filter(|&j| A[6][j] != 0.0)
                        .map(|j| (hs * A[6][j], &k[j]))
                        .collect::<Vec<_>>(),
                );
                let zero: State = y.iter().map(|v| v.zeros_like()).collect();
                let err = comb(
                    &zero,
                    &(0..7)
                        .filter(|&j| E[j] != 0.0)
                        .map(|j| (hs * E[j], &k[j]))
                        .collect::<Vec<_>>(),
                );
                let en = error_norm(&err, &y, &y_new, rtol, atol);
                if en <= 1.0 {
                    t += hs;
                    y = y_new;
                    k1 = k.pop().expect("seven stages");
                    stats.step_sizes.push(h);
                    let f = if en == 0.0 {
                        10.0
                    } else {
                        (0.9 * en.powf(-0.2)).clamp(0.2, 10.0)
                    };
                    h *= f;
                } else {
                    stats.rejected_steps += 1;
                    h *= (0.9 * en.powf(-0.2)).clamp(0.2, 1.0);
                }
            }
            stats.steps = stats.step_sizes.len();
            y
        }
    }
}

impl PfOde {
    /// The ODE sampler with `solver`, integrating down to `t_end`.
    pub fn new(solver: OdeSolver, t_end: f64) -> PfOde {
        PfOde { solver, t_end }
    }

    /// v(x, t) = f(x, t) − ½ g(t)² s(x, t).
    fn velocity<S: Sde>(sde: &S, x: &Tensor, t: f64, s: &Tensor) -> Tensor {
        let g = sde.diffusion(t);
        axpy(sde.drift(x, t), -0.5 * g * g, s)
    }

    /// Draws `n` samples of `row_shape` from the prior and carries them to t_end.
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
        self.run(sde, score, sde.prior_sample(&shape, rng, dtype))
    }

    /// Carries `x1` (states at t = 1) to t_end; deterministic.
    pub fn run<S: Sde>(&self, sde: &S, score: &impl TimeScore, x1: Tensor) -> Samples {
        let mut stats = Stats::default();
        let mut field = |t: f64, y: &[Tensor]| -> State {
            let s = score.score_t(&y[0], t);
            vec![Self::velocity(sde, &y[0], t, &s)]
        };
        let y = integrate(
            self.solver,
            &mut field,
            vec![x1],
            1.0,
            self.t_end,
            &mut stats,
        );
        let mut out = Samples::new(y.into_iter().next().expect("one component"));
        out.stats = stats;
        out
    }

    /// log p_{t_end}(x) of every row of `x` by integrating the ODE and the divergence of its
    /// velocity from t_end to 1. `rng` draws the Hutchinson probes (unused when exact).
    pub fn log_likelihood<S: Sde>(
        &self,
        sde: &S,
        score: &impl ScoreDivergence,
        x: &Tensor,
        divergence: Divergence,
        rng: &mut Rng,
    ) -> Likelihood {
        let (b, d) = (batch(x), x.numel() / batch(x));
        let probe = match divergence {
            Divergence::Exact => None,
            Divergence::Hutchinson(Probe::Rademacher) => Some(rng.rademacher(x.shape(), x.dtype())),
            Divergence::Hutchinson(Probe::Gaussian) => Some(rng.normal(x.shape(), x.dtype())),
        };
        let mut stats = Stats::default();
        let mut field = |t: f64, y: &[Tensor]| -> State {
            let (s, div_s) = match &probe {
                None => score.score_div(&y[0], t),
                Some(v) => score.score_probe(&y[0], t, v),
            };
            let g = sde.diffusion(t);
            // ∇·v = ∇·f − ½g² ∇·s
            let dl = div_s
                .mul_scalar(-0.5 * g * g)
                .add_scalar(sde.drift_div(t, d));
            vec![Self::velocity(sde, &y[0], t, &s), dl]
        };
        let y0 = vec![x.clone(), Tensor::zeros(&[b], x.dtype())];
        let mut y = integrate(self.solver, &mut field, y0, self.t_end, 1.0, &mut stats);
        let delta = y.pop().expect("two components");
        let x_end = y.pop().expect("two components");
        let prior = sde.prior_log_prob(&x_end);
        Likelihood {
            log_prob: prior.add(&delta),
            prior_log_prob: prior,
            delta,
            x_end,
            stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solvers_have_their_orders_on_exponential_decay() {
        // y' = −y, y(0) = 1 → y(1) = e⁻¹ per row; Euler is 1st order, Heun 2nd.
        let run = |solver| {
            let mut stats = Stats::default();
            let y0 = vec![Tensor::ones(&[3, 2], DType::F64)];
            let mut f = |_t: f64, y: &[Tensor]| vec![y[0].neg()];
            let y = integrate(solver, &mut f, y0, 0.0, 1.0, &mut stats);
            ((y[0].to_vec_f64()[0] - (-1f64).exp()).abs(), stats)
        };
        let (e1, _) = run(OdeSolver::Euler { n_steps: 100 });
        let (e2, _) = run(OdeSolver::Euler { n_steps: 200 });
        assert!((e1 / e2 - 2.0).abs() < 0.05, "Euler ratio {}", e1 / e2);
        let (h1, _) = run(OdeSolver::Heun { n_steps: 100 });
        let (h2, _) = run(OdeSolver::Heun { n_steps: 200 });
        assert!((h1 / h2 - 4.0).abs() < 0.1, "Heun ratio {}", h1 / h2);
        let (r, st) = run(OdeSolver::rk45(1e-10, 1e-12));
        assert!(r < 1e-9, "RK45 error {r}");
        assert!(st.steps > 5 && st.steps < 500, "RK45 steps {}", st.steps);
    }

    #[test]
    fn rk45_integrates_backwards_too() {
        // y' = cos t from t = 2 down to t = 0: y(0) = y(2) − sin 2
        let mut stats = Stats::default();
        let mut f = |t: f64, y: &[Tensor]| vec![y[0].ones_like().mul_scalar(t.cos())];
        let y = integrate(
            OdeSolver::rk45(1e-10, 1e-12),
            &mut f,
            vec![Tensor::ones(&[1, 1], DType::F64)],
            2.0,
            0.0,
            &mut stats,
        );
        assert!((y[0].item() - (1.0 - 2f64.sin())).abs() < 1e-9);
    }
}
