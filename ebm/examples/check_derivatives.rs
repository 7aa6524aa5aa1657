//! Checking a custom energy's derivatives before training on them. Score matching
//! differentiates ∇ₓE again, in x and in the parameters, so an energy must have right first AND
//! second derivatives: `check_energy` compares both with finite differences in f64. The energy
//! here is E(x) = ½k‖x‖² + Σⱼ sin(xⱼ), whose score −kx − cos(x) is known in closed form; the
//! same energy with its sine term detached (a common slip: a value taken off the tape) passes
//! a look at its values but fails the check.
use ebm::prelude::*;

pub(crate) fn main() {
    let energy = |x: &Var, p: &ParamVars| {
        let quadratic = x.square().sum(&[1], false).mul(&p["k"]).mul_scalar(0.5);
        quadratic.add(&x.sin().sum(&[1], false))
    };
    let model = CustomEnergy::new(&[("k", 2.0)], energy);
    let x = Rng::new(0).normal(&[8, 3], DType::F64);
    check_energy(&model, &x, &CheckOpts::default()).expect("first and second derivatives agree");

    // the score by autodiff is the closed form −kx − cos(x)
    let closed_form = x.mul_scalar(-2.0).sub(&x.cos());
    let gap = model.score(&x).max_abs_diff(&closed_form);
    println!("score: largest gap to the closed form {gap:.1e}");
    assert!(gap < 1e-12);

    // the same energy with the sine's derivative cut: equal values, wrong derivatives
    let slip = CustomEnergy::new(&[("k", 2.0)], |x: &Var, p: &ParamVars| {
        let quadratic = x.square().sum(&[1], false).mul(&p["k"]).mul_scalar(0.5);
        quadratic.add(&x.sin().sum(&[1], false).detach())
    });
    assert_eq!(slip.energy(&x).to_vec_f64(), model.energy(&x).to_vec_f64());
    let err = check_energy(&slip, &x, &CheckOpts::default()).unwrap_err();
    println!("the detached term is caught: {err}");
}
