//! Agreement with the M2 reference values computed by PyTorch autograd in float64 (cross-checked
//! against JAX): energies, scores, Hessian diagonals, HVPs, one Langevin step, and five training
//! losses with their gradients w.r.t. every parameter. See `tests/data/README.md` for the
//! formulas and tolerances.
//!
//! f64 (weights and inputs upcast exactly from the stored f32) must agree to 1e-10 relative; f32
//! (as stored, f32 arithmetic) within the README's f32 tolerances. Every measure is
//! `max|a − b| / max|b|` over a whole tensor. `report_agreement` prints the table of all errors.
//!
//! Every check runs on every device ([`for_each_device!`]): the CPU always, the GPU when ebm-core
//! has its `cuda` feature and a driver answers (same tolerances).

use ebm_autodiff::{grad, grad_with, hessian_diag, hvp, GradOpts, Tape, Var};
use ebm_core::{for_each_device, DType, Device, Tensor};
use std::collections::HashMap;

mod common;
use common::load;

const PARAMS: [&str; 6] = [
    "l0.weight",
    "l0.bias",
    "l1.weight",
    "l1.bias",
    "l2.weight",
    "l2.bias",
];
const LOSSES: [&str; 5] = ["dsm", "esm", "ssm", "nce", "pcd"];
const EPS_ULA: f64 = 0.01;
const SIGMA_DSM: f64 = 0.1;

// ---------------------------------------------------------------------------------------------
// Loading

/// Weights and inputs in `dtype` (f32 as stored, or its exact f64 upcast), on one device.
struct Fixture {
    weights: Vec<Tensor>,
    inputs: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(dtype: DType, dev: Device) -> Fixture {
        let w = load("M2_weights.safetensors");
        let weights = PARAMS
            .iter()
            .map(|&n| w[n].cast(dtype).to_device(dev))
            .collect();
        let inputs = load("M2_inputs.safetensors")
            .into_iter()
            .map(|(k, t)| (k, t.cast(dtype).to_device(dev)))
            .collect();
        Fixture { weights, inputs }
    }

    fn input(&self, name: &str) -> &Tensor {
        &self.inputs[name]
    }

