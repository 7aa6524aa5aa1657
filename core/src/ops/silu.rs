//! SiLU's fast paths (crate-private): SiLU keeps σ(x) beside its input's buffer when the
//! input is large, and SiLU's derivative products read it back instead of evaluating σ again
//! (one exponential per element saved in every backward pass); fused passes compute the
//! products that SiLU's derivative rules of every order need, in one sweep over memory instead
//! of one per factor. Every fused pass does the operations of the separate ops in the same
//! order, so results are bit-identical to the composition.

use super::scalar::{
    logistic_denominators, silu_d1_from, silu_d2_from, silu_d3_from, SIGMOID_CHUNK,
};
use crate::dtype::Elem;
use crate::profile::{timed_op, OpKind};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::{BinaryOp, CpuStorage};

type Range = std::ops::Range<usize>;

/// (silu(x), silu′(x)) from s = σ(x): the operations of `x * sigmoid(x)` and [`silu_d1`]
/// after σ, so either half equals the separate op bit for bit.
#[inline(always)]
fn silu_and_d1_from<T: Elem>(x: T, s: T) -> (T, T) {
    (x * s, silu_d1_from(x, s))
}

/// (silu(x), σ(x)) from s = σ(x).
#[inline(always)]
fn silu_and_sigmoid_from<T: Elem>(x: T, s: T) -> (T, T) {
    (x * s, s)
}

/// The two-output element-wise passes.
#[derive(Clone, Copy)]
enum MapTwo {
    SiluAndSigmoid,
    SiluAndD1,
}

/// Tensors at least this large keep σ when SiLU computes it (smaller ones are cheap to redo).
const SIGMOID_CACHE_MIN: usize = 4096;

impl Tensor {
    /// silu(self) = x·σ(x), keeping σ with self's buffer for SiLU's derivative ops, when self
    /// is a large host tensor; `None` sends SiLU to its ordinary loop.
    pub(crate) fn silu_keeping_sigmoid(&self) -> Option<Tensor> {
        if self.numel() < SIGMOID_CACHE_MIN || self.device() != crate::Device::Cpu {
            return None;
        }
        let label = || format!("Silu keeping σ {:?}", self.shape());
        Some(timed_op(OpKind::Elementwise, label, || {
            let (y, s) = self.map2(MapTwo::SiluAndSigmoid);
            self.set_sigmoid_cache(s);
            y
        }))
    }

    /// Two element-wise results of one σ pass over a host tensor, in chunks: σ's denominators
    /// first, then the outputs from σ ([`logistic_denominators`]).
    fn map2(&self, f: MapTwo) -> (Tensor, Tensor) {
        macro_rules! run {
            ($xv:expr, $f:expr, $t:ty) => {{
                let (xv, f) = ($xv, $f);
                let (mut y, mut z) = (crate::pool::take(xv.len()), crate::pool::take(xv.len()));
                super::fastmath::dispatch(
                    #[inline(always)]
                    || {
                        const C: usize = SIGMOID_CHUNK;
                        let mut den = [0.0 as $t; C];
                        let chunks = y.chunks_mut(C).zip(z.chunks_mut(C));
                        for ((y, z), xv) in chunks.zip(xv.chunks(C)) {
                            let len = xv.len();
                            let (y, z, den) = (&mut y[..len], &mut z[..len], &mut den[..len]);
                            logistic_denominators(xv, den);
                            for (((y, z), &x), &den) in
                                y.iter_mut().zip(z.iter_mut()).zip(xv).zip(den.iter())
                            {
                                (*y, *z) = f(x, (1.0 as $t) / den);
                            }
                        }
                    },
                );
                (
                    Tensor::from_vec(y, self.shape()),
                    Tensor::from_vec(z, self.shape()),
                )
            }};
        }
        macro_rules! by_dtype {
            ($f:ident) => {
                match self.cpu() {
                    CpuStorage::F32(v) => run!(v, $f::<f32>, f32),
                    CpuStorage::F64(v) => run!(v, $f::<f64>, f64),
                }
            };
        }
        match f {
            MapTwo::SiluAndSigmoid => by_dtype!(silu_and_sigmoid_from),
            MapTwo::SiluAndD1 => by_dtype!(silu_and_d1_from),
        }
    }

