//! Shared statistical checks: sample moments against a Gaussian's, in standard errors.
#![allow(dead_code)]

use ebm_core::Tensor;
use ebm_samplers::diagnostics::mean_cov;
use ebm_samplers::Gaussian;

/// Largest |error|/SE over the mean and the upper triangle of the covariance of the rows of
/// `x` (n independent draws) against N(m, Σ), printing every entry.
///
/// Standard errors for n iid draws of a Gaussian: SE(x̄ᵢ) = √(Σᵢᵢ/n) and
/// SE(Ŝᵢⱼ) = √((ΣᵢᵢΣⱼⱼ + Σᵢⱼ²)/n) (the variance of a Wishart entry divided by n²).
pub fn moment_z(label: &str, x: &Tensor, want: &Gaussian) -> f64 {
    let n = x.shape()[0] as f64;
    let d = want.dim();
    let (m, c) = mean_cov(x);
    let (tm, tc) = (want.mean(), want.cov());
    let mut worst: f64 = 0.0;
    for i in 0..d {
        let se = (tc[i * d + i] / n).sqrt();
        let z = (m[i] - tm[i]) / se;
        eprintln!(
            "{label}: mean[{i}] {:.5} vs {:.5}: error {:+.5}, SE {:.5}, {:+.2} SE (tolerance 4 SE)",
            m[i],
            tm[i],
            m[i] - tm[i],
            se,
            z
        );
        worst = worst.max(z.abs());
    }
    for i in 0..d {
        for j in i..d {
            let t = tc[i * d + j];
            let se = ((tc[i * d + i] * tc[j * d + j] + t * t) / n).sqrt();
            let got = c[i * d + j];
            let z = (got - t) / se;
            eprintln!(
                "{label}: cov[{i}{j}] {got:.5} vs {t:.5}: error {:+.5}, SE {se:.5}, {z:+.2} SE (tolerance 4 SE)",
                got - t
            );
            worst = worst.max(z.abs());
        }
    }
    worst
}

/// Asserts every moment is within 4 standard errors.
pub fn assert_moments(label: &str, x: &Tensor, want: &Gaussian) {
    let z = moment_z(label, x, want);
    assert!(
        z < 4.0,
        "{label}: a moment is {z:.2} standard errors off (tolerance 4)"
    );
}

/// (estimate − truth)/SE of E[f] from MCMC draws `draws[chain][iteration]` of f, with the
/// ESS-based standard error SE = √(Var f / ESS) (Var f from the truth where known, `var`),
/// printing the line.
pub fn ess_z(label: &str, draws: &[Vec<f64>], truth: f64, var: f64) -> f64 {
    let n: usize = draws.iter().map(|c| c.len()).sum();
    let mean = draws.iter().flatten().sum::<f64>() / n as f64;
    let ess = ebm_samplers::diagnostics::ess(draws);
    let se = (var / ess).sqrt();
    let z = (mean - truth) / se;
    eprintln!(
        "{label}: {mean:.4} vs {truth:.4}: error {:+.4}, ESS {ess:.0}, SE {se:.4}, {z:+.2} SE (tolerance 4 SE)",
        mean - truth
    );
    z
}

/// `f` applied to every draw of the rows of recorded states: `out[chain][iteration]`.
pub fn map_draws(states: &[Tensor], f: impl Fn(&[f64]) -> f64) -> Vec<Vec<f64>> {
    let b = states[0].shape()[0];
    let d = states[0].numel() / b;
    let flat: Vec<Vec<f64>> = states.iter().map(|s| s.to_vec_f64()).collect();
    (0..b)
        .map(|c| flat.iter().map(|s| f(&s[c * d..(c + 1) * d])).collect())
        .collect()
}
