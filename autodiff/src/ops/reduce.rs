//! Reductions and their adjoints: sum ↔ broadcast, max (gradient split over ties).

use crate::tape::Var;

fn keepdim_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

impl Var {
    /// Sum over `axes`; d/dx broadcasts the cotangent back.
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Var {
        let out = self.value.sum_axes(axes, keepdim);
        let shape = self.shape().to_vec();
        let kshape = keepdim_shape(&shape, axes);
        self.tape.record(out, &[self], move |g, _, _, _| {
            vec![Some(g.reshape(&kshape).broadcast_to(&shape))]
        })
    }

    /// Sum of every element (0-d).
    pub fn sum_all(&self) -> Var {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum(&axes, false)
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Var {
        let mut distinct = axes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let n: usize = distinct.iter().map(|&a| self.shape()[a]).product();
        self.sum(axes, keepdim).mul_scalar(1.0 / n as f64)
    }

    /// Mean of every element (0-d).
    pub fn mean_all(&self) -> Var {
        self.sum_all().mul_scalar(1.0 / self.numel() as f64)
    }

    /// Maximum over `axes`. The cotangent is shared equally among tied maxima (a subgradient).
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Var {
        let out = self.value.max_axes(axes, keepdim);
        let shape = self.shape().to_vec();
        let kshape = keepdim_shape(&shape, axes);
        let axes2 = axes.to_vec();
        self.tape.record(out, &[self], move |g, x, out, _| {
            let mask = x[0].value.eq_mask(&out.value.reshape(&kshape));
            let count = mask.sum_axes(&axes2, true);
            let w = mask.div(&count);
            vec![Some(g.reshape(&kshape).broadcast_to(&shape).mul_const(&w))]
        })
    }

    /// log Σ exp over `axes`, stable: m + log Σ exp(x − m) with m = max(x) held constant (the
    /// result does not depend on m, so no gradient is lost).
    pub fn logsumexp(&self, axes: &[usize], keepdim: bool) -> Var {
        let m = self.value.max_axes(axes, true).finite_or_zero();
        let r = self
            .sub(&self.constant(m.clone()))
            .exp()
            .sum(axes, true)
            .log()
            .add_const(&m);
        if keepdim {
            r
        } else {
            r.reshape(&ebm_core::shape::reduced_shape(self.shape(), axes))
        }
    }

    /// Sums a broadcast value back to `shape`; the adjoint is `broadcast_to`.
    pub fn sum_to(&self, shape: &[usize]) -> Var {
        if self.shape() == shape {
            return self.clone();
        }
        let out = self.value.sum_to(shape);
        let from = self.shape().to_vec();
        self.tape.record(out, &[self], move |g, _, _, _| {
            vec![Some(g.broadcast_to(&from))]
        })
    }

    /// NumPy broadcast to `shape`; the adjoint is `sum_to`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Var {
        if self.shape() == shape {
            return self.clone();
        }
        let out = self.value.broadcast_to(shape);
        let from = self.shape().to_vec();
        self.tape
            .record(out, &[self], move |g, _, _, _| vec![Some(g.sum_to(&from))])
    }
}
