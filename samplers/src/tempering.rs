//! Parallel tempering (replica exchange; Swendsen & Wang 1986, Geyer 1991) over a ladder of
//! inverse temperatures 1 = β₀ > β₁ > … > β_{K−1}, with MALA or HMC inside each replica.
//!
//! Replica k targets π_βₖ ∝ exp(−βₖE): hot replicas (small β) see flattened barriers and cross
//! between modes, and swaps pass their states down to the cold chain. A swap of the states of
//! neighbours k and k+1 is accepted with probability min(1, exp((βₖ − βₖ₊₁)(E(xₖ) − E(xₖ₊₁)))),
//! which leaves the product of the tempered targets invariant. Swaps follow the deterministic
//! even–odd scheme (non-reversible PT; Syed, Bouchard-Côté, Deligiannidis & Doucet 2021, "Non-
//! reversible parallel tempering: a scalable highly parallel MCMC scheme"): pairs (0,1), (2,3), …
//! after even iterations and (1,2), (3,4), … after odd ones, which moves states along the ladder
//! ballistically instead of diffusively.
//!
//! Adaptive ladder (Syed et al. 2021, §5.2): with rₖ the swap rejection rate of pair (k, k+1),
//! the communication barrier Λ(β) is piecewise linear through Λ(β_{K−1}) = 0 and
//! Λ(βₖ) = Σ_{j ≥ k} rⱼ; the new ladder puts Λ(βₖ) = (K − 1 − k)/(K − 1)·Λ(1), equalising the
//! rejection rates. It is re-estimated after warm-up rounds of 16, 32, 64, … iterations that end
//! within the first half of warm-up; the second half adapts the step sizes to the final ladder.
//!
//! All replicas of all chains are rows of one `[K·B, d]` batch (row k·B + c is replica k of
//! chain c), so each inner step is one target call. Each replica has its own step size, adapted
//! by dual averaging on its mean acceptance during warm-up. Only the cold replica is recorded.

use crate::mala::{positive_step, DualAveraging};
use crate::target::Target;
use crate::util::row_len;
use crate::{Record, Samples};
use ebm_core::{DType, Rng, Tensor};

/// The kernel each replica runs between swaps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InnerKernel {
    /// MALA (adapted toward acceptance 0.574).
    Mala,
    /// HMC with this many leapfrog steps (adapted toward acceptance 0.65).
    Hmc {
        /// Leapfrog steps per trajectory.
        n_leapfrog: usize,
    },
}

/// Parallel-tempering options, built by name: `Tempering::default().with_replicas(8)
/// .with_beta_min(0.02).with_warmup(500).with_draws(1000)` (a geometric ladder; see
/// [`Tempering::default`] and [`Tempering::new`]).
#[derive(Clone, Debug)]
pub struct Tempering {
    /// Warm-up iterations (step sizes and, optionally, the ladder adapt), not recorded.
    pub warmup: usize,
    /// Sampling iterations; each is one inner step of every replica then one swap round.
    pub draws: usize,
    /// The inverse temperatures, β₀ = 1 first, decreasing.
    pub betas: Vec<f64>,
    /// The replicas' kernel.
    pub kernel: InnerKernel,
    /// The initial step size of every replica.
    pub step_size: f64,
    /// Adapt the ladder from the swap rates during warm-up.
    pub adapt_ladder: bool,
    /// What to keep of the cold replica's sampling iterations.
    pub record: Record,
}

/// `replicas` inverse temperatures spaced geometrically from 1 down to `beta_min`.
pub fn geometric_ladder(replicas: usize, beta_min: f64) -> Vec<f64> {
    assert!(
        replicas >= 2 && 0.0 < beta_min && beta_min < 1.0,
        "geometric_ladder: need ≥ 2 replicas and β_min in (0, 1), got {replicas}, {beta_min}"
    );
    (0..replicas)
        .map(|k| beta_min.powf(k as f64 / (replicas - 1) as f64))
        .collect()
}

