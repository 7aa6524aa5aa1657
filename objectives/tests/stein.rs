//! Stein discrepancies' known answers: the KSD training loss is the kernel Stein discrepancy
//! U-statistic of the evaluation module, and a learned Stein critic reaches the closed-form
//! maximum (1/(4λ))·mean‖s_θ − s̃‖² of its objective.

use ebm_autodiff::Tape;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{EnergyModel, Mlp, MlpConfig, Module, Optimizer, Quadratic};
use ebm_objectives::eval::ksd;
use ebm_objectives::{
    train_step, KernelSteinDiscrepancy, LearnedStein, Objective, Projection, SteinKernel, TrainStep,
};
use ebm_samplers::analytic::cholesky;

fn loss_of(objective: &mut dyn Objective, model: &dyn ebm_nn::Model, x: &Tensor) -> f64 {
    let tape = Tape::new();
    let p = model.params().bind(&tape);
    let q = objective
        .params()
        .map(|q| q.bind(&tape))
        .unwrap_or_default();
    objective
        .loss(&tape, model, &p, &q, x, &mut Rng::new(0))
        .item()
}

#[test]
fn ksd_loss_is_the_evaluation_u_statistic() {
    // IMQ (c = 1, β = −½): the same estimator as eval::ksd, written as tensor algebra
    let mut rng = Rng::new(1);
    let model = Mlp::with_dtype(MlpConfig::new(&[3, 16, 1]), &mut rng, DType::F64);
    let x = rng.normal(&[40, 3], DType::F64).mul_scalar(1.3);
    let got = loss_of(&mut KernelSteinDiscrepancy::default(), &model, &x);
    let want = ksd(&x, &model.score(&x));
    eprintln!(
        "KSD loss {got:.12} vs eval::ksd {want:.12}: |error| {:.1e} (tolerance 1e-10)",
        (got - want).abs()
    );
    assert!((got - want).abs() < 1e-10 * (1.0 + want.abs()));
    // the Gaussian kernel against the same sum written out pair by pair
    let h = 0.8;
    let mut rbf = KernelSteinDiscrepancy {
        kernel: SteinKernel::Rbf { bandwidth: Some(h) },
    };
    let got = loss_of(&mut rbf, &model, &x);
    let (xs, ss) = (x.to_vec_f64(), model.score(&x).to_vec_f64());
    let (n, d) = (40, 3);
    let mut total = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (a, b) = (&xs[i * d..(i + 1) * d], &xs[j * d..(j + 1) * d]);
            let (sa, sb) = (&ss[i * d..(i + 1) * d], &ss[j * d..(j + 1) * d]);
            let r2: f64 = a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum();
            let k = (-r2 / (2.0 * h * h)).exp();
            let mut u = (d as f64 / (h * h) - r2 / h.powi(4)) * k;
            for t in 0..d {
                let diff = a[t] - b[t];
                // ∇_b k = (a − b)k/h², ∇_a k = −(a − b)k/h²
                u += sa[t] * sb[t] * k + sa[t] * diff * k / (h * h) - sb[t] * diff * k / (h * h);
            }
            total += u;
        }
    }
    let want = total / (n * (n - 1)) as f64;
    assert!(
        (got - want).abs() < 1e-10 * (1.0 + want.abs()),
        "RBF {got} vs {want}"
    );
}

#[test]
fn learned_stein_critic_reaches_the_closed_form_maximum() {
    // Data x ~ N(m, C), model fixed at N(0, I), a linear critic f(x) = Wx + b. Over affine f
    // the empirical objective mean[s_θᵀf] + tr W − λ mean‖f‖² equals
    // mean[(s_θ − s̃)ᵀf] − λ mean‖f‖² with s̃(x) = −S⁻¹(x − x̄) the score of the Gaussian with
    // the data's own first two moments (Stein's identity for affine f needs only those), so
    // its maximum is at f* = (s_θ − s̃)/(2λ), with value (1/(4λ)) mean‖s_θ − s̃‖².
    let n = 4000;
    let prec = [2.0, 0.6, 0.6, 1.0];
    let l = cholesky(&prec, 2).unwrap();
    let data = Quadratic::new(
        Tensor::from_vec(vec![0.5f64, -1.0], &[2]),
        Tensor::from_f64s(&l, &[2, 2], DType::F64),
    );
    let x = data.sample(n, &mut Rng::new(2));
    let mut model = Quadratic::standard(2, DType::F64);
    let lambda = 0.5;
    let critic = Mlp::with_dtype(MlpConfig::new(&[2, 2]), &mut Rng::new(3), DType::F64);
    let mut lsd = LearnedStein::with_critic(critic, lambda, Projection::Rademacher);
    // the model's rate is 0: only the critic learns
    let mut step = TrainStep::new(Optimizer::sgd(0.0, 0.0, model.params()))
        .with_objective_optimizer(Optimizer::adam(0.05, lsd.params().unwrap()));
    let mut rng = Rng::new(4);
    let steps = 600;
    for k in 0..steps {
        let f = 0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / steps as f64).cos());
        step.objective_optimizer.as_mut().unwrap().set_lr(0.05 * f);
        train_step(&mut lsd, &mut model, &mut step, &x, &mut rng);
    }
    // the learned critic's value, its trace exact (tr W for a linear critic)
    let f = lsd.critic().predict(&x);
    let s = model.score(&x);
    let w = lsd.critic().params().get(0).to_vec_f64();
    let value = s.mul(&f).sum_all().item() / n as f64 + w[0] + w[3]
        - lambda * f.square().sum_all().item() / n as f64;
    // the closed form
    let mean = x.mean_axes(&[0], true);
    let c = x.sub(&mean);
    let cov = c
        .matmul_t(&c, true, false)
        .mul_scalar(1.0 / n as f64)
        .to_vec_f64();
    let det = cov[0] * cov[3] - cov[1] * cov[2];
    let inv = Tensor::from_vec(
        vec![cov[3] / det, -cov[1] / det, -cov[2] / det, cov[0] / det],
        &[2, 2],
    );
    let s_tilde = c.matmul(&inv).neg();
    let gap = s.sub(&s_tilde);
    let best = gap.square().sum_all().item() / (4.0 * lambda * n as f64);
    let f_star = gap.mul_scalar(1.0 / (2.0 * lambda));
    let rel = (best - value) / best;
    let f_err = f.max_abs_diff(&f_star) / f_star.max_abs();
    eprintln!(
        "LSD critic: value {value:.6} vs maximum {best:.6}, relative shortfall {rel:.1e} (tolerance 1e-3); max |f − f*|/max |f*| = {f_err:.1e} (tolerance 3e-2)"
    );
    assert!(rel > -1e-9, "the closed form is the maximum");
    assert!(rel < 1e-3);
    assert!(f_err < 3e-2);
}
