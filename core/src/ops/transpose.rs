//! Out-of-place 2-d transposes: the kept Wᵀ of every weight after each optimizer step (the
//! forward product x·Wᵀ reads Wᵀ's rows) and the AVX-512 GEMM's copy of a column-major B.
//!
//! The generic path copies 16×16 blocks element by element. For f32 on x86-64 with AVX, 8×8
//! blocks go through registers: eight row loads, the 24 unpack/shuffle/lane-permute steps of
//! the usual in-register transpose, eight row stores: the kept transposes' share of an NCE M64
//! training step (weights of 256×64 and 256×256) went from 2.6% with the element copy to 0.95%.

use crate::dtype::Elem;

/// `dst` (c×r, row-major, row stride `ldd`) = the transpose of the r×c matrix at `src` whose
/// rows are `lds` elements apart (its elements within a row contiguous).
///
/// # Safety
/// `src[i·lds + j]` is readable for i < r, j < c; `dst[j·ldd + i]` writable for the same
/// (i, j); the two do not overlap.
pub(crate) unsafe fn transpose_into<T: Elem>(
    src: *const T,
    (r, c, lds): (usize, usize, usize),
    dst: *mut T,
    ldd: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && std::arch::is_x86_feature_detected!("avx")
    {
        // SAFETY: T is f32 (checked above), AVX was detected, and the caller vouches for the
        // matrices.
        unsafe { avx::transpose_f32(src.cast(), (r, c, lds), dst.cast(), ldd) };
        return;
    }
    // SAFETY: the caller vouches for the matrices.
    unsafe { blocked(src, (r, c, lds), dst, ldd, (0, 0)) }
}

/// The element-by-element copy of rows i0.. (all columns) and of columns j0.. of the rows
/// above (the whole matrix from (0, 0); the SIMD path's edges otherwise), in 16×16 blocks so
/// both sides stay in a few cache lines.
///
/// # Safety
/// As [`transpose_into`].
unsafe fn blocked<T: Copy>(
    src: *const T,
    (r, c, lds): (usize, usize, usize),
    dst: *mut T,
    ldd: usize,
    (i0, j0): (usize, usize),
) {
    const B: usize = 16;
    for ib in (i0..r).step_by(B) {
        for jb in (0..c).step_by(B) {
            for i in ib..(ib + B).min(r) {
                for j in jb..(jb + B).min(c) {
                    // SAFETY: i < r and j < c, inside both matrices (the caller's contract).
                    unsafe { *dst.add(j * ldd + i) = *src.add(i * lds + j) };
                }
            }
        }
    }
    // the strip of rows < i0 and columns ≥ j0, which the loop above does not reach
    for i in 0..i0.min(r) {
        for j in j0..c {
            // SAFETY: as above.
            unsafe { *dst.add(j * ldd + i) = *src.add(i * lds + j) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// [`super::transpose_into`] for f32: 8×8 register blocks over the largest multiple-of-8
    /// corner, the element copy for the strips of rows and columns left over.
    ///
    /// # Safety
    /// AVX present; the matrices as in [`super::transpose_into`].
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn transpose_f32(
        src: *const f32,
        (r, c, lds): (usize, usize, usize),
        dst: *mut f32,
        ldd: usize,
    ) {
        let (r8, c8) = (r / 8 * 8, c / 8 * 8);
        // SAFETY: every block reads rows i0..i0+8 < r8 ≤ r and columns j0..j0+8 ≤ c8 of src
        // and writes the transposed positions of dst (the function's contract).
        unsafe {
            for i0 in (0..r8).step_by(8) {
                for j0 in (0..c8).step_by(8) {
                    let s = src.add(i0 * lds + j0);
                    let row = |k: usize| _mm256_loadu_ps(s.add(k * lds));
                    let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                    let (r4, r5, r6, r7) = (row(4), row(5), row(6), row(7));
                    // pairs of rows interleaved: [a0 b0 a1 b1 | a4 b4 a5 b5], [a2 b2 a3 b3 | …]
                    let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
                    let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                    let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
                    let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
                    // four rows' column j in each 128-bit half: (j, j+4) for j = 0, 1, 2, 3
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    // rows 0–3 from the first, rows 4–7 from the second: column j whole
                    let d = dst.add(j0 * ldd + i0);
                    let put = |k: usize, v: __m256| _mm256_storeu_ps(d.add(k * ldd), v);
                    put(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
                    put(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
                    put(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
                    put(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
                    put(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
                    put(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
                    put(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
                    put(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
                }
            }
            super::blocked(src, (r, c, lds), dst, ldd, (r8, c8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: Elem + std::fmt::Debug>(r: usize, c: usize, lds: usize, ldd: usize) {
        // distinct values, so any misplaced element shows; padding marked to catch overruns
        let src: Vec<T> = (0..r.max(1) * lds).map(|v| T::of(v as f64 + 0.5)).collect();
        let pad = T::of(-1.0);
        let mut dst = vec![pad; c.max(1) * ldd];
        // SAFETY: src holds r rows of lds ≥ c elements, dst c rows of ldd ≥ r.
        unsafe { transpose_into(src.as_ptr(), (r, c, lds), dst.as_mut_ptr(), ldd) };
        for j in 0..c {
            for i in 0..ldd {
                let want = if i < r { src[i * lds + j] } else { pad };
                assert_eq!(
                    dst[j * ldd + i],
                    want,
                    "({r}×{c}, lds {lds}, ldd {ldd}) at {j},{i}"
                );
            }
        }
    }

    #[test]
    fn every_element_lands_once_in_its_place() {
        // multiples of 8, strips of rows or columns or both left over, single rows and columns,
        // padded strides on either side
        for &(r, c) in &[
            (8, 8),
            (16, 24),
            (256, 64),
            (9, 8),
            (8, 13),
            (19, 27),
            (1, 17),
            (17, 1),
            (3, 5),
            (0, 4),
            (40, 33),
        ] {
            for (dl, dd) in [(0, 0), (3, 1), (0, 5)] {
                check::<f32>(r, c, c + dl, r + dd);
                check::<f64>(r, c, c + dl, r + dd);
            }
        }
    }
}