/// The ladder that equalises swap rejection rates (see the module docs): `betas` decreasing
/// from 1, `reject[k]` the rejection rate of pair (k, k+1); the ends stay put.
pub fn equalised_ladder(betas: &[f64], reject: &[f64]) -> Vec<f64> {
    let k = betas.len();
    assert_eq!(
        reject.len(),
        k - 1,
        "equalised_ladder: {} rates for {k} rungs",
        reject.len()
    );
    // Λ at each rung, from the hot end; a floor keeps Λ strictly monotone
    let mut lambda = vec![0.0; k];
    for i in (0..k - 1).rev() {
        lambda[i] = lambda[i + 1] + reject[i].max(1e-6);
    }
    let total = lambda[0];
    let mut out = betas.to_vec();
    for (i, o) in out.iter_mut().enumerate().take(k - 1).skip(1) {
        let want = total * (k - 1 - i) as f64 / (k - 1) as f64;
        // the segment [β_{j+1}, β_j] with Λ_{j+1} ≤ want ≤ Λ_j
        let j = (0..k - 1)
            .find(|&j| lambda[j + 1] <= want && want <= lambda[j])
            .unwrap_or(0);
        let f = (want - lambda[j + 1]) / (lambda[j] - lambda[j + 1]);
        *o = betas[j + 1] + f * (betas[j] - betas[j + 1]);
    }
    out
}

/// Where each state has been along the ladder, for counting round trips.
#[derive(Clone, Copy, PartialEq)]
enum Trip {
    Unseen,
    FromCold,
    FromHot,
}

impl Default for Tempering {
    /// 8 replicas geometric from 1 to 0.05, MALA inside, fixed ladder, 1000 warm-up
    /// iterations and 1000 draws.
    fn default() -> Tempering {
        Tempering {
            warmup: 1000,
            draws: 1000,
            betas: geometric_ladder(8, 0.05),
            kernel: InnerKernel::Mala,
            step_size: 0.5,
            adapt_ladder: false,
            record: Record::every(1),
        }
    }
}

impl Tempering {
    /// `replicas` rungs geometric from 1 to `beta_min`, MALA inside, fixed ladder; the same
    /// as `Tempering::default().with_replicas(replicas).with_beta_min(beta_min)` with
    /// `warmup` and `draws` set.
    pub fn new(replicas: usize, beta_min: f64, warmup: usize, draws: usize) -> Tempering {
        Tempering {
            warmup,
            draws,
            betas: geometric_ladder(replicas, beta_min),
            ..Tempering::default()
        }
    }

    /// The hottest inverse temperature of the ladder.
    pub fn beta_min(&self) -> f64 {
        *self.betas.last().expect("a ladder has rungs")
    }

    /// Sets the number of replicas (≥ 2), keeping a geometric ladder down to the same β_min.
    pub fn with_replicas(mut self, replicas: usize) -> Tempering {
        assert!(
            replicas >= 2,
            "Tempering: need at least 2 replicas, got {replicas}"
        );
        self.betas = geometric_ladder(replicas, self.beta_min());
        self
    }

    /// Sets the hottest inverse temperature β_min in (0, 1), keeping a geometric ladder of the
    /// same number of replicas.
    pub fn with_beta_min(mut self, beta_min: f64) -> Tempering {
        assert!(
            0.0 < beta_min && beta_min < 1.0,
            "Tempering: β_min {beta_min} not in (0, 1)"
        );
        self.betas = geometric_ladder(self.betas.len(), beta_min);
        self
    }

    /// Sets the number of warm-up iterations.
    pub fn with_warmup(mut self, iterations: usize) -> Tempering {
        self.warmup = iterations;
        self
    }

    /// Sets the number of sampling iterations (draws per chain).
    pub fn with_draws(mut self, draws: usize) -> Tempering {
        self.draws = draws;
        self
    }

    /// Sets the initial step size of every replica.
    pub fn with_step_size(mut self, eps: f64) -> Tempering {
        self.step_size = positive_step(eps, "Tempering");
        self
    }

    /// Sets the replicas' kernel.
    pub fn with_kernel(mut self, kernel: InnerKernel) -> Tempering {
        if let InnerKernel::Hmc { n_leapfrog } = kernel {
            assert!(
                n_leapfrog > 0,
                "Tempering: HMC needs at least one leapfrog step"
            );
        }
        self.kernel = kernel;
        self
    }

    /// Adapts the ladder from swap rates during warm-up.
    pub fn with_adaptive_ladder(mut self, on: bool) -> Tempering {
        self.adapt_ladder = on;
        self
    }

    /// Sets what to record of the cold replica.
    pub fn with_record(mut self, record: Record) -> Tempering {
        self.record = record;
        self
    }

    /// Iterations after which the ladder is re-estimated (see the module docs).
    fn ladder_updates(&self) -> Vec<usize> {
        let mut ends = Vec::new();
        let (mut len, mut end) = (16, 16);
        while self.adapt_ladder && end <= self.warmup / 2 {
            ends.push(end);
            len *= 2;
            end += len;
        }
        ends
    }

