//! Matrix products through `matrixmultiply` (AVX-512 kernels chosen at run time).
//!
//! Transposes are free: `matrixmultiply` takes arbitrary row/column strides, so
//! `matmul_t(a, b, true, false)` computes aᵀb without copying a. Backward passes use this.

use crate::dtype::Elem;
use crate::profile::{timed, OpKind};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::with_slices2;

/// An element type with a GEMM kernel: C = alpha·op(A)·op(B) + beta·C with explicit strides.
pub trait Gemm: Elem + HostVec {
    /// # Safety
    /// Pointers and strides must describe valid m×k, k×n and m×n matrices.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl Gemm for f32 {
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

impl Gemm for f64 {
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// One matrix operand: its batch count, logical rows×cols after the optional transpose, and the
/// strides that read it that way.
struct Operand {
    batch: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

fn operand(shape: &[usize], trans: bool) -> Operand {
    let r = shape.len();
    let (sr, sc) = (shape[r - 2], shape[r - 1]);
    let batch = if r == 3 { shape[0] } else { 1 };
    if trans {
        Operand {
            batch,
            rows: sc,
            cols: sr,
            rs: 1,
            cs: sc as isize,
        }
    } else {
        Operand {
            batch,
            rows: sr,
            cols: sc,
            rs: sc as isize,
            cs: 1,
        }
    }
}

/// Skinny products (a side of at most a few elements) are memory-bound; a packed GEMM spends
/// more time packing than multiplying on them (a 1024×128 · 128×1 product ran at 2 GFLOP/s).
/// These loops handle them directly and vectorise. Returns false when the shape is not skinny.
#[allow(clippy::too_many_arguments)]
fn skinny_gemm<T: Gemm>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (rsa, csa): (isize, isize),
    b: &[T],
    (rsb, csb): (isize, isize),
    out: &mut [T],
) -> bool {
    let (rsa, csa, rsb, csb) = (rsa as usize, csa as usize, rsb as usize, csb as usize);
    if n <= 4 && csa == 1 && rsb == 1 {
        // out[i, j] = ⟨row i of A, column j of B⟩, both contiguous
        super::fastmath::dispatch(
            #[inline(always)]
            || {
                for i in 0..m {
                    let arow = &a[i * rsa..i * rsa + k];
                    for j in 0..n {
                        let bcol = &b[j * csb..j * csb + k];
                        out[i * n + j] = dot(arow, bcol);
                    }
                }
            },
        );
        return true;
    }
    if k <= 8 || m <= 4 {
        // out[i, :] = Σ_p A[i, p] · B[p, :], with B's rows made contiguous first
        let packed;
        let (b, rsb) = if csb == 1 || n == 1 {
            (b, rsb)
        } else {
            packed = (0..k * n)
                .map(|q| b[(q / n) * rsb + (q % n) * csb])
                .collect::<Vec<T>>();
            (&packed[..], n)
        };
        super::fastmath::dispatch(
            #[inline(always)]
            || {
                for i in 0..m {
                    let orow = &mut out[i * n..(i + 1) * n];
                    orow.fill(T::zero());
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

fn matmul_slices<T: Gemm>(
    a: &[T],
    ashape: &[usize],
    ta: bool,
    b: &[T],
    bshape: &[usize],
    tb: bool,
) -> (Vec<T>, Vec<usize>) {
    let oa = operand(ashape, ta);
    let ob = operand(bshape, tb);
    let (m, k, n) = (oa.rows, oa.cols, ob.cols);
    let batched = ashape.len() == 3 || bshape.len() == 3;
    let batch = oa.batch.max(ob.batch);
    // contents unspecified: GEMM with beta = 0 never reads C, and the skinny kernels
    // initialise each row before accumulating; only k = 0 needs explicit zeros
    let mut out = if k == 0 {
        crate::pool::filled(batch * m * n, T::zero())
    } else {
        crate::pool::take(batch * m * n)
    };
    let out_shape = if batched {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    if m == 0 || n == 0 || k == 0 {
        return (out, out_shape);
    }
    // [B, m, k] · [k, n] with A untransposed is one tall GEMM: fold the batch into the rows.
    if oa.batch > 1 && bshape.len() == 2 && !ta {
        if skinny_gemm(
            batch * m,
            k,
            n,
            a,
            (oa.rs, oa.cs),
            b,
            (ob.rs, ob.cs),
            &mut out,
        ) {
            return (out, out_shape);
        }
        unsafe {
            T::gemm(
                batch * m,
                k,
                n,
                a.as_ptr(),
                oa.rs,
                oa.cs,
                b.as_ptr(),
                ob.rs,
                ob.cs,
                T::zero(),
                out.as_mut_ptr(),
                n as isize,
                1,
            )
        };
        return (out, out_shape);
    }
    let (sa, sb) = (
        if oa.batch > 1 { m * k } else { 0 },
        if ob.batch > 1 { k * n } else { 0 },
    );
    for i in 0..batch {
        let (a_i, b_i) = (&a[i * sa..], &b[i * sb..]);
        let o_i = &mut out[i * m * n..(i + 1) * m * n];
        if skinny_gemm(m, k, n, a_i, (oa.rs, oa.cs), b_i, (ob.rs, ob.cs), o_i) {
            continue;
        }
        unsafe {
            T::gemm(
                m,
                k,
                n,
                a.as_ptr().add(i * sa),
                oa.rs,
                oa.cs,
                b.as_ptr().add(i * sb),
                ob.rs,
                ob.cs,
                T::zero(),
                out.as_mut_ptr().add(i * m * n),
                n as isize,
                1,
            )
        };
    }
    (out, out_shape)
}

impl Tensor {
    /// op(self) · op(rhs), where op transposes the last two axes when its flag is set.
    ///
    /// Operands are 2-d matrices or 3-d batches of them; a 2-d operand is shared by every batch
    /// element, and batch sizes must be equal or 1.
    pub fn matmul_t(&self, rhs: &Tensor, ta: bool, tb: bool) -> Tensor {
        let (sa, sb) = (self.shape(), rhs.shape());
        let ok_rank = |s: &[usize]| s.len() == 2 || s.len() == 3;
        let oa = ok_rank(sa).then(|| operand(sa, ta));
        let ob = ok_rank(sb).then(|| operand(sb, tb));
        let fits = match (&oa, &ob) {
            (Some(a), Some(b)) => {
                a.cols == b.rows && (a.batch == b.batch || a.batch == 1 || b.batch == 1)
            }
            _ => false,
        };
        assert!(
            fits,
            "matmul: shapes {sa:?}{} and {sb:?}{} do not multiply",
            if ta { "ᵀ" } else { "" },
            if tb { "ᵀ" } else { "" }
        );
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::matmul(self, rhs, ta, tb) {
            return t;
        }
        timed(OpKind::Matmul, || {
            with_slices2!("matmul", self, rhs, |a, b| {
                let (v, shape) = matmul_slices(a, sa, ta, b, sb, tb);
                Tensor::from_vec(v, &shape)
            })
        })
    }

    /// Matrix product (2-d, or batched 3-d).
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        self.matmul_t(rhs, false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|i| i as f64).collect::<Vec<_>>(), shape)
    }

    #[test]
    fn small_products_by_hand() {
        // [[0,1,2],[3,4,5]] · [[0,1],[2,3],[4,5]] = [[10,13],[28,40]]
        let a = iota(&[2, 3]);
        let b = iota(&[3, 2]);
        assert_eq!(a.matmul(&b).to_vec_f64(), vec![10., 13., 28., 40.]);
        // aᵀ·a without copying: [[9,12,15],[12,17,22],[15,22,29]]
        assert_eq!(
            a.matmul_t(&a, true, false).to_vec_f64(),
            vec![9., 12., 15., 12., 17., 22., 15., 22., 29.]
        );
        assert_eq!(
            a.matmul_t(&a, false, true).to_vec_f64(),
            vec![5., 14., 14., 50.]
        );
    }

    #[test]
    fn batched_agrees_with_loop() {
        let a = iota(&[3, 2, 4]);
        let b = iota(&[3, 4, 5]).mul_scalar(0.5);
        let c = a.matmul(&b);
        for i in 0..3 {
            let ai = a.narrow(0, i, 1).reshape(&[2, 4]);
            let bi = b.narrow(0, i, 1).reshape(&[4, 5]);
            assert_eq!(
                c.narrow(0, i, 1).reshape(&[2, 5]).to_vec_f64(),
                ai.matmul(&bi).to_vec_f64()
            );
        }
        let shared = iota(&[4, 5]);
        let d = a.matmul(&shared);
        let e = a.matmul_t(&shared.t(), false, true);
        assert_eq!(d.to_vec_f64(), e.to_vec_f64());
        let f = a.t().matmul_t(&shared, true, false);
        assert_eq!(d.to_vec_f64(), f.to_vec_f64());
    }

    #[test]
    #[should_panic(expected = "matmul: shapes [2, 3] and [2, 3] do not multiply")]
    fn mismatch_names_shapes() {
        let a = iota(&[2, 3]);
        let _ = a.matmul(&a);
    }
}
