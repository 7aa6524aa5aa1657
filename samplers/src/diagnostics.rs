//! Convergence diagnostics across chains: effective sample size, split-R̂, moments.
//!
//! Draws are given as `draws[chain][iteration]` of one scalar quantity (a coordinate, an
//! energy). The estimators follow Gelman et al., "Bayesian Data Analysis" (3rd ed., §11.4–11.5)
//! and Stan's implementation (Vehtari, Gelman, Simpson, Carpenter, Bürkner 2021, "Rank-
//! normalization, folding, and localization: an improved R̂", without the rank normalisation).

use crate::Samples;
use ebm_core::Tensor;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Unbiased sample variance.
fn var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)
}

fn check(draws: &[Vec<f64>], what: &str) -> usize {
    assert!(!draws.is_empty(), "{what}: no chains");
    let n = draws[0].len();
    assert!(
        draws.iter().all(|c| c.len() == n),
        "{what}: chains have different lengths"
    );
    n
}

/// Effective sample size of the pooled draws (Geyer's initial monotone sequence estimator on
/// the multi-chain autocorrelation, as in Stan):
///
/// ρ̂ₜ = 1 − (W − mean_m γ̂ₜ,ₘ)/var⁺, with W the mean within-chain variance, γ̂ₜ,ₘ chain m's
/// autocovariance at lag t and var⁺ = (N−1)/N·W + B/N; the sum τ̂ = −1 + 2Σₜρ̂ₜ runs over pairs
/// (ρ̂₂ₖ + ρ̂₂ₖ₊₁) while they stay positive, made monotone; ESS = MN/τ̂.
pub fn ess(draws: &[Vec<f64>]) -> f64 {
    let n = check(draws, "ess");
    let m = draws.len();
    assert!(n >= 4, "ess: need at least 4 draws per chain, got {n}");
    let means: Vec<f64> = draws.iter().map(|c| mean(c)).collect();
    let acov = |chain: usize, lag: usize| -> f64 {
        let c = &draws[chain];
        let mu = means[chain];
        (0..n - lag)
            .map(|i| (c[i] - mu) * (c[i + lag] - mu))
            .sum::<f64>()
            / n as f64
    };
    let mean_acov = |lag: usize| (0..m).map(|c| acov(c, lag)).sum::<f64>() / m as f64;
    let nf = n as f64;
    let mean_var = mean_acov(0) * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if m > 1 {
        var_plus += var(&means);
    }
    if var_plus <= 0.0 || !var_plus.is_finite() {
        return f64::NAN;
    }
    let rho = |lag: usize| 1.0 - (mean_var - mean_acov(lag)) / var_plus;
    let mut rho_hat = vec![0.0; n + 1];
    rho_hat[0] = 1.0;
    let mut even = 1.0;
    let mut odd = rho(1);
    rho_hat[1] = odd;
    let mut t = 1;
    while t + 5 < n && (even + odd) > 0.0 {
        even = rho(t + 1);
        odd = rho(t + 2);
        if even + odd >= 0.0 {
            rho_hat[t + 1] = even;
            rho_hat[t + 2] = odd;
        }
        t += 2;
    }
    let max_t = t;
    if even > 0.0 {
        rho_hat[max_t + 1] = even;
    }
    // Geyer's initial monotone sequence: pair sums may not increase
    let mut t = 1;
    while t + 3 <= max_t {
        if rho_hat[t + 1] + rho_hat[t + 2] > rho_hat[t - 1] + rho_hat[t] {
            let avg = (rho_hat[t - 1] + rho_hat[t]) / 2.0;
            rho_hat[t + 1] = avg;
            rho_hat[t + 2] = avg;
        }
        t += 2;
    }
    let total = (m * n) as f64;
    let tau = -1.0 + 2.0 * rho_hat[..max_t].iter().sum::<f64>() + rho_hat[max_t];
    // Stan's safeguard against antithetic chains claiming absurd efficiency
    let tau = tau.max(1.0 / total.log10());
    total / tau
}

/// Split-R̂: each chain is cut in two halves and R̂ = √(var⁺/W) over the 2M halves, with W the
/// mean within-half variance and var⁺ = (n−1)/n·W + B/n (BDA3 §11.4). Near 1 when chains agree.
pub fn split_rhat(draws: &[Vec<f64>]) -> f64 {
    let n = check(draws, "split_rhat");
    assert!(
        n >= 4,
        "split_rhat: need at least 4 draws per chain, got {n}"
    );
    let half = n / 2;
    let halves: Vec<&[f64]> = draws
        .iter()
        .flat_map(|c| [&c[..half], &c[n - half..]])
        .collect();
    let w = halves.iter().map(|h| var(h)).sum::<f64>() / halves.len() as f64;
    let means: Vec<f64> = halves.iter().map(|h| mean(h)).collect();
    let nf = half as f64;
    let var_plus = (nf - 1.0) / nf * w + var(&means);
    (var_plus / w).sqrt()
}