    /// Runs warm-up then sampling; every row of `x0` starts all replicas of one chain.
    ///
    /// `Stats`: `betas` the ladder used for sampling, `swap_rates` the mean swap acceptance
    /// probability of each pair, `replica_accept_rates` each replica's inner acceptance,
    /// `round_trips` the cold → hot → cold trips of states, all over sampling iterations;
    /// `accept_rate` and `step_size` are the cold replica's.
    pub fn run(&self, target: &impl Target, x0: Tensor, rng: &mut Rng) -> Samples {
        let k_rep = self.betas.len();
        assert!(
            k_rep >= 1 && (self.betas[0] - 1.0).abs() < 1e-12,
            "Tempering: the ladder must start at β = 1, got {:?}",
            self.betas
        );
        let (b, d, dtype) = (x0.shape()[0], row_len(&x0), x0.dtype());
        let row_shape = x0.shape()[1..].to_vec();
        let n = k_rep * b;
        let xv = x0.to_vec_f64();
        let mut st = State {
            x: (0..k_rep).flat_map(|_| xv.iter().copied()).collect(),
            e: vec![0.0; n],
            s: vec![0.0; n * d],
            d,
            shape: std::iter::once(n)
                .chain(row_shape.iter().copied())
                .collect(),
            dtype,
            calls: 0,
        };
        st.eval_current(target);
        let mut betas = self.betas.clone();
        let mut eps = vec![self.step_size; k_rep];
        let goal = match self.kernel {
            InnerKernel::Mala => 0.574,
            InnerKernel::Hmc { .. } => 0.65,
        };
        let mut da: Vec<DualAveraging> = eps.iter().map(|&e| DualAveraging::new(e, goal)).collect();
        let updates = self.ladder_updates();
        let mut swap_prob = vec![0.0; k_rep.saturating_sub(1)];
        let mut swap_tries = vec![0usize; k_rep.saturating_sub(1)];
        let mut acc_sum = vec![0.0; k_rep];
        let mut labels: Vec<usize> = (0..n).collect();
        let mut trips = vec![Trip::Unseen; n];
        let mut round_trips = 0;
        let mut out = Samples::new(x0.clone());
        for it in 0..self.warmup + self.draws {
            let warm = it < self.warmup;
            let row_beta: Vec<f64> = (0..n).map(|r| betas[r / b]).collect();
            let row_eps: Vec<f64> = (0..n).map(|r| eps[r / b]).collect();
            let prob = match self.kernel {
                InnerKernel::Mala => st.mala(target, &row_beta, &row_eps, rng),
                InnerKernel::Hmc { n_leapfrog } => {
                    st.hmc(target, &row_beta, &row_eps, n_leapfrog, rng)
                }
            };
            for k in 0..k_rep {
                let a = prob[k * b..(k + 1) * b].iter().sum::<f64>() / b as f64;
                if warm {
                    eps[k] = da[k].update(a);
                } else {
                    acc_sum[k] += a;
                }
            }
            if warm && it + 1 == self.warmup {
                eps = da.iter().map(|d| d.final_step()).collect();
            }
            // deterministic even–odd swaps
            let u = rng.uniform_vec((k_rep / 2 + 1) * b);
            let mut ui = 0;
            for k in (it % 2..k_rep.saturating_sub(1)).step_by(2) {
                for c in 0..b {
                    let (i, j) = (k * b + c, (k + 1) * b + c);
                    let log_a = (betas[k] - betas[k + 1]) * (st.e[i] - st.e[j]);
                    let p = if log_a.is_nan() {
                        0.0
                    } else {
                        log_a.min(0.0).exp()
                    };
                    swap_prob[k] += p;
                    swap_tries[k] += 1;
                    if u[ui] < p {
                        st.swap(i, j);
                        labels.swap(i, j);
                    }
                    ui += 1;
                }
            }
            if !warm {
                round_trips += count_trips(&labels, &mut trips, b, k_rep);
                let step = it - self.warmup;
                if self.record.at(step) {
                    let cold = Tensor::from_f64s(&st.x[..b * d], &st.shape_of(b), dtype);
                    let e = Tensor::from_f64s(&st.e[..b], &[b], dtype);
                    out.record(&self.record, step, &cold, Some(&e));
                }
            }
            if warm && updates.contains(&(it + 1)) {
                let reject: Vec<f64> = swap_prob
                    .iter()
                    .zip(&swap_tries)
                    .map(|(p, &t)| 1.0 - p / t.max(1) as f64)
                    .collect();
                betas = equalised_ladder(&betas, &reject);
            }
            if warm && (it + 1 == self.warmup || updates.contains(&(it + 1))) {
                swap_prob.iter_mut().for_each(|p| *p = 0.0);
                swap_tries.iter_mut().for_each(|t| *t = 0);
            }
        }
        let draws = self.draws.max(1) as f64;
        out.x = Tensor::from_f64s(&st.x[..b * d], &st.shape_of(b), dtype);
        let s = &mut out.stats;
        s.steps = self.draws;
        s.warmup = self.warmup;
        s.replica_accept_rates = acc_sum.iter().map(|a| a / draws).collect();
        s.accept_rate = Some(s.replica_accept_rates[0]);
        s.step_size = Some(eps[0]);
        s.step_sizes = eps;
        s.swap_rates = swap_prob
            .iter()
            .zip(&swap_tries)
            .map(|(p, &t)| p / t.max(1) as f64)
            .collect();
        s.betas = betas;
        s.round_trips = round_trips;
        s.score_evals = st.calls;
        s.energy_evals = st.calls;
        s.grad_evals = st.calls * n;
        let per_iter = match self.kernel {
            InnerKernel::Mala => 1,
            InnerKernel::Hmc { n_leapfrog } => n_leapfrog,
        };
        s.sampling_grad_evals = self.draws * per_iter * n;
        out
    }
}

