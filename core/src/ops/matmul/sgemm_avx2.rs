//! An f32 GEMM for AVX2+FMA (Haswell and later, Zen 1–4 without AVX-512).
//!
//! Same plan as `sgemm_avx512`: A is read in place (its elements broadcast straight from
//! memory, any strides, so Aᵀ is free) and only B is copied. Each 6×16 tile of C lives in 12
//! ymm accumulators (two per row; with two B vectors and one broadcast, 15 of the 16
//! registers), which is the largest tile that keeps both FMA pipes busy without spilling.
//!
//! B is packed per depth block into contiguous KC×16 panels, zero-padded to 16 columns (see
//! `pack`): a panel is 16 KiB and stays in L1 while every row tile sweeps it. Rows are swept
//! in blocks of MC so the A block (MC×KC, 96 KiB) stays in L2 across all panels.
//!
//! Every element of C is summed over the depth in the same order whatever the tile or row
//! block it falls in (one FMA chain per element, depth blocks in order): the result does not
//! depend on how the rows are split between threads.

use super::pack::{kernel_entries, sweep, BSource, PanelBlock};
use std::arch::x86_64::*;

const MR: usize = 6;
/// Columns per panel: a KC×16 packed f32 panel is 16 KiB, half of a 32 KiB L1.
pub(super) const NR: usize = 16;
/// Rows per block: MC×KC of A (96 KiB) stays in L2 while the block sweeps every panel.
const MC: usize = 96;

/// What a tile does with C before adding the product: start from zero, from the bias row, or
/// from C itself.
#[derive(Clone, Copy)]
enum Start {
    Zero,
    Bias(*const f32),
    C,
}

/// One R×(≤16) tile of C = start + A·B over depth `kc`, with B a packed kc×16 panel.
/// `masks` is `Some` for a partial panel (lanes of columns < nr set) and selects masked
/// loads and stores of C and the bias.
///
/// # Safety
/// AVX2 and FMA present; a[i·rsa + p·csa] valid for i < R, p < kc; `bp` holds kc×16
/// elements; c[i·ldc + j] and the bias valid for i < R and the columns the masks allow (all
/// 16 without masks).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    kc: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    masks: Option<(__m256i, __m256i)>,
    start: Start,
    scale: Option<*const f32>,
) {
    // SAFETY: the function's contract; masked-off lanes are neither read nor written (and
    // cannot fault).
    unsafe {
        let (z0, z1) = match start {
            Start::Bias(bias) => load16(bias, masks),
            _ => (_mm256_setzero_ps(), _mm256_setzero_ps()),
        };
        let mut acc0 = [z0; R];
        let mut acc1 = [z1; R];
        for p in 0..kc {
            let b0 = _mm256_loadu_ps(bp.add(p * NR));
            let b1 = _mm256_loadu_ps(bp.add(p * NR + 8));
            let ap = a.offset(p as isize * csa);
            for i in 0..R {
                let av = _mm256_broadcast_ss(&*ap.offset(i as isize * rsa));
                acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
                acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
            }
        }
        for i in 0..R {
            let cp = c.add(i * ldc);
            let (mut r0, mut r1) = (acc0[i], acc1[i]);
            if let Start::C = start {
                let (c0, c1) = load16(cp, masks);
                r0 = _mm256_add_ps(r0, c0);
                r1 = _mm256_add_ps(r1, c1);
            }
            if let Some(d) = scale {
                let (d0, d1) = load16(d.add(i * ldc), masks);
                r0 = _mm256_mul_ps(r0, d0);
                r1 = _mm256_mul_ps(r1, d1);
            }
            match masks {
                Some((m0, m1)) => {
                    _mm256_maskstore_ps(cp, m0, r0);
                    _mm256_maskstore_ps(cp.add(8), m1, r1);
                }
                None => {
                    _mm256_storeu_ps(cp, r0);
                    _mm256_storeu_ps(cp.add(8), r1);
                }
            }
        }
    }
}

/// 16 elements at `p` as two vectors, masked-off lanes zero and unread.
///
/// # Safety
/// AVX2 present; p[j] valid for the lanes the masks allow (all 16 without masks).
#[inline(always)]
unsafe fn load16(p: *const f32, masks: Option<(__m256i, __m256i)>) -> (__m256, __m256) {
    // SAFETY: the function's contract
    unsafe {
        match masks {
            Some((m0, m1)) => (_mm256_maskload_ps(p, m0), _mm256_maskload_ps(p.add(8), m1)),
            None => (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))),
        }
    }
}

