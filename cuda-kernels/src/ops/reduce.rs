//! Reductions over one axis of a buffer viewed as [outer, n, inner].

use super::THREADS;
use crate::buffer::DeviceBuffer;
use crate::device::{grid_1d, launch};
use crate::error::CudaError;
use crate::layout::check_len;
use cudarc::driver::LaunchConfig;

/// Reductions over one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// Σ over the axis.
    Sum = 0,
    /// max over the axis.
    Max = 1,
}

impl DeviceBuffer {
    /// Reduces the middle axis of the buffer viewed as [outer, n, inner] → [outer, inner].
    pub fn reduce(
        &self,
        outer: usize,
        n: usize,
        inner: usize,
        kind: Reduce,
    ) -> Result<DeviceBuffer, CudaError> {
        assert_eq!(
            outer * n * inner,
            self.len(),
            "reduce: [{outer}, {n}, {inner}] does not cover {} elements",
            self.len()
        );
        check_len(self.len())?;
        let gpu = self.gpu();
        if outer * inner == 0 {
            return DeviceBuffer::uninit(gpu, self.dtype(), 0);
        }
        if n == 0 {
            let v = match kind {
                Reduce::Sum => 0.0,
                Reduce::Max => f64::NEG_INFINITY,
            };
            return DeviceBuffer::full(gpu, self.dtype(), outer * inner, v);
        }
        // Enough independent outputs to fill the GPU (≈ 64k threads or 4·SM blocks); otherwise
        // split n into chunks and combine them in a second pass.
        let rows_path = inner == 1 && n > 32;
        let chunks = if rows_path {
            let want_blocks = 4 * gpu.sm_count().max(1) as usize;
            if outer >= want_blocks || n < 8192 {
                1
            } else {
                want_blocks.div_ceil(outer).min(n / 2048).max(1)
            }
        } else {
            let outputs = outer * inner;
            if outputs >= 65536 || n < 256 {
                1
            } else {
                (65536 / outputs).min(n / 64).max(1)
            }
        };
        let chunk = n.div_ceil(chunks);
        let chunks = n.div_ceil(chunk);
        let partial = DeviceBuffer::uninit(gpu, self.dtype(), outer * chunks * inner)?;
        let (n32, chunk32, chunks32, kind32) = (n as u32, chunk as u32, chunks as u32, kind as i32);
        if rows_path {
            let cfg = LaunchConfig {
                grid_dim: (check_len(outer * chunks)?, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            let name = kname!(self.dtype(), "reduce_rows");
            use crate::DeviceData::{F32, F64};
            match (self.data(), partial.data()) {
                (F32(x), F32(o)) => {
                    launch!(gpu, name, cfg; x, o, &n32, &chunk32, &chunks32, &kind32)?
                }
                (F64(x), F64(o)) => {
                    launch!(gpu, name, cfg; x, o, &n32, &chunk32, &chunks32, &kind32)?
                }
                _ => unreachable!(),
            }
        } else {
            let (outer32, inner32) = (outer as u32, inner as u32);
            let cfg = grid_1d(outer * chunks * inner, THREADS);
            let name = kname!(self.dtype(), "reduce_cols");
            use crate::DeviceData::{F32, F64};
            match (self.data(), partial.data()) {
                (F32(x), F32(o)) => {
                    launch!(gpu, name, cfg; x, o, &outer32, &n32, &inner32, &chunk32, &chunks32, &kind32)?
                }
                (F64(x), F64(o)) => {
                    launch!(gpu, name, cfg; x, o, &outer32, &n32, &inner32, &chunk32, &chunks32, &kind32)?
                }
                _ => unreachable!(),
            }
        }
        if chunks == 1 {
            Ok(partial)
        } else {
            partial.reduce(outer, chunks, inner, kind)
        }
    }
}