/// Sample mean and (unbiased) covariance of the rows of a `[n, d]` tensor; the covariance is
/// row-major d×d.
pub fn mean_cov(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(x.rank(), 2, "mean_cov: need [n, d], got {:?}", x.shape());
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let v = x.to_vec_f64();
    let mut m = vec![0.0; d];
    for r in v.chunks_exact(d) {
        for (mi, ri) in m.iter_mut().zip(r) {
            *mi += ri;
        }
    }
    m.iter_mut().for_each(|mi| *mi /= n as f64);
    let mut c = vec![0.0; d * d];
    for r in v.chunks_exact(d) {
        for i in 0..d {
            for j in 0..d {
                c[i * d + j] += (r[i] - m[i]) * (r[j] - m[j]);
            }
        }
    }
    c.iter_mut().for_each(|ci| *ci /= n as f64 - 1.0);
    (m, c)
}

/// Monte-Carlo estimates of E[f(x)] from a run's recorded states, one per column of f
/// ([`Samples::estimate`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// The mean of each column over chains and recorded iterations.
    pub mean: Vec<f64>,
    /// Its Monte-Carlo standard error √(s²/ESS), s² the pooled sample variance.
    pub se: Vec<f64>,
    /// The effective sample size of each column across chains ([`ess`]).
    pub ess: Vec<f64>,
}

impl Estimate {
    /// Estimates from independent draws `x` `[n]` or `[n, k]` (exact samples, say), to
    /// compare a sampler's with: column means, SEs s/√n, and ESS n.
    pub fn independent(x: &Tensor) -> Estimate {
        assert!(
            x.rank() == 1 || x.rank() == 2,
            "Estimate::independent: need draws [n] or [n, k], got {:?}",
            x.shape()
        );
        let n = x.shape()[0];
        let k = if x.rank() == 2 { x.shape()[1] } else { 1 };
        Estimate {
            mean: x.col_mean().to_vec_f64(),
            se: x.col_sem().to_vec_f64(),
            ess: vec![n as f64; k],
        }
    }
}

impl Samples {
    /// E[f(x)] over the recorded states with standard errors from the effective sample size:
    /// `f` maps a batch of states `[B, …]` to `[B]` or `[B, k]` (e.g. `[x, x²]` for the first
    /// two moments), and each of its k columns gets a mean, an SE and an ESS. Needs at least 4
    /// recorded states ([`Record`](crate::Record)).
    pub fn estimate(&self, f: impl Fn(&Tensor) -> Tensor) -> Estimate {
        assert!(
            !self.states.is_empty(),
            "estimate: no states were recorded (sample with a Record)"
        );
        let b = self.states[0].shape()[0];
        let values: Vec<Vec<f64>> = self
            .states
            .iter()
            .map(|s| {
                let v = f(s);
                assert!(
                    v.rank() <= 2 && v.shape().first() == Some(&b),
                    "estimate: f must map states {:?} to [{b}] or [{b}, k], got {:?}",
                    s.shape(),
                    v.shape()
                );
                v.to_vec_f64()
            })
            .collect();
        let k = values[0].len() / b;
        let mut out = Estimate {
            mean: Vec::with_capacity(k),
            se: Vec::with_capacity(k),
            ess: Vec::with_capacity(k),
        };
        for j in 0..k {
            let draws: Vec<Vec<f64>> = (0..b)
                .map(|c| values.iter().map(|v| v[c * k + j]).collect())
                .collect();
            let pooled: Vec<f64> = draws.concat();
            let n_eff = ess(&draws);
            out.mean.push(mean(&pooled));
            out.se.push((var(&pooled) / n_eff).sqrt());
            out.ess.push(n_eff);
        }
        out
    }
}

/// How much a run bought: ESS over the recorded draws of every coordinate, per gradient and
/// per second of the whole run (warm-up included: what the user paid).
#[derive(Clone, Debug, PartialEq)]
pub struct Efficiency {
    /// The smallest ESS over coordinates (the slowest direction decides).
    pub min_ess: f64,
    /// The median ESS over coordinates.
    pub median_ess: f64,
    /// The largest split-R̂ over coordinates.
    pub max_rhat: f64,
    /// Gradient evaluations summed over chains ([`Samples::gradient_evals`]).
    pub gradient_evals: usize,
    /// Wall-clock seconds of the run, as measured by the caller.
    pub seconds: f64,
    /// `min_ess / gradient_evals`.
    pub ess_per_gradient: f64,
    /// `min_ess / seconds`.
    pub ess_per_second: f64,
}

