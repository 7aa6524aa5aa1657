//! `ebm_core::Rng` as a `rand` generator: `rand_distr` distributions sample from it, their
//! sample moments match the known ones within 4 standard errors (fixed seeds), and the same
//! seed gives the same draws.

use ebm_core::Rng;
use rand_distr::{Beta, Distribution, Gamma};

/// Sample mean and (unbiased) variance of `n` draws.
fn moments(d: &impl Distribution<f64>, rng: &mut Rng, n: usize) -> (f64, f64) {
    let x: Vec<f64> = (0..n).map(|_| d.sample(rng)).collect();
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var)
}

/// Checks the sample mean and variance against the distribution's, with standard errors
/// √(σ²/n) for the mean and σ²·√((κ + 2)/n) for the variance (κ the excess kurtosis).
fn check(name: &str, (m, v): (f64, f64), mean: f64, var: f64, kurtosis: f64, n: usize) {
    let n = n as f64;
    let (se_mean, se_var) = ((var / n).sqrt(), var * ((kurtosis + 2.0) / n).sqrt());
    assert!(
        (m - mean).abs() < 4.0 * se_mean,
        "{name}: mean {m}, want {mean} ± {}",
        4.0 * se_mean
    );
    assert!(
        (v - var).abs() < 4.0 * se_var,
        "{name}: variance {v}, want {var} ± {}",
        4.0 * se_var
    );
}

#[test]
fn gamma_has_its_moments() {
    // Gamma(k = 2.5, θ = 1.5): mean kθ, variance kθ², excess kurtosis 6/k
    let (k, theta, n) = (2.5, 1.5, 200_000);
    let d = Gamma::new(k, theta).unwrap();
    let got = moments(&d, &mut Rng::new(1), n);
    check(
        "Gamma(2.5, 1.5)",
        got,
        k * theta,
        k * theta * theta,
        6.0 / k,
        n,
    );
}

#[test]
fn beta_has_its_moments() {
    // Beta(a = 2, b = 5): mean a/(a+b), variance ab/((a+b)²(a+b+1)), excess kurtosis
    // 6[(a−b)²(a+b+1) − ab(a+b+2)] / [ab(a+b+2)(a+b+3)]
    let (a, b, n) = (2.0f64, 5.0f64, 200_000);
    let d = Beta::new(a, b).unwrap();
    let got = moments(&d, &mut Rng::new(2).stream(4), n);
    let s = a + b;
    let kurtosis =
        6.0 * ((a - b).powi(2) * (s + 1.0) - a * b * (s + 2.0)) / (a * b * (s + 2.0) * (s + 3.0));
    check(
        "Beta(2, 5)",
        got,
        a / s,
        a * b / (s * s * (s + 1.0)),
        kurtosis,
        n,
    );
}

#[test]
fn same_seed_same_draws() {
    let d = Gamma::new(0.7, 2.0).unwrap();
    let draw = |rng: &mut Rng| (0..50).map(|_| d.sample(rng)).collect::<Vec<f64>>();
    let (mut a, mut b) = (Rng::new(9), Rng::new(9));
    assert_eq!(draw(&mut a), draw(&mut b));
    assert_eq!(a.state(), b.state(), "both generators advanced alike");
    assert_ne!(draw(&mut a), draw(&mut Rng::new(10)));
}
