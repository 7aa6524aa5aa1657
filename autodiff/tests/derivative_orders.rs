//! Derivatives beyond the second: third-order checks against closed forms, and the mixed
//! ∂²/∂θ∂x of an MLP energy (what DSM differentiates) against finite differences.

use ebm_autodiff::{grad, grad_with, gradgradcheck, CheckOpts, GradOpts, Tape, Var};
use ebm_core::{DType, Rng, Tensor};

fn xs() -> Tensor {
    Tensor::from_vec(vec![-1.7f64, -0.4, 0.0, 0.3, 1.1, 2.5], &[6])
}

/// d/dx, d²/dx², d³/dx³ of Σ f(x) element-wise, each with create_graph.
fn three_derivatives(f: impl Fn(&Var) -> Var) -> [Vec<f64>; 3] {
    let tape = Tape::new();
    let x = tape.var(xs());
    let y = f(&x).sum_all();
    let d1 = grad_with(&y, &[&x], GradOpts::create_graph()).remove(0);
    let d2 = grad_with(&d1.sum_all(), &[&x], GradOpts::create_graph()).remove(0);
    let d3 = grad(&d2.sum_all(), &[&x]).remove(0);
    [d1, d2, d3].map(|d| d.value().to_vec_f64())
}

#[test]
fn third_derivative_of_polynomial_is_exact() {
    // p(x) = 2x⁴ − 3x³ + x: p' = 8x³ − 9x² + 1, p'' = 24x² − 18x, p''' = 48x − 18
    let [d1, d2, d3] = three_derivatives(|x| {
        x.powf(4.0)
            .mul_scalar(2.0)
            .sub(&x.powf(3.0).mul_scalar(3.0))
            .add(x)
    });
    for (i, &x) in xs().to_vec_f64().iter().enumerate() {
        assert!((d1[i] - (8.0 * x.powi(3) - 9.0 * x * x + 1.0)).abs() < 1e-12);
        assert!((d2[i] - (24.0 * x * x - 18.0 * x)).abs() < 1e-12);
        assert!(
            (d3[i] - (48.0 * x - 18.0)).abs() < 1e-12,
            "x={x}: {}",
            d3[i]
        );
    }
}

#[test]
fn third_derivative_of_tanh_matches_closed_form() {
    // t = tanh x: t' = 1 − t², t'' = −2t(1 − t²), t''' = −2(1 − t²)(1 − 3t²)
    let [d1, d2, d3] = three_derivatives(|x| x.tanh());
    for (i, &x) in xs().to_vec_f64().iter().enumerate() {
        let t = x.tanh();
        let s = 1.0 - t * t;
        assert!((d1[i] - s).abs() < 1e-14);
        assert!((d2[i] + 2.0 * t * s).abs() < 1e-14);
        let want = -2.0 * s * (1.0 - 3.0 * t * t);
        assert!((d3[i] - want).abs() < 1e-13, "x={x}: {} vs {want}", d3[i]);
    }
}

#[test]
fn third_order_finite_difference_check() {
    // gradgradcheck of the gradient checks the third derivative of the original.
    let f = |v: &[Var]| {
        let x = &v[0];
        let y = x.silu().mul(&x.sin()).sum_all();
        grad_with(&y, &[x], GradOpts::create_graph()).remove(0)
    };
    let x = Rng::new(5).normal(&[3, 2], DType::F64);
    gradgradcheck(f, &[x], &CheckOpts::default()).unwrap();
}

/// A 2-h-1 MLP energy: E(x) = w2·silu(W1 x + b1) + b2, one value per row.
fn mlp_energy(x: &Var, p: &[Var]) -> Var {
    let h = x.matmul_t(&p[0], false, true).add(&p[1]).silu();
    h.matmul_t(&p[2], false, true)
        .add(&p[3])
        .reshape(&[x.shape()[0]])
}

#[test]
fn mixed_theta_x_derivative_of_mlp() {
    let mut rng = Rng::new(11);
    let params = vec![
        rng.normal(&[8, 2], DType::F64),
        rng.normal(&[8], DType::F64),
        rng.normal(&[1, 8], DType::F64),
        rng.normal(&[1], DType::F64),
    ];
    let x = rng.normal(&[5, 2], DType::F64);
    // F(θ, x) = ∇ₓ ΣE(x; θ): its derivatives w.r.t. θ are the mixed ∂²E/∂θ∂x that DSM uses.
    let score = |v: &[Var]| {
        let e = mlp_energy(&v[0], &v[1..]);
        grad_with(&e.sum_all(), &[&v[0]], GradOpts::create_graph()).remove(0)
    };
    let mut inputs = vec![x];
    inputs.extend(params);
    gradgradcheck(score, &inputs, &CheckOpts::default()).unwrap();
}

/// A small conv energy, E(x) = Σ softplus(w₂ ⋆ silu(w₁ ⋆ x)) with padding, stride 2 and two
/// groups: gradgradcheck of its score x ↦ ∇ₓE (recorded) checks third derivatives through
/// conv2d, conv_transpose2d and conv2d_weight, w.r.t. the input and both weights.
#[test]
fn third_order_through_a_conv_energy() {
    use ebm_core::Conv2dSpec;
    let mut rng = Rng::new(21);
    let x = rng.normal(&[2, 2, 5, 5], DType::F64);
    let w1 = rng.normal(&[4, 1, 3, 3], DType::F64).mul_scalar(0.5);
    let w2 = rng.normal(&[3, 4, 2, 2], DType::F64).mul_scalar(0.5);
    let score = |v: &[Var]| {
        let h = v[0]
            .conv2d(&v[1], Conv2dSpec::new().padding(1).groups(2))
            .silu();
        let e = h.conv2d(&v[2], Conv2dSpec::new().stride(2)).softplus();
        grad_with(&e.sum_all(), &[&v[0]], GradOpts::create_graph()).remove(0)
    };
    gradgradcheck(score, &[x, w1, w2], &CheckOpts::default()).unwrap();
}
