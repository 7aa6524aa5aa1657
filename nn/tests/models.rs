//! Models learn and differentiate correctly: a regression MLP fits sin on [−π, π], MLP and
//! noise-conditional energies have scores equal to finite differences of their energies, and
//! their first and second derivatives pass `gradgradcheck`.

use ebm_autodiff::{gradgradcheck, CheckOpts, GradOpts, Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{
    clip_grad_norm, param_grads, Activation, EnergyModel, Init, Mlp, MlpConfig, Module,
    NoiseConditionalConfig, NoiseConditionalModel, NoiseConditionalNet, Optimizer, Schedule,
};
use std::f64::consts::PI;

/// A 1-32-32-1 tanh MLP trained by full-batch Adam (warmup + cosine) on 128 points of
/// sin(x), x ∈ [−π, π], fits it to RMSE < 0.01 and max error < 0.03 on 501 test points.
#[test]
fn regression_mlp_fits_sin() {
    let mut rng = Rng::new(7);
    let cfg = MlpConfig::new(&[1, 32, 32, 1]).activation(Activation::Tanh);
    let mut model = Mlp::new(cfg, &mut rng);
    let n = 128;
    let xs: Vec<f64> = (0..n)
        .map(|i| -PI + 2.0 * PI * i as f64 / (n - 1) as f64)
        .collect();
    let x = Tensor::from_f64s(&xs, &[n, 1], DType::F32);
    let y = x.sin();
    let steps = 2000;
    let base_lr = 1e-2;
    let sched = Schedule::warmup_cosine(50, steps, 0.01);
    let mut opt = Optimizer::adam(base_lr, model.params());
    for step in 0..steps {
        let mut grads = {
            let tape = Tape::new();
            let p = model.params().bind(&tape);
            let pred = model.forward(&tape.constant(x.clone()), &p);
            let loss = pred.sub(&tape.constant(y.clone())).square().mean_all();
            param_grads(&loss, &p)
        };
        clip_grad_norm(&mut grads, 10.0);
        opt.set_lr(sched.lr(base_lr, step));
        opt.step(model.params_mut(), &grads);
    }
    let m = 501;
    let xt: Vec<f64> = (0..m)
        .map(|i| -PI + 2.0 * PI * i as f64 / (m - 1) as f64)
        .collect();
    let xt = Tensor::from_f64s(&xt, &[m, 1], DType::F32);
    let err = model.predict(&xt).sub(&xt.sin()).cast(DType::F64);
    let rmse = err.square().mean_all().item().sqrt();
    let max = err.max_abs();
    eprintln!("sin fit: RMSE {rmse:.2e}, max error {max:.2e}");
    assert!(rmse < 0.01, "RMSE {rmse}");
    assert!(max < 0.03, "max error {max}");
}

/// Central differences of E along each coordinate, [B, d].
fn fd_gradient(e: impl Fn(&Tensor) -> Tensor, x: &Tensor, eps: f64) -> Tensor {
    let (b, d) = (x.shape()[0], x.shape()[1]);
    let mut out = vec![0.0; b * d];
    for i in 0..d {
        let mut unit = vec![0.0; b * d];
        for r in 0..b {
            unit[r * d + i] = eps;
        }
        let u = Tensor::from_vec(unit, &[b, d]);
        let diff = e(&x.add(&u)).sub(&e(&x.sub(&u))).to_vec_f64();
        for r in 0..b {
            out[r * d + i] = diff[r] / (2.0 * eps);
        }
    }
    Tensor::from_vec(out, &[b, d])
}

/// s(x) = −∇ₓE(x) agrees with central differences of E for every activation (f64).
#[test]
fn mlp_energy_score_matches_finite_differences() {
    let x = Rng::new(3).normal(&[6, 3], DType::F64).mul_scalar(1.5);
    for act in Activation::ALL {
        let cfg = MlpConfig::new(&[3, 16, 16, 1]).activation(act);
        let m = Mlp::with_dtype(cfg, &mut Rng::new(11), DType::F64);
        let s = m.score(&x);
        let fd = fd_gradient(|x| m.energy(x), &x, 1e-5).neg();
        let err = s.max_abs_diff(&fd) / fd.max_abs();
        assert!(
            err < 1e-8,
            "{act}: score vs finite differences rel err {err:.3e}"
        );
        let (e2, s2) = m.energy_and_score(&x);
        assert!(e2.max_abs_diff(&m.energy(&x)) == 0.0 && s2.max_abs_diff(&s) == 0.0);
    }
}

/// First and second derivatives of the MLP energy w.r.t. input and parameters pass
/// `gradgradcheck` for every smooth activation (what DSM and exact SM differentiate).
#[test]
fn mlp_energy_passes_gradgradcheck() {
    let x = Rng::new(4).normal(&[4, 2], DType::F64);
    for act in Activation::ALL.into_iter().filter(|a| a.is_smooth()) {
        let cfg = MlpConfig::new(&[2, 8, 8, 1])
            .activation(act)
            .init(Init::XavierNormal);
        let m = Mlp::with_dtype(cfg, &mut Rng::new(5), DType::F64);
        let mut inputs = vec![x.clone()];
        inputs.extend(m.params().tensors().iter().cloned());
        let f = |v: &[Var]| m.energy_var(&v[0], &v[1..]);
        if let Err(e) = gradgradcheck(f, &inputs, &CheckOpts::default()) {
            panic!("{act}: {e}");
        }
    }
}

/// The noise-conditional energy's score matches finite differences at several σ, with and
/// without NCSNv2 scaling, and its DSM-style double backward passes gradgradcheck.
#[test]
fn noise_conditional_energy_score_matches_finite_differences() {
    let x = Rng::new(8).normal(&[5, 2], DType::F64);
    let sigma = Tensor::from_vec(vec![0.01f64, 0.1, 0.5, 1.0, 5.0], &[5]);
    for scale in [false, true] {
        let cfg = NoiseConditionalConfig::new(2, &[16, 16])
            .activation(Activation::Softplus)
            .scale_by_sigma(scale);
        let net = NoiseConditionalNet::with_dtype(cfg, &mut Rng::new(2), DType::F64);
        let s = net.score(&x, &sigma);
        let fd = fd_gradient(|x| net.energy(x, &sigma).unwrap(), &x, 1e-6).neg();
        let err = s.max_abs_diff(&fd) / fd.max_abs();
        assert!(err < 1e-7, "scale {scale}: rel err {err:.3e}");
        let mut inputs = vec![x.clone()];
        inputs.extend(net.params().tensors().iter().cloned());
        let f = |v: &[Var]| {
            net.score_var(&v[0], &sigma, &v[1..], GradOpts::create_graph())
                .sum_squares(&[1], false)
        };
        gradgradcheck(f, &inputs, &CheckOpts::default()).unwrap();
    }
}