/// The [`Efficiency`] of a run with recorded states that took `seconds`.
pub fn efficiency(samples: &Samples, seconds: f64) -> Efficiency {
    assert!(
        !samples.states.is_empty(),
        "efficiency: no states were recorded"
    );
    let b = samples.x.shape()[0];
    let d = samples.x.numel() / b;
    // one conversion of the recorded states, then each coordinate's draws[chain][iteration]
    let flat: Vec<Vec<f64>> = samples.states.iter().map(|s| s.to_vec_f64()).collect();
    let (mut ess_all, mut max_rhat) = (Vec::with_capacity(d), f64::NAN);
    for j in 0..d {
        let draws: Vec<Vec<f64>> = (0..b)
            .map(|c| flat.iter().map(|s| s[c * d + j]).collect())
            .collect();
        ess_all.push(ess(&draws));
        max_rhat = max_rhat.max(split_rhat(&draws));
    }
    ess_all.sort_by(f64::total_cmp);
    let grads = samples.gradient_evals();
    Efficiency {
        min_ess: ess_all[0],
        median_ess: ess_all[d / 2],
        max_rhat,
        gradient_evals: grads,
        seconds,
        ess_per_gradient: ess_all[0] / grads as f64,
        ess_per_second: ess_all[0] / seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::{DType, Rng};

    #[test]
    fn estimates_of_independent_draws_have_the_textbook_se() {
        // 40 recorded states of 50 independent N(0, 1) rows: E[x] = 0 with SE ≈ 1/√2000,
        // E[x²] = 1 with SE ≈ √2/√2000 (the ESS of independent draws is about their number)
        let mut rng = Rng::new(2);
        let mut s = Samples::new(Tensor::zeros(&[50, 1], DType::F64));
        s.states = (0..40).map(|_| rng.normal(&[50, 1], DType::F64)).collect();
        let est = s.estimate(|x| Tensor::concat(&[x.clone(), x.square()], 1));
        let n = 2000f64;
        for (j, (want, se)) in [(0.0, 1.0 / n.sqrt()), (1.0, (2.0 / n).sqrt())]
            .iter()
            .enumerate()
        {
            assert!(
                (est.se[j] / se - 1.0).abs() < 0.25,
                "SE {} vs {se}",
                est.se[j]
            );
            assert!(
                (est.mean[j] - want).abs() < 4.0 * se,
                "mean {}",
                est.mean[j]
            );
            assert!((est.ess[j] / n - 1.0).abs() < 0.3, "ESS {}", est.ess[j]);
        }
        assert_eq!(est.mean.len(), 2);
        // the same draws pooled as independent: the same means, SEs s/√n
        let pooled = Tensor::concat(&s.states, 0);
        let iid = Estimate::independent(&Tensor::concat(&[pooled.clone(), pooled.square()], 1));
        for j in 0..2 {
            assert!((iid.mean[j] - est.mean[j]).abs() < 1e-12);
            assert!((iid.se[j] / est.se[j] - 1.0).abs() < 0.3);
        }
        assert_eq!(iid.ess, vec![n, n]);
    }

    fn ar1(rng: &mut Rng, phi: f64, chains: usize, n: usize, offset: &[f64]) -> Vec<Vec<f64>> {
        (0..chains)
            .map(|c| {
                let z = rng.normal_vec(n);
                // start in the stationary law N(0, 1/(1 − φ²))
                let mut x = z[0] / (1.0 - phi * phi).sqrt();
                z.iter()
                    .map(|zi| {
                        let out = x + offset[c];
                        x = phi * x + zi;
                        out
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn ess_of_iid_and_ar1_draws() {
        let mut rng = Rng::new(9);
        let (chains, n) = (8, 2000);
        let zero = vec![0.0; chains];
        let iid = ess(&ar1(&mut rng, 0.0, chains, n, &zero));
        // iid: ESS ≈ MN = 16000; the estimator's sd at this size is a few percent
        assert!((iid / 16000.0 - 1.0).abs() < 0.1, "iid ess {iid}");
        // AR(1): τ = (1 + φ)/(1 − φ) = 19 for φ = 0.9, so ESS ≈ 16000/19 = 842
        let a = ess(&ar1(&mut rng, 0.9, chains, n, &zero));
        assert!((a / 842.0 - 1.0).abs() < 0.2, "ar1 ess {a}");
    }

    #[test]
    fn split_rhat_flags_disagreeing_chains() {
        let mut rng = Rng::new(10);
        let zero = vec![0.0; 4];
        let good = split_rhat(&ar1(&mut rng, 0.5, 4, 1000, &zero));
        assert!(good < 1.01, "rhat {good}");
        let bad = split_rhat(&ar1(&mut rng, 0.5, 4, 1000, &[0.0, 0.0, 0.0, 3.0]));
        assert!(bad > 1.2, "rhat {bad}");
    }
}
