//! Skinny products (a side of at most a few elements): memory-bound shapes on which a packed
//! GEMM spends more time packing than multiplying, computed by direct loops that vectorise.

use super::gemm::Gemm;
use crate::dtype::Elem;

/// Skinny products (a side of at most a few elements) are memory-bound; a packed GEMM spends
/// more time packing than multiplying on them (a 1024×128 · 128×1 product ran at 2 GFLOP/s).
/// These loops handle them directly and vectorise. Returns false when the shape is not skinny.
#[allow(clippy::too_many_arguments)]
pub(super) fn skinny_gemm<T: Gemm>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (rsa, csa): (isize, isize),
    b: &[T],
    (rsb, csb): (isize, isize),
    out: &mut [T],
    acc: bool,
    bias: Option<&[T]>,
) -> bool {
    let (rsa, csa, rsb, csb) = (rsa as usize, csa as usize, rsb as usize, csb as usize);
    // paths without native bias support start from C = bias rows and accumulate
    let mut acc = acc;
    let mut prefill = |out: &mut [T]| {
        if let Some(bv) = bias {
            for row in out.chunks_exact_mut(n).take(m) {
                row.copy_from_slice(bv);
            }
            acc = true;
        }
    };
    if n <= 4 && csa == 1 {
        prefill(out);
        // out[i, j] = ⟨row i of A, column j of B⟩, with B's columns (Bᵀ's rows) made
        // contiguous first (at most 4·k elements)
        let (b, csb) = rows_contiguous(b, (n, k), (csb, rsb));
        dot_rows_n(m, k, a, rsa, None, &b, csb, n, out, acc);
        return true;
    }
    if n <= 4 && rsa == 1 && m >= 16 {
        prefill(out);
        // Aᵀ·B with B a few columns wide (a first layer's weight gradient gᵀx): A's columns
        // are contiguous, so accumulate Cᵀ[j, :] += B[p, j]·A[:, p] along m, then transpose.
        macro_rules! run {
            ($n:literal) => {{
                let mut ct = vec![T::zero(); $n * m];
                crate::ops::fastmath::dispatch(
                    #[inline(always)]
                    || {
                        for p in 0..k {
                            let ap = &a[p * csa..p * csa + m];
                            let bp: [T; $n] = std::array::from_fn(|j| b[p * rsb + j * csb]);
                            for (j, col) in ct.chunks_exact_mut(m).enumerate() {
                                let bpj = bp[j];
                                for (c, &av) in col.iter_mut().zip(ap) {
                                    *c = *c + bpj * av;
                                }
                            }
                        }
                    },
                );
                for i in 0..m {
                    for j in 0..$n {
                        let v = ct[j * m + i];
                        out[i * $n + j] = if acc { out[i * $n + j] + v } else { v };
                    }
                }
            }};
        }
        match n {
            1 => run!(1),
            2 => run!(2),
            3 => run!(3),
            _ => run!(4),
        }
        return true;
    }
    if k <= 4 && m > 4 {
        // a first layer's forward pass (x·Wᵀ, x a few features wide): each output row is
        // Σ_p A[i, p]·B[p, :] in registers, one pass over the output
        let (b, rsb) = rows_contiguous(b, (k, n), (rsb, csb));
        let b = &b[..];
        macro_rules! run {
            ($k:literal) => {
                crate::ops::fastmath::dispatch(
                    #[inline(always)]
                    || {
                        let brows: [&[T]; $k] = std::array::from_fn(|p| &b[p * rsb..p * rsb + n]);
                        for (i, orow) in out.chunks_exact_mut(n).take(m).enumerate() {
                            let ai: [T; $k] = std::array::from_fn(|p| a[i * rsa + p * csa]);
                            for (p, brow) in brows.iter().enumerate() {
                                let aip = ai[p];
                                if p == 0 && !acc {
                                    match bias {
                                        Some(bias) => {
                                            let it = orow.iter_mut().zip(*brow).zip(bias);
                                            for ((o, &bv), &c) in it {
                                                *o = c + aip * bv;
                                            }
                                        }
                                        None => {
                                            for (o, &bv) in orow.iter_mut().zip(*brow) {
                                                *o = aip * bv;
                                            }
                                        }
                                    }
                                } else {
                                    for (o, &bv) in orow.iter_mut().zip(*brow) {
                                        *o = *o + aip * bv;
                                    }
                                }
                            }
                        }
                    },
                )
            };
        }
        match k {
            1 => run!(1),
            2 => run!(2),
            3 => run!(3),
            _ => run!(4),
        }
        return true;
    }
    if k <= 8 || m <= 4 {
        prefill(out);
        // out[i, :] = Σ_p A[i, p] · B[p, :], with B's rows made contiguous first
        let (b, rsb) = rows_contiguous(b, (k, n), (rsb, csb));
        let b = &b[..];
        crate::ops::fastmath::dispatch(
            #[inline(always)]
            || {
                for i in 0..m {
                    let orow = &mut out[i * n..(i + 1) * n];
                    if !acc {
                        orow.fill(T::zero());
                    }
                    for p in 0..k {
                        let aip = a[i * rsa + p * csa];
                        let brow = &b[p * rsb..p * rsb + n];
                        for (o, &bv) in orow.iter_mut().zip(brow) {
                            *o = *o + aip * bv;
                        }
                    }
                }
            },
        );
        return true;
    }
    false
}

