//! DSM with a control variate (Wang et al. 2020): as σ → 0 the per-batch gradient variance of
//! plain DSM grows like σ⁻², the control-variate version stays bounded, and both estimate the
//! same expected gradient.

use ebm_autodiff::Tape;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{param_grads, Mlp, MlpConfig, Module};
use ebm_objectives::DenoisingScoreMatching;

/// Flattened parameter gradients for K noise draws on one fixed data batch.
fn gradients(model: &Mlp, x: &Tensor, sigma: f64, cv: bool, k: u64) -> Vec<Vec<f64>> {
    (0..k)
        .map(|s| {
            let z = Rng::new(1000 + s).normal(x.shape(), DType::F64);
            let tape = Tape::new();
            let p = model.params().bind(&tape);
            let dsm = DenoisingScoreMatching {
                sigma,
                control_variate: cv,
            };
            let loss = dsm.loss_with_noise(&tape, model, &p, x, &z);
            param_grads(&loss, &p)
                .iter()
                .flat_map(|g| g.to_vec_f64())
                .collect()
        })
        .collect()
}

/// Per-component mean, and the total variance Σⱼ Var(gⱼ).
fn moments(gs: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>, f64) {
    let n = gs.len() as f64;
    let m = gs[0].len();
    let mean: Vec<f64> = (0..m)
        .map(|j| gs.iter().map(|g| g[j]).sum::<f64>() / n)
        .collect();
    let var: Vec<f64> = (0..m)
        .map(|j| gs.iter().map(|g| (g[j] - mean[j]).powi(2)).sum::<f64>() / (n - 1.0))
        .collect();
    let total = var.iter().sum();
    (mean, var, total)
}

#[test]
fn control_variate_keeps_gradient_variance_bounded_as_sigma_shrinks() {
    let mut rng = Rng::new(0);
    let mut model = Mlp::new(MlpConfig::new(&[2, 32, 32, 1]), &mut rng);
    model.params_mut().cast(DType::F64);
    let x = rng.normal(&[64, 2], DType::F64).mul_scalar(1.5);
    let k = 64;
    let mut plain = Vec::new();
    let mut with_cv = Vec::new();
    for sigma in [1e-1, 1e-2, 1e-3] {
        let (m0, v0, t0) = moments(&gradients(&model, &x, sigma, false, k));
        let (m1, v1, t1) = moments(&gradients(&model, &x, sigma, true, k));
        // same mean: every component within 4 standard errors of the difference of means
        let worst = m0
            .iter()
            .zip(&m1)
            .zip(v0.iter().zip(&v1))
            .map(|((a, b), (va, vb))| (a - b).abs() / ((va + vb) / k as f64).sqrt().max(1e-300))
            .fold(0.0, f64::max);
        eprintln!(
            "σ = {sigma:.0e}: total gradient variance DSM {t0:.3e}, DSM-CV {t1:.3e}; \
             max |mean difference|/se = {worst:.2}"
        );
        assert!(
            worst < 4.5,
            "DSM and DSM-CV disagree in mean at σ = {sigma}"
        );
        plain.push(t0);
        with_cv.push(t1);
    }
    // σ⁻² growth: ×100 per decade of σ (allow 30–300 for sampling error of a variance from 64 draws)
    for w in plain.windows(2) {
        let r = w[1] / w[0];
        assert!(
            (30.0..300.0).contains(&r),
            "DSM variance ratio per decade {r:.1}, expected ≈ 100"
        );
    }
    // bounded: within a factor 3 across two decades, and far below plain DSM at small σ
    assert!(with_cv[2] < 3.0 * with_cv[0] && with_cv[2] < 1e-3 * plain[2]);
}
