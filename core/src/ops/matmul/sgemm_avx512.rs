//! An f32 GEMM for AVX-512 that reads A in place.
//!
//! `matrixmultiply` (like BLIS) packs both operands into panels before every product. At the
//! shapes of an EBM step (a batch of 256–1024 rows times a 128–256-wide weight) packing the
//! batch-sized operand costs about a quarter of the multiply itself: 1024×128·128×128 ran at
//! ~200 GFLOP/s. Here each 12×32 tile of C lives in 24 zmm accumulators; A's elements are
//! broadcast straight from memory (any strides, so Aᵀ is free), and B's rows are loaded as
//! vectors, so only a column-major B (the `x·Wᵀ` of a forward pass) is copied once, transposed,
//! into a K×N scratch. The same product runs at ~260–275 GFLOP/s on the machines here (Zen 5).
//! N's last partial panel uses masked loads and stores; M's last rows take 8-, 4- and 1-row
//! tiles.

use std::arch::x86_64::*;

const MR: usize = 12;
const NR: usize = 32;
/// Depth per pass: a 256×32 f32 panel of B is 32 KiB, inside the 48 KiB L1.
const KC: usize = 256;

/// One MR×(≤32) tile of C = A·B over the full depth k (+ C when `accumulate`).
///
/// # Safety
/// AVX-512F present; a[i·rsa + p·csa] valid for i < MR, p < k; b[p·ldb + j] valid where the
/// masks are set; c[i·ldc + j] likewise.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    k: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    (m0, m1): (__mmask16, __mmask16),
    accumulate: bool,
    bias: Option<*const f32>,
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
        for p in 0..k {
            let bp = b.add(p * ldb);
            // masked-off lanes are neither read nor able to fault
            let b0 = _mm512_maskz_loadu_ps(m0, bp);
            let b1 = _mm512_maskz_loadu_ps(m1, bp.add(16));
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
            _mm512_mask_storeu_ps(cp, m0, r0);
            _mm512_mask_storeu_ps(cp.add(16), m1, r1);
        }
    }
}

/// C (m×n, row-major, row stride `ldc`) = A·B, or C + A·B when `accumulate`, or A·B + bias
/// on every row with `bias` (n elements; not with `accumulate`); A is m×k and B k×n, each
/// read through (row, column) strides.
///
/// # Safety
/// The CPU has AVX-512F, and the pointers and strides describe valid matrices; C does not
/// alias A or B.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    (rsb, csb): (isize, isize),
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias: Option<*const f32>,
) {
    debug_assert!(!(accumulate && bias.is_some()), "a bias replaces C");
    // SAFETY: the function's contract; every tile reads and writes inside the m×k, k×n and
    // m×n matrices (partial panels through masks, partial row blocks through smaller tiles).
    unsafe {
        let mut scratch = None;
        let (b, ldb) = if csb == 1 && rsb >= 0 {
            (b, rsb as usize)
        } else {
            // B's rows are not contiguous: one transposing copy into a row-major k×n
            let mut v = crate::pool::take::<f32>(k * n);
            if rsb == 1 && csb >= k as isize {
                // column-major (the Wᵀ of a row-major W): B's columns are rows csb apart
                crate::ops::transpose::transpose_into(b, (n, k, csb as usize), v.as_mut_ptr(), n);
            } else {
                // any other strides, in 16×16 blocks so both sides stay in cache
                const T: usize = 16;
                for p0 in (0..k).step_by(T) {
                    for j0 in (0..n).step_by(T) {
                        for p in p0..(p0 + T).min(k) {
                            for j in j0..(j0 + T).min(n) {
                                *v.get_unchecked_mut(p * n + j) =
                                    *b.offset(p as isize * rsb + j as isize * csb);
                            }
                        }
                    }
                }
            }
            let ptr = v.as_ptr();
            scratch = Some(v);
            (ptr, n)
        };
        let lane_mask = |w: usize| ((1u32 << w.min(16)) - 1) as __mmask16;
        for j0 in (0..n).step_by(NR) {
            let nr = (n - j0).min(NR);
            let masks = (lane_mask(nr), lane_mask(nr.saturating_sub(16)));
            // depth in blocks of KC so the B panel being swept (KC×32) stays in L1 across all
            // of M's tiles; every block after the first accumulates onto C
            for k0 in (0..k).step_by(KC) {
                let kc = (k - k0).min(KC);
                let bj = b.add(k0 * ldb + j0);
                let acc = accumulate || k0 > 0;
                // the bias enters once, with the first depth block
                let bias_j = bias.filter(|_| k0 == 0).map(|bp| bp.add(j0));
                let mut i0 = 0;
                while i0 < m {
                    let ai = a.offset(i0 as isize * rsa + k0 as isize * csa);
                    let ci = c.add(i0 * ldc + j0);
                    macro_rules! run {
                        ($r:expr) => {{
                            tile::<$r>(kc, ai, (rsa, csa), bj, ldb, ci, ldc, masks, acc, bias_j);
                            $r
                        }};
                    }
                    i0 += match m - i0 {
                        r if r >= MR => run!(MR),
                        r if r >= 8 => run!(8),
                        r if r >= 4 => run!(4),
                        _ => run!(1),
                    };
                }
            }
        }
        if let Some(v) = scratch {
            crate::pool::give(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel_check::check;

    #[test]
    fn agrees_with_reference_on_every_layout_and_remainder() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F (the kernel is never called here)");
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
}
