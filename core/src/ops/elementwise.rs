//! Element-wise maps, binary ops with NumPy broadcasting, comparisons and `where`.
//!
//! The ops themselves are the rows of ebm-optable's tables ([`UnaryOp`], [`BinaryOp`]); this
//! module expands those tables into the CPU dispatch (one monomorphised, vectorised loop per
//! op) and the `Tensor` method of every op. SiLU's fused passes live in [`super::silu`].

use crate::dtype::Elem;
use crate::profile::{timed_op, OpKind};
use crate::shape::{broadcast_shapes, broadcast_strides, for_each_row, numel};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::CpuStorage;
use crate::{with_slice, with_slices2};

pub use ebm_optable::{BinaryOp, UnaryOp};

/// How a row's parameter reaches its CPU form: an f64 as the element type, an i32 unchanged.
trait CpuParam<T> {
    type Out;
    fn cpu(self) -> Self::Out;
}

impl<T: Elem> CpuParam<T> for f64 {
    type Out = T;
    #[inline(always)]
    fn cpu(self) -> T {
        T::of(self)
    }
}

impl<T> CpuParam<T> for i32 {
    type Out = i32;
    #[inline(always)]
    fn cpu(self) -> i32 {
        self
    }
}

/// A loop over elements, run with the CPU form of one unary op (by [`with_unary`]), so each
/// op gets its own monomorphised copy of the loop.
trait UnaryKernel<T> {
    type Out;
    fn run(self, f: impl Fn(T) -> T + Copy) -> Self::Out;
}

/// A loop over element pairs, run with the CPU form of one binary op (by [`with_binary`]).
trait BinaryKernel<T> {
    type Out;
    fn run(self, f: impl Fn(T, T) -> T + Copy) -> Self::Out;
}

/// Expands [`ebm_optable::unary_ops!`]: the CPU dispatch and a `Tensor` method per op.
macro_rules! cpu_unary {
    ($(
        $(#[$doc:meta])*
        $op:ident $(($($p:ident: $pt:ident = $ex:expr),*))? = $code:literal, $method:ident:
            |$x:ident| $cpu:expr, $cuda:literal;
    )*) => {
        /// Runs `kernel` with the CPU form of `op` for element type `T`.
        fn with_unary<T: Elem, K: UnaryKernel<T>>(op: UnaryOp, kernel: K) -> K::Out {
            #[allow(unused_imports)]
            use super::scalar::*;
            match op {
                $(UnaryOp::$op $(($($p),*))? => {
                    $($(let $p = <$pt as CpuParam<T>>::cpu($p);)*)?
                    kernel.run(#[inline(always)] move |$x: T| $cpu)
                })*
            }
        }

        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $method(&self $($(, $p: $pt)*)?) -> Tensor {
                    self.unary(UnaryOp::$op $(($($p),*))?)
                }
            )*
        }
    };
}

/// Expands [`ebm_optable::binary_ops!`]: the CPU dispatch and a `Tensor` method per op.
macro_rules! cpu_binary {
    ($(
        $(#[$doc:meta])*
        $op:ident = $code:literal, $method:ident: |$a:ident, $b:ident| $cpu:expr, $cuda:literal;
    )*) => {
        /// Runs `kernel` with the CPU form of `op` for element type `T`.
        fn with_binary<T: Elem, K: BinaryKernel<T>>(op: BinaryOp, kernel: K) -> K::Out {
            #[allow(unused_imports)]
            use super::scalar::*;
            match op {
                $(BinaryOp::$op => kernel.run(#[inline(always)] |$a: T, $b: T| $cpu),)*
            }
        }

        impl Tensor {
            $(
                $(#[$doc])*
                /// Broadcasts NumPy-style; panics naming both shapes if they do not broadcast.
                pub fn $method(&self, rhs: &Tensor) -> Tensor {
                    self.binary(rhs, BinaryOp::$op)
                }
            )*
        }
    };
}

ebm_optable::unary_ops!(cpu_unary);
ebm_optable::binary_ops!(cpu_binary);

/// A unary op over a host slice into a new buffer.
struct MapSlice<'a, T>(&'a [T]);

impl<T: Elem + HostVec> UnaryKernel<T> for MapSlice<'_, T> {
    type Out = Vec<T>;

    #[inline(always)]
    fn run(self, f: impl Fn(T) -> T + Copy) -> Vec<T> {
        let mut out = crate::pool::take(self.0.len());
        super::fastmath::dispatch(
            #[inline(always)]
            || {
                for (o, &x) in out.iter_mut().zip(self.0) {
                    *o = f(x);
                }
            },
        );
        out
    }
}

/// Inner loop of a broadcast binary op over one row, specialised on the last-axis strides so
/// the common cases (both contiguous, one side a broadcast scalar) vectorise.
#[inline(always)]
fn binary_row<T: Elem>(
    out: &mut [T],
    a: &[T],
    sa: usize,
    b: &[T],
    sb: usize,
    f: impl Fn(T, T) -> T,
) {
    let n = out.len();
    match (sa, sb) {
        (1, 1) => {
            for ((o, &x), &y) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) {
                *o = f(x, y);
            }
        }
        (1, 0) => {
            let y = b[0];
            for (o, &x) in out.iter_mut().zip(&a[..n]) {
                *o = f(x, y);
            }
        }
        (0, 1) => {
            let x = a[0];
            for (o, &y) in out.iter_mut().zip(&b[..n]) {
                *o = f(x, y);
            }
        }
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f(a[i * sa], b[i * sb]);
            }
        }
    }
}

