//! The element-wise passes of an SiLU MLP's score together with its directional derivatives
//! ∇ₓs(x)·v (forward mode along each tangent v) and their parameter VJP: the closed form that
//! sliced score matching trains with (ebm-nn's `silu_mlp::jvp`, where the formulas are).
//!
//! A pass reads a layer's primal factors (`[rows, w]`) once and its M tangents (`[M·rows, w]`,
//! M blocks of the primal's shape stacked by rows) block by block; sums over the tangents are
//! taken in block order. With s = σ(a): d = silu′(a), e = silu″(a), f = silu‴(a) (the scalar
//! helpers of `scalar.rs`).

use super::scalar::{sigmoid, silu_d1_from, silu_d2_from, silu_d3_from};
use crate::dtype::Elem;
use crate::profile::{timed_op, OpKind};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::DType;

fn host<T: HostVec>(t: &Tensor) -> &[T] {
    T::view(t.cpu()).expect("silu_mlp_jvp passes: one dtype on the host, checked by the caller")
}

/// Checks the operands: `primal` of one shape [rows, w], `tangent` of M·rows rows of the same
/// width (M ≥ 1, the same for all), every one a host tensor of one dtype; returns M.
fn check(what: &str, primal: &[&Tensor], tangent: &[&Tensor]) -> usize {
    let p0 = primal[0];
    let (dtype, shape) = (p0.dtype(), p0.shape());
    let host_of = |t: &&Tensor| t.device() == crate::Device::Cpu && t.dtype() == dtype;
    assert!(
        p0.rank() == 2 && primal.iter().all(|t| host_of(t) && t.shape() == shape),
        "{what}: primal operands must be host tensors [rows, w] of one dtype and shape"
    );
    let m = tangent[0].numel() / p0.numel().max(1);
    assert!(
        m >= 1
            && tangent
                .iter()
                .all(|t| { host_of(t) && t.rank() == 2 && t.shape() == [m * shape[0], shape[1]] }),
        "{what}: tangent operands must be [M·{}, {}] host tensors of the primal's dtype",
        shape[0],
        shape[1]
    );
    m
}

/// Runs `$body` with `$t` the element type of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

/// Out-buffers of `n` elements.
fn take<T: HostVec + Default, const K: usize>(n: usize) -> [Vec<T>; K] {
    std::array::from_fn(|_| crate::pool::take(n))
}

// Every loop below first cuts its slices to the loop's length, so the compiler drops the
// bounds checks and vectorises (indexed loops over uncut slices ran 10× slower).

/// `$s` re-bound as `$s[$r]` for each name.
macro_rules! cut {
    ($r:expr; $($s:ident),*) => { $(let $s = &$s[$r.clone()];)* };
    (mut $r:expr; $($s:ident),*) => { $(let $s = &mut $s[$r.clone()];)* };
}

fn forward_host<T: HostVec>(a: &[T], at: &[T]) -> [Vec<T>; 5] {
    let n = a.len();
    let [mut h, mut d, mut e, mut f] = take::<T, 4>(n);
    let [mut ht] = take::<T, 1>(at.len());
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            {
                cut!(mut ..n; h, d, e, f);
                for i in 0..n {
                    let (x, s) = (a[i], sigmoid(a[i]));
                    h[i] = x * s;
                    d[i] = silu_d1_from(x, s);
                    e[i] = silu_d2_from(x, s);
                    f[i] = silu_d3_from(x, s);
                }
            }
            for (ht, at) in ht.chunks_exact_mut(n).zip(at.chunks_exact(n)) {
                for ((o, &d), &a) in ht.iter_mut().zip(&d).zip(at) {
                    *o = d * a;
                }
            }
        },
    );
    [h, d, e, f, ht]
}

