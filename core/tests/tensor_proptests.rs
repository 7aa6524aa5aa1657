//! Property tests of `Tensor` kernels against naive index-by-index references: broadcasting
//! binary ops and `where_`, reductions, permute, narrow/concat, matmul with transpose flags,
//! the index_select/index_add adjoint pair, and the split-invariance of `Rng` draws.
//!
//! Every property is checked on every device ([`for_each_device!`]): the CPU always, the GPU
//! when ebm-core has its `cuda` feature and a driver answers.

use ebm_core::{for_each_device, BinaryOp, DType, Device, Rng, Tensor};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::ops::RangeInclusive;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------------------------------------
// Strategies and naive index arithmetic
// ------------------------------------------------------------------------------------------------

/// A shape with rank in `ranks` and dims 1–4.
fn shape(ranks: RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    ranks.prop_flat_map(|r| vec(1usize..=4, r))
}

/// Mostly uniform values, with a share of small integers so that ties and exact zeros occur.
fn elem() -> impl Strategy<Value = f64> {
    prop_oneof![3 => -3.0f64..3.0, 1 => (-2i32..=2).prop_map(f64::from)]
}

fn values(shape: Vec<usize>) -> impl Strategy<Value = Tensor> {
    let n = numel(&shape);
    vec(elem(), n).prop_map(move |v| Tensor::from_vec(v, &shape))
}

fn tensor(ranks: RangeInclusive<usize>) -> impl Strategy<Value = Tensor> {
    shape(ranks).prop_flat_map(values)
}

