//! Matrix products on the GPU: our tiled shared-memory kernel (kernels/matmul.cu) and cuBLAS
//! sgemm/dgemm, behind one entry point with the same operand conventions as
//! `ebm_core::Tensor::matmul_t` (2-d matrices or 3-d batches, a 2-d or batch-1 operand shared by
//! every batch element, transpose flags on the last two axes).

use crate::buffer::DeviceBuffer;
use crate::device::launch;
use crate::error::CudaError;
use crate::layout::check_len;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::LaunchConfig;

/// Which kernel computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulEngine {
    /// cuBLAS for products of at least [`CUBLAS_MIN_WORK`] multiply-adds per batch element when
    /// libcublas is present, the tiled kernel otherwise.
    Auto,
    /// kernels/matmul.cu.
    Tiled,
    /// cuBLAS (an error when libcublas is missing).
    Cublas,
}

/// m·n·k from which `Auto` picks cuBLAS (64³: below it, launch overhead and cuBLAS's
/// heuristics cost more than they save; to be tuned with the `matmul` benchmark on a GPU).
pub const CUBLAS_MIN_WORK: usize = 64 * 64 * 64;

/// (batch, rows, cols) of an operand after its optional transpose.
fn operand(shape: &[usize], trans: bool) -> (usize, usize, usize) {
    let r = shape.len();
    assert!(
        r == 2 || r == 3,
        "matmul: operand of shape {shape:?} is not a matrix or a batch of them"
    );
    let (sr, sc) = (shape[r - 2], shape[r - 1]);
    let batch = if r == 3 { shape[0] } else { 1 };
    if trans {
        (batch, sc, sr)
    } else {
        (batch, sr, sc)
    }
}

impl DeviceBuffer {
    /// op(self) · op(rhs) with op a transpose of the last two axes when its flag is set; returns
    /// the product and its shape ([m, n], or [batch, m, n] when either operand is 3-d).
    pub fn matmul(
        &self,
        ashape: &[usize],
        ta: bool,
        rhs: &DeviceBuffer,
        bshape: &[usize],
        tb: bool,
        engine: MatmulEngine,
    ) -> Result<(DeviceBuffer, Vec<usize>), CudaError> {
        let (ba, m, k) = operand(ashape, ta);
        let (bb, kb, n) = operand(bshape, tb);
        assert!(
            k == kb && (ba == bb || ba == 1 || bb == 1),
            "matmul: shapes {ashape:?}{} and {bshape:?}{} do not multiply",
            if ta { "ᵀ" } else { "" },
            if tb { "ᵀ" } else { "" }
        );
        if self.dtype() != rhs.dtype() {
            return Err(CudaError::Unsupported(format!(
                "matmul: dtype mismatch, {:?} vs {:?}",
                self.dtype(),
                rhs.dtype()
            )));
        }
        let batch = ba.max(bb);
        let out_shape = if ashape.len() == 3 || bshape.len() == 3 {
            vec![batch, m, n]
        } else {
            vec![m, n]
        };
        let len = batch * m * n;
        check_len(len)?;
        check_len(self.len())?;
        check_len(rhs.len())?;
        if len == 0 {
            return Ok((
                DeviceBuffer::uninit(self.gpu(), self.dtype(), 0)?,
                out_shape,
            ));
        }
        if k == 0 {
            return Ok((
                DeviceBuffer::zeros(self.gpu(), self.dtype(), len)?,
                out_shape,
            ));
        }
        let sa = if ba > 1 { m * k } else { 0 };
        let sb = if bb > 1 { k * n } else { 0 };
        let dims = Dims {
            batch,
            m,
            n,
            k,
            ta,
            tb,
            sa,
            sb,
        };
        let use_blas = match engine {
            MatmulEngine::Tiled => false,
            MatmulEngine::Cublas => true,
            MatmulEngine::Auto => m * n * k >= CUBLAS_MIN_WORK && self.gpu().blas().is_ok(),
        };
        let mut out = DeviceBuffer::uninit(self.gpu(), self.dtype(), len)?;
        if use_blas {
            match cublas(self, rhs, &mut out, &dims) {
                Ok(()) => return Ok((out, out_shape)),
                Err(e) if engine == MatmulEngine::Cublas => return Err(e),
                Err(_) => {}
            }
        }
        tiled(self, rhs, &mut out, &dims)?;
        Ok((out, out_shape))
    }
}

