//! Property tests of every differentiable op on `Var`: first AND second derivatives against
//! central finite differences in f64, through the library's own [`gradgradcheck`].
//!
//! Inputs are random: shapes of rank 0–3 with dims 1–5, values from an op-specific domain
//! (positive for log/sqrt/fractional powers, away from 0 for kinks and poles, tie-free for max /
//! maximum / minimum), binary ops on operands that broadcast against each other, random axes,
//! permutations, slices and index lists for the reductions and layout ops. Every op runs
//! [`CASES`] cases, each with its own random check directions (the check's seed is drawn too).
//!
//! Tolerances: ops whose checked scalar is a polynomial of degree ≤ 2 in the inputs (linear and
//! bilinear ops, layout, piecewise-linear ops away from their kinks) have no truncation error in a
//! central difference, so they are checked with a 1000× larger step and ~1000× tighter
//! tolerances than [`CheckOpts::default`] ([`exact`]); every other op uses the defaults
//! ([`smooth`]). No op needs looser tolerances than the defaults.
//!
//! Every check runs on every device ([`for_each_device!`]): the CPU always, the GPU when ebm-core
//! has its `cuda` feature and a driver answers.
//!
//! The last section shows the checker is not vacuous: a wrong first-order rule fails
//! `gradcheck`, and a rule that is right at first order but not differentiable through (it
//! detaches its input) passes `gradcheck` and fails `gradgradcheck`.

use ebm_autodiff::{gradcheck, gradgradcheck, CheckOpts, Tape, Var};
use ebm_core::{for_each_device, DType, Rng, Tensor};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use std::ops::RangeInclusive;

// ------------------------------------------------------------------------------------------------
// Strategies and the shared check
// ------------------------------------------------------------------------------------------------

/// Cases per op.
const CASES: u32 = 64;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// Where an op's input values are drawn from.
#[derive(Clone, Copy, Debug)]
enum Domain {
    /// Uniform on [lo, hi).
    Range(f64, f64),
    /// |x| uniform on [lo, hi) with either sign: away from the kinks at 0 (relu, abs, elu) and
    /// from poles (recip, negative powers, div).
    AwayFromZero(f64, f64),
    /// All elements distinct, at least 0.05 apart, so a max over any axes has a unique winner
    /// that a finite-difference step cannot change.
    Distinct,
    /// An integer in −3..=3 plus an offset in [0.05, 0.45), or in [0.55, 0.95) when `upper`: a
    /// lower and an upper tensor are never within 0.1 of each other (no ties in
    /// maximum/minimum), yet either can be the larger.
    Lattice { upper: bool },
}

const REAL: Domain = Domain::Range(-3.0, 3.0);
/// For log, sqrt and fractional powers.
const POSITIVE: Domain = Domain::Range(0.2, 3.0);
/// For recip, negative integer powers and denominators.
const NONZERO: Domain = Domain::AwayFromZero(0.2, 3.0);
/// For relu, abs and elu: away from their kink at 0.
const OFF_KINK: Domain = Domain::AwayFromZero(0.05, 3.0);

/// A shape with rank in `ranks` and dims 1–5.
fn shape(ranks: RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    ranks.prop_flat_map(|r| vec(1usize..=5, r))
}

/// A tensor of `shape` with values from `dom`.
fn values(shape: Vec<usize>, dom: Domain) -> BoxedStrategy<Tensor> {
    let n: usize = shape.iter().product();
    let data: BoxedStrategy<Vec<f64>> = match dom {
        Domain::Range(lo, hi) => vec(lo..hi, n).boxed(),
        Domain::AwayFromZero(lo, hi) => vec(
            (lo..hi, any::<bool>()).prop_map(|(m, neg)| if neg { -m } else { m }),
            n,
        )
        .boxed(),
        Domain::Distinct => (
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            vec(0.0..0.5, n),
        )
            .prop_map(move |(rank, jitter)| {
                // rank + jitter are ≥ 0.5 apart; scaled by 0.1 and centred.
                rank.iter()
                    .zip(jitter)
                    .map(|(&k, j)| 0.1 * (k as f64 + j - n as f64 / 2.0))
                    .collect()
            })
            .boxed(),
        Domain::Lattice { upper } => vec((-3i32..=3, 0.05..0.45), n)
            .prop_map(move |v| {
                v.into_iter()
                    .map(|(k, off)| k as f64 + off + if upper { 0.5 } else { 0.0 })
                    .collect()
            })
            .boxed(),
    };
    data.prop_map(move |v| Tensor::from_vec(v, &shape)).boxed()
}

