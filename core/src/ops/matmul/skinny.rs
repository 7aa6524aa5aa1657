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
        // are contiguous, so Cᵀ[j, i..i + W] accumulates B[p, j]·A[i..i + W, p] along the depth
        macro_rules! run {
            ($n:literal) => {
                crate::ops::fastmath::dispatch(
                    #[inline(always)]
                    || columns_by_outer_products::<T, $n>(m, k, a, csa, b, (rsb, csb), out, acc),
                )
            };
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
                            let orow = &mut orow[..n];
                            let ai: [T; $k] = std::array::from_fn(|p| a[i * rsa + p * csa]);
                            // each element's k terms in registers, from C, the bias or the
                            // first product: one store per element (a pass over the row per
                            // term, each pass reloading the last one's stores: 256×2·2×128 in
                            // 5.2 µs, now 2.4)
                            let first = |j: usize| ai[0] * brows[0][j];
                            match (acc, bias) {
                                (true, _) => {
                                    for j in 0..n {
                                        orow[j] = add_terms(orow[j], 0, &ai, &brows, j);
                                    }
                                }
                                (false, Some(bias)) => {
                                    let bias = &bias[..n];
                                    for j in 0..n {
                                        orow[j] = add_terms(bias[j] + first(j), 1, &ai, &brows, j);
                                    }
                                }
                                (false, None) => {
                                    for j in 0..n {
                                        orow[j] = add_terms(first(j), 1, &ai, &brows, j);
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
                    let ai = |p: usize| a[i * rsa + p * csa];
                    let orow = &mut out[i * n..(i + 1) * n];
                    // ROW_CHUNK columns at a time summed along the whole depth in registers,
                    // then stored once (a pass over the row per p reloaded each pass's stores)
                    let mut chunks = orow.chunks_exact_mut(ROW_CHUNK);
                    for (c, ochunk) in chunks.by_ref().enumerate() {
                        let j0 = c * ROW_CHUNK;
                        let mut v = [T::zero(); ROW_CHUNK];
                        if acc {
                            v.copy_from_slice(ochunk);
                        }
                        for p in 0..k {
                            let aip = ai(p);
                            let brow: &[T; ROW_CHUNK] =
                                b[p * rsb + j0..][..ROW_CHUNK].try_into().unwrap();
                            for c in 0..ROW_CHUNK {
                                v[c] = v[c] + aip * brow[c];
                            }
                        }
                        ochunk.copy_from_slice(&v);
                    }
                    let rest = chunks.into_remainder();
                    let j0 = n - rest.len();
                    if !acc {
                        rest.fill(T::zero());
                    }
                    for p in 0..k {
                        let aip = ai(p);
                        let brow = &b[p * rsb + j0..p * rsb + n];
                        for (o, &bv) in rest.iter_mut().zip(brow) {
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

/// Output columns summed in registers at a time by the few-rows path of [`skinny_gemm`]:
/// 4 zmm registers of f32.
const ROW_CHUNK: usize = 64;

/// Rows of Cᵀ summed in registers at a time by [`columns_by_outer_products`]: with n ≤ 4
/// columns, at most 8 zmm (AVX-512) or 16 ymm (AVX2) f32 accumulators.
const COLUMN_CHUNK: usize = 32;

/// `start` + Σ_{p ≥ first} a[p]·brows[p][j], one rounding per product and per add, in order of p.
#[inline(always)]
fn add_terms<T: Elem, const K: usize>(
    start: T,
    first: usize,
    a: &[T; K],
    brows: &[&[T]; K],
    j: usize,
) -> T {
    let mut v = start;
    for p in first..K {
        v = v + a[p] * brows[p][j];
    }
    v
}

/// C = A·B for A m×k with contiguous columns (element (i, p) at a[i + p·csa])
/// and B k×N (strides (rsb, csb)), N ≤ 4, into row-major C (+ C when `acc`): element (i, j)
/// is 0 + B[0, j]·A[i, 0] + B[1, j]·A[i, 1] + … rounded term by term in order of p, the same
/// bits for every chunking. Chunks of [`COLUMN_CHUNK`] rows keep their N accumulators in
/// registers along the whole depth (accumulating whole columns of Cᵀ in memory reloaded each
/// depth step's stores: a 128×256·256×2 `matmul_t` took 4.5 µs, now 2.2, on the AVX-512 EPYC).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn columns_by_outer_products<T: Elem, const N: usize>(
    m: usize,
    k: usize,
    a: &[T],
    csa: usize,
    b: &[T],
    (rsb, csb): (usize, usize),
    out: &mut [T],
    acc: bool,
) {
    let bp = |p: usize| -> [T; N] { std::array::from_fn(|j| b[p * rsb + j * csb]) };
    let mut store = |i: usize, j: usize, v: T| {
        let o = &mut out[i * N + j];
        *o = if acc { *o + v } else { v };
    };
    let full = m - m % COLUMN_CHUNK;
    for i0 in (0..full).step_by(COLUMN_CHUNK) {
        let mut ct = [[T::zero(); COLUMN_CHUNK]; N];
        for p in 0..k {
            let ap: &[T; COLUMN_CHUNK] = a[p * csa + i0..][..COLUMN_CHUNK].try_into().unwrap();
            let bp = bp(p);
            for j in 0..N {
                for c in 0..COLUMN_CHUNK {
                    ct[j][c] = ct[j][c] + bp[j] * ap[c];
                }
            }
        }
        for (r, i) in (i0..i0 + COLUMN_CHUNK).enumerate() {
            for (j, col) in ct.iter().enumerate() {
                store(i, j, col[r]);
            }
        }
    }
    for i in full..m {
        let mut c = [T::zero(); N];
        for p in 0..k {
            let (bp, av) = (bp(p), a[i + p * csa]);
            for (c, &bpj) in c.iter_mut().zip(&bp) {
                *c = *c + bpj * av;
            }
        }
        for (j, c) in c.into_iter().enumerate() {
            store(i, j, c);
        }
    }
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

#[cfg(test)]
mod tests {
    use crate::{DType, Rng, Tensor};

    /// Element (i, j) of each register-chunked path as its loop promises: a start (0, C or the
    /// bias) then one rounded product and one rounded add per depth step, in order of p. Shapes
    /// put rows and columns off the chunk sizes, and every form (plain, + C, + bias) is checked
    /// bit for bit in f32.
    #[test]
    fn chunked_paths_sum_term_by_term_in_order() {
        let mut rng = Rng::new(21);
        // (m, k, n, A stored transposed): Aᵀ·B with n ≤ 4, a first layer's x·W (k ≤ 4), and a
        // few rows (m ≤ 4) or a short depth (k ≤ 8)
        for (m, k, n, ta) in [
            (37, 300, 2, true),
            (64, 50, 3, true),
            (16, 7, 1, true),
            (45, 4, 4, true),
            (37, 2, 130, false),
            (9, 3, 64, false),
            (300, 1, 17, false),
            (1, 256, 130, true),
            (3, 300, 64, false),
            (37, 6, 200, false),
        ] {
            let a = rng.normal(&[m, k], DType::F32);
            let b = rng.normal(&[k, n], DType::F32);
            let c = rng.normal(&[m, n], DType::F32);
            let bias = rng.normal(&[n], DType::F32);
            let (av, bv, cv, biasv) = (
                a.to_vec_f64(),
                b.to_vec_f64(),
                c.to_vec_f64(),
                bias.to_vec_f64(),
            );
            // A as stored: Aᵀ's rows (k×m) when transposed
            let x = if ta {
                let at: Vec<f32> = (0..k * m).map(|q| av[(q % m) * k + q / m] as f32).collect();
                Tensor::from_vec(at, &[k, m])
            } else {
                a.clone()
            };
            let term = |i: usize, j: usize, p: usize| av[i * k + p] as f32 * bv[p * n + j] as f32;
            let sum_from = |start: f32, first: usize, i: usize, j: usize| {
                (first..k).fold(start, |v, p| v + term(i, j, p))
            };
            // which loop takes the product: Aᵀ·B sums from 0 and adds to C or the bias; the
            // first layer starts from C, or the bias plus the first term; a few rows start
            // from C or the bias
            let transposed = n <= 4 && ta && m >= 16;
            let first_layer = !transposed && k <= 4 && m > 4;
            for form in 0..3 {
                let got = match form {
                    0 => x.matmul_t(&b, ta, false),
                    1 => x.matmul_t_add(&b, ta, false, &c),
                    _ => x.matmul_t_add(&b, ta, false, &bias),
                }
                .to_vec_f64();
                for i in 0..m {
                    for j in 0..n {
                        let (cq, bq) = (cv[i * n + j] as f32, biasv[j] as f32);
                        let want = match (transposed, first_layer, form) {
                            (true, _, 0) => sum_from(0.0, 0, i, j),
                            (true, _, 1) => cq + sum_from(0.0, 0, i, j),
                            (true, _, _) => bq + sum_from(0.0, 0, i, j),
                            (_, true, 0) => sum_from(term(i, j, 0), 1, i, j),
                            (_, true, 1) => sum_from(cq, 0, i, j),
                            (_, true, _) => sum_from(bq + term(i, j, 0), 1, i, j),
                            (_, _, 0) => sum_from(0.0, 0, i, j),
                            (_, _, 1) => sum_from(cq, 0, i, j),
                            (_, _, _) => sum_from(bq, 0, i, j),
                        };
                        assert_eq!(
                            (got[i * n + j] as f32).to_bits(),
                            want.to_bits(),
                            "{m}×{k}×{n} ta={ta} form {form} at ({i}, {j})"
                        );
                    }
                }
            }
        }
    }
}
