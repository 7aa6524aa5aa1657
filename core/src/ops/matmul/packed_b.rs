//! Products whose B is kept packed (both x86 kernels): a weight read as B by many products
//! between two writes (a sampler's score evaluates the same layers hundreds of times; a
//! training step's row blocks share them) is packed into the kernel's panels once per contents
//! and kept with its buffer (`Buffer::packed_b_for`), instead of once per product. Packing a
//! 128×128 weight was 3.3 of the 59 µs of a 64×128·128×128 product in ChEES's MLP score.

use super::gemm::{gemm_path, in_row_blocks, GemmPath};
use super::pack::{pack_b_all, packed_b_len};
use super::{mm_label, product_flops};
use super::{sgemm_avx2, sgemm_avx512, PackedKernel};
use crate::profile::{timed_op_flops, OpKind};
use crate::tensor::Tensor;
use crate::{DType, Device};

impl Tensor {
    /// op(self)·rhs (+ bias rows) (⊙ `scale`, of the product's shape, in the kernel's
    /// stores) from `rhs`'s kept packed panels, when this is a 2-d f32 product one of our
    /// kernels takes (not a skinny one) and `rhs` has been read as B before; `None` sends the
    /// product down the ordinary path (which packs for itself).
    pub(super) fn product_with_kept_packed_b(
        &self,
        rhs: &Tensor,
        ta: bool,
        tb: bool,
        shape: &[usize],
        bias: Option<&Tensor>,
        scale: Option<&Tensor>,
    ) -> Option<Tensor> {
        let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device() == Device::Cpu;
        if tb
            || self.rank() != 2
            || rhs.rank() != 2
            || !f32_cpu(self)
            || !f32_cpu(rhs)
            || !bias.is_none_or(f32_cpu)
            || !scale.is_none_or(|d| f32_cpu(d) && d.shape() == shape)
        {
            return None;
        }
        // each kernel's panel width, its packing, and its product from packed panels
        type Pack = unsafe fn(*const f32, (isize, isize), usize, usize, *mut f32);
        let (len, pack, kernel): (fn(usize, usize) -> usize, Pack, PackedKernel) = match gemm_path()
        {
            GemmPath::Avx512 => (
                packed_b_len::<{ sgemm_avx512::NR }>,
                pack_b_all::<{ sgemm_avx512::NR }>,
                sgemm_avx512::sgemm_packed_b,
            ),
            GemmPath::Avx2 => (
                packed_b_len::<{ sgemm_avx2::NR }>,
                pack_b_all::<{ sgemm_avx2::NR }>,
                sgemm_avx2::sgemm_packed_b,
            ),
            GemmPath::Portable => return None,
        };
        let (k, n) = (rhs.shape()[0], rhs.shape()[1]);
        let m = shape[0];
        // the shapes `skinny` leaves to the kernel
        if n <= 4 || k <= 8 || m <= 4 {
            return None;
        }
        let pack_now = || {
            let mut v = crate::pool::take::<f32>(len(k, n));
            // SAFETY: B is rhs's row-major k×n slice and `v` holds len(k, n) elements.
            unsafe {
                pack(
                    rhs.as_slice::<f32>().as_ptr(),
                    (n as isize, 1),
                    k,
                    n,
                    v.as_mut_ptr(),
                )
            };
            v
        };
        // a first request is not kept; with a ⊙ to form in the stores it is still worth one
        // packing here (the other path writes the product and reads it back to multiply)
        let once: Option<Vec<f32>>;
        let packed: &[f32] = match rhs.kept_packed_b(pack_now) {
            Some(p) => {
                once = None;
                p
            }
            None if scale.is_some() => {
                once = Some(pack_now());
                once.as_deref().expect("just packed")
            }
            None => return None,
        };
        let label = || {
            let op = match (bias, scale) {
                (Some(_), Some(_)) => "(matmul+bias)⊙",
                (Some(_), None) => "matmul+bias",
                (None, Some(_)) => "matmul⊙",
                (None, None) => "matmul",
            };
            mm_label(op, self, rhs, ta, tb)
        };
        let product = timed_op_flops(
            OpKind::Matmul,
            label,
            product_flops(self, shape, ta),
            || {
                let a = self.as_slice::<f32>();
                // A is m×k, stored k×m when transposed
                let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
                let mut out = crate::pool::take::<f32>(m * n);
                let bias = bias.map(|b| b.as_slice::<f32>().as_ptr());
                let scale = scale.map(|d| SendPtr(d.as_slice::<f32>().as_ptr().cast_mut()));
                let c = SendPtr(out.as_mut_ptr());
                in_row_blocks(m, k, n, |r0, rows| {
                    // SAFETY: the path's features were detected (`gemm_path`); rows
                    // r0..r0+rows of A (m×k with these strides) and of C (m×n, row stride n)
                    // are inside their buffers, and `packed` was packed for this kernel from
                    // this B's k×n contents; D (only read) is m×n like C.
                    unsafe {
                        kernel(
                            rows,
                            k,
                            n,
                            a.as_ptr().offset(r0 as isize * rsa),
                            (rsa, csa),
                            packed.as_ptr(),
                            c.at(r0 * n),
                            n,
                            false,
                            bias,
                            scale.map(|d| d.at(r0 * n).cast_const()),
                        )
                    }
                });
                Tensor::from_vec(out, shape)
            },
        );
        if let Some(v) = once {
            crate::pool::give(v);
        }
        Some(product)
    }
}

