//! Agreement with PyTorch (float64 autograd, cross-checked against JAX by the script that made
//! them, `bench/python/conv_fixtures.py`) on conv2d, conv_transpose2d, avg_pool2d, nearest
//! upsampling and group norm: the output, the gradients of Σ c·y w.r.t. the input and every
//! parameter, and a Hessian-vector product w.r.t. the input of E = Σ c·softplus(y). Every
//! measure is `max|a − b| / max(1, max|b|)` over a whole tensor and must be ≤ 1e-10.
//!
//! Every check runs on every device ([`for_each_device!`]).

use ebm_autodiff::{grad, hvp, GradOpts, Tape, Var};
use ebm_core::{for_each_device, Conv2dSpec, Device, Tensor};
use std::collections::HashMap;

mod common;

/// A case's op on (input, parameters).
type Op = Box<dyn Fn(&Var, &[Var]) -> Var>;

fn spec_of(v: &[usize]) -> Conv2dSpec {
    Conv2dSpec {
        stride: [v[0], v[1]],
        padding: [v[2], v[3]],
        dilation: [v[4], v[5]],
        groups: v[6],
    }
}

/// y plus the per-channel bias `p[1]` when the case has one.
fn with_bias(y: Var, p: &[Var]) -> Var {
    match p.get(1) {
        Some(b) => y.add(&b.reshape(&[1, b.numel(), 1, 1])),
        None => y,
    }
}

/// The op of each case, from its name and `spec` row.
fn op_of(name: &str, s: &[usize], eps: f64) -> Op {
    let s = s.to_vec();
    let spec = spec_of(&s);
    let op = [s[7], s[8]];
    match name {
        n if n.starts_with("conv_") => Box::new(move |x, p| with_bias(x.conv2d(&p[0], spec), p)),
        n if n.starts_with("convt_") => {
            Box::new(move |x, p| with_bias(x.conv_transpose2d(&p[0], spec, op), p))
        }
        "avg_pool" => Box::new(move |x, _| x.avg_pool2d([s[0], s[1]], [s[2], s[3]], [s[4], s[5]])),
        "upsample" => Box::new(move |x, _| x.upsample_nearest2d([s[0], s[1]])),
        "group_norm" => Box::new(move |x, p| {
            let c = x.shape()[1];
            let gamma = p[0].reshape(&[1, c, 1, 1]);
            x.group_norm(s[0], eps)
                .mul(&gamma)
                .add(&p[1].reshape(&[1, c, 1, 1]))
        }),
        other => panic!("unknown fixture case {other}"),
    }
}

fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.shape(), want.shape());
    got.max_abs_diff(want) / want.max_abs().max(1.0)
}

/// The errors of one case on `dev`, as (quantity, error).
fn case_errors(name: &str, data: &HashMap<String, Tensor>, dev: Device) -> Vec<(String, f64)> {
    let get = |k: &str| data.get(&format!("{name}.{k}")).map(|t| t.to_device(dev));
    let raw = get("spec").unwrap().to_vec_f64();
    let spec: Vec<usize> = raw.iter().map(|&v| v as usize).collect();
    let op = op_of(name, &spec, raw[1] * 1e-8);
    let pnames: Vec<&str> = ["w", "b"]
        .into_iter()
        .filter(|p| get(p).is_some())
        .collect();
    let tape = Tape::new();
    let x = tape.var(get("x").unwrap());
    let params: Vec<Var> = pnames.iter().map(|p| tape.var(get(p).unwrap())).collect();
    let (c, v) = (get("c").unwrap(), get("v").unwrap());
    let y = op(&x, &params);
    let mut wrt = vec![&x];
    wrt.extend(params.iter());
    let grads = grad(&y.mul_const(&c).sum_all(), &wrt);
    let energy = op(&x, &params).softplus().mul_const(&c).sum_all();
    let h = hvp(&energy, &x, &v, GradOpts::default());
    let mut errs = vec![
        ("y".to_string(), rel_err(y.value(), &get("y").unwrap())),
        ("gx".into(), rel_err(grads[0].value(), &get("gx").unwrap())),
        ("hvp".into(), rel_err(h.value(), &get("hvp").unwrap())),
    ];
    for (p, g) in pnames.iter().zip(&grads[1..]) {
        errs.push((
            format!("g{p}"),
            rel_err(g.value(), &get(&format!("g{p}")).unwrap()),
        ));
    }
    errs
}

#[test]
fn conv_ops_agree_with_pytorch() {
    let data = common::load("conv_fixtures.safetensors");
    let mut cases: Vec<&str> = data
        .keys()
        .filter_map(|k| k.strip_suffix(".spec"))
        .collect();
    cases.sort_unstable();
    assert_eq!(cases.len(), 8, "cases in the fixture file: {cases:?}");
    for_each_device!(|dev| {
        let mut worst = 0.0f64;
        for name in &cases {
            for (q, err) in case_errors(name, &data, dev) {
                eprintln!("{dev:?} {name}.{q}: {err:.2e}");
                assert!(
                    err <= 1e-10,
                    "{name}.{q} on {dev:?}: relative error {err:e}"
                );
                worst = worst.max(err);
            }
        }
        eprintln!("{dev:?}: largest relative error {worst:.2e}");
    });
}
