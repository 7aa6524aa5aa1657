//! NUTS on the targets that defeat simpler samplers: a correlated Gaussian of condition number
//! 100 and Neal's funnel in 10 dimensions. Chains are few and long, so standard errors come
//! from the effective sample size of each quantity (SE = √(Var f / ESS)), with the true Var f.

mod common;

use common::{ess_z, map_draws};
use ebm_core::{DType, Rng};
use ebm_samplers::diagnostics::efficiency;
use ebm_samplers::test_targets::{Funnel, IllConditioned};
use ebm_samplers::{Mala, MetricKind, Nuts, Record, Samples};

const D: usize = 10;

fn gaussian() -> IllConditioned {
    IllConditioned::new(D, 100.0, 7)
}

fn run_nuts_gaussian(kind: MetricKind, seed: u64) -> Samples {
    let t = gaussian();
    let mut rng = Rng::new(seed);
    let x0 = rng.normal(&[4, D], DType::F64);
    let out = Nuts::new(1000, 1000)
        .with_metric(kind)
        .run(&t.gaussian, x0, &mut rng);
    let st = &out.stats;
    eprintln!(
        "NUTS ({kind:?}): step sizes {:?}, accept {:.3}, mean depth {:.2}, divergences {} \
         (warm-up {}), gradients {} ({} sampling), max R̂ {:.4}",
        st.chain_step_sizes,
        st.accept_rate.unwrap(),
        st.mean_tree_depth.unwrap(),
        st.divergences,
        st.warmup_divergences,
        st.grad_evals,
        st.sampling_grad_evals,
        (0..D).map(|j| out.split_rhat(j)).fold(0.0, f64::max)
    );
    out
}

/// Means and variances of every coordinate within 4 SE; returns the worst |z|.
fn check_gaussian_moments(label: &str, out: &Samples) -> f64 {
    let t = gaussian();
    let (m, c) = (t.gaussian.mean(), t.gaussian.cov());
    let mut worst: f64 = 0.0;
    for j in 0..D {
        let var = c[j * D + j];
        let xs = out.coordinate_draws(j);
        worst = worst.max(ess_z(&format!("{label} mean[{j}]"), &xs, m[j], var).abs());
        // E[(x − m)²] = Σⱼⱼ with Var((x − m)²) = 2Σⱼⱼ²
        let sq = map_draws(&out.states, |r| (r[j] - m[j]).powi(2));
        worst = worst.max(ess_z(&format!("{label} var[{j}]"), &sq, var, 2.0 * var * var).abs());
    }
    worst
}

#[test]
fn nuts_recovers_an_ill_conditioned_gaussian() {
    let out = run_nuts_gaussian(MetricKind::Diagonal, 11);
    let st = &out.stats;
    assert!(
        st.accept_rate.unwrap() > 0.7,
        "acceptance far below δ = 0.8"
    );
    assert_eq!(st.divergences, 0, "divergences on a Gaussian");
    assert!((0..D).all(|j| out.split_rhat(j) < 1.05));
    let z = check_gaussian_moments("NUTS diag", &out);
    assert!(z < 4.0, "a moment is {z:.2} SE off");
}

#[test]
fn dense_metric_nuts_whitens_the_gaussian() {
    // With M⁻¹ ≈ Σ the target is isotropic to the integrator: far shorter trees than with
    // the diagonal metric, which cannot undo the rotation.
    let out = run_nuts_gaussian(MetricKind::Dense, 12);
    let z = check_gaussian_moments("NUTS dense", &out);
    assert!(z < 4.0, "a moment is {z:.2} SE off");
    let depth = out.stats.mean_tree_depth.unwrap();
    assert!(depth < 3.5, "dense metric trees of mean depth {depth}");
}

