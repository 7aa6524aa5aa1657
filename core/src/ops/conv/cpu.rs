//! CPU convolutions lowered to GEMM over im2col columns.
//!
//! Samples are taken in blocks of `nb` so that each GEMM has at least [`MIN_COLS`] columns
//! (an 8×8 image has only 64 output positions; one GEMM per sample would spend its time
//! packing). For a block and a group, with K = (C/g)·kh·kw rows and nb·Ho·Wo columns:
//!
//! - forward:      Y_g = W_g · cols(x)                  `[O/g, K]·[K, nb·L]`
//! - input grad:   x  += col2im(W_gᵀ · Y_g)             `[K, O/g]·[O/g, nb·L]`
//! - weight grad:  W_g += Y_g · cols(x)ᵀ                `[O/g, nb·L]·[nb·L, K]`
//!
//! Blocks run on the rayon pool; the weight gradient sums a fixed number of partial sums in a
//! fixed order, so every result has the same bits on any thread count.

use super::ConvGeom;
use crate::ops::matmul::Gemm;
use num_traits::Zero;
use rayon::prelude::*;

/// Fewest GEMM columns (output positions of a block of samples) worth one call.
const MIN_COLS: usize = 1024;
/// Partial sums of the weight gradient (independent of the thread count).
const WEIGHT_PARTIALS: usize = 4;

/// Samples per block.
fn block(g: &ConvGeom) -> usize {
    MIN_COLS.div_ceil(g.l().max(1)).clamp(1, g.n.max(1))
}

/// The output columns `j` in `0..wo` whose input column `j·s + w0` lies in `0..w`.
fn valid_cols(w0: isize, s: usize, w: usize, wo: usize) -> (usize, usize) {
    let s = s as isize;
    let lo = if w0 >= 0 { 0 } else { (-w0 + s - 1) / s };
    let last = w as isize - 1 - w0;
    let hi = if last < 0 { 0 } else { last / s + 1 };
    let (lo, hi) = (lo.min(wo as isize) as usize, hi.min(wo as isize) as usize);
    (lo, hi.max(lo))
}

/// For every im2col row (c, p, q): calls `f(row, c, ilo..ihi, jlo..jhi, input offset)` with
/// the output rows and columns whose taps fall inside the image, and the offset within the
/// channel plane of the input element under output (ilo, jlo). Everything outside is padding.
fn for_each_row(
    g: &ConvGeom,
    mut f: impl FnMut(usize, usize, (usize, usize), (usize, usize), usize),
) {
    let [sh, sw] = g.spec.stride;
    let [ph, pw] = g.spec.padding;
    let [dh, dw] = g.spec.dilation;
    for c in 0..g.cg() {
        for p in 0..g.kh {
            let h0 = (p * dh) as isize - ph as isize;
            let (ilo, ihi) = valid_cols(h0, sh, g.h, g.ho);
            for q in 0..g.kw {
                let w0 = (q * dw) as isize - pw as isize;
                let (jlo, jhi) = valid_cols(w0, sw, g.w, g.wo);
                let first = if ilo < ihi && jlo < jhi {
                    ((h0 + (ilo * sh) as isize) as usize) * g.w
                        + (w0 + (jlo * sw) as isize) as usize
                } else {
                    0
                };
                f((c * g.kh + p) * g.kw + q, c, (ilo, ihi), (jlo, jhi), first);
            }
        }
    }
}

/// Writes the im2col columns of one sample's group `x` (`[C/g, H, W]`) into `cols` at column
/// offset `off` of rows `stride` long.
fn im2col<T: Copy + Zero>(g: &ConvGeom, x: &[T], cols: &mut [T], stride: usize, off: usize) {
    let (wo, plane, [sh, sw]) = (g.wo, g.h * g.w, g.spec.stride);
    for_each_row(g, |row, c, (ilo, ihi), (jlo, jhi), first| {
        let dst = &mut cols[row * stride + off..][..g.ho * wo];
        let xc = &x[c * plane..][..plane];
        if jlo >= jhi {
            dst.fill(T::zero());
            return;
        }
        dst[..ilo * wo].fill(T::zero());
        dst[ihi * wo..].fill(T::zero());
        for (r, i) in (ilo..ihi).enumerate() {
            let seg = &mut dst[i * wo..(i + 1) * wo];
            seg[..jlo].fill(T::zero());
            seg[jhi..].fill(T::zero());
            let at = first + r * sh * g.w;
            let seg = &mut seg[jlo..jhi];
            let len = seg.len();
            if sw == 1 {
                // a plain loop: rows of an 8×8 image are too short for a memcpy call
                seg.iter_mut()
                    .zip(&xc[at..at + len])
                    .for_each(|(d, &v)| *d = v);
            } else {
                seg.iter_mut()
                    .enumerate()
                    .for_each(|(j, d)| *d = xc[at + j * sw]);
            }
        }
    });
}