/// (A ⊙ F)·B for A and F m×k, both row-major, and B k×n (strides (rsb, csb)) with n ≤ 4,
/// into `out` (m×n): the element-wise product is formed in registers on its way into the dot
/// products, one pass over A and F, the same bits as forming A ⊙ F first. Returns false (out
/// untouched) when B is wider than 4 columns.
pub(super) fn mul_skinny_product<T: Elem>(
    (m, k, n): (usize, usize, usize),
    a: &[T],
    f: &[T],
    b: &[T],
    (rsb, csb): (usize, usize),
    out: &mut [T],
) -> bool {
    if n > 4 {
        return false;
    }
    let (b, csb) = rows_contiguous(b, (n, k), (csb, rsb));
    dot_rows_n(m, k, a, k, Some((f, k)), &b, csb, n, out, false);
    true
}

/// [`dot_rows`] for a run-time n ≤ 4.
#[allow(clippy::too_many_arguments)]
fn dot_rows_n<T: Elem>(
    m: usize,
    k: usize,
    a: &[T],
    rsa: usize,
    f: Option<(&[T], usize)>,
    b: &[T],
    csb: usize,
    n: usize,
    out: &mut [T],
    acc: bool,
) {
    match n {
        1 => dot_rows::<T, 1>(m, k, a, rsa, f, b, csb, out, acc),
        2 => dot_rows::<T, 2>(m, k, a, rsa, f, b, csb, out, acc),
        3 => dot_rows::<T, 3>(m, k, a, rsa, f, b, csb, out, acc),
        _ => dot_rows::<T, 4>(m, k, a, rsa, f, b, csb, out, acc),
    }
}

/// B (k×n, strides (rsb, csb)) with each row contiguous: borrowed when it already is, else a
/// row-major copy (these operands are weights a few rows tall). Returns it and its row stride.
fn rows_contiguous<T: Copy>(
    b: &[T],
    (k, n): (usize, usize),
    (rsb, csb): (usize, usize),
) -> (std::borrow::Cow<'_, [T]>, usize) {
    if csb == 1 || n == 1 {
        (std::borrow::Cow::Borrowed(b), rsb)
    } else {
        let packed = (0..k * n)
            .map(|q| b[(q / n) * rsb + (q % n) * csb])
            .collect::<Vec<T>>();
        (std::borrow::Cow::Owned(packed), n)
    }
}

/// Rows taken together by [`dot_rows`]: 4 rows × n ≤ 4 columns are 4n independent
/// accumulator chains, enough to hide the FMA latency one row's dot product waits on.
#[cfg(target_arch = "x86_64")]
const DOT_ROWS: usize = 4;

