//! The element-wise passes of the closed-form derivatives of an SiLU MLP energy (ebm-nn's
//! `silu_mlp`): each reads a layer's pre-activation or its backward terms once and writes every
//! factor the later passes need, where the same derivatives on a tape take one pass per
//! factor and evaluate σ again in the backward sweep.
//!
//! With s = σ(x): silu = x·s, silu′ = s(1 + x(1 − s)), silu″ = s(1 − s)(2 + x(1 − 2s)) (the
//! scalar helpers of `scalar.rs`, so each output equals the separate op's bits).

use super::scalar::{logistic_denominators, silu_d1_from, silu_d2_from, SIGMOID_CHUNK};
use crate::profile::{timed_op, OpKind};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::DType;

/// `t`'s host elements as `T` (the callers checked dtype and device).
fn host<T: HostVec>(t: &Tensor) -> &[T] {
    T::view(t.cpu()).expect("silu_mlp passes: one dtype on the host, checked by the caller")
}

fn check_host(what: &str, ts: &[&Tensor]) {
    let (dtype, shape) = (ts[0].dtype(), ts[0].shape());
    assert!(
        ts.iter()
            .all(|t| t.device() == crate::Device::Cpu && t.dtype() == dtype && t.shape() == shape),
        "{what}: every operand a host tensor of one dtype and shape"
    );
}

fn silu_d012_host<T: HostVec>(x: &[T]) -> [Vec<T>; 3] {
    let n = x.len();
    let (mut h, mut d1, mut d2) = (
        crate::pool::take(n),
        crate::pool::take(n),
        crate::pool::take(n),
    );
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            const C: usize = SIGMOID_CHUNK;
            let mut den = [T::zero(); C];
            let chunks = h.chunks_mut(C).zip(d1.chunks_mut(C)).zip(d2.chunks_mut(C));
            for (((h, d1), d2), x) in chunks.zip(x.chunks(C)) {
                let den = &mut den[..x.len()];
                logistic_denominators(x, den);
                let outs = h.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut());
                for (((h, d1), d2), (&x, &den)) in outs.zip(x.iter().zip(den.iter())) {
                    let s = T::one() / den;
                    *h = x * s;
                    *d1 = silu_d1_from(x, s);
                    *d2 = silu_d2_from(x, s);
                }
            }
        },
    );
    [h, d1, d2]
}

fn row_scaled_silu_d12_host<T: HostVec>(x: &[T], v: &[T]) -> [Vec<T>; 3] {
    let n = x.len();
    let (mut g, mut d1, mut q) = (
        crate::pool::take(n),
        crate::pool::take(n),
        crate::pool::take(n),
    );
    let w = v.len();
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            const C: usize = SIGMOID_CHUNK;
            let mut den = [T::zero(); C];
            for r in 0..n / w {
                let span = r * w..(r + 1) * w;
                let (g, d1, q) = (
                    &mut g[span.clone()],
                    &mut d1[span.clone()],
                    &mut q[span.clone()],
                );
                let (x, v) = (&x[span], &v[..w]);
                for j0 in (0..w).step_by(C) {
                    let len = C.min(w - j0);
                    let span = j0..j0 + len;
                    let (g, d1, q) = (
                        &mut g[span.clone()],
                        &mut d1[span.clone()],
                        &mut q[span.clone()],
                    );
                    let (x, v, den) = (&x[span.clone()], &v[span], &mut den[..len]);
                    logistic_denominators(x, den);
                    for j in 0..len {
                        let s = T::one() / den[j];
                        let d = silu_d1_from(x[j], s);
                        g[j] = v[j] * d;
                        d1[j] = d;
                        q[j] = v[j] * silu_d2_from(x[j], s);
                    }
                }
            }
        },
    );
    [g, d1, q]
}

fn score_backward_host<T: HostVec>(
    gbar: &[T],
    u: &[T],
    d1: &[T],
    d2: &[T],
    want_g: bool,
) -> (Vec<T>, Vec<T>, Option<Vec<T>>) {
    let n = gbar.len();
    let (mut ubar, mut t) = (crate::pool::take(n), crate::pool::take(n));
    let mut g: Vec<T> = if want_g {
        crate::pool::take(n)
    } else {
        Vec::new()
    };
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let ins = gbar.iter().zip(u).zip(d1.iter().zip(d2));
            if want_g {
                let outs = ubar.iter_mut().zip(t.iter_mut()).zip(g.iter_mut());
                for (((ub, t), g), ((&gb, &u), (&d1, &d2))) in outs.zip(ins) {
                    *ub = gb * d1;
                    *t = gb * u * d2;
                    *g = u * d1;
                }
            } else {
                for ((ub, t), ((&gb, &u), (&d1, &d2))) in ubar.iter_mut().zip(t.iter_mut()).zip(ins)
                {
                    *ub = gb * d1;
                    *t = gb * u * d2;
                }
            }
        },
    );
    (ubar, t, want_g.then_some(g))
}

