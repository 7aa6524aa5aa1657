//! The objectives reproduce the PyTorch/JAX reference losses and every parameter gradient of
//! the M2 fixture (autodiff/tests/data, README there) in f64 to 1e-10 relative.

use ebm_autodiff::Tape;
use ebm_core::{DType, Tensor};
use ebm_nn::{load_weights, param_grads, read_tensors, EnergyModel, Mlp, MlpConfig, Module};
use ebm_objectives::{
    ChainInit, DenoisingScoreMatching, ExactScoreMatching, MaximumLikelihood, Nce,
    NoiseDistribution, Objective, SlicedScoreMatching,
};
use ebm_samplers::ula::{Step, Ula};
use std::collections::HashMap;

fn data(name: &str) -> String {
    format!(
        "{}/../autodiff/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn tensors(name: &str) -> HashMap<String, Tensor> {
    read_tensors(data(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_iter()
        .map(|(k, v)| (k, v.cast(DType::F64)))
        .collect()
}

fn model_f64() -> Mlp {
    let mut m = Mlp::new(
        MlpConfig::new(&[2, 128, 128, 1]),
        &mut ebm_core::Rng::new(0),
    );
    load_weights(data("M2_weights.safetensors"), &mut m).unwrap();
    m.params_mut().cast(DType::F64);
    m
}

fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.shape(), want.shape());
    got.max_abs_diff(want) / want.max_abs().max(1e-300)
}

/// Evaluates `loss` on a fresh tape and compares value and gradients with `<name>.*`.
fn check(name: &str, loss: impl Fn(&Tape, &Mlp, &[ebm_autodiff::Var]) -> ebm_autodiff::Var) {
    let exp = tensors("M2_expected.safetensors");
    let model = model_f64();
    let tape = Tape::new();
    let p = model.params().bind(&tape);
    let l = loss(&tape, &model, &p);
    let want = &exp[&format!("{name}.loss")];
    let e = ((l.item() - want.item()) / want.item().abs()).abs();
    assert!(
        e < 1e-10,
        "{name}.loss: {} vs {} (rel {e:e})",
        l.item(),
        want.item()
    );
    let grads = param_grads(&l, &p);
    let mut worst = 0f64;
    for (pname, g) in model.params().names().iter().zip(&grads) {
        let w = &exp[&format!("{name}.grad.{pname}")];
        let err = if w.max_abs() == 0.0 {
            g.max_abs()
        } else {
            rel_err(g, w)
        };
        assert!(err < 1e-10, "{name}.grad.{pname}: relative error {err:e}");
        worst = worst.max(err);
    }
    eprintln!("{name}: loss rel err {e:.1e}, worst grad rel err {worst:.1e}");
}

#[test]
fn dsm_matches_reference() {
    let inp = tensors("M2_inputs.safetensors");
    check("dsm", |tape, m, p| {
        DenoisingScoreMatching::new(0.1).loss_with_noise(tape, m, p, &inp["x"], &inp["z_dsm"])
    });
}

#[test]
fn esm_matches_reference() {
    let inp = tensors("M2_inputs.safetensors");
    check("esm", |tape, m, p| {
        ExactScoreMatching.loss(tape, m, p, &[], &inp["x"], &mut ebm_core::Rng::new(0))
    });
}

#[test]
fn ssm_matches_reference() {
    let inp = tensors("M2_inputs.safetensors");
    check("ssm", |tape, m, p| {
        SlicedScoreMatching::default().loss_with_projections(
            tape,
            m,
            p,
            &inp["x"],
            std::slice::from_ref(&inp["v"]),
        )
    });
}

#[test]
fn pcd_matches_reference() {
    let inp = tensors("M2_inputs.safetensors");
    let ml = MaximumLikelihood::new(Ula::new(Step::Tied { eps: 0.01 }, 20), ChainInit::Data, 0.1);
    check("pcd", |tape, m, p| {
        ml.loss_with_negatives(tape, m, p, &inp["x"], &inp["x_chain"])
    });
}

#[test]
fn nce_matches_reference_including_log_z_gradient() {
    let inp = tensors("M2_inputs.safetensors");
    let exp = tensors("M2_expected.safetensors");
    let nce = Nce::new(NoiseDistribution::isotropic(2, 2.0), 1.0, 0.0, DType::F64);
    let model = model_f64();
    let tape = Tape::new();
    let p = model.params().bind(&tape);
    let q = nce.params().unwrap().bind(&tape);
    let l = nce.loss_with_noise(&tape, &model, &p, &q, &inp["x"], &inp["x_noise"]);
    let want = exp["nce.loss"].item();
    assert!(
        ((l.item() - want) / want).abs() < 1e-10,
        "nce.loss {} vs {want}",
        l.item()
    );
    let gq = param_grads(&l, &q);
    let wz = exp["nce.grad.logZ"].item();
    assert!(
        ((gq[0].item() - wz) / wz).abs() < 1e-10,
        "nce.grad.logZ {} vs {wz}",
        gq[0].item()
    );
    check("nce", |tape, m, p| {
        let q = nce.params().unwrap().bind(tape);
        nce.loss_with_noise(tape, m, p, &q, &inp["x"], &inp["x_noise"])
    });
    // the model sees the same energy the reference does
    let e = model.energy(&inp["x"]);
    assert!(rel_err(&e, &exp["energy"]) < 1e-12);
}