fn top_host<T: HostVec>(a: &[T], at: &[T], v: &[T]) -> [Vec<T>; 5] {
    let (n, w) = (a.len(), v.len());
    let [mut g, mut d, mut e, mut f] = take::<T, 4>(n);
    let [mut gt] = take::<T, 1>(at.len());
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            for r in 0..n / w {
                let span = r * w..(r + 1) * w;
                cut!(span.clone(); a);
                cut!(mut span; g, d, e, f);
                cut!(..w; a, v);
                cut!(mut ..w; g, d, e, f);
                for j in 0..w {
                    let (x, s) = (a[j], sigmoid(a[j]));
                    d[j] = silu_d1_from(x, s);
                    e[j] = silu_d2_from(x, s);
                    f[j] = silu_d3_from(x, s);
                    g[j] = v[j] * d[j];
                }
            }
            for (gt, at) in gt.chunks_exact_mut(n).zip(at.chunks_exact(n)) {
                for ((gt, at), e) in gt
                    .chunks_exact_mut(w)
                    .zip(at.chunks_exact(w))
                    .zip(e.chunks_exact(w))
                {
                    cut!(mut ..w; gt);
                    cut!(..w; at, e, v);
                    for j in 0..w {
                        gt[j] = v[j] * e[j] * at[j];
                    }
                }
            }
        },
    );
    [g, gt, d, e, f]
}

fn chain_host<T: HostVec>(u: &[T], ut: &[T], d: &[T], e: &[T], at: &[T]) -> [Vec<T>; 2] {
    let n = u.len();
    let [mut g] = take::<T, 1>(n);
    let [mut gt] = take::<T, 1>(ut.len());
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            cut!(..n; u, d, e);
            for ((o, &u), &d) in g.iter_mut().zip(u).zip(d) {
                *o = u * d;
            }
            for ((gt, ut), at) in gt
                .chunks_exact_mut(n)
                .zip(ut.chunks_exact(n))
                .zip(at.chunks_exact(n))
            {
                cut!(mut ..n; gt);
                cut!(..n; ut, at);
                for i in 0..n {
                    gt[i] = ut[i] * d[i] + u[i] * e[i] * at[i];
                }
            }
        },
    );
    [g, gt]
}

