//! The element-wise passes of an SiLU MLP's score together with its directional derivatives
//! ∇ₓs(x)·v (forward mode along each tangent v) and their parameter VJP: the closed form that
//! sliced score matching trains with (ebm-nn's `silu_mlp::jvp`, where the formulas are).
//!
//! A quantity and its M tangents travel as one *stacked* tensor [z; ż₁; …; ż_M] of
//! [(1 + M)·rows, w] (so each product by a weight is one GEMM over all of them); a layer's
//! primal factors are [rows, w]. A pass reads the primal factors once and the tangent blocks one
//! after the other; sums over the tangents are taken in block order. With s = σ(a):
//! d = silu′(a), e = silu″(a), f = silu‴(a) (the scalar helpers of `scalar.rs`).

use super::scalar::{
    logistic_denominator, silu_d1_from, silu_d2_from, silu_d3_from, SIGMOID_CHUNK,
};
use crate::dtype::Elem;
use crate::profile::{timed_op, OpKind};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::DType;

fn host<T: HostVec>(t: &Tensor) -> &[T] {
    T::view(t.cpu()).expect("silu_mlp_jvp passes: one dtype on the host, checked by the caller")
}

/// Checks the operands — `primal` of one shape [rows, w], `stacked` of (1 + M)·rows rows and
/// `tangent` of M·rows rows of that width (M ≥ 1, one M for all), every one a host tensor of
/// one dtype — and returns M.
fn check(what: &str, primal: &[&Tensor], stacked: &[&Tensor], tangent: &[&Tensor]) -> usize {
    let p0 = primal[0];
    let (dtype, shape) = (p0.dtype(), p0.shape());
    let host_of = |t: &&Tensor| t.device() == crate::Device::Cpu && t.dtype() == dtype;
    assert!(
        p0.rank() == 2 && primal.iter().all(|t| host_of(t) && t.shape() == shape),
        "{what}: primal operands must be host tensors [rows, w] of one dtype and shape"
    );
    let m = (stacked[0].numel() / p0.numel().max(1)).saturating_sub(1);
    let rows_of = |k: usize| {
        move |t: &&Tensor| host_of(t) && t.rank() == 2 && t.shape() == [k * shape[0], shape[1]]
    };
    assert!(
        m >= 1 && stacked.iter().all(rows_of(1 + m)) && tangent.iter().all(rows_of(m)),
        "{what}: stacked operands must be [(1 + M)·{r}, {w}] and tangent ones [M·{r}, {w}] \
         host tensors of the primal's dtype",
        r = shape[0],
        w = shape[1]
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

/// Row r of `w` columns.
#[inline(always)]
fn row(r: usize, w: usize) -> std::ops::Range<usize> {
    r * w..(r + 1) * w
}

/// For every chunk of [`SIGMOID_CHUNK`] of every row of the primal pre-activation a (rows of
/// the bias row's width): σ's denominators 1 + e⁻ˣ of x = a + bias in one loop, then
/// `out(span of the chunk in a, a, bias, den)`, which forms its outputs from x and σ = 1/den
/// (`sigmoid`'s bits) in a second (with σ and four outputs per element in one loop, 256-bit
/// vectors run out of registers; −25% on AVX2 in two loops, and keeping x = a + bias in a
/// buffer between them was slower than adding again).
#[inline(always)]
fn biased_sigmoid_chunks<T: Elem>(
    a: &[T],
    bias: &[T],
    mut out: impl FnMut(std::ops::Range<usize>, &[T], &[T], &[T]),
) {
    const C: usize = SIGMOID_CHUNK;
    let w = bias.len();
    let mut den = [T::zero(); C];
    for r in 0..a.len() / w {
        for j0 in (0..w).step_by(C) {
            let len = C.min(w - j0);
            let span = r * w + j0..r * w + j0 + len;
            let (a, bias) = (&a[span.clone()], &bias[j0..j0 + len]);
            let den = &mut den[..len];
            for ((d, &a), &b) in den.iter_mut().zip(a).zip(bias) {
                *d = logistic_denominator(a + b);
            }
            out(span, a, bias, den);
        }
    }
}

/// [h; ḣ], d, e, f of a hidden layer from its stacked pre-activation [a − b; ȧ] and bias row b.
fn forward_host<T: HostVec>(a_st: &[T], bias: &[T], n: usize) -> [Vec<T>; 4] {
    let [mut h_st] = take::<T, 1>(a_st.len());
    let [mut d, mut e, mut f] = take::<T, 3>(n);
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let (a, at) = a_st.split_at(n);
            let (h, ht) = h_st.split_at_mut(n);
            biased_sigmoid_chunks(
                a,
                bias,
                #[inline(always)]
                |span, a, bias, den| {
                    cut!(mut span; h, d, e, f);
                    cut!(mut ..a.len(); h, d, e, f);
                    cut!(..a.len(); bias, den);
                    for j in 0..a.len() {
                        let (x, s) = (a[j] + bias[j], T::one() / den[j]);
                        h[j] = x * s;
                        d[j] = silu_d1_from(x, s);
                        e[j] = silu_d2_from(x, s);
                        f[j] = silu_d3_from(x, s);
                    }
                },
            );
            for (ht, at) in ht.chunks_exact_mut(n).zip(at.chunks_exact(n)) {
                for ((o, &d), &a) in ht.iter_mut().zip(&d).zip(at) {
                    *o = d * a;
                }
            }
        },
    );
    [h_st, d, e, f]
}

