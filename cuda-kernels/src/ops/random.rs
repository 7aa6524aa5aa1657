//! Random fills with `ebm_core::Rng`'s numbers, and the fused Langevin step that draws its
//! noise in the kernel.

use super::{same_dtype, THREADS};
use crate::buffer::{DType, DeviceBuffer};
use crate::device::{grid_1d, launch};
use crate::error::CudaError;
use crate::layout::check_len;
use crate::philox::PhiloxState;

/// What a random fill draws.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Random {
    /// Uniform on [lo, hi).
    Uniform {
        /// Lower end (included).
        lo: f64,
        /// Upper end (excluded).
        hi: f64,
    },
    /// Standard normal.
    Normal,
    /// ±1 with equal probability.
    Rademacher,
}

impl DeviceBuffer {
    /// `len` random values with `ebm_core::Rng`'s numbers for the draw starting at `state`;
    /// returns the buffer and the state after the draw.
    pub fn random(
        gpu: &std::sync::Arc<crate::Gpu>,
        dtype: DType,
        len: usize,
        kind: Random,
        state: PhiloxState,
    ) -> Result<(DeviceBuffer, PhiloxState), CudaError> {
        let n = check_len(len)?;
        let out = DeviceBuffer::uninit(gpu, dtype, len)?;
        if n > 0 {
            let (k, lo, hi) = match kind {
                Random::Uniform { lo, hi } => (0i32, lo, hi),
                Random::Normal => (1, 0.0, 0.0),
                Random::Rademacher => (2, 0.0, 0.0),
            };
            let cfg = grid_1d(len, THREADS);
            let name = kname!(dtype, "rng");
            let (seed, stream, ctr) = (state.seed, state.stream, state.counter);
            with_slice!(
                out,
                |y| launch!(gpu, name, cfg; y, &n, &seed, &stream, &ctr, &k, &lo, &hi)?
            );
        }
        let after = match (kind, dtype) {
            (Random::Normal, DType::F32) => state.advanced_f32_normal(len),
            _ => state.advanced(len),
        };
        Ok((out, after))
    }

    /// The fused Langevin step x ← x − η·grad + σ·z in place (z drawn in-kernel from `state`);
    /// returns the state after the draw.
    pub fn langevin_step(
        &mut self,
        grad: &DeviceBuffer,
        eta: f64,
        sigma: f64,
        state: PhiloxState,
    ) -> Result<PhiloxState, CudaError> {
        same_dtype("langevin_step", self, grad)?;
        assert_eq!(
            self.len(),
            grad.len(),
            "langevin_step: x has {} elements, the gradient {}",
            self.len(),
            grad.len()
        );
        let n = check_len(self.len())?;
        if n > 0 {
            let cfg = grid_1d(self.len(), THREADS);
            let name = kname!(self.dtype(), "langevin_step");
            let gpu = self.gpu().clone();
            let (seed, stream, ctr) = (state.seed, state.stream, state.counter);
            use crate::DeviceData::{F32, F64};
            match (self.data_mut(), grad.data()) {
                (F32(x), F32(g)) => {
                    launch!(gpu, name, cfg; x, g, &n, &eta, &sigma, &seed, &stream, &ctr)?
                }
                (F64(x), F64(g)) => {
                    launch!(gpu, name, cfg; x, g, &n, &eta, &sigma, &seed, &stream, &ctr)?
                }
                _ => unreachable!(),
            }
        }
        Ok(match self.dtype() {
            DType::F32 => state.advanced_f32_normal(self.len()),
            DType::F64 => state.advanced(self.len()),
        })
    }
}
