//! The unadjusted Langevin algorithm (ULA): Euler–Maruyama on the Langevin diffusion
//! dx = −∇E(x) dt + √2 dw, whose stationary law is p ∝ exp(−E) (Roberts & Tweedie 1996,
//! "Exponential convergence of Langevin distributions and their discrete approximations").
//!
//! With no Metropolis correction the chain is biased at any finite step: on a Gaussian with
//! precision λ (one dimension) the tied step x ← x − (ε²/2)λx + εz has stationary variance
//! 1/(λ(1 − ε²λ/4)), a relative bias of ε²λ/4 + O(ε⁴).

use crate::target::Target;
use crate::util::{axpby, noise_like, per_row, row_norms, row_values};
use crate::{Record, Samples};
use ebm_core::{Rng, Tensor};

/// The step of a Langevin update x ← x + η s(x) + σ z, in the two parameterisations papers use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// x ← x + (ε²/2) s(x) + ε z: the discretised Langevin diffusion with time step ε²/2,
    /// targeting p ∝ exp(−E) (temperature 1) as ε → 0.
    Tied {
        /// The step ε.
        eps: f64,
    },
    /// x ← x + η s(x) + σ z with η and σ chosen independently, as in SGLD-style EBM training
    /// (e.g. Du & Mordatch 2019: η = 10, σ = 0.005). This is the tied step at time step η on
    /// the energy E/T with temperature T = σ²/(2η): it targets p ∝ exp(−E/T), usually far
    /// colder than 1, which is why short-run chains then look like modes more than samples.
    Decoupled {
        /// The drift step η.
        step: f64,
        /// The noise scale σ.
        noise: f64,
    },
}

impl Step {
    /// (η, σ) of x ← x + η s(x) + σ z.
    pub fn coefficients(&self) -> (f64, f64) {
        match *self {
            Step::Tied { eps } => (0.5 * eps * eps, eps),
            Step::Decoupled { step, noise } => (step, noise),
        }
    }

    /// The temperature the update targets, T = σ²/(2η) (1 for the tied step).
    pub fn temperature(&self) -> f64 {
        let (eta, sigma) = self.coefficients();
        sigma * sigma / (2.0 * eta)
    }
}

/// Clipping of the score before the update (a guard against exploding gradients of a
/// half-trained energy; it changes the dynamics wherever it binds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clip {
    /// Clamp every element to [−c, c] (as Du & Mordatch 2019 clamp gradients to ±0.01).
    Value(f64),
    /// Rescale each row so that its Euclidean norm is at most c.
    Norm(f64),
}

impl Clip {
    /// The clipped score.
    pub fn apply(&self, s: &Tensor) -> Tensor {
        match *self {
            Clip::Value(c) => {
                let hi = Tensor::scalar(c, s.dtype());
                let lo = Tensor::scalar(-c, s.dtype());
                s.minimum(&hi).maximum(&lo)
            }
            Clip::Norm(c) => {
                let f: Vec<f64> = row_norms(s)
                    .into_iter()
                    .map(|n| if n > c { c / n } else { 1.0 })
                    .collect();
                s.mul(&per_row(&row_values(&f, s.dtype()), s))
            }
        }
    }
}

/// Unadjusted Langevin dynamics for `n_steps` steps on batched chains.
#[derive(Clone, Debug)]
pub struct Ula {
    /// The step-size rule.
    pub step: Step,
    /// Steps per call.
    pub n_steps: usize,
    /// Optional clipping of the score before each update.
    pub clip: Option<Clip>,
    /// What to record along the chains.
    pub record: Record,
}

impl Ula {
    /// ULA with the given step, no clipping, recording nothing.
    pub fn new(step: Step, n_steps: usize) -> Ula {
        Ula {
            step,
            n_steps,
            clip: None,
            record: Record::none(),
        }
    }

    /// With clipping `clip`.
    pub fn with_clip(mut self, clip: Clip) -> Ula {
        self.clip = Some(clip);
        self
    }

