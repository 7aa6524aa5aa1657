//! What samplers ask of a model: energies, scores and score divergences on plain tensors.
//!
//! DESIGN.md decision 2: a sampler never sees a tape. An autodiff model (through [`VarEnergy`],
//! [`VarTimeEnergy`] or [`VarTimeScore`], each of which builds a fresh [`Tape`] per call and
//! drops it before returning), an analytic density ([`crate::analytic`]) and a fused GPU kernel
//! are all targets, and a chain of any length never grows a tape.
//!
//! Conventions: a batch `x` is `[B, …]` with one chain per row; energies are `[B]`; the score is
//! s(x) = −∇ₓE(x) = ∇ₓ log p(x), shaped like `x`.

use crate::util::{batch, row_len, row_sum};
use ebm_autodiff::{grad, grad_with, vjp, GradOpts, Tape, Var};
use ebm_core::Tensor;

/// An unnormalised density p(x) ∝ exp(−E(x)) that can be evaluated on a batch.
pub trait Target {
    /// E(x) per row: `[B, …] → [B]` (any additive constant).
    fn energy(&self, x: &Tensor) -> Tensor;

    /// s(x) = −∇ₓE(x), shaped like `x`.
    fn score(&self, x: &Tensor) -> Tensor;

    /// Energy and score together; autodiff targets share one forward pass.
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        (self.energy(x), self.score(x))
    }
}

impl<T: Target + ?Sized> Target for &T {
    fn energy(&self, x: &Tensor) -> Tensor {
        (**self).energy(x)
    }
    fn score(&self, x: &Tensor) -> Tensor {
        (**self).score(x)
    }
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        (**self).energy_and_score(x)
    }
}

/// The score of the data distribution perturbed by Gaussian noise of scale σ,
/// s(x, σ) ≈ ∇ₓ log p_σ(x) with p_σ = p_data ∗ N(0, σ²I) (NCSN; Song & Ermon 2019).
pub trait NoiseScore {
    /// s(x, σ), shaped like `x`.
    fn score_sigma(&self, x: &Tensor, sigma: f64) -> Tensor;
}

/// The score of the marginal p_t of a diffusion at time t, s(x, t) ≈ ∇ₓ log p_t(x)
/// (Song et al. 2021, "Score-Based Generative Modeling through SDEs").
pub trait TimeScore {
    /// s(x, t), shaped like `x`; `t` is shared by the whole batch.
    fn score_t(&self, x: &Tensor, t: f64) -> Tensor;
}

/// A time-conditional score that can also give its divergence ∇ₓ·s(x, t), as the
/// probability-flow ODE's likelihood needs (the instantaneous change of variables).
pub trait ScoreDivergence: TimeScore {
    /// The score and its exact divergence Σᵢ ∂sᵢ/∂xᵢ per row (`[B]`).
    fn score_div(&self, x: &Tensor, t: f64) -> (Tensor, Tensor);

    /// The score and vᵀ(∂s/∂x)v per row for a probe `v` shaped like `x`: with E[vvᵀ] = I
    /// (Rademacher or Gaussian v) this is an unbiased estimate of the divergence
    /// (Hutchinson 1990), at the cost of one backward pass instead of d.
    fn score_probe(&self, x: &Tensor, t: f64, v: &Tensor) -> (Tensor, Tensor);
}

/// The exact divergence of `s` (recorded on `x`'s tape, same shape as `x`) by d backward
/// passes: pass i pulls back the one-hot cotangent eᵢ in every row at once, giving row b's
/// ∂s_{b,i}/∂x_b, and keeps its i-th entry. Rows are independent chains, so one pass serves
/// the whole batch.
fn divergence_exact(s: &Var, x: &Var) -> Tensor {
    let (b, d) = (batch(x.value()), row_len(x.value()));
    let s2 = s.reshape(&[b, d]);
    let mut div = Tensor::zeros(&[b], x.dtype());
    for i in 0..d {
        let e = Tensor::zeros(&[b, d], x.dtype()).narrow_assign(
            1,
            i,
            &Tensor::ones(&[b, 1], x.dtype()),
        );
        let ct = s2.constant(e);
        let jt = vjp(&s2, &[x], &ct, GradOpts::default()).remove(0);
        if let Some(jt) = jt {
            let col = jt.value().reshape(&[b, d]).narrow(1, i, 1).reshape(&[b]);
            div = div.add(&col);
        }
    }
    div
}

