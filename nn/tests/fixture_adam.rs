//! One Adam step on the M2 fixture's denoising-score-matching gradient reproduces PyTorch's
//! `dsm.adam1.*` (f64, relative 1e-12), with the fixture's MLP loaded through `load_weights`.

use ebm_autodiff::{GradOpts, Tape};
use ebm_core::{DType, Tensor};
use ebm_nn::{
    load_weights, param_grads, read_tensors, EnergyModel, Mlp, MlpConfig, Module, Optimizer,
};
use std::collections::HashMap;

const SIGMA: f64 = 0.1;

fn data(file: &str) -> String {
    format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> HashMap<String, Tensor> {
    read_tensors(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .collect()
}

/// The fixture model in `dtype` (f64 is the exact upcast of the stored f32).
fn fixture_model(dtype: DType) -> Mlp {
    let mut m = Mlp::new(
        MlpConfig::new(&[2, 128, 128, 1]),
        &mut ebm_core::Rng::new(0),
    );
    load_weights(data("M2_weights.safetensors"), &mut m).expect("fixture weights load");
    m.params_mut().cast(dtype);
    m
}

/// dsm (σ = 0.1): xt = x + σz; loss = ½ mean_b ‖s(xt) + (xt − x)/σ²‖².
fn dsm_grads(m: &Mlp, inputs: &HashMap<String, Tensor>, dtype: DType) -> Vec<Tensor> {
    let x = inputs["x"].cast(dtype);
    let xt = x.add(&inputs["z_dsm"].cast(dtype).mul_scalar(SIGMA));
    let target = xt.sub(&x).mul_scalar(1.0 / (SIGMA * SIGMA));
    let tape = Tape::new();
    let p = m.params().bind(&tape);
    let s = m.score_var(&tape.var(xt), &p, GradOpts::create_graph());
    let loss = s
        .add_const(&target)
        .sum_squares(&[1], false)
        .mean_all()
        .mul_scalar(0.5);
    param_grads(&loss, &p)
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    a.cast(DType::F64).max_abs_diff(b) / b.max_abs().max(f64::MIN_POSITIVE)
}

fn adam_step_matches(dtype: DType, tol: f64) {
    let inputs = read(&data("M2_inputs.safetensors"));
    let expected = read(&format!(
        "{}/../autodiff/tests/data/M2_expected.safetensors",
        env!("CARGO_MANIFEST_DIR")
    ));
    let mut m = fixture_model(dtype);
    let grads = dsm_grads(&m, &inputs, dtype);
    // the gradient itself first (PyTorch float64)
    for (name, g) in m.params().names().iter().zip(&grads) {
        let e = rel_err(g, &expected[&format!("dsm.grad.{name}")]);
        assert!(
            e < tol.max(1e-10),
            "{dtype} dsm.grad.{name}: rel err {e:.3e}"
        );
    }
    let mut opt = Optimizer::adam(1e-3, m.params());
    opt.step(m.params_mut(), &grads);
    for (name, p) in m.params().iter() {
        let e = rel_err(p, &expected[&format!("dsm.adam1.{name}")]);
        eprintln!("{dtype} dsm.adam1.{name:<10} rel err {e:.3e}");
        assert!(
            e <= tol,
            "{dtype} dsm.adam1.{name}: rel err {e:.3e} > {tol:.0e}"
        );
    }
    assert_eq!(opt.steps(), 1);
}

#[test]
fn adam_step_on_dsm_gradient_f64() {
    adam_step_matches(DType::F64, 1e-12);
}

#[test]
fn adam_step_on_dsm_gradient_f32() {
    // f32 arithmetic on the stored weights: the step moves each weight by ~1e-3, so the
    // parameters agree to f32 resolution.
    adam_step_matches(DType::F32, 1e-4);
}
