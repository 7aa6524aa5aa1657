//! `gradcheck` and `gradgradcheck`: analytic derivatives against central finite differences
//! along random directions (as JAX's `check_grads(order=2)` and PyTorch's `gradgradcheck`).
//!
//! For f: inputs → output, a random cotangent w makes the scalar φ(x) = ⟨w, f(x)⟩. For random
//! directions u (one input at a time, then all together), the check compares
//! ⟨∇φ(x), u⟩ with (φ(x + εu) − φ(x − εu)) / 2ε, whose error is O(ε²) + O(δ/ε) for rounding δ.
//! The second-order check applies the same test to ψ(x) = ⟨∇φ(x), r⟩ for a random r, with ∇φ
//! taken by a recorded backward pass: it validates every rule's own derivative.

use crate::grad::{grad_with, GradOpts};
use crate::tape::{Tape, Var};
use ebm_core::{DType, Rng, Tensor};

/// Step and tolerances of a check. Passes when |numeric − analytic| ≤ atol + rtol·|numeric|.
#[derive(Clone, Debug)]
pub struct CheckOpts {
    /// The finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (of the numeric value).
    pub rtol: f64,
    /// Random directions per input (one more is taken over all inputs jointly).
    pub directions: usize,
    /// Seed of the random cotangent and directions.
    pub seed: u64,
}

impl Default for CheckOpts {
    fn default() -> Self {
        CheckOpts {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-5,
            directions: 3,
            seed: 0,
        }
    }
}

/// A failed check: which derivative order and input, and the two numbers that disagreed.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckError {
    /// 1 for the gradient check, 2 for the check of the recorded backward pass.
    pub order: usize,
    /// The input perturbed alone, or `None` for the joint direction.
    pub input: Option<usize>,
    /// The central finite difference.
    pub numeric: f64,
    /// The directional derivative from autodiff.
    pub analytic: f64,
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = match self.input {
            Some(i) => format!("input {i}"),
            None => "all inputs jointly".to_string(),
        };
        write!(
            f,
            "order-{} derivative check failed along a random direction of {which}: \
             finite differences give {:.12e}, autodiff gives {:.12e}",
            self.order, self.numeric, self.analytic
        )
    }
}

impl std::error::Error for CheckError {}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.mul(b).sum_all().item()
}

/// Checks a scalar function `phi` of `inputs` against finite differences.
fn check_scalar(
    phi: &dyn Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    opts: &CheckOpts,
    order: usize,
    rng: &mut Rng,
) -> Result<(), CheckError> {
    let eval = |xs: &[Tensor]| -> f64 {
        let tape = Tape::new();
        let vars: Vec<Var> = xs.iter().map(|x| tape.var(x.clone())).collect();
        phi(&vars).item()
    };
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let y = phi(&vars);
    let refs: Vec<&Var> = vars.iter().collect();
    let grads: Vec<Tensor> = grad_with(&y, &refs, GradOpts::default())
        .into_iter()
        .map(|g| g.value().clone())
        .collect();
    let mut cases: Vec<Option<usize>> = Vec::new();
    for (i, x) in inputs.iter().enumerate() {
        if x.numel() > 0 {
            cases.extend(std::iter::repeat_n(Some(i), opts.directions));
        }
    }
    cases.push(None);
    for case in cases {
        let dirs: Vec<Tensor> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| match case {
                Some(k) if k != i => x.zeros_like(),
                _ => rng.normal(x.shape(), DType::F64),
            })
            .collect();
        let shifted = |s: f64| -> Vec<Tensor> {
            inputs
                .iter()
                .zip(&dirs)
                .map(|(x, u)| x.add(&u.mul_scalar(s)))
                .collect()
        };
        let numeric = (eval(&shifted(opts.eps)) - eval(&shifted(-opts.eps))) / (2.0 * opts.eps);
        let analytic: f64 = grads.iter().zip(&dirs).map(|(g, u)| dot(g, u)).sum();
        let ok = (numeric - analytic).abs() <= opts.atol + opts.rtol * numeric.abs();
        if !ok || !analytic.is_finite() {
            return Err(CheckError {
                order,
                input: case,
                numeric,
                analytic,
            });
        }
    }
    Ok(())
}

fn require_f64(inputs: &[Tensor]) {
    for (i, x) in inputs.iter().enumerate() {
        assert_eq!(
            x.dtype(),
            DType::F64,
            "gradcheck: input {i} is {}; derivative checks need f64",
            x.dtype()
        );
    }
}

/// The shape of `f`'s output, from one evaluation on leaves (not constants: `f` may take
/// gradients with respect to its inputs, as a score function does).
fn output_shape(f: &impl Fn(&[Var]) -> Var, inputs: &[Tensor]) -> Vec<usize> {
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    f(&vars).shape().to_vec()
}

/// Checks first derivatives of `f` at `inputs` (f64) against central finite differences.
pub fn gradcheck(
    f: impl Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    opts: &CheckOpts,
) -> Result<(), CheckError> {
    require_f64(inputs);
    let mut rng = Rng::new(opts.seed);
    let w = rng.normal(&output_shape(&f, inputs), DType::F64);
    let phi = |xs: &[Var]| f(xs).mul_const(&w).sum_all();
    check_scalar(&phi, inputs, opts, 1, &mut rng)
}

/// Checks first AND second derivatives of `f` at `inputs`: the gradient of the recorded
/// backward pass is compared with finite differences of the analytic gradient.
pub fn gradgradcheck(
    f: impl Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    opts: &CheckOpts,
) -> Result<(), CheckError> {
    gradcheck(&f, inputs, opts)?;
    let mut rng = Rng::new(opts.seed ^ 0x5eed);
    let w = rng.normal(&output_shape(&f, inputs), DType::F64);
    let rs: Vec<Tensor> = inputs
        .iter()
        .map(|x| rng.normal(x.shape(), DType::F64))
        .collect();
    let psi = |xs: &[Var]| {
        let phi = f(xs).mul_const(&w).sum_all();
        let refs: Vec<&Var> = xs.iter().collect();
        let gs = grad_with(&phi, &refs, GradOpts::create_graph());
        let mut total = xs[0].constant(Tensor::scalar(0.0, DType::F64));
        for (g, r) in gs.iter().zip(&rs) {
            total = total.add(&g.mul_const(r).sum_all());
        }
        total
    };
    check_scalar(&psi, inputs, opts, 2, &mut rng)
}
