//! One NUTS transition as a state machine that asks for one gradient at a time.
//!
//! The trajectory doubles (Hoffman & Gelman 2014): each doubling builds a subtree of 2ʲ
//! leapfrog steps off the end of the trajectory in a random direction. Leaves are built one at a
//! time and the subtree is checked for U-turns on all its sub-subtrees as it grows (the
//! iterative scheme of Phan, Pradhan & Jankowiak 2019, "Composable effects for flexible and
//! accelerated probabilistic programming in NumPyro"): leaf n's momentum and running sum are
//! checkpointed when n is even, and the subtrees ending at leaf n are those of sizes 2, 4, …
//! 2ᵗ with t the number of trailing ones of n.
//!
//! Sampling is multinomial (Betancourt 2017, "A conceptual introduction to Hamiltonian Monte
//! Carlo", appendix A): each leaf has weight w = exp(−(H − H₀)); within a subtree a new leaf
//! replaces the subtree's candidate with probability w_leaf / Σw_subtree, and a finished
//! subtree's candidate replaces the trajectory's with probability min(1, Σw_new / Σw_old)
//! (biased progressive sampling, which favours draws far from the start). The U-turn criterion
//! is the generalised one of Betancourt (2013): a (sub)tree with momentum sum ρ and end momenta
//! p⁻, p⁺ stops when (M⁻¹p⁻)·ρ ≤ 0 or (M⁻¹p⁺)·ρ ≤ 0. A leaf with H − H₀ > `max_energy_error`
//! (1000, as Stan) is a divergence: the subtree is discarded and the transition ends.

use crate::metric::Metric;
use ebm_core::Rng;

/// A point of phase space with its energy and score.
#[derive(Clone, Debug)]
pub(crate) struct Leaf {
    pub x: Vec<f64>,
    pub p: Vec<f64>,
    pub s: Vec<f64>,
    pub e: f64,
}

/// How a transition ended.
#[derive(Clone, Debug)]
pub(crate) struct TreeStats {
    /// Mean of min(1, exp(H₀ − H)) over every leaf built (Stan's accept_stat__).
    pub accept: f64,
    /// Doublings completed (Stan's treedepth__).
    pub depth: u32,
    pub divergent: bool,
}

fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// The trajectory under construction.
pub(crate) struct Tree {
    eps: f64,
    max_depth: u32,
    max_energy_error: f64,
    h0: f64,
    /// Leftmost and rightmost leaves of the whole trajectory (including the growing subtree).
    left: Leaf,
    right: Leaf,
    /// The trajectory's candidate and log Σw, momentum sum (finished subtrees only).
    proposal: Leaf,
    log_w: f64,
    rho: Vec<f64>,
    // the growing subtree
    depth: u32,
    forward: bool,
    n: usize,
    sub_proposal: Option<Leaf>,
    sub_log_w: f64,
    sub_rho: Vec<f64>,
    ckpt_p: Vec<Vec<f64>>,
    ckpt_rho: Vec<Vec<f64>>,
    /// The half-step momentum of the pending leapfrog step.
    p_half: Vec<f64>,
    sum_accept: f64,
    n_leapfrog: usize,
}

/// What a tree wants next.
pub(crate) enum Next {
    /// Evaluate energy and score at this point.
    Eval(Vec<f64>),
    /// The transition is over: the new state and its statistics.
    Done(Leaf, TreeStats),
}

impl Tree {
    /// Starts a transition from `start` (its `p` freshly drawn); returns the tree and the first
    /// point to evaluate.
    pub fn start(
        start: Leaf,
        eps: f64,
        max_depth: u32,
        max_energy_error: f64,
        metric: &Metric,
        rng: &mut Rng,
    ) -> (Tree, Vec<f64>) {
        let d = start.x.len();
        let h0 = start.e + metric.kinetic(&start.p);
        let mut t = Tree {
            eps,
            max_depth,
            max_energy_error,
            h0,
            left: start.clone(),
            right: start.clone(),
            rho: start.p.clone(),
            proposal: start,
            log_w: 0.0,
            depth: 0,
            forward: true,
            n: 0,
            sub_proposal: None,
            sub_log_w: f64::NEG_INFINITY,
            sub_rho: vec![0.0; d],
            ckpt_p: vec![vec![0.0; d]; max_depth.max(1) as usize],
            ckpt_rho: vec![vec![0.0; d]; max_depth.max(1) as usize],
            p_half: vec![0.0; d],
            sum_accept: 0.0,
            n_leapfrog: 0,
        };
        t.new_subtree(rng);
        let x = t.half_kick_drift(metric);
        (t, x)
    }

