//! The shared test of the f32 GEMM kernels: each kernel against an f64 reference on A and B
//! stored transposed or not, padded rows, and C started from zero, from itself or from a bias.

use super::SgemmKernel;

/// f64 reference of op(A)·op(B) (+ C or + bias), C with row stride ldc.
#[allow(clippy::too_many_arguments)]
fn reference(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    start: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = start(i, j);
            for p in 0..k {
                s += a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
            }
            out[i * n + j] = s;
        }
    }
    out
}

/// `len` standard normal draws of seed `seed`, as f32.
fn vals(seed: u64, len: usize) -> Vec<f32> {
    crate::Rng::new(seed)
        .normal_vec(len)
        .iter()
        .map(|&v| v as f32)
        .collect()
}

/// Runs `kernel` on A (m×k) and B (k×n) stored transposed or not with `pad` extra
/// elements per stored row, and C with row stride n + pad, in each of its three modes,
/// against the f64 reference.
#[allow(clippy::too_many_arguments)]
pub(super) fn check(
    kernel: SgemmKernel,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    pad: usize,
    seed: u64,
) {
    // stored A: m rows of k (or k rows of m when transposed), each `pad` longer
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let a = vals(seed, ar * (ac + pad));
    let b = vals(seed + 1, br * (bc + pad));
    let sa = if ta { (1, m + pad) } else { (k + pad, 1) };
    let sb = if tb { (1, k + pad) } else { (n + pad, 1) };
    let ldc = n + pad;
    let c0 = vals(seed + 2, m * ldc);
    let bias = vals(seed + 3, n);
    let tol = 1e-5 * ((k + 1) as f64).sqrt();
    for mode in 0..3 {
        let mut c = if mode == 1 {
            c0.clone()
        } else {
            vec![f32::NAN; m * ldc]
        };
        // SAFETY: the caller detected the kernel's features; a, b and c hold the matrices
        // their strides describe.
        unsafe {
            kernel(
                m,
                k,
                n,
                a.as_ptr(),
                (sa.0 as isize, sa.1 as isize),
                b.as_ptr(),
                (sb.0 as isize, sb.1 as isize),
                c.as_mut_ptr(),
                ldc,
                mode == 1,
                (mode == 2).then_some(bias.as_ptr()),
            )
        };
        let want = reference((m, k, n), &a, sa, &b, sb, |i, j| match mode {
            1 => c0[i * ldc + j] as f64,
            2 => bias[j] as f64,
            _ => 0.0,
        });
        for i in 0..m {
            for j in 0..ldc {
                let got = c[i * ldc + j];
                if j >= n {
                    // padding past column n is never written
                    let was = if mode == 1 { c0[i * ldc + j] } else { f32::NAN };
                    assert_eq!(got.to_bits(), was.to_bits(), "pad written at {i},{j}");
                    continue;
                }
                let w = want[i * n + j];
                assert!(
                    (got as f64 - w).abs() <= tol * (1.0 + w.abs()),
                    "{m}x{k}x{n} ta={ta} tb={tb} pad={pad} mode={mode}: C[{i},{j}] = {got}, want {w}"
                );
            }
        }
    }
}

/// A stored transposed (its depth strided, read through its strides) gives the bits of the same
/// A stored row-major, for a kernel with B strided and with B packed whole: one panel and
/// several, row edges, depths past one and two KC blocks, rows past one MC block, C from zero,
/// from itself and from a bias.
pub(super) fn check_a_layouts(kernels: [SgemmKernel; 2]) {
    for (q, &(m, k, n)) in [
        (6, 5, 16),
        (13, 7, 17),
        (100, 64, 31),
        (9, 600, 40),
        (97, 257, 48),
        (130, 256, 70),
    ]
    .iter()
    .enumerate()
    {
        let a = vals(q as u64, m * k);
        let mut at = vec![0.0f32; k * (m + 3)];
        for i in 0..m {
            for p in 0..k {
                at[p * (m + 3) + i] = a[i * k + p];
            }
        }
        let b = vals(q as u64 + 1, k * n);
        let c0 = vals(q as u64 + 2, m * n);
        let bias = vals(q as u64 + 3, n);
        for kernel in kernels {
            for mode in 0..3 {
                let run = |a: &[f32], strides: (isize, isize)| {
                    let mut c = if mode == 1 {
                        c0.clone()
                    } else {
                        vec![0.0; m * n]
                    };
                    // SAFETY: the caller detected the kernel's features; a, b and c hold the
                    // matrices their strides describe.
                    unsafe {
                        kernel(
                            m,
                            k,
                            n,
                            a.as_ptr(),
                            strides,
                            b.as_ptr(),
                            (n as isize, 1),
                            c.as_mut_ptr(),
                            n,
                            mode == 1,
                            (mode == 2).then_some(bias.as_ptr()),
                        )
                    };
                    c
                };
                let (rows, cols) = (run(&a, (k as isize, 1)), run(&at, (1, m as isize + 3)));
                for (i, (x, y)) in rows.iter().zip(&cols).enumerate() {
                    assert_eq!(x.to_bits(), y.to_bits(), "{m}x{k}x{n} mode {mode}: C[{i}]");
                }
            }
        }
    }
}