/// Advances the round-trip bookkeeping after a swap round; returns trips completed.
fn count_trips(labels: &[usize], trips: &mut [Trip], b: usize, k_rep: usize) -> usize {
    let mut done = 0;
    for (row, &lab) in labels.iter().enumerate() {
        let k = row / b;
        if k == 0 {
            if trips[lab] == Trip::FromHot {
                done += 1;
            }
            trips[lab] = Trip::FromCold;
        } else if k + 1 == k_rep && trips[lab] == Trip::FromCold {
            trips[lab] = Trip::FromHot;
        }
    }
    done
}

/// All replicas of all chains, row-major f64, with their untempered energies and scores.
struct State {
    x: Vec<f64>,
    e: Vec<f64>,
    s: Vec<f64>,
    d: usize,
    shape: Vec<usize>,
    dtype: DType,
    calls: usize,
}

impl State {
    fn shape_of(&self, rows: usize) -> Vec<usize> {
        let mut s = self.shape.clone();
        s[0] = rows;
        s
    }

    fn eval(&mut self, target: &impl Target, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        self.calls += 1;
        let (e, s) = target.energy_and_score(&Tensor::from_f64s(x, &self.shape, self.dtype));
        (e.to_vec_f64(), s.to_vec_f64())
    }

    fn eval_current(&mut self, target: &impl Target) {
        let x = std::mem::take(&mut self.x);
        (self.e, self.s) = self.eval(target, &x);
        self.x = x;
    }

    fn swap(&mut self, i: usize, j: usize) {
        let d = self.d;
        for t in 0..d {
            self.x.swap(i * d + t, j * d + t);
            self.s.swap(i * d + t, j * d + t);
        }
        self.e.swap(i, j);
    }

    /// Accepts row r's proposal with probability min(1, e^{log α_r}); returns min(1, e^{log α}).
    fn accept(
        &mut self,
        y: Vec<f64>,
        ey: Vec<f64>,
        sy: Vec<f64>,
        log_a: &[f64],
        rng: &mut Rng,
    ) -> Vec<f64> {
        let d = self.d;
        let u = rng.uniform_vec(log_a.len());
        let mut prob = vec![0.0; log_a.len()];
        for (r, la) in log_a.iter().enumerate() {
            prob[r] = if la.is_nan() { 0.0 } else { la.min(0.0).exp() };
            if u[r].ln() < *la {
                self.x[r * d..(r + 1) * d].copy_from_slice(&y[r * d..(r + 1) * d]);
                self.s[r * d..(r + 1) * d].copy_from_slice(&sy[r * d..(r + 1) * d]);
                self.e[r] = ey[r];
            }
        }
        prob
    }

    /// One MALA step of every row on exp(−β_r E) with step ε_r (see [`crate::mala`]):
    /// y = x + (ε²/2)β s(x) + ε z.
    fn mala(&mut self, target: &impl Target, beta: &[f64], eps: &[f64], rng: &mut Rng) -> Vec<f64> {
        let d = self.d;
        let z = rng.normal_vec(self.x.len());
        let y: Vec<f64> = (0..self.x.len())
            .map(|i| {
                let r = i / d;
                self.x[i] + 0.5 * eps[r] * eps[r] * beta[r] * self.s[i] + eps[r] * z[i]
            })
            .collect();
        let (ey, sy) = self.eval(target, &y);
        let log_a: Vec<f64> = (0..beta.len())
            .map(|r| {
                let h = 0.5 * eps[r] * eps[r] * beta[r];
                let mut back = 0.0;
                let mut fwd = 0.0;
                for t in r * d..(r + 1) * d {
                    back += (self.x[t] - y[t] - h * sy[t]).powi(2);
                    fwd += z[t] * z[t];
                }
                beta[r] * (self.e[r] - ey[r]) - back / (2.0 * eps[r] * eps[r]) + 0.5 * fwd
            })
            .collect();
        self.accept(y, ey, sy, &log_a, rng)
    }

