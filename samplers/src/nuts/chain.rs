//! One NUTS chain: its transitions, Stan's warm-up adaptation and the step-size search, as a
//! state machine that asks for one gradient at a time (the driver batches the requests of all
//! chains into one target call).

use super::tree::{Leaf, Next, Tree, TreeStats};
use super::Nuts;
use crate::mala::DualAveraging;
use crate::metric::{Metric, MetricKind, WarmupWindows, Welford};
use crate::Record;
use ebm_core::Rng;

/// Stan's initial step-size search (`init_stepsize`): one leapfrog step from the current
/// point with a fresh momentum; the step doubles while the acceptance exp(H₀ − H) stays above
/// 0.8 and halves while it stays below, stopping at the first crossing.
struct Search {
    eps: f64,
    direction: i8,
    h0: f64,
    p_half: Vec<f64>,
    tries: usize,
}

enum Phase {
    Search(Search),
    Tree(Box<Tree>),
    Finished,
}

/// Per-chain counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChainStats {
    pub accept_sum: f64,
    pub divergences: usize,
    pub warmup_divergences: usize,
    pub depth_sum: u64,
    pub depth_hits: usize,
    pub grad_evals: usize,
    pub sampling_grad_evals: usize,
}

pub(crate) struct Chain<'a> {
    opts: &'a Nuts,
    windows: &'a WarmupWindows,
    rng: Rng,
    state: Leaf,
    pub metric: Metric,
    pub eps: f64,
    da: Option<DualAveraging>,
    welford: Option<Welford>,
    iter: usize,
    phase: Phase,
    pending: Option<Vec<f64>>,
    pub draws: Vec<Vec<f64>>,
    pub energies: Vec<f64>,
    pub stats: ChainStats,
}

