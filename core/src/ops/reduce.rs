//! Reductions over axes: sum, max, mean, logsumexp; and `sum_to`, the adjoint of broadcasting.

use crate::dtype::Elem;
use crate::profile::{timed_op, OpKind};
use crate::shape::numel;
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::with_slice;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reduce {
    Sum,
    Max,
}

/// Reduces the middle axis of a tensor viewed as [outer, n, inner].
fn reduce_axis<T: Elem + HostVec>(
    src: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    kind: Reduce,
) -> Vec<T> {
    let init = match kind {
        Reduce::Sum => T::zero(),
        Reduce::Max => T::neg_infinity(),
    };
    let mut out = crate::pool::filled(outer * inner, init);
    // compiled for the CPU's vector unit: the rows' sums run across the columns (a bias
    // gradient's sum over the batch was 2% of an NCE M2 step with the baseline SSE2 build)
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            for o in 0..outer {
                let block = &src[o * n * inner..(o + 1) * n * inner];
                let dst = &mut out[o * inner..(o + 1) * inner];
                if inner == 1 {
                    dst[0] = match kind {
                        Reduce::Sum => block.iter().copied().sum(),
                        Reduce::Max => block.iter().copied().fold(init, T::max),
                    };
                } else {
                    for row in block.chunks_exact(inner) {
                        match kind {
                            Reduce::Sum => dst.iter_mut().zip(row).for_each(|(d, &x)| *d = *d + x),
                            Reduce::Max => {
                                dst.iter_mut().zip(row).for_each(|(d, &x)| *d = d.max(x))
                            }
                        }
                    }
                }
            }
        },
    );
    out
}

impl Tensor {
    fn reduce_one(&self, axis: usize, kind: Reduce) -> Tensor {
        let s = self.shape();
        let outer = numel(&s[..axis]);
        let inner = numel(&s[axis + 1..]);
        let n = s[axis];
        let mut out_shape = s.to_vec();
        out_shape[axis] = 1;
        #[cfg(feature = "cuda")]
        if let Some(t) =
            crate::cuda::reduce(self, [outer, n, inner], kind == Reduce::Max, &out_shape)
        {
            return t;
        }
        let label = || format!("{kind:?} over axis {axis} of {s:?}");
        timed_op(OpKind::Reduce, label, || {
            with_slice!(self, |v| Tensor::from_vec(
                reduce_axis(v, outer, n, inner, kind),
                &out_shape
            ))
        })
    }

    fn reduce(&self, axes: &[usize], keepdim: bool, kind: Reduce, name: &str) -> Tensor {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        for &a in &axes {
            assert!(
                a < self.rank(),
                "{name}: axis {a} out of range for shape {:?}",
                self.shape()
            );
        }
        // Merge runs of adjacent axes into one reduction: [.., a, a+1, ..] reduces as one axis.
        let mut out = self.clone();
        let mut i = axes.len();
        while i > 0 {
            let hi = axes[i - 1];
            let mut lo = hi;
            i -= 1;
            while i > 0 && axes[i - 1] + 1 == lo {
                lo -= 1;
                i -= 1;
            }
            let s = out.shape().to_vec();
            let merged: Vec<usize> = s[..lo]
                .iter()
                .copied()
                .chain(std::iter::once(numel(&s[lo..=hi])))
                .chain(s[hi + 1..].iter().copied())
                .collect();
            let r = out.reshape(&merged).reduce_one(lo, kind);
            let mut kept = s.clone();
            for d in kept.iter_mut().take(hi + 1).skip(lo) {
                *d = 1;
            }
            out = r.reshape(&kept);
        }
        if keepdim {
            out
        } else {
            out.reshape(&crate::shape::reduced_shape(self.shape(), &axes))
        }
    }

    /// Sum over `axes`; with `keepdim` the reduced axes stay with size 1.
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Tensor {
        self.reduce(axes, keepdim, Reduce::Sum, "sum")
    }