/// [g; ġ], d, e, f of the top hidden layer: g = v ⊙ d, ġ = v ⊙ e ⊙ ȧ.
fn top_host<T: HostVec>(a_st: &[T], bias: &[T], v: &[T], n: usize) -> [Vec<T>; 4] {
    let w = v.len();
    let [mut g_st] = take::<T, 1>(a_st.len());
    let [mut d, mut e, mut f] = take::<T, 3>(n);
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let (a, at) = a_st.split_at(n);
            let (g, gt) = g_st.split_at_mut(n);
            biased_sigmoid_chunks(
                a,
                bias,
                #[inline(always)]
                |span, a, bias, den| {
                    let v = &v[span.start % w..];
                    cut!(mut span; g, d, e, f);
                    cut!(mut ..a.len(); g, d, e, f);
                    cut!(..a.len(); v, bias, den);
                    for j in 0..a.len() {
                        let (x, s) = (a[j] + bias[j], T::one() / den[j]);
                        d[j] = silu_d1_from(x, s);
                        e[j] = silu_d2_from(x, s);
                        f[j] = silu_d3_from(x, s);
                        g[j] = v[j] * d[j];
                    }
                },
            );
            for (gt, at) in gt.chunks_exact_mut(n).zip(at.chunks_exact(n)) {
                for r in 0..n / w {
                    cut!(mut row(r, w); gt);
                    cut!(row(r, w); at, e);
                    cut!(mut ..w; gt);
                    cut!(..w; at, e, v);
                    for j in 0..w {
                        gt[j] = v[j] * e[j] * at[j];
                    }
                }
            }
        },
    );
    [g_st, d, e, f]
}

/// [g; ġ] = [u ⊙ d; u̇ ⊙ d + u ⊙ e ⊙ ȧ].
fn chain_host<T: HostVec>(u_st: &[T], d: &[T], e: &[T], a_st: &[T]) -> Vec<T> {
    let n = d.len();
    let [mut g_st] = take::<T, 1>(u_st.len());
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let (u, ut) = u_st.split_at(n);
            let at = &a_st[n..];
            let (g, gt) = g_st.split_at_mut(n);
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
    g_st
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

/// [ū; u̇̄], t, ǡˢ: the chain step reversed (formulas at [`Tensor::silu_chain_jvp_backward`]).
#[allow(clippy::too_many_arguments)]
fn chain_backward_host<T: HostVec>(
    gb_st: &[T],
    d: &[T],
    e: &[T],
    f: &[T],
    u_st: &[T],
    a_st: &[T],
) -> [Vec<T>; 3] {
    let n = d.len();
    let [mut ub_st] = take::<T, 1>(gb_st.len());
    let [mut t] = take::<T, 1>(n);
    let [mut ats] = take::<T, 1>(gb_st.len() - n);
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let (gb, gtb) = gb_st.split_at(n);
            let (u, ut) = u_st.split_at(n);
            let at = &a_st[n..];
            let (ub, utb) = ub_st.split_at_mut(n);
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
            sum_of_products(ub, gtb, at);
            sum_of_products(&mut t, gtb, ut);
            cut!(mut ..n; ub, t);
            for i in 0..n {
                let (a_sum, c_sum) = (ub[i], t[i]);
                ub[i] = gb[i] * d[i] + e[i] * a_sum;
                t[i] = (gb[i] * u[i] + c_sum) * e[i] + a_sum * u[i] * f[i];
            }
        },
    );
    [ub_st, t, ats]
}

