//! Matrix products: f32 on AVX-512 or AVX2+FMA through our own kernels (`sgemm_avx512`,
//! `sgemm_avx2`, which read the batch-sized operand A in place and pack only B; the path is
//! chosen at run time, see [`gemm_path`]), everything else through `matrixmultiply`
//! (AVX-512/AVX2 kernels chosen at run time; its portable kernel elsewhere, e.g. aarch64).
//!
//! Transposes are free: `matrixmultiply` takes arbitrary row/column strides, so
//! `matmul_t(a, b, true, false)` computes aᵀb without copying a. Backward passes use this.
//!
//! This file holds the `Tensor` methods (shape checks, the kept transpose of a weight,
//! profiling); `gemm.rs` the driver and each element type's kernel, `skinny.rs` the direct
//! loops for products with a side of a few elements, `sgemm_avx512.rs` and `sgemm_avx2.rs` the
//! f32 kernels, `pack.rs` their packed B panels and `packed_b.rs` the panels kept with a weight,
//! `fused.rs` the products fused with the element-wise multiply beside them.

mod fused;
mod gemm;
#[cfg(all(test, target_arch = "x86_64"))]
mod kernel_check;
#[cfg(target_arch = "x86_64")]
mod pack;
#[cfg(target_arch = "x86_64")]
mod packed_b;
mod peak;
#[cfg(target_arch = "x86_64")]
mod sgemm_avx2;
#[cfg(target_arch = "x86_64")]
mod sgemm_avx512;
mod skinny;

pub use gemm::{gemm_path, Gemm, GemmPath};
pub use peak::{cpu_model, fma_peak_gflops};

use crate::profile::{timed_op_flops, OpKind};
use crate::tensor::Tensor;
use crate::with_slices2;
use gemm::{matmul_into, operand};

/// An f32 kernel's signature: (m, k, n, A, A's strides, B, B's strides, C, C's row stride,
/// accumulate onto C, bias row); see `sgemm_avx2::sgemm`.
#[cfg(target_arch = "x86_64")]
type SgemmKernel = unsafe fn(
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
);

/// An f32 kernel's product from B packed whole by `pack::pack_b_all` at the kernel's panel
/// width: (m, k, n, A, A's strides, packed B, C, C's row stride, accumulate, bias row, D to
/// multiply C by element-wise).
#[cfg(target_arch = "x86_64")]
type PackedKernel = unsafe fn(
    usize,
    usize,
    usize,
    *const f32,
    (isize, isize),
    *const f32,
    *mut f32,
    usize,
    bool,
    Option<*const f32>,
    Option<*const f32>,
);

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
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = self.product_with_kept_packed_b(rhs, ta, tb, shape, bias, None) {
            return t;
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

    /// op(self) · op(rhs) + acc for `acc` of the product's shape, the product accumulated by
    /// the GEMM (β = 1) into `acc`'s own buffer when nothing else holds it (else into a copy):
    /// a sum of products with no pass over memory per term (a weight gradient with several
    /// terms, as in the closed forms of ebm-nn's `silu_mlp`).
    pub fn matmul_t_acc(&self, rhs: &Tensor, ta: bool, tb: bool, mut acc: Tensor) -> Tensor {
        let shape = self.matmul_shape(rhs, ta, tb);
        assert!(
            acc.shape() == shape.as_slice() && acc.dtype() == self.dtype(),
            "matmul_t_acc: acc {} {:?} is not the product's {} {shape:?}",
            acc.dtype(),
            acc.shape(),
            self.dtype()
        );
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::matmul(self, rhs, ta, tb) {
            return t.add(&acc);
        }
        if let Some(rt) = kept_transpose(rhs, tb) {
            return self.matmul_t_acc(&rt, ta, false, acc);
        }
        let label = || mm_label("matmul+=", self, rhs, ta, tb);
        timed_op_flops(
            OpKind::Matmul,
            label,
            product_flops(self, &shape, ta),
            || {
                with_slices2!("matmul_t_acc", self, rhs, |a, b| {
                    let out = acc.data_mut();
                    matmul_into(a, self.shape(), ta, b, rhs.shape(), tb, out, true, None);
                });
                acc
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
    use super::gemm::gemm_parts;
    use super::*;

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|i| i as f64).collect::<Vec<_>>(), shape)
    }

    /// The accumulated product is the product plus acc, in acc's buffer when unshared and
    /// leaving a shared one untouched.
    #[test]
    fn accumulated_products_keep_shared_buffers() {
        let a = iota(&[2, 3]);
        let acc = iota(&[3, 3]).mul_scalar(0.5);
        let want = a.matmul_t(&a, true, false).add(&acc).to_vec_f64();
        let kept = acc.clone();
        assert_eq!(a.matmul_t_acc(&a, true, false, acc).to_vec_f64(), want);
        assert_eq!(
            kept.to_vec_f64(),
            iota(&[3, 3]).mul_scalar(0.5).to_vec_f64()
        );
        assert_eq!(a.matmul_t_acc(&a, true, false, kept).to_vec_f64(), want);
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