/// vᵀ(∂s/∂x)v per row by one backward pass: the VJP with cotangent v gives (∂s/∂x)ᵀv.
fn probe_quadratic(s: &Var, x: &Var, v: &Tensor) -> Tensor {
    let ct = s.constant(v.clone());
    match vjp(s, &[x], &ct, GradOpts::default()).remove(0) {
        Some(jt) => row_sum(&jt.value().mul(v)),
        None => Tensor::zeros(&[batch(v)], v.dtype()),
    }
}

fn check_energy_shape(e: &Var, x: &Tensor) {
    assert_eq!(
        e.shape(),
        &[batch(x)],
        "energy closure: expected one energy per row ([{}]) for input {:?}, got {:?}",
        batch(x),
        x.shape(),
        e.shape()
    );
}

/// A [`Target`] from an energy written in autodiff ops, `E: &Var [B, …] → Var [B]`.
///
/// Every call builds a fresh [`Tape`], evaluates the closure, takes the score by one backward
/// pass and drops the tape, so a sampler loop holds no tape between steps. The closure puts
/// its parameters on the tape as constants (`x.constant(w.clone())`).
pub struct VarEnergy<F> {
    f: F,
}

impl<F: Fn(&Var) -> Var> VarEnergy<F> {
    /// Wraps an energy closure.
    pub fn new(f: F) -> Self {
        VarEnergy { f }
    }

    /// The score and its exact divergence −tr ∇²E per row (d backward passes of the recorded
    /// gradient; small d only).
    pub fn score_div(&self, x: &Tensor) -> (Tensor, Tensor) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let e = (self.f)(&xv);
        check_energy_shape(&e, x);
        let s = grad_with(&e.sum_all(), &[&xv], GradOpts::create_graph())
            .remove(0)
            .neg();
        let div = divergence_exact(&s, &xv);
        (s.value().clone(), div)
    }
}

impl<F: Fn(&Var) -> Var> Target for VarEnergy<F> {
    fn energy(&self, x: &Tensor) -> Tensor {
        // x enters as a constant: nothing is recorded at all.
        let tape = Tape::new();
        let e = (self.f)(&tape.constant(x.clone()));
        check_energy_shape(&e, x);
        e.value().clone()
    }

    fn score(&self, x: &Tensor) -> Tensor {
        self.energy_and_score(x).1
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let e = (self.f)(&xv);
        check_energy_shape(&e, x);
        // rows are independent, so ∇ₓΣ_b E_b gives every row's gradient at once
        let g = grad(&e.sum_all(), &[&xv]).remove(0);
        (e.value().clone(), g.value().neg())
    }
}

/// A [`TimeScore`] + [`ScoreDivergence`] from a time-conditional energy in autodiff ops,
/// `E: (&Var [B, …], t) → Var [B]`, with s(x, t) = −∇ₓE(x, t). Fresh tape per call.
pub struct VarTimeEnergy<F> {
    f: F,
}

impl<F: Fn(&Var, f64) -> Var> VarTimeEnergy<F> {
    /// Wraps a time-conditional energy closure.
    pub fn new(f: F) -> Self {
        VarTimeEnergy { f }
    }

    /// The recorded score −∇ₓE on `x`'s tape (create_graph, so it can be differentiated).
    fn recorded_score(&self, xv: &Var, t: f64) -> Var {
        let e = (self.f)(xv, t);
        check_energy_shape(&e, xv.value());
        grad_with(&e.sum_all(), &[xv], GradOpts::create_graph())
            .remove(0)
            .neg()
    }
}

impl<F: Fn(&Var, f64) -> Var> TimeScore for VarTimeEnergy<F> {
    fn score_t(&self, x: &Tensor, t: f64) -> Tensor {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let e = (self.f)(&xv, t);
        check_energy_shape(&e, x);
        grad(&e.sum_all(), &[&xv]).remove(0).value().neg()
    }
}

impl<F: Fn(&Var, f64) -> Var> ScoreDivergence for VarTimeEnergy<F> {
    fn score_div(&self, x: &Tensor, t: f64) -> (Tensor, Tensor) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let s = self.recorded_score(&xv, t);
        let div = divergence_exact(&s, &xv);
        (s.value().clone(), div)
    }

    fn score_probe(&self, x: &Tensor, t: f64, v: &Tensor) -> (Tensor, Tensor) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let s = self.recorded_score(&xv, t);
        let q = probe_quadratic(&s, &xv, v);
        (s.value().clone(), q)
    }
}

/// A [`TimeScore`] + [`ScoreDivergence`] from a score network in autodiff ops,
/// `s: (&Var [B, …], t) → Var` shaped like x (a score model that is not a gradient).
/// Fresh tape per call.
pub struct VarTimeScore<F> {
    f: F,
}

impl<F: Fn(&Var, f64) -> Var> VarTimeScore<F> {
    /// Wraps a time-conditional score closure.
    pub fn new(f: F) -> Self {
        VarTimeScore { f }
    }