    /// `self ⊙ silu⁽ᵏ⁾(rhs)` (op `MulSiluDk`) by [`mul_silu_host`], when both are host tensors
    /// of one dtype and self has rhs's shape (reading rhs's kept σ if it has one) or is one
    /// row of rhs's width, at least [`MIN_CHUNKED_ROW`], that repeats over its rows (a layer's
    /// weights: −w_L ⊙ silu′(a_L) in an SiLU MLP's score); `None` sends the op to its
    /// ordinary loop.
    pub(crate) fn mul_silu_d(&self, rhs: &Tensor, op: BinaryOp) -> Option<Tensor> {
        let k = match op {
            BinaryOp::MulSiluD1 => 1,
            BinaryOp::MulSiluD2 => 2,
            BinaryOp::MulSiluD3 => 3,
            _ => return None,
        };
        let row_ok = || {
            let n = self.numel();
            n >= MIN_CHUNKED_ROW
                && super::elementwise::row_over_rows(self.shape(), rhs.shape(), rhs.shape())
                    == Some(n)
        };
        let ok = self.dtype() == rhs.dtype()
            && self.device() == crate::Device::Cpu
            && rhs.device() == crate::Device::Cpu
            && (self.shape() == rhs.shape() || row_ok());
        if !ok {
            return None;
        }
        let kept = rhs.sigmoid_cache().filter(|_| self.shape() == rhs.shape());
        let with = if kept.is_some() { " with kept σ" } else { "" };
        let label = || format!("{op:?}{with} {:?} {:?}", self.shape(), rhs.shape());
        Some(timed_op(OpKind::Elementwise, label, || {
            Tensor::mul_silu(&[self], rhs, kept, k)
        }))
    }

    /// Π(factors) ⊙ silu⁽ᵏ⁾(x) by [`mul_silu_host`]: factors of one length w that repeat over
    /// x's rows of w (w = x's size: no repeat), x's kept σ `kept` if given; host tensors of
    /// x's dtype.
    fn mul_silu(factors: &[&Tensor], x: &Tensor, kept: Option<&Tensor>, k: u8) -> Tensor {
        macro_rules! run {
            ($v:ident, $t:ty) => {{
                fn slice(t: &Tensor) -> &[$t] {
                    match t.cpu() {
                        CpuStorage::$v(v) => v,
                        _ => unreachable!("dtypes checked by the caller"),
                    }
                }
                let fs: Vec<&[$t]> = factors.iter().map(|&t| slice(t)).collect();
                let out = mul_silu_host(&fs, slice(x), kept.map(slice), k);
                Tensor::from_vec(out, x.shape())
            }};
        }
        match x.cpu() {
            CpuStorage::F32(_) => run!(F32, f32),
            CpuStorage::F64(_) => run!(F64, f64),
        }
    }

