//! Parallel tempering on a 0.2/0.8 mixture of two well-separated Gaussians, where a plain MALA
//! chain never leaves the mode it starts in.

mod common;

use common::map_draws;
use ebm_core::{DType, Rng, Tensor};
use ebm_samplers::diagnostics::ess;
use ebm_samplers::{Gaussian, GaussianMixture, InnerKernel, Mala, Record, Tempering};

/// 0.2 N((−4, −4), I) + 0.8 N((4, 4), I): the modes are 11.3 standard deviations apart and
/// the energy barrier between them is about 16 nats.
fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        &[0.2, 0.8],
        vec![
            Gaussian::isotropic(&[-4.0, -4.0], 1.0),
            Gaussian::isotropic(&[4.0, 4.0], 1.0),
        ],
    )
}

/// Which side of the barrier: 1 in the heavy mode's half-plane x₀ + x₁ > 0 (the light mode
/// puts mass Φ(−5.66) ≈ 10⁻⁸ there).
fn heavy(r: &[f64]) -> f64 {
    (r[0] + r[1] > 0.0) as u8 as f64
}

/// Over-dispersed starts N(0, 16 I), which land on both sides of the barrier.
fn starts(n: usize, rng: &mut Rng) -> Tensor {
    rng.normal(&[n, 2], DType::F64).mul_scalar(4.0)
}

/// (fraction in the heavy mode − 0.8)/SE with the ESS-based SE √(0.8·0.2/ESS).
fn weight_z(label: &str, draws: &[Vec<f64>]) -> f64 {
    let n: usize = draws.iter().map(|c| c.len()).sum();
    let frac = draws.iter().flatten().sum::<f64>() / n as f64;
    let e = ess(draws);
    let se = (0.16 / e).sqrt();
    let z = (frac - 0.8) / se;
    eprintln!("{label}: heavy-mode weight {frac:.4} vs 0.8, ESS {e:.0}, SE {se:.4}: {z:+.1} SE");
    z
}

fn check_tempering(kernel: InnerKernel, adapt: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let pt = Tempering::default()
        .with_replicas(8)
        .with_beta_min(0.02)
        .with_warmup(500)
        .with_draws(1000)
        .with_kernel(kernel)
        .with_adaptive_ladder(adapt);
    let out = pt.run(&mixture(), starts(100, &mut rng), &mut rng);
    let st = &out.stats;
    eprintln!(
        "PT {kernel:?} (adaptive ladder {adapt}): β {:.4?}, swap rates {:.3?}, replica acceptance \
         {:.3?}, round trips {}",
        st.betas, st.swap_rates, st.replica_accept_rates, st.round_trips
    );
    let z = weight_z("PT cold chain", &map_draws(&out.states, heavy));
    assert!(z.abs() < 4.0, "PT weight {z:.1} SE off");
    assert!(st.round_trips > 100, "only {} round trips", st.round_trips);
    assert!(
        st.swap_rates.iter().all(|&r| r > 0.2),
        "a pair rarely swaps: {:?}",
        st.swap_rates
    );
    if adapt {
        // the adapted ladder evens out the swap rates
        let (lo, hi) = st
            .swap_rates
            .iter()
            .fold((1.0f64, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
        assert!(
            hi - lo < 0.15,
            "swap rates {:?} not equalised",
            st.swap_rates
        );
    }
}

#[test]
fn tempering_recovers_the_weights_where_mala_fails() {
    // Plain MALA with the same starts and iterations, on as many chains as PT has rows (800):
    // each chain stays in its starting mode, so the ESS of the indicator is about the number
    // of chains, and the weight is off by the fraction of starts on the wrong side.
    let mut rng = Rng::new(40);
    let out = Mala::new(0.5, 500, 1000).with_record(Record::every(1)).run(
        &mixture(),
        starts(800, &mut rng),
        &mut rng,
    );
    let z = weight_z("MALA", &map_draws(&out.states, heavy));
    assert!(z.abs() > 10.0, "MALA's weight only {z:.1} SE off");
    check_tempering(InnerKernel::Mala, false, 41);
}

#[test]
fn tempering_with_hmc_and_an_adaptive_ladder() {
    check_tempering(InnerKernel::Hmc { n_leapfrog: 5 }, true, 42);
}
