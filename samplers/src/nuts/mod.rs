//! The No-U-Turn Sampler with multinomial sampling, Stan-style (Hoffman & Gelman 2014, "The
//! No-U-Turn Sampler"; Betancourt 2017, "A conceptual introduction to Hamiltonian Monte
//! Carlo"): trajectories double until they turn back ([`tree`]), the step size adapts by dual
//! averaging toward a mean acceptance statistic of 0.8, and the mass matrix (diagonal or dense)
//! is estimated in Stan's doubling warm-up windows ([`crate::metric`]).
//!
//! Every chain runs its own trajectory, step size and metric, as independent Stan chains do.
//! Batched evaluation: each chain is a state machine that needs one gradient per leapfrog step
//! ([`chain`]); each round, the driver stacks the pending points of all chains into one `[n, d]`
//! batch and calls the target once. A chain that finishes its tree starts the next one in the
//! same round, so the batch stays full until chains run out of iterations; a model target then
//! pays for one matrix product per round instead of one per chain. Each chain draws from its
//! own generator (forked from the one passed in, in chain order), so results do not depend on
//! the batching or the number of threads.

mod chain;
mod tree;

use crate::metric::{Metric, MetricKind, WarmupWindows};
use crate::target::Target;
use crate::util::row_len;
use crate::{Record, Samples};
use chain::Chain;
use ebm_core::{Rng, Tensor};

/// NUTS options; [`Nuts::default`] is Stan's defaults (1000 warm-up, 1000 draws, δ = 0.8,
/// maximum tree depth 10, diagonal metric).
#[derive(Clone, Debug)]
pub struct Nuts {
    /// Warm-up (adaptation) iterations, not recorded.
    pub warmup: usize,
    /// Sampling iterations per chain.
    pub draws: usize,
    /// The initial step size (Stan's search starts from it when adapting).
    pub step_size: f64,
    /// Adapt the step size by dual averaging during warm-up.
    pub adapt_step_size: bool,
    /// Target mean acceptance statistic of the step-size adaptation (Stan's adapt_delta).
    pub target_accept: f64,
    /// Which mass matrix to adapt during warm-up ([`MetricKind::Unit`]: none).
    pub metric_kind: MetricKind,
    /// The initial inverse mass matrix (identity when `None`).
    pub metric: Option<Metric>,
    /// Trees stop after this many doublings (at most 2^max_depth − 1 leapfrog steps).
    pub max_depth: u32,
    /// A leaf with H − H₀ above this is a divergence.
    pub max_energy_error: f64,
    /// What to keep of the sampling iterations.
    pub record: Record,
}

impl Default for Nuts {
    fn default() -> Nuts {
        Nuts {
            warmup: 1000,
            draws: 1000,
            step_size: 1.0,
            adapt_step_size: true,
            target_accept: 0.8,
            metric_kind: MetricKind::Diagonal,
            metric: None,
            max_depth: 10,
            max_energy_error: 1000.0,
            record: Record::every(1),
        }
    }
}

impl Nuts {
    /// Stan's defaults with `warmup` adaptation iterations and `draws` draws per chain.
    pub fn new(warmup: usize, draws: usize) -> Nuts {
        Nuts {
            warmup,
            draws,
            ..Nuts::default()
        }
    }

    /// Sets the target acceptance statistic δ (raise it toward 0.95–0.99 on divergences).
    pub fn with_target_accept(mut self, delta: f64) -> Nuts {
        assert!(
            0.0 < delta && delta < 1.0,
            "Nuts: target acceptance {delta} not in (0, 1)"
        );
        self.target_accept = delta;
        self
    }

    /// Sets the kind of mass matrix adapted during warm-up.
    pub fn with_metric(mut self, kind: MetricKind) -> Nuts {
        self.metric_kind = kind;
        self
    }

    /// Sets the maximum tree depth.
    pub fn with_max_depth(mut self, depth: u32) -> Nuts {
        assert!(depth >= 1, "Nuts: maximum tree depth must be at least 1");
        self.max_depth = depth;
        self
    }

    /// Sets the initial step size.
    pub fn with_step_size(mut self, eps: f64) -> Nuts {
        assert!(eps > 0.0, "Nuts: step size {eps} must be positive");
        self.step_size = eps;
        self
    }

    /// Sets what to record of the sampling iterations.
    pub fn with_record(mut self, record: Record) -> Nuts {
        self.record = record;
        self
    }

