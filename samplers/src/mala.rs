//! The Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996; Besag 1994) and the
//! dual-averaging step-size adaptation shared with HMC.
//!
//! Proposal (tied step ε): y = x + (ε²/2) s(x) + ε z, so q(y | x) = N(y; x + (ε²/2)s(x), ε²I).
//! Accept with probability min(1, exp(E(x) − E(y) + log q(x | y) − log q(y | x))); the chain
//! then leaves p ∝ exp(−E) exactly invariant, unlike ULA. The optimal acceptance rate in high
//! dimension is 0.574 (Roberts & Rosenthal 1998).

use crate::target::Target;
use crate::util::{noise_like, row_sum, select_rows};
use crate::{Record, Samples};
use ebm_core::{Rng, Tensor};

/// Dual-averaging adaptation of a step size toward a target acceptance statistic δ
/// (Nesterov 2009, as adapted by Hoffman & Gelman 2014, "The No-U-Turn Sampler", Algorithm 5):
///
/// H̄ₘ = (1 − 1/(m + t₀)) H̄ₘ₋₁ + (δ − αₘ)/(m + t₀),   log εₘ = μ − (√m/γ) H̄ₘ,
/// log ε̄ₘ = m^(−κ) log εₘ + (1 − m^(−κ)) log ε̄ₘ₋₁,
///
/// with μ = log(10 ε₀), γ = 0.05, t₀ = 10, κ = 0.75. Sampling then uses ε̄ from the end of
/// warm-up. With batched chains, αₘ is the mean acceptance probability over chains and all
/// chains share one step size.
#[derive(Clone, Debug)]
pub struct DualAveraging {
    /// The target acceptance rate δ.
    pub target: f64,
    /// Shrinkage γ towards μ.
    pub gamma: f64,
    /// Offset t₀ that damps the first iterations.
    pub t0: f64,
    /// Decay κ of the averaging weights.
    pub kappa: f64,
    mu: f64,
    h_bar: f64,
    log_eps_bar: f64,
    m: u64,
}

impl DualAveraging {
    /// Adaptation from the initial step `eps0` toward acceptance `target`.
    pub fn new(eps0: f64, target: f64) -> DualAveraging {
        assert!(
            eps0 > 0.0 && 0.0 < target && target < 1.0,
            "DualAveraging: need ε₀ > 0 and a target in (0, 1), got {eps0}, {target}"
        );
        DualAveraging {
            target,
            gamma: 0.05,
            t0: 10.0,
            kappa: 0.75,
            mu: (10.0 * eps0).ln(),
            h_bar: 0.0,
            log_eps_bar: 0.0,
            m: 0,
        }
    }

    /// Feeds one acceptance statistic; returns the step size for the next iteration.
    pub fn update(&mut self, accept: f64) -> f64 {
        self.m += 1;
        let m = self.m as f64;
        let w = 1.0 / (m + self.t0);
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - accept);
        let log_eps = self.mu - m.sqrt() / self.gamma * self.h_bar;
        let eta = m.powf(-self.kappa);
        self.log_eps_bar = eta * log_eps + (1.0 - eta) * self.log_eps_bar;
        log_eps.exp()
    }

    /// The averaged step size ε̄ to sample with after warm-up.
    pub fn final_step(&self) -> f64 {
        self.log_eps_bar.exp()
    }
}

/// `eps`, or a panic naming `sampler` unless it is finite and positive.
pub(crate) fn positive_step(eps: f64, sampler: &str) -> f64 {
    assert!(
        eps.is_finite() && eps > 0.0,
        "{sampler}: step size {eps} must be finite and positive"
    );
    eps
}

/// `target`, or a panic naming `sampler` unless it is in (0, 1).
pub(crate) fn acceptance_target(target: f64, sampler: &str) -> f64 {
    assert!(
        0.0 < target && target < 1.0,
        "{sampler}: target acceptance {target} not in (0, 1)"
    );
    target
}

/// Metropolis–Hastings decisions for every chain from log acceptance ratios; returns the
/// accepted mask and the mean acceptance probability min(1, e^{log α}) (NaN counts as 0).
pub(crate) fn mh_accept(log_alpha: &[f64], rng: &mut Rng) -> (Vec<bool>, f64) {
    let u = rng.uniform_vec(log_alpha.len());
    let acc: Vec<bool> = log_alpha
        .iter()
        .zip(&u)
        .map(|(la, ui)| ui.ln() < *la) // false for NaN
        .collect();
    let prob = log_alpha
        .iter()
        .map(|la| if la.is_nan() { 0.0 } else { la.min(0.0).exp() })
        .sum::<f64>()
        / log_alpha.len().max(1) as f64;
    (acc, prob)
}

