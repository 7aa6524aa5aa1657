//! An f32 GEMM for AVX2+FMA (Haswell and later, Zen 1–4 without AVX-512).
//!
//! Same plan as `sgemm_avx512`: A is read in place (its elements broadcast straight from
//! memory, any strides, so Aᵀ is free) and only B is copied. Each 6×16 tile of C lives in 12
//! ymm accumulators (two per row; with two B vectors and one broadcast, 15 of the 16
//! registers), which is the largest tile that keeps both FMA pipes busy without spilling.
//!
//! B is packed per depth block into contiguous KC×16 panels, zero-padded to 16 columns: a
//! panel is 16 KiB and stays in L1 while every row tile sweeps it. Reading B in place instead
//! (as the AVX-512 kernel does) puts a power-of-two row stride (a 256- or 1024-wide layer)
//! on one or a few L1 sets, and the panel then streams from L2 at every tile. Rows are swept
//! in blocks of MC so the A block (MC×KC, 96 KiB) stays in L2 across all panels.
//!
//! Every element of C is summed over the depth in the same order whatever the tile or row
//! block it falls in (one FMA chain per element, depth blocks in order): the result does not
//! depend on how the rows are split between threads.

use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;
/// Depth per block: a KC×16 f32 panel of packed B is 16 KiB, half of a 32 KiB L1.
const KC: usize = 256;
/// Rows per block: MC×KC of A (96 KiB) stays in L2 while the block sweeps every panel.
const MC: usize = 96;

