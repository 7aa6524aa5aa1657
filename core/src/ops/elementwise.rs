//! Element-wise maps, binary ops with NumPy broadcasting, comparisons and `where`.

use crate::dtype::Elem;
use crate::profile::{timed_op, OpKind};
use crate::shape::{broadcast_shapes, broadcast_strides, for_each_row, numel};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::CpuStorage;
use crate::{with_slice, with_slices2};

/// A one-input element-wise function. The numerically delicate ones use stable forms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Tanh,
    /// 1/(1+e^{-x}), evaluated without overflow for either sign.
    Sigmoid,
    /// log(1+e^x) = max(x,0) + log1p(e^{-|x|}).
    Softplus,
    /// x·sigmoid(x).
    Silu,
    /// silu′(x) = σ(x)(1 + x(1 − σ(x))).
    SiluD1,
    /// silu″(x) = σ(1 − σ)(2 + x(1 − 2σ)).
    SiluD2,
    Relu,
    Abs,
    /// -1, 0 or 1.
    Sign,
    /// 1 where x > 0, else 0 (the derivative of relu).
    Step,
    Sin,
    Cos,
    Recip,
    Square,
    /// x^p for a constant p.
    Powf(f64),
    /// x + c.
    AddScalar(f64),
    /// c·x.
    MulScalar(f64),
    /// c·x + d in one pass.
    Affine(f64, f64),
}

/// σ(x) = 1/(1 + e⁻ˣ). Branch-free and still stable: for x ≪ 0, e⁻ˣ = inf gives exactly 0.
#[inline(always)]
fn sigmoid<T: Elem>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_fast())
}

#[inline(always)]
fn softplus<T: Elem>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp_fast().ln_1p()
}

// SiLU's derivatives from x and s = σ(x); the `silu_dk(x)` forms evaluate σ here, the
// `_from` forms take a cached σ (same operations, so both give the same bits).

#[inline(always)]
fn silu_d1_from<T: Elem>(x: T, s: T) -> T {
    s * (T::one() + x * (T::one() - s))
}

#[inline(always)]
fn silu_d2_from<T: Elem>(x: T, s: T) -> T {
    let two = T::one() + T::one();
    s * (T::one() - s) * (two + x * (T::one() - two * s))
}

/// silu‴(x) = p·(q(3 + xq) − 2xp) with p = σ(1 − σ), q = 1 − 2σ.
#[inline(always)]
fn silu_d3_from<T: Elem>(x: T, s: T) -> T {
    let two = T::one() + T::one();
    let p = s * (T::one() - s);
    let q = T::one() - two * s;
    p * (q * (T::of(3.0) + x * q) - two * x * p)
}

#[inline(always)]
fn silu_d1<T: Elem>(x: T) -> T {
    silu_d1_from(x, sigmoid(x))
}

/// (silu(x), silu′(x)) sharing one σ(x); the same operations as `x * sigmoid(x)` and
/// [`silu_d1`], so either half equals the separate op bit for bit.
#[inline(always)]
fn silu_and_d1<T: Elem>(x: T) -> (T, T) {
    let s = sigmoid(x);
    (x * s, silu_d1_from(x, s))
}

#[inline(always)]
fn silu_d2<T: Elem>(x: T) -> T {
    silu_d2_from(x, sigmoid(x))
}

#[inline(always)]
fn silu_d3<T: Elem>(x: T) -> T {
    silu_d3_from(x, sigmoid(x))
}