    fn new_subtree(&mut self, rng: &mut Rng) {
        self.forward = rng.next_f64() < 0.5;
        self.n = 0;
        self.sub_proposal = None;
        self.sub_log_w = f64::NEG_INFINITY;
        self.sub_rho.iter_mut().for_each(|r| *r = 0.0);
    }

    /// p½ = p + (±ε/2) s(x), x' = x ± ε M⁻¹p½ from the trajectory's end in the current
    /// direction; returns x'.
    fn half_kick_drift(&mut self, metric: &Metric) -> Vec<f64> {
        let eps = if self.forward { self.eps } else { -self.eps };
        let end = if self.forward {
            &self.right
        } else {
            &self.left
        };
        for ((ph, p), s) in self.p_half.iter_mut().zip(&end.p).zip(&end.s) {
            *ph = p + 0.5 * eps * s;
        }
        let mut v = vec![0.0; end.x.len()];
        metric.velocity(&self.p_half, &mut v);
        end.x.iter().zip(&v).map(|(x, vi)| x + eps * vi).collect()
    }

    fn turning(metric: &Metric, pa: &[f64], pb: &[f64], rho: &[f64]) -> bool {
        !(metric.dot_velocity(pa, rho) > 0.0 && metric.dot_velocity(pb, rho) > 0.0)
    }

    fn done(&self, state: Leaf, depth: u32, divergent: bool) -> Next {
        Next::Done(
            state,
            TreeStats {
                accept: self.sum_accept / self.n_leapfrog.max(1) as f64,
                depth,
                divergent,
            },
        )
    }

