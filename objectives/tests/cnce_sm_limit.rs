//! Conditional NCE tends to score matching as its noise shrinks (Ceylan & Gutmann 2018, §3;
//! the review's "score matching from NCE"): (4/ε²)∇θJ_CNCE → ∇θJ_SM.
//!
//! The noise directions are the 2d points ±√d·e_i, a symmetric distribution with identity
//! covariance whose average of the sliced term ½(zᵀ∇E)² − zᵀ∇²E z is exactly the ESM loss
//! ½‖∇E‖² − tr ∇²E. So no Monte Carlo error separates the two gradients, and what is left
//! is the expansion's remainder: odd orders cancel between +z and −z, so the relative
//! difference falls as O(ε²), faster than the O(ε) the link requires.

use ebm_autodiff::Tape;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{param_grads, Mlp, MlpConfig, Module};
use ebm_objectives::{ConditionalNce, ExactScoreMatching, Objective};

fn flat(g: &[Tensor]) -> Vec<f64> {
    g.iter().flat_map(|t| t.to_vec_f64()).collect()
}

#[test]
fn rescaled_cnce_gradient_tends_to_the_score_matching_gradient() {
    let (b, d) = (64, 3);
    let mut rng = Rng::new(5);
    let model = Mlp::with_dtype(MlpConfig::new(&[d, 32, 32, 1]), &mut rng, DType::F64);
    let x = rng.normal(&[b, d], DType::F64);
    // ESM gradient
    let g_sm = {
        let tape = Tape::new();
        let p = model.params().bind(&tape);
        let l = ExactScoreMatching.loss(&tape, &model, &p, &[], &x, &mut Rng::new(0));
        flat(&param_grads(&l, &p))
    };
    // directions +√d e_i for every row; the antithetic pairs add −√d e_i
    let z = ConditionalNce::axis_directions(b, d, DType::F64);
    let norm = g_sm.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut rel = Vec::new();
    let eps = [0.2, 0.1, 0.05, 0.025];
    for &e in &eps {
        let cnce = ConditionalNce {
            epsilon: e,
            noise_per_point: d,
            antithetic: true,
        };
        let tape = Tape::new();
        let p = model.params().bind(&tape);
        let l = cnce.loss_with_noise(&tape, &model, &p, &x, &z);
        let g: Vec<f64> = flat(&param_grads(&l, &p))
            .into_iter()
            .map(|v| v * 4.0 / (e * e))
            .collect();
        let diff = g
            .iter()
            .zip(&g_sm)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        rel.push(diff / norm);
    }
    let slopes: Vec<f64> = rel.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
    let show = |v: &[f64], f: &dyn Fn(f64) -> String| {
        v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(", ")
    };
    eprintln!(
        "CNCE → SM: ε {eps:?}, relative gradient difference [{}], order per halving [{}] (tolerance: every order ≥ 1)",
        show(&rel, &|x| format!("{x:.2e}")),
        show(&slopes, &|x| format!("{x:.2}"))
    );
    for s in &slopes {
        assert!(
            *s >= 1.0,
            "the difference must fall at least as O(ε): {slopes:?}"
        );
    }
    assert!(rel[3] < 1e-2, "at ε = 0.025 the gradients agree to 1%");
}