fn top_backward_host<T: HostVec>(gbar: &[T], d1: &[T], q: &[T], w: usize) -> [Vec<T>; 3] {
    let mut abar: Vec<T> = crate::pool::take(gbar.len());
    let (mut sum_gd, mut sum_a) = (vec![T::zero(); w], vec![T::zero(); w]);
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            // indexed rows of one length, so the column loop vectorises (the zipped form with
            // the two running sums did not)
            let (sg, sa) = (&mut sum_gd[..w], &mut sum_a[..w]);
            for r in 0..gbar.len() / w {
                let span = r * w..(r + 1) * w;
                let (a, g) = (&mut abar[span.clone()], &gbar[span.clone()]);
                let (d, q) = (&d1[span.clone()], &q[span]);
                for j in 0..w {
                    let v = g[j] * q[j];
                    a[j] = v;
                    sg[j] = sg[j] + g[j] * d[j];
                    sa[j] = sa[j] + v;
                }
            }
        },
    );
    [abar, sum_gd, sum_a]
}

fn outer_scaled_host<T: HostVec>(c: &[T], v: &[T], d1: &[T]) -> [Vec<T>; 2] {
    let w = v.len();
    let mut abar: Vec<T> = crate::pool::take(d1.len());
    let mut sum = vec![T::zero(); w];
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let (sum, v) = (&mut sum[..w], &v[..w]);
            for (r, &c) in c.iter().enumerate() {
                let span = r * w..(r + 1) * w;
                let (a, d) = (&mut abar[span.clone()], &d1[span]);
                for j in 0..w {
                    let x = c * v[j] * d[j];
                    a[j] = x;
                    sum[j] = sum[j] + x;
                }
            }
        },
    );
    [abar, sum]
}

impl Tensor {
    /// (silu(x), silu′(x), silu″(x)) from one σ per element: the forward pass of an SiLU
    /// layer whose score is differentiated again (denoising score matching's parameter
    /// gradient needs silu″ of every hidden layer below the top one).
    pub fn silu_d012(&self) -> [Tensor; 3] {
        check_host("silu_d012", &[self]);
        timed_op(
            OpKind::Elementwise,
            || format!("silu_d012 {:?}", self.shape()),
            || match self.dtype() {
                DType::F32 => {
                    silu_d012_host::<f32>(host(self)).map(|v| Tensor::from_vec(v, self.shape()))
                }
                DType::F64 => {
                    silu_d012_host::<f64>(host(self)).map(|v| Tensor::from_vec(v, self.shape()))
                }
            },
        )
    }

    /// (v ⊙ silu′(x), silu′(x), v ⊙ silu″(x)) for a row `v` (one value per column, shape `[w]`
    /// or [1, w]) broadcast over the rows of x [rows, w], from one σ per element: the top
    /// hidden layer of an SiLU MLP energy, where v = −w_L (the output weight) makes the first
    /// output the score's backward start −w_L ⊙ silu′(a_L) and the last the factor its
    /// parameter gradient multiplies by.
    pub fn row_scaled_silu_d12(&self, v: &Tensor) -> [Tensor; 3] {
        check_host("row_scaled_silu_d12", &[self]);
        let w = *self.shape().last().expect("x has rows and columns");
        assert!(
            self.rank() == 2
                && v.numel() == w
                && v.dtype() == self.dtype()
                && v.device() == crate::Device::Cpu,
            "row_scaled_silu_d12: x {:?} needs rank 2 and a host row of {w} of its dtype, got {:?}",
            self.shape(),
            v.shape()
        );
        timed_op(
            OpKind::Elementwise,
            || format!("row_scaled_silu_d12 {:?}", self.shape()),
            || match self.dtype() {
                DType::F32 => row_scaled_silu_d12_host::<f32>(host(self), host(v))
                    .map(|o| Tensor::from_vec(o, self.shape())),
                DType::F64 => row_scaled_silu_d12_host::<f64>(host(self), host(v))
                    .map(|o| Tensor::from_vec(o, self.shape())),
            },
        )
    }

