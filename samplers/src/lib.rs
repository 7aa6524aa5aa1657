//! # ebm-samplers: from Langevin to probability-flow ODEs
//!
//! Every sampler of the energy-based-model literature, on batched chains (one row of `x` per
//! chain), each taking an explicit seeded [`Rng`](ebm_core::Rng) and returning its samples plus
//! diagnostics ([`Samples`]).
//!
//! | sampler | module | asks the model for |
//! | --- | --- | --- |
//! | unadjusted Langevin (ULA), tied or decoupled step/noise, gradient clipping | [`ula`] | score |
//! | MALA, dual-averaging step-size adaptation | [`mala`] | energy + score |
//! | HMC (leapfrog), dual-averaging step-size adaptation | [`hmc`] | energy + score |
//! | NUTS (multinomial, Stan's windowed warm-up, diagonal/dense metric) | [`nuts`] | energy + score |
//! | ChEES-HMC: thousands of lock-step chains, adapted trajectory length | [`chees`] | energy + score |
//! | parallel tempering (MALA/HMC replicas, adaptive ladder) | [`tempering`] | energy + score |
//! | short-run SGLD with a replay buffer (PCD) | [`replay`] | score |
//! | annealed Langevin dynamics (NCSN) | [`annealed`] | noise-conditional score |
//! | reverse-time SDE: Euler–Maruyama, predictor–corrector (VE, VP) | [`sde`] | time-conditional score |
//! | probability-flow ODE: Euler, Heun, RK45; log-likelihood | [`ode`] | score (+ divergence) |
//!
//! Samplers see tensors, not tapes (DESIGN.md, decision 2): they call a [`Target`],
//! [`NoiseScore`], [`TimeScore`] or [`ScoreDivergence`] on a plain `Tensor` batch. Autodiff
//! models enter through [`VarEnergy`], [`VarTimeEnergy`] and [`VarTimeScore`], which build a
//! fresh tape per call; [`analytic`] holds Gaussians and mixtures with exact scores at every
//! noise level, against which the tests check each sampler, and [`test_targets`] an
//! ill-conditioned Gaussian and Neal's funnel. [`diagnostics`] has ESS, split-R̂ and
//! [`diagnostics::efficiency`] (ESS per gradient and per second).
//!
//! Conventions: E(x) is `[B]`, the score s(x) = −∇ₓE(x) = ∇ₓ log p(x) is shaped like x.
//!
//! ```
//! use ebm_autodiff::Var;
//! use ebm_core::{DType, Rng};
//! use ebm_samplers::{Mala, Record, Target, VarEnergy};
//!
//! // E(x) = ¼‖x‖⁴ − ‖x‖² per row: a ring. Any energy in Var ops is a target.
//! let ring = VarEnergy::new(|x: &Var| {
//!     let r2 = x.square().sum(&[1], false);
//!     r2.square().mul_scalar(0.25).sub(&r2)
//! });
//! let mut rng = Rng::new(0);
//! let x0 = rng.normal(&[256, 2], DType::F64); // 256 chains
//! let out = Mala::new(0.3, 200, 200).with_record(Record::every(10)).run(&ring, x0, &mut rng);
//! assert_eq!(out.x.shape(), &[256, 2]);
//! let acc = out.stats.accept_rate.unwrap();
//! assert!(acc > 0.3 && acc < 0.9, "acceptance {acc}");
//! assert!(out.split_rhat(0) < 1.1);
//! let _energy_trace = out.mean_energy_trace();
//! ```

pub mod analytic;
pub mod annealed;
pub mod chees;
pub mod diagnostics;
pub mod double_well;
pub mod hmc;
pub mod mala;
pub mod metric;
pub mod nuts;
pub mod ode;
pub mod replay;
pub mod sde;
pub mod target;
pub mod tempering;
pub mod test_targets;
pub mod ula;
mod util;

pub use analytic::{Diffused, Gaussian, GaussianMixture, Perturb, Perturbed};
pub use annealed::AnnealedLangevin;
pub use chees::Chees;
pub use diagnostics::Estimate;
pub use double_well::DoubleWell;
pub use hmc::Hmc;
pub use mala::{DualAveraging, Mala};
pub use metric::{Metric, MetricKind};
pub use nuts::Nuts;
pub use ode::{Divergence, Likelihood, OdeSolver, PfOde};
pub use replay::{Init, ReplayBuffer, ShortRun, ShortRunSgld};
pub use sde::{Corrector, Predictor, ReverseSde, Sde, VeSde, VpSde};
pub use target::{
    NoiseScore, ScoreDivergence, Target, TimeScore, VarEnergy, VarTimeEnergy, VarTimeScore,
};
pub use tempering::{InnerKernel, Tempering};
pub use ula::{Clip, Step, Ula};
pub use util::sample_without_replacement;

use ebm_core::Tensor;

/// What to keep of a chain's path while sampling (warm-up is never recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Keep every `every`-th step (0: keep nothing).
    pub every: usize,
    /// Keep the states `[B, …]`.
    pub states: bool,
    /// Keep the energies `[B]` (ULA then evaluates the energy at recorded steps).
    pub energies: bool,
}

impl Record {
    /// Keep nothing but the final states.
    pub fn none() -> Record {
        Record::default()
    }

    /// Keep states and energies every `every` steps.
    pub fn every(every: usize) -> Record {
        Record {
            every,
            states: true,
            energies: true,
        }
    }

    /// Keep only energies every `every` steps (an energy trace).
    pub fn energies(every: usize) -> Record {
        Record {
            every,
            states: false,
            energies: true,
        }
    }

    pub(crate) fn at(&self, step: usize) -> bool {
        self.every > 0 && (step + 1).is_multiple_of(self.every) && (self.states || self.energies)
    }
}