    /// The input cotangents of out = a ⊙ b ⊙ silu⁽ᵏ⁾(x) (b absent: out = a ⊙ silu⁽ᵏ⁾(x)) for the
    /// cotangent c, in one pass: [c·b·silu⁽ᵏ⁾, c·a·silu⁽ᵏ⁾, c·a·b·silu⁽ᵏ⁺¹⁾] (the middle one
    /// only with b). Reverse mode's last pass evaluates SiLU's derivative rules exactly so, and
    /// separately they read c, a, b, x and σ up to three times over. Same operations as the
    /// separate ops, so the same bits. `None` (use the separate ops) unless every cotangent is
    /// needed, x keeps σ ([`Tensor::silu`] on a large input), every operand has x's shape and
    /// dtype on the host, and k ≤ 2.
    pub fn silu_chain_grads(
        c: &Tensor,
        a: &Tensor,
        b: Option<&Tensor>,
        x: &Tensor,
        k: u8,
        need: [bool; 3],
    ) -> Option<[Option<Tensor>; 3]> {
        let sigma = x.sigmoid_cache()?;
        let ops: Vec<&Tensor> = [Some(c), Some(a), b, Some(x)]
            .into_iter()
            .flatten()
            .collect();
        let ok = (1..=2).contains(&k)
            && need[0]
            && need[2]
            && (need[1] || b.is_none())
            && ops.iter().all(|t| {
                t.shape() == x.shape() && t.dtype() == x.dtype() && t.device() == crate::Device::Cpu
            });
        if !ok {
            return None;
        }
        let label = || format!("silu_chain_grads d{k} {:?}", x.shape());
        Some(timed_op(OpKind::Elementwise, label, || {
            macro_rules! run {
                ($v:ident, $t:ty, $d:ident, $dn:ident) => {{
                    fn sl(t: &Tensor) -> &[$t] {
                        match t.cpu() {
                            CpuStorage::$v(v) => v,
                            _ => unreachable!("dtypes checked above"),
                        }
                    }
                    let n = x.numel();
                    let (cv, av, xv, sv) = (sl(c), sl(a), sl(x), sl(sigma));
                    let mut o0: Vec<$t> = crate::pool::take(n);
                    let mut o2: Vec<$t> = crate::pool::take(n);
                    let o1 = match b {
                        None => {
                            super::fastmath::dispatch(
                                #[inline(always)]
                                || {
                                    let it = o0.iter_mut().zip(o2.iter_mut());
                                    for ((((g0, g2), &c), &a), (&x, &s)) in
                                        it.zip(cv).zip(av).zip(xv.iter().zip(sv))
                                    {
                                        *g0 = c * $d(x, s);
                                        *g2 = c * a * $dn(x, s);
                                    }
                                },
                            );
                            None
                        }
                        Some(b) => {
                            let bv = sl(b);
                            let mut o1: Vec<$t> = crate::pool::take(n);
                            super::fastmath::dispatch(
                                #[inline(always)]
                                || {
                                    let it = o0.iter_mut().zip(o1.iter_mut()).zip(o2.iter_mut());
                                    let ins = cv.iter().zip(av).zip(bv).zip(xv.iter().zip(sv));
                                    for (((g0, g1), g2), (((&c, &a), &b), (&x, &s))) in it.zip(ins)
                                    {
                                        let d = $d(x, s);
                                        *g0 = c * b * d;
                                        *g1 = c * a * d;
                                        *g2 = c * a * b * $dn(x, s);
                                    }
                                },
                            );
                            Some(Tensor::from_vec(o1, x.shape()))
                        }
                    };
                    [
                        Some(Tensor::from_vec(o0, x.shape())),
                        o1,
                        Some(Tensor::from_vec(o2, x.shape())),
                    ]
                }};
            }
            match (x.cpu(), k) {
                (CpuStorage::F32(_), 1) => run!(F32, f32, silu_d1_from, silu_d2_from),
                (CpuStorage::F32(_), _) => run!(F32, f32, silu_d2_from, silu_d3_from),
                (CpuStorage::F64(_), 1) => run!(F64, f64, silu_d1_from, silu_d2_from),
                (CpuStorage::F64(_), _) => run!(F64, f64, silu_d2_from, silu_d3_from),
            }
        }))
    }

    /// (silu(x), silu′(x)) from one pass and one exponential per element: with s = σ(x),
    /// silu = x·s and silu′ = s(1 + x(1 − s)). A hand-written backward pass (the closed-form
    /// score of an SiLU MLP) keeps silu′ from the forward pass instead of recomputing σ.
    pub fn silu_and_d1(&self) -> (Tensor, Tensor) {
        if self.device() != crate::Device::Cpu {
            return (
                self.silu(),
                self.ones_like().binary(self, BinaryOp::MulSiluD1),
            );
        }
        timed_op(
            OpKind::Elementwise,
            || format!("silu_and_d1 {:?}", self.shape()),
            || self.map2(MapTwo::SiluAndD1),
        )
    }

    /// self ⊙ b ⊙ silu⁽ᵏ⁾(x) for k ∈ {1, 2, 3}, broadcasting. When the three shapes agree (and
    /// live on the host) it is one pass; second- and third-order SiLU rules produce exactly this
    /// product, and the separate multiply was a full extra pass over a batch-sized tensor.
    pub fn mul2_silu_d(&self, b: &Tensor, x: &Tensor, k: u8) -> Tensor {
        let op = match k {
            1 => BinaryOp::MulSiluD1,
            2 => BinaryOp::MulSiluD2,
            3 => BinaryOp::MulSiluD3,
            _ => panic!("mul2_silu_d: order {k} (1, 2 or 3)"),
        };
        let fusable = self.shape() == b.shape()
            && self.shape() == x.shape()
            && self.dtype() == b.dtype()
            && self.dtype() == x.dtype()
            && [self, b, x]
                .iter()
                .all(|t| t.device() == crate::Device::Cpu);
        if !fusable {
            return self.mul(b).binary(x, op);
        }
        let kept = x.sigmoid_cache();
        let with = if kept.is_some() { " with kept σ" } else { "" };
        let label = || format!("mul2_silu_d{k}{with} {:?}", x.shape());
        timed_op(OpKind::Elementwise, label, || {
            Tensor::mul_silu(&[self, b], x, kept, k)
        })
    }
}