/// Shared bookkeeping of MH samplers: warm-up adaptation, per-chain acceptance counts.
pub(crate) struct MhRun {
    pub(crate) da: Option<DualAveraging>,
    pub(crate) eps: f64,
    accepted: Vec<usize>,
    sampling_steps: usize,
}

impl MhRun {
    pub(crate) fn new(eps0: f64, adapt: bool, target: f64, chains: usize) -> MhRun {
        MhRun {
            da: adapt.then(|| DualAveraging::new(eps0, target)),
            eps: eps0,
            accepted: vec![0; chains],
            sampling_steps: 0,
        }
    }

    /// Records one iteration's outcome; adapts during warm-up, fixes ε̄ at its end.
    pub(crate) fn after(
        &mut self,
        warmup: bool,
        last_warmup: bool,
        acc: &[bool],
        prob: f64,
        out: &mut Samples,
    ) {
        if warmup {
            if let Some(da) = &mut self.da {
                self.eps = da.update(prob);
                out.stats.step_sizes.push(self.eps);
                if last_warmup {
                    self.eps = da.final_step();
                }
            }
        } else {
            self.sampling_steps += 1;
            for (n, &a) in self.accepted.iter_mut().zip(acc) {
                *n += a as usize;
            }
        }
    }

    pub(crate) fn finish(&self, out: &mut Samples) {
        let n = self.sampling_steps.max(1) as f64;
        out.stats.chain_accept_rate = self.accepted.iter().map(|&a| a as f64 / n).collect();
        let c = self.accepted.len().max(1) as f64;
        out.stats.accept_rate = Some(out.stats.chain_accept_rate.iter().sum::<f64>() / c);
        out.stats.step_size = Some(self.eps);
    }
}

/// MALA on batched chains: `warmup` adaptation steps (not recorded) then `n_steps` sampling
/// steps at a fixed step size.
///
/// Build it by name: `Mala::default().with_step_size(0.5).with_warmup(500).with_draws(1000)`
/// ([`Mala::default`]: ε₀ = 0.1, 1000 warm-up steps, 1000 draws, adaptation toward 0.574,
/// every draw recorded, as for [`Nuts`](crate::Nuts)).
#[derive(Clone, Debug)]
pub struct Mala {
    /// The initial step ε (fixed when `adapt` is off).
    pub step_size: f64,
    /// Steps after warm-up.
    pub n_steps: usize,
    /// Warm-up steps (adapting ε when `adapt`).
    pub warmup: usize,
    /// Adapt ε by dual averaging during warm-up.
    pub adapt: bool,
    /// Target acceptance of the adaptation (default 0.574).
    pub target_accept: f64,
    /// What to record along the chains.
    pub record: Record,
}

impl Default for Mala {
    fn default() -> Mala {
        Mala::new(0.1, 1000, 1000).with_record(Record::every(1))
    }
}

impl Mala {
    /// MALA with adaptation toward 0.574 during `warmup` steps (positional: the builder
    /// methods on [`Mala::default`] name each number).
    pub fn new(step_size: f64, warmup: usize, n_steps: usize) -> Mala {
        Mala {
            step_size,
            n_steps,
            warmup,
            adapt: true,
            target_accept: 0.574,
            record: Record::none(),
        }
    }

    /// Sets the initial step size ε (the fixed one without adaptation).
    pub fn with_step_size(mut self, eps: f64) -> Mala {
        self.step_size = positive_step(eps, "Mala");
        self
    }

    /// Sets the number of warm-up (adaptation) steps.
    pub fn with_warmup(mut self, steps: usize) -> Mala {
        self.warmup = steps;
        self
    }

    /// Sets the number of sampling steps (draws per chain, `n_steps`).
    pub fn with_draws(mut self, draws: usize) -> Mala {
        self.n_steps = draws;
        self
    }

    /// Sets the acceptance rate the warm-up adapts ε toward.
    pub fn with_target_accept(mut self, target: f64) -> Mala {
        self.target_accept = acceptance_target(target, "Mala");
        self
    }