impl<'a> Chain<'a> {
    pub fn new(
        opts: &'a Nuts,
        windows: &'a WarmupWindows,
        x: Vec<f64>,
        e: f64,
        s: Vec<f64>,
        rng: Rng,
    ) -> Chain<'a> {
        let d = x.len();
        let metric = opts.metric.clone().unwrap_or_else(|| Metric::unit(d));
        assert_eq!(
            metric.dim(),
            d,
            "Nuts: a metric of dimension {} for rows of {d}",
            metric.dim()
        );
        let adapt_metric = opts.warmup > 0 && opts.metric_kind != MetricKind::Unit;
        let mut c = Chain {
            opts,
            windows,
            rng,
            state: Leaf {
                p: vec![0.0; d],
                x,
                s,
                e,
            },
            metric,
            eps: opts.step_size,
            da: None,
            welford: adapt_metric.then(|| Welford::new(d, opts.metric_kind == MetricKind::Dense)),
            iter: 0,
            phase: Phase::Finished,
            pending: None,
            draws: Vec::new(),
            energies: Vec::new(),
            stats: ChainStats::default(),
        };
        if opts.draws + opts.warmup > 0 {
            if opts.warmup > 0 && opts.adapt_step_size {
                c.start_search(opts.step_size);
            } else {
                c.start_transition();
            }
        }
        c
    }

    /// The point whose energy and score this chain waits for (None once finished).
    pub fn pending(&self) -> Option<&[f64]> {
        self.pending.as_deref()
    }

    /// One leapfrog drift from the current state with momentum half-step `p_half`.
    fn drift(&self, eps: f64, p_half: &[f64]) -> Vec<f64> {
        let mut v = vec![0.0; p_half.len()];
        self.metric.velocity(p_half, &mut v);
        self.state
            .x
            .iter()
            .zip(&v)
            .map(|(x, vi)| x + eps * vi)
            .collect()
    }

    fn start_search(&mut self, eps: f64) {
        let mut p = vec![0.0; self.state.x.len()];
        self.metric.sample_momentum(&mut self.rng, &mut p);
        let h0 = self.state.e + self.metric.kinetic(&p);
        let p_half: Vec<f64> = p
            .iter()
            .zip(&self.state.s)
            .map(|(pi, si)| pi + 0.5 * eps * si)
            .collect();
        self.pending = Some(self.drift(eps, &p_half));
        let (direction, tries) = match &self.phase {
            Phase::Search(s) => (s.direction, s.tries + 1),
            _ => (0, 0),
        };
        self.phase = Phase::Search(Search {
            eps,
            direction,
            h0,
            p_half,
            tries,
        });
    }

    fn start_transition(&mut self) {
        self.metric
            .sample_momentum(&mut self.rng, &mut self.state.p);
        let (tree, x) = Tree::start(
            self.state.clone(),
            self.eps,
            self.opts.max_depth,
            self.opts.max_energy_error,
            &self.metric,
            &mut self.rng,
        );
        self.phase = Phase::Tree(Box::new(tree));
        self.pending = Some(x);
    }

    /// Takes the energy and score at the pending point and moves on.
    pub fn receive(&mut self, e: f64, s: &[f64]) {
        let x = self
            .pending
            .take()
            .expect("Chain::receive with nothing pending");
        self.stats.grad_evals += 1;
        if self.iter >= self.opts.warmup {
            self.stats.sampling_grad_evals += 1;
        }
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Search(search) => self.search_step(search, e, s),
            Phase::Tree(mut tree) => {
                match tree.receive(x, e, s.to_vec(), &self.metric, &mut self.rng) {
                    Next::Eval(p) => {
                        self.pending = Some(p);
                        self.phase = Phase::Tree(tree);
                    }
                    Next::Done(leaf, st) => self.end_transition(leaf, st),
                }
            }
            Phase::Finished => unreachable!("a finished chain has nothing pending"),
        }
    }

    fn search_step(&mut self, mut search: Search, e: f64, s: &[f64]) {
        let eps = search.eps;
        let p: Vec<f64> = search
            .p_half
            .iter()
            .zip(s)
            .map(|(ph, si)| ph + 0.5 * eps * si)
            .collect();
        let delta = search.h0 - (e + self.metric.kinetic(&p));
        let delta = if delta.is_nan() {
            f64::NEG_INFINITY
        } else {
            delta
        };
        let threshold = 0.8f64.ln();
        if search.direction == 0 {
            search.direction = if delta > threshold { 1 } else { -1 };
        }
        let crossed = if search.direction == 1 {
            delta <= threshold
        } else {
            delta >= threshold
        };
        if crossed || search.tries >= 60 {
            self.eps = eps;
            self.da = Some(DualAveraging::new(eps, self.opts.target_accept));
            self.start_transition();
            return;
        }
        let next = if search.direction == 1 {
            2.0 * eps
        } else {
            0.5 * eps
        };
        self.phase = Phase::Search(search);
        self.start_search(next);
    }

    fn end_transition(&mut self, leaf: Leaf, st: TreeStats) {
        self.state = leaf;
        let k = self.iter;
        let opts = self.opts;
        let mut search_after = false;
        if k < opts.warmup {
            self.stats.warmup_divergences += st.divergent as usize;
            if let Some(da) = &mut self.da {
                self.eps = da.update(st.accept);
            }
            if let Some(w) = &mut self.welford {
                if self.windows.collects(k) {
                    w.add(&self.state.x);
                }
                if self.windows.ends.contains(&k) && w.count() >= 2 {
                    self.metric = w.metric();
                    *w = Welford::new(self.state.x.len(), opts.metric_kind == MetricKind::Dense);
                    search_after = opts.adapt_step_size;
                }
            }
            if k + 1 == opts.warmup {
                if let Some(da) = &self.da {
                    self.eps = da.final_step();
                }
            }
        } else {
            let step = k - opts.warmup;
            self.stats.accept_sum += st.accept;
            self.stats.divergences += st.divergent as usize;
            self.stats.depth_sum += st.depth as u64;
            self.stats.depth_hits += (st.depth >= opts.max_depth) as usize;
            let rec: &Record = &opts.record;
            if rec.at(step) {
                if rec.states {
                    self.draws.push(self.state.x.clone());
                }
                if rec.energies {
                    self.energies.push(self.state.e);
                }
            }
        }
        self.iter += 1;
        if self.iter == opts.warmup + opts.draws {
            self.phase = Phase::Finished;
            self.pending = None;
        } else if search_after {
            self.phase = Phase::Finished;
            self.start_search(self.eps);
        } else {
            self.start_transition();
        }
    }

    /// The current position.
    pub fn position(&self) -> &[f64] {
        &self.state.x
    }
}