/// A tensor with random shape (rank in `ranks`) and values from `dom`.
fn tensor(ranks: RangeInclusive<usize>, dom: Domain) -> impl Strategy<Value = Tensor> {
    shape(ranks).prop_flat_map(move |s| values(s, dom))
}

/// A shape that broadcasts to `base`: some leading axes dropped (often none), some of the
/// others set to 1.
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

/// Two shapes that broadcast together (each derived from a common base of rank 0–3, so the
/// result is e.g. [3, 1] with [1, 4], [2, 3] with [3], or [] with [4, 2]).
fn broadcast_pair(ranks: RangeInclusive<usize>) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape(ranks).prop_flat_map(|s| (broadcast_of(s.clone()), broadcast_of(s)))
}

/// Two tensors that broadcast together, with values from `da` and `db`.
fn tensor_pair(da: Domain, db: Domain) -> impl Strategy<Value = (Tensor, Tensor)> {
    broadcast_pair(0..=3).prop_flat_map(move |(sa, sb)| (values(sa, da), values(sb, db)))
}

/// A shape of rank `0..=r` and a random subset of its axes (in random order), plus keepdim.
fn with_axes(
    ranks: RangeInclusive<usize>,
    dom: Domain,
) -> impl Strategy<Value = (Tensor, Vec<usize>, bool)> {
    shape(ranks).prop_flat_map(move |s| {
        let r = s.len();
        (
            values(s, dom),
            prop::sample::subsequence((0..r).collect::<Vec<_>>(), 0..=r).prop_shuffle(),
            any::<bool>(),
        )
    })
}

/// Tolerances for ops whose checked scalars are polynomials of degree ≤ 2 in the inputs (or
/// piecewise so, with every kink farther than the step): a central difference is then exact up
/// to rounding, so a larger step and tolerances ~1000× tighter than the defaults apply.
fn exact(seed: u64) -> CheckOpts {
    CheckOpts {
        eps: 1e-3,
        atol: 1e-9,
        rtol: 1e-9,
        seed,
        ..CheckOpts::default()
    }
}

/// The default tolerances (step 1e-6, atol 1e-6, rtol 1e-5) with a random seed.
fn smooth(seed: u64) -> CheckOpts {
    CheckOpts {
        seed,
        ..CheckOpts::default()
    }
}

/// Runs `gradgradcheck` (first, then second order) on every device ([`for_each_device!`]: the
/// CPU, and the GPU when there is one); a failure names the op, the device and input shapes.
fn check(
    name: &str,
    f: impl Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    opts: CheckOpts,
) -> Result<(), TestCaseError> {
    for_each_device!(|dev| {
        let on_dev: Vec<Tensor> = inputs.iter().map(|t| t.to_device(dev)).collect();
        gradgradcheck(&f, &on_dev, &opts).map_err(|e| {
            let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
            let vals: Vec<Vec<f64>> = inputs.iter().map(|t| t.to_vec_f64()).collect();
            TestCaseError::fail(format!(
                "{name} on {dev:?}, inputs of shapes {shapes:?} (check seed {}): {e}\n\
                 input values: {vals:?}",
                opts.seed
            ))
        })?;
    });
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Element-wise unary ops and ops built from one input: (name, domain, tolerances, op)
// ------------------------------------------------------------------------------------------------

macro_rules! unary_props {
    ($($name:ident: $dom:expr, $tol:ident, $f:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name(x in tensor(0..=3, $dom), seed in any::<u64>()) {
                    let f: fn(&Var) -> Var = $f;
                    check(stringify!($name), |v| f(&v[0]), &[x], $tol(seed))?;
                }
            )*
        }
    };
}

mod unary {
    use super::*;