    /// Takes the energy and score at the requested point; returns what to do next.
    pub fn receive(
        &mut self,
        x: Vec<f64>,
        e: f64,
        s: Vec<f64>,
        metric: &Metric,
        rng: &mut Rng,
    ) -> Next {
        let eps = if self.forward { self.eps } else { -self.eps };
        let p: Vec<f64> = self
            .p_half
            .iter()
            .zip(&s)
            .map(|(ph, si)| ph + 0.5 * eps * si)
            .collect();
        let h = e + metric.kinetic(&p);
        let dh = if h.is_nan() {
            f64::INFINITY
        } else {
            h - self.h0
        };
        self.n_leapfrog += 1;
        self.sum_accept += (-dh).exp().min(1.0);
        let leaf = Leaf { x, p, s, e };
        if dh > self.max_energy_error {
            return self.done(self.proposal.clone(), self.depth, true);
        }
        // the leaf joins the subtree: uniform progressive sampling within it
        let lw = -dh;
        let total = log_add_exp(self.sub_log_w, lw);
        if self.sub_proposal.is_none() || rng.next_f64() < (lw - total).exp() {
            self.sub_proposal = Some(leaf.clone());
        }
        self.sub_log_w = total;
        for (r, pi) in self.sub_rho.iter_mut().zip(&leaf.p) {
            *r += pi;
        }
        // U-turns of the sub-subtrees that end at leaf n
        let n = self.n;
        let idx_max = (n >> 1).count_ones() as usize;
        if n.is_multiple_of(2) {
            self.ckpt_p[idx_max].clone_from(&leaf.p);
            self.ckpt_rho[idx_max].clone_from(&self.sub_rho);
        }
        let trailing_ones = (!n).trailing_zeros() as usize;
        let mut turned = false;
        if trailing_ones > 0 {
            let idx_min = idx_max + 1 - trailing_ones;
            for i in (idx_min..=idx_max).rev() {
                let rho: Vec<f64> = self
                    .sub_rho
                    .iter()
                    .zip(&self.ckpt_rho[i])
                    .zip(&self.ckpt_p[i])
                    .map(|((a, b), c)| a - b + c)
                    .collect();
                if Self::turning(metric, &self.ckpt_p[i], &leaf.p, &rho) {
                    turned = true;
                    break;
                }
            }
        }
        if self.forward {
            self.right = leaf;
        } else {
            self.left = leaf;
        }
        if turned {
            return self.done(self.proposal.clone(), self.depth, false);
        }
        self.n += 1;
        if self.n < 1 << self.depth {
            return Next::Eval(self.half_kick_drift(metric));
        }
        // the subtree is complete: biased progressive sampling between it and the trajectory
        let sub = self
            .sub_proposal
            .take()
            .expect("a complete subtree has leaves");
        if self.sub_log_w >= self.log_w || rng.next_f64() < (self.sub_log_w - self.log_w).exp() {
            self.proposal = sub;
        }
        self.log_w = log_add_exp(self.log_w, self.sub_log_w);
        for (r, s) in self.rho.iter_mut().zip(&self.sub_rho) {
            *r += s;
        }
        self.depth += 1;
        if Self::turning(metric, &self.left.p, &self.right.p, &self.rho)
            || self.depth >= self.max_depth
        {
            return self.done(self.proposal.clone(), self.depth, false);
        }
        self.new_subtree(rng);
        Next::Eval(self.half_kick_drift(metric))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a tree on E = ½‖x‖² by hand.
    fn run_tree(eps: f64, max_depth: u32, seed: u64) -> (Leaf, TreeStats, usize) {
        let metric = Metric::unit(2);
        let mut rng = Rng::new(seed);
        let x = vec![1.0, 0.5];
        let start = Leaf {
            s: x.iter().map(|v| -v).collect(),
            e: 0.5 * x.iter().map(|v| v * v).sum::<f64>(),
            x,
            p: vec![0.3, -1.0],
        };
        let (mut tree, mut pt) = Tree::start(start, eps, max_depth, 1000.0, &metric, &mut rng);
        let mut evals = 0;
        loop {
            evals += 1;
            let e = 0.5 * pt.iter().map(|v| v * v).sum::<f64>();
            let s = pt.iter().map(|v| -v).collect();
            match tree.receive(pt, e, s, &metric, &mut rng) {
                Next::Eval(p) => pt = p,
                Next::Done(l, st) => return (l, st, evals),
            }
        }
    }

    #[test]
    fn trajectory_stops_near_half_a_period() {
        // On a standard normal the orbit has period 2π; the U-turn criterion stops the doubling
        // once the trajectory spans about half of it: π/ε ≈ 31 steps at ε = 0.1, so the tree
        // reaches 32 leaves (depth 5) or 64 (depth 6) but never the cap.
        for seed in 0..20 {
            let (_, st, _) = run_tree(0.1, 10, seed);
            assert!((5..=6).contains(&st.depth), "depth {}", st.depth);
            assert!(!st.divergent);
            assert!(st.accept > 0.99, "accept {}", st.accept);
        }
        let (_, st, evals) = run_tree(0.1, 3, 0);
        assert_eq!((st.depth, evals), (3, 7));
    }

    #[test]
    fn an_exploding_integrator_is_a_divergence() {
        // ε = 10 ≫ 2 makes the leapfrog unstable on a unit Gaussian: whichever way the first
        // step goes, it lands where H − H₀ > 1000 (|x'| ≈ 10|p − 5x| with |x| > 1); the
        // transition then keeps the start
        for seed in 0..4 {
            let (l, st, evals) = run_tree(10.0, 10, seed);
            assert!(st.divergent && evals == 1);
            assert!(st.accept < 1e-100);
            assert_eq!(l.x, vec![1.0, 0.5]);
        }
    }
}