/// C's (or D's) base pointer, shared by the row blocks (each writes its own rows of C).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

impl SendPtr {
    /// The pointer `offset` elements on.
    ///
    /// # Safety
    /// `offset` is inside the allocation.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's
        unsafe { self.0.add(offset) }
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Rng, Tensor};

    fn bits(t: &Tensor) -> Vec<u32> {
        t.as_slice::<f32>().iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn kept_packing_gives_the_same_bits_and_follows_writes() {
        let mut rng = Rng::new(4);
        let x = rng.normal(&[37, 70], DType::F32);
        let xt = rng.normal(&[70, 37], DType::F32);
        let mut w = rng.normal(&[70, 45], DType::F32);
        let bias = rng.normal(&[45], DType::F32);
        // the first product packs for itself, later ones read the kept panels
        let first = x.matmul_t(&w, false, false);
        let first_t = xt.matmul_t(&w, true, false);
        let first_b = x.matmul_t_add(&w, false, false, &bias);
        for _ in 0..2 {
            assert_eq!(bits(&x.matmul_t(&w, false, false)), bits(&first));
            assert_eq!(bits(&xt.matmul_t(&w, true, false)), bits(&first_t));
            assert_eq!(
                bits(&x.matmul_t_add(&w, false, false, &bias)),
                bits(&first_b)
            );
        }
        // against the f64 product
        let want = x
            .cast(DType::F64)
            .matmul_t(&w.cast(DType::F64), false, false);
        assert!(first.cast(DType::F64).max_abs_diff(&want) < 1e-4);
        // an in-place write (an optimizer step) drops the kept panels
        assert!(w.buffer_is_unique());
        for v in w.data_mut::<f32>().iter_mut() {
            *v *= -2.0;
        }
        let after = x.matmul_t(&w, false, false);
        let want = x
            .cast(DType::F64)
            .matmul_t(&w.cast(DType::F64), false, false);
        assert!(after.cast(DType::F64).max_abs_diff(&want) < 1e-4);
        assert_eq!(bits(&x.matmul_t(&w, false, false)), bits(&after));
        // the same buffer under another shape is packed for itself, not from the kept panels
        let w2 = w.reshape(&[45, 70]);
        let y = rng.normal(&[9, 45], DType::F32);
        let got = y.matmul_t(&w2, false, false);
        let want = y
            .cast(DType::F64)
            .matmul_t(&w2.cast(DType::F64), false, false);
        assert!(got.cast(DType::F64).max_abs_diff(&want) < 1e-4);
        assert!(y.matmul_t(&w2, false, false).max_abs_diff(&got) == 0.0);
    }

    #[test]
    fn row_blocks_on_two_threads_read_the_kept_panels_alike() {
        let mut rng = Rng::new(8);
        let x = rng.normal(&[600, 256], DType::F32);
        let w = rng.normal(&[256, 256], DType::F32);
        let one = x.matmul_t(&w, false, false);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let two = pool.install(|| {
            let _ = x.matmul_t(&w, false, false);
            x.matmul_t(&w, false, false)
        });
        assert_eq!(bits(&one), bits(&two));
    }
}