    /// One HMC iteration of every row on exp(−β_r E), `steps` leapfrog steps of ε_r.
    fn hmc(
        &mut self,
        target: &impl Target,
        beta: &[f64],
        eps: &[f64],
        steps: usize,
        rng: &mut Rng,
    ) -> Vec<f64> {
        let d = self.d;
        let p0 = rng.normal_vec(self.x.len());
        let kick = |p: &mut [f64], s: &[f64], half: bool| {
            for (i, (pi, si)) in p.iter_mut().zip(s).enumerate() {
                let r = i / d;
                *pi += if half { 0.5 } else { 1.0 } * eps[r] * beta[r] * si;
            }
        };
        let mut p = p0.clone();
        kick(&mut p, &self.s, true);
        let mut y = self.x.clone();
        let (mut ey, mut sy) = (Vec::new(), Vec::new());
        for l in 0..steps {
            for (i, (yi, pi)) in y.iter_mut().zip(&p).enumerate() {
                *yi += eps[i / d] * pi;
            }
            (ey, sy) = self.eval(target, &y);
            kick(&mut p, &sy, l + 1 == steps);
        }
        let log_a: Vec<f64> = (0..beta.len())
            .map(|r| {
                let k0: f64 = p0[r * d..(r + 1) * d].iter().map(|v| v * v).sum();
                let k1: f64 = p[r * d..(r + 1) * d].iter().map(|v| v * v).sum();
                beta[r] * (self.e[r] - ey[r]) + 0.5 * (k0 - k1)
            })
            .collect();
        self.accept(y, ey, sy, &log_a, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equalised_ladder_evens_out_rejection() {
        // rejection concentrated on the hot pair: the new ladder crowds rungs there
        let betas = geometric_ladder(4, 0.01);
        let new = equalised_ladder(&betas, &[0.1, 0.1, 0.7]);
        assert_eq!((new[0], new[3]), (1.0, 0.01));
        assert!(new.windows(2).all(|w| w[0] > w[1]), "{new:?}");
        // Λ = 0.9 in all; rung 1 wants Λ = 0.6, inside the last segment [β₃, β₂]
        let f = (0.6 - 0.0) / 0.7;
        assert!((new[1] - (betas[3] + f * (betas[2] - betas[3]))).abs() < 1e-12);
        // equal rates leave the ladder alone
        let same = equalised_ladder(&betas, &[0.3, 0.3, 0.3]);
        assert!(same.iter().zip(&betas).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn the_builder_makes_the_constructors_ladder() {
        let built = Tempering::default()
            .with_beta_min(0.02)
            .with_replicas(5)
            .with_warmup(30)
            .with_draws(40)
            .with_step_size(0.2);
        let old = Tempering::new(5, 0.02, 30, 40);
        assert_eq!(built.betas, old.betas);
        assert_eq!((built.warmup, built.draws), (30, 40));
        assert_eq!((built.step_size, old.step_size), (0.2, 0.5));
        assert_eq!(built.beta_min(), 0.02);
        // the replica count keeps β_min, β_min keeps the replica count
        let more = built.clone().with_replicas(9);
        assert_eq!(more.betas, geometric_ladder(9, 0.02));
        assert_eq!(more.with_beta_min(0.5).betas, geometric_ladder(9, 0.5));
        assert_eq!(Tempering::default().betas, geometric_ladder(8, 0.05));
    }

    #[test]
    fn round_trips_count_cold_hot_cold() {
        // one chain, 3 rungs: label 0 goes cold → hot → cold
        let mut trips = vec![Trip::Unseen; 3];
        assert_eq!(count_trips(&[0, 1, 2], &mut trips, 1, 3), 0);
        assert_eq!(count_trips(&[1, 2, 0], &mut trips, 1, 3), 0);
        assert_eq!(count_trips(&[2, 0, 1], &mut trips, 1, 3), 0);
        assert_eq!(count_trips(&[0, 2, 1], &mut trips, 1, 3), 1);
    }
}
