//! Layout ops: broadcast_to, permute/transpose, narrow (slicing), concat, and row
//! gather/scatter along axis 0 (what replay buffers and minibatching need).

use crate::dtype::Elem;
use crate::profile::{timed, OpKind};
use crate::shape::{broadcast_strides, can_broadcast_to, contiguous_strides, for_each_row, numel};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::{with_slice, with_slices2};

/// Copies `src` read with `strides` (one per axis of `out_shape`) into a new contiguous vec.
fn gather_strided<T: Elem + HostVec>(src: &[T], strides: &[usize], out_shape: &[usize]) -> Vec<T> {
    let n = numel(out_shape);
    // pooled: broadcasts of biases and permutes of activations recur every step
    let mut out = crate::pool::take(n);
    if out_shape.is_empty() {
        out[0] = src[0];
        return out;
    }
    let inner = out_shape[out_shape.len() - 1];
    let si = strides[strides.len() - 1];
    let mut pos = 0;
    for_each_row(out_shape, [strides], |_, [o]| {
        let dst = &mut out[pos..pos + inner];
        match si {
            1 => dst.copy_from_slice(&src[o..o + inner]),
            0 => dst.fill(src[o]),
            _ => dst
                .iter_mut()
                .enumerate()
                .for_each(|(i, d)| *d = src[o + i * si]),
        }
        pos += inner;
    });
    out
}

/// The transpose of a 2-d host tensor into a new row-major buffer (`transpose::transpose_into`:
/// 8×8 register blocks for f32 on AVX, 16×16 element-copy blocks otherwise).
pub(crate) fn transpose_2d(t: &Tensor) -> Tensor {
    let (r, c) = (t.shape()[0], t.shape()[1]);
    fn run<T: Elem + HostVec>(src: &[T], r: usize, c: usize) -> Vec<T> {
        let mut out = crate::pool::take(r * c);
        assert!(src.len() >= r * c, "transpose_2d: a contiguous r×c buffer");
        // SAFETY: src is r×c with rows c apart (checked), out c×r with rows r apart.
        unsafe { super::transpose::transpose_into(src.as_ptr(), (r, c, c), out.as_mut_ptr(), r) };
        out
    }
    timed(OpKind::Layout, || {
        with_slice!(t, |v| Tensor::from_vec(run(v, r, c), &[c, r]))
    })
}

/// A copy of `v` in a pooled buffer: the layout ops that write into a copy of their input run
/// every step (a replay buffer's rows, an adjoint's padding), and a fresh allocation of a
/// large one went back to the OS and was faulted in again each time.
fn pooled_copy<T: Elem + HostVec>(v: &[T]) -> Vec<T> {
    let mut out = crate::pool::take(v.len());
    out.copy_from_slice(v);
    out
}

fn check_axis(op: &str, axis: usize, shape: &[usize]) {
    assert!(
        axis < shape.len(),
        "{op}: axis {axis} out of range for shape {shape:?}"
    );
}

