//! Hamiltonian Monte Carlo with a leapfrog integrator (Duane, Kennedy, Pendleton, Roweth 1987;
//! Neal 2011, "MCMC using Hamiltonian dynamics").
//!
//! H(x, p) = E(x) + ½‖p‖² with p ~ N(0, I). One iteration draws p, runs L leapfrog steps
//!   p ← p + (ε/2) s(x);  x ← x + ε p;  p ← p + (ε/2) s(x)   (the half kicks merge between steps),
//! and accepts the end point with probability min(1, exp(H(x, p) − H(x', p'))). The leapfrog
//! map is volume-preserving and reversible, so the chain leaves p ∝ exp(−E) exactly invariant.
//! The step size adapts by dual averaging ([`DualAveraging`](crate::DualAveraging)) toward an
//! acceptance of 0.65 (Beskos et al. 2013 derive 0.651 as optimal in high dimension).

use crate::mala::{acceptance_target, mh_accept, positive_step, MhRun};
use crate::target::Target;
use crate::util::{axpy, noise_like, row_sum, select_rows};
use crate::{Record, Samples};
use ebm_core::{Rng, Tensor};

/// HMC on batched chains: `warmup` adaptation steps (not recorded) then `n_steps` iterations of
/// `n_leapfrog` leapfrog steps each.
///
/// Build it by name: `Hmc::default().with_step_size(0.2).with_leapfrog_steps(20)` and so on
/// ([`Hmc::default`]: ε₀ = 0.1, 10 leapfrog steps, 1000 warm-up iterations, 1000 draws,
/// adaptation toward 0.65, jitter 0.1, every draw recorded).
#[derive(Clone, Debug)]
pub struct Hmc {
    /// The initial step ε (fixed when `adapt` is off).
    pub step_size: f64,
    /// Leapfrog steps per trajectory.
    pub n_leapfrog: usize,
    /// Iterations after warm-up.
    pub n_steps: usize,
    /// Warm-up iterations (adapting ε when `adapt`).
    pub warmup: usize,
    /// Adapt ε by dual averaging during warm-up.
    pub adapt: bool,
    /// Target acceptance of the adaptation (default 0.65).
    pub target_accept: f64,
    /// Each iteration uses ε·(1 + j·u), u ~ U(−1, 1), to break the periodic orbits a fixed
    /// trajectory length can fall into (Neal 2011, §5.4.2.2); the same for all chains.
    pub jitter: f64,
    /// What to record along the chains.
    pub record: Record,
}

impl Default for Hmc {
    fn default() -> Hmc {
        Hmc::new(0.1, 10, 1000, 1000).with_record(Record::every(1))
    }
}

impl Hmc {
    /// HMC with `n_leapfrog` steps per iteration, adaptation toward 0.65, jitter 0.1
    /// (positional: the builder methods on [`Hmc::default`] name each number).
    pub fn new(step_size: f64, n_leapfrog: usize, warmup: usize, n_steps: usize) -> Hmc {
        Hmc {
            step_size,
            n_leapfrog,
            n_steps,
            warmup,
            adapt: true,
            target_accept: 0.65,
            jitter: 0.1,
            record: Record::none(),
        }
    }

    /// Sets the initial step size ε (the fixed one without adaptation).
    pub fn with_step_size(mut self, eps: f64) -> Hmc {
        self.step_size = positive_step(eps, "Hmc");
        self
    }

    /// Sets the leapfrog steps per iteration (the trajectory length is about ε·L).
    pub fn with_leapfrog_steps(mut self, n: usize) -> Hmc {
        assert!(n > 0, "Hmc: n_leapfrog must be positive");
        self.n_leapfrog = n;
        self
    }

    /// Sets the number of warm-up (adaptation) iterations.
    pub fn with_warmup(mut self, iterations: usize) -> Hmc {
        self.warmup = iterations;
        self
    }

    /// Sets the number of sampling iterations (draws per chain, `n_steps`).
    pub fn with_draws(mut self, draws: usize) -> Hmc {
        self.n_steps = draws;
        self
    }

    /// Sets the acceptance rate the warm-up adapts ε toward.
    pub fn with_target_accept(mut self, target: f64) -> Hmc {
        self.target_accept = acceptance_target(target, "Hmc");
        self
    }

    /// Turns step-size adaptation on or off (off: ε stays at its initial value).
    pub fn with_adaptation(mut self, on: bool) -> Hmc {
        self.adapt = on;
        self
    }