    /// The parameters as leaves of `tape`.
    fn params(&self, tape: &Tape) -> Vec<Var> {
        self.weights.iter().map(|w| tape.var(w.clone())).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The M2 energy and the quantities built on it

/// `y = x·Wᵀ + b` (PyTorch `nn.Linear` layout, W is [out, in]).
fn linear(x: &Var, w: &Var, b: &Var) -> Var {
    x.matmul_t(w, false, true).add(b)
}

/// `E(x) = l2(silu(l1(silu(l0(x)))))`, one scalar per row: [B, 2] → [B].
fn energy(x: &Var, p: &[Var]) -> Var {
    let h = linear(x, &p[0], &p[1]).silu();
    let h = linear(&h, &p[2], &p[3]).silu();
    linear(&h, &p[4], &p[5]).reshape(&[x.shape()[0]])
}

/// `s(x) = −∇ₓE(x)` per row (rows are independent, so ∇ₓΣE gives every row's gradient).
fn score(x: &Var, p: &[Var], opts: GradOpts) -> Var {
    grad_with(&energy(x, p).sum_all(), &[x], opts)
        .remove(0)
        .neg()
}

/// dsm (σ = 0.1): `xt = x + σ z`; `loss = ½ mean_b ‖s(xt) + (xt − x)/σ²‖²`.
/// The score is recorded (create_graph) so the loss can be differentiated w.r.t. θ.
fn dsm_loss(tape: &Tape, f: &Fixture, p: &[Var]) -> Var {
    let x = f.input("x");
    let xt = x.add(&f.input("z_dsm").mul_scalar(SIGMA_DSM));
    let target = xt.sub(x).mul_scalar(1.0 / (SIGMA_DSM * SIGMA_DSM));
    let s = score(&tape.var(xt), p, GradOpts::create_graph());
    s.add_const(&target)
        .sum_squares(&[1], false)
        .mean_all()
        .mul_scalar(0.5)
}

/// esm: `loss = mean_b [ ½‖∇ₓE(x)‖² − trace H(x) ]`, exact trace from the Hessian diagonal.
fn esm_loss(tape: &Tape, f: &Fixture, p: &[Var]) -> Var {
    let x = tape.var(f.input("x").clone());
    let e = energy(&x, p);
    let g = grad_with(&e.sum_all(), &[&x], GradOpts::create_graph()).remove(0);
    let trace = hessian_diag(&e, &x, GradOpts::create_graph()).sum(&[1], false);
    g.sum_squares(&[1], false)
        .mul_scalar(0.5)
        .sub(&trace)
        .mean_all()
}

/// ssm: `loss = mean_b [ vᵀ∇ₓ(vᵀs(x)) + ½(vᵀs(x))² ]`; the first term is an HVP (−vᵀHv).
fn ssm_loss(tape: &Tape, f: &Fixture, p: &[Var]) -> Var {
    let x = tape.var(f.input("x").clone());
    let v = f.input("v");
    let s = score(&x, p, GradOpts::create_graph());
    let vs = s.mul_const(v).sum(&[1], false); // [B]: vᵀs per row
    let d = grad_with(&vs.sum_all(), &[&x], GradOpts::create_graph()).remove(0);
    let vd = d.mul_const(v).sum(&[1], false); // [B]: vᵀ∇ₓ(vᵀs) per row
    vd.add(&vs.square().mul_scalar(0.5)).mean_all()
}

/// nce (ν = 1, noise N(0, 4I)): `log p_n(x) = −‖x‖²/8 − log(8π)`;
/// `G(x) = −E(x) − logZ − log p_n(x)`; `loss = −mean log σ(G(x)) − mean log σ(−G(x_noise))`.
fn nce_loss(tape: &Tape, f: &Fixture, p: &[Var], log_z: &Var) -> Var {
    let log_pn = |x: &Tensor| {
        x.square()
            .sum_axes(&[1], false)
            .mul_scalar(-1.0 / 8.0)
            .add_scalar(-(8.0 * std::f64::consts::PI).ln())
    };
    let g = |x: &Tensor| {
        energy(&tape.constant(x.clone()), p)
            .neg()
            .sub(log_z)
            .add_const(&log_pn(x).neg())
    };
    let (gx, gn) = (g(f.input("x")), g(f.input("x_noise")));
    gx.log_sigmoid()
        .mean_all()
        .add(&gn.neg().log_sigmoid().mean_all())
        .neg()
}

/// pcd: `loss = mean E(x) − mean E(x_chain) + 0.1 mean(E(x)² + E(x_chain)²)`; x_chain is a
/// constant (no gradient through the chain), the parameters get gradients from both terms.
fn pcd_loss(tape: &Tape, f: &Fixture, p: &[Var]) -> Var {
    let ex = energy(&tape.constant(f.input("x").clone()), p);
    let ec = energy(&tape.constant(f.input("x_chain").clone()), p);
    let reg = ex.square().add(&ec.square()).mean_all().mul_scalar(0.1);
    ex.mean_all().sub(&ec.mean_all()).add(&reg)
}

/// One Adam step from zero state at t = 1, PyTorch's formula (lr 1e-3, betas (0.9, 0.999),
/// eps 1e-8): `p − lr/(1−β₁) · m / (√v/√(1−β₂) + eps)` with `m = (1−β₁)g`, `v = (1−β₂)g²`.
fn adam1(p: &Tensor, g: &Tensor) -> Tensor {
    let (lr, b1, b2, eps) = (1e-3, 0.9, 0.999, 1e-8);
    let m = g.mul_scalar(1.0 - b1);
    let v = g.square().mul_scalar(1.0 - b2);
    let denom = v.sqrt().mul_scalar(1.0 / (1.0 - b2).sqrt()).add_scalar(eps);
    p.sub(&m.div(&denom).mul_scalar(lr / (1.0 - b1)))
}

/// Every checked quantity for `dtype` on `dev`, named as in `M2_expected.safetensors`.
fn compute(dtype: DType, dev: Device) -> Vec<(String, Tensor)> {
    let f = Fixture::load(dtype, dev);
    let mut out: Vec<(String, Tensor)> = Vec::new();

    // Energy, score, Hessian diagonal, HVP, one Langevin step.
    {
        let tape = Tape::new();
        let p: Vec<Var> = f.weights.iter().map(|w| tape.constant(w.clone())).collect();
        let x = tape.var(f.input("x").clone());
        let e = energy(&x, &p);
        let grad_e = grad(&e.sum_all(), &[&x]).remove(0);
        let h = hessian_diag(&e, &x, GradOpts::default());
        // ΣE has a block-diagonal Hessian (rows are independent): H·v gives H_b v_b per row.
        let hv = hvp(&e.sum_all(), &x, f.input("v"), GradOpts::default());
        let ula = f
            .input("x")
            .sub(&grad_e.value().mul_scalar(0.5 * EPS_ULA * EPS_ULA))
            .add(&f.input("z_ula").mul_scalar(EPS_ULA));
        out.push(("energy".into(), e.value().clone()));
        out.push(("score".into(), grad_e.value().neg()));
        out.push(("hess_diag".into(), h.value().clone()));
        out.push(("hvp".into(), hv.value().clone()));
        out.push(("ula_step".into(), ula));
    }

    // The losses and their parameter gradients.
    for name in LOSSES {
        let tape = Tape::new();
        let p = f.params(&tape);
        let log_z = tape.var(Tensor::scalar(0.0, dtype));
        let loss = match name {
            "dsm" => dsm_loss(&tape, &f, &p),
            "esm" => esm_loss(&tape, &f, &p),
            "ssm" => ssm_loss(&tape, &f, &p),
            "nce" => nce_loss(&tape, &f, &p, &log_z),
            "pcd" => pcd_loss(&tape, &f, &p),
            _ => unreachable!(),
        };
        let mut wrt: Vec<&Var> = p.iter().collect();
        if name == "nce" {
            wrt.push(&log_z);
        }
        let grads = grad(&loss, &wrt);
        out.push((format!("{name}.loss"), loss.value().clone()));
        for (pname, g) in PARAMS.iter().zip(&grads) {
            out.push((format!("{name}.grad.{pname}"), g.value().clone()));
        }
        if name == "nce" {
            out.push(("nce.grad.logZ".into(), grads[6].value().clone()));
        }
        if name == "dsm" {
            for ((pname, w), g) in PARAMS.iter().zip(&f.weights).zip(&grads) {
                out.push((format!("dsm.adam1.{pname}"), adam1(w, g.value())));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// `max|a − b| / max|b|` in f64 (0 when both are exactly zero).
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let diff = a.to_cpu().cast(DType::F64).max_abs_diff(b);
    diff / b.max_abs().max(f64::MIN_POSITIVE)
}

/// Tolerance on `rel_err` for a quantity. f64: 1e-10 everywhere. f32 (README): relative 1e-4 on
/// energies, scores, steps, losses and loss gradients; second-order input derivatives
/// (Hessian diagonal, HVP) absolute 1e-5 × the tensor's max-abs.
fn tolerance(dtype: DType, name: &str) -> f64 {
    match dtype {
        DType::F64 => 1e-10,
        DType::F32 if name == "hess_diag" || name == "hvp" => 1e-5,
        DType::F32 => 1e-4,
    }
}

struct Row {
    name: String,
    err: f64,
    tol: f64,
}

impl Row {
    /// Within tolerance (false for NaN).
    fn ok(&self) -> bool {
        self.err <= self.tol
    }
}

/// Relative errors of every quantity computed on `dev` whose name starts with `prefix` ("" for
/// all).
fn measure(dtype: DType, dev: Device, prefix: &str) -> Vec<Row> {
    let expected = load("M2_expected.safetensors");
    let rows: Vec<Row> = compute(dtype, dev)
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, got)| {
            let want = expected
                .get(&name)
                .unwrap_or_else(|| panic!("no reference value named {name}"));
            Row {
                err: rel_err(&got, want),
                tol: tolerance(dtype, &name),
                name,
            }
        })
        .collect();
    assert!(!rows.is_empty(), "no quantity starts with {prefix:?}");
    rows
}

/// Checks every quantity starting with `prefix` in `dtype` on every device, printing each error.
fn check(dtype: DType, prefix: &str) {
    for_each_device!(|dev| {
        let rows = measure(dtype, dev, prefix);
        let mut failed = Vec::new();
        for r in &rows {
            eprintln!(
                "{dtype} {dev:?} {:<22} rel err {:.3e} (tol {:.0e})",
                r.name, r.err, r.tol
            );
            if !r.ok() {
                failed.push(format!("{}: {:.3e} > {:.0e}", r.name, r.err, r.tol));
            }
        }
        assert!(
            failed.is_empty(),
            "{dtype} on {dev:?} disagreements: {failed:#?}"
        );
    });
}

#[test]
fn reference_files_hold_every_quantity() {
    let expected = load("M2_expected.safetensors");
    let names: Vec<String> = compute(DType::F64, Device::Cpu)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut missing: Vec<&String> = expected.keys().filter(|k| !names.contains(k)).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "reference values not checked: {missing:?}"
    );
}

#[test]
fn energy_and_input_derivatives_f64() {
    for q in ["energy", "score", "hess_diag", "hvp", "ula_step"] {
        check(DType::F64, q);
    }
}

#[test]
fn energy_and_input_derivatives_f32() {
    for q in ["energy", "score", "hess_diag", "hvp", "ula_step"] {
        check(DType::F32, q);
    }
}

#[test]
fn dsm_f64() {
    check(DType::F64, "dsm.");
}

#[test]
fn dsm_f32() {
    check(DType::F32, "dsm.");
}

#[test]
fn esm_f64() {
    check(DType::F64, "esm.");
}

#[test]
fn esm_f32() {
    check(DType::F32, "esm.");
}

#[test]
fn ssm_f64() {
    check(DType::F64, "ssm.");
}

#[test]
fn ssm_f32() {
    check(DType::F32, "ssm.");
}

#[test]
fn nce_f64() {
    check(DType::F64, "nce.");
}

#[test]
fn nce_f32() {
    check(DType::F32, "nce.");
}

#[test]
fn pcd_f64() {
    check(DType::F64, "pcd.");
}

#[test]
fn pcd_f32() {
    check(DType::F32, "pcd.");
}

/// Prints quantity → f64 and f32 relative error on every device (run with `--nocapture`), and
/// fails if any is outside its tolerance.
#[test]
fn report_agreement() {
    for_each_device!(|dev| {
        let r64 = measure(DType::F64, dev, "");
        let r32 = measure(DType::F32, dev, "");
        let mut table = format!(
            "\n{dev:?}\n{:<22} {:>12} {:>12}\n{}\n",
            "quantity",
            "f64 rel err",
            "f32 rel err",
            "-".repeat(48)
        );
        for (a, b) in r64.iter().zip(&r32) {
            assert_eq!(a.name, b.name);
            table += &format!("{:<22} {:>12.3e} {:>12.3e}\n", a.name, a.err, b.err);
        }
        let worst = |rows: &[Row]| rows.iter().map(|r| r.err / r.tol).fold(0.0, f64::max);
        table += &format!(
            "worst err/tol: f64 {:.3e}, f32 {:.3e}\n",
            worst(&r64),
            worst(&r32)
        );
        eprintln!("{table}");
        assert!(
            r64.iter().chain(&r32).all(Row::ok),
            "a quantity is outside its tolerance:{table}"
        );
    });
}
