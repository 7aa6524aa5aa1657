//! Vectorisable transcendental functions for f32, and runtime dispatch of element-wise loops
//! to AVX-512 / AVX2 code paths.
//!
//! `exp_f32` is the Cephes `expf` scheme (range reduction x = n·ln2 + r, |r| ≤ ln2/2, degree-6
//! polynomial, 2ⁿ built in the exponent bits) written branch-free so LLVM vectorises it; libm's
//! `expf` is a scalar call and made SiLU 20× slower than a matmul of the same size.

/// e^x for f32, within 2 ulp of libm on the normal range; 0 below −87.33 (where the result
/// would be subnormal) and +inf above 88.72. NaN propagates.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let xc = if x < -87.33 { -87.33 } else { x };
    let xc = if xc > 88.3 { 88.3 } else { xc };
    let y = exp_f32_poly(xc);
    let y = if x > 88.72 { f32::INFINITY } else { y };
    if x < -87.33 {
        0.0
    } else {
        y
    }
}

/// 1 + e^(−x) for f32, σ's denominator (σ = 1/(1 + e^(−x))): the range reduction of
/// `exp_f32` with −x folded into its constants, a degree-5 polynomial (relative error
/// ≤ 1.8·10⁻⁷, against `exp_f32`'s degree 7 and 0.8·10⁻⁷; coefficients fitted here for minimax
/// relative error of e^r on |r| ≤ ln2/2) and no fix-ups at the ends: x is clamped to
/// [−89, 87.33], so e^(−x) is e^(−87.33) above (σ = 1 either way) and +∞ from x ≈ −88.38 (σ = 0
/// where it would be a subnormal ≤ 4·10⁻³⁹). Both clamps are `x < c ? c : x` forms, one
/// `vminps`/`vmaxps` each, which pass NaN through. 15 vector operations instead of 18 plus a
/// negation; with SiLU′ from x·σ (`silu_d1_from`), SiLU's fused σ pass went from 2.23 to
/// 1.5–1.8 ns per element on the AVX2 EPYC, and that pass is a fifth of an SiLU MLP's score.
///
/// The sum is one fused multiply-add, 2ⁿ·p + 1, where the separate ops were 2ⁿ·p and then
/// the sum (the factors of [`exp_neg_f32_parts`]). 2ⁿ·p is exact (a power of two times p; where it
/// is subnormal, 1 + it rounds to 1 both ways, and 2ⁿ = +∞ gives +∞ both ways), so the single
/// rounding gives the same bits with one operation fewer (this loop waits on its instructions'
/// latencies, not on the FMA pipes: 0.243 → 0.212 ns per element with AVX2, 0.177 → 0.170
/// with AVX-512, on the AVX-512 EPYC).
#[inline(always)]
pub fn logistic_denominator_f32(x: f32) -> f32 {
    let (scale, p) = exp_neg_f32_parts(x);
    scale.mul_add(p, 1.0)
}

/// (2ⁿ, p) with e^(−x) = 2ⁿ·p for [`logistic_denominator_f32`]: x clamped, n = round(−x·log₂e)
/// and p = e^r, r = −x − n·ln2, by the degree-5 polynomial.
#[inline(always)]
fn exp_neg_f32_parts(x: f32) -> (f32, f32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0;
    const C: [f32; 4] = [0.499_992_3, 0.166_671_14, 0.041_890_114, 0.008_312_525];
    let xc = if x > 87.33 { 87.33 } else { x };
    let xc = if xc < -89.0 { -89.0 } else { xc };
    // n = round(−x·log₂e); u = x + n·ln2 = −r with r = −x − n·ln2 ∈ [−ln2/2, ln2/2]
    let nm = xc.mul_add(-LOG2E, MAGIC);
    let n = nm - MAGIC;
    let u = n.mul_add(LN2_LO, n.mul_add(LN2_HI, xc));
    // e^r = 1 + r + r²(c₀ + c₁r + c₂r² + c₃r³) at r = −u
    let q = (-C[3]).mul_add(u, C[2]);
    let q = q.mul_add(u, -C[1]);
    let q = q.mul_add(u, C[0]);
    let p = q.mul_add(u * u, -u) + 1.0;
    let ni = nm.to_bits().wrapping_sub(MAGIC.to_bits());
    (f32::from_bits(ni.wrapping_add(127) << 23), p)
}

