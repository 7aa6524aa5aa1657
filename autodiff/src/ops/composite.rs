//! Functions composed of primitives: differentiable to any order with no rules of their own.

use crate::tape::Var;

impl Var {
    /// log σ(x) = −softplus(−x), stable for either sign.
    pub fn log_sigmoid(&self) -> Var {
        self.neg().softplus().neg()
    }

    /// Softmax over `axis`: exp(x − logsumexp(x)).
    pub fn softmax(&self, axis: usize) -> Var {
        self.sub(&self.logsumexp(&[axis], true)).exp()
    }

    /// Log-softmax over `axis`.
    pub fn log_softmax(&self, axis: usize) -> Var {
        self.sub(&self.logsumexp(&[axis], true))
    }

    /// ELU: x for x > 0, eˣ − 1 otherwise (α = 1); C¹ at 0.
    pub fn elu(&self) -> Var {
        let pos = self.value().gt(&self.value().zeros_like());
        let neg_branch = self
            .minimum(&self.constant(self.value().zeros_like()))
            .exp()
            .add_scalar(-1.0);
        Var::where_(&pos, self, &neg_branch)
    }

    /// GELU with the tanh approximation (as PyTorch's `approximate="tanh"`):
    /// ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    pub fn gelu(&self) -> Var {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let inner = self.add(&self.powf(3.0).mul_scalar(0.044715)).mul_scalar(c);
        self.mul(&inner.tanh().add_scalar(1.0)).mul_scalar(0.5)
    }

    /// Σ x² over `axes`.
    pub fn sum_squares(&self, axes: &[usize], keepdim: bool) -> Var {
        self.square().sum(axes, keepdim)
    }

    /// Row-wise dot product over the last axis: Σᵢ aᵢbᵢ → one value per row. The operands
    /// broadcast; the sum runs over the last axis of their broadcast product.
    pub fn dot_rows(&self, rhs: &Var) -> Var {
        let prod = self.mul(rhs);
        assert!(
            prod.rank() >= 1,
            "dot_rows: shapes {:?} and {:?} have no axis to sum",
            self.shape(),
            rhs.shape()
        );
        let last = prod.rank() - 1;
        prod.sum(&[last], false)
    }
}