/// [ā; ǡ], v̄ and Σ_rows ā of the top hidden layer (formulas at
/// [`Tensor::silu_top_jvp_backward`]).
fn top_backward_host<T: HostVec>(
    gb_st: &[T],
    d: &[T],
    e: &[T],
    f: &[T],
    a_st: &[T],
    v: &[T],
) -> [Vec<T>; 3] {
    let (n, w) = (d.len(), v.len());
    let rows = n / w;
    let [mut ab_st] = take::<T, 1>(gb_st.len());
    let (mut sum_v, mut sum_a) = (vec![T::zero(); w], vec![T::zero(); w]);
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let (gb, gtb) = gb_st.split_at(n);
            let at = &a_st[n..];
            let (ab, atb) = ab_st.split_at_mut(n);
            for (atb, gtb) in atb.chunks_exact_mut(n).zip(gtb.chunks_exact(n)) {
                for r in 0..rows {
                    cut!(mut row(r, w); atb);
                    cut!(row(r, w); gtb, e);
                    cut!(mut ..w; atb);
                    cut!(..w; gtb, e, v);
                    for j in 0..w {
                        atb[j] = gtb[j] * v[j] * e[j];
                    }
                }
            }
            // ab holds A = Σ ġ̄ ⊙ ȧ until the primal pass
            sum_of_products(ab, gtb, at);
            let (sv, sa) = (&mut sum_v[..w], &mut sum_a[..w]);
            for r in 0..rows {
                cut!(row(r, w); gb, d, e, f);
                cut!(mut row(r, w); ab);
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
    [ab_st, sum_v, sum_a]
}

/// [ā; ǡ] and Σ_rows ā of a lower hidden layer (formulas at
/// [`Tensor::silu_layer_jvp_backward`]).
fn layer_backward_host<T: HostVec>(
    hb_st: &[T],
    d: &[T],
    e: &[T],
    a_st: &[T],
    t: &[T],
    ats: &[T],
    w: usize,
) -> [Vec<T>; 2] {
    let n = d.len();
    let [mut ab_st] = take::<T, 1>(hb_st.len());
    let mut sum_a = vec![T::zero(); w];
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            let (hb, htb) = hb_st.split_at(n);
            let at = &a_st[n..];
            let (ab, atb) = ab_st.split_at_mut(n);
            cut!(..n; d);
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
            sum_of_products(ab, htb, at);
            let sa = &mut sum_a[..w];
            for r in 0..n / w {
                cut!(row(r, w); hb, d, e, t);
                cut!(mut row(r, w); ab);
                cut!(..w; hb, d, e, t);
                cut!(mut ..w; ab);
                for j in 0..w {
                    let x = hb[j] * d[j] + ab[j] * e[j] + t[j];
                    ab[j] = x;
                    sa[j] = sa[j] + x;
                }
            }
        },
    );
    [ab_st, sum_a]
}

/// Wraps host outputs as tensors of the given shapes.
fn tensors<T: HostVec, const K: usize>(outs: [Vec<T>; K], shapes: [&[usize]; K]) -> [Tensor; K] {
    let mut it = outs.into_iter().zip(shapes);
    std::array::from_fn(|_| {
        let (v, s) = it.next().expect("K outputs");
        Tensor::from_vec(v, s)
    })
}