/// Σₘ x⁽ᵐ⁾ ⊙ y⁽ᵐ⁾ over the tangent blocks into `acc` (assigned by the first block).
#[inline(always)]
fn sum_of_products<T: Elem>(acc: &mut [T], x: &[T], y: &[T]) {
    let n = acc.len();
    for (m, (x, y)) in x.chunks_exact(n).zip(y.chunks_exact(n)).enumerate() {
        cut!(..n; x, y);
        if m == 0 {
            for ((o, &x), &y) in acc.iter_mut().zip(x).zip(y) {
                *o = x * y;
            }
        } else {
            for ((o, &x), &y) in acc.iter_mut().zip(x).zip(y) {
                *o = *o + x * y;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn chain_backward_host<T: HostVec>(
    gb: &[T],
    gtb: &[T],
    d: &[T],
    e: &[T],
    f: &[T],
    u: &[T],
    ut: &[T],
    at: &[T],
) -> [Vec<T>; 4] {
    let n = gb.len();
    let [mut ub, mut t] = take::<T, 2>(n);
    let [mut utb, mut ats] = take::<T, 2>(gtb.len());
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            cut!(..n; gb, d, e, f, u);
            for ((utb, ats), gtb) in utb
                .chunks_exact_mut(n)
                .zip(ats.chunks_exact_mut(n))
                .zip(gtb.chunks_exact(n))
            {
                cut!(mut ..n; utb, ats);
                cut!(..n; gtb);
                for i in 0..n {
                    utb[i] = gtb[i] * d[i];
                    ats[i] = gtb[i] * (u[i] * e[i]);
                }
            }
            // ub holds A = Σ ġ̄ ⊙ ȧ and t holds C = Σ ġ̄ ⊙ u̇ until the primal pass
            sum_of_products(&mut ub, gtb, at);
            sum_of_products(&mut t, gtb, ut);
            cut!(mut ..n; ub, t);
            for i in 0..n {
                let (a_sum, c_sum) = (ub[i], t[i]);
                ub[i] = gb[i] * d[i] + e[i] * a_sum;
                t[i] = (gb[i] * u[i] + c_sum) * e[i] + a_sum * u[i] * f[i];
            }
        },
    );
    [ub, utb, t, ats]
}

#[allow(clippy::too_many_arguments)]
fn top_backward_host<T: HostVec>(
    gb: &[T],
    gtb: &[T],
    d: &[T],
    e: &[T],
    f: &[T],
    at: &[T],
    v: &[T],
) -> [Vec<T>; 4] {
    let (n, w) = (gb.len(), v.len());
    let [mut ab] = take::<T, 1>(n);
    let [mut atb] = take::<T, 1>(gtb.len());
    let (mut sum_v, mut sum_a) = (vec![T::zero(); w], vec![T::zero(); w]);
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            for (atb, gtb) in atb.chunks_exact_mut(n).zip(gtb.chunks_exact(n)) {
                for ((atb, gtb), e) in atb
                    .chunks_exact_mut(w)
                    .zip(gtb.chunks_exact(w))
                    .zip(e.chunks_exact(w))
                {
                    cut!(mut ..w; atb);
                    cut!(..w; gtb, e, v);
                    for j in 0..w {
                        atb[j] = gtb[j] * v[j] * e[j];
                    }
                }
            }
            // ab holds A = Σ ġ̄ ⊙ ȧ until the primal pass
            sum_of_products(&mut ab, gtb, at);
            let (sv, sa) = (&mut sum_v[..w], &mut sum_a[..w]);
            for r in 0..n / w {
                let span = r * w..(r + 1) * w;
                cut!(span.clone(); gb, d, e, f);
                cut!(mut span; ab);
                cut!(..w; gb, d, e, f, v);
                cut!(mut ..w; ab);
                for j in 0..w {
                    let a_sum = ab[j];
                    let x = v[j] * (gb[j] * e[j] + a_sum * f[j]);
                    ab[j] = x;
                    sv[j] = sv[j] + (gb[j] * d[j] + e[j] * a_sum);
                    sa[j] = sa[j] + x;
                }
            }
        },
    );
    [ab, atb, sum_v, sum_a]
}

#[allow(clippy::too_many_arguments)]
fn layer_backward_host<T: HostVec>(
    hb: &[T],
    htb: &[T],
    d: &[T],
    e: &[T],
    at: &[T],
    t: &[T],
    ats: &[T],
) -> [Vec<T>; 2] {
    let n = hb.len();
    let [mut ab] = take::<T, 1>(n);
    let [mut atb] = take::<T, 1>(htb.len());
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            cut!(..n; hb, d, e, t);
            for ((atb, htb), ats) in atb
                .chunks_exact_mut(n)
                .zip(htb.chunks_exact(n))
                .zip(ats.chunks_exact(n))
            {
                cut!(mut ..n; atb);
                cut!(..n; htb, ats);
                for i in 0..n {
                    atb[i] = htb[i] * d[i] + ats[i];
                }
            }
            sum_of_products(&mut ab, htb, at);
            cut!(mut ..n; ab);
            for i in 0..n {
                ab[i] = hb[i] * d[i] + ab[i] * e[i] + t[i];
            }
        },
    );
    [ab, atb]
}

/// Wraps host outputs as tensors: the first `primal` of the primal's shape, the rest of the
/// tangents'.
fn tensors<T: HostVec, const K: usize>(outs: [Vec<T>; K], shapes: [&[usize]; K]) -> [Tensor; K] {
    let mut it = outs.into_iter().zip(shapes);
    std::array::from_fn(|_| {
        let (v, s) = it.next().expect("K outputs");
        Tensor::from_vec(v, s)
    })
}

