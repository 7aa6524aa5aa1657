//! ChEES-HMC: 1000 chains in lock-step on the correlated Gaussian of condition number 100.

mod common;

use common::assert_moments;
use ebm_core::{DType, Rng};
use ebm_samplers::test_targets::IllConditioned;
use ebm_samplers::{Chees, Record};

/// The trajectory length that maximises the jittered ChEES criterion on a Gaussian with
/// covariance eigenvalues λ, with identity mass matrix and exact dynamics.
///
/// In the eigenbasis each coordinate θᵢ = σᵢaᵢ (σᵢ = √λᵢ, aᵢ, pᵢ ~ N(0, 1) independent) moves
/// harmonically: θᵢ(t) = σᵢ(aᵢ cos ωᵢ + pᵢ sin ωᵢ) with ωᵢ = t/σᵢ. Then
/// θᵢ(t)² − θᵢ² = λᵢ[(aᵢ cos ωᵢ + pᵢ sin ωᵢ)² − aᵢ²], a difference of two squared standard
/// normals with correlation cos ωᵢ, whose variance is 3 + 3 − 2(1 + 2cos²ωᵢ) = 4 sin²ωᵢ; the
/// coordinates are independent, so ChEES(t) = ¼ Var(‖θ(t)‖² − ‖θ‖²) = Σᵢ λᵢ² sin²(t/σᵢ).
/// Averaged over the jitter t = hT, h ~ U(0, 1): E sin²(hT/σ) = ½(1 − sin(2T/σ)/(2T/σ)), so
/// J(T) = ½ Σᵢ λᵢ² (1 − sinc(2T/σᵢ)). The λ² weights make the largest scale dominate: for a
/// single σ the optimum solves tan u = u at u = 2T/σ = 4.4934, T* = 2.247σ_max; the smaller
/// scales shift it a little, so T* is found numerically here.
fn chees_optimum(eigenvalues: &[f64]) -> f64 {
    let j = |t: f64| -> f64 {
        eigenvalues
            .iter()
            .map(|l| {
                let u = 2.0 * t / l.sqrt();
                l * l * (1.0 - u.sin() / u)
            })
            .sum::<f64>()
    };
    (1..20_000)
        .map(|i| i as f64 * 0.005)
        .max_by(|a, b| j(*a).total_cmp(&j(*b)))
        .unwrap()
}

#[test]
fn chees_recovers_an_ill_conditioned_gaussian_and_its_trajectory_length() {
    let t = IllConditioned::new(10, 100.0, 7);
    let t_star = chees_optimum(&t.eigenvalues);
    let mut rng = Rng::new(31);
    let x0 = rng.normal(&[1000, 10], DType::F64);
    let out = Chees::new(1000, 100)
        .with_record(Record::none())
        .run(&t.gaussian, x0, &mut rng);
    let st = &out.stats;
    let len = st.trajectory_length.unwrap();
    eprintln!(
        "ChEES: ε = {:.3}, T = {len:.2} (optimum for exact dynamics {t_star:.2} = {:.3} σ_max), \
         acceptance {:.3}, divergences {} (warm-up {}), {} gradients per chain",
        st.step_size.unwrap(),
        t_star / t.eigenvalues[9].sqrt(),
        st.accept_rate.unwrap(),
        st.divergences,
        st.warmup_divergences,
        st.grad_evals / 1000
    );
    // the final states of 1000 independent chains are 1000 draws
    assert_moments("ChEES", &out.x, &t.gaussian);
    assert!(
        (len / t_star - 1.0).abs() < 0.25,
        "trajectory length {len:.2}, optimum {t_star:.2}"
    );
    assert!(
        st.accept_rate.unwrap() > 0.6,
        "acceptance {}",
        st.accept_rate.unwrap()
    );
}