    unary_props! {
        neg: REAL, exact, |x| x.neg();
        exp: REAL, smooth, |x| x.exp();
        expm1: REAL, smooth, |x| x.expm1();
        log: POSITIVE, smooth, |x| x.log();
        log1p: Domain::Range(-0.8, 3.0), smooth, |x| x.log1p();
        sqrt: POSITIVE, smooth, |x| x.sqrt();
        square: REAL, exact, |x| x.square();
        recip: NONZERO, smooth, |x| x.recip();
        tanh: REAL, smooth, |x| x.tanh();
        sigmoid: REAL, smooth, |x| x.sigmoid();
        softplus: REAL, smooth, |x| x.softplus();
        silu: REAL, smooth, |x| x.silu();
        relu: OFF_KINK, exact, |x| x.relu();
        abs: OFF_KINK, exact, |x| x.abs();
        sin: REAL, smooth, |x| x.sin();
        cos: REAL, smooth, |x| x.cos();
        sum_all: REAL, exact, |x| x.sum_all();
        mean_all: REAL, exact, |x| x.mean_all();
        log_sigmoid: REAL, smooth, |x| x.log_sigmoid();
        elu: OFF_KINK, smooth, |x| x.elu();
        gelu: REAL, smooth, |x| x.gelu();
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn powf_nonnegative_integer(x in tensor(0..=3, REAL), p in 0i32..=4, seed in any::<u64>()) {
            check(&format!("powf({p})"), |v| v[0].powf(p as f64), &[x], smooth(seed))?;
        }

        #[test]
        fn powf_negative_integer(x in tensor(0..=3, NONZERO), p in -3i32..=-1, seed in any::<u64>()) {
            check(&format!("powf({p})"), |v| v[0].powf(p as f64), &[x], smooth(seed))?;
        }

        #[test]
        fn powf_fractional(
            x in tensor(0..=3, POSITIVE),
            p in prop_oneof![
                Just(0.5),
                Just(-0.5),
                (-2.5f64..3.5).prop_filter("non-integer", |p| (p - p.round()).abs() > 0.05),
            ],
            seed in any::<u64>(),
        ) {
            check(&format!("powf({p})"), |v| v[0].powf(p), &[x], smooth(seed))?;
        }

        #[test]
        fn add_scalar(x in tensor(0..=3, REAL), c in -3.0f64..3.0, seed in any::<u64>()) {
            check("add_scalar", |v| v[0].add_scalar(c), &[x], exact(seed))?;
        }

        #[test]
        fn mul_scalar(x in tensor(0..=3, REAL), c in -3.0f64..3.0, seed in any::<u64>()) {
            check("mul_scalar", |v| v[0].mul_scalar(c), &[x], exact(seed))?;
        }

        #[test]
        fn affine(x in tensor(0..=3, REAL), a in -3.0f64..3.0, b in -3.0f64..3.0, seed in any::<u64>()) {
            check("affine", |v| v[0].affine(a, b), &[x], exact(seed))?;
        }

        /// x · c and x + c for a constant c that broadcasts with x (either may be the larger).
        #[test]
        fn mul_const_and_add_const((x, c) in tensor_pair(REAL, REAL), seed in any::<u64>()) {
            check("mul_const", |v| v[0].mul_const(&c), std::slice::from_ref(&x), exact(seed))?;
            check("add_const", |v| v[0].add_const(&c), &[x], exact(seed))?;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Broadcasting binary ops: (name, domain of a, domain of b, tolerances, op)
// ------------------------------------------------------------------------------------------------

macro_rules! binary_props {
    ($($name:ident: $da:expr, $db:expr, $tol:ident, $f:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name((a, b) in tensor_pair($da, $db), seed in any::<u64>()) {
                    let f: fn(&Var, &Var) -> Var = $f;
                    check(stringify!($name), |v| f(&v[0], &v[1]), &[a, b], $tol(seed))?;
                }
            )*
        }
    };
}

mod binary {
    use super::*;

    const LOWER: Domain = Domain::Lattice { upper: false };
    const UPPER: Domain = Domain::Lattice { upper: true };

    binary_props! {
        add: REAL, REAL, exact, |a, b| a.add(b);
        sub: REAL, REAL, exact, |a, b| a.sub(b);
        mul: REAL, REAL, exact, |a, b| a.mul(b);
        div: REAL, NONZERO, smooth, |a, b| a.div(b);
        // SiLU's fused derivative chain: g ⊙ silu′(x), g ⊙ silu″(x), g ⊙ silu‴(x)
        mul_silu_d1: REAL, REAL, smooth, |g, x| g.mul_silu_d1(x);
        mul_silu_d2: REAL, REAL, smooth, |g, x| g.mul_silu_d2(x);
        mul_silu_d3: REAL, REAL, smooth, |g, x| g.mul_silu_d3(x);
        // piecewise linear; the lattice domains keep every broadcast pair ≥ 0.1 apart
        maximum: LOWER, UPPER, exact, |a, b| a.maximum(b);
        minimum: UPPER, LOWER, exact, |a, b| a.minimum(b);
    }

    /// `cond ? a : b` with all three broadcast together. With a constant condition it is linear
    /// in (a, b) everywhere, so no values need avoiding.
    fn where_inputs() -> impl Strategy<Value = (Tensor, Tensor, Tensor)> {
        shape(0..=3)
            .prop_flat_map(|s| {
                (
                    broadcast_of(s.clone()),
                    broadcast_of(s.clone()),
                    broadcast_of(s),
                )
            })
            .prop_flat_map(|(sc, sa, sb)| {
                let n: usize = sc.iter().product();
                (
                    vec(any::<bool>(), n).prop_map(move |c| {
                        let c: Vec<f64> = c.into_iter().map(|c| c as u8 as f64).collect();
                        Tensor::from_vec(c, &sc)
                    }),
                    values(sa, REAL),
                    values(sb, REAL),
                )
            })
    }

    /// Three real tensors that broadcast together.
    fn real_triple() -> impl Strategy<Value = (Tensor, Tensor, Tensor)> {
        shape(0..=3)
            .prop_flat_map(|s| {
                (
                    broadcast_of(s.clone()),
                    broadcast_of(s.clone()),
                    broadcast_of(s),
                )
            })
            .prop_flat_map(|(sa, sb, sx)| (values(sa, REAL), values(sb, REAL), values(sx, REAL)))
    }

    /// The operator overloads in every ownership form, each checked against its method (value)
    /// and by gradgradcheck (derivatives), on broadcasting operands.
    type Form = (&'static str, fn(&[Var]) -> Var, fn(&[Var]) -> Var);
    const OVERLOADS: [Form; 14] = [
        ("&a + &b", |v| &v[0] + &v[1], |v| v[0].add(&v[1])),
        (
            "a + b",
            |v| v[0].clone() + v[1].clone(),
            |v| v[0].add(&v[1]),
        ),
        ("a - &b", |v| v[0].clone() - &v[1], |v| v[0].sub(&v[1])),
        ("&a - &b", |v| &v[0] - &v[1], |v| v[0].sub(&v[1])),
        (
            "a * b",
            |v| v[0].clone() * v[1].clone(),
            |v| v[0].mul(&v[1]),
        ),
        ("&a * &b", |v| &v[0] * &v[1], |v| v[0].mul(&v[1])),
        ("a / &b", |v| v[0].clone() / &v[1], |v| v[0].div(&v[1])),
        ("&a / &b", |v| &v[0] / &v[1], |v| v[0].div(&v[1])),
        ("&a + 2.0", |v| &v[0] + 2.0, |v| v[0].add_scalar(2.0)),
        ("a - 2.0", |v| v[0].clone() - 2.0, |v| v[0].add_scalar(-2.0)),
        ("a * 2.0", |v| v[0].clone() * 2.0, |v| v[0].mul_scalar(2.0)),
        ("&b / 2.0", |v| &v[1] / 2.0, |v| v[1].mul_scalar(0.5)),
        ("-&a", |v| -&v[0], |v| v[0].neg()),
        ("-a", |v| -v[0].clone(), |v| v[0].neg()),
    ];

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn where_((c, a, b) in where_inputs(), seed in any::<u64>()) {
            check(
                &format!("where_ (cond {:?})", c.shape()),
                |v| Var::where_(&c, &v[0], &v[1]),
                &[a, b],
                exact(seed),
            )?;
        }

        #[test]
        fn mul2_silu_d((a, b, x) in real_triple(), k in 1u8..=3, seed in any::<u64>()) {
            // the fused pass equals its composition; then first and second derivatives
            let tape = Tape::new();
            let v = [tape.var(a.clone()), tape.var(b.clone()), tape.var(x.clone())];
            let fused = v[0].mul2_silu_d(&v[1], &v[2], k);
            let ones = tape.constant(x.ones_like());
            let dk = match k {
                1 => ones.mul_silu_d1(&v[2]),
                2 => ones.mul_silu_d2(&v[2]),
                _ => ones.mul_silu_d3(&v[2]),
            };
            let composed = v[0].mul(&v[1]).mul(&dk);
            prop_assert!(
                fused.value().max_abs_diff(composed.value()) <= 1e-13 * (1.0 + composed.value().max_abs()),
                "mul2_silu_d(k = {k}) differs from a ⊙ b ⊙ silu⁽ᵏ⁾(x)"
            );
            check(&format!("mul2_silu_d(k = {k})"), |v| v[0].mul2_silu_d(&v[1], &v[2], k), &[a, b, x], smooth(seed))?;
        }

        #[test]
        fn operator_overloads((a, b) in tensor_pair(REAL, NONZERO), seed in any::<u64>()) {
            let tape = Tape::new();
            let vars = [tape.var(a.clone()), tape.var(b.clone())];
            for (name, op, method) in OVERLOADS {
                let (got, want) = (op(&vars), method(&vars));
                prop_assert_eq!(got.shape(), want.shape(), "{}", name);
                prop_assert!(
                    got.value().max_abs_diff(want.value()) <= 1e-15 * (1.0 + want.value().max_abs()),
                    "{}: value differs from its method", name
                );
                check(name, op, &[a.clone(), b.clone()], smooth(seed))?;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Reductions and broadcasting
// ------------------------------------------------------------------------------------------------

mod reduce {
    use super::*;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn sum((x, axes, keepdim) in with_axes(0..=3, REAL), seed in any::<u64>()) {
            check(&format!("sum({axes:?}, {keepdim})"), |v| v[0].sum(&axes, keepdim), &[x], exact(seed))?;
        }

        #[test]
        fn mean((x, axes, keepdim) in with_axes(0..=3, REAL), seed in any::<u64>()) {
            check(&format!("mean({axes:?}, {keepdim})"), |v| v[0].mean(&axes, keepdim), &[x], exact(seed))?;
        }

        /// Piecewise linear; distinct values give a unique maximum in every slice.
        #[test]
        fn max((x, axes, keepdim) in with_axes(0..=3, Domain::Distinct), seed in any::<u64>()) {
            check(&format!("max({axes:?}, {keepdim})"), |v| v[0].max(&axes, keepdim), &[x], exact(seed))?;
        }

        #[test]
        fn logsumexp((x, axes, keepdim) in with_axes(0..=3, REAL), seed in any::<u64>()) {
            check(
                &format!("logsumexp({axes:?}, {keepdim})"),
                |v| v[0].logsumexp(&axes, keepdim),
                &[x],
                smooth(seed),
            )?;
        }

        #[test]
        fn sum_squares((x, axes, keepdim) in with_axes(0..=3, REAL), seed in any::<u64>()) {
            check(
                &format!("sum_squares({axes:?}, {keepdim})"),
                |v| v[0].sum_squares(&axes, keepdim),
                &[x],
                exact(seed),
            )?;
        }

        /// Sums x back to a shape that broadcasts to x's.
        #[test]
        fn sum_to(
            (x, to) in shape(0..=3).prop_flat_map(|s| (values(s.clone(), REAL), broadcast_of(s))),
            seed in any::<u64>(),
        ) {
            check(&format!("sum_to({to:?})"), |v| v[0].sum_to(&to), &[x], exact(seed))?;
        }

        /// Broadcasts x to a shape it broadcasts to.
        #[test]
        fn broadcast_to(
            (x, to) in shape(0..=3).prop_flat_map(|s| {
                (broadcast_of(s.clone()).prop_flat_map(|b| values(b, REAL)), Just(s))
            }),
            seed in any::<u64>(),
        ) {
            check(&format!("broadcast_to({to:?})"), |v| v[0].broadcast_to(&to), &[x], exact(seed))?;
        }

        #[test]
        fn softmax(x in tensor(1..=3, REAL), axis in any::<Index>(), seed in any::<u64>()) {
            let axis = axis.index(x.rank());
            check(&format!("softmax({axis})"), |v| v[0].softmax(axis), &[x], smooth(seed))?;
        }

        #[test]
        fn log_softmax(x in tensor(1..=3, REAL), axis in any::<Index>(), seed in any::<u64>()) {
            let axis = axis.index(x.rank());
            check(&format!("log_softmax({axis})"), |v| v[0].log_softmax(axis), &[x], smooth(seed))?;
        }

        /// Row-wise dot products of operands that broadcast together (output rank ≥ 1).
        #[test]
        fn dot_rows(
            (a, b) in broadcast_pair(1..=3)
                .prop_filter("output needs an axis", |(sa, sb)| sa.len().max(sb.len()) >= 1)
                .prop_flat_map(|(sa, sb)| (values(sa, REAL), values(sb, REAL))),
            seed in any::<u64>(),
        ) {
            // one value per row of the broadcast product, whichever operand has more axes
            let tape = Tape::new();
            let got = tape.constant(a.clone()).dot_rows(&tape.constant(b.clone()));
            let prod = a.mul(&b);
            let want = prod.sum_axes(&[prod.rank() - 1], false);
            prop_assert_eq!(got.shape(), want.shape());
            prop_assert!(got.value().max_abs_diff(&want) <= 1e-14 * (1.0 + want.max_abs()));
            check("dot_rows", |v| v[0].dot_rows(&v[1]), &[a, b], exact(seed))?;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Layout ops
// ------------------------------------------------------------------------------------------------

mod layout {
    use super::*;

    /// A reshape target for `s`: its dims shuffled, maybe with a 1 inserted, maybe with one
    /// axis left for `reshape` to infer (`usize::MAX`).
    fn reshape_target(s: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
        (
            Just(s).prop_shuffle(),
            proptest::option::of(any::<Index>()),
            proptest::option::of(any::<Index>()),
        )
            .prop_map(|(mut t, one, infer)| {
                if let Some(i) = one {
                    t.insert(i.index(t.len() + 1), 1);
                }
                if let (Some(i), false) = (infer, t.is_empty()) {
                    let k = i.index(t.len());
                    t[k] = usize::MAX;
                }
                t
            })
    }

    /// Parts of equal shape except along `axis`, where each has its own length 1–5.
    fn concat_parts() -> impl Strategy<Value = (Vec<Tensor>, usize)> {
        (shape(1..=3), any::<Index>(), vec(1usize..=5, 2..=3)).prop_flat_map(|(s, axis, lens)| {
            let axis = axis.index(s.len());
            let parts: Vec<BoxedStrategy<Tensor>> = lens
                .into_iter()
                .map(|len| {
                    let mut p = s.clone();
                    p[axis] = len;
                    values(p, REAL)
                })
                .collect();
            (parts, Just(axis))
        })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn reshape(
            (x, to) in shape(0..=3).prop_flat_map(|s| (values(s.clone(), REAL), reshape_target(s))),
            seed in any::<u64>(),
        ) {
            check(&format!("reshape({to:?})"), |v| v[0].reshape(&to), &[x], exact(seed))?;
        }

        #[test]
        fn permute(
            (x, perm) in shape(0..=3).prop_flat_map(|s| {
                let r = s.len();
                (values(s, REAL), Just((0..r).collect::<Vec<_>>()).prop_shuffle())
            }),
            seed in any::<u64>(),
        ) {
            check(&format!("permute({perm:?})"), |v| v[0].permute(&perm), &[x], exact(seed))?;
        }

        #[test]
        fn transpose(x in tensor(1..=3, REAL), a in any::<Index>(), b in any::<Index>(), seed in any::<u64>()) {
            let (a, b) = (a.index(x.rank()), b.index(x.rank()));
            check(&format!("transpose({a}, {b})"), |v| v[0].transpose(a, b), &[x], exact(seed))?;
        }

        #[test]
        fn t(x in tensor(2..=3, REAL), seed in any::<u64>()) {
            check("t", |v| v[0].t(), &[x], exact(seed))?;
        }

        #[test]
        fn narrow(
            x in tensor(1..=3, REAL),
            (axis, start, len) in (any::<Index>(), any::<Index>(), any::<Index>()),
            seed in any::<u64>(),
        ) {
            let axis = axis.index(x.rank());
            let d = x.shape()[axis];
            let start = start.index(d);
            let len = 1 + len.index(d - start);
            check(
                &format!("narrow({axis}, {start}, {len})"),
                |v| v[0].narrow(axis, start, len),
                &[x],
                exact(seed),
            )?;
        }

        #[test]
        fn pad_axis(
            x in tensor(1..=3, REAL),
            axis in any::<Index>(),
            before in 0usize..=3,
            after in 0usize..=3,
            seed in any::<u64>(),
        ) {
            let axis = axis.index(x.rank());
            let full = before + x.shape()[axis] + after;
            check(
                &format!("pad_axis({axis}, {before}, {full})"),
                |v| v[0].pad_axis(axis, before, full),
                &[x],
                exact(seed),
            )?;
        }

        #[test]
        fn concat((parts, axis) in concat_parts(), seed in any::<u64>()) {
            check(&format!("concat(axis {axis})"), |v| Var::concat(v, axis), &parts, exact(seed))?;
        }

        /// Random rows of axis 0, with repeats (up to 7 picks from ≤ 5 rows).
        #[test]
        fn index_select(x in tensor(1..=3, REAL), picks in vec(any::<Index>(), 1..=7), seed in any::<u64>()) {
            let idx: Vec<usize> = picks.iter().map(|i| i.index(x.shape()[0])).collect();
            check(&format!("index_select({idx:?})"), |v| v[0].index_select(&idx), &[x], exact(seed))?;
        }

        /// Adds x's rows into `rows` zero rows at random indices (repeats accumulate).
        #[test]
        fn scatter_rows(
            (x, idx, rows) in (1usize..=5, vec(any::<Index>(), 1..=6), shape(0..=2)).prop_flat_map(
                |(rows, picks, rest)| {
                    let idx: Vec<usize> = picks.iter().map(|i| i.index(rows)).collect();
                    let mut s = vec![idx.len()];
                    s.extend(rest);
                    (values(s, REAL), Just(idx), Just(rows))
                },
            ),
            seed in any::<u64>(),
        ) {
            check(
                &format!("scatter_rows({idx:?}, {rows})"),
                |v| v[0].scatter_rows(&idx, rows),
                &[x],
                exact(seed),
            )?;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Matrix products: all four transpose flags on 2-D×2-D, 3-D×3-D, 3-D×2-D and 2-D×3-D
// ------------------------------------------------------------------------------------------------

mod matmul {
    use super::*;

    /// A [m, k] (or [B, m, k]) and B [k, n] (or [B, n, k]) in untransposed layout. A 3-D operand
    /// has batch B or, when paired with another 3-D operand, sometimes 1 (batch broadcast).
    fn operands(rank_a: usize, rank_b: usize) -> impl Strategy<Value = (Tensor, Tensor)> {
        (
            1usize..=4,
            1usize..=4,
            1usize..=4,
            1usize..=4,
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.2),
        )
            .prop_flat_map(move |(batch, m, k, n, one_a, one_b)| {
                let both3 = rank_a == 3 && rank_b == 3;
                let lead = |rank: usize, one: bool| match rank {
                    3 if both3 && one => vec![1],
                    3 => vec![batch],
                    _ => vec![],
                };
                let mut sa = lead(rank_a, one_a);
                sa.extend([m, k]);
                let mut sb = lead(rank_b, one_b && !one_a);
                sb.extend([k, n]);
                (values(sa, REAL), values(sb, REAL))
            })
    }

    /// Checks op(A)·op(B) for every (ta, tb), feeding the transposed operand where a flag is set
    /// so that every combination computes the same product.
    fn all_flags(a: &Tensor, b: &Tensor, seed: u64) -> Result<(), TestCaseError> {
        let plain = a.matmul(b);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a_in = if ta { a.t() } else { a.clone() };
            let b_in = if tb { b.t() } else { b.clone() };
            let name = format!("matmul_t(ta={ta}, tb={tb})");
            let got = a_in.matmul_t(&b_in, ta, tb);
            prop_assert!(
                got.max_abs_diff(&plain) <= 1e-12 * (1.0 + plain.max_abs()),
                "{}: forward differs from the untransposed product",
                name
            );
            check(
                &name,
                |v| v[0].matmul_t(&v[1], ta, tb),
                &[a_in, b_in],
                exact(seed),
            )?;
        }
        check(
            "matmul",
            |v| v[0].matmul(&v[1]),
            &[a.clone(), b.clone()],
            exact(seed),
        )
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn mat_mat((a, b) in operands(2, 2), seed in any::<u64>()) {
            all_flags(&a, &b, seed)?;
        }

        #[test]
        fn batch_batch((a, b) in operands(3, 3), seed in any::<u64>()) {
            all_flags(&a, &b, seed)?;
        }

        #[test]
        fn batch_mat((a, b) in operands(3, 2), seed in any::<u64>()) {
            all_flags(&a, &b, seed)?;
        }

        #[test]
        fn mat_batch((a, b) in operands(2, 3), seed in any::<u64>()) {
            all_flags(&a, &b, seed)?;
        }

        /// The fused linear layer x·Wᵀ + b, with a bias of shape [out], [1, out] or [B, out].
        #[test]
        fn linear(
            (x, w, b) in (1usize..=5, 1usize..=5, 1usize..=5, 0usize..3).prop_flat_map(|(n, i, o, kind)| {
                let bias = match kind { 0 => vec![o], 1 => vec![1, o], _ => vec![n, o] };
                (values(vec![n, i], REAL), values(vec![o, i], REAL), values(bias, REAL))
            }),
            seed in any::<u64>(),
        ) {
            let want = x.matmul_t(&w, false, true).add(&b);
            let got = x.matmul_t_add(&w, false, true, &b);
            prop_assert!(got.max_abs_diff(&want) <= 1e-12 * (1.0 + want.max_abs()));
            check("linear", |v| v[0].linear(&v[1], &v[2]), &[x, w, b], exact(seed))?;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The checker is not vacuous
// ------------------------------------------------------------------------------------------------

mod checker_catches {
    use super::*;

    /// eˣ recorded with a custom derivative rule `rule(g, x, out)`.
    fn exp_with_rule(x: &Var, rule: fn(&Var, &Var, &Var) -> Var) -> Var {
        x.tape()
            .record(x.value().exp(), &[x], move |g, ins, out, _| {
                vec![Some(rule(g, &ins[0], out))]
            })
    }

    proptest! {
        #![proptest_config(config())]

        /// The correct rule g·eˣ (written in Var ops) passes both orders: the control.
        #[test]
        fn correct_rule_passes(x in tensor(0..=3, REAL), seed in any::<u64>()) {
            let f = |v: &[Var]| exp_with_rule(&v[0], |g, _, out| g.mul(out));
            check("custom exp", f, &[x], smooth(seed))?;
        }

        /// A first-order rule off by a factor 2 fails gradcheck at order 1.
        #[test]
        fn wrong_first_derivative_fails_gradcheck(x in tensor(0..=3, REAL), seed in any::<u64>()) {
            let f = |v: &[Var]| exp_with_rule(&v[0], |g, _, out| g.mul(out).mul_scalar(2.0));
            let err = gradcheck(f, std::slice::from_ref(&x), &smooth(seed));
            prop_assert!(matches!(&err, Err(e) if e.order == 1), "{:?}", err);
            let err = gradgradcheck(f, &[x], &smooth(seed));
            prop_assert!(matches!(&err, Err(e) if e.order == 1), "{:?}", err);
        }

        /// A rule with the right value, g·e^{detach(x)}, but which the recorded backward pass
        /// cannot differentiate through: gradcheck passes, gradgradcheck fails at order 2.
        #[test]
        fn undifferentiable_rule_fails_gradgradcheck(x in tensor(0..=3, REAL), seed in any::<u64>()) {
            let f = |v: &[Var]| exp_with_rule(&v[0], |g, x, _| g.mul(&x.detach().exp()));
            prop_assert!(gradcheck(f, std::slice::from_ref(&x), &smooth(seed)).is_ok());
            let err = gradgradcheck(f, &[x], &smooth(seed));
            prop_assert!(matches!(&err, Err(e) if e.order == 2), "{:?}", err);
        }
    }

    /// The same for a two-input op: a multiply whose rule swaps the two cotangents (each has
    /// the right shape, so only the values are wrong) fails gradcheck.
    #[test]
    fn swapped_cotangents_fail_gradcheck() {
        let a = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], &[3]);
        let b = Tensor::from_vec(vec![1.5f64, 0.7, -0.4], &[3]);
        let f = |v: &[Var]| {
            let value = v[0].value().mul(v[1].value());
            v[0].tape().record(value, &[&v[0], &v[1]], |g, ins, _, _| {
                vec![Some(g.mul(&ins[0])), Some(g.mul(&ins[1]))]
            })
        };
        let err = gradcheck(f, &[a, b], &CheckOpts::default()).unwrap_err();
        assert_eq!(err.order, 1);
    }
}

// ------------------------------------------------------------------------------------------------
// Convolutions, pooling, upsampling, normalisation
// ------------------------------------------------------------------------------------------------

#[path = "op_proptests/conv.rs"]
mod conv;