/// The bias row's elements, or zeros.
fn bias_or_zeros<T: HostVec>(bias: Option<&Tensor>, w: usize) -> std::borrow::Cow<'_, [T]> {
    match bias {
        Some(b) => std::borrow::Cow::Borrowed(host(b)),
        None => std::borrow::Cow::Owned(vec![T::zero(); w]),
    }
}

/// Checks a stacked operand of `rows` primal rows (and a bias row of its width) and returns
/// the primal shape [rows, w].
fn check_stacked(what: &str, st: &Tensor, rows: usize, row: Option<&Tensor>) -> [usize; 2] {
    let w = st.shape().get(1).copied().unwrap_or(0);
    assert!(
        st.rank() == 2
            && st.device() == crate::Device::Cpu
            && rows > 0
            && st.shape()[0].is_multiple_of(rows)
            && st.shape()[0] >= 2 * rows,
        "{what}: a stacked host tensor [(1 + M)·{rows}, w] with M ≥ 1, got {:?}",
        st.shape()
    );
    if let Some(b) = row {
        assert!(
            b.numel() == w && b.dtype() == st.dtype() && b.device() == crate::Device::Cpu,
            "{what}: the row must be a host row of {w} of the operand's dtype, got {:?}",
            b.shape()
        );
    }
    [rows, w]
}