struct Dims {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    sa: usize,
    sb: usize,
}

fn tiled(
    a: &DeviceBuffer,
    b: &DeviceBuffer,
    c: &mut DeviceBuffer,
    d: &Dims,
) -> Result<(), CudaError> {
    let (tiles_m, tiles_n) = (d.m.div_ceil(64) as u32, d.n.div_ceil(64) as u32);
    let blocks = check_len(d.batch * tiles_m as usize * tiles_n as usize)?;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let (m, n, k) = (d.m as u32, d.n as u32, d.k as u32);
    let (ta, tb) = (d.ta as u32, d.tb as u32);
    let (sa, sb) = (d.sa as u64, d.sb as u64);
    let gpu = a.gpu().clone();
    use crate::DeviceData::{F32, F64};
    match (a.data(), b.data(), c.data_mut()) {
        (F32(x), F32(y), F32(z)) => launch!(gpu, "matmul_tiled_f32", cfg;
            x, y, z, &m, &n, &k, &ta, &tb, &sa, &sb, &tiles_m, &tiles_n),
        (F64(x), F64(y), F64(z)) => launch!(gpu, "matmul_tiled_f64", cfg;
            x, y, z, &m, &n, &k, &ta, &tb, &sa, &sb, &tiles_m, &tiles_n),
        _ => unreachable!(),
    }
}

/// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B first.
fn cublas(
    a: &DeviceBuffer,
    b: &DeviceBuffer,
    c: &mut DeviceBuffer,
    d: &Dims,
) -> Result<(), CudaError> {
    let blas = a.gpu().blas()?;
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let i = |v: usize| {
        i32::try_from(v).map_err(|_| CudaError::Unsupported(format!("cuBLAS dimension {v}")))
    };
    macro_rules! run {
        ($t:ty, $x:expr, $y:expr, $z:expr) => {{
            let gemm = GemmConfig::<$t> {
                transa: op(d.tb),
                transb: op(d.ta),
                m: i(d.n)?,
                n: i(d.m)?,
                k: i(d.k)?,
                alpha: 1.0,
                lda: i(if d.tb { d.k } else { d.n })?,
                ldb: i(if d.ta { d.m } else { d.k })?,
                beta: 0.0,
                ldc: i(d.n)?,
            };
            let r = if d.batch == 1 {
                // SAFETY: the dimensions and strides describe the buffers' extents (checked
                // above).
                unsafe { blas.gemm(gemm, $y, $x, $z) }
            } else {
                let cfg = StridedBatchedConfig {
                    gemm,
                    batch_size: i(d.batch)?,
                    stride_a: d.sb as i64,
                    stride_b: d.sa as i64,
                    stride_c: (d.m * d.n) as i64,
                };
                // SAFETY: as above, batch strides included (a shared operand has stride 0).
                unsafe { blas.gemm_strided_batched(cfg, $y, $x, $z) }
            };
            r.map_err(|e| CudaError::Blas(format!("{e:?}")))
        }};
    }
    use crate::DeviceData::{F32, F64};
    match (a.data(), b.data(), c.data_mut()) {
        (F32(x), F32(y), F32(z)) => run!(f32, x, y, z),
        (F64(x), F64(y), F64(z)) => run!(f64, x, y, z),
        _ => unreachable!(),
    }
}

/// The reference product on the host in the tiled kernel's order (k ascending from 0), for tests.
#[allow(clippy::too_many_arguments)]
pub fn reference<T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>>(
    a: &[T],
    ashape: &[usize],
    ta: bool,
    b: &[T],
    bshape: &[usize],
    tb: bool,
) -> Vec<T> {
    let (ba, m, k) = operand(ashape, ta);
    let (bb, _, n) = operand(bshape, tb);
    let batch = ba.max(bb);
    let mut out = vec![T::default(); batch * m * n];
    for z in 0..batch {
        let (oa, ob) = (
            if ba > 1 { z * m * k } else { 0 },
            if bb > 1 { z * k * n } else { 0 },
        );
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::default();
                for p in 0..k {
                    let x = if ta {
                        a[oa + p * m + i]
                    } else {
                        a[oa + i * k + p]
                    };
                    let y = if tb {
                        b[ob + j * k + p]
                    } else {
                        b[ob + p * n + j]
                    };
                    acc = acc + x * y;
                }
                out[z * m * n + i * n + j] = acc;
            }
        }
    }
    out
}