#[test]
fn nuts_recovers_neals_funnel() {
    // As a practitioner runs it: δ = 0.99 for small steps in the neck, and the unit metric (a
    // diagonal one estimated from the draws, Var xᵢ ≈ e^{9/2} ≈ 90 from the mouth, would
    // stretch the x steps and make the neck worse). At δ = 0.95 with 4 chains, v's lower tail
    // was under-visited (E[v²] 4 SE low on one seed of four), the funnel's classic bias.
    let (chains, draws) = (8, 2000);
    let f = Funnel::new(D);
    let mut rng = Rng::new(21);
    let x0 = rng.normal(&[chains, D], DType::F64);
    let out = Nuts::new(1000, draws)
        .with_target_accept(0.99)
        .with_metric(MetricKind::Unit)
        .run(&f, x0, &mut rng);
    let st = &out.stats;
    eprintln!(
        "funnel: step sizes {:?}, accept {:.3}, mean depth {:.2}, divergences {} of {} draws",
        st.chain_step_sizes,
        st.accept_rate.unwrap(),
        st.mean_tree_depth.unwrap(),
        st.divergences,
        chains * draws
    );
    let mut worst: f64 = 0.0;
    // v ~ N(0, 9): E v = 0, E v² = 9 with Var v² = 2·81
    worst = worst.max(ess_z("funnel E[v]", &out.coordinate_draws(0), 0.0, 9.0).abs());
    let v2 = map_draws(&out.states, |r| r[0] * r[0]);
    worst = worst.max(ess_z("funnel E[v²]", &v2, 9.0, 162.0).abs());
    for i in 1..D {
        // xᵢ has mean 0 and variance E eᵛ = e^{9/2}; its raw second moment has a fourth moment
        // of 3e^{18}, so a test of it could not fail: the scale-free xᵢ²e^{−v} ~ χ²₁ (mean 1,
        // variance 2) tests the same conditional variance.
        let xs = out.coordinate_draws(i);
        worst = worst.max(ess_z(&format!("funnel E[x{i}]"), &xs, 0.0, 4.5f64.exp()).abs());
        let w = map_draws(&out.states, |r| r[i] * r[i] * (-r[0]).exp());
        worst = worst.max(ess_z(&format!("funnel E[x{i}²e^-v]"), &w, 1.0, 2.0).abs());
    }
    assert!(worst < 4.0, "a funnel moment is {worst:.2} SE off");
    assert!(
        st.divergences * 100 < chains * draws,
        "{} divergences: more than 1% of draws",
        st.divergences
    );
}

#[test]
fn nuts_beats_mala_in_ess_per_gradient() {
    // Worst coordinate's ESS over sampling-phase gradients (per chain, summed over chains).
    let nuts = run_nuts_gaussian(MetricKind::Diagonal, 13);
    let nuts_ess = (0..D).map(|j| nuts.ess(j)).fold(f64::INFINITY, f64::min);
    let nuts_rate = nuts_ess / nuts.stats.sampling_grad_evals as f64;

    let t = gaussian();
    let mut rng = Rng::new(14);
    let x0 = rng.normal(&[4, D], DType::F64);
    let steps = 20_000;
    let mala = Mala::new(0.5, 2000, steps)
        .with_record(Record::every(1))
        .run(&t.gaussian, x0, &mut rng);
    let mala_ess = (0..D).map(|j| mala.ess(j)).fold(f64::INFINITY, f64::min);
    let mala_rate = mala_ess / (4 * steps) as f64;
    let factor = nuts_rate / mala_rate;
    eprintln!(
        "ESS per gradient (worst coordinate): NUTS {nuts_ess:.0} / {} = {nuts_rate:.5}, \
         MALA (ε = {:.3}, acceptance {:.3}) {mala_ess:.0} / {} = {mala_rate:.5}: NUTS {factor:.1}×",
        nuts.stats.sampling_grad_evals,
        mala.stats.step_size.unwrap(),
        mala.stats.accept_rate.unwrap(),
        4 * steps
    );
    // measured 5.5× (NUTS 0.0265, MALA 0.0049 ESS per gradient); each ESS is good to ~15%
    assert!(
        factor > 2.5,
        "NUTS only {factor:.2}× MALA's ESS per gradient"
    );
    // the same figure over whole runs (warm-up included), from diagnostics::efficiency
    let (en, em) = (efficiency(&nuts, 1.0), efficiency(&mala, 1.0));
    assert_eq!(en.min_ess, nuts_ess);
    assert_eq!(em.gradient_evals, 4 * (1 + 2000 + steps));
    eprintln!(
        "whole runs: NUTS {:.5}, MALA {:.5} ESS per gradient",
        en.ess_per_gradient, em.ess_per_gradient
    );
}