    /// The backward terms of g = u ⊙ silu′(a) in one pass, for the cotangent ḡ (`self`) and
    /// the kept u, silu′(a) and silu″(a): ū = ḡ ⊙ silu′(a), the pre-activation's cotangent
    /// ḡ ⊙ u ⊙ silu″(a), and with `want_g` the product g = u ⊙ silu′(a) itself (the backward
    /// pass of a score whose forward pass left g unformed).
    pub fn silu_score_backward_terms(
        &self,
        u: &Tensor,
        d1: &Tensor,
        d2: &Tensor,
        want_g: bool,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        check_host("silu_score_backward_terms", &[self, u, d1, d2]);
        let shape = self.shape();
        timed_op(
            OpKind::Elementwise,
            || format!("silu_score_backward_terms {shape:?}"),
            || {
                macro_rules! run {
                    ($t:ty) => {{
                        let (ub, t, g) = score_backward_host::<$t>(
                            host(self),
                            host(u),
                            host(d1),
                            host(d2),
                            want_g,
                        );
                        (
                            Tensor::from_vec(ub, shape),
                            Tensor::from_vec(t, shape),
                            g.map(|g| Tensor::from_vec(g, shape)),
                        )
                    }};
                }
                match self.dtype() {
                    DType::F32 => run!(f32),
                    DType::F64 => run!(f64),
                }
            },
        )
    }

    /// The top hidden layer's backward pass for the cotangent ḡ (`self`, [rows, w]) of
    /// g = v ⊙ silu′(a), with the kept silu′(a) and q = v ⊙ silu″(a) (the outputs of
    /// [`Tensor::row_scaled_silu_d12`]): [ā = ḡ ⊙ q, Σ_rows ḡ ⊙ silu′(a), Σ_rows ā] — the
    /// pre-activation's cotangent, v's cotangent divided by v, and the bias's cotangent, the
    /// sums `[w]` taken row by row in order.
    pub fn silu_top_backward(&self, d1: &Tensor, q: &Tensor) -> [Tensor; 3] {
        check_host("silu_top_backward", &[self, d1, q]);
        assert_eq!(self.rank(), 2, "silu_top_backward: ḡ is [rows, w]");
        let w = self.shape()[1];
        timed_op(
            OpKind::Elementwise,
            || format!("silu_top_backward {:?}", self.shape()),
            || {
                macro_rules! run {
                    ($t:ty) => {{
                        let [a, sg, sa] = top_backward_host::<$t>(host(self), host(d1), host(q), w);
                        [
                            Tensor::from_vec(a, self.shape()),
                            Tensor::from_vec(sg, &[w]),
                            Tensor::from_vec(sa, &[w]),
                        ]
                    }};
                }
                match self.dtype() {
                    DType::F32 => run!(f32),
                    DType::F64 => run!(f64),
                }
            },
        )
    }