#[inline(always)]
fn silu_and_sigmoid<T: Elem>(x: T) -> (T, T) {
    let s = sigmoid(x);
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

#[inline(always)]
fn map<T: Elem + HostVec>(src: &[T], f: impl Fn(T) -> T) -> Vec<T> {
    let mut out = crate::pool::take(src.len());
    super::fastmath::dispatch(
        #[inline(always)]
        || {
            for (o, &x) in out.iter_mut().zip(src) {
                *o = f(x);
            }
        },
    );
    out
}

fn unary_slice<T: Elem + HostVec>(src: &[T], op: UnaryOp) -> Vec<T> {
    use UnaryOp::*;
    match op {
        Neg => map(src, |x| -x),
        Exp => map(src, |x| x.exp_fast()),
        Log => map(src, |x| x.ln()),
        Sqrt => map(src, |x| x.sqrt()),
        Tanh => map(src, |x| x.tanh()),
        Sigmoid => map(src, sigmoid),
        Softplus => map(src, softplus),
        Silu => map(src, |x| x * sigmoid(x)),
        SiluD1 => map(src, silu_d1),
        SiluD2 => map(src, silu_d2),
        Relu => map(src, |x| x.max(T::zero())),
        Abs => map(src, |x| x.abs()),
        Sign => map(src, |x| {
            if x > T::zero() {
                T::one()
            } else if x < T::zero() {
                -T::one()
            } else {
                T::zero()
            }
        }),
        Step => map(src, |x| if x > T::zero() { T::one() } else { T::zero() }),
        Sin => map(src, |x| x.sin()),
        Cos => map(src, |x| x.cos()),
        Recip => map(src, |x| T::one() / x),
        Square => map(src, |x| x * x),
        Powf(p) => {
            let pt = T::of(p);
            if p == 2.0 {
                map(src, |x| x * x)
            } else if p == 1.0 {
                src.to_vec()
            } else if p == 0.5 {
                map(src, |x| x.sqrt())
            } else if p.fract() == 0.0 && p.abs() <= 16.0 {
                let n = p as i32;
                map(src, |x| x.powi(n))
            } else {
                map(src, |x| x.powf(pt))
            }
        }
        AddScalar(c) => {
            let c = T::of(c);
            map(src, |x| x + c)
        }
        MulScalar(c) => {
            let c = T::of(c);
            map(src, |x| x * c)
        }
        Affine(a, b) => {
            let (a, b) = (T::of(a), T::of(b));
            map(src, |x| a * x + b)
        }
    }
}

/// A two-input element-wise function, broadcast NumPy-style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    /// 1 where a > b else 0 (same dtype as the inputs).
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    /// a · silu′(b): SiLU's backward in one pass.
    MulSiluD1,
    /// a · silu″(b).
    MulSiluD2,
    /// a · silu‴(b).
    MulSiluD3,
}