    /// Runs warm-up then sampling on every row of `x0` (one chain per row).
    ///
    /// `Stats`: `accept_rate` is the mean acceptance statistic over sampling iterations,
    /// `step_size` the mean of the chains' adapted step sizes (each in `chain_step_sizes`),
    /// `divergences`, `mean_tree_depth` and `max_depth_hits` count sampling iterations, and
    /// `grad_evals` counts every chain's gradients (warm-up included; `score_evals` counts
    /// batched target calls).
    pub fn run(&self, target: &impl Target, x0: Tensor, rng: &mut Rng) -> Samples {
        assert!(
            x0.rank() >= 2,
            "Nuts: x0 must be [chains, …], got {:?}",
            x0.shape()
        );
        let (b, d) = (x0.shape()[0], row_len(&x0));
        let (dtype, row_shape) = (x0.dtype(), x0.shape()[1..].to_vec());
        let windows = WarmupWindows::new(self.warmup);
        let (e0, s0) = target.energy_and_score(&x0);
        let (xv, ev, sv) = (x0.to_vec_f64(), e0.to_vec_f64(), s0.to_vec_f64());
        let mut chains: Vec<Chain> = (0..b)
            .map(|c| {
                let r = c * d..(c + 1) * d;
                Chain::new(
                    self,
                    &windows,
                    xv[r.clone()].to_vec(),
                    ev[c],
                    sv[r].to_vec(),
                    rng.fork(),
                )
            })
            .collect();
        let mut batch_calls = 1;
        let mut points = Vec::with_capacity(b * d);
        let mut who = Vec::with_capacity(b);
        loop {
            points.clear();
            who.clear();
            for (c, ch) in chains.iter().enumerate() {
                if let Some(p) = ch.pending() {
                    points.extend_from_slice(p);
                    who.push(c);
                }
            }
            if who.is_empty() {
                break;
            }
            let mut shape = vec![who.len()];
            shape.extend_from_slice(&row_shape);
            let (e, s) = target.energy_and_score(&Tensor::from_f64s(&points, &shape, dtype));
            batch_calls += 1;
            let (e, s) = (e.to_vec_f64(), s.to_vec_f64());
            for (i, &c) in who.iter().enumerate() {
                chains[c].receive(e[i], &s[i * d..(i + 1) * d]);
            }
        }
        self.collect(chains, b, &row_shape, dtype, batch_calls)
    }

    fn collect(
        &self,
        chains: Vec<Chain>,
        b: usize,
        row_shape: &[usize],
        dtype: ebm_core::DType,
        batch_calls: usize,
    ) -> Samples {
        let mut shape = vec![b];
        shape.extend_from_slice(row_shape);
        let last: Vec<f64> = chains.iter().flat_map(|c| c.position().to_vec()).collect();
        let mut out = Samples::new(Tensor::from_f64s(&last, &shape, dtype));
        for t in 0..chains[0].draws.len() {
            let rows: Vec<f64> = chains.iter().flat_map(|c| c.draws[t].clone()).collect();
            out.states.push(Tensor::from_f64s(&rows, &shape, dtype));
        }
        for t in 0..chains[0].energies.len() {
            let e: Vec<f64> = chains.iter().map(|c| c.energies[t]).collect();
            out.energies.push(Tensor::from_f64s(&e, &[b], dtype));
        }
        let n = self.draws.max(1) as f64;
        let st = &mut out.stats;
        st.steps = self.draws;
        st.warmup = self.warmup;
        st.chain_accept_rate = chains.iter().map(|c| c.stats.accept_sum / n).collect();
        st.accept_rate = Some(st.chain_accept_rate.iter().sum::<f64>() / b as f64);
        st.chain_step_sizes = chains.iter().map(|c| c.eps).collect();
        st.step_size = Some(st.chain_step_sizes.iter().sum::<f64>() / b as f64);
        st.divergences = chains.iter().map(|c| c.stats.divergences).sum();
        st.warmup_divergences = chains.iter().map(|c| c.stats.warmup_divergences).sum();
        st.mean_tree_depth =
            Some(chains.iter().map(|c| c.stats.depth_sum as f64).sum::<f64>() / (n * b as f64));
        st.max_depth_hits = chains.iter().map(|c| c.stats.depth_hits).sum();
        st.grad_evals = b + chains.iter().map(|c| c.stats.grad_evals).sum::<usize>();
        st.sampling_grad_evals = chains.iter().map(|c| c.stats.sampling_grad_evals).sum();
        st.score_evals = batch_calls;
        st.energy_evals = batch_calls;
        out
    }
}