    /// Recording `record`.
    pub fn with_record(mut self, record: Record) -> Ula {
        self.record = record;
        self
    }

    /// One update x ← x + η clip(s(x)) + σ z given the score at x.
    fn update(&self, x: Tensor, s: &Tensor, rng: &mut Rng) -> Tensor {
        let (eta, sigma) = self.step.coefficients();
        let z = noise_like(&x, rng);
        match &self.clip {
            Some(c) => axpby(x, eta, &c.apply(s), sigma, &z),
            None => axpby(x, eta, s, sigma, &z),
        }
    }

    /// One ULA step of every chain.
    pub fn step(&self, target: &impl Target, x: Tensor, rng: &mut Rng) -> Tensor {
        let s = target.score(&x);
        self.update(x, &s, rng)
    }

    /// Runs `n_steps` steps from `x0` (one row per chain).
    pub fn run(&self, target: &impl Target, x0: Tensor, rng: &mut Rng) -> Samples {
        let rec = self.record;
        let mut out = Samples::new(Tensor::zeros(&[0], x0.dtype()));
        let mut x = x0;
        for k in 0..self.n_steps {
            // the energy of the state recorded at step k−1 comes with this step's score
            let s = if k > 0 && rec.energies && rec.at(k - 1) {
                let (e, s) = target.energy_and_score(&x);
                out.energies.push(e);
                out.stats.energy_evals += 1;
                s
            } else {
                target.score(&x)
            };
            out.stats.score_evals += 1;
            x = self.update(x, &s, rng);
            if rec.states && rec.at(k) {
                out.states.push(x.clone());
            }
        }
        if self.n_steps > 0 && rec.energies && rec.at(self.n_steps - 1) {
            out.energies.push(target.energy(&x));
            out.stats.energy_evals += 1;
        }
        out.x = x;
        out.stats.steps = self.n_steps;
        let (eta, _) = self.step.coefficients();
        out.stats.step_size = Some(eta);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::DType;

    #[test]
    fn temperatures_of_the_two_parameterisations() {
        assert!((Step::Tied { eps: 0.3 }.temperature() - 1.0).abs() < 1e-15);
        // Du & Mordatch: η = 10, σ = 0.005 → T = 2.5e-5/20 = 1.25e-6
        let t = Step::Decoupled {
            step: 10.0,
            noise: 0.005,
        }
        .temperature();
        assert!((t - 1.25e-6).abs() < 1e-18);
    }

    #[test]
    fn clipping_by_value_and_by_norm() {
        let s = Tensor::from_vec(vec![3.0f64, -4.0, 0.1, 0.2], &[2, 2]);
        assert_eq!(
            Clip::Value(1.0).apply(&s).to_vec_f64(),
            vec![1.0, -1.0, 0.1, 0.2]
        );
        // row 0 has norm 5 → scaled to norm 1; row 1 is inside
        let n = Clip::Norm(1.0).apply(&s).to_vec_f64();
        assert!((n[0] - 0.6).abs() < 1e-15 && (n[1] + 0.8).abs() < 1e-15);
        assert_eq!(&n[2..], &[0.1, 0.2]);
    }

    #[test]
    fn records_states_and_energies() {
        let g = crate::Gaussian::isotropic(&[0.0, 0.0], 1.0);
        let ula = Ula::new(Step::Tied { eps: 0.5 }, 10).with_record(Record::every(2));
        let out = ula.run(&g, Tensor::zeros(&[3, 2], DType::F64), &mut Rng::new(1));
        assert_eq!(out.states.len(), 5);
        assert_eq!(out.energies.len(), 5);
        // the recorded energy is the energy of the recorded state
        for (s, e) in out.states.iter().zip(&out.energies) {
            assert!(g.energy(s).max_abs_diff(e) < 1e-12);
        }
        assert!(out.states[4].max_abs_diff(&out.x) == 0.0);
    }
}
