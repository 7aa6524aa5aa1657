//! Element-wise launches: unary maps and broadcasting binary ops (the `switch`es generated from
//! ebm-optable's tables), `where`, casts and fills.

use super::{same_dtype, THREADS};
use crate::buffer::{DType, DeviceBuffer};
use crate::device::{grid_1d, launch};
use crate::error::CudaError;
use crate::layout::{broadcast_strides, check_len, numel, Strided3};
use ebm_optable::{BinaryOp, UnaryOp};

impl DeviceBuffer {
    /// An element-wise function of every element (after [`UnaryOp::lowered`], as on the CPU).
    pub fn unary(&self, op: UnaryOp) -> Result<DeviceBuffer, CudaError> {
        let n = check_len(self.len())?;
        let out = DeviceBuffer::uninit(self.gpu(), self.dtype(), self.len())?;
        if n == 0 {
            return Ok(out);
        }
        let (code, p, q) = op.lowered().kernel_args();
        let cfg = grid_1d(n as usize, THREADS);
        let name = kname!(self.dtype(), "unary");
        match (self.data(), out.data()) {
            (crate::DeviceData::F32(x), crate::DeviceData::F32(y)) => {
                launch!(self.gpu(), name, cfg; x, y, &n, &code, &p, &q)?
            }
            (crate::DeviceData::F64(x), crate::DeviceData::F64(y)) => {
                launch!(self.gpu(), name, cfg; x, y, &n, &code, &p, &q)?
            }
            _ => unreachable!(),
        }
        Ok(out)
    }

    /// `self (shape) op rhs (rshape)`, broadcast NumPy-style to `out_shape`.
    pub fn binary(
        &self,
        shape: &[usize],
        rhs: &DeviceBuffer,
        rshape: &[usize],
        out_shape: &[usize],
        op: BinaryOp,
    ) -> Result<DeviceBuffer, CudaError> {
        same_dtype("binary", self, rhs)?;
        let len = numel(out_shape);
        let n = check_len(len)?;
        let out = DeviceBuffer::uninit(self.gpu(), self.dtype(), len)?;
        if n == 0 {
            return Ok(out);
        }
        let code = op.code();
        let cfg = grid_1d(len, THREADS);
        let gpu = self.gpu();
        if shape == rshape && shape == out_shape {
            let name = kname!(self.dtype(), "binary");
            match (self.data(), rhs.data(), out.data()) {
                (
                    crate::DeviceData::F32(a),
                    crate::DeviceData::F32(b),
                    crate::DeviceData::F32(y),
                ) => launch!(gpu, name, cfg; a, b, y, &n, &code)?,
                (
                    crate::DeviceData::F64(a),
                    crate::DeviceData::F64(b),
                    crate::DeviceData::F64(y),
                ) => launch!(gpu, name, cfg; a, b, y, &n, &code)?,
                _ => unreachable!(),
            }
        } else {
            let l = Strided3::new(
                out_shape,
                [
                    &broadcast_strides(shape, out_shape),
                    &broadcast_strides(rshape, out_shape),
                    &[],
                ],
            )?;
            let name = kname!(self.dtype(), "binary_strided");
            match (self.data(), rhs.data(), out.data()) {
                (
                    crate::DeviceData::F32(a),
                    crate::DeviceData::F32(b),
                    crate::DeviceData::F32(y),
                ) => launch!(gpu, name, cfg; a, b, y, &n, &code, &l)?,
                (
                    crate::DeviceData::F64(a),
                    crate::DeviceData::F64(b),
                    crate::DeviceData::F64(y),
                ) => launch!(gpu, name, cfg; a, b, y, &n, &code, &l)?,
                _ => unreachable!(),
            }
        }
        Ok(out)
    }

    /// `cond != 0 ? a : b` with all three broadcast to `out_shape` (cond in a's dtype).
    pub fn where_(
        cond: (&DeviceBuffer, &[usize]),
        a: (&DeviceBuffer, &[usize]),
        b: (&DeviceBuffer, &[usize]),
        out_shape: &[usize],
    ) -> Result<DeviceBuffer, CudaError> {
        same_dtype("where", cond.0, a.0)?;
        same_dtype("where", a.0, b.0)?;
        let len = numel(out_shape);
        let n = check_len(len)?;
        let out = DeviceBuffer::uninit(a.0.gpu(), a.0.dtype(), len)?;
        if n == 0 {
            return Ok(out);
        }
        let l = Strided3::new(
            out_shape,
            [
                &broadcast_strides(cond.1, out_shape),
                &broadcast_strides(a.1, out_shape),
                &broadcast_strides(b.1, out_shape),
            ],
        )?;
        let cfg = grid_1d(len, THREADS);
        let name = kname!(a.0.dtype(), "where");
        use crate::DeviceData::{F32, F64};
        match (cond.0.data(), a.0.data(), b.0.data(), out.data()) {
            (F32(c), F32(x), F32(y), F32(o)) => launch!(a.0.gpu(), name, cfg; c, x, y, o, &n, &l)?,
            (F64(c), F64(x), F64(y), F64(o)) => launch!(a.0.gpu(), name, cfg; c, x, y, o, &n, &l)?,
            _ => unreachable!(),
        }
        Ok(out)
    }

    /// The elements converted to `dtype` (a device copy when it already is that type).
    pub fn cast(&self, dtype: DType) -> Result<DeviceBuffer, CudaError> {
        if dtype == self.dtype() {
            return self.try_clone();
        }
        let n = check_len(self.len())?;
        let out = DeviceBuffer::uninit(self.gpu(), dtype, self.len())?;
        if n == 0 {
            return Ok(out);
        }
        let cfg = grid_1d(self.len(), THREADS);
        use crate::DeviceData::{F32, F64};
        match (self.data(), out.data()) {
            (F32(x), F64(y)) => launch!(self.gpu(), "cast_f32_f64", cfg; x, y, &n)?,
            (F64(x), F32(y)) => launch!(self.gpu(), "cast_f64_f32", cfg; x, y, &n)?,
            _ => unreachable!(),
        }
        Ok(out)
    }

    /// `len` copies of `value` (rounded to `dtype`).
    pub fn full(
        gpu: &std::sync::Arc<crate::Gpu>,
        dtype: DType,
        len: usize,
        value: f64,
    ) -> Result<DeviceBuffer, CudaError> {
        let n = check_len(len)?;
        let out = DeviceBuffer::uninit(gpu, dtype, len)?;
        if n == 0 {
            return Ok(out);
        }
        let cfg = grid_1d(len, THREADS);
        let name = kname!(dtype, "fill");
        with_slice!(out, |y| launch!(gpu, name, cfg; y, &n, &value)?);
        Ok(out)
    }
}
