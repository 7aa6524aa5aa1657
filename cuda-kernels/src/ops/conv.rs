//! Convolution launches: the forward conv, its input gradient (conv_transpose2d) and its
//! weight gradient, each one direct-gather kernel (kernels/conv.cu).

use super::{same_dtype, THREADS};
use crate::buffer::DeviceBuffer;
use crate::device::{grid_1d, launch};
use crate::error::CudaError;
use crate::layout::check_len;
use cudarc::driver::DeviceRepr;

/// Every size of one forward convolution: x `[n, c, h, w]`, weight `[o, c/groups, kh, kw]`,
/// y `[n, o, ho, wo]`, with strides, paddings and dilations. `struct ConvGeom` in
/// kernels/conv.cu (passed by value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ConvGeom {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub o: u32,
    pub kh: u32,
    pub kw: u32,
    pub ho: u32,
    pub wo: u32,
    pub sh: u32,
    pub sw: u32,
    pub ph: u32,
    pub pw: u32,
    pub dh: u32,
    pub dw: u32,
    pub groups: u32,
}

// SAFETY: a plain #[repr(C)] struct of u32s, laid out as the CUDA struct it mirrors.
unsafe impl DeviceRepr for ConvGeom {}

/// Which of the three convolution ops to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvOp {
    /// y = x ⋆ w from (x, w).
    Forward,
    /// gx = conv_transpose2d(gy, w) from (gy, w).
    InputGrad,
    /// gw = ∂⟨x ⋆ w, gy⟩/∂w from (x, gy).
    WeightGrad,
}

impl ConvGeom {
    /// Elements of the op's output.
    pub fn output_len(&self, op: ConvOp) -> usize {
        let u = |v: u32| v as usize;
        match op {
            ConvOp::Forward => u(self.n) * u(self.o) * u(self.ho) * u(self.wo),
            ConvOp::InputGrad => u(self.n) * u(self.c) * u(self.h) * u(self.w),
            ConvOp::WeightGrad => {
                u(self.o) * u(self.c / self.groups.max(1)) * u(self.kh) * u(self.kw)
            }
        }
    }
}

impl DeviceBuffer {
    /// Runs convolution op `op` on (`self`, `other`), the operands the op names.
    pub fn conv(
        &self,
        other: &DeviceBuffer,
        g: &ConvGeom,
        op: ConvOp,
    ) -> Result<DeviceBuffer, CudaError> {
        same_dtype("conv", self, other)?;
        let len = g.output_len(op);
        check_len(len)?;
        let out = DeviceBuffer::uninit(self.gpu(), self.dtype(), len)?;
        if len == 0 {
            return Ok(out);
        }
        let cfg = grid_1d(len, THREADS);
        let name = match op {
            ConvOp::Forward => kname!(self.dtype(), "conv_fwd"),
            ConvOp::InputGrad => kname!(self.dtype(), "conv_dx"),
            ConvOp::WeightGrad => kname!(self.dtype(), "conv_dw"),
        };
        use crate::DeviceData::{F32, F64};
        match (self.data(), other.data(), out.data()) {
            (F32(a), F32(b), F32(y)) => launch!(self.gpu(), name, cfg; a, b, y, g)?,
            (F64(a), F64(b), F64(y)) => launch!(self.gpu(), name, cfg; a, b, y, g)?,
            _ => unreachable!("same_dtype checked"),
        }
        Ok(out)
    }
}