/// Adds the im2col columns `cols` (as [`im2col`] lays them out) back into the sample's group
/// `x`: the adjoint of `im2col`.
fn col2im<T: Copy + std::ops::Add<Output = T>>(
    g: &ConvGeom,
    cols: &[T],
    x: &mut [T],
    stride: usize,
    off: usize,
) {
    let (wo, plane, [sh, sw]) = (g.wo, g.h * g.w, g.spec.stride);
    for_each_row(g, |row, c, (ilo, ihi), (jlo, jhi), first| {
        let src = &cols[row * stride + off..][..g.ho * wo];
        let xc = &mut x[c * plane..][..plane];
        if jlo >= jhi {
            return;
        }
        for (r, i) in (ilo..ihi).enumerate() {
            let seg = &src[i * wo + jlo..i * wo + jhi];
            let at = first + r * sh * g.w;
            if sw == 1 {
                let dst = &mut xc[at..at + seg.len()];
                dst.iter_mut().zip(seg).for_each(|(d, &v)| *d = *d + v);
            } else {
                for (j, &v) in seg.iter().enumerate() {
                    xc[at + j * sw] = xc[at + j * sw] + v;
                }
            }
        }
    });
}

/// C = op(A)·op(B) (+ C when `acc`) for row-major buffers: `a` is m×k (or k×m read
/// transposed when `ta`), `b` k×n (or n×k when `tb`), `c` m×n.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Gemm>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    c: &mut [T],
    acc: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let beta = if acc { T::one() } else { T::zero() };
    // SAFETY: the assert above bounds every matrix by its slice, read with these strides.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
            None,
        )
    }
}

/// Per-sample slices of a group: channels `[gi·per, (gi+1)·per)` of sample `s` of `t`, whose
/// samples have `chans` channels of `plane` elements.
fn group_of<T>(t: &[T], s: usize, chans: usize, gi: usize, per: usize, plane: usize) -> &[T] {
    &t[(s * chans + gi * per) * plane..][..per * plane]
}

/// `[N, O, Ho, Wo]` = x ⋆ w.
pub(super) fn forward<T: Gemm + Send + Sync>(g: &ConvGeom, x: &[T], w: &[T]) -> Vec<T> {
    let (l, k, og, nb) = (g.l(), g.k(), g.og(), block(g));
    let mut out = crate::pool::take(g.n * g.o * l);
    let sample_out = g.o * l;
    out.par_chunks_mut((nb * sample_out).max(1))
        .enumerate()
        .for_each(|(bi, yb)| {
            let n0 = bi * nb;
            let cnt = yb.len() / sample_out.max(1);
            let cols_n = cnt * l;
            let mut cols = crate::pool::take::<T>(k * cols_n);
            let mut tmp = crate::pool::take::<T>(if cnt > 1 { og * cols_n } else { 0 });
            for gi in 0..g.spec.groups {
                for s in 0..cnt {
                    let xs = group_of(x, n0 + s, g.c, gi, g.cg(), g.h * g.w);
                    im2col(g, xs, &mut cols, cols_n, s * l);
                }
                let wg = &w[gi * og * k..][..og * k];
                if cnt == 1 {
                    gemm(
                        og,
                        k,
                        l,
                        wg,
                        false,
                        &cols,
                        false,
                        &mut yb[gi * og * l..],
                        false,
                    );
                    continue;
                }
                gemm(og, k, cols_n, wg, false, &cols, false, &mut tmp, false);
                for r in 0..og {
                    for s in 0..cnt {
                        yb[(s * g.o + gi * og + r) * l..][..l]
                            .copy_from_slice(&tmp[r * cols_n + s * l..][..l]);
                    }
                }
            }
            crate::pool::give(cols);
            crate::pool::give(tmp);
        });
    out
}