impl Tensor {
    /// A hidden layer's forward pass with its tangents, from the stacked product
    /// [hWᵀ; ḣWᵀ] (`self`, [(1 + M)·rows, w]) and the layer's bias row b: with a = hWᵀ + b,
    /// [[silu(a); d ⊙ ȧ], d, e, f] — the next layer's stacked input, and silu′, silu″,
    /// silu‴ (a) ([rows, w]) from one σ per element.
    pub fn silu_jvp_forward(&self, bias: Option<&Tensor>, rows: usize) -> [Tensor; 4] {
        let p = check_stacked("silu_jvp_forward", self, rows, bias);
        let st = self.shape();
        timed_op(
            OpKind::Elementwise,
            || format!("silu_jvp_forward {st:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    forward_host::<T>(host(self), &bias_or_zeros::<T>(bias, p[1]), rows * p[1]),
                    [st, &p, &p, &p],
                ))
            },
        )
    }

    /// The top hidden layer's forward pass with its tangents, for the stacked product
    /// (`self`), the bias row and a row `v` (v = −w_L, the output weight negated):
    /// [[g; ġ], d, e, f] with g = v ⊙ d (the score's backward start) and ġ = v ⊙ e ⊙ ȧ.
    pub fn silu_top_jvp(&self, bias: Option<&Tensor>, v: &Tensor, rows: usize) -> [Tensor; 4] {
        let p = check_stacked("silu_top_jvp", self, rows, bias);
        check_stacked("silu_top_jvp", self, rows, Some(v));
        let st = self.shape();
        timed_op(
            OpKind::Elementwise,
            || format!("silu_top_jvp {st:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    top_host::<T>(host(self), &bias_or_zeros::<T>(bias, p[1]), host(v), rows * p[1]),
                    [st, &p, &p, &p],
                ))
            },
        )
    }

    /// One step of the score's backward chain with its tangents: for the stacked [u; u̇]
    /// (`self`) and the layer's kept d, e and stacked pre-activation (for ȧ),
    /// [g; ġ] = [u ⊙ d; u̇ ⊙ d + u ⊙ e ⊙ ȧ].
    pub fn silu_chain_jvp(&self, d: &Tensor, e: &Tensor, a_st: &Tensor) -> Tensor {
        check("silu_chain_jvp", &[d, e], &[self, a_st], &[]);
        let st = self.shape();
        timed_op(
            OpKind::Elementwise,
            || format!("silu_chain_jvp {st:?}"),
            || {
                by_dtype!(self.dtype(), T => Tensor::from_vec(
                    chain_host::<T>(host(self), host(d), host(e), host(a_st)),
                    st,
                ))
            },
        )
    }

    /// [`Tensor::silu_chain_jvp`] reversed for the stacked cotangents [ḡ; ġ̄] (`self`):
    /// [[ū; u̇̄], t, ǡˢ] with u̇̄ = ġ̄ ⊙ d and ǡˢ = ġ̄ ⊙ u ⊙ e per tangent ([M·rows, w]), and
    /// with A = Σₘ ġ̄ ⊙ ȧ, C = Σₘ ġ̄ ⊙ u̇: ū = ḡ ⊙ d + e ⊙ A and
    /// t = (ḡ ⊙ u + C) ⊙ e + A ⊙ u ⊙ f — the pre-activation's cotangent through d and e.
    pub fn silu_chain_jvp_backward(
        &self,
        d: &Tensor,
        e: &Tensor,
        f: &Tensor,
        u_st: &Tensor,
        a_st: &Tensor,
    ) -> [Tensor; 3] {
        let m = check(
            "silu_chain_jvp_backward",
            &[d, e, f],
            &[self, u_st, a_st],
            &[],
        );
        let (st, p) = (self.shape(), d.shape());
        let t = [m * p[0], p[1]];
        timed_op(
            OpKind::Elementwise,
            || format!("silu_chain_jvp_backward {st:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    chain_backward_host::<T>(host(self), host(d), host(e), host(f), host(u_st), host(a_st)),
                    [st, p, &t],
                ))
            },
        )
    }

    /// [`Tensor::silu_top_jvp`] reversed for the stacked cotangents [ḡ; ġ̄] (`self`), the kept
    /// d, e, f, stacked pre-activation and the row v: [[ā; ǡ], v̄, Σ_rows ā] with
    /// A = Σₘ ġ̄ ⊙ ȧ: ā = v ⊙ (ḡ ⊙ e + A ⊙ f), ǡ = ġ̄ ⊙ v ⊙ e per tangent, and the row sums
    /// v̄ = Σ_rows (ḡ ⊙ d + e ⊙ A) and Σ_rows ā `[w]`.
    pub fn silu_top_jvp_backward(
        &self,
        d: &Tensor,
        e: &Tensor,
        f: &Tensor,
        a_st: &Tensor,
        v: &Tensor,
    ) -> [Tensor; 3] {
        check("silu_top_jvp_backward", &[d, e, f], &[self, a_st], &[]);
        check_stacked("silu_top_jvp_backward", self, d.shape()[0], Some(v));
        let st = self.shape();
        let w = [d.shape()[1]];
        timed_op(
            OpKind::Elementwise,
            || format!("silu_top_jvp_backward {st:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    top_backward_host::<T>(host(self), host(d), host(e), host(f), host(a_st), host(v)),
                    [st, &w, &w],
                ))
            },
        )
    }

    /// A lower hidden layer's backward pass with its tangents, for the stacked [h̄; ḣ̄]
    /// (`self`) from the layer above, the kept d, e, stacked pre-activation and the chain's t
    /// and ǡˢ ([`Tensor::silu_chain_jvp_backward`]): [[ā; ǡ], Σ_rows ā] with
    /// ā = h̄ ⊙ d + (Σₘ ḣ̄ ⊙ ȧ) ⊙ e + t and ǡ = ḣ̄ ⊙ d + ǡˢ per tangent.
    pub fn silu_layer_jvp_backward(
        &self,
        d: &Tensor,
        e: &Tensor,
        a_st: &Tensor,
        t: &Tensor,
        ats: &Tensor,
    ) -> [Tensor; 2] {
        check("silu_layer_jvp_backward", &[d, e, t], &[self, a_st], &[ats]);
        let st = self.shape();
        let w = [d.shape()[1]];
        timed_op(
            OpKind::Elementwise,
            || format!("silu_layer_jvp_backward {st:?}"),
            || {
                by_dtype!(self.dtype(), T => tensors(
                    layer_backward_host::<T>(host(self), host(d), host(e), host(a_st), host(t), host(ats), w[0]),
                    [st, &w],
                ))
            },
        )
    }
}

#[cfg(test)]
mod tests;