    /// Sets the step-size jitter j: each iteration uses ε·(1 + j·u), u ~ U(−1, 1).
    pub fn with_jitter(mut self, jitter: f64) -> Hmc {
        assert!(
            (0.0..1.0).contains(&jitter),
            "Hmc: jitter {jitter} not in [0, 1)"
        );
        self.jitter = jitter;
        self
    }

    /// Sets what to record of the sampling iterations.
    pub fn with_record(mut self, record: Record) -> Hmc {
        self.record = record;
        self
    }

    /// Runs warm-up then sampling from `x0` (one row per chain).
    pub fn run(&self, target: &impl Target, x0: Tensor, rng: &mut Rng) -> Samples {
        assert!(self.n_leapfrog > 0, "Hmc: n_leapfrog must be positive");
        let b = x0.shape()[0];
        let mut out = Samples::new(x0.clone());
        let mut mh = MhRun::new(self.step_size, self.adapt, self.target_accept, b);
        let (mut x, (mut e, mut s)) = (x0.clone(), target.energy_and_score(&x0));
        let (mut score_evals, mut energy_evals) = (1, 1);
        for k in 0..self.warmup + self.n_steps {
            let warm = k < self.warmup;
            let eps = mh.eps * (1.0 + self.jitter * (2.0 * rng.next_f64() - 1.0));
            let p0 = noise_like(&x, rng);
            let h0 = e.add(&row_sum(&p0.square()).mul_scalar(0.5));
            // leapfrog
            let mut p = axpy(p0, 0.5 * eps, &s);
            let mut y = x.clone();
            let mut sy = s.clone();
            let mut ey = e.clone();
            for l in 0..self.n_leapfrog {
                y = axpy(y, eps, &p);
                let last = l + 1 == self.n_leapfrog;
                if last {
                    (ey, sy) = target.energy_and_score(&y);
                    energy_evals += 1;
                } else {
                    sy = target.score(&y);
                }
                score_evals += 1;
                p = axpy(p, if last { 0.5 * eps } else { eps }, &sy);
            }
            let h1 = ey.add(&row_sum(&p.square()).mul_scalar(0.5));
            let log_alpha = h0.sub(&h1).to_vec_f64();
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
        out.stats.score_evals = score_evals;
        out.stats.energy_evals = energy_evals;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Gaussian;
    use ebm_core::DType;

    #[test]
    fn builders_name_every_number() {
        let h = Hmc::default()
            .with_step_size(0.2)
            .with_leapfrog_steps(7)
            .with_warmup(50)
            .with_draws(60)
            .with_target_accept(0.8)
            .with_adaptation(false)
            .with_jitter(0.0)
            .with_record(Record::every(2));
        assert_eq!(
            (h.step_size, h.n_leapfrog, h.warmup, h.n_steps),
            (0.2, 7, 50, 60)
        );
        assert_eq!((h.target_accept, h.adapt, h.jitter), (0.8, false, 0.0));
        assert_eq!(h.record, Record::every(2));
        let d = Hmc::default();
        assert_eq!(
            (d.step_size, d.n_leapfrog, d.warmup, d.n_steps),
            (0.1, 10, 1000, 1000)
        );
        assert_eq!(d.record, Record::every(1));
    }

    #[test]
    fn leapfrog_conserves_energy_to_second_order() {
        // On a standard normal, the leapfrog energy error of a trajectory is O(ε²): halving ε
        // must cut the rejection rate E[max(0, ΔH)] ≈ c ε² by about 4; with ~200 rejections at
        // the smaller step the ratio has a relative sd of ~10%, so we allow 3–5.5.
        let g = Gaussian::isotropic(&[0.0, 0.0, 0.0], 1.0);
        let err = |eps: f64| {
            let mut hmc = Hmc::new(eps, (1.0 / eps) as usize, 0, 1);
            hmc.adapt = false;
            hmc.jitter = 0.0;
            let mut rng = Rng::new(4);
            let x0 = rng.normal(&[20_000, 3], DType::F64);
            let out = hmc.run(&g, x0, &mut rng);
            1.0 - out.stats.accept_rate.unwrap()
        };
        let (a, b) = (err(0.4), err(0.2));
        assert!(
            a > 0.0 && (3.0..5.5).contains(&(a / b)),
            "rejection {a} vs {b}"
        );
    }
}
