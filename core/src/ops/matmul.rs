//! Matrix products: f32 on AVX-512 through our own kernel (`sgemm_avx512`, which reads the
//! batch-sized operand in place instead of packing it), everything else through
//! `matrixmultiply` (AVX-512/AVX2 kernels chosen at run time).
//!
//! Transposes are free: `matrixmultiply` takes arbitrary row/column strides, so
//! `matmul_t(a, b, true, false)` computes aᵀb without copying a. Backward passes use this.

use crate::dtype::Elem;
use crate::profile::{timed_op_flops, OpKind};
use crate::storage::HostVec;
use crate::tensor::Tensor;
use crate::with_slices2;

/// An element type with a GEMM kernel: C = op(A)·op(B) + (β·C or a bias row) with explicit
/// strides.
pub trait Gemm: Elem + HostVec {
    /// With `bias` (n elements), C = op(A)·op(B) + bias on every row and β must be 0.
    ///
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
        bias: Option<&[Self]>,
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
        bias: Option<&[f32]>,
    ) {
        debug_assert!(beta == 0.0 || beta == 1.0, "GEMM β is 0 or 1 here");
        debug_assert!(bias.is_none() || beta == 0.0, "a bias replaces C");
        #[cfg(target_arch = "x86_64")]
        if csc == 1 && rsc >= n as isize && std::arch::is_x86_feature_detected!("avx512f") {
            let run = |r0: usize, rows: usize| {
                // SAFETY: the feature was detected; the caller vouches for the matrices, and
                // rows r0..r0+rows of A and C are inside them.
                unsafe {
                    super::sgemm_avx512::sgemm(
                        rows,
                        k,
                        n,
                        a.offset(r0 as isize * rsa),
                        (rsa, csa),
                        b,
                        (rsb, csb),
                        c.offset(r0 as isize * rsc),
                        rsc as usize,
                        beta != 0.0,
                        bias.map(|v| v.as_ptr()),
                    )
                }
            };
            let parts = gemm_parts(m, k, n);
            if parts <= 1 {
                run(0, m);
                return;
            }
            // Row blocks on the rayon pool: disjoint rows of C, whole tiles of 12 rows each
            // (every element is summed in the same order as on one thread: same bits).
            let rows = m.div_ceil(parts).div_ceil(12) * 12;
            struct Shared<F>(F);
            // SAFETY: the closure only reads A and B and writes rows of C that no other part
            // writes; the pointers stay valid for the scope.
            unsafe impl<F> Sync for Shared<F> {}
            let shared = Shared(&run);
            rayon::scope(|s| {
                for r0 in (0..m).step_by(rows) {
                    let shared = &shared;
                    s.spawn(move |_| (shared.0)(r0, rows.min(m - r0)));
                }
            });
            return;
        }
        let beta = prefill_bias(bias, m, n, c, rsc, csc).unwrap_or(beta);
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
        bias: Option<&[f64]>,
    ) {
        let beta = prefill_bias(bias, m, n, c, rsc, csc).unwrap_or(beta);
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// How many row blocks a product of this size is split into on the current rayon pool: one
/// unless there are several threads and each block keeps at least 48 rows and 32 MFLOP. A
/// pool thread that went to sleep between products takes tens of µs to wake on these VMs:
/// splitting the 17–34 MFLOP products of a training step made 2 threads slower than 1
/// (DSM M64 790 → 571 steps/s); coarse parallelism (ModelTarget's row blocks) pays instead.
fn gemm_parts(m: usize, k: usize, n: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads <= 1 {
        return 1;
    }
    let flops = 2.0 * (m * n * k) as f64;
    threads.min(m / 48).min((flops / 32e6) as usize).max(1)
}

/// Writes the bias row into every row of C and returns β = 1 for a kernel without native bias
/// support; `None` (keep β) without a bias.
fn prefill_bias<T: Copy + num_traits::One>(
    bias: Option<&[T]>,
    m: usize,
    n: usize,
    c: *mut T,
    rsc: isize,
    csc: isize,
) -> Option<T> {
    let bias = bias?;
    for i in 0..m {
        for (j, &v) in bias.iter().enumerate().take(n) {
            // SAFETY: the caller's C is m×n with these strides
            unsafe { *c.offset(i as isize * rsc + j as isize * csc) = v };
        }
    }
    Some(T::one())
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
        super::fastmath::dispatch(
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
                super::fastmath::dispatch(
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
                super::fastmath::dispatch(
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
        super::fastmath::dispatch(
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

#[allow(clippy::too_many_arguments)]
fn matmul_into<T: Gemm>(
    a: &[T],
    ashape: &[usize],
    ta: bool,
    b: &[T],
    bshape: &[usize],
    tb: bool,
    out: &mut [T],
    acc: bool,
    bias: Option<&[T]>,
) {
    let oa = operand(ashape, ta);
    let ob = operand(bshape, tb);
    let (m, k, n) = (oa.rows, oa.cols, ob.cols);
    let batch = oa.batch.max(ob.batch);
    // With `acc`, C holds the addend and every kernel accumulates onto it (GEMM beta = 1).
    // Without, its contents are unspecified: GEMM with beta = 0 never reads C, and the skinny
    // kernels initialise each row first; k = 0 writes zeros here.
    let beta = if acc { T::one() } else { T::zero() };
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if let Some(bv) = bias {
            for row in out.chunks_exact_mut(n) {
                row.copy_from_slice(bv);
            }
        } else if !acc {
            out.fill(T::zero());
        }
        return;
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
            out,
            acc,
            bias,
        ) {
            return;
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
                beta,
                out.as_mut_ptr(),
                n as isize,
                1,
                bias,
            )
        };
        return;
    }
    let (sa, sb) = (
        if oa.batch > 1 { m * k } else { 0 },
        if ob.batch > 1 { k * n } else { 0 },
    );
    for i in 0..batch {
        let (a_i, b_i) = (&a[i * sa..], &b[i * sb..]);
        let o_i = &mut out[i * m * n..(i + 1) * m * n];
        if skinny_gemm(
            m,
            k,
            n,
            a_i,
            (oa.rs, oa.cs),
            b_i,
            (ob.rs, ob.cs),
            o_i,
            acc,
            bias,
        ) {
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
                beta,
                out.as_mut_ptr().add(i * m * n),
                n as isize,
                1,
                bias,
            )
        };
    }
}

/// Most elements of a B operand whose transpose is kept with it.
const KEPT_TRANSPOSE_MAX: usize = 1 << 22;

/// For `x·Wᵀ` with a 2-d host `W`: `Wᵀ` as its own row-major tensor, made once per contents of
/// W's buffer and kept with it, so the product reads B's rows directly. A sampler evaluates
/// the same weights hundreds of times between optimizer steps, and every evaluation used to
/// transpose them again (a fifth of a 256-wide layer's product).
fn kept_transpose(rhs: &Tensor, tb: bool) -> Option<Tensor> {
    if !tb
        || rhs.rank() != 2
        || rhs.numel() > KEPT_TRANSPOSE_MAX
        || rhs.device() != crate::Device::Cpu
    {
        return None;
    }
    rhs.transposed_kept()
}

/// 2·(output elements)·k for a product whose left operand is `a` (transposed if `ta`).
fn product_flops(a: &Tensor, out_shape: &[usize], ta: bool) -> u64 {
    let r = a.rank();
    let k = if ta {
        a.shape()[r - 2]
    } else {
        a.shape()[r - 1]
    };
    2 * (crate::shape::numel(out_shape) * k) as u64
}

/// "matmul [1024, 128]ᵀ·[1024, 2]": the profile's name for a product.
fn mm_label(op: &str, a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> String {
    let t = |f: bool| if f { "ᵀ" } else { "" };
    format!("{op} {:?}{}·{:?}{}", a.shape(), t(ta), b.shape(), t(tb))
}

impl Tensor {
    /// The output shape of op(self)·op(rhs); panics naming both shapes when they do not fit.
    fn matmul_shape(&self, rhs: &Tensor, ta: bool, tb: bool) -> Vec<usize> {
        let (sa, sb) = (self.shape(), rhs.shape());
        let ok_rank = |s: &[usize]| s.len() == 2 || s.len() == 3;
        let oa = ok_rank(sa).then(|| operand(sa, ta));
        let ob = ok_rank(sb).then(|| operand(sb, tb));
        match (&oa, &ob) {
            (Some(a), Some(b))
                if a.cols == b.rows && (a.batch == b.batch || a.batch == 1 || b.batch == 1) =>
            {
                if sa.len() == 3 || sb.len() == 3 {
                    vec![a.batch.max(b.batch), a.rows, b.cols]
                } else {
                    vec![a.rows, b.cols]
                }
            }
            _ => panic!(
                "matmul: shapes {sa:?}{} and {sb:?}{} do not multiply",
                if ta { "ᵀ" } else { "" },
                if tb { "ᵀ" } else { "" }
            ),
        }
    }

    /// op(self) · op(rhs), where op transposes the last two axes when its flag is set.
    ///
    /// Operands are 2-d matrices or 3-d batches of them; a 2-d operand is shared by every batch
    /// element, and batch sizes must be equal or 1.
    pub fn matmul_t(&self, rhs: &Tensor, ta: bool, tb: bool) -> Tensor {
        let shape = self.matmul_shape(rhs, ta, tb);
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::matmul(self, rhs, ta, tb) {
            return t;
        }
        self.product(rhs, ta, tb, &shape, None)
    }

    /// op(self)·op(rhs) into a new tensor of `shape`, every row starting from `bias` if given.
    fn product(
        &self,
        rhs: &Tensor,
        ta: bool,
        tb: bool,
        shape: &[usize],
        bias: Option<&Tensor>,
    ) -> Tensor {
        if let Some(rt) = kept_transpose(rhs, tb) {
            return self.product(&rt, ta, false, shape, bias);
        }
        let op = if bias.is_some() {
            "matmul+bias"
        } else {
            "matmul"
        };
        timed_op_flops(
            OpKind::Matmul,
            || mm_label(op, self, rhs, ta, tb),
            product_flops(self, shape, ta),
            || {
                with_slices2!(op, self, rhs, |a, b| {
                    let mut out = crate::pool::take(crate::shape::numel(shape));
                    let bias = bias.map(|t| t.as_slice());
                    matmul_into(
                        a,
                        self.shape(),
                        ta,
                        b,
                        rhs.shape(),
                        tb,
                        &mut out,
                        false,
                        bias,
                    );
                    Tensor::from_vec(out, shape)
                })
            },
        )
    }

    /// op(self) · op(rhs) + addend, with `addend` broadcast to the product's shape and the
    /// product accumulated onto it by the GEMM itself (β = 1): a linear layer's bias costs no
    /// extra pass over the output.
    pub fn matmul_t_add(&self, rhs: &Tensor, ta: bool, tb: bool, addend: &Tensor) -> Tensor {
        let shape = self.matmul_shape(rhs, ta, tb);
        assert!(
            crate::shape::can_broadcast_to(addend.shape(), &shape)
                && addend.dtype() == self.dtype(),
            "matmul_t_add: addend {} {:?} does not broadcast to the product's {} {shape:?}",
            addend.dtype(),
            addend.shape(),
            self.dtype()
        );
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::matmul(self, rhs, ta, tb) {
            return t.add(addend);
        }
        let label = || mm_label("matmul+addend", self, rhs, ta, tb);
        let n = shape[shape.len() - 1];
        if addend.numel() == n
            && addend.shape().last() == Some(&n)
            && addend.device() == crate::Device::Cpu
        {
            // a bias row: the kernels start every output row from it
            return self.product(rhs, ta, tb, &shape, Some(addend));
        }
        if let Some(rt) = kept_transpose(rhs, tb) {
            return self.matmul_t_add(&rt, ta, false, addend);
        }
        timed_op_flops(
            OpKind::Matmul,
            label,
            product_flops(self, &shape, ta),
            || {
                let mut init = addend.broadcast_to(&shape);
                if init.same_buffer(addend) {
                    // broadcast_to returned the addend itself: copy, never write into a shared buffer
                    init = init.mul_scalar(1.0);
                }
                with_slices2!("matmul_t_add", self, rhs, |a, b| {
                    let out = init.data_mut();
                    matmul_into(a, self.shape(), ta, b, rhs.shape(), tb, out, true, None);
                });
                init
            },
        )
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
    fn fused_addend_equals_product_plus_addend() {
        let a = iota(&[5, 3]).mul_scalar(0.25);
        let b = iota(&[3, 4]).add_scalar(-2.0);
        let batched = iota(&[2, 5, 3]);
        for (x, y) in [(&a, &b), (&batched, &b)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let (xx, yy) = (
                        if ta { x.t() } else { x.clone() },
                        if tb { y.t() } else { y.clone() },
                    );
                    let prod = xx.matmul_t(&yy, ta, tb);
                    let n = prod.shape()[prod.rank() - 1];
                    for addend in [
                        Tensor::arange(n, crate::DType::F64),
                        prod.ones_like().mul_scalar(3.0),
                        Tensor::scalar(-1.5, crate::DType::F64),
                    ] {
                        let fused = xx.matmul_t_add(&yy, ta, tb, &addend);
                        assert_eq!(fused.to_vec_f64(), prod.add(&addend).to_vec_f64());
                    }
                }
            }
        }
        // skinny shapes take the dot and axpy kernels
        let tall = iota(&[64, 2]);
        let w = iota(&[3, 2]);
        let bias = Tensor::arange(3, crate::DType::F64);
        assert_eq!(
            tall.matmul_t_add(&w, false, true, &bias).to_vec_f64(),
            tall.matmul_t(&w, false, true).add(&bias).to_vec_f64()
        );
        // the addend is never written through
        let shared = Tensor::ones(&[64, 3], crate::DType::F64);
        let _ = tall.matmul_t_add(&w, false, true, &shared);
        assert_eq!(shared.to_vec_f64(), vec![1.0; 192]);
    }

    #[test]
    fn skinny_paths_agree_with_naive_products() {
        // few columns (n ≤ 4), few inner features (k ≤ 4) and tall transposed operands take the
        // skinny kernels; every layout and the accumulating form against a naive f64 product
        let mut rng = crate::Rng::new(4);
        for (m, k, n) in [
            (37, 2, 128),
            (40, 1, 33),
            (64, 4, 7),
            (128, 1024, 2),
            (50, 300, 1),
            (37, 3, 4),
        ] {
            for dtype in [crate::DType::F32, crate::DType::F64] {
                let a = rng.normal(&[m, k], dtype);
                let b = rng.normal(&[k, n], dtype);
                let c = rng.normal(&[m, n], dtype);
                let bias = rng.normal(&[n], dtype);
                let biasv = bias.to_vec_f64();
                let (av, bv) = (a.to_vec_f64(), b.to_vec_f64());
                let naive: Vec<f64> = (0..m * n)
                    .map(|q| {
                        (0..k)
                            .map(|p| av[(q / n) * k + p] * bv[p * n + q % n])
                            .sum()
                    })
                    .collect();
                let tol = if dtype == crate::DType::F32 {
                    1e-5
                } else {
                    1e-12
                } * (k as f64).sqrt();
                for ta in [false, true] {
                    for tb in [false, true] {
                        let x = if ta { a.t() } else { a.clone() };
                        let y = if tb { b.t() } else { b.clone() };
                        let got = x.matmul_t(&y, ta, tb).to_vec_f64();
                        let got_acc = x.matmul_t_add(&y, ta, tb, &c).to_vec_f64();
                        let got_bias = x.matmul_t_add(&y, ta, tb, &bias).to_vec_f64();
                        for (q, want) in naive.iter().enumerate() {
                            let cq = c.to_vec_f64()[q];
                            assert!(
                                (got[q] - want).abs() <= tol * (1.0 + want.abs()),
                                "{m}x{k}x{n} ta={ta} tb={tb}"
                            );
                            assert!(
                                (got_acc[q] - want - cq).abs()
                                    <= tol * (1.0 + want.abs() + cq.abs()),
                                "{m}x{k}x{n} ta={ta} tb={tb} +C"
                            );
                            let bq = biasv[q % n];
                            assert!(
                                (got_bias[q] - want - bq).abs()
                                    <= tol * (1.0 + want.abs() + bq.abs()),
                                "{m}x{k}x{n} ta={ta} tb={tb} +bias"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn row_blocks_on_several_threads_give_the_same_bits() {
        let mut rng = crate::Rng::new(12);
        let x = rng.normal(&[515, 256], crate::DType::F32);
        let w = rng.normal(&[256, 400], crate::DType::F32);
        let bias = rng.normal(&[400], crate::DType::F32);
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                // 105 MFLOP: up to 3 blocks of ≥ 32
                assert_eq!(gemm_parts(515, 256, 400), threads.min(3));
                (
                    x.matmul(&w).to_vec_f64(),
                    x.matmul_t_add(&w, false, false, &bias).to_vec_f64(),
                )
            })
        };
        assert_eq!(on(1), on(2));
        assert_eq!(on(1), on(3));
    }

    #[test]
    fn kept_transpose_is_reused_and_dropped_on_write() {
        let mut rng = crate::Rng::new(6);
        let x = rng.normal(&[40, 24], crate::DType::F32);
        let mut w = rng.normal(&[30, 24], crate::DType::F32);
        let naive = |w: &Tensor| x.matmul_t(&w.t(), false, false).to_vec_f64();
        let first = x.matmul_t(&w, false, true);
        assert_eq!(first.to_vec_f64(), naive(&w));
        let kept = w.transposed_kept().expect("x·Wᵀ keeps Wᵀ");
        assert_eq!(kept.shape(), &[24, 30]);
        let again = w.transposed_kept().unwrap();
        assert!(again.same_buffer(&kept), "made once, then reused");
        drop((kept, again));
        // an in-place write drops it: the next product sees the new weights
        w.data_mut::<f32>()[5] = 9.0;
        let after = x.matmul_t_add(&w, false, true, &Tensor::zeros(&[30], crate::DType::F32));
        assert_eq!(after.to_vec_f64(), naive(&w));
    }

    #[test]
    #[should_panic(expected = "matmul: shapes [2, 3] and [2, 3] do not multiply")]
    fn mismatch_names_shapes() {
        let a = iota(&[2, 3]);
        let _ = a.matmul(&a);
    }
}