impl Tensor {
    /// Materialises a NumPy broadcast to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        assert!(
            can_broadcast_to(self.shape(), shape),
            "broadcast_to: {:?} cannot broadcast to {:?}",
            self.shape(),
            shape
        );
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::broadcast_to(self, shape) {
            return t;
        }
        let strides = broadcast_strides(self.shape(), shape);
        timed(OpKind::Layout, || {
            with_slice!(self, |v| Tensor::from_vec(
                gather_strided(v, &strides, shape),
                shape
            ))
        })
    }

    /// Reorders axes: output axis i is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        let r = self.rank();
        let mut seen = vec![false; r];
        assert!(
            perm.len() == r
                && perm
                    .iter()
                    .all(|&p| p < r && !std::mem::replace(&mut seen[p], true)),
            "permute: {perm:?} is not a permutation of the axes of {:?}",
            self.shape()
        );
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.clone();
        }
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::permute(self, perm) {
            return t;
        }
        let own = contiguous_strides(self.shape());
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
        let strides: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
        timed(OpKind::Layout, || {
            with_slice!(self, |v| Tensor::from_vec(
                gather_strided(v, &strides, &shape),
                &shape
            ))
        })
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: usize, b: usize) -> Tensor {
        check_axis("transpose", a, self.shape());
        check_axis("transpose", b, self.shape());
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two axes (the matrix transpose of each batch element).
    pub fn t(&self) -> Tensor {
        assert!(
            self.rank() >= 2,
            "t: needs rank ≥ 2, got {:?}",
            self.shape()
        );
        self.transpose(self.rank() - 2, self.rank() - 1)
    }

    /// Elements `start..start+len` along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Tensor {
        check_axis("narrow", axis, self.shape());
        assert!(
            start + len <= self.shape()[axis],
            "narrow: {start}..{} exceeds axis {axis} of {:?}",
            start + len,
            self.shape()
        );
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::narrow(self, axis, start, len) {
            return t;
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = len;
        let outer = numel(&self.shape()[..axis]);
        let inner = numel(&self.shape()[axis + 1..]);
        let n = self.shape()[axis];
        timed(OpKind::Layout, || {
            with_slice!(self, |v| {
                // pooled, as every per-step buffer (a training step's row blocks are narrows)
                let mut out = crate::pool::take(numel(&shape));
                let w = len * inner;
                for o in 0..outer {
                    let base = (o * n + start) * inner;
                    out[o * w..(o + 1) * w].copy_from_slice(&v[base..base + w]);
                }
                Tensor::from_vec(out, &shape)
            })
        })
    }

    /// A copy of `self` with the block `start..start+src.dim(axis)` along `axis` replaced by `src`.
    pub fn narrow_assign(&self, axis: usize, start: usize, src: &Tensor) -> Tensor {
        check_axis("narrow_assign", axis, self.shape());
        let len = src.shape().get(axis).copied().unwrap_or(0);
        let mut expect = self.shape().to_vec();
        expect[axis] = len;
        assert!(
            src.shape() == expect.as_slice() && start + len <= self.shape()[axis],
            "narrow_assign: cannot write {:?} at {start} along axis {axis} of {:?}",
            src.shape(),
            self.shape()
        );
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::narrow_assign(self, axis, start, src) {
            return t;
        }
        let outer = numel(&self.shape()[..axis]);
        let inner = numel(&self.shape()[axis + 1..]);
        let n = self.shape()[axis];
        timed(OpKind::Layout, || {
            with_slices2!("narrow_assign", self, src, |d, s| {
                let mut out = pooled_copy(d);
                for o in 0..outer {
                    let base = (o * n + start) * inner;
                    out[base..base + len * inner]
                        .copy_from_slice(&s[o * len * inner..(o + 1) * len * inner]);
                }
                Tensor::from_vec(out, self.shape())
            })
        })
    }

    /// Joins tensors along `axis`; all other axes must agree.
    pub fn concat(parts: &[Tensor], axis: usize) -> Tensor {
        assert!(!parts.is_empty(), "concat: no tensors given");
        let first = &parts[0];
        check_axis("concat", axis, first.shape());
        for p in parts {
            let ok = p.rank() == first.rank()
                && p.dtype() == first.dtype()
                && p.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            assert!(
                ok,
                "concat: {} {:?} does not fit {} {:?} along axis {axis}",
                p.dtype(),
                p.shape(),
                first.dtype(),
                first.shape()
            );
        }
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::concat(parts, axis) {
            return t;
        }
        let mut shape = first.shape().to_vec();
        shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        let outer = numel(&first.shape()[..axis]);
        let inner = numel(&first.shape()[axis + 1..]);
        fn go<T: Elem + HostVec>(
            parts: &[Tensor],
            axis: usize,
            outer: usize,
            inner: usize,
            shape: &[usize],
        ) -> Tensor {
            // pooled: a training step stacks its data and negatives every step, and a fresh
            // megabyte-sized allocation went back to the OS and was faulted in again each time
            let mut out = crate::pool::take::<T>(numel(shape));
            let mut pos = 0;
            for o in 0..outer {
                for p in parts {
                    let w = p.shape()[axis] * inner;
                    out[pos..pos + w].copy_from_slice(&p.as_slice::<T>()[o * w..(o + 1) * w]);
                    pos += w;
                }
            }
            Tensor::from_vec(out, shape)
        }
        match first.dtype() {
            crate::DType::F32 => go::<f32>(parts, axis, outer, inner, &shape),
            crate::DType::F64 => go::<f64>(parts, axis, outer, inner, &shape),
        }
    }

    /// Rows `indices` of axis 0 (repeats allowed), like `x[indices]` in NumPy.
    pub fn index_select(&self, indices: &[usize]) -> Tensor {
        assert!(self.rank() >= 1, "index_select: needs rank ≥ 1");
        let n = self.shape()[0];
        let row = numel(&self.shape()[1..]);
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            panic!(
                "index_select: row {bad} out of range for shape {:?}",
                self.shape()
            );
        }
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::index_select(self, indices) {
            return t;
        }
        let mut shape = self.shape().to_vec();
        shape[0] = indices.len();
        timed(OpKind::Layout, || {
            with_slice!(self, |v| {
                let mut out = crate::pool::take(indices.len() * row);
                for (k, &i) in indices.iter().enumerate() {
                    out[k * row..(k + 1) * row].copy_from_slice(&v[i * row..(i + 1) * row]);
                }
                Tensor::from_vec(out, &shape)
            })
        })
    }

    fn scatter_rows(&self, indices: &[usize], src: &Tensor, accumulate: bool, op: &str) -> Tensor {
        let n = self.shape().first().copied().unwrap_or(0);
        let mut expect = self.shape().to_vec();
        if !expect.is_empty() {
            expect[0] = indices.len();
        }
        assert!(
            self.rank() >= 1 && src.shape() == expect.as_slice(),
            "{op}: source {:?} does not match {} rows of {:?}",
            src.shape(),
            indices.len(),
            self.shape()
        );
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            panic!("{op}: row {bad} out of range for shape {:?}", self.shape());
        }
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::scatter_rows(self, indices, src, accumulate) {
            return t;
        }
        let row = numel(&self.shape()[1..]);
        timed(OpKind::Layout, || {
            with_slices2!(op, self, src, |d, s| {
                let mut out = pooled_copy(d);
                for (k, &i) in indices.iter().enumerate() {
                    let dst = &mut out[i * row..(i + 1) * row];
                    let srow = &s[k * row..(k + 1) * row];
                    if accumulate {
                        dst.iter_mut().zip(srow).for_each(|(a, &b)| *a += b);
                    } else {
                        dst.copy_from_slice(srow);
                    }
                }
                Tensor::from_vec(out, self.shape())
            })
        })
    }

    /// A copy of `self` with `src`'s rows added at rows `indices` (repeats accumulate):
    /// the adjoint of [`Tensor::index_select`].
    pub fn index_add(&self, indices: &[usize], src: &Tensor) -> Tensor {
        self.scatter_rows(indices, src, true, "index_add")
    }

    /// A copy of `self` with rows `indices` replaced by `src`'s rows (a later repeat wins).
    pub fn index_put(&self, indices: &[usize], src: &Tensor) -> Tensor {
        self.scatter_rows(indices, src, false, "index_put")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn iota(shape: &[usize]) -> Tensor {
        Tensor::from_vec(
            (0..numel(shape)).map(|i| i as f64).collect::<Vec<_>>(),
            shape,
        )
    }

    #[test]
    fn transpose_and_permute() {
        let t = iota(&[2, 3]);
        assert_eq!(t.t().to_vec_f64(), vec![0., 3., 1., 4., 2., 5.]);
        let u = iota(&[2, 3, 4]).permute(&[2, 0, 1]);
        assert_eq!(u.shape(), &[4, 2, 3]);
        // u[k,i,j] = 12i + 4j + k; u[1,1,2] = 12+8+1
        assert_eq!(u.to_vec_f64()[6 + 3 + 2], 21.0);
    }

    #[test]
    fn narrow_concat_roundtrip() {
        let t = iota(&[3, 4]);
        let a = t.narrow(1, 0, 1);
        let b = t.narrow(1, 1, 3);
        assert_eq!(a.to_vec_f64(), vec![0., 4., 8.]);
        assert_eq!(
            Tensor::concat(&[a, b.clone()], 1).to_vec_f64(),
            t.to_vec_f64()
        );
        let z = t.zeros_like().narrow_assign(1, 1, &b);
        assert_eq!(z.to_vec_f64()[..4], [0., 1., 2., 3.]);
    }

    #[test]
    fn gather_scatter_rows() {
        let t = iota(&[3, 2]);
        let g = t.index_select(&[2, 0, 2]);
        assert_eq!(g.to_vec_f64(), vec![4., 5., 0., 1., 4., 5.]);
        let z = Tensor::zeros(&[3, 2], DType::F64).index_add(&[2, 0, 2], &g);
        assert_eq!(z.to_vec_f64(), vec![0., 1., 0., 0., 8., 10.]);
        let p = t.index_put(&[1], &Tensor::full(&[1, 2], 9.0, DType::F64));
        assert_eq!(p.to_vec_f64(), vec![0., 1., 9., 9., 4., 5.]);
    }

    #[test]
    fn broadcast_to_materialises() {
        let t = iota(&[2, 1]);
        assert_eq!(
            t.broadcast_to(&[2, 2, 3]).to_vec_f64()[..6],
            [0., 0., 0., 1., 1., 1.]
        );
    }
}
