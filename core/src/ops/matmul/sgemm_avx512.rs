//! An f32 GEMM for AVX-512 that reads A in place.
//!
//! `matrixmultiply` (like BLIS) packs both operands into panels before every product. At the
//! shapes of an EBM step (a batch of 256–1024 rows times a 128–256-wide weight) packing the
//! batch-sized operand costs about a quarter of the multiply itself: 1024×128·128×128 ran at
//! ~200 GFLOP/s. Here each 12×32 tile of C lives in 24 zmm accumulators; A's elements are
//! broadcast straight from memory (any strides, so Aᵀ is free). Only B is packed, per depth
//! block into contiguous KC×32 panels (see `pack`), or once per contents for a kept weight
//! (`packed_b`). N's last partial panel is zero-padded in B and stored through masks; M's last
//! rows take 8-, 4- and 1-row tiles. Rows are swept in blocks of MC so the A block stays in
//! L2 across all panels.
//!
//! Every element of C is summed over the depth in the same order whatever the tile or row
//! block it falls in (one FMA chain per element from zero or the bias, each later depth
//! block's chain added onto C): the result does not depend on how rows are split between
//! threads, nor on whether B was packed per product or kept.

use super::pack::{kernel_entries, sweep, BSource, PanelBlock};
use std::arch::x86_64::*;

const MR: usize = 12;
/// Columns per panel: a KC×32 packed f32 panel is 32 KiB.
pub(super) const NR: usize = 32;
/// Rows per block: MC×KC of A (96 KiB) stays in L2 while the block sweeps every panel.
const MC: usize = 96;

/// One MR×(≤32) tile of C = A·B over depth `kc` (+ C when `accumulate`, from the bias row
/// when `bias`), with B a packed kc×32 panel; with `scale`, each stored element is multiplied
/// by the one at the same place of D (row stride `ldc`) first.
///
/// # Safety
/// AVX-512F present; a[i·rsa + p·csa] valid for i < R, p < kc; `bp` holds kc×32 elements;
/// c[i·ldc + j], D's and the bias valid where the masks are set.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    kc: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    (m0, m1): (__mmask16, __mmask16),
    accumulate: bool,
    bias: Option<*const f32>,
    scale: Option<*const f32>,
) {
    // SAFETY: the function's contract (AVX-512F present, every pointer valid where read or
    // written under the masks).
    unsafe {
        // C starts at zero, or at the bias row (a linear layer's b, no pass over C for it)
        let (z0, z1) = match bias {
            Some(bp) => (
                _mm512_maskz_loadu_ps(m0, bp),
                _mm512_maskz_loadu_ps(m1, bp.add(16)),
            ),
            None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
        };
        let mut acc0 = [z0; R];
        let mut acc1 = [z1; R];
        for p in 0..kc {
            let b0 = _mm512_loadu_ps(bp.add(p * NR));
            let b1 = _mm512_loadu_ps(bp.add(p * NR + 16));
            let ap = a.offset(p as isize * csa);
            for i in 0..R {
                let av = _mm512_set1_ps(*ap.offset(i as isize * rsa));
                acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
                acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
            }
        }
        for i in 0..R {
            let cp = c.add(i * ldc);
            let (mut r0, mut r1) = (acc0[i], acc1[i]);
            if accumulate {
                r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, cp));
                r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, cp.add(16)));
            }
            if let Some(d) = scale {
                let dp = d.add(i * ldc);
                r0 = _mm512_mul_ps(r0, _mm512_maskz_loadu_ps(m0, dp));
                r1 = _mm512_mul_ps(r1, _mm512_maskz_loadu_ps(m1, dp.add(16)));
            }
            _mm512_mask_storeu_ps(cp, m0, r0);
            _mm512_mask_storeu_ps(cp.add(16), m1, r1);
        }
    }
}

kernel_entries!("avx512f");

