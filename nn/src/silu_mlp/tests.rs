//! The closed forms against the tape's derivatives, in f64 and f32.

use crate::model::{score_from_energy, EnergyModel, Module};
use crate::{Mlp, MlpConfig};
use ebm_autodiff::{grad, grad_with, GradOpts, Tape, Var};
use ebm_core::{DType, Rng, Tensor};

/// ℓ = Σ r ⊙ s(x) with s from the closed-form node (`closed`) or the tape: its parameter
/// gradient, or with `v` the parameter Hessian's product with `v`.
fn grads(m: &Mlp, x: &Tensor, r: &Tensor, v: Option<&[Tensor]>, closed: bool) -> Vec<Tensor> {
    let tape = Tape::new();
    let p = m.params().bind(&tape);
    let s = if closed {
        let before = tape.len();
        let s = m.score_var(&tape.constant(x.clone()), &p, GradOpts::create_graph());
        assert_eq!(tape.len(), before + 1, "one node for the closed-form score");
        s
    } else {
        let xv = tape.var(x.clone());
        score_from_energy(&m.energy_var(&xv, &p), &xv, GradOpts::create_graph())
    };
    param_derivatives(&s.mul_const(r).sum_all(), &p, v)
}

/// The gradient of `loss` in the parameters `p`, or with `v` the parameter Hessian's
/// product with `v` (by a recorded sweep and a second one).
fn param_derivatives(loss: &Var, p: &[Var], v: Option<&[Tensor]>) -> Vec<Tensor> {
    let refs: Vec<&Var> = p.iter().collect();
    let Some(v) = v else {
        return grad(loss, &refs)
            .iter()
            .map(|g| g.value().clone())
            .collect();
    };
    let g = grad_with(loss, &refs, GradOpts::create_graph());
    let gv = g
        .iter()
        .zip(v)
        .map(|(g, v)| g.mul_const(v).sum_all())
        .reduce(|a, b| a.add(&b))
        .expect("at least one parameter");
    grad(&gv, &refs).iter().map(|g| g.value().clone()).collect()
}

/// One and three hidden layers, skinny (≤ 4) and wide inputs.
const WIDTHS: [&[usize]; 4] = [
    &[2, 128, 128, 1],
    &[3, 5, 1],
    &[4, 7, 6, 5, 1],
    &[9, 8, 6, 1],
];

/// A random direction in parameter space (f64), for Hessian products.
fn param_directions(m: &Mlp, rng: &mut Rng) -> Vec<Tensor> {
    m.params()
        .tensors()
        .iter()
        .map(|t| rng.normal(t.shape(), DType::F64))
        .collect()
}

fn assert_close(got: &[Tensor], want: &[Tensor], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.shape(), w.shape(), "{what}: parameter {i}");
        let err = g.max_abs_diff(w);
        assert!(
            err <= tol * (1.0 + w.max_abs()),
            "{what}: parameter {i} off by {err} (largest {})",
            w.max_abs()
        );
    }
}

/// ℓ = Σ c ⊙ E(x) on the closed-form node or the tape: its parameter gradient, or with
/// `v` the parameter Hessian's product with `v`.
fn energy_grads(
    m: &Mlp,
    x: &Tensor,
    c: &Tensor,
    v: Option<&[Tensor]>,
    closed: bool,
) -> Vec<Tensor> {
    let tape = Tape::new();
    let p = m.params().bind(&tape);
    let before = tape.len();
    let e = if closed {
        m.energy_var(&tape.constant(x.clone()), &p)
    } else {
        m.forward(&tape.constant(x.clone()), &p)
            .reshape(&[x.shape()[0]])
    };
    assert_eq!(
        tape.len() == before + 1,
        closed,
        "one node for the closed form"
    );
    param_derivatives(&e.mul_const(c).sum_all(), &p, v)
}

#[test]
fn closed_form_vjps_are_the_tape_vjps() {
    let mut rng = Rng::new(12);
    for widths in WIDTHS {
        for dtype in [DType::F64, DType::F32] {
            let m = Mlp::with_dtype(MlpConfig::new(widths), &mut rng, dtype);
            let x = rng.normal(&[37, widths[0]], dtype).mul_scalar(2.0);
            let r = rng.normal(&[37, widths[0]], dtype);
            let tol = if dtype == DType::F64 { 1e-12 } else { 2e-4 };
            let want = grads(&m, &x, &r, None, false);
            let got = grads(&m, &x, &r, None, true);
            assert_close(&got, &want, tol, &format!("score {widths:?} {dtype}"));
            // the output bias has no effect on the score
            assert_eq!(got.last().unwrap().max_abs(), 0.0);

            let c = rng.normal(&[37], dtype);
            let want = energy_grads(&m, &x, &c, None, false);
            let got = energy_grads(&m, &x, &c, None, true);
            assert_close(
                &got,
                &want,
                tol / 10.0,
                &format!("energy {widths:?} {dtype}"),
            );
        }
        // the value is the forward pass's
        let m = Mlp::with_dtype(MlpConfig::new(widths), &mut rng, DType::F64);
        let x = rng.normal(&[5, widths[0]], DType::F64);
        let tape = Tape::new();
        let p = m.params().bind(&tape);
        let e = m.energy_var(&tape.constant(x.clone()), &p);
        assert!(e.value().max_abs_diff(&m.predict(&x).reshape(&[5])) < 1e-14);
    }
}

