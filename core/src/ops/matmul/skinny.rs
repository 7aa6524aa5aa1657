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
        // out[i, j] = ⟨row i of A, column j of B⟩, with B's columns made contiguous first
        // (at most 4·k elements)
        let packed;
        let (b, csb) = if rsb == 1 || k == 1 {
            (b, csb)
        } else {
            packed = (0..n * k)
                .map(|q| b[(q % k) * rsb + (q / k) * csb])
                .collect::<Vec<T>>();
            (&packed[..], k)
        };
        crate::ops::fastmath::dispatch(
            #[inline(always)]
            || {
                for i in 0..m {
                    let arow = &a[i * rsa..i * rsa + k];
                    for j in 0..n {
                        let bcol = &b[j * csb..j * csb + k];
                        let d = dot(arow, bcol);
                        out[i * n + j] = if acc { out[i * n + j] + d } else { d };
                    }
                }
            },
        );
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

/// A dot product with 8 independent accumulators so it vectorises without reassociation.
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