/// Lane masks selecting the first `nr` of 16 columns (two halves of 8).
fn column_masks(nr: usize) -> (__m256i, __m256i) {
    let lanes = |from: usize| {
        let mut m = [0i32; 8];
        for (l, v) in m.iter_mut().enumerate() {
            *v = if from + l < nr { -1 } else { 0 };
        }
        m
    };
    let (lo, hi) = (lanes(0), lanes(8));
    // SAFETY: unaligned loads of two 8-element i32 arrays (no feature beyond AVX, which the
    // only caller has).
    unsafe {
        (
            _mm256_loadu_si256(lo.as_ptr().cast()),
            _mm256_loadu_si256(hi.as_ptr().cast()),
        )
    }
}

kernel_entries!("avx2,fma");

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
    let full_masks = column_masks(n % NR);
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
                let masks = (n - j0 < NR).then_some(full_masks);
                // the bias enters with the first depth block; later blocks add onto C
                let start = match bias {
                    _ if accumulate || k0 > 0 => Start::C,
                    Some(bias) => Start::Bias(bias.add(j0)),
                    None => Start::Zero,
                };
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
                            tile::<$r>(kc, ai, (rsa, csa), bp, ci, ldc, masks, start, di);
                            $r
                        }};
                    }
                    // a tile of R < 4 rows has fewer than 8 independent FMA chains and waits
                    // on their latency (4 cycles on two pipes), taking as long as 4 rows: the
                    // last 7 or 8 rows go as 4 + 3 or 4 + 4 instead of 6 + 1 or 6 + 2, and the
                    // last 9 as 5 + 4 (the bits do not depend on the tiling)
                    i0 += match i_end - i0 {
                        7 | 8 => run!(4),
                        9 => run!(5),
                        r if r >= MR => run!(MR),
                        5 => run!(5),
                        4 => run!(4),
                        3 => run!(3),
                        2 => run!(2),
                        _ => run!(1),
                    };
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel_check::check;
    use proptest::prelude::*;

    fn has_avx2() -> bool {
        let ok = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if !ok {
            eprintln!("skipped: this CPU has no AVX2+FMA (the kernel is never called here)");
        }
        ok
    }

    #[test]
    fn agrees_with_reference_on_edges_and_depth_blocks() {
        if !has_avx2() {
            return;
        }
        // m mod 6 ∈ {0..5}, the last rows as 4 + 4, 6 + 4 + 4 and 6 + 5 + 4, n mod 16 ∈
        // {0, 1, 15}, depths past one and two KC blocks, a row count past one MC block, k = 0
        for (q, &(m, k, n)) in [
            (6, 5, 16),
            (8, 9, 20),
            (14, 33, 16),
            (15, 2, 5),
            (1, 1, 1),
            (13, 7, 17),
            (11, 3, 33),
            (100, 64, 31),
            (9, 600, 40),
            (97, 257, 48),
            (5, 0, 7),
        ]
        .iter()
        .enumerate()
        {
            for (ta, tb, pad) in [
                (false, false, 0),
                (true, false, 3),
                (false, true, 1),
                (true, true, 0),
            ] {
                check(super::sgemm, m, k, n, ta, tb, pad, q as u64 * 10);
            }
        }
    }

    super::super::kernel_check::via_packed_b!();

    #[test]
    fn a_transposed_gives_the_bits_of_a_in_place() {
        if has_avx2() {
            super::super::kernel_check::check_a_layouts([super::sgemm, via_packed_b]);
        }
    }

    #[test]
    fn prepacked_b_gives_the_same_bits() {
        if has_avx2() {
            super::super::kernel_check::check_prepacked(super::sgemm, via_packed_b);
        }
    }

    #[test]
    fn scaled_stores_are_the_product_times_d() {
        if has_avx2() {
            super::super::kernel_check::check_scaled(via_packed_b_scaled);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn agrees_with_reference_on_random_shapes(
            m in 1usize..40, k in 1usize..300, n in 1usize..50,
            ta in any::<bool>(), tb in any::<bool>(), pad in 0usize..4, seed in 0u64..1000,
        ) {
            if has_avx2() {
                check(super::sgemm, m, k, n, ta, tb, pad, seed);
            }
        }
    }
}
