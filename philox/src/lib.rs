//! The random stream shared by every ebm device: Philox4x32-10 (Salmon et al. 2011, "Parallel
//! random numbers: as easy as 1, 2, 3") and the maps from its blocks to uniforms and normals.
//!
//! ebm-core's `Rng` (CPU) and ebm-cuda's kernels (`kernels/philox.cuh`, and its host copy) both
//! build on these definitions, so a draw is the same numbers on any device and thread count.
//! Everything here is `#[inline(always)]` and branch-free so that callers' loops vectorise.

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The Philox4x32 bijection with 10 rounds: 128-bit counter, 64-bit key → 128 random bits.
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// Blocks made per pass of the vectorised draw.
pub const LANES: usize = 16;

/// Philox blocks `counter .. counter + LANES` of `stream`, as four lane arrays (word w of
/// block l is `out[w][l]`). One loop over lanes around the (fully unrolled) rounds, so the
/// loop vectoriser runs the lanes side by side; with the rounds outermost it stayed scalar.
#[inline(always)]
pub fn philox_lanes(counter: u64, stream: u64, key: [u32; 2]) -> [[u32; LANES]; 4] {
    let mut out = [[0u32; LANES]; 4];
    let [o0, o1, o2, o3] = &mut out;
    for (l, (((w0, w1), w2), w3)) in o0
        .iter_mut()
        .zip(o1.iter_mut())
        .zip(o2.iter_mut())
        .zip(o3.iter_mut())
        .enumerate()
    {
        let ctr = counter.wrapping_add(l as u64);
        let b = philox4x32_10(
            [
                ctr as u32,
                (ctr >> 32) as u32,
                stream as u32,
                (stream >> 32) as u32,
            ],
            key,
        );
        (*w0, *w1, *w2, *w3) = (b[0], b[1], b[2], b[3]);
    }
    out
}

/// Box–Muller on a block's two uniforms u₁ = (b₀, b₁), u₂ = (b₂, b₃):
/// r = √(−2 ln u₁), θ = 2π u₂ → (r cos θ, r sin θ), in f64. The contract (shared with the
/// CUDA kernels, `philox.cuh`) is libm's: ln, sin and cos here are branch-free versions
/// accurate to about 1 ulp so the loop vectorises (scalar libm calls were a third of a PCD
/// step), and they agree with libm to ~1e-15.
#[inline(always)]
pub fn box_muller(b: [u32; 4]) -> (f64, f64) {
    let u1 = open_unit(b[0], b[1]);
    let u2 = open_unit(b[2], b[3]);
    let r = (-2.0 * ln_unit(u1)).sqrt();
    let (sin, cos) = sin_cos_0_tau(std::f64::consts::TAU * u2);
    (r * cos, r * sin)
}

/// fdlibm's minimax coefficients Lg1..Lg7 of ln(1 + f) = f − (f²/2 − s(f²/2 + R(s²))),
/// R(z) = Σᵢ Lgᵢ₊₁ zⁱ⁺¹, s = f/(2 + f) (`e_log.c`; `e_logf.c` uses the same values rounded to
/// f32, as ebm-core's f32 `ln_1p_unit_f32` does).
pub const LN_LG: [f64; 7] = [
    6.666_666_666_666_735e-1,
    3.999_999_999_940_942e-1,
    2.857_142_874_366_239e-1,
    2.222_219_843_214_978_4e-1,
    1.818_357_216_161_805e-1,
    1.531_383_769_920_937_3e-1,
    1.479_819_860_511_658_6e-1,
];

/// ln x for normal, positive, finite x (the uniforms here are in [2⁻⁵⁴, 1)).
///
/// The fdlibm `e_log.c` scheme: x = 2ᵉ·m with m ∈ [√½, √2), f = m − 1, s = f/(2 + f) and
/// ln(1 + f) = f − (f²/2 − s(f²/2 + R(s²))) with R its degree-14 minimax polynomial
/// (coefficients Lg1..Lg7), then + e·ln 2 in two parts. Error < 1 ulp.
#[inline(always)]
pub fn ln_unit(x: f64) -> f64 {
    const LG: [f64; 7] = LN_LG;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let bits = x.to_bits();
    let e0 = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m0 = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m0 > std::f64::consts::SQRT_2;
    let m = if big { 0.5 * m0 } else { m0 };
    let e = (if big { e0 + 1 } else { e0 }) as f64;
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG[1] + w * (LG[3] + w * LG[5]));
    let t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    e * LN2_HI - ((hfsq - (s * (hfsq + r) + e * LN2_LO)) - f)
}