impl Tensor {
    /// A hidden layer's forward pass with its tangents: for the pre-activation a (`self`,
    /// [rows, w]) and its M tangents ȧ ([M·rows, w]), [h, d, e, f, ḣ] with h = silu(a),
    /// d, e, f = silu′, silu″, silu‴ (a) from one σ per element, and ḣ = d ⊙ ȧ per tangent.
    pub fn silu_jvp_forward(&self, at: &Tensor) -> [Tensor; 5] {
        check("silu_jvp_forward", &[self], &[at]);
        let (p, t) = (self.shape(), at.shape());
        timed_op(
            OpKind::Elementwise,
            || format!("silu_jvp_forward {p:?} {t:?}"),
            || by_dtype!(self.dtype(), T => tensors(forward_host::<T>(host(self), host(at)), [p, p, p, p, t])),
        )
    }

    /// The top hidden layer's forward pass with its tangents, for a row `v` [w] (v = −w_L, the
    /// output weight negated): [g, ġ, d, e, f] with g = v ⊙ d (the score's backward start) and
    /// ġ = v ⊙ e ⊙ ȧ per tangent, d, e, f as in [`Tensor::silu_jvp_forward`].
    pub fn silu_top_jvp(&self, at: &Tensor, v: &Tensor) -> [Tensor; 5] {
        check("silu_top_jvp", &[self], &[at]);
        assert_row(v, self, "silu_top_jvp");
        let (p, t) = (self.shape(), at.shape());
        timed_op(
            OpKind::Elementwise,
            || format!("silu_top_jvp {p:?} {t:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    top_host::<T>(host(self), host(at), host(v)),
                    [p, t, p, p, p],
                ))
            },
        )
    }

    /// One step of the score's backward chain with its tangents: for u (`self`) and u̇, with
    /// the layer's kept d, e and ȧ, [g, ġ] with g = u ⊙ d and ġ = u̇ ⊙ d + u ⊙ e ⊙ ȧ.
    pub fn silu_chain_jvp(&self, ut: &Tensor, d: &Tensor, e: &Tensor, at: &Tensor) -> [Tensor; 2] {
        check("silu_chain_jvp", &[self, d, e], &[ut, at]);
        let (p, t) = (self.shape(), ut.shape());
        timed_op(
            OpKind::Elementwise,
            || format!("silu_chain_jvp {p:?} {t:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    chain_host::<T>(host(self), host(ut), host(d), host(e), host(at)),
                    [p, t],
                ))
            },
        )
    }

    /// [`Tensor::silu_chain_jvp`] reversed for the cotangents ḡ (`self`) and ġ̄:
    /// [ū, u̇̄, t, ǡˢ] with u̇̄ = ġ̄ ⊙ d and ǡˢ = ġ̄ ⊙ u ⊙ e per tangent, and with A = Σₘ ġ̄ ⊙ ȧ,
    /// C = Σₘ ġ̄ ⊙ u̇: ū = ḡ ⊙ d + e ⊙ A and t = (ḡ ⊙ u + C) ⊙ e + A ⊙ u ⊙ f — the
    /// pre-activation's cotangent through d and e (silu″ and silu‴ of the chain rule).
    #[allow(clippy::too_many_arguments)]
    pub fn silu_chain_jvp_backward(
        &self,
        gtb: &Tensor,
        d: &Tensor,
        e: &Tensor,
        f: &Tensor,
        u: &Tensor,
        ut: &Tensor,
        at: &Tensor,
    ) -> [Tensor; 4] {
        check(
            "silu_chain_jvp_backward",
            &[self, d, e, f, u],
            &[gtb, ut, at],
        );
        let (p, t) = (self.shape(), gtb.shape());
        timed_op(
            OpKind::Elementwise,
            || format!("silu_chain_jvp_backward {p:?} {t:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    chain_backward_host::<T>(
                        host(self), host(gtb), host(d), host(e), host(f), host(u), host(ut), host(at),
                    ),
                    [p, t, p, t],
                ))
            },
        )
    }

    /// [`Tensor::silu_top_jvp`] reversed for the cotangents ḡ (`self`) and ġ̄, the kept d, e,
    /// f, ȧ and the row v: [ā, ǡ, v̄, Σ_rows ā] with A = Σₘ ġ̄ ⊙ ȧ: ā = v ⊙ (ḡ ⊙ e + A ⊙ f),
    /// ǡ = ġ̄ ⊙ v ⊙ e per tangent, v̄ = Σ_rows (ḡ ⊙ d + e ⊙ A) — the row sums `[w]`.
    #[allow(clippy::too_many_arguments)]
    pub fn silu_top_jvp_backward(
        &self,
        gtb: &Tensor,
        d: &Tensor,
        e: &Tensor,
        f: &Tensor,
        at: &Tensor,
        v: &Tensor,
    ) -> [Tensor; 4] {
        check("silu_top_jvp_backward", &[self, d, e, f], &[gtb, at]);
        assert_row(v, self, "silu_top_jvp_backward");
        let (p, t) = (self.shape(), gtb.shape());
        let w = [p[1]];
        timed_op(
            OpKind::Elementwise,
            || format!("silu_top_jvp_backward {p:?} {t:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    top_backward_host::<T>(
                        host(self), host(gtb), host(d), host(e), host(f), host(at), host(v),
                    ),
                    [p, t, &w, &w],
                ))
            },
        )
    }

    /// A lower hidden layer's backward pass with its tangents, for h̄ (`self`) and ḣ̄ from
    /// the layer above, the kept d, e, ȧ and the chain's t and ǡˢ
    /// ([`Tensor::silu_chain_jvp_backward`]): [ā, ǡ] with ā = h̄ ⊙ d + (Σₘ ḣ̄ ⊙ ȧ) ⊙ e + t and
    /// ǡ = ḣ̄ ⊙ d + ǡˢ per tangent.
    #[allow(clippy::too_many_arguments)]
    pub fn silu_layer_jvp_backward(
        &self,
        htb: &Tensor,
        d: &Tensor,
        e: &Tensor,
        at: &Tensor,
        t_: &Tensor,
        ats: &Tensor,
    ) -> [Tensor; 2] {
        check(
            "silu_layer_jvp_backward",
            &[self, d, e, t_],
            &[htb, at, ats],
        );
        let (p, t) = (self.shape(), htb.shape());
        timed_op(
            OpKind::Elementwise,
            || format!("silu_layer_jvp_backward {p:?} {t:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    layer_backward_host::<T>(
                        host(self), host(htb), host(d), host(e), host(at), host(t_), host(ats),
                    ),
                    [p, t],
                ))
            },
        )
    }
}

