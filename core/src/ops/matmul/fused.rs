//! Products fused with the element-wise multiply beside them in a backward pass:
//! (A ⊙ F)·B, formed in registers when B is a few columns wide (`skinny`), and (A·B) ⊙ D, in
//! the GEMM kernels' stores when B is a kept weight (`packed_b`). Each gives the bits of the
//! product and the multiply done apart, which every other case computes.

use super::{mm_label, product_flops, skinny};
use crate::profile::{timed_op_flops, OpKind};
use crate::tensor::Tensor;
use crate::CpuStorage;

impl Tensor {
    /// (self ⊙ factor) · op(rhs), for `factor` of self's shape: the chain rule's "multiply by
    /// the activation's derivative, then by the weight" of a backward pass. When op(rhs) is a
    /// few columns wide (the input layer of a low-dimensional energy, or an output layer) and
    /// all three are 2-d host tensors of one dtype, the product ⊙ is formed in registers inside
    /// the dot products: one pass over self and factor instead of one to form self ⊙ factor and
    /// one to read it back, the same bits as `self.mul(factor).matmul_t(rhs, false, tb)`, which
    /// every other case computes.
    pub fn mul_matmul_t(&self, factor: &Tensor, rhs: &Tensor, tb: bool) -> Tensor {
        let shape = self.matmul_shape(rhs, false, tb);
        let fused = self.rank() == 2
            && rhs.rank() == 2
            && factor.shape() == self.shape()
            && shape[1] <= 4
            && [factor, rhs].iter().all(|t| t.dtype() == self.dtype())
            && [self, factor, rhs]
                .iter()
                .all(|t| t.device() == crate::Device::Cpu);
        if !fused {
            return self.mul(factor).matmul_t(rhs, false, tb);
        }
        let (m, k, n) = (shape[0], self.shape()[1], shape[1]);
        // B = op(rhs) as k×n strides over rhs's row-major buffer
        let bs = if tb { (1, k) } else { (n, 1) };
        timed_op_flops(
            OpKind::Matmul,
            || mm_label("mul+matmul", self, rhs, false, tb),
            product_flops(self, &shape, false),
            || {
                macro_rules! run {
                    ($a:expr, $f:expr, $b:expr) => {{
                        let mut out = crate::pool::take(m * n);
                        let done = skinny::mul_skinny_product((m, k, n), $a, $f, $b, bs, &mut out);
                        debug_assert!(done, "n ≤ 4 checked above");
                        Tensor::from_vec(out, &shape)
                    }};
                }
                match (self.cpu(), factor.cpu(), rhs.cpu()) {
                    (CpuStorage::F32(a), CpuStorage::F32(f), CpuStorage::F32(b)) => run!(a, f, b),
                    (CpuStorage::F64(a), CpuStorage::F64(f), CpuStorage::F64(b)) => run!(a, f, b),
                    _ => unreachable!("one dtype checked above"),
                }
            },
        )
    }