/// out[i, j] = ⟨row i of A (⊙ row i of F when `f` = (F, F's row stride) is given), column j
/// of B⟩ (+ out[i, j] when `acc`), for N ≤ 4 columns of B stored contiguously (column j at
/// b[j·csb..]) and A's rows contiguous (row i at a[i·rsa..]).
///
/// Each (i, j) accumulates in 8 lanes (lane l takes the elements ≡ l mod 8, in order), then the
/// remainder, then the lanes in order, with each element of A ⊙ F rounded before it enters
/// the sum: the same bits as forming A ⊙ F first. f32 on x86 with AVX2 and FMA takes
/// [`DOT_ROWS`] rows at a time in 8-lane registers; one row at a time, each output was one
/// chain of k/8 dependent adds (512×128 · 128×2 at 23 GFLOP/s on the AVX-512 EPYC, 46 now).
#[allow(clippy::too_many_arguments)]
fn dot_rows<T: Elem, const N: usize>(
    m: usize,
    k: usize,
    a: &[T],
    rsa: usize,
    f: Option<(&[T], usize)>,
    b: &[T],
    csb: usize,
    out: &mut [T],
    acc: bool,
) {
    let bcols: [&[T]; N] = std::array::from_fn(|j| &b[j * csb..j * csb + k]);
    let mut write = |i: usize, d: [T; N]| {
        for (j, d) in d.into_iter().enumerate() {
            let o = &mut out[i * N + j];
            *o = if acc { *o + d } else { d };
        }
    };
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: T is f32 (the TypeId check), so every slice reinterprets as itself; the
        // features were detected at run time; `dots_f32` reads inside the rows and columns
        // sliced above (`bcols`, rows i·rsa..i·rsa + k of A and F).
        unsafe {
            let cast = |s: &[T]| std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len());
            let (a, f) = (cast(a), f.map(|(f, rsf)| (cast(f), rsf)));
            let bcols: [&[f32]; N] = std::array::from_fn(|j| cast(bcols[j]));
            let mut i = 0;
            while i + DOT_ROWS <= m {
                let d = avx2::dots_f32::<DOT_ROWS, N>(i, k, a, rsa, f, bcols);
                for (r, d) in d.into_iter().enumerate() {
                    write(i + r, d.map(|v| T::of(v as f64)));
                }
                i += DOT_ROWS;
            }
            for i in i..m {
                let d = avx2::dots_f32::<1, N>(i, k, a, rsa, f, bcols)[0];
                write(i, d.map(|v| T::of(v as f64)));
            }
        }
        return;
    }
    // elsewhere (f64, or no AVX2) one row at a time, which LLVM vectorises well: taking
    // rows together in generic code kept the lanes on the stack (5× slower)
    let mut row = vec![T::zero(); if f.is_some() { k } else { 0 }];
    crate::ops::fastmath::dispatch(
        #[inline(always)]
        || {
            for i in 0..m {
                let mut arow = &a[i * rsa..i * rsa + k];
                if let Some((f, rsf)) = f {
                    for ((o, &x), &y) in row.iter_mut().zip(arow).zip(&f[i * rsf..i * rsf + k]) {
                        *o = x * y;
                    }
                    arow = &row;
                }
                write(i, std::array::from_fn(|j| dot(arow, bcols[j])));
            }
        },
    );
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::dots`] for f32 in 8-lane registers, one fused multiply-add per element (the
    /// generic loop's separate multiply and add; the f32 path on every x86 machine this runs
    /// on is this one, so its bits are the same whether F is applied here or beforehand).
    ///
    /// # Safety
    /// AVX2 and FMA present; rows i0..i0 + R of A (and F) hold k elements from i·rs, and
    /// every column in `bcols` k elements.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dots_f32<const R: usize, const N: usize>(
        i0: usize,
        k: usize,
        a: &[f32],
        rsa: usize,
        f: Option<(&[f32], usize)>,
        bcols: [&[f32]; N],
    ) -> [[f32; N]; R] {
        // SAFETY: the function's contract; every load is at c + 8 ≤ k inside a row or column.
        unsafe {
            let ap: [*const f32; R] = std::array::from_fn(|r| a.as_ptr().add((i0 + r) * rsa));
            let fp: Option<[*const f32; R]> =
                f.map(|(f, rsf)| std::array::from_fn(|r| f.as_ptr().add((i0 + r) * rsf)));
            let bp: [*const f32; N] = std::array::from_fn(|j| bcols[j].as_ptr());
            let mut acc = [[_mm256_setzero_ps(); N]; R];
            let full = k - k % 8;
            let mut c = 0;
            while c < full {
                let bs: [__m256; N] = std::array::from_fn(|j| _mm256_loadu_ps(bp[j].add(c)));
                for r in 0..R {
                    let mut x = _mm256_loadu_ps(ap[r].add(c));
                    if let Some(fp) = &fp {
                        x = _mm256_mul_ps(x, _mm256_loadu_ps(fp[r].add(c)));
                    }
                    for j in 0..N {
                        acc[r][j] = _mm256_fmadd_ps(x, bs[j], acc[r][j]);
                    }
                }
                c += 8;
            }
            // the lanes leave the registers only here (a closure borrowing `acc` kept it on
            // the stack, stored on every pass of the loop above)
            let mut lanes = [[[0.0f32; 8]; N]; R];
            for r in 0..R {
                for j in 0..N {
                    _mm256_storeu_ps(lanes[r][j].as_mut_ptr(), acc[r][j]);
                }
            }
            let mut out = [[0.0f32; N]; R];
            for r in 0..R {
                for j in 0..N {
                    let mut s = 0.0f32;
                    for q in full..k {
                        let x = match &fp {
                            Some(fp) => *ap[r].add(q) * *fp[r].add(q),
                            None => *ap[r].add(q),
                        };
                        s = x.mul_add(*bp[j].add(q), s);
                    }
                    for v in lanes[r][j] {
                        s += v;
                    }
                    out[r][j] = s;
                }
            }
            out
        }
    }
}

/// A dot product with 8 independent accumulators so it vectorises without reassociation:
/// lane l takes the elements ≡ l mod 8 in order, then the remainder, then the lanes in order.
#[inline(always)]
fn dot<T: Elem>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] = acc[l] + x[l] * y[l];
        }
    }
    let mut s = ra.iter().zip(rb).fold(T::zero(), |s, (&x, &y)| s + x * y);
    for v in acc {
        s = s + v;
    }
    s
}