/// (sin θ, cos θ) for θ ∈ [0, 2π]: Cody–Waite reduction by the nearest multiple q·π/2 (π/2
/// in a 33-bit head, exact for q ≤ 4, and a tail), fdlibm's `__kernel_sin`/`__kernel_cos`
/// polynomials on |r| ≤ π/4, and the quadrant's swap and signs as selects.
#[inline(always)]
pub fn sin_cos_0_tau(theta: f64) -> (f64, f64) {
    const PIO2_1: f64 = 1.570_796_326_734_125_6;
    const PIO2_1T: f64 = 6.077_100_506_506_192e-11;
    const S: [f64; 6] = [
        -1.666_666_666_666_663_2e-1,
        8.333_333_333_322_49e-3,
        -1.984_126_982_985_795e-4,
        2.755_731_370_707_006_8e-6,
        -2.505_076_025_340_686_3e-8,
        1.589_690_995_211_55e-10,
    ];
    const C: [f64; 6] = [
        4.166_666_666_666_66e-2,
        -1.388_888_888_887_411e-3,
        2.480_158_728_947_673e-5,
        -2.755_731_435_139_066_3e-7,
        2.087_572_321_298_175e-9,
        -1.135_964_755_778_819_5e-11,
    ];
    let q = (theta * std::f64::consts::FRAC_2_PI).round();
    let x = (theta - q * PIO2_1) - q * PIO2_1T;
    let z = x * x;
    let sr = S[1] + z * (S[2] + z * (S[3] + z * (S[4] + z * S[5])));
    let sin_x = x + z * x * (S[0] + z * sr);
    let cr = z * (C[0] + z * (C[1] + z * (C[2] + z * (C[3] + z * (C[4] + z * C[5])))));
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let cos_x = w + (((1.0 - w) - hz) + z * cr);
    // q is a whole number in [0, 4]: 2⁵² + q holds it in the mantissa's low bits exactly
    // (`q as i64` saturates, and that check kept the cast scalar, one lane at a time)
    let quadrant = (q + TWO_52).to_bits() & 3;
    let (s, c) = if quadrant & 1 == 1 {
        (cos_x, -sin_x)
    } else {
        (sin_x, cos_x)
    };
    if quadrant & 2 == 2 {
        (-s, -c)
    } else {
        (s, c)
    }
}

/// Four standard normals in f32 from one block, two Box–Muller pairs computed in f32:
/// (b₀, b₁) → (r cos θ, r sin θ) and (b₂, b₃) likewise, with r = √(−2 ln u) from
/// u = [`radius_unit_f32`] of the first word and θ the second word as a fraction of a turn
/// ([`sin_cos_turn_f32`]). Every operation is a single f32 rounding (no FMA contraction; the
/// division and the square root IEEE-rounded), the contract the CUDA kernels repeat
/// (`philox.cuh`), so an f32 draw is the same numbers on every device. Half the Philox blocks
/// and a third of the arithmetic of `box_muller`'s f64 values rounded to f32; the tails end
/// at |z| = √(64 ln 2) ≈ 6.66 (u ≥ 2⁻³²), a probability of 3·10⁻¹¹ beyond.
#[inline(always)]
pub fn box_muller_f32(b: [u32; 4]) -> [f32; 4] {
    let pair = |radius: u32, angle: u32| {
        let r = (-2.0 * ln_unit_f32(radius_unit_f32(radius))).sqrt();
        let (sin, cos) = sin_cos_turn_f32(angle);
        (r * cos, r * sin)
    };
    let (z0, z1) = pair(b[0], b[1]);
    let (z2, z3) = pair(b[2], b[3]);
    [z0, z1, z2, z3]
}

/// 32 random bits as a uniform in (0, 1] for Box–Muller's radius: (b + 1)·2⁻³², with `b`
/// rounded to f32 first (exact below 2²⁴, where the small u of the tails live).
#[inline(always)]
pub fn radius_unit_f32(b: u32) -> f32 {
    (b as f32 + 1.0) * TWO_M32_F32
}

/// 2⁻³² in f32.
const TWO_M32_F32: f32 = 1.0 / 4_294_967_296.0;

/// FreeBSD's `e_logf.c` minimax coefficients Lg1..Lg4 for f32 (0xaaaaaa.0p-24, 0xccce13.0p-25,
/// 0x91e9ee.0p-25, 0xf89e26.0p-26).
const LN_LG_F32: [f32; 4] = [6.666_666e-1, 4.000_097_2e-1, 2.849_878_7e-1, 2.427_907_9e-1];