#[test]
fn a_recorded_sweep_differentiates_again() {
    let mut rng = Rng::new(9);
    for widths in [&[2usize, 16, 16, 1][..], &[5, 6, 1], &[3, 9, 7, 1]] {
        let m = Mlp::with_dtype(MlpConfig::new(widths), &mut rng, DType::F64);
        let x = rng.normal(&[11, widths[0]], DType::F64);
        let r = rng.normal(&[11, widths[0]], DType::F64);
        let c = rng.normal(&[11], DType::F64);
        let v = param_directions(&m, &mut rng);
        let score = |closed| grads(&m, &x, &r, Some(&v), closed);
        let energy = |closed| energy_grads(&m, &x, &c, Some(&v), closed);
        for (what, want, got) in [
            ("score", score(false), score(true)),
            ("energy", energy(false), energy(true)),
        ] {
            let what = format!("{what} Hessian product {widths:?}");
            assert_close(&got, &want, 1e-12, &what);
            assert!(
                want.iter().any(|t| t.max_abs() > 1e-3),
                "{what}: a test that can fail"
            );
        }
    }
}

#[test]
fn the_closed_form_score_without_a_graph_is_a_constant() {
    let mut rng = Rng::new(10);
    let m = Mlp::new(MlpConfig::new(&[2, 8, 8, 1]), &mut rng);
    let x = rng.normal(&[5, 2], DType::F32);
    let tape = Tape::new();
    let p = m.params().bind(&tape);
    let s = m.score_var(&tape.var(x.clone()), &p, GradOpts::default());
    assert!(!s.is_tracked());
    assert_eq!(s.value().to_vec_f64(), m.score(&x).to_vec_f64());
    // a tracked x with a graph goes to the tape (the input derivative stays available)
    let xv = tape.var(x);
    let s = m.score_var(&xv, &p, GradOpts::create_graph());
    let h = grad(&s.sum_all(), &[&xv]).remove(0);
    assert_eq!(h.shape(), &[5, 2]);
}

/// ℓ = Σ r ⊙ s(x) + Σₘ Σ ṙₘ ⊙ ∇ₓs(x)·vₘ from the closed-form node (`closed`) or the tape's
/// reverse mode twice: the values [s, ṡ₁, …] and ℓ's parameter gradient (or with `hv` the
/// parameter Hessian's product with `hv`).
fn jvp_grads(
    m: &Mlp,
    x: &Tensor,
    v: &[Tensor],
    r: &[Tensor],
    hv: Option<&[Tensor]>,
    closed: bool,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let tape = Tape::new();
    let p = m.params().bind(&tape);
    let (s, jvps) = if closed {
        let before = tape.len();
        let out = m.score_and_jvps(&tape, x, &p, v);
        // the node, and a row block of it for s and each ṡₘ
        assert_eq!(tape.len(), before + 2 + v.len(), "one closed-form node");
        out
    } else {
        crate::model::score_and_jvps_on_tape(m, &tape, x, &p, v)
    };
    let outs: Vec<Var> = std::iter::once(s).chain(jvps).collect();
    let loss = outs
        .iter()
        .zip(r)
        .map(|(o, r)| o.mul_const(r).sum_all())
        .reduce(|a, b| a.add(&b))
        .expect("the score at least");
    let values = outs.iter().map(|o| o.value().clone()).collect();
    (values, param_derivatives(&loss, &p, hv))
}

#[test]
fn closed_form_score_jvps_are_the_tapes() {
    let mut rng = Rng::new(14);
    for widths in WIDTHS {
        for dtype in [DType::F64, DType::F32] {
            for n_tangents in [1, 2] {
                let m = Mlp::with_dtype(MlpConfig::new(widths), &mut rng, dtype);
                let x = rng.normal(&[37, widths[0]], dtype).mul_scalar(2.0);
                let v: Vec<Tensor> = (0..n_tangents)
                    .map(|_| rng.normal(x.shape(), dtype))
                    .collect();
                let r: Vec<Tensor> = (0..=n_tangents)
                    .map(|_| rng.normal(x.shape(), dtype))
                    .collect();
                let what = format!("{widths:?} {dtype} M = {n_tangents}");
                let tol = if dtype == DType::F64 { 1e-12 } else { 2e-4 };
                let (want_v, want) = jvp_grads(&m, &x, &v, &r, None, false);
                let (got_v, got) = jvp_grads(&m, &x, &v, &r, None, true);
                assert_close(&got_v, &want_v, tol, &format!("values {what}"));
                assert_close(&got, &want, tol, &format!("gradients {what}"));
                assert!(
                    want_v[1..].iter().all(|t| t.max_abs() > 1e-3),
                    "{what}: directional derivatives far from zero (a test that can fail)"
                );
            }
        }
    }
}

#[test]
fn a_recorded_sweep_differentiates_the_jvp_node_again() {
    let mut rng = Rng::new(15);
    for widths in [&[2usize, 16, 16, 1][..], &[5, 6, 1], &[3, 9, 7, 1]] {
        let m = Mlp::with_dtype(MlpConfig::new(widths), &mut rng, DType::F64);
        let x = rng.normal(&[11, widths[0]], DType::F64);
        let v = [rng.normal(x.shape(), DType::F64)];
        let r = [
            rng.normal(x.shape(), DType::F64),
            rng.normal(x.shape(), DType::F64),
        ];
        let hv = param_directions(&m, &mut rng);
        let (_, want) = jvp_grads(&m, &x, &v, &r, Some(&hv), false);
        let (_, got) = jvp_grads(&m, &x, &v, &r, Some(&hv), true);
        let what = format!("Hessian product of the JVP node {widths:?}");
        assert_close(&got, &want, 1e-12, &what);
        assert!(
            want.iter().any(|t| t.max_abs() > 1e-3),
            "{what}: a test that can fail"
        );
    }
}