/// `Some(n)` when `row` is one row of n elements (leading axes of size 1) and `full`, the
/// output's own shape, ends in n: `row` repeats against every row of `full`.
pub(super) fn row_over_rows(row: &[usize], full: &[usize], out_shape: &[usize]) -> Option<usize> {
    let n = *full.last()?;
    (full == out_shape && n > 0 && row.last() == Some(&n) && numel(row) == n).then_some(n)
}

/// A binary op over two host slices broadcast to `out_shape`, into a new buffer.
struct Broadcast<'a, T> {
    a: &'a [T],
    ashape: &'a [usize],
    b: &'a [T],
    bshape: &'a [usize],
    out_shape: &'a [usize],
}

impl<T: Elem + HostVec> BinaryKernel<T> for Broadcast<'_, T> {
    type Out = Vec<T>;

    #[inline(always)]
    fn run(self, f: impl Fn(T, T) -> T + Copy) -> Vec<T> {
        let Broadcast {
            a,
            ashape,
            b,
            bshape,
            out_shape,
        } = self;
        let mut out = crate::pool::take(numel(out_shape));
        super::fastmath::dispatch(
            #[inline(always)]
            || {
                if ashape == bshape {
                    binary_row(&mut out, a, 1, b, 1, f);
                } else if b.len() == 1 {
                    binary_row(&mut out, a, 1, b, 0, f);
                } else if a.len() == 1 {
                    binary_row(&mut out, a, 0, b, 1, f);
                } else if let Some(inner) = row_over_rows(ashape, bshape, out_shape) {
                    // a row (a layer's weights or bias) against every row of a batch: the
                    // general walk's per-row bookkeeping cost 25% of −w ⊙ silu′ on AVX2
                    for (o, b) in out.chunks_exact_mut(inner).zip(b.chunks_exact(inner)) {
                        for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                            *o = f(x, y);
                        }
                    }
                } else if let Some(inner) = row_over_rows(bshape, ashape, out_shape) {
                    for (o, a) in out.chunks_exact_mut(inner).zip(a.chunks_exact(inner)) {
                        for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                            *o = f(x, y);
                        }
                    }
                } else {
                    let sa = broadcast_strides(ashape, out_shape);
                    let sb = broadcast_strides(bshape, out_shape);
                    let r = out_shape.len();
                    let inner = out_shape[r - 1];
                    let (ia, ib) = (sa[r - 1], sb[r - 1]);
                    // inlined into this feature-specific copy, like every loop here
                    for_each_row(
                        out_shape,
                        [&sa, &sb],
                        #[inline(always)]
                        |o, [oa, ob]| {
                            binary_row(&mut out[o..o + inner], &a[oa..], ia, &b[ob..], ib, f);
                        },
                    );
                }
            },
        );
        out
    }
}

