//! SiLU's fast paths (crate-private): SiLU keeps σ(x) beside its input's buffer when the
//! input is large, and SiLU's derivative products read it back instead of evaluating σ again
//! (one exponential per element saved in every backward pass); fused passes compute the
//! products that SiLU's derivative rules of every order need, in one sweep over memory instead
//! of one per factor. Every fused pass does the operations of the separate ops in the same
//! order, so results are bit-identical to the composition.

use super::scalar::{
    logistic_denominators, silu_d1, silu_d1_from, silu_d2, silu_d2_from, silu_d3, silu_d3_from,
    SIGMOID_CHUNK,
};
use crate::dtype::Elem;
use crate::profile::{timed_op, OpKind};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::{BinaryOp, CpuStorage};

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

/// out = Π(factors) · silu⁽ᵏ⁾(x) from a cached s = σ(x): memory-bound instead of one
/// exponential per element. All slices have one length.
fn mul_silu_from<T: Elem + HostVec>(factors: &[&[T]], x: &[T], s: &[T], k: u8) -> Vec<T> {
    let mut out = crate::pool::take(x.len());
    macro_rules! run {
        ($d:ident) => {
            super::fastmath::dispatch(
                #[inline(always)]
                || match factors {
                    [g] => {
                        for (((o, &g), &x), &s) in out.iter_mut().zip(*g).zip(x).zip(s) {
                            *o = g * $d(x, s);
                        }
                    }
                    [a, b] => {
                        for ((((o, &a), &b), &x), &s) in
                            out.iter_mut().zip(*a).zip(*b).zip(x).zip(s)
                        {
                            *o = a * b * $d(x, s);
                        }
                    }
                    _ => unreachable!("one or two factors"),
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

    /// `self ⊙ silu⁽ᵏ⁾(rhs)` (op `MulSiluDk`) from `rhs`'s kept σ, when it has one and the
    /// operands agree in shape and dtype; `None` sends the op to its ordinary loop.
    pub(crate) fn mul_silu_with_kept_sigmoid(&self, rhs: &Tensor, op: BinaryOp) -> Option<Tensor> {
        let k = match op {
            BinaryOp::MulSiluD1 => 1,
            BinaryOp::MulSiluD2 => 2,
            BinaryOp::MulSiluD3 => 3,
            _ => return None,
        };
        if self.shape() != rhs.shape() || self.dtype() != rhs.dtype() {
            return None;
        }
        let s = rhs.sigmoid_cache()?;
        let label = || format!("{op:?} with kept σ {:?}", self.shape());
        Some(timed_op(OpKind::Elementwise, label, || {
            Tensor::mul_silu_cached(&[self], rhs, s, k)
        }))
    }

    /// Π(factors) ⊙ silu⁽ᵏ⁾(x) with x's cached σ `s`; every operand host-resident and of x's
    /// shape and dtype.
    fn mul_silu_cached(factors: &[&Tensor], x: &Tensor, s: &Tensor, k: u8) -> Tensor {
        macro_rules! run {
            ($v:ident, $t:ty) => {{
                fn slice(t: &Tensor) -> &[$t] {
                    match t.cpu() {
                        CpuStorage::$v(v) => v,
                        _ => unreachable!("dtypes checked by the caller"),
                    }
                }
                let fs: Vec<&[$t]> = factors.iter().map(|&t| slice(t)).collect();
                Tensor::from_vec(mul_silu_from(&fs, slice(x), slice(s), k), x.shape())
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
        if let Some(s) = x.sigmoid_cache() {
            let label = || format!("mul2_silu_d{k} with kept σ {:?}", x.shape());
            return timed_op(OpKind::Elementwise, label, || {
                Tensor::mul_silu_cached(&[self, b], x, s, k)
            });
        }
        let label = || format!("mul2_silu_d{k} {:?}", x.shape());
        timed_op(OpKind::Elementwise, label, || {
            macro_rules! run {
                ($av:expr, $bv:expr, $xv:expr) => {{
                    let (av, bv, xv) = ($av, $bv, $xv);
                    let mut out = crate::pool::take(av.len());
                    macro_rules! body {
                        ($d:ident) => {
                            super::fastmath::dispatch(
                                #[inline(always)]
                                || {
                                    for (((o, &p), &q), &t) in
                                        out.iter_mut().zip(av).zip(bv).zip(xv)
                                    {
                                        *o = p * q * $d(t);
                                    }
                                },
                            )
                        };
                    }
                    match k {
                        1 => body!(silu_d1),
                        2 => body!(silu_d2),
                        _ => body!(silu_d3),
                    }
                    Tensor::from_vec(out, self.shape())
                }};
            }
            match (self.cpu(), b.cpu(), x.cpu()) {
                (CpuStorage::F32(av), CpuStorage::F32(bv), CpuStorage::F32(xv)) => run!(av, bv, xv),
                (CpuStorage::F64(av), CpuStorage::F64(bv), CpuStorage::F64(xv)) => run!(av, bv, xv),
                _ => unreachable!("dtypes checked above"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{BinaryOp, Tensor, UnaryOp};

    /// a ⊙ silu⁽ᵏ⁾(x) for k = 1, 2, 3.
    const MUL_SILU_D: [BinaryOp; 3] = [
        BinaryOp::MulSiluD1,
        BinaryOp::MulSiluD2,
        BinaryOp::MulSiluD3,
    ];

    #[test]
    fn mul2_silu_d_is_one_pass_of_the_composition() {
        let mut rng = crate::Rng::new(5);
        for dtype in [crate::DType::F32, crate::DType::F64] {
            let (a, b, x) = (
                rng.normal(&[7, 33], dtype),
                rng.normal(&[7, 33], dtype),
                rng.normal(&[7, 33], dtype).mul_scalar(3.0),
            );
            for (k, op) in MUL_SILU_D.into_iter().enumerate() {
                let want = a.mul(&b).binary(&x, op);
                let got = a.mul2_silu_d(&b, &x, k as u8 + 1);
                let tol = if dtype == crate::DType::F32 {
                    1e-6
                } else {
                    1e-15
                };
                assert!(
                    got.max_abs_diff(&want) <= tol * (1.0 + want.max_abs()),
                    "k = {}",
                    k + 1
                );
                // broadcast operands take the composed path
                let row = b.narrow(0, 0, 1);
                let want = a.mul(&row).binary(&x, op);
                assert_eq!(
                    a.mul2_silu_d(&row, &x, k as u8 + 1).to_vec_f64(),
                    want.to_vec_f64()
                );
            }
        }
    }

    #[test]
    fn silu_keeps_sigmoid_and_derivatives_read_it_bit_for_bit() {
        let mut rng = crate::Rng::new(8);
        for dtype in [crate::DType::F32, crate::DType::F64] {
            let x = rng.normal(&[64, 128], dtype).mul_scalar(4.0);
            let (g, h) = (rng.normal(&[64, 128], dtype), rng.normal(&[64, 128], dtype));
            let fresh = x.mul_scalar(1.0); // same values, a buffer with no σ kept
            assert!(x.sigmoid_cache().is_none());
            let y = x.silu();
            assert_eq!(y.to_vec_f64(), fresh.unary(UnaryOp::Silu).to_vec_f64());
            let s = x.sigmoid_cache().expect("SiLU keeps σ of a large input");
            assert_eq!(s.to_vec_f64(), fresh.sigmoid().to_vec_f64());
            for (k, op) in MUL_SILU_D.into_iter().enumerate() {
                assert_eq!(
                    g.binary(&x, op).to_vec_f64(),
                    g.binary(&fresh, op).to_vec_f64()
                );
                let k = k as u8 + 1;
                assert_eq!(
                    g.mul2_silu_d(&h, &x, k).to_vec_f64(),
                    g.mul2_silu_d(&h, &fresh, k).to_vec_f64()
                );
            }
            // writing through data_mut drops the cache: derivatives see the new values
            let mut x = x;
            drop(y);
            match dtype {
                crate::DType::F32 => x.data_mut::<f32>()[0] = 1.5,
                crate::DType::F64 => x.data_mut::<f64>()[0] = 1.5,
            }
            assert!(x.sigmoid_cache().is_none());
            let want = g.binary(&x.mul_scalar(1.0), BinaryOp::MulSiluD1);
            assert_eq!(
                g.binary(&x, BinaryOp::MulSiluD1).to_vec_f64(),
                want.to_vec_f64()
            );
        }
        // small tensors are not worth a cache
        let t = Tensor::ones(&[3, 4], crate::DType::F32);
        let _ = t.silu();
        assert!(t.sigmoid_cache().is_none());
    }

    #[test]
    fn silu_chain_grads_are_the_separate_ops() {
        let mut rng = crate::Rng::new(13);
        for dtype in [crate::DType::F32, crate::DType::F64] {
            let t = |r: &mut crate::Rng| r.normal(&[40, 128], dtype);
            let (c, a, b, x) = (
                t(&mut rng),
                t(&mut rng),
                t(&mut rng),
                t(&mut rng).mul_scalar(3.0),
            );
            assert!(
                Tensor::silu_chain_grads(&c, &a, None, &x, 1, [true, false, true]).is_none(),
                "without a kept σ the separate ops run"
            );
            let _ = x.silu(); // keeps σ
            let ops = MUL_SILU_D;
            for k in 1..=2u8 {
                // out = a ⊙ silu⁽ᵏ⁾(x)
                let [g0, g1, g2] =
                    Tensor::silu_chain_grads(&c, &a, None, &x, k, [true, false, true]).unwrap();
                assert!(g1.is_none());
                let bits = |t: &Tensor| t.to_vec_f64();
                assert_eq!(bits(&g0.unwrap()), bits(&c.binary(&x, ops[k as usize - 1])));
                assert_eq!(
                    bits(&g2.unwrap()),
                    bits(&c.mul(&a).binary(&x, ops[k as usize]))
                );
                // out = a ⊙ b ⊙ silu⁽ᵏ⁾(x)
                let [g0, g1, g2] =
                    Tensor::silu_chain_grads(&c, &a, Some(&b), &x, k, [true; 3]).unwrap();
                assert_eq!(bits(&g0.unwrap()), bits(&c.mul2_silu_d(&b, &x, k)));
                assert_eq!(bits(&g1.unwrap()), bits(&c.mul2_silu_d(&a, &x, k)));
                assert_eq!(
                    bits(&g2.unwrap()),
                    bits(&c.mul(&a).mul2_silu_d(&b, &x, k + 1))
                );
            }
            // a partial need or a third order goes to the separate ops
            assert!(
                Tensor::silu_chain_grads(&c, &a, Some(&b), &x, 1, [true, false, true]).is_none()
            );
            assert!(Tensor::silu_chain_grads(&c, &a, None, &x, 3, [true, false, true]).is_none());
        }
    }
}