/// ln(1 + t) for f32 t in [0, 1] (softplus's log1p(e^(−|x|)), where libm's scalar `log1pf`
/// was 1.5% of an NCE step), within 2 ulp of the f64 value; branch-free so loops vectorise.
///
/// u = 1 + t rounds; ln(1 + t) = ln u + (t − (u − 1))/u to first order in that rounding error.
/// ln u by the fdlibm `e_logf.c` scheme: u = 2ᵉ·m with m ∈ (√½, √2], f = m − 1, s = f/(2 + f),
/// ln(1 + f) = f − (f²/2 − s(f²/2 + R(s²))) with R its minimax polynomial (Lg1..Lg7), plus
/// e·ln 2 in two parts. t = 0 (e^(−|x|) underflowed) gives 0 exactly.
#[inline(always)]
pub fn ln_1p_unit_f32(t: f32) -> f32 {
    // fdlibm's coefficients (shared with the f64 logarithm of ebm-philox), rounded to f32
    const LG: [f32; 7] = {
        let l = ebm_philox::LN_LG;
        [
            l[0] as f32,
            l[1] as f32,
            l[2] as f32,
            l[3] as f32,
            l[4] as f32,
            l[5] as f32,
            l[6] as f32,
        ]
    };
    const LN2_HI: f32 = 6.931_381e-1;
    const LN2_LO: f32 = 9.058_001e-6;
    let u = 1.0 + t;
    let c = (t - (u - 1.0)) / u;
    let big = u > std::f32::consts::SQRT_2;
    let (m, e) = if big { (0.5 * u, 1.0) } else { (u, 0.0) };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * LG[5].mul_add(w, LG[3]).mul_add(w, LG[1]);
    let t2 = z * LG[6].mul_add(w, LG[4]).mul_add(w, LG[2]).mul_add(w, LG[0]);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    e * LN2_HI + ((f - (hfsq - s.mul_add(hfsq + r, e * LN2_LO))) + c)
}

/// `exp_f32`'s range reduction and polynomial for x already in [−87.33, 89]; 2¹²⁸ = +∞ from
/// the exponent bits when x rounds to n = 128.
#[inline(always)]
fn exp_f32_poly(xc: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
                                     // Fused multiply-adds throughout: Rust never contracts a·b + c on its own, and separate
                                     // multiplies and adds doubled both the instruction count and the dependency chain.
    let nm = xc.mul_add(LOG2E, MAGIC);
    let n = nm - MAGIC;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    let r2 = r * r;
    let p = 1.987_569_1e-4f32.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r2, r) + 1.0;
    // n sits in the low mantissa bits of nm: 2ⁿ from integer ops alone (no float→int convert)
    let ni = nm.to_bits().wrapping_sub(MAGIC.to_bits());
    let scale = f32::from_bits(ni.wrapping_add(127) << 23);
    p * scale
}

/// Runs `body` compiled for the widest vector unit this CPU has, no wider than the GEMM path
/// ([`crate::gemm_path`]): `EBM_GEMM=avx2` runs every vectorised loop as on an AVX2-only
/// machine, not only the products. `body` must be an `#[inline(always)]`-friendly loop: it is
/// inlined into each feature-specific copy.
#[inline(always)]
pub fn dispatch<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match vector_level() {
            // SAFETY: the level's features were detected at run time.
            VectorLevel::Avx512 => return unsafe { avx512(body) },
            // SAFETY: as above.
            VectorLevel::Avx2 => return unsafe { avx2(body) },
            VectorLevel::Baseline => {}
        }
    }
    body()
}

/// The instruction sets [`dispatch`] compiles loops for.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum VectorLevel {
    Avx512,
    Avx2,
    Baseline,
}