impl Tensor {
    /// Applies an element-wise function (after [`UnaryOp::lowered`], on every device).
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        let label = || format!("{op:?} {:?}", self.shape());
        let op = op.lowered();
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::unary(self, op) {
            return t;
        }
        if op == UnaryOp::Silu {
            if let Some(y) = self.silu_keeping_sigmoid() {
                return y;
            }
        }
        timed_op(OpKind::Elementwise, label, || {
            with_slice!(self, |v| Tensor::from_vec(
                with_unary(op, MapSlice(v)),
                self.shape()
            ))
        })
    }

    /// Applies a broadcasting binary op; panics naming both shapes if they do not broadcast.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Tensor {
        let out_shape = broadcast_shapes(self.shape(), rhs.shape()).unwrap_or_else(|| {
            panic!(
                "{op:?}: shapes {:?} and {:?} do not broadcast",
                self.shape(),
                rhs.shape()
            )
        });
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::binary(self, rhs, op, &out_shape) {
            return t;
        }
        if let Some(t) = self.mul_silu_d(rhs, op) {
            return t;
        }
        let label = || format!("{op:?} {:?} {:?}", self.shape(), rhs.shape());
        timed_op(OpKind::Elementwise, label, || {
            with_slices2!(format!("{op:?}"), self, rhs, |a, b| {
                let kernel = Broadcast {
                    a,
                    ashape: self.shape(),
                    b,
                    bshape: rhs.shape(),
                    out_shape: &out_shape,
                };
                Tensor::from_vec(with_binary(op, kernel), &out_shape)
            })
        })
    }

    /// self += rhs, in place when self's buffer is not shared, both are on the host and the
    /// shapes and dtypes agree (gradient accumulation: no new buffer, and the sum lands in
    /// lines the read just brought into cache); otherwise self = self + rhs.
    pub fn add_assign(&mut self, rhs: &Tensor) {
        let in_place = self.shape() == rhs.shape()
            && self.dtype() == rhs.dtype()
            && self.device() == crate::Device::Cpu
            && rhs.device() == crate::Device::Cpu
            && self.buffer_is_unique();
        if !in_place {
            *self = self.add(rhs);
            return;
        }
        let shape = self.shape().to_vec();
        let label = || format!("Add in place {shape:?}");
        timed_op(OpKind::Elementwise, label, || {
            macro_rules! run {
                ($t:ty, $v:ident) => {{
                    let r: &[$t] = match rhs.cpu() {
                        CpuStorage::$v(v) => v,
                        _ => unreachable!("dtypes checked above"),
                    };
                    // the buffer is unique: data_mut writes in place, no copy
                    let dst = self.data_mut::<$t>();
                    super::fastmath::dispatch(
                        #[inline(always)]
                        || {
                            for (d, &x) in dst.iter_mut().zip(r) {
                                *d += x;
                            }
                        },
                    );
                }};
            }
            match self.dtype() {
                crate::DType::F32 => run!(f32, F32),
                crate::DType::F64 => run!(f64, F64),
            }
        })
    }

    /// `cond ? a : b` element-wise, with all three broadcast together; `cond` is nonzero/zero.
    pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
        let s = broadcast_shapes(cond.shape(), a.shape())
            .and_then(|s| broadcast_shapes(&s, b.shape()))
            .unwrap_or_else(|| {
                panic!(
                    "where: shapes {:?}, {:?} and {:?} do not broadcast",
                    cond.shape(),
                    a.shape(),
                    b.shape()
                )
            });
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::where_(cond, a, b, &s) {
            return t;
        }
        let (c, a, b) = (
            cond.broadcast_to(&s).cast(a.dtype()),
            a.broadcast_to(&s),
            b.broadcast_to(&s),
        );
        with_slices2!("where", a, b, |x, y| {
            let cv: Vec<_> = c.to_vec::<f64>();
            let out: Vec<_> = cv
                .iter()
                .zip(x.iter().zip(y.iter()))
                .map(|(&k, (&p, &q))| if k != 0.0 { p } else { q })
                .collect();
            Tensor::from_vec(out, &s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn broadcast_add_matches_hand_computation() {
        let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        let b = Tensor::from_vec(vec![10.0f64, 20.0, 30.0], &[3]);
        assert_eq!(a.add(&b).to_vec_f64(), vec![11., 22., 33., 14., 25., 36.]);
        let c = Tensor::from_vec(vec![100.0f64, 200.0], &[2, 1]);
        assert_eq!(
            a.add(&c).to_vec_f64(),
            vec![101., 102., 103., 204., 205., 206.]
        );
        // [2,1] + [1,3] -> [2,3] outer sum
        let r = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[1, 3]);
        assert_eq!(
            c.add(&r).to_vec_f64(),
            vec![101., 102., 103., 201., 202., 203.]
        );
    }

    #[test]
    fn a_row_against_every_row_is_the_elementwise_definition() {
        // the row fast path (either operand the row, leading axes of 1) and the general walk
        // give each element f(a[.., j], b[i, j]) — here against that definition, per element
        let mut rng = crate::Rng::new(4);
        for (row, full) in [
            (&[37usize][..], &[5usize, 37][..]),
            (&[1, 37], &[5, 37]),
            (&[1, 1, 19], &[2, 3, 19]),
            (&[19], &[2, 3, 19]),
            (&[2, 1, 19], &[2, 3, 19]), // not one row: the general walk
        ] {
            let n = *full.last().unwrap();
            let r = rng.normal(row, DType::F32);
            let f = rng.normal(full, DType::F32);
            let (rv, fv) = (r.to_vec_f64(), f.to_vec_f64());
            let row_of = |i: usize| {
                let per_row_block = numel(&full[full.len() - 2..]);
                if numel(row) == n {
                    0
                } else {
                    (i / per_row_block) * n
                }
            };
            for op in [BinaryOp::Mul, BinaryOp::Sub, BinaryOp::MulSiluD1] {
                let (rf, fr) = (r.binary(&f, op), f.binary(&r, op));
                assert_eq!(rf.shape(), full);
                let (rf, fr) = (rf.as_slice::<f32>(), fr.as_slice::<f32>());
                for i in 0..fv.len() {
                    let (x, y) = (rv[row_of(i) + i % n] as f32, fv[i] as f32);
                    let (want_rf, want_fr) = match op {
                        BinaryOp::Mul => (x * y, y * x),
                        BinaryOp::Sub => (x - y, y - x),
                        _ => (
                            x * super::super::scalar::silu_d1(y),
                            y * super::super::scalar::silu_d1(x),
                        ),
                    };
                    assert_eq!(
                        rf[i].to_bits(),
                        want_rf.to_bits(),
                        "{op:?} {row:?} {full:?} at {i}"
                    );
                    assert_eq!(
                        fr[i].to_bits(),
                        want_fr.to_bits(),
                        "{op:?} {full:?} {row:?} at {i}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "shapes [2, 3] and [2] do not broadcast")]
    fn mismatched_shapes_name_both() {
        let a = Tensor::zeros(&[2, 3], DType::F32);
        let b = Tensor::zeros(&[2], DType::F32);
        let _ = a.add(&b);
    }

    #[test]
    fn stable_forms_do_not_overflow() {
        let x = Tensor::from_vec(vec![-1000.0f32, 0.0, 1000.0], &[3]);
        assert_eq!(x.sigmoid().to_vec_f64(), vec![0.0, 0.5, 1.0]);
        let sp = x.softplus().to_vec_f64();
        assert_eq!(sp[0], 0.0);
        assert!((sp[1] - 2f64.ln()).abs() < 1e-7);
        assert_eq!(sp[2], 1000.0);
    }

    #[test]
    fn add_assign_is_in_place_only_when_unshared() {
        let mut rng = crate::Rng::new(2);
        let r = rng.normal(&[5, 7], crate::DType::F32);
        let mut a = rng.normal(&[5, 7], crate::DType::F32);
        let want = a.add(&r).to_vec_f64();
        let ptr = a.as_slice::<f32>().as_ptr();
        a.add_assign(&r);
        assert_eq!(a.to_vec_f64(), want);
        assert_eq!(
            a.as_slice::<f32>().as_ptr(),
            ptr,
            "a unique buffer is written in place"
        );
        // a shared buffer is never written through: the sum goes to a new one
        let shared = a.clone();
        let before = shared.to_vec_f64();
        a.add_assign(&r);
        assert_eq!(shared.to_vec_f64(), before);
        assert_ne!(a.to_vec_f64(), before);
        // broadcasting falls back to a + rhs
        let mut c = Tensor::ones(&[5, 7], crate::DType::F32);
        c.add_assign(&Tensor::scalar(2.0, crate::DType::F32));
        assert_eq!(c.to_vec_f64(), vec![3.0; 35]);
    }

    #[test]
    fn where_selects() {
        let c = Tensor::from_vec(vec![1.0f64, 0.0], &[2, 1]);
        let a = Tensor::full(&[2, 2], 1.0, DType::F64);
        let b = Tensor::full(&[2], -1.0, DType::F64);
        assert_eq!(
            Tensor::where_(&c, &a, &b).to_vec_f64(),
            vec![1., 1., -1., -1.]
        );
    }
}