    /// Maximum over `axes`.
    pub fn max_axes(&self, axes: &[usize], keepdim: bool) -> Tensor {
        self.reduce(axes, keepdim, Reduce::Max, "max")
    }

    /// Mean over `axes`.
    pub fn mean_axes(&self, axes: &[usize], keepdim: bool) -> Tensor {
        let mut distinct = axes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let n: usize = distinct.iter().map(|&a| self.dim(a)).product();
        self.sum_axes(axes, keepdim).mul_scalar(1.0 / n as f64)
    }

    /// Sum of all elements as a 0-d tensor.
    pub fn sum_all(&self) -> Tensor {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum_axes(&axes, false)
    }

    /// Mean of all elements as a 0-d tensor.
    pub fn mean_all(&self) -> Tensor {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.mean_axes(&axes, false)
    }

    /// log Σ exp over `axes`, computed stably by subtracting the maximum.
    pub fn logsumexp(&self, axes: &[usize], keepdim: bool) -> Tensor {
        // an all −inf slice has max −inf; shift by 0 there so the result stays −inf, not NaN
        let m = self.max_axes(axes, true).finite_or_zero();
        let r = self.sub(&m).exp().sum_axes(axes, true).log().add(&m);
        if keepdim {
            r
        } else {
            r.reshape(&crate::shape::reduced_shape(self.shape(), axes))
        }
    }

    /// The same values with ±inf and NaN replaced by 0.
    pub fn finite_or_zero(&self) -> Tensor {
        let finite = self.abs().lt(&self.full_like(f64::INFINITY));
        Tensor::where_(&finite, self, &self.zeros_like())
    }

    /// Sums a broadcast result back to `shape` (the adjoint of [`Tensor::broadcast_to`]).
    pub fn sum_to(&self, shape: &[usize]) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        assert!(
            crate::shape::can_broadcast_to(shape, self.shape()),
            "sum_to: {:?} is not a broadcast of {:?}",
            self.shape(),
            shape
        );
        let off = self.rank() - shape.len();
        let axes: Vec<usize> = (0..self.rank())
            .filter(|&i| i < off || (shape[i - off] == 1 && self.shape()[i] != 1))
            .collect();
        self.sum_axes(&axes, true).reshape(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_maxes_over_axes() {
        let t = Tensor::from_vec((0..24).map(|i| i as f64).collect::<Vec<_>>(), &[2, 3, 4]);
        assert_eq!(t.sum_axes(&[1], false).shape(), &[2, 4]);
        // axis 1 of block 0: 0+4+8, 1+5+9, ...
        assert_eq!(
            t.sum_axes(&[1], false).to_vec_f64()[..4],
            [12.0, 15.0, 18.0, 21.0]
        );
        assert_eq!(t.sum_axes(&[0, 2], true).shape(), &[1, 3, 1]);
        // rows j: sum over i,k of 12i+4j+k = 2*(4*4j+6) + 12*4 = 32j + 60
        assert_eq!(
            t.sum_axes(&[0, 2], false).to_vec_f64(),
            vec![60., 92., 124.]
        );
        assert_eq!(
            t.max_axes(&[0, 1], false).to_vec_f64(),
            vec![20., 21., 22., 23.]
        );
        assert_eq!(t.sum_all().item(), 276.0);
    }

    #[test]
    fn logsumexp_is_stable() {
        let t = Tensor::from_vec(vec![1000.0f64, 1000.0], &[2]);
        let r = t.logsumexp(&[0], false).item();
        assert!((r - (1000.0 + 2f64.ln())).abs() < 1e-12);
    }

    #[test]
    fn sum_to_undoes_broadcast() {
        let t = Tensor::ones(&[4, 2, 3], crate::DType::F64);
        assert_eq!(t.sum_to(&[2, 1]).to_vec_f64(), vec![12.0, 12.0]);
        assert_eq!(t.sum_to(&[3]).to_vec_f64(), vec![8.0; 3]);
        assert_eq!(t.sum_to(&[]).item(), 24.0);
    }
}