/// ln x in f32 for normal, positive, finite x (here u ∈ [2⁻³², 1]): `ln_unit`'s scheme with
/// the f32 polynomial of `e_logf.c`, R(z) = Lg1·z + Lg2·z² + Lg3·z³ + Lg4·z⁴. Error < 1 ulp.
#[inline(always)]
pub fn ln_unit_f32(x: f32) -> f32 {
    const LG: [f32; 4] = LN_LG_F32;
    const LN2_HI: f32 = 6.931_381e-1;
    const LN2_LO: f32 = 9.058_001e-6;
    let bits = x.to_bits();
    let e0 = ((bits >> 23) & 0xff) as i32 - 127;
    let m0 = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m0 > std::f32::consts::SQRT_2;
    let m = if big { 0.5 * m0 } else { m0 };
    let e = (if big { e0 + 1 } else { e0 }) as f32;
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG[1] + w * LG[3]);
    let t2 = z * (LG[0] + w * LG[2]);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    e * LN2_HI - ((hfsq - (s * (hfsq + r) + e * LN2_LO)) - f)
}

/// (sin θ, cos θ) in f32 for θ = 2π·(b + ½)/2³², a 32-bit fraction of a turn. The reduction is
/// exact in integers: with w = b + 2²⁹ (mod 2³²), the quadrant is q = w >> 30 and the rest
/// x = π(2t + 1)/2³² with t = (w mod 2³⁰) − 2²⁹, so |x| < π/4 and θ = qπ/2 + x; then Cephes'
/// `sinf`/`cosf` minimax polynomials on |x| ≤ π/4 and the quadrant's swap and signs as selects.
#[inline(always)]
pub fn sin_cos_turn_f32(b: u32) -> (f32, f32) {
    const S: [f32; 3] = [-1.666_665_5e-1, 8.332_161e-3, -1.951_529_6e-4];
    const C: [f32; 3] = [4.166_664_6e-2, -1.388_731_6e-3, 2.443_315_7e-5];
    let w = b.wrapping_add(1 << 29);
    let quadrant = w >> 30;
    let t2 = (((w & 0x3fff_ffff) as i32 - (1 << 29)) << 1) | 1;
    let x = (t2 as f32 * std::f32::consts::PI) * TWO_M32_F32;
    let z = x * x;
    let sin_x = x + z * x * (S[0] + z * (S[1] + z * S[2]));
    let cos_x = (z * z * (C[0] + z * (C[1] + z * C[2])) - 0.5 * z) + 1.0;
    let (s, c) = if quadrant & 1 == 1 {
        (cos_x, -sin_x)
    } else {
        (sin_x, cos_x)
    };
    if quadrant & 2 == 2 {
        (-s, -c)
    } else {
        (s, c)
    }
}

/// 2⁵²: from it up to 2⁵³ the f64s are the whole numbers, one apart.
const TWO_52: f64 = 4_503_599_627_370_496.0;

