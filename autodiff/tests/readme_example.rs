//! The README's grad-of-grad example, kept compiling and checked.

use ebm_autodiff::{grad, grad_with, gradgradcheck, hessian_diag, CheckOpts, GradOpts, Tape, Var};
use ebm_core::Tensor;

#[test]
fn readme_example_runs_and_is_right() {
    let energy = |x: &Var| x.tanh().square().sum(&[1], false) + x.sum(&[1], false);
    let tape = Tape::new();
    let x0 = Tensor::from_vec(vec![0.3f64, -1.2, 0.8, 2.0], &[2, 2]);
    let x = tape.var(x0.clone());
    let e = energy(&x);
    let g = grad_with(&e.sum_all(), &[&x], GradOpts::create_graph()).remove(0);
    let h = hessian_diag(&e, &x, GradOpts::default());
    let hv = grad(&g.mul(&x.detach()).sum_all(), &[&x]).remove(0);
    // E = Σ tanh²(xᵢ) + xᵢ: ∂E/∂xᵢ = 2 t (1 − t²) + 1, ∂²E/∂xᵢ² = 2(1 − t²)(1 − 3t²);
    // the Hessian is diagonal, so H·x = diag ⊙ x.
    for (i, &xi) in x0.to_vec_f64().iter().enumerate() {
        let t = xi.tanh();
        let d1 = 2.0 * t * (1.0 - t * t) + 1.0;
        let d2 = 2.0 * (1.0 - t * t) * (1.0 - 3.0 * t * t);
        assert!((g.value().to_vec_f64()[i] - d1).abs() < 1e-14);
        assert!((h.value().to_vec_f64()[i] - d2).abs() < 1e-14);
        assert!((hv.value().to_vec_f64()[i] - d2 * xi).abs() < 1e-14);
    }
    gradgradcheck(|v| energy(&v[0]), &[x0], &CheckOpts::default()).unwrap();
}