    /// Turns step-size adaptation on or off (off: ε stays at its initial value).
    pub fn with_adaptation(mut self, on: bool) -> Mala {
        self.adapt = on;
        self
    }

    /// Sets what to record of the sampling steps.
    pub fn with_record(mut self, record: Record) -> Mala {
        self.record = record;
        self
    }

    /// Runs warm-up then sampling from `x0` (one row per chain).
    pub fn run(&self, target: &impl Target, x0: Tensor, rng: &mut Rng) -> Samples {
        let b = x0.shape()[0];
        let mut out = Samples::new(x0.clone());
        let mut mh = MhRun::new(self.step_size, self.adapt, self.target_accept, b);
        let (mut x, (mut e, mut s)) = (x0.clone(), target.energy_and_score(&x0));
        let mut evals = 1;
        let total = self.warmup + self.n_steps;
        for k in 0..total {
            let warm = k < self.warmup;
            let eps = mh.eps;
            let h = 0.5 * eps * eps;
            let z = noise_like(&x, rng);
            // y = x + h s(x) + ε z
            let y = x.add(&s.mul_scalar(h)).add(&z.mul_scalar(eps));
            let (ey, sy) = target.energy_and_score(&y);
            evals += 1;
            // log q(y|x) = −‖z‖²/2; log q(x|y) = −‖x − y − h s(y)‖²/(2ε²)
            let back = x.sub(&y).sub(&sy.mul_scalar(h));
            let log_q_back = row_sum(&back.square()).mul_scalar(-0.5 / (eps * eps));
            let log_q_fwd = row_sum(&z.square()).mul_scalar(-0.5);
            let log_alpha = e.sub(&ey).add(&log_q_back).sub(&log_q_fwd).to_vec_f64();
            let (acc, prob) = mh_accept(&log_alpha, rng);
            x = select_rows(&acc, &y, &x);
            e = select_rows(&acc, &ey, &e);
            s = select_rows(&acc, &sy, &s);
            mh.after(warm, k + 1 == self.warmup, &acc, prob, &mut out);
            if !warm {
                out.record(&self.record, k - self.warmup, &x, Some(&e));
            }
        }
        mh.finish(&mut out);
        out.x = x;
        out.stats.steps = self.n_steps;
        out.stats.warmup = self.warmup;
        out.stats.score_evals = evals;
        out.stats.energy_evals = evals;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_averaging_finds_the_step_of_a_known_acceptance_curve() {
        // acceptance a(ε) = exp(−ε²): the target 0.5 is reached at ε* = √ln 2 = 0.8326
        let mut da = DualAveraging::new(0.01, 0.5);
        let mut eps: f64 = 0.01;
        for _ in 0..2000 {
            eps = da.update((-eps * eps).exp());
        }
        let star = 2f64.ln().sqrt();
        assert!(
            (da.final_step() - star).abs() < 0.01 * star,
            "{}",
            da.final_step()
        );
    }

    #[test]
    fn builders_name_every_number() {
        let m = Mala::default()
            .with_step_size(0.5)
            .with_warmup(200)
            .with_draws(300)
            .with_target_accept(0.6)
            .with_adaptation(false)
            .with_record(Record::every(3));
        assert_eq!((m.step_size, m.warmup, m.n_steps), (0.5, 200, 300));
        assert_eq!(
            (m.target_accept, m.adapt, m.record),
            (0.6, false, Record::every(3))
        );
        let d = Mala::default();
        assert_eq!(
            (d.step_size, d.warmup, d.n_steps, d.adapt),
            (0.1, 1000, 1000, true)
        );
        assert_eq!(d.record, Record::every(1));
    }

    #[test]
    #[should_panic(expected = "Mala: target acceptance 1.5 not in (0, 1)")]
    fn a_target_outside_the_unit_interval_panics() {
        let _ = Mala::default().with_target_accept(1.5);
    }

    #[test]
    fn mh_accepts_certain_moves_and_rejects_nan() {
        let mut rng = Rng::new(0);
        let (acc, prob) = mh_accept(&[0.0, 5.0, f64::NAN, f64::NEG_INFINITY], &mut rng);
        assert_eq!(acc, vec![true, true, false, false]);
        assert!((prob - 0.5).abs() < 1e-15);
    }
}