/// Copies rows k0..k0+kc of B (k×n, strides rsb/csb) into `dst` as ⌈n/16⌉ panels of kc×16,
/// each row of a panel 16 contiguous elements, columns past n zero.
///
/// # Safety
/// B is valid for rows k0..k0+kc and columns 0..n; `dst` holds ⌈n/16⌉·kc·16 elements.
unsafe fn pack_b(
    b: *const f32,
    (rsb, csb): (isize, isize),
    k0: usize,
    kc: usize,
    n: usize,
    dst: *mut f32,
) {
    // SAFETY: the function's contract: every read is at a row < k0+kc and column < n of B,
    // every write below ⌈n/16⌉·kc·16 elements of `dst`.
    unsafe {
        for (panel, j0) in (0..n).step_by(NR).enumerate() {
            let nr = (n - j0).min(NR);
            let out = dst.add(panel * kc * NR);
            for p in 0..kc {
                let row = b.offset((k0 + p) as isize * rsb + j0 as isize * csb);
                let o = out.add(p * NR);
                if csb == 1 && nr == NR {
                    std::ptr::copy_nonoverlapping(row, o, NR);
                } else {
                    for j in 0..NR {
                        *o.add(j) = if j < nr {
                            *row.offset(j as isize * csb)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Elements of B (k×n) packed whole by [`pack_b_all`]: every depth block's ⌈n/16⌉ panels.
pub(crate) fn packed_b_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * NR * k
}

/// Packs all of B (k×n, strides rsb/csb) as [`sgemm`] packs each depth block, the blocks one
/// after another (block k0 starts at k0·⌈n/16⌉·16), for [`sgemm_packed_b`] to reuse: a weight
/// read by many products is packed once instead of once per product.
///
/// # Safety
/// B is a valid k×n matrix with those strides; `dst` holds [`packed_b_len`] elements.
pub(crate) unsafe fn pack_b_all(
    b: *const f32,
    strides: (isize, isize),
    k: usize,
    n: usize,
    dst: *mut f32,
) {
    for k0 in (0..k).step_by(KC) {
        let kc = (k - k0).min(KC);
        // SAFETY: the function's contract; block k0 lands below k·⌈n/16⌉·16 elements of dst
        unsafe { pack_b(b, strides, k0, kc, n, dst.add(k0 * n.div_ceil(NR) * NR)) };
    }
}

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

/// C (m×n, row-major, row stride `ldc`) = A·B, or C + A·B when `accumulate`, or A·B + bias
/// on every row with `bias` (n elements; not with `accumulate`); A is m×k and B k×n, each
/// read through (row, column) strides.
///
/// # Safety
/// The CPU has AVX2 and FMA, and the pointers and strides describe valid matrices; C does not
/// alias A or B.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    a_strides: (isize, isize),
    b: *const f32,
    b_strides: (isize, isize),
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias: Option<*const f32>,
) {
    // SAFETY: the function's contract
    unsafe {
        sgemm_from(
            m,
            k,
            n,
            a,
            a_strides,
            BSource::Strided(b, b_strides),
            c,
            ldc,
            accumulate,
            bias,
        )
    }
}

/// [`sgemm`] with B already packed by [`pack_b_all`] (same k and n).
///
/// # Safety
/// As [`sgemm`], and `packed` holds [`packed_b_len`]`(k, n)` elements packed from a k×n B.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_packed_b(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    a_strides: (isize, isize),
    packed: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias: Option<*const f32>,
) {
    // SAFETY: the function's contract
    unsafe {
        sgemm_from(
            m,
            k,
            n,
            a,
            a_strides,
            BSource::Packed(packed),
            c,
            ldc,
            accumulate,
            bias,
        )
    }
}

/// Where the driver finds B's panels: packed per depth block from B itself, or all packed
/// already.
#[derive(Clone, Copy)]
enum BSource {
    Strided(*const f32, (isize, isize)),
    Packed(*const f32),
}

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
) {
    debug_assert!(!(accumulate && bias.is_some()), "a bias replaces C");
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    let mut packed = match b {
        BSource::Strided(..) => crate::pool::take::<f32>(panels * KC.min(k.max(1)) * NR),
        BSource::Packed(_) => Vec::new(),
    };
    let full_masks = column_masks(n % NR);

    // SAFETY: the function's contract; every tile reads rows < m and depths < k of A, a
    // packed panel of `packed`, and writes rows < m, columns < n of C (a partial last panel
    // through masks).
    unsafe {
        if k == 0 {
            for i in 0..m {
                let row = std::slice::from_raw_parts_mut(c.add(i * ldc), n);
                match bias {
                    Some(bp) => row.copy_from_slice(std::slice::from_raw_parts(bp, n)),
                    None if !accumulate => row.fill(0.0),
                    None => {}
                }
            }
        }
        for k0 in (0..k).step_by(KC) {
            let kc = (k - k0).min(KC);
            let block = match b {
                BSource::Strided(b, strides) => {
                    pack_b(b, strides, k0, kc, n, packed.as_mut_ptr());
                    packed.as_ptr()
                }
                BSource::Packed(all) => all.add(k0 * panels * NR),
            };
            for i_blk in (0..m).step_by(MC) {
                let m_blk = (m - i_blk).min(MC);
                for (panel, j0) in (0..n).step_by(NR).enumerate() {
                    let masks = (n - j0 < NR).then_some(full_masks);
                    let bp = block.add(panel * kc * NR);
                    // the bias enters with the first depth block; later blocks add onto C
                    let start = match bias {
                        _ if accumulate || k0 > 0 => Start::C,
                        Some(bias) => Start::Bias(bias.add(j0)),
                        None => Start::Zero,
                    };
                    let mut i0 = i_blk;
                    while i0 < i_blk + m_blk {
                        let ai = a.offset(i0 as isize * rsa + k0 as isize * csa);
                        let ci = c.add(i0 * ldc + j0);
                        macro_rules! run {
                            ($r:expr) => {{
                                tile::<$r>(kc, ai, (rsa, csa), bp, ci, ldc, masks, start);
                                $r
                            }};
                        }
                        i0 += match i_blk + m_blk - i0 {
                            r if r >= MR => run!(MR),
                            5 => run!(5),
                            4 => run!(4),
                            3 => run!(3),
                            2 => run!(2),
                            _ => run!(1),
                        };
                    }
                }
            }
        }
    }
    if !packed.is_empty() {
        crate::pool::give(packed);
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
        // m mod 6 ∈ {0..5}, n mod 16 ∈ {0, 1, 15}, depths past one and two KC blocks, a row
        // count past one MC block, k = 0
        for (q, &(m, k, n)) in [
            (6, 5, 16),
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

    /// [`super::sgemm`]'s signature on B packed whole first: the prepacked path of kept
    /// weights.
    #[allow(clippy::too_many_arguments)]
    unsafe fn via_packed_b(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        a_strides: (isize, isize),
        b: *const f32,
        b_strides: (isize, isize),
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        bias: Option<*const f32>,
    ) {
        let mut packed = vec![f32::NAN; super::packed_b_len(k, n)];
        // SAFETY: the caller's matrices (kernel_check), and `packed` of the stated length
        unsafe {
            super::pack_b_all(b, b_strides, k, n, packed.as_mut_ptr());
            super::sgemm_packed_b(
                m,
                k,
                n,
                a,
                a_strides,
                packed.as_ptr(),
                c,
                ldc,
                accumulate,
                bias,
            );
        }
    }

    #[test]
    fn prepacked_b_gives_the_same_bits() {
        if !has_avx2() {
            return;
        }
        for (q, &(m, k, n)) in [
            (6, 5, 16),
            (13, 7, 17),
            (97, 600, 40),
            (64, 128, 128),
            (5, 0, 7),
        ]
        .iter()
        .enumerate()
        {
            for (ta, tb, pad) in [(false, false, 0), (true, true, 2), (false, true, 1)] {
                check(via_packed_b, m, k, n, ta, tb, pad, q as u64 * 7);
            }
        }
        // bit for bit the per-product packing's result (same FMA chain per element)
        let (m, k, n) = (37, 300, 45);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32) * 0.01 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 97) as f32) * 0.01 - 0.4)
            .collect();
        let run = |kernel: super::super::SgemmKernel| {
            let mut c = vec![0f32; m * n];
            // SAFETY: AVX2 detected above; row-major m×k, k×n and m×n buffers
            unsafe {
                kernel(
                    m,
                    k,
                    n,
                    a.as_ptr(),
                    (k as isize, 1),
                    b.as_ptr(),
                    (n as isize, 1),
                    c.as_mut_ptr(),
                    n,
                    false,
                    None,
                )
            };
            c
        };
        let (c1, c2) = (run(super::sgemm), run(via_packed_b));
        assert!(c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()));
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