    fn eval(&self, xv: &Var, t: f64) -> Var {
        let s = (self.f)(xv, t);
        assert_eq!(
            s.shape(),
            xv.shape(),
            "score closure: output {:?} is not shaped like its input {:?}",
            s.shape(),
            xv.shape()
        );
        s
    }
}

impl<F: Fn(&Var, f64) -> Var> TimeScore for VarTimeScore<F> {
    fn score_t(&self, x: &Tensor, t: f64) -> Tensor {
        let tape = Tape::new();
        self.eval(&tape.constant(x.clone()), t).value().clone()
    }
}

impl<F: Fn(&Var, f64) -> Var> ScoreDivergence for VarTimeScore<F> {
    fn score_div(&self, x: &Tensor, t: f64) -> (Tensor, Tensor) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let s = self.eval(&xv, t);
        let div = divergence_exact(&s, &xv);
        (s.value().clone(), div)
    }

    fn score_probe(&self, x: &Tensor, t: f64, v: &Tensor) -> (Tensor, Tensor) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let s = self.eval(&xv, t);
        let q = probe_quadratic(&s, &xv, v);
        (s.value().clone(), q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::{DType, Rng};

    /// E(x) = Σᵢ ¼xᵢ⁴ + ½ aᵀx·x₀ (a coupling): score and divergence by hand.
    /// s = −(x³ + ½(x₀a + (aᵀx)e₀)); ∂s_i/∂x_i = −(3xᵢ² + a₀·[i=0]).
    fn quartic(x: &Var) -> Var {
        let a = x.constant(Tensor::from_vec(vec![1.0f64, -2.0, 0.5], &[3]));
        let x0 = x.narrow(1, 0, 1); // [B,1]
        let ax = x.mul_const(a.value()).sum(&[1], true); // [B,1]
        x.powf(4.0)
            .sum(&[1], false)
            .mul_scalar(0.25)
            .add(&ax.mul(&x0).reshape(&[x.shape()[0]]).mul_scalar(0.5))
    }

    fn hand(x: &[f64]) -> (Vec<f64>, f64) {
        let a = [1.0, -2.0, 0.5];
        let ax: f64 = a.iter().zip(x).map(|(a, x)| a * x).sum();
        let mut s: Vec<f64> = x.iter().map(|v| -v.powi(3)).collect();
        for i in 0..3 {
            s[i] -= 0.5 * x[0] * a[i];
        }
        s[0] -= 0.5 * ax;
        let div = -(x.iter().map(|v| 3.0 * v * v).sum::<f64>() + a[0]);
        (s, div)
    }

    #[test]
    fn adapters_agree_with_hand_derivatives() {
        let mut rng = Rng::new(11);
        let x = rng.normal(&[4, 3], DType::F64);
        let xs = x.to_vec_f64();
        let e = VarEnergy::new(quartic);
        let (en, s) = e.energy_and_score(&x);
        assert_eq!(en.shape(), &[4]);
        assert!(en.max_abs_diff(&e.energy(&x)) == 0.0);
        let (s2, div) = e.score_div(&x);
        let te = VarTimeEnergy::new(|x: &Var, _t| quartic(x));
        let (s3, div3) = te.score_div(&x, 0.3);
        // the score network view: s(x) written directly as a Var closure
        let ts = VarTimeScore::new(|x: &Var, _t| {
            grad_with(&quartic(x).sum_all(), &[x], GradOpts::create_graph())
                .remove(0)
                .neg()
        });
        let (s4, div4) = ts.score_div(&x, 0.3);
        for b in 0..4 {
            let (hs, hd) = hand(&xs[3 * b..3 * b + 3]);
            for (i, h) in hs.iter().enumerate() {
                for got in [&s, &s2, &s3, &s4] {
                    assert!((got.to_vec_f64()[3 * b + i] - h).abs() < 1e-12);
                }
            }
            for got in [&div, &div3, &div4] {
                assert!(
                    (got.to_vec_f64()[b] - hd).abs() < 1e-12,
                    "div {got:?} vs {hd}"
                );
            }
        }
        // Hutchinson with every one-hot probe sums to the exact divergence
        let mut acc = Tensor::zeros(&[4], DType::F64);
        for i in 0..3 {
            let v = Tensor::zeros(&[4, 3], DType::F64).narrow_assign(
                1,
                i,
                &Tensor::ones(&[4, 1], DType::F64),
            );
            acc = acc.add(&te.score_probe(&x, 0.0, &v).1);
        }
        assert!(acc.max_abs_diff(&div) < 1e-12);
    }
}
