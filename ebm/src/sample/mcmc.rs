//! The Markov chain samplers of `ebm sample` (ULA, MALA, HMC, NUTS, ChEES-HMC, parallel
//! tempering) and their diagnostics: every option was checked by
//! [`SampleOptions::check`](super::SampleOptions::check) before a builder sees it.

use super::{Diagnostics, PtKernel, SampleInfo, SampleOptions, SamplerKind};
use crate::model::Density;
use ebm_core::{Rng, Tensor};
use ebm_samplers::diagnostics::efficiency;
use ebm_samplers::{Chees, Hmc, InnerKernel, Mala, Nuts, Record, Samples, Step, Tempering, Ula};
use std::time::Instant;

/// Recorded values (draws × chains × columns) the diagnostics keep at most: larger runs keep
/// every `thin`-th step.
const MAX_RECORDED: u64 = 1 << 24;

/// Steps, the step size and the leapfrog steps of `kind` where not given.
fn defaults(kind: SamplerKind) -> (usize, f64) {
    match kind {
        SamplerKind::Ula => (1000, 0.05),
        SamplerKind::Mala => (500, 0.1),
        SamplerKind::Hmc => (200, 0.1),
        SamplerKind::Nuts => (200, 1.0),
        SamplerKind::Chees => (500, 0.1),
        _ => (500, 0.5),
    }
}

/// HMC's leapfrog steps per trajectory when `--leapfrog` is not given.
const LEAPFROG: usize = 10;

/// What to record of `draws` steps of `x0`'s chains: nothing, or every `thin`-th state.
fn recording(opts: &SampleOptions, draws: usize, x0: &Tensor) -> (Record, usize) {
    if !opts.diagnostics {
        return (Record::none(), 0);
    }
    let values = (draws as u64).saturating_mul(x0.numel() as u64);
    let thin = values.div_ceil(MAX_RECORDED).max(1) as usize;
    let rec = Record {
        every: thin,
        states: true,
        energies: false,
    };
    (rec, thin)
}

/// Runs `kind` (a Markov chain sampler) from `x0` on `density`.
pub(super) fn run(
    kind: SamplerKind,
    density: &Density,
    x0: Tensor,
    opts: &SampleOptions,
    rng: &mut Rng,
) -> (Tensor, SampleInfo) {
    let (steps_default, eps_default) = defaults(kind);
    let steps = opts.steps.unwrap_or(steps_default);
    let eps = opts.step_size.unwrap_or(eps_default);
    let warmup = opts.warmup.unwrap_or(steps / 2);
    let leapfrog = opts.leapfrog.unwrap_or(LEAPFROG);
    let (rec, thin) = recording(opts, steps, &x0);
    let t0 = Instant::now();
    let s: Samples = match kind {
        SamplerKind::Ula => Ula::new(Step::Tied { eps }, steps)
            .with_record(rec)
            .run(density, x0, rng),
        SamplerKind::Mala => {
            let mut m = Mala::new(eps, warmup, steps).with_record(rec);
            m.adapt = opts.step_size.is_none();
            if let Some(t) = opts.target_accept {
                m = m.with_target_accept(t);
            }
            m.run(density, x0, rng)
        }
        SamplerKind::Hmc => {
            let mut h = Hmc::new(eps, leapfrog, warmup, steps).with_record(rec);
            h.adapt = opts.step_size.is_none();
            if let Some(t) = opts.target_accept {
                h = h.with_target_accept(t);
            }
            h.run(density, x0, rng)
        }
        SamplerKind::Nuts => {
            let mut u = Nuts::new(warmup, steps)
                .with_step_size(eps)
                .with_record(rec)
                .with_metric(opts.metric.unwrap_or_default());
            if let Some(t) = opts.target_accept {
                u = u.with_target_accept(t);
            }
            if let Some(m) = opts.max_depth {
                u = u.with_max_depth(m);
            }
            u.run(density, x0, rng)
        }
        SamplerKind::Chees => {
            let mut c = Chees::new(warmup, steps)
                .with_step_size(eps)
                .with_record(rec);
            if let Some(t) = opts.target_accept {
                c = c.with_target_accept(t);
            }
            c.run(density, x0, rng)
        }
        SamplerKind::Pt => {
            let mut p = Tempering::default()
                .with_warmup(warmup)
                .with_draws(steps)
                .with_step_size(eps)
                .with_record(rec)
                .with_adaptive_ladder(opts.adaptive_ladder);
            if let Some(r) = opts.replicas {
                p = p.with_replicas(r);
            }
            if let Some(b) = opts.beta_min {
                p = p.with_beta_min(b);
            }
            if opts.kernel == Some(PtKernel::Hmc) {
                p = p.with_kernel(InnerKernel::Hmc {
                    n_leapfrog: leapfrog,
                });
            }
            p.run(density, x0, rng)
        }
        other => unreachable!("{} is not a Markov chain sampler", other.name()),
    };
    let secs = t0.elapsed().as_secs_f64();
    let info = describe(kind, &s, steps, warmup, eps, secs, thin);
    (s.x, info)
}

/// The [`SampleInfo`] of a finished run; diagnostics when states were recorded (at least 4
/// draws per chain).
fn describe(
    kind: SamplerKind,
    s: &Samples,
    steps: usize,
    warmup: usize,
    eps: f64,
    seconds: f64,
    thin: usize,
) -> SampleInfo {
    let st = &s.stats;
    let adaptive = kind != SamplerKind::Ula;
    let hamiltonian = matches!(kind, SamplerKind::Nuts | SamplerKind::Chees);
    let diagnostics = (s.states.len() >= 4).then(|| {
        let e = efficiency(s, seconds);
        Diagnostics {
            draws: s.states.len(),
            thin,
            min_ess: e.min_ess,
            median_ess: e.median_ess,
            max_rhat: e.max_rhat,
            gradient_evals: e.gradient_evals,
            ess_per_gradient: e.ess_per_gradient,
            ess_per_second: e.ess_per_second,
        }
    });
    SampleInfo {
        sampler: kind.name().into(),
        steps,
        step_size: st.step_size.or(Some(eps)),
        accept_rate: st.accept_rate,
        warmup: adaptive.then_some(warmup),
        seconds: Some(seconds),
        divergences: hamiltonian.then_some(st.divergences),
        mean_tree_depth: st.mean_tree_depth,
        max_depth_hits: (kind == SamplerKind::Nuts).then_some(st.max_depth_hits),
        trajectory_length: st.trajectory_length,
        betas: (kind == SamplerKind::Pt).then(|| st.betas.clone()),
        swap_rates: (kind == SamplerKind::Pt).then(|| st.swap_rates.clone()),
        round_trips: (kind == SamplerKind::Pt).then_some(st.round_trips),
        diagnostics,
    }
}
