//! Scalar forms of the numerically delicate element-wise functions, generic over the element
//! type: the CPU column of ebm-optable's tables calls them, and so do SiLU's fused passes
//! ([`super::silu`]). Everything is `#[inline(always)]` so the callers' loops vectorise.

use crate::dtype::Elem;

/// σ(x) = 1/(1 + e⁻ˣ). Branch-free and still stable: for x ≪ 0, e⁻ˣ = inf gives exactly 0
/// (`Elem::logistic_denominator`: in f32 a shorter polynomial that saturates at the ends).
#[inline(always)]
pub(crate) fn sigmoid<T: Elem>(x: T) -> T {
    T::one() / logistic_denominator(x)
}

/// 1 + e⁻ˣ, σ's denominator: a σ pass in two loops ([`logistic_denominators`]) forms it in
/// the first and divides in the second.
#[inline(always)]
pub(crate) fn logistic_denominator<T: Elem>(x: T) -> T {
    x.logistic_denominator()
}

/// softplus(x) = max(x, 0) + log1p(e^{−|x|}): no overflow for either sign.
#[inline(always)]
pub(crate) fn softplus<T: Elem>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp_fast().ln_1p_unit()
}

/// −1, 0 or 1 (0 for NaN).
#[inline(always)]
pub(crate) fn sign<T: Elem>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

/// xⁿ by repeated squaring: the sequence of roundings of Rust's `powi` (compiler-rt's
/// `__powisf2` / `__powidf2`, which a `powi` with a run-time exponent calls), and of
/// kernels/common.cuh's `ebm_powi`; inlined here, so a loop over elements makes no calls.
#[inline(always)]
pub(crate) fn powi<T: Elem>(mut x: T, mut n: i32) -> T {
    let recip = n < 0;
    let mut r = T::one();
    loop {
        if n & 1 != 0 {
            r = r * x;
        }
        n /= 2;
        if n == 0 {
            break;
        }
        x = x * x;
    }
    if recip {
        T::one() / r
    } else {
        r
    }
}

/// 1 for true, 0 for false (the comparison ops' results).
#[inline(always)]
pub(crate) fn flag<T: Elem>(c: bool) -> T {
    if c {
        T::one()
    } else {
        T::zero()
    }
}

// SiLU's derivatives from x and s = σ(x): the `silu_dk(x)` forms evaluate σ here, the `_from`
// forms take a kept σ (the same operations, so both give the same bits).

/// Elements per chunk of a σ pass written in two loops ([`logistic_denominators`]).
pub(crate) const SIGMOID_CHUNK: usize = 256;

/// den = 1 + e^(−x), σ's denominator, for one chunk of a σ pass; the pass's second loop takes
/// σ = 1/den (the bits of [`sigmoid`]) and forms its outputs. With 256-bit vectors a pass that
/// computes σ and several outputs per element in one loop runs out of registers (its constants
/// are reloaded every iteration) and ran 16% slower than in these two loops.
#[inline(always)]
pub(crate) fn logistic_denominators<T: Elem>(x: &[T], den: &mut [T]) {
    for (d, &x) in den.iter_mut().zip(x) {
        *d = logistic_denominator(x);
    }
}

/// silu′(x) = σ + xσ(1 − σ) from s = σ(x): written with x·s, silu itself, which a pass that
/// computes both (`silu_and_d1`) shares, one multiply fewer per element.
#[inline(always)]
pub(crate) fn silu_d1_from<T: Elem>(x: T, s: T) -> T {
    s + x * s * (T::one() - s)
}

/// silu″(x) = σ(1 − σ)(2 + x(1 − 2σ)) from s = σ(x).
#[inline(always)]
pub(crate) fn silu_d2_from<T: Elem>(x: T, s: T) -> T {
    let two = T::one() + T::one();
    s * (T::one() - s) * (two + x * (T::one() - two * s))
}

/// silu‴(x) = p·(q(3 + xq) − 2xp) with p = σ(1 − σ), q = 1 − 2σ, from s = σ(x).
#[inline(always)]
pub(crate) fn silu_d3_from<T: Elem>(x: T, s: T) -> T {
    let two = T::one() + T::one();
    let p = s * (T::one() - s);
    let q = T::one() - two * s;
    p * (q * (T::of(3.0) + x * q) - two * x * p)
}

/// silu′(x).
#[inline(always)]
pub(crate) fn silu_d1<T: Elem>(x: T) -> T {
    silu_d1_from(x, sigmoid(x))
}

/// silu″(x).
#[inline(always)]
pub(crate) fn silu_d2<T: Elem>(x: T) -> T {
    silu_d2_from(x, sigmoid(x))
}

/// silu‴(x).
#[inline(always)]
pub(crate) fn silu_d3<T: Elem>(x: T) -> T {
    silu_d3_from(x, sigmoid(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powi_is_rusts_powi_bit_for_bit() {
        let mut rng = crate::Rng::new(3);
        for x in rng.normal_vec(200).into_iter().map(|x| 3.0 * x) {
            for n in -17..=17 {
                // a run-time exponent, as in the op's loop (a constant one LLVM expands itself)
                let n = std::hint::black_box(n);
                assert_eq!(powi(x, n).to_bits(), x.powi(n).to_bits(), "{x}^{n}");
                let y = x as f32;
                assert_eq!(powi(y, n).to_bits(), y.powi(n).to_bits(), "{y}^{n}");
            }
        }
    }
}