    /// (op(self) · op(rhs)) ⊙ factor, for `factor` of the product's shape: a backward pass's
    /// "times the weight, then times the activation's derivative below it". When this is an f32
    /// host product of our kernels, the ⊙ happens in the kernel's stores: no pass to write the
    /// product and read it back (rhs's packed panels are kept from its second read as B on,
    /// as for every product, and packed for this product alone on its first). The same bits as `self.matmul_t(rhs, ta, tb).mul(factor)`, which every
    /// other case computes.
    pub fn matmul_t_mul(&self, rhs: &Tensor, ta: bool, tb: bool, factor: &Tensor) -> Tensor {
        let shape = self.matmul_shape(rhs, ta, tb);
        assert!(
            factor.shape() == shape.as_slice() && factor.dtype() == self.dtype(),
            "matmul_t_mul: factor {} {:?} is not the product's {} {shape:?}",
            factor.dtype(),
            factor.shape(),
            self.dtype()
        );
        #[cfg(target_arch = "x86_64")]
        {
            let b = super::kept_transpose(rhs, tb);
            let (b, tb) = b.as_ref().map_or((rhs, tb), |t| (t, false));
            if let Some(t) = self.product_with_kept_packed_b(b, ta, tb, &shape, None, Some(factor))
            {
                return t;
            }
        }
        self.matmul_t(rhs, ta, tb).mul(factor)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn matmul_mul_is_matmul_then_mul_bit_for_bit() {
        // f32 products take the kernels' scaled stores, B packed for the product alone on its
        // first read (round 0) and kept after, read as stored or transposed; f64 and a skinny
        // product compose the two ops; two threads split the rows
        let bits = |t: &Tensor| {
            t.to_vec_f64()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        let mut rng = crate::Rng::new(12);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (m, k, n) in [(128, 256, 256), (37, 70, 45), (600, 256, 256), (9, 20, 3)] {
            for dtype in [crate::DType::F32, crate::DType::F64] {
                let a = rng.normal(&[m, k], dtype);
                let f = rng.normal(&[m, n], dtype);
                for tb in [false, true] {
                    let w = rng.normal(&if tb { [n, k] } else { [k, n] }, dtype);
                    for round in 0..3 {
                        let want = a.matmul_t(&w, false, tb).mul(&f);
                        let got = if round == 2 {
                            pool.install(|| a.matmul_t_mul(&w, false, tb, &f))
                        } else {
                            a.matmul_t_mul(&w, false, tb, &f)
                        };
                        assert_eq!(got.shape(), [m, n]);
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{m}x{k}x{n} {dtype} tb={tb} round {round}"
                        );
                    }
                }
            }
        }
    }

    /// On our kernels' path a weight's product takes the fused stores on its first read as B
    /// and once kept: its label is in the profile (the portable path, e.g. aarch64, always
    /// composes the two ops).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn kept_weights_take_the_fused_stores() {
        if crate::gemm_path() == crate::GemmPath::Portable {
            return;
        }
        let mut rng = crate::Rng::new(13);
        let a = rng.normal(&[64, 128], crate::DType::F32);
        let w = rng.normal(&[128, 96], crate::DType::F32);
        let f = rng.normal(&[64, 96], crate::DType::F32);
        for read in ["first", "second"] {
            let (_, p) = crate::profile(|| a.matmul_t_mul(&w, false, false, &f));
            assert!(
                p.ops.len() == 1 && p.ops[0].label.starts_with("matmul⊙"),
                "{read} read: {:?}",
                p.ops
            );
        }
    }

    #[test]
    fn mul_matmul_is_mul_then_matmul_bit_for_bit() {
        // skinny right operands (n ≤ 4) take the fused pass: row counts off the 4-row groups,
        // depths off the 8 lanes, k = 1, and a wide one (n = 6) that composes the two ops
        let mut rng = crate::Rng::new(11);
        for (m, k, n) in [
            (37, 13, 1),
            (128, 128, 2),
            (5, 8, 3),
            (3, 7, 4),
            (9, 1, 3),
            (20, 9, 6),
        ] {
            for dtype in [crate::DType::F32, crate::DType::F64] {
                let a = rng.normal(&[m, k], dtype);
                let f = rng.normal(&[m, k], dtype);
                let b = rng.normal(&[k, n], dtype);
                let (av, fv, bv) = (a.to_vec_f64(), f.to_vec_f64(), b.to_vec_f64());
                for tb in [false, true] {
                    let y = if tb { b.t() } else { b.clone() };
                    let got = a.mul_matmul_t(&f, &y, tb);
                    let want = a.mul(&f).matmul_t(&y, false, tb);
                    assert_eq!(got.shape(), [m, n]);
                    let bits = |t: &Tensor| {
                        t.to_vec_f64()
                            .iter()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&got), bits(&want), "{m}x{k}x{n} {dtype} tb={tb}");
                    let got = got.to_vec_f64();
                    for (q, g) in got.iter().enumerate() {
                        let (i, j) = (q / n, q % n);
                        let naive: f64 = (0..k)
                            .map(|p| av[i * k + p] * fv[i * k + p] * bv[p * n + j])
                            .sum();
                        let tol = if dtype == crate::DType::F32 {
                            1e-5
                        } else {
                            1e-12
                        };
                        assert!(
                            (g - naive).abs() <= tol * (k as f64).sqrt() * (1.0 + naive.abs()),
                            "{m}x{k}x{n} {dtype} tb={tb} at {q}: {g} vs {naive}"
                        );
                    }
                }
            }
        }
    }
}