/// A shape that broadcasts to `base`: some leading axes dropped, some others set to 1.
fn broadcast_of(base: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let r = base.len();
    (
        prop_oneof![Just(0), 0..=r],
        vec(prop::bool::weighted(0.3), r),
    )
        .prop_map(move |(drop, ones)| {
            (drop..r)
                .map(|i| if ones[i] { 1 } else { base[i] })
                .collect()
        })
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The multi-index of flat position `flat` in a row-major `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for i in (0..shape.len()).rev() {
        idx[i] = flat % shape[i];
        flat /= shape[i];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// The flat position in an operand of `shape` read at output multi-index `out` (NumPy rules:
/// leading output axes dropped, size-1 axes pinned at 0).
fn broadcast_flat(out: &[usize], shape: &[usize]) -> usize {
    let off = out.len() - shape.len();
    let idx: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { out[off + i] })
        .collect();
    ravel(&idx, shape)
}

/// The NumPy broadcast of two shapes (they are known to be compatible here).
fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = (i + a.len()).checked_sub(n).map_or(1, |j| a[j]);
            let db = (i + b.len()).checked_sub(n).map_or(1, |j| b[j]);
            da.max(db)
        })
        .collect()
}

type Naive = fn(f64, f64) -> f64;

/// Each binary op with its scalar definition. The plain ops must agree exactly (an f32 op
/// computed in f64 and rounded gives the same f32); the fused SiLU-derivative products are
/// compared to 1e-14 (f64) or 1e-5 (f32) of 1 + |reference|.
const BINARY_OPS: [(BinaryOp, Naive, f64, f64); 14] = [
    (BinaryOp::Add, |a, b| a + b, 0.0, 0.0),
    (BinaryOp::Sub, |a, b| a - b, 0.0, 0.0),
    (BinaryOp::Mul, |a, b| a * b, 0.0, 0.0),
    (BinaryOp::Div, |a, b| a / b, 0.0, 0.0),
    (BinaryOp::Maximum, f64::max, 0.0, 0.0),
    (BinaryOp::Minimum, f64::min, 0.0, 0.0),
    (BinaryOp::Gt, |a, b| flag(a > b), 0.0, 0.0),
    (BinaryOp::Ge, |a, b| flag(a >= b), 0.0, 0.0),
    (BinaryOp::Lt, |a, b| flag(a < b), 0.0, 0.0),
    (BinaryOp::Le, |a, b| flag(a <= b), 0.0, 0.0),
    (BinaryOp::Eq, |a, b| flag(a == b), 0.0, 0.0),
    (BinaryOp::MulSiluD1, |g, x| g * silu_d1(x), 1e-14, 1e-5),
    (BinaryOp::MulSiluD2, |g, x| g * silu_d2(x), 1e-14, 1e-5),
    (BinaryOp::MulSiluD3, |g, x| g * silu_d3(x), 1e-14, 1e-5),
];

/// silu‴ = 3σ″ + xσ‴ (silu = xσ), with σ′ = σ(1−σ), σ″ = σ′(1−2σ), σ‴ = σ″(1−2σ) − 2σ′²: a
/// different route from the kernel's closed form.
fn silu_d3(x: f64) -> f64 {
    let s = sigmoid(x);
    let d1 = s * (1.0 - s);
    let d2 = d1 * (1.0 - 2.0 * s);
    let d3 = d2 * (1.0 - 2.0 * s) - 2.0 * d1 * d1;
    3.0 * d2 + x * d3
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// silu′(x) = σ(1 + x(1 − σ)).
fn silu_d1(x: f64) -> f64 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

/// silu″(x) = σ(1 − σ)(2 + x(1 − 2σ)).
fn silu_d2(x: f64) -> f64 {
    let s = sigmoid(x);
    s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))
}

fn flag(c: bool) -> f64 {
    if c {
        1.0
    } else {
        0.0
    }
}

/// Equal as floats, or both NaN.
fn same(x: f64, y: f64) -> bool {
    x == y || (x.is_nan() && y.is_nan())
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.to_vec_f64()
        .iter()
        .zip(b.to_vec_f64())
        .map(|(x, y)| x * y)
        .sum()
}

/// Σ|aᵢbᵢ|: the scale against which rounding in a dot product is measured.
fn abs_dot(a: &Tensor, b: &Tensor) -> f64 {
    a.to_vec_f64()
        .iter()
        .zip(b.to_vec_f64())
        .map(|(x, y)| (x * y).abs())
        .sum()
}

// ------------------------------------------------------------------------------------------------
// Element-wise
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Every binary op, in f64 and f32, equals the op applied at each output index to the
    /// broadcast operands' elements (exactly: f32 ops computed in f64 round to the same f32).
    #[test]
    fn broadcasting_binary_ops_match_naive(
        (a, b) in shape(0..=4)
            .prop_flat_map(|s| (broadcast_of(s.clone()), broadcast_of(s)))
            .prop_flat_map(|(sa, sb)| (values(sa), values(sb))),
    ) {
        let out_shape = broadcast_shape(a.shape(), b.shape());
        let (av, bv) = (a.to_vec_f64(), b.to_vec_f64());
        for_each_device!(|dev| for dtype in [DType::F64, DType::F32] {
            let (ac, bc) = (a.cast(dtype).to_device(dev), b.cast(dtype).to_device(dev));
            // the f32 reference reads the rounded inputs
            let (av, bv) = if dtype == DType::F32 { (ac.to_vec_f64(), bc.to_vec_f64()) } else { (av.clone(), bv.clone()) };
            for (op, naive, tol64, tol32) in BINARY_OPS {
                let tol = if dtype == DType::F64 { tol64 } else { tol32 };
                let got = ac.binary(&bc, op);
                prop_assert_eq!(got.shape(), out_shape.as_slice(), "{:?}", op);
                prop_assert_eq!(got.dtype(), dtype);
                let got = got.to_vec_f64();
                for (flat, &g) in got.iter().enumerate() {
                    let idx = unravel(flat, &out_shape);
                    let x = av[broadcast_flat(&idx, a.shape())];
                    let y = bv[broadcast_flat(&idx, b.shape())];
                    let mut want = naive(x, y);
                    if dtype == DType::F32 && tol == 0.0 {
                        want = want as f32 as f64;
                    }
                    prop_assert!(
                        same(g, want) || (g - want).abs() <= tol * (1.0 + want.abs()),
                        "{:?} {} on {:?}, {:?} with {:?} at {:?}: {} vs {}",
                        op, dtype, dev, a.shape(), b.shape(), idx, g, want
                    );
                }
            }
        });
    }

    /// `where_(cond, a, b)` with all three broadcast together.
    #[test]
    fn where_matches_naive(
        (c, a, b) in shape(0..=4)
            .prop_flat_map(|s| (broadcast_of(s.clone()), broadcast_of(s.clone()), broadcast_of(s)))
            .prop_flat_map(|(sc, sa, sb)| {
                let n = numel(&sc);
                (
                    vec(prop_oneof![Just(0.0), Just(1.0), Just(-2.5)], n)
                        .prop_map(move |v| Tensor::from_vec(v, &sc)),
                    values(sa),
                    values(sb),
                )
            }),
    ) {
        let out_shape = broadcast_shape(&broadcast_shape(c.shape(), a.shape()), b.shape());
        let (cv, av, bv) = (c.to_vec_f64(), a.to_vec_f64(), b.to_vec_f64());
        for_each_device!(|dev| {
            let got = Tensor::where_(&c.to_device(dev), &a.to_device(dev), &b.to_device(dev));
            prop_assert_eq!(got.shape(), out_shape.as_slice());
            for (flat, &g) in got.to_vec_f64().iter().enumerate() {
                let idx = unravel(flat, &out_shape);
                let want = if cv[broadcast_flat(&idx, c.shape())] != 0.0 {
                    av[broadcast_flat(&idx, a.shape())]
                } else {
                    bv[broadcast_flat(&idx, b.shape())]
                };
                prop_assert_eq!(g, want, "at {:?} on {:?}", idx, dev);
            }
        });
    }

    /// broadcast_to materialises the naive broadcast, and sum_to is its adjoint:
    /// ⟨broadcast_to(x), y⟩ = ⟨x, sum_to(y)⟩.
    #[test]
    fn broadcast_to_and_sum_to_are_adjoint(
        (x, y) in shape(0..=4).prop_flat_map(|s| (broadcast_of(s.clone()).prop_flat_map(values), values(s))),
    ) {
        let xv = x.to_vec_f64();
        for_each_device!(|dev| {
            let (x, y) = (x.to_device(dev), y.to_device(dev));
            let bx = x.broadcast_to(y.shape());
            prop_assert_eq!(bx.shape(), y.shape());
            for (flat, &g) in bx.to_vec_f64().iter().enumerate() {
                let idx = unravel(flat, y.shape());
                prop_assert_eq!(g, xv[broadcast_flat(&idx, x.shape())], "on {:?}", dev);
            }
            let sy = y.sum_to(x.shape());
            prop_assert_eq!(sy.shape(), x.shape());
            let (lhs, rhs) = (dot(&bx, &y), dot(&x, &sy));
            prop_assert!(
                (lhs - rhs).abs() <= 1e-12 * (1.0 + abs_dot(&bx, &y)),
                "{} vs {} on {:?}", lhs, rhs, dev
            );
        });
    }
}

// ------------------------------------------------------------------------------------------------
// Reductions
// ------------------------------------------------------------------------------------------------

/// Reduces `x` over `axes` by index loops, in the keepdim shape.
fn naive_reduce(
    x: &Tensor,
    axes: &[usize],
    init: f64,
    f: impl Fn(f64, f64) -> f64,
) -> (Vec<f64>, Vec<usize>) {
    let kshape: Vec<usize> = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let mut out = vec![init; numel(&kshape)];
    for (flat, v) in x.to_vec_f64().into_iter().enumerate() {
        let mut idx = unravel(flat, x.shape());
        for &a in axes {
            idx[a] = 0;
        }
        let o = ravel(&idx, &kshape);
        out[o] = f(out[o], v);
    }
    (out, kshape)
}

fn axes_and_keepdim() -> impl Strategy<Value = (Tensor, Vec<usize>, bool)> {
    shape(0..=4).prop_flat_map(|s| {
        let r = s.len();
        (
            values(s),
            prop::sample::subsequence((0..r).collect::<Vec<_>>(), 0..=r).prop_shuffle(),
            any::<bool>(),
        )
    })
}

fn reduced_shape(kshape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    kshape
        .iter()
        .enumerate()
        .filter(|(i, _)| keepdim || !axes.contains(i))
        .map(|(_, &d)| d)
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sum_axes_matches_naive((x, axes, keepdim) in axes_and_keepdim()) {
        let (want, kshape) = naive_reduce(&x, &axes, 0.0, |a, v| a + v);
        let (scale, _) = naive_reduce(&x, &axes, 0.0, |a, v| a + v.abs());
        let want_shape = reduced_shape(&kshape, &axes, keepdim);
        let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
        for_each_device!(|dev| {
            let x = x.to_device(dev);
            let got = x.sum_axes(&axes, keepdim);
            prop_assert_eq!(got.shape(), want_shape.as_slice());
            for ((g, w), s) in got.to_vec_f64().iter().zip(&want).zip(&scale) {
                prop_assert!((g - w).abs() <= 1e-12 * s, "{} vs {} on {:?}", g, w, dev);
            }
            let mean = x.mean_axes(&axes, keepdim).to_vec_f64();
            for ((m, w), s) in mean.iter().zip(&want).zip(&scale) {
                let w = w / n as f64;
                prop_assert!((m - w).abs() <= 1e-12 * s, "mean {} vs {} on {:?}", m, w, dev);
            }
        });
    }

    #[test]
    fn max_axes_matches_naive((x, axes, keepdim) in axes_and_keepdim()) {
        let (want, kshape) = naive_reduce(&x, &axes, f64::NEG_INFINITY, f64::max);
        let want_shape = reduced_shape(&kshape, &axes, keepdim);
        for_each_device!(|dev| {
            let got = x.to_device(dev).max_axes(&axes, keepdim);
            prop_assert_eq!(got.shape(), want_shape.as_slice());
            prop_assert_eq!(got.to_vec_f64(), want.clone(), "on {:?}", dev);
        });
    }
}

// ------------------------------------------------------------------------------------------------
// Layout
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// permute moves element x[j] to out[i] with i[k] = j[perm[k]]; permuting by the inverse
    /// gives x back exactly.
    #[test]
    fn permute_matches_naive_and_inverts(
        (x, perm) in shape(0..=4).prop_flat_map(|s| {
            let r = s.len();
            (values(s), Just((0..r).collect::<Vec<_>>()).prop_shuffle())
        }),
    ) {
        for_each_device!(|dev| {
            let x = x.to_device(dev);
            let p = x.permute(&perm);
            let pshape: Vec<usize> = perm.iter().map(|&k| x.shape()[k]).collect();
            prop_assert_eq!(p.shape(), pshape.as_slice());
            let (xv, pv) = (x.to_vec_f64(), p.to_vec_f64());
            for (flat, &v) in pv.iter().enumerate() {
                let i = unravel(flat, &pshape);
                let mut j = vec![0; perm.len()];
                for (k, &pk) in perm.iter().enumerate() {
                    j[pk] = i[k];
                }
                prop_assert_eq!(v, xv[ravel(&j, x.shape())]);
            }
            let mut inv = vec![0; perm.len()];
            for (i, &pi) in perm.iter().enumerate() {
                inv[pi] = i;
            }
            let back = p.permute(&inv);
            prop_assert_eq!(back.shape(), x.shape());
            prop_assert_eq!(back.to_vec_f64(), xv);
        });
    }

    /// Cutting an axis into pieces with narrow and joining them with concat gives x back;
    /// writing each piece into zeros with narrow_assign and adding them up does too.
    #[test]
    fn narrow_concat_roundtrip(
        x in tensor(1..=4),
        axis in any::<Index>(),
        cuts in vec(any::<Index>(), 0..=3),
    ) {
        for_each_device!(|dev| {
            let x = x.to_device(dev);
            let axis = axis.index(x.rank());
            let d = x.shape()[axis];
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(d + 1)).collect();
            bounds.extend([0, d]);
            bounds.sort_unstable();
            bounds.dedup();
            let pieces: Vec<Tensor> = bounds
                .windows(2)
                .map(|w| x.narrow(axis, w[0], w[1] - w[0]))
                .collect();
            let joined = Tensor::concat(&pieces, axis);
            prop_assert_eq!(joined.shape(), x.shape());
            prop_assert_eq!(joined.to_vec_f64(), x.to_vec_f64());
            let mut acc = x.zeros_like();
            for (piece, w) in pieces.iter().zip(bounds.windows(2)) {
                acc = acc.add(&x.zeros_like().narrow_assign(axis, w[0], piece));
            }
            prop_assert_eq!(acc.to_vec_f64(), x.to_vec_f64());
        });
    }

    /// ⟨index_select(x, idx), y⟩ = ⟨x, index_add(0, idx, y)⟩ for indices with repeats.
    #[test]
    fn index_select_and_index_add_are_adjoint(
        (x, idx, y) in (shape(1..=3), vec(any::<Index>(), 0..=8)).prop_flat_map(|(s, picks)| {
            let idx: Vec<usize> = picks.iter().map(|p| p.index(s[0])).collect();
            let mut ys = s.clone();
            ys[0] = idx.len();
            (values(s), Just(idx), values(ys))
        }),
    ) {
        for_each_device!(|dev| {
            let x = x.to_device(dev);
            let y = y.to_device(dev);
            let sel = x.index_select(&idx);
            prop_assert_eq!(sel.shape(), y.shape());
            let added = x.zeros_like().index_add(&idx, &y);
            let (lhs, rhs) = (dot(&sel, &y), dot(&x, &added));
            prop_assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + abs_dot(&sel, &y)), "{} vs {}", lhs, rhs);
            // and index_select is the naive row gather
            let row = numel(&x.shape()[1..]);
            let (xv, sv) = (x.to_vec_f64(), sel.to_vec_f64());
            for (k, &i) in idx.iter().enumerate() {
                prop_assert_eq!(&sv[k * row..(k + 1) * row], &xv[i * row..(i + 1) * row]);
            }
        });
    }
}

// ------------------------------------------------------------------------------------------------
// Matrix products
// ------------------------------------------------------------------------------------------------

/// A [b?, m, k] and B [b?, k, n] in untransposed layout, each 2-D or 3-D (a 3-D operand facing
/// another 3-D one may have batch 1), with sizes that cross the GEMM kernels' tile edges.
fn matmul_operands() -> impl Strategy<Value = (Tensor, Tensor)> {
    (
        (1usize..=3, 1usize..=16, 1usize..=16, 1usize..=16),
        (
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.2),
            any::<bool>(),
        ),
    )
        .prop_flat_map(|((batch, m, k, n), (a3, b3, one, which))| {
            let lead = |is3: bool, is_one: bool| match (is3, is_one) {
                (false, _) => vec![],
                (true, true) => vec![1],
                (true, false) => vec![batch],
            };
            let mut sa = lead(a3, a3 && b3 && one && which);
            sa.extend([m, k]);
            let mut sb = lead(b3, a3 && b3 && one && !which);
            sb.extend([k, n]);
            (values(sa), values(sb))
        })
}

/// C[b, i, j] = Σₗ A[b, i, l]·B[b, l, j] by loops, with a 2-D or batch-1 operand shared, and
/// the matching Σₗ |A||B| for the tolerance.
fn naive_matmul(a: &Tensor, b: &Tensor) -> (Vec<f64>, Vec<f64>, Vec<usize>) {
    let (sa, sb) = (a.shape(), b.shape());
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let n = sb[sb.len() - 1];
    let ba = if sa.len() == 3 { sa[0] } else { 1 };
    let bb = if sb.len() == 3 { sb[0] } else { 1 };
    let batch = ba.max(bb);
    let (av, bv) = (a.to_vec_f64(), b.to_vec_f64());
    let mut c = vec![0.0; batch * m * n];
    let mut s = vec![0.0; batch * m * n];
    for p in 0..batch {
        let (oa, ob) = (
            if ba > 1 { p * m * k } else { 0 },
            if bb > 1 { p * k * n } else { 0 },
        );
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    let t = av[oa + i * k + l] * bv[ob + l * n + j];
                    c[p * m * n + i * n + j] += t;
                    s[p * m * n + i * n + j] += t.abs();
                }
            }
        }
    }
    let shape = if sa.len() == 3 || sb.len() == 3 {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    (c, s, shape)
}

proptest! {
    #![proptest_config(config())]

    /// matmul_t with every (ta, tb), fed the transposed operand where a flag is set, agrees
    /// with the naive triple loop: to 1e-12 relative in f64 and 1e-5 in f32.
    #[test]
    fn matmul_t_matches_naive_for_all_flags((a, b) in matmul_operands()) {
        let (want, scale, shape) = naive_matmul(&a, &b);
        for_each_device!(|dev| for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            // the f32 product is compared with the f64 product of the same rounded inputs
            let (ac, bc) = (a.cast(dtype), b.cast(dtype));
            let (want, scale, _) = if dtype == DType::F32 {
                naive_matmul(&ac.cast(DType::F64), &bc.cast(DType::F64))
            } else {
                (want.clone(), scale.clone(), shape.clone())
            };
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a_in = if ta { ac.t() } else { ac.clone() }.to_device(dev);
                let b_in = if tb { bc.t() } else { bc.clone() }.to_device(dev);
                let got = a_in.matmul_t(&b_in, ta, tb);
                prop_assert_eq!(got.shape(), shape.as_slice());
                prop_assert_eq!(got.dtype(), dtype);
                for (e, ((g, w), s)) in got.to_vec_f64().iter().zip(&want).zip(&scale).enumerate() {
                    prop_assert!(
                        (g - w).abs() <= tol * (s + f64::MIN_POSITIVE),
                        "{} on {:?} ta={} tb={} {:?}×{:?}, element {}: {} vs {}",
                        dtype, dev, ta, tb, a.shape(), b.shape(), e, g, w
                    );
                }
            }
        });
    }
}

// ------------------------------------------------------------------------------------------------
// Rng
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// From any position, a draw of n values equals a draw of m values followed by a draw of
    /// n − m when m is a multiple of the values per block: element i depends only on (seed,
    /// stream, counter + i/2), or counter + i/4 for f32 normals (four to a block).
    #[test]
    fn rng_draws_do_not_depend_on_splitting(
        seed in any::<u64>(),
        stream in prop::option::of(any::<u64>()),
        skip in 0usize..=5,
        (n, first) in (0usize..=40).prop_flat_map(|n| (Just(n), 0..=n)),
    ) {
        let start = || {
            let base = Rng::new(seed);
            let mut r = match stream { Some(id) => base.stream(id), None => base };
            r.uniform_vec(skip);
            r
        };
        type Draw = fn(&mut Rng, usize, Device) -> Vec<f64>;
        // (name, values per block, draw)
        let draws: [(&str, usize, Draw); 7] = [
            ("normal_vec", 2, |r, n, _| r.normal_vec(n)),
            ("uniform_vec", 2, |r, n, _| r.uniform_vec(n)),
            ("normal", 2, |r, n, _| r.normal(&[n], DType::F64).to_vec_f64()),
            ("normal f32", 4, |r, n, _| r.normal(&[n], DType::F32).to_vec_f64()),
            ("rademacher", 2, |r, n, _| r.rademacher(&[n], DType::F64).to_vec_f64()),
            // the same draws made on a device
            ("normal_on", 4, |r, n, dev| r.normal_on(&[n], DType::F32, dev).to_vec_f64()),
            ("uniform_on", 2, |r, n, dev| r.uniform_on(&[n], -1.0, 2.0, DType::F64, dev).to_vec_f64()),
        ];
        for_each_device!(|dev| for (name, per_block, draw) in draws {
            let draw = |r: &mut Rng, n: usize| draw(r, n, dev);
            let first = first - first % per_block;
            let (mut whole, mut split) = (start(), start());
            let all = draw(&mut whole, n);
            let mut parts = draw(&mut split, first);
            parts.extend(draw(&mut split, n - first));
            prop_assert_eq!(&all, &parts, "{}: {} split as {} + {}", name, n, first, n - first);
            prop_assert_eq!(whole.state(), split.state(), "{}: the generators end in step", name);
            // and the next draw agrees too
            prop_assert_eq!(draw(&mut whole, 3), draw(&mut split, 3), "{} on {:?}", name, dev);
        });
    }
}