/// Copies the group `gi` of samples `n0..n0+cnt` of `gy` into `[O/g, cnt·L]` rows.
fn pack_output<T: Copy>(g: &ConvGeom, gy: &[T], n0: usize, cnt: usize, gi: usize, dst: &mut [T]) {
    let (l, og) = (g.l(), g.og());
    for r in 0..og {
        for s in 0..cnt {
            dst[r * cnt * l + s * l..][..l]
                .copy_from_slice(&gy[((n0 + s) * g.o + gi * og + r) * l..][..l]);
        }
    }
}

/// `[N, C, H, W]` = the adjoint of x ↦ x ⋆ w applied to gy `[N, O, Ho, Wo]`.
pub(super) fn input_grad<T: Gemm + Send + Sync>(g: &ConvGeom, gy: &[T], w: &[T]) -> Vec<T> {
    let (l, k, og, nb) = (g.l(), g.k(), g.og(), block(g));
    let sample_in = g.c * g.h * g.w;
    let mut out = crate::pool::filled(g.n * sample_in, T::zero());
    out.par_chunks_mut((nb * sample_in).max(1))
        .enumerate()
        .for_each(|(bi, xb)| {
            let n0 = bi * nb;
            let cnt = xb.len() / sample_in.max(1);
            let cols_n = cnt * l;
            let mut cols = crate::pool::take::<T>(k * cols_n);
            let mut packed = crate::pool::take::<T>(if cnt > 1 { og * cols_n } else { 0 });
            for gi in 0..g.spec.groups {
                let wg = &w[gi * og * k..][..og * k];
                let gyg: &[T] = if cnt == 1 {
                    group_of(gy, n0, g.o, gi, og, l)
                } else {
                    pack_output(g, gy, n0, cnt, gi, &mut packed);
                    &packed
                };
                gemm(k, og, cols_n, wg, true, gyg, false, &mut cols, false);
                for s in 0..cnt {
                    let plane = g.h * g.w;
                    let xs = &mut xb[(s * g.c + gi * g.cg()) * plane..][..g.cg() * plane];
                    col2im(g, &cols, xs, cols_n, s * l);
                }
            }
            crate::pool::give(cols);
            crate::pool::give(packed);
        });
    out
}

/// `[O, C/g, kh, kw]` = ∂⟨x ⋆ w, gy⟩/∂w.
pub(super) fn weight_grad<T: Gemm + Send + Sync>(g: &ConvGeom, x: &[T], gy: &[T]) -> Vec<T> {
    let (l, k, og, nb) = (g.l(), g.k(), g.og(), block(g));
    let wlen = g.o * k;
    let blocks = g.n.div_ceil(nb);
    let parts = WEIGHT_PARTIALS.min(blocks).max(1);
    let per_part = blocks.div_ceil(parts);
    let partials: Vec<Vec<T>> = (0..parts)
        .into_par_iter()
        .map(|pi| {
            let mut acc = crate::pool::filled(wlen, T::zero());
            let mut cols = crate::pool::take::<T>(k * nb * l);
            let mut packed = crate::pool::take::<T>(og * nb * l);
            for bi in pi * per_part..((pi + 1) * per_part).min(blocks) {
                let n0 = bi * nb;
                let cnt = nb.min(g.n - n0);
                let cols_n = cnt * l;
                for gi in 0..g.spec.groups {
                    for s in 0..cnt {
                        let xs = group_of(x, n0 + s, g.c, gi, g.cg(), g.h * g.w);
                        im2col(g, xs, &mut cols, cols_n, s * l);
                    }
                    pack_output(g, gy, n0, cnt, gi, &mut packed);
                    let dst = &mut acc[gi * og * k..][..og * k];
                    gemm(og, cols_n, k, &packed, false, &cols, true, dst, true);
                }
            }
            crate::pool::give(cols);
            crate::pool::give(packed);
            acc
        })
        .collect();
    let mut it = partials.into_iter();
    let mut total = it.next().expect("at least one partial");
    for p in it {
        total.iter_mut().zip(&p).for_each(|(t, &v)| *t = *t + v);
        crate::pool::give(p);
    }
    total
}