/// The widest level both this CPU and the GEMM path allow, decided once.
#[cfg(target_arch = "x86_64")]
fn vector_level() -> VectorLevel {
    use crate::ops::matmul::GemmPath;
    static LEVEL: std::sync::OnceLock<VectorLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let path = crate::ops::matmul::gemm_path();
        if path == GemmPath::Avx512
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            VectorLevel::Avx512
        } else if path != GemmPath::Portable
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            VectorLevel::Avx2
        } else {
            VectorLevel::Baseline
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_denominator_gives_an_accurate_sigmoid() {
        let sig = |x: f32| 1.0 / logistic_denominator_f32(x);
        let (mut worst_e, mut worst_d, mut worst_s) = (0f64, 0f64, 0f64);
        let mut x = -120.0f32;
        while x < 120.0 {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            let got = sig(x) as f64;
            if want >= f32::MIN_POSITIVE as f64 {
                worst_s = worst_s.max((got - want).abs() / want);
            } else {
                // where σ is subnormal in f32: subnormal or 0
                assert!(
                    (0.0..f32::MIN_POSITIVE as f64).contains(&got),
                    "σ at {x}: {got}"
                );
            }
            if x.abs() < 87.0 {
                let e = (-(x as f64)).exp();
                let (scale, p) = exp_neg_f32_parts(x);
                worst_e = worst_e.max(((scale * p) as f64 - e).abs() / e);
                let got_d = logistic_denominator_f32(x) as f64;
                worst_d = worst_d.max((got_d - (1.0 + e)).abs() / (1.0 + e));
            }
            x += 0.00173;
        }
        // e^(−x) within 1.5 ulp; 1 + e^(−x) and σ within 2 ulp (f32 ε = 1.19e-7)
        assert!(worst_e < 1.9e-7, "e^-x worst relative error {worst_e:e}");
        assert!(
            worst_d < 2.4e-7,
            "1 + e^-x worst relative error {worst_d:e}"
        );
        assert!(worst_s < 2.4e-7, "σ worst relative error {worst_s:e}");
        assert_eq!(sig(0.0), 0.5);
        assert_eq!(sig(1000.0), 1.0);
        assert_eq!(sig(-1000.0), 0.0);
        assert_eq!(sig(f32::INFINITY), 1.0);
        assert_eq!(sig(f32::NEG_INFINITY), 0.0);
        assert!(sig(f32::NAN).is_nan());
        // the clamps must stay NaN-preserving inside a vectorised loop too
        let xs = [f32::NAN, 1.0, -1.0, 3.0, f32::NAN, 0.5, -200.0, 200.0];
        let mut out = [0.0f32; 8];
        dispatch(|| {
            for (o, &x) in out.iter_mut().zip(&xs) {
                *o = sig(x);
            }
        });
        assert!(out[0].is_nan() && out[4].is_nan());
        assert_eq!(out[6], 0.0);
        assert_eq!(out[7], 1.0);
    }

    #[test]
    fn logistic_denominator_is_the_two_step_sum_bit_for_bit() {
        // 2ⁿ·p + 1 in one rounding equals 2ⁿ·p, then + 1, everywhere: a dense scan, the clamp
        // ends, where 2ⁿ·p is subnormal or +∞, and NaN
        let grid = (-220_000..=220_000).map(|i| i as f32 * 0.000_917);
        let ends = [
            -89.0,
            -88.38,
            -88.0,
            87.0,
            87.33,
            88.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let mut n = 0;
        for x in grid.chain(ends) {
            let (scale, p) = exp_neg_f32_parts(x);
            let two_step = 1.0 + scale * p;
            assert_eq!(
                logistic_denominator_f32(x).to_bits(),
                two_step.to_bits(),
                "x = {x}"
            );
            n += 1;
        }
        assert_eq!(n, 440_009);
        assert!(logistic_denominator_f32(f32::NAN).is_nan());
        // the check can fail: p one ulp larger changes the sum where e^(−x) ≫ 1
        let differs = (1..2000).map(|i| -(i as f32) * 0.01).any(|x| {
            let (scale, p) = exp_neg_f32_parts(x);
            let nudged = scale.mul_add(f32::from_bits(p.to_bits() + 1), 1.0);
            nudged.to_bits() != (1.0 + scale * p).to_bits()
        });
        assert!(differs);
    }

    #[test]
    fn ln_1p_unit_is_within_two_ulp() {
        // a dense grid of [0, 1], the ends, and tiny t where ln(1 + t) = t
        let mut worst = 0.0f64;
        let grid = (0..=200_000).map(|i| i as f32 / 200_000.0);
        let tiny = (1..=60).map(|p| 2f32.powi(-p) * 1.37);
        for t in grid.chain(tiny).chain([0.0, 1.0, f32::MIN_POSITIVE, 1e-30]) {
            let got = ln_1p_unit_f32(t) as f64;
            let want = (t as f64).ln_1p();
            let ulp = (want as f32).abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            worst = worst.max((got - want).abs() / ulp);
            assert!(
                (got - want).abs() <= 2.0 * ulp,
                "t = {t:e}: {got:e} vs {want:e}"
            );
        }
        assert_eq!(ln_1p_unit_f32(0.0), 0.0);
        // the check can fail: libm's f32 result stays inside, a 3-ulp nudge does not
        assert!(worst > 0.0);
        let nudged = (0.3f32).ln_1p() * (1.0 + 3.0 * f32::EPSILON);
        assert!(
            (nudged as f64 - 0.3f64.ln_1p()).abs() > 2.0 * 0.3f64.ln_1p() * f32::EPSILON as f64
        );
    }

    #[test]
    fn exp_f32_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        // f32 epsilon is 1.19e-7: within about 2 ulp everywhere on the normal range
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