/// Rows narrower than this take the broadcast op's own loop: chunks of a few elements would
/// cost more in loop overhead than σ's two loops save.
const MIN_CHUNKED_ROW: usize = 64;

/// out = Π(factors) · silu⁽ᵏ⁾(x) for one or two factors of one length w that repeat over x's
/// rows of w, from x's kept σ `kept` (all of x's length: memory-bound) or evaluating σ per
/// chunk of a row in the loops of [`logistic_denominators`]; the operations of
/// `a * silu_dk(x)` (and `a * b * silu_dk(x)`) either way, so the same bits.
fn mul_silu_host<T: Elem + HostVec>(
    factors: &[&[T]],
    x: &[T],
    kept: Option<&[T]>,
    k: u8,
) -> Vec<T> {
    let w = factors[0].len();
    debug_assert!(factors.iter().all(|f| f.len() == w) && x.len().is_multiple_of(w.max(1)));
    debug_assert!(kept.is_none_or(|s| s.len() == x.len() && w == x.len()));
    let mut out = crate::pool::take(x.len());
    if x.is_empty() {
        // nothing to do, and rows of w = 0 would be chunks of 0
        return out;
    }
    macro_rules! run {
        ($d:ident) => {
            super::fastmath::dispatch(
                #[inline(always)]
                || {
                    // the division by σ's denominator stays in the loop that uses σ: a
                    // separate pass for it was 10% slower
                    match kept {
                        Some(s) => for_each_chunk(
                            &mut out,
                            x,
                            w,
                            #[inline(always)]
                            |o, span, x| {
                                let s = &s[span.clone()];
                                mul_silu_chunk(
                                    o,
                                    factors,
                                    span,
                                    x,
                                    s,
                                    #[inline(always)]
                                    |s| s,
                                    $d,
                                );
                            },
                        ),
                        None => {
                            let mut den = [T::zero(); SIGMOID_CHUNK];
                            for_each_chunk(
                                &mut out,
                                x,
                                w,
                                #[inline(always)]
                                |o, span, x| {
                                    let den = &mut den[..x.len()];
                                    logistic_denominators(x, den);
                                    mul_silu_chunk(
                                        o,
                                        factors,
                                        span,
                                        x,
                                        den,
                                        #[inline(always)]
                                        |den| T::one() / den,
                                        $d,
                                    );
                                },
                            )
                        }
                    }
                },
            )
        };
    }
    match k {
        1 => run!(silu_d1_from),
        2 => run!(silu_d2_from),
        _ => run!(silu_d3_from),
    }
    out
}

/// f(out chunk, its span within the row, x chunk) for every chunk of [`SIGMOID_CHUNK`] of
/// every row of w.
#[inline(always)]
fn for_each_chunk<T>(out: &mut [T], x: &[T], w: usize, mut f: impl FnMut(&mut [T], Range, &[T])) {
    const C: usize = SIGMOID_CHUNK;
    for (out, x) in out.chunks_mut(w).zip(x.chunks(w)) {
        for (j0, (o, x)) in out.chunks_mut(C).zip(x.chunks(C)).enumerate() {
            f(o, j0 * C..j0 * C + x.len(), x);
        }
    }
}

/// One chunk of [`mul_silu_host`]: o = Π(factors[span]) · d(x, sigma(v)) for v in `vs`.
#[inline(always)]
fn mul_silu_chunk<T: Elem>(
    o: &mut [T],
    factors: &[&[T]],
    span: Range,
    x: &[T],
    vs: &[T],
    sigma: impl Fn(T) -> T,
    d: impl Fn(T, T) -> T,
) {
    let xs = x.iter().zip(vs);
    match factors {
        [a] => {
            for ((o, &a), (&x, &v)) in o.iter_mut().zip(&a[span]).zip(xs) {
                *o = a * d(x, sigma(v));
            }
        }
        [a, b] => {
            let ab = a[span.clone()].iter().zip(&b[span]);
            for ((o, (&a, &b)), (&x, &v)) in o.iter_mut().zip(ab).zip(xs) {
                *o = a * b * d(x, sigma(v));
            }
        }
        _ => unreachable!("one or two factors"),
    }
}

#[cfg(test)]
mod tests;