fn assert_row(v: &Tensor, x: &Tensor, what: &str) {
    let w = x.shape()[1];
    assert!(
        v.numel() == w && v.dtype() == x.dtype() && v.device() == crate::Device::Cpu,
        "{what}: the row must be a host row of {w} of x's dtype, got {:?}",
        v.shape()
    );
}

#[cfg(test)]
mod tests {
    use crate::{BinaryOp, DType, Rng, Tensor};

    fn close(a: &Tensor, b: &Tensor, dtype: DType) {
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        assert!(
            a.shape() == b.shape() && a.max_abs_diff(b) <= tol * (1.0 + b.max_abs()),
            "{:?} vs {:?}: max diff {}",
            a.shape(),
            b.shape(),
            a.max_abs_diff(b)
        );
    }

    /// Each pass against the same formula from separate ops, with two tangents (M = 2) so the
    /// sums over tangent blocks are exercised.
    #[test]
    fn passes_are_their_formulas() {
        let mut rng = Rng::new(9);
        for dtype in [DType::F32, DType::F64] {
            let (rows, w) = (7, 19);
            let a = rng.normal(&[rows, w], dtype).mul_scalar(4.0);
            let at = rng.normal(&[2 * rows, w], dtype);
            let ones = a.ones_like();
            let d = ones.binary(&a, BinaryOp::MulSiluD1);
            let e = ones.binary(&a, BinaryOp::MulSiluD2);
            let f = ones.binary(&a, BinaryOp::MulSiluD3);
            let rep = |t: &Tensor| Tensor::concat(&[t.clone(), t.clone()], 0);
            let blocks = |t: &Tensor| [t.narrow(0, 0, rows), t.narrow(0, rows, rows)];
            let sum_m = |t: &Tensor| {
                let [x, y] = blocks(t);
                x.add(&y)
            };

            let [h, d_, e_, f_, ht] = a.silu_jvp_forward(&at);
            close(&h, &a.silu(), dtype);
            close(&d_, &d, dtype);
            close(&e_, &e, dtype);
            close(&f_, &f, dtype);
            close(&ht, &rep(&d).mul(&at), dtype);

            let v = rng.normal(&[w], dtype);
            let [g, gt, ..] = a.silu_top_jvp(&at, &v);
            close(&g, &d.mul(&v), dtype);
            close(&gt, &rep(&e).mul(&v).mul(&at), dtype);

            let (u, ut) = (
                rng.normal(&[rows, w], dtype),
                rng.normal(&[2 * rows, w], dtype),
            );
            let [g, gt] = u.silu_chain_jvp(&ut, &d, &e, &at);
            close(&g, &u.mul(&d), dtype);
            close(&gt, &ut.mul(&rep(&d)).add(&rep(&u.mul(&e)).mul(&at)), dtype);

            let (gb, gtb) = (
                rng.normal(&[rows, w], dtype),
                rng.normal(&[2 * rows, w], dtype),
            );
            let [ub, utb, t, ats] = gb.silu_chain_jvp_backward(&gtb, &d, &e, &f, &u, &ut, &at);
            let a_sum = sum_m(&gtb.mul(&at));
            let c_sum = sum_m(&gtb.mul(&ut));
            close(&utb, &gtb.mul(&rep(&d)), dtype);
            close(&ats, &gtb.mul(&rep(&u.mul(&e))), dtype);
            close(&ub, &gb.mul(&d).add(&e.mul(&a_sum)), dtype);
            let want_t = gb.mul(&u).add(&c_sum).mul(&e).add(&a_sum.mul(&u).mul(&f));
            close(&t, &want_t, dtype);

            let [ab, atb, sv, sa] = gb.silu_top_jvp_backward(&gtb, &d, &e, &f, &at, &v);
            let want_ab = gb.mul(&e).add(&a_sum.mul(&f)).mul(&v);
            close(&ab, &want_ab, dtype);
            close(&atb, &gtb.mul(&rep(&e)).mul(&v), dtype);
            close(
                &sv,
                &gb.mul(&d).add(&e.mul(&a_sum)).sum_axes(&[0], false),
                dtype,
            );
            close(&sa, &want_ab.sum_axes(&[0], false), dtype);

            let (hb, htb) = (
                rng.normal(&[rows, w], dtype),
                rng.normal(&[2 * rows, w], dtype),
            );
            let [ab, atb] = hb.silu_layer_jvp_backward(&htb, &d, &e, &at, &t, &ats);
            let want = hb.mul(&d).add(&sum_m(&htb.mul(&at)).mul(&e)).add(&t);
            close(&ab, &want, dtype);
            close(&atb, &htb.mul(&rep(&d)).add(&ats), dtype);
        }
    }

    #[test]
    #[should_panic(expected = "tangent operands")]
    fn a_tangent_of_another_width_is_refused() {
        let a = Tensor::zeros(&[4, 19], DType::F32);
        a.silu_jvp_forward(&Tensor::zeros(&[4, 18], DType::F32));
    }
}
