//! The GEMM driver: the [`Gemm`] kernel of each element type (our AVX-512 or AVX2 f32 kernel,
//! chosen at run time by [`gemm_path`] and split into row blocks on the rayon pool for large
//! products, or `matrixmultiply`), and
//! `matmul_into`, which lays out the batch, sends skinny shapes to [`super::skinny`] and the
//! rest to the kernel.

use super::skinny::skinny_gemm;
use crate::dtype::Elem;
use crate::storage::HostVec;

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
        if csc == 1 && rsc >= n as isize {
            let kernel: Option<super::SgemmKernel> = match gemm_path() {
                GemmPath::Avx512 => Some(super::sgemm_avx512::sgemm),
                GemmPath::Avx2 => Some(super::sgemm_avx2::sgemm),
                GemmPath::Portable => None,
            };
            if let Some(kernel) = kernel {
                let run = |r0: usize, rows: usize| {
                    // SAFETY: `gemm_path` only names a kernel whose features were detected;
                    // the caller vouches for the matrices, and rows r0..r0+rows of A and C
                    // are inside them.
                    unsafe {
                        kernel(
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
                in_row_blocks(m, k, n, run);
                return;
            }
        }
        let beta = prefill_bias(bias, m, n, c, rsc, csc).unwrap_or(beta);
        // SAFETY: the caller vouches for the m×k, k×n and m×n matrices (the trait's contract).
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
        // SAFETY: the caller vouches for the m×k, k×n and m×n matrices (the trait's contract).
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// Runs `run(r0, rows)` over row blocks of an m×k·k×n product: all rows at once, or
/// [`gemm_parts`] blocks on the rayon pool, each disjoint rows of C and whole tiles of 12 rows
/// (every element is summed in the same order as on one thread: same bits). `run` must only
/// read A and B and write rows r0..r0+rows of C.
#[cfg(target_arch = "x86_64")]
pub(super) fn in_row_blocks(m: usize, k: usize, n: usize, run: impl Fn(usize, usize)) {
    let parts = gemm_parts(m, k, n);
    if parts <= 1 {
        run(0, m);
        return;
    }
    let rows = m.div_ceil(parts).div_ceil(12) * 12;
    struct Shared<F>(F);
    // SAFETY: by the contract above, the closure only reads A and B and writes rows of C that
    // no other part writes; the pointers it holds stay valid for the scope.
    unsafe impl<F> Sync for Shared<F> {}
    let shared = Shared(&run);
    rayon::scope(|s| {
        for r0 in (0..m).step_by(rows) {
            let shared = &shared;
            s.spawn(move |_| (shared.0)(r0, rows.min(m - r0)));
        }
    });
}

/// How many row blocks a product of this size is split into on the current rayon pool: one
/// unless there are several threads and each block keeps at least 48 rows and 32 MFLOP. A
/// pool thread that went to sleep between products takes tens of µs to wake on these VMs:
/// splitting the 17–34 MFLOP products of a training step made 2 threads slower than 1
/// (DSM M64 790 → 571 steps/s); coarse parallelism (ModelTarget's row blocks) pays instead.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn gemm_parts(m: usize, k: usize, n: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads <= 1 {
        return 1;
    }
    let flops = 2.0 * (m * n * k) as f64;
    threads.min(m / 48).min((flops / 32e6) as usize).max(1)
}

/// The f32 GEMM kernel products run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmPath {
    /// Our AVX-512F kernel (`sgemm_avx512`).
    Avx512,
    /// Our AVX2+FMA kernel (`sgemm_avx2`).
    Avx2,
    /// `matrixmultiply` (its own run-time kernel choice; the only path off x86-64).
    Portable,
}

impl GemmPath {
    /// The name `EBM_GEMM` takes for this path.
    pub fn name(self) -> &'static str {
        match self {
            GemmPath::Avx512 => "avx512",
            GemmPath::Avx2 => "avx2",
            GemmPath::Portable => "portable",
        }
    }

    /// Whether this CPU can run the path.
    fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            GemmPath::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            GemmPath::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            GemmPath::Avx512 | GemmPath::Avx2 => false,
            GemmPath::Portable => true,
        }
    }
}

/// The path f32 products take in this process: the best one this CPU supports, or the one the
/// environment variable `EBM_GEMM` (`avx512`, `avx2` or `portable`) names, so that an AVX-512
/// machine can measure the AVX2 path too (the element-wise loops follow: `fastmath::dispatch`
/// compiles for no wider a vector unit). A name this CPU cannot run, or an unknown one, is
/// reported once on stderr and the best path is used. Decided on the first product.
pub fn gemm_path() -> GemmPath {
    static PATH: std::sync::OnceLock<GemmPath> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        let best = [GemmPath::Avx512, GemmPath::Avx2, GemmPath::Portable]
            .into_iter()
            .find(|p| p.supported())
            .unwrap_or(GemmPath::Portable);
        let Ok(want) = std::env::var("EBM_GEMM") else {
            return best;
        };
        let named = [GemmPath::Avx512, GemmPath::Avx2, GemmPath::Portable]
            .into_iter()
            .find(|p| p.name() == want.trim());
        match named {
            Some(p) if p.supported() => p,
            _ => {
                eprintln!(
                    "ebm: EBM_GEMM={want:?} is not a GEMM path this CPU runs \
                     (avx512, avx2, portable); using {}",
                    best.name()
                );
                best
            }
        }
    })
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
pub(super) struct Operand {
    pub(super) batch: usize,
    pub(super) rows: usize,
    pub(super) cols: usize,
    rs: isize,
    cs: isize,
}

/// The operand of `shape` read as op(·), transposed when `trans`.
pub(super) fn operand(shape: &[usize], trans: bool) -> Operand {
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

/// op(A)·op(B) into `out` (onto it when `acc`, from a bias row when given), for 2-d or 3-d
/// operands of the given shapes.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_into<T: Gemm>(
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
        // SAFETY: `operand` derived the strides from the shapes, and the slices hold
        // [batch·m, k], [k, n] and [batch·m, n] elements (the caller's shapes).
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
        // SAFETY: batch element i of each operand starts at i·(its matrix size), or at 0 for
        // a shared one, and spans one m×k, k×n or m×n matrix with `operand`'s strides.
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