/// `via_packed_b`: the test module's kernel (`super::sgemm_packed_b`, panels `super::NR`
/// wide) on B packed whole first (the kept-weight path), in [`SgemmKernel`]'s form for
/// [`check`] and [`check_prepacked`]; and `via_packed_b_scaled`, the same with the kernel's
/// D (C ⊙= D on the way out), in [`ScaledKernel`]'s form for [`check_scaled`].
macro_rules! via_packed_b {
    () => {
        #[allow(clippy::too_many_arguments)]
        unsafe fn via_packed_b_scaled(
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
            scale: Option<*const f32>,
        ) {
            use super::super::pack::{pack_b_all, packed_b_len};
            let mut panels = vec![f32::NAN; packed_b_len::<{ super::NR }>(k, n)];
            // SAFETY: the caller's matrices (the kernel's features detected by the test),
            // and `panels` of the stated length
            unsafe {
                pack_b_all::<{ super::NR }>(b, b_strides, k, n, panels.as_mut_ptr());
                super::sgemm_packed_b(
                    m,
                    k,
                    n,
                    a,
                    a_strides,
                    panels.as_ptr(),
                    c,
                    ldc,
                    accumulate,
                    bias,
                    scale,
                );
            }
        }

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
            // SAFETY: the caller's
            unsafe {
                via_packed_b_scaled(
                    m, k, n, a, a_strides, b, b_strides, c, ldc, accumulate, bias, None,
                )
            }
        }
    };
}
pub(super) use via_packed_b;

/// A kernel from B packed whole (`via_packed_b!`'s wrapper) against the f64
/// reference on edges and depth blocks, and bit for bit the kernel packing per product
/// (`strided`): every element is the same FMA chain either way.
pub(super) fn check_prepacked(strided: SgemmKernel, via_packed: SgemmKernel) {
    for (q, &(m, k, n)) in [
        (6, 5, 16),
        (13, 7, 17),
        (97, 600, 40),
        (64, 128, 128),
        (25, 70, 33),
        (5, 0, 7),
    ]
    .iter()
    .enumerate()
    {
        for (ta, tb, pad) in [(false, false, 0), (true, true, 2), (false, true, 1)] {
            check(via_packed, m, k, n, ta, tb, pad, q as u64 * 7);
        }
    }
    let (m, k, n) = (37, 300, 45);
    let a = vals(11, m * k);
    let b = vals(12, k * n);
    // B row-major and column-major (the kept Wᵀ of a forward product is packed from either)
    for (bt, sb) in [(false, (n as isize, 1)), (true, (1, k as isize))] {
        let run = |kernel: SgemmKernel| {
            let mut c = vec![0f32; m * n];
            // SAFETY: the caller detected the kernel's features; row-major m×k, k×n (or its
            // transpose's storage) and m×n buffers
            unsafe {
                kernel(
                    m,
                    k,
                    n,
                    a.as_ptr(),
                    (k as isize, 1),
                    b.as_ptr(),
                    sb,
                    c.as_mut_ptr(),
                    n,
                    false,
                    None,
                )
            };
            c
        };
        let (c1, c2) = (run(strided), run(via_packed));
        assert!(
            c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
            "packed whole and per product differ (B transposed: {bt})"
        );
    }
}

/// [`SgemmKernel`]'s signature and D, C ⊙= D on the way out (`via_packed_b_scaled`).
pub(super) type ScaledKernel = unsafe fn(
    usize,
    usize,
    usize,
    *const f32,
    (isize, isize),
    *const f32,
    (isize, isize),
    *mut f32,
    usize,
    bool,
    Option<*const f32>,
    Option<*const f32>,
);

/// With D, each element of C is the unscaled product's times D's, bit for bit (the rounding of
/// a separate multiply after the product), in each of C's three modes (from zero, onto C, from
/// a bias), across depth blocks, row edges and partial panels; C's padding is never written.
pub(super) fn check_scaled(kernel: ScaledKernel) {
    for (q, &(m, k, n, pad)) in [
        (13, 7, 17, 1),
        (97, 600, 40, 0),
        (25, 70, 33, 2),
        (64, 256, 256, 0),
    ]
    .iter()
    .enumerate()
    {
        let seed = 40 + 5 * q as u64;
        let ldc = n + pad;
        let (a, b) = (vals(seed, m * k), vals(seed + 1, k * n));
        let (d, c0, bias) = (
            vals(seed + 2, m * ldc),
            vals(seed + 3, m * ldc),
            vals(seed + 4, n),
        );
        for mode in 0..3 {
            let run = |scale: Option<*const f32>| {
                let mut c = if mode == 1 {
                    c0.clone()
                } else {
                    vec![f32::NAN; m * ldc]
                };
                // SAFETY: the caller detected the kernel's features; row-major m×k, k×n and
                // m×ldc buffers, D like C
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
                        ldc,
                        mode == 1,
                        (mode == 2).then_some(bias.as_ptr()),
                        scale,
                    )
                };
                c
            };
            let (plain, scaled) = (run(None), run(Some(d.as_ptr())));
            for (e, (&got, &p)) in scaled.iter().zip(&plain).enumerate() {
                let want = if e % ldc < n { p * d[e] } else { p };
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{m}x{k}x{n} pad {pad} mode {mode}: element {e}"
                );
            }
        }
    }
}