/// Counters and adaptation results of one sampler run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Sampling steps run (after warm-up).
    pub steps: usize,
    /// Warm-up (adaptation) steps run.
    pub warmup: usize,
    /// Mean Metropolis–Hastings acceptance over chains and sampling steps (MALA, HMC).
    pub accept_rate: Option<f64>,
    /// Acceptance rate of each chain over the sampling steps.
    pub chain_accept_rate: Vec<f64>,
    /// The step size used for sampling (after adaptation, where there is one).
    pub step_size: Option<f64>,
    /// Step sizes over time: the warm-up adaptation path (MALA, HMC), the Langevin-corrector
    /// steps (PC sampler), the accepted ODE steps (RK45).
    pub step_sizes: Vec<f64>,
    /// Score (gradient) evaluations on the batch.
    pub score_evals: usize,
    /// Energy evaluations on the batch (counting combined energy-and-score calls).
    pub energy_evals: usize,
    /// Rejected adaptive ODE steps.
    pub rejected_steps: usize,
    /// Gradient (score) evaluations counted per chain and summed over chains, warm-up
    /// included (NUTS, ChEES, tempering; 0 where only batched calls are counted, see
    /// [`Samples::gradient_evals`]).
    pub grad_evals: usize,
    /// The part of `grad_evals` spent after warm-up.
    pub sampling_grad_evals: usize,
    /// Divergent transitions after warm-up (energy error above the sampler's threshold).
    pub divergences: usize,
    /// Divergent transitions during warm-up.
    pub warmup_divergences: usize,
    /// Mean NUTS tree depth (doublings) over chains and sampling iterations.
    pub mean_tree_depth: Option<f64>,
    /// NUTS sampling iterations that stopped at the maximum tree depth.
    pub max_depth_hits: usize,
    /// Each chain's adapted step size (NUTS adapts one per chain).
    pub chain_step_sizes: Vec<f64>,
    /// The adapted trajectory length ε·L (ChEES-HMC; each iteration uses a jittered fraction).
    pub trajectory_length: Option<f64>,
    /// Parallel tempering: the inverse temperatures β₀ = 1 > β₁ > … of the ladder used.
    pub betas: Vec<f64>,
    /// Parallel tempering: the swap acceptance rate of each neighbouring pair (βₖ, βₖ₊₁).
    pub swap_rates: Vec<f64>,
    /// Parallel tempering: the acceptance rate of each replica's inner kernel.
    pub replica_accept_rates: Vec<f64>,
    /// Parallel tempering: completed round trips (β₀ → β_K → β₀) of states along the ladder.
    pub round_trips: usize,
}

/// A sampler's result: the final state of every chain, the recorded path and [`Stats`].
#[derive(Clone, Debug)]
pub struct Samples {
    /// The final states, `[B, …]`, one row per chain.
    pub x: Tensor,
    /// Recorded states (see [`Record`]), each `[B, …]`.
    pub states: Vec<Tensor>,
    /// Recorded energies, each `[B]`: the energy trace.
    pub energies: Vec<Tensor>,
    /// Work counters.
    pub stats: Stats,
}

impl Samples {
    pub(crate) fn new(x: Tensor) -> Samples {
        Samples {
            x,
            states: Vec::new(),
            energies: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Element `j` of every row over the recorded states, as `draws[chain][iteration]`.
    pub fn coordinate_draws(&self, j: usize) -> Vec<Vec<f64>> {
        assert!(
            !self.states.is_empty(),
            "coordinate_draws: no states were recorded"
        );
        let b = self.states[0].shape()[0];
        let d = self.states[0].numel() / b;
        assert!(j < d, "coordinate_draws: element {j} of rows of {d}");
        let flat: Vec<Vec<f64>> = self.states.iter().map(|s| s.to_vec_f64()).collect();
        (0..b)
            .map(|c| flat.iter().map(|s| s[c * d + j]).collect())
            .collect()
    }

    /// The energy trace as `draws[chain][iteration]`.
    pub fn energy_draws(&self) -> Vec<Vec<f64>> {
        assert!(
            !self.energies.is_empty(),
            "energy_draws: no energies were recorded"
        );
        let flat: Vec<Vec<f64>> = self.energies.iter().map(|e| e.to_vec_f64()).collect();
        let b = flat[0].len();
        (0..b)
            .map(|c| flat.iter().map(|e| e[c]).collect())
            .collect()
    }

    /// Effective sample size of element `j` across chains ([`diagnostics::ess`]).
    pub fn ess(&self, j: usize) -> f64 {
        diagnostics::ess(&self.coordinate_draws(j))
    }

    /// Split-R̂ of element `j` across chains ([`diagnostics::split_rhat`]).
    pub fn split_rhat(&self, j: usize) -> f64 {
        diagnostics::split_rhat(&self.coordinate_draws(j))
    }

    /// Gradient evaluations summed over chains: [`Stats::grad_evals`] where the sampler counts
    /// them per chain, else batched score calls × chains.
    pub fn gradient_evals(&self) -> usize {
        if self.stats.grad_evals > 0 {
            self.stats.grad_evals
        } else {
            self.stats.score_evals * self.x.shape()[0]
        }
    }

    /// Mean energy over chains at each recorded step.
    pub fn mean_energy_trace(&self) -> Vec<f64> {
        self.energies.iter().map(|e| e.mean_all().item()).collect()
    }

    pub(crate) fn record(&mut self, rec: &Record, step: usize, x: &Tensor, e: Option<&Tensor>) {
        if !rec.at(step) {
            return;
        }
        if rec.states {
            self.states.push(x.clone());
        }
        if rec.energies {
            if let Some(e) = e {
                self.energies.push(e.clone());
            }
        }
    }
}