/// 53 random bits as a uniform in the open interval (0, 1).
#[inline(always)]
pub fn open_unit(hi: u32, lo: u32) -> f64 {
    let bits = ((hi as u64) << 21) | ((lo as u64) >> 11);
    (bits as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer() {
        // Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32_10).
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn lanes_are_the_scalar_function() {
        let b = philox_lanes(u64::MAX - 3, 0x1234_5678_9ABC_DEF0, [7, 9]);
        for l in 0..LANES {
            let ctr = (u64::MAX - 3).wrapping_add(l as u64);
            let want = philox4x32_10(
                [ctr as u32, (ctr >> 32) as u32, 0x9ABC_DEF0, 0x1234_5678],
                [7, 9],
            );
            assert_eq!([b[0][l], b[1][l], b[2][l], b[3][l]], want, "lane {l}");
        }
    }

    #[test]
    fn math_matches_libm() {
        // ln and sin/cos on their own, over the whole range they are used on
        for i in 0..20_000 {
            let u = (i as f64 + 0.5) / 20_000.0;
            let x = u * u * u * u;
            assert!(
                (ln_unit(x) - x.ln()).abs() <= 2.3e-16 * x.ln().abs(),
                "ln {x}"
            );
            let th = std::f64::consts::TAU * u;
            let (s, c) = sin_cos_0_tau(th);
            assert!(
                (s - th.sin()).abs() < 2.3e-16 && (c - th.cos()).abs() < 2.3e-16,
                "{th}"
            );
        }
        assert_eq!(ln_unit(1.0), 0.0);
        assert!(
            (ln_unit(0.5 / (1u64 << 53) as f64) - (0.5 / (1u64 << 53) as f64).ln()).abs() < 1e-14
        );
    }

    #[test]
    fn box_muller_matches_libm_formula() {
        let mut worst = 0.0f64;
        for j in 0..50_000u64 {
            let b = philox4x32_10([j as u32, 0, 1, 2], [3, 4]);
            let (u1, u2) = (open_unit(b[0], b[1]), open_unit(b[2], b[3]));
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
            let (z0, z1) = box_muller(b);
            worst = worst.max((z0 - r * c).abs() / (1.0 + (r * c).abs()));
            worst = worst.max((z1 - r * s).abs() / (1.0 + (r * s).abs()));
        }
        assert!(worst < 4e-16, "{worst:e}");
    }

    #[test]
    fn f32_constants_are_the_published_bits() {
        let bits = LN_LG_F32.map(f32::to_bits);
        assert_eq!(bits, [0x3f2a_aaaa, 0x3ecc_ce13, 0x3e91_e9ee, 0x3e78_9e26]);
        assert_eq!(TWO_M32_F32, 2f32.powi(-32));
    }

    /// f32 units in the last place of `want` (at least the smallest normal's).
    fn ulps32(got: f32, want: f64) -> f64 {
        let ulp = (want.abs().max(f32::MIN_POSITIVE as f64) as f32).to_bits();
        let ulp = f32::from_bits(ulp & 0x7f80_0000) as f64 * f32::EPSILON as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn f32_math_is_within_an_ulp() {
        // ln over the radius uniforms' whole range, from 2⁻³² to 1
        let mut worst_ln = 0.0f64;
        for i in 0..=200_000u32 {
            let x = 2f32.powf(-32.0 * i as f32 / 200_000.0);
            worst_ln = worst_ln.max(ulps32(ln_unit_f32(x), (x as f64).ln()));
        }
        for b in [0, 1, 2, 1 << 24, u32::MAX - 1, u32::MAX] {
            let u = radius_unit_f32(b);
            assert!(u > 0.0 && u <= 1.0, "u({b}) = {u}");
            worst_ln = worst_ln.max(ulps32(ln_unit_f32(u), (u as f64).ln()));
        }
        assert_eq!(ln_unit_f32(1.0), 0.0);
        assert_eq!(radius_unit_f32(0), 2f32.powi(-32));
        assert!(worst_ln < 1.0, "ln: {worst_ln} ulp");
        // sin and cos of the exact angle 2π(b + ½)/2³², over every quadrant and its edges;
        // the error is in units of 2⁻²⁴ (|sin|, |cos| ≤ 1, and near their zeros an absolute
        // error is what a normal r·sin θ sees)
        let mut worst_sc = 0.0f64;
        let edges = (0..8u32).flat_map(|k| {
            let e = k.wrapping_mul(1 << 29);
            [e.wrapping_sub(1), e, e.wrapping_add(1)]
        });
        for b in (0..1_000_000u32).map(|i| i.wrapping_mul(4294)).chain(edges) {
            let th = std::f64::consts::TAU * (b as f64 + 0.5) / 4_294_967_296.0;
            let (s, c) = sin_cos_turn_f32(b);
            let e = (s as f64 - th.sin()).abs().max((c as f64 - th.cos()).abs());
            worst_sc = worst_sc.max(e / f32::EPSILON as f64);
        }
        assert!(worst_sc < 1.0, "sin/cos: {worst_sc} × 2⁻²³");
    }

    #[test]
    fn box_muller_f32_is_the_f64_formula_rounded() {
        // against r cos θ, r sin θ in f64 from the same u and θ: a few f32 roundings apart
        let mut worst = 0.0f64;
        for j in 0..200_000u64 {
            let b = philox4x32_10([j as u32, 0, 1, 2], [3, 4]);
            let z = box_muller_f32(b);
            for (h, (radius, angle)) in [(b[0], b[1]), (b[2], b[3])].into_iter().enumerate() {
                let r = (-2.0 * (radius_unit_f32(radius) as f64).ln()).sqrt();
                let th = std::f64::consts::TAU * (angle as f64 + 0.5) / 4_294_967_296.0;
                worst = worst.max((z[2 * h] as f64 - r * th.cos()).abs() / (1.0 + r));
                worst = worst.max((z[2 * h + 1] as f64 - r * th.sin()).abs() / (1.0 + r));
            }
        }
        assert!(worst < 2.5 * f32::EPSILON as f64, "{worst:e}");
        // the largest radius, from the smallest u
        let top = box_muller_f32([0, 0, u32::MAX, 1 << 30]);
        let r = (64.0 * std::f64::consts::LN_2).sqrt();
        assert!((top[0] as f64 - r).abs() < 1e-5, "{top:?}");
        assert_eq!(top[2..], [0.0, 0.0]); // u = 1: radius 0
    }
}