/// The driver of [`sgemm`] and [`sgemm_packed_b`].
///
/// # Safety
/// As theirs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_from(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: BSource,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias: Option<*const f32>,
    scale: Option<*const f32>,
) {
    let lane_mask = |w: usize| ((1u32 << w.min(16)) - 1) as __mmask16;
    // SAFETY: the function's contract; the closure stays inside A, the panel and C. It is
    // inlined: a closure does not inherit the caller's target features, so an outlined one
    // would call the tile's intrinsics as functions (2 GFLOP/s).
    unsafe {
        sweep::<NR>(
            (m, k, n),
            MC,
            b,
            (c, ldc),
            accumulate,
            bias,
            #[inline(always)]
            |blk: PanelBlock| {
                let PanelBlock {
                    bp,
                    k0,
                    kc,
                    j0,
                    rows: (i_start, i_end),
                } = blk;
                let nr = (n - j0).min(NR);
                let masks = (lane_mask(nr), lane_mask(nr.saturating_sub(16)));
                // later depth blocks accumulate onto C; the bias enters with the first
                let acc = accumulate || k0 > 0;
                let bias_j = bias.filter(|_| k0 == 0).map(|bv| bv.add(j0));
                // D multiplies the finished sums: at the last depth block's stores
                let scale_j = scale.filter(|_| k0 + kc == k).map(|d| d.add(j0));
                let mut i0 = i_start;
                while i0 < i_end {
                    // the tile reads rows i0.. (< m) and depths k0..k0+kc of A and the
                    // packed panel, and writes rows < m, columns < n of C (a partial last
                    // panel through masks)
                    let ai = a.offset(i0 as isize * rsa + k0 as isize * csa);
                    let ci = c.add(i0 * ldc + j0);
                    let di = scale_j.map(|d| d.add(i0 * ldc));
                    macro_rules! run {
                        ($r:expr) => {{
                            tile::<$r>(kc, ai, (rsa, csa), bp, ci, ldc, masks, acc, bias_j, di);
                            $r
                        }};
                    }
                    i0 += match i_end - i0 {
                        r if r >= MR => run!(MR),
                        r if r >= 8 => run!(8),
                        r if r >= 4 => run!(4),
                        _ => run!(1),
                    };
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel_check::{check, check_prepacked};
    use proptest::prelude::*;

    fn has_avx512() -> bool {
        let ok = std::arch::is_x86_feature_detected!("avx512f");
        if !ok {
            eprintln!("skipped: this CPU has no AVX-512F (the kernel is never called here)");
        }
        ok
    }

    super::super::kernel_check::via_packed_b!();

    #[test]
    fn a_transposed_gives_the_bits_of_a_in_place() {
        if has_avx512() {
            super::super::kernel_check::check_a_layouts([super::sgemm, via_packed_b]);
        }
    }

    #[test]
    fn prepacked_b_gives_the_same_bits() {
        if has_avx512() {
            check_prepacked(super::sgemm, via_packed_b);
        }
    }

    #[test]
    fn scaled_stores_are_the_product_times_d() {
        if has_avx512() {
            super::super::kernel_check::check_scaled(via_packed_b_scaled);
        }
    }

    #[test]
    fn agrees_with_reference_on_every_layout_and_remainder() {
        if !has_avx512() {
            return;
        }
        // remainders in every direction: m mod 12 ∈ {0, 1, 8, 4+3}, n mod 32 ∈ {0, 1, 17, 31},
        // and depths past one KC block
        for (q, &(m, k, n)) in [
            (24, 5, 32),
            (1, 1, 1),
            (13, 7, 17),
            (20, 3, 33),
            (7, 64, 63),
            (37, 130, 96),
            (12, 1, 31),
            (20, 600, 40), // three depth blocks of KC
            (100, 64, 70), // past one MC block of rows
            (5, 0, 7),     // no depth: C is the bias, itself or zero
        ]
        .iter()
        .enumerate()
        {
            for (ta, tb, pad) in [
                (false, false, 0),
                (true, false, 2),
                (false, true, 1),
                (true, true, 0),
            ] {
                check(super::sgemm, m, k, n, ta, tb, pad, q as u64 * 10);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn agrees_with_reference_on_random_shapes(
            m in 1usize..120, k in 1usize..300, n in 1usize..80,
            ta in any::<bool>(), tb in any::<bool>(), pad in 0usize..4, seed in 0u64..1000,
        ) {
            if has_avx512() {
                check(super::sgemm, m, k, n, ta, tb, pad, seed);
            }
        }
    }
}