    /// The top hidden layer's backward pass of an energy E = silu(a)·vᵀ + b per row for the
    /// cotangents c `[rows]` (`self`), with the kept silu′(a) `[rows, w]`: [ā, Σ_rows ā] with
    /// ā = c ⊗ v ⊙ silu′(a) (each row's c times v times the row's silu′) — the
    /// pre-activation's cotangent and the bias's, one pass where the tape forms c ⊗ v by a
    /// product and multiplies by silu′ in another.
    pub fn silu_energy_top_backward(&self, v: &Tensor, d1: &Tensor) -> [Tensor; 2] {
        let rows = self.numel();
        assert!(
            d1.rank() == 2
                && d1.shape()[0] == rows
                && v.numel() == d1.shape()[1]
                && [self, v, d1]
                    .iter()
                    .all(|t| t.dtype() == d1.dtype() && t.device() == crate::Device::Cpu),
            "silu_energy_top_backward: c {:?}, v {:?} and silu′ {:?} must be [rows], [w] and \
             [rows, w] host tensors of one dtype",
            self.shape(),
            v.shape(),
            d1.shape()
        );
        timed_op(
            OpKind::Elementwise,
            || format!("silu_energy_top_backward {:?}", d1.shape()),
            || {
                macro_rules! run {
                    ($t:ty) => {{
                        let [a, sum] = outer_scaled_host::<$t>(host(self), host(v), host(d1));
                        [
                            Tensor::from_vec(a, d1.shape()),
                            Tensor::from_vec(sum, &[v.numel()]),
                        ]
                    }};
                }
                match d1.dtype() {
                    DType::F32 => run!(f32),
                    DType::F64 => run!(f64),
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::{BinaryOp, DType, Rng, Tensor};

    /// Each output is the separate ops' result, bit for bit in f32 and f64 (the same scalar
    /// helpers in the same order).
    #[test]
    fn passes_equal_the_separate_ops() {
        let mut rng = Rng::new(5);
        // rows off any vector width, and rows wider than the σ passes' chunks (a whole chunk
        // and a partial one per row, chunks across rows)
        for (dtype, (rows, w)) in [DType::F32, DType::F64]
            .into_iter()
            .flat_map(|d| [(37, 19), (5, 300)].map(|s| (d, s)))
        {
            // beyond the exponential's clamps at both ends
            let x = rng.normal(&[rows, w], dtype).mul_scalar(30.0);
            let ones = x.ones_like();
            let d1 = ones.binary(&x, BinaryOp::MulSiluD1);
            let d2 = ones.binary(&x, BinaryOp::MulSiluD2);
            let [h, e1, e2] = x.silu_d012();
            assert_eq!(h.to_vec_f64(), x.silu().to_vec_f64());
            assert_eq!(e1.to_vec_f64(), d1.to_vec_f64());
            assert_eq!(e2.to_vec_f64(), d2.to_vec_f64());
            let (h, e1) = x.silu_and_d1();
            assert_eq!(h.to_vec_f64(), x.silu().to_vec_f64());
            assert_eq!(e1.to_vec_f64(), d1.to_vec_f64());

            let v = rng.normal(&[w], dtype);
            let [g, f1, q] = x.row_scaled_silu_d12(&v);
            assert_eq!(g.to_vec_f64(), d1.mul(&v).to_vec_f64());
            assert_eq!(f1.to_vec_f64(), d1.to_vec_f64());
            assert_eq!(q.to_vec_f64(), d2.mul(&v).to_vec_f64());
            let [g_row, ..] = x.row_scaled_silu_d12(&v.reshape(&[1, w]));
            assert_eq!(g_row.to_vec_f64(), g.to_vec_f64());

            let (gbar, u) = (rng.normal(&[rows, w], dtype), rng.normal(&[rows, w], dtype));
            let (ub, t, none) = gbar.silu_score_backward_terms(&u, &d1, &d2, false);
            assert!(none.is_none());
            let (ub2, t2, g) = gbar.silu_score_backward_terms(&u, &d1, &d2, true);
            assert_eq!(ub.to_vec_f64(), gbar.mul(&d1).to_vec_f64());
            assert_eq!(t.to_vec_f64(), gbar.mul(&u).mul(&d2).to_vec_f64());
            assert_eq!(
                (ub2.to_vec_f64(), t2.to_vec_f64()),
                (ub.to_vec_f64(), t.to_vec_f64())
            );
            assert_eq!(g.unwrap().to_vec_f64(), u.mul(&d1).to_vec_f64());

            let [a, sum_gd, sum_a] = gbar.silu_top_backward(&d1, &q);
            assert_eq!(a.to_vec_f64(), gbar.mul(&q).to_vec_f64());
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            let want_gd = gbar.mul(&d1).sum_axes(&[0], false);
            assert!(sum_gd.max_abs_diff(&want_gd) <= tol * (1.0 + want_gd.max_abs()));
            let want_a = a.sum_axes(&[0], false);
            assert!(sum_a.max_abs_diff(&want_a) <= tol * (1.0 + want_a.max_abs()));

            let c = rng.normal(&[rows], dtype);
            let [a, sum] = c.silu_energy_top_backward(&v, &d1);
            let want = c.reshape(&[rows, 1]).mul(&v.reshape(&[1, w])).mul(&d1);
            assert_eq!(a.to_vec_f64(), want.to_vec_f64());
            let want_sum = want.sum_axes(&[0], false);
            assert!(sum.max_abs_diff(&want_sum) <= tol * (1.0 + want_sum.max_abs()));
        }
    }

    #[test]
    #[should_panic(expected = "row of 19")]
    fn a_row_of_the_wrong_width_is_refused() {
        let x = Tensor::zeros(&[4, 19], DType::F32);
        x.row_scaled_silu_d12(&Tensor::zeros(&[18], DType::F32));
    }
}