impl BinaryOp {
    #[inline(always)]
    fn apply<T: Elem>(self, a: T, b: T) -> T {
        let flag = |c: bool| if c { T::one() } else { T::zero() };
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum => a.min(b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
            BinaryOp::Lt => flag(a < b),
            BinaryOp::Le => flag(a <= b),
            BinaryOp::Eq => flag(a == b),
            BinaryOp::MulSiluD1 => a * silu_d1(b),
            BinaryOp::MulSiluD2 => a * silu_d2(b),
            BinaryOp::MulSiluD3 => a * silu_d3(b),
        }
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

fn binary_slices<T: Elem + HostVec>(
    a: &[T],
    ashape: &[usize],
    b: &[T],
    bshape: &[usize],
    out_shape: &[usize],
    op: BinaryOp,
) -> Vec<T> {
    let mut out = crate::pool::take(numel(out_shape));
    macro_rules! run {
        ($f:expr) => {{
            let f = $f;
            super::fastmath::dispatch(
                #[inline(always)]
                || {
                    if ashape == bshape {
                        binary_row(&mut out, a, 1, b, 1, f);
                    } else if b.len() == 1 {
                        binary_row(&mut out, a, 1, b, 0, f);
                    } else if a.len() == 1 {
                        binary_row(&mut out, a, 0, b, 1, f);
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
            )
        }};
    }
    match op {
        BinaryOp::Add => run!(|x: T, y: T| x + y),
        BinaryOp::Sub => run!(|x: T, y: T| x - y),
        BinaryOp::Mul => run!(|x: T, y: T| x * y),
        BinaryOp::Div => run!(|x: T, y: T| x / y),
        BinaryOp::MulSiluD1 => run!(|x: T, y: T| x * silu_d1(y)),
        BinaryOp::MulSiluD2 => run!(|x: T, y: T| x * silu_d2(y)),
        BinaryOp::MulSiluD3 => run!(|x: T, y: T| x * silu_d3(y)),
        other => run!(move |x: T, y: T| other.apply(x, y)),
    }
    out
}

impl Tensor {
    /// Applies an element-wise function.
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::unary(self, op) {
            return t;
        }
        if op == UnaryOp::Silu
            && self.numel() >= SIGMOID_CACHE_MIN
            && self.device() == crate::Device::Cpu
        {
            return timed_op(
                OpKind::Elementwise,
                || format!("Silu keeping σ {:?}", self.shape()),
                || self.silu_keeping_sigmoid(),
            );
        }
        let label = || format!("{op:?} {:?}", self.shape());
        timed_op(OpKind::Elementwise, label, || {
            with_slice!(self, |v| Tensor::from_vec(unary_slice(v, op), self.shape()))
        })
    }

    /// silu(self) = x·σ(x), keeping σ with self's buffer for SiLU's derivative ops.
    fn silu_keeping_sigmoid(&self) -> Tensor {
        let (y, s) = self.map2(MapTwo::SiluAndSigmoid);
        self.set_sigmoid_cache(s);
        y
    }

    /// Two element-wise results of one pass over a host tensor.
    fn map2(&self, f: MapTwo) -> (Tensor, Tensor) {
        macro_rules! run {
            ($xv:expr, $f:expr) => {{
                let (xv, f) = ($xv, $f);
                let (mut y, mut z) = (crate::pool::take(xv.len()), crate::pool::take(xv.len()));
                super::fastmath::dispatch(
                    #[inline(always)]
                    || {
                        for ((y, z), &x) in y.iter_mut().zip(z.iter_mut()).zip(xv) {
                            (*y, *z) = f(x);
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
                    CpuStorage::F32(v) => run!(v, $f::<f32>),
                    CpuStorage::F64(v) => run!(v, $f::<f64>),
                }
            };
        }
        match f {
            MapTwo::SiluAndSigmoid => by_dtype!(silu_and_sigmoid),
            MapTwo::SiluAndD1 => by_dtype!(silu_and_d1),
        }
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
        let k = match op {
            BinaryOp::MulSiluD1 => 1,
            BinaryOp::MulSiluD2 => 2,
            BinaryOp::MulSiluD3 => 3,
            _ => 0,
        };
        if k > 0 && self.shape() == rhs.shape() && self.dtype() == rhs.dtype() {
            if let Some(s) = rhs.sigmoid_cache() {
                let label = || format!("{op:?} with kept σ {:?}", self.shape());
                return timed_op(OpKind::Elementwise, label, || {
                    Tensor::mul_silu_cached(&[self], rhs, s, k)
                });
            }
        }
        let label = || format!("{op:?} {:?} {:?}", self.shape(), rhs.shape());
        timed_op(OpKind::Elementwise, label, || {
            with_slices2!(format!("{op:?}"), self, rhs, |a, b| Tensor::from_vec(
                binary_slices(a, self.shape(), b, rhs.shape(), &out_shape, op),
                &out_shape
            ))
        })
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

    pub fn add(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Add)
    }
    pub fn sub(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Sub)
    }
    pub fn mul(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Mul)
    }
    pub fn div(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Div)
    }
    pub fn maximum(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Maximum)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Minimum)
    }
    /// 1 where self > rhs, else 0.
    pub fn gt(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Gt)
    }
    pub fn ge(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Ge)
    }
    pub fn lt(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Lt)
    }
    pub fn le(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Le)
    }
    pub fn eq_mask(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Eq)
    }

    pub fn neg(&self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Tensor {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn softplus(&self) -> Tensor {
        self.unary(UnaryOp::Softplus)
    }
    pub fn silu(&self) -> Tensor {
        self.unary(UnaryOp::Silu)
    }
    pub fn relu(&self) -> Tensor {
        self.unary(UnaryOp::Relu)
    }
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryOp::Abs)
    }
    pub fn sign(&self) -> Tensor {
        self.unary(UnaryOp::Sign)
    }
    pub fn sin(&self) -> Tensor {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Tensor {
        self.unary(UnaryOp::Cos)
    }
    pub fn recip(&self) -> Tensor {
        self.unary(UnaryOp::Recip)
    }
    pub fn square(&self) -> Tensor {
        self.unary(UnaryOp::Square)
    }
    pub fn powf(&self, p: f64) -> Tensor {
        self.unary(UnaryOp::Powf(p))
    }
    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::AddScalar(c))
    }
    pub fn mul_scalar(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::MulScalar(c))
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
    fn mul2_silu_d_is_one_pass_of_the_composition() {
        let mut rng = crate::Rng::new(5);
        for dtype in [crate::DType::F32, crate::DType::F64] {
            let (a, b, x) = (
                rng.normal(&[7, 33], dtype),
                rng.normal(&[7, 33], dtype),
                rng.normal(&[7, 33], dtype).mul_scalar(3.0),
            );
            for (k, op) in [
                BinaryOp::MulSiluD1,
                BinaryOp::MulSiluD2,
                BinaryOp::MulSiluD3,
            ]
            .into_iter()
            .enumerate()
            {
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
            for (k, op) in [
                BinaryOp::MulSiluD1,
                BinaryOp::MulSiluD2,
                BinaryOp::MulSiluD3,
            ]
            .into_iter()
            .enumerate()
            {
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
            let ops = [
                BinaryOp::MulSiluD1,
                BinaryOp::MulSiluD2,
                BinaryOp::MulSiluD3,
            ];
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
