//! Kernel launches behind the tensor ops: element-wise, reductions, layout, RNG and the fused
//! Langevin step. Every op allocates its output and queues one or two kernels on the stream.

use crate::buffer::{DType, DeviceBuffer};
use crate::device::{grid_1d, launch};
use crate::error::CudaError;
use crate::layout::{broadcast_strides, check_len, contiguous_strides, numel, Strided3};
use crate::philox::PhiloxState;
use cudarc::driver::LaunchConfig;
use ebm_optable::{BinaryOp, UnaryOp};

const THREADS: u32 = 256;

/// `$base` + "_f32" / "_f64" for the buffer's dtype, as a static kernel name.
macro_rules! kname {
    ($dt:expr, $base:literal) => {
        match $dt {
            DType::F32 => concat!($base, "_f32"),
            DType::F64 => concat!($base, "_f64"),
        }
    };
}

/// Runs `$body` with `$s` bound to the buffer's typed slice.
macro_rules! with_slice {
    ($b:expr, |$s:ident| $body:expr) => {
        match $b.data() {
            $crate::buffer::DeviceData::F32($s) => $body,
            $crate::buffer::DeviceData::F64($s) => $body,
        }
    };
}

/// Reductions over one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum = 0,
    Max = 1,
}

/// What a random fill draws.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Random {
    /// Uniform on [lo, hi).
    Uniform {
        lo: f64,
        hi: f64,
    },
    Normal,
    /// ±1 with equal probability.
    Rademacher,
}

fn same_dtype(op: &str, a: &DeviceBuffer, b: &DeviceBuffer) -> Result<(), CudaError> {
    if a.dtype() != b.dtype() {
        return Err(CudaError::Unsupported(format!(
            "{op}: dtype mismatch, {:?} vs {:?}",
            a.dtype(),
            b.dtype()
        )));
    }
    if a.gpu().ordinal() != b.gpu().ordinal() {
        return Err(CudaError::Unsupported(format!(
            "{op}: operands on cuda:{} and cuda:{}",
            a.gpu().ordinal(),
            b.gpu().ordinal()
        )));
    }
    Ok(())
}

/// Groups scatter sources by destination row: (distinct destinations ascending, offsets into
/// the source list per destination plus the end, source positions in their original order
/// within each destination). The scatter kernel walks each group in order, so repeats
/// accumulate exactly as the CPU's sequential loop does.
pub fn group_by_destination(indices: &[usize]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..indices.len() as u32).collect();
    // stable: equal destinations keep their order
    order.sort_by_key(|&k| indices[k as usize]);
    let mut dest = Vec::new();
    let mut offsets = Vec::new();
    for (pos, &k) in order.iter().enumerate() {
        let d = indices[k as usize] as u32;
        if dest.last() != Some(&d) {
            dest.push(d);
            offsets.push(pos as u32);
        }
    }
    offsets.push(order.len() as u32);
    (dest, offsets, order)
}

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

    /// A contiguous copy of the elements at `offset + Σ coord·stride` over `out_shape`.
    pub fn gather(
        &self,
        offset: usize,
        strides: &[usize],
        out_shape: &[usize],
    ) -> Result<DeviceBuffer, CudaError> {
        let len = numel(out_shape);
        let n = check_len(len)?;
        let out = DeviceBuffer::uninit(self.gpu(), self.dtype(), len)?;
        if n == 0 {
            return Ok(out);
        }
        let l = Strided3::new(out_shape, [strides, &[], &[]])?;
        let off = check_len(offset)?;
        let cfg = grid_1d(len, THREADS);
        let name = kname!(self.dtype(), "gather");
        use crate::DeviceData::{F32, F64};
        match (self.data(), out.data()) {
            (F32(x), F32(y)) => launch!(self.gpu(), name, cfg; x, y, &n, &off, &l)?,
            (F64(x), F64(y)) => launch!(self.gpu(), name, cfg; x, y, &n, &off, &l)?,
            _ => unreachable!(),
        }
        Ok(out)
    }

    /// Materialises the broadcast of `shape` to `out_shape`.
    pub fn broadcast_to(
        &self,
        shape: &[usize],
        out_shape: &[usize],
    ) -> Result<DeviceBuffer, CudaError> {
        self.gather(0, &broadcast_strides(shape, out_shape), out_shape)
    }

    /// Reorders axes: output axis i is input axis `perm[i]`.
    pub fn permute(&self, shape: &[usize], perm: &[usize]) -> Result<DeviceBuffer, CudaError> {
        let own = contiguous_strides(shape);
        let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let strides: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
        self.gather(0, &strides, &out)
    }

    /// Elements `start..start+len` along `axis`.
    pub fn narrow(
        &self,
        shape: &[usize],
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<DeviceBuffer, CudaError> {
        let outer = numel(&shape[..axis]);
        let inner = numel(&shape[axis + 1..]);
        let n = shape[axis];
        self.gather(start * inner, &[n * inner, inner, 1], &[outer, len, inner])
    }

    /// Writes `src`, viewed as [outer, len, inner], into `self` viewed as [outer, n, inner]
    /// at `start` of the middle axis (in place).
    pub fn write_block(
        &mut self,
        src: &DeviceBuffer,
        outer: usize,
        n: usize,
        inner: usize,
        start: usize,
    ) -> Result<(), CudaError> {
        same_dtype("write_block", self, src)?;
        let len = src.len() / (outer * inner).max(1);
        assert!(
            outer * len * inner == src.len() && start + len <= n && outer * n * inner == self.len(),
            "write_block: [{outer}, {len}, {inner}] does not fit at {start} of [{outer}, {n}, {inner}]"
        );
        if src.is_empty() {
            return Ok(());
        }
        check_len(self.len())?;
        let (o, nn, l, i, s) = (
            outer as u32,
            n as u32,
            len as u32,
            inner as u32,
            start as u32,
        );
        let cfg = grid_1d(src.len(), THREADS);
        let name = kname!(self.dtype(), "copy_block");
        let gpu = self.gpu().clone();
        use crate::DeviceData::{F32, F64};
        match (src.data(), self.data_mut()) {
            (F32(x), F32(y)) => launch!(gpu, name, cfg; x, y, &o, &nn, &l, &i, &s)?,
            (F64(x), F64(y)) => launch!(gpu, name, cfg; x, y, &o, &nn, &l, &i, &s)?,
            _ => unreachable!(),
        }
        Ok(())
    }

    /// A copy of `self` (shape) with the block at `start` along `axis` replaced by `src`.
    pub fn narrow_assign(
        &self,
        shape: &[usize],
        axis: usize,
        start: usize,
        src: &DeviceBuffer,
    ) -> Result<DeviceBuffer, CudaError> {
        let mut out = self.try_clone()?;
        let outer = numel(&shape[..axis]);
        let inner = numel(&shape[axis + 1..]);
        out.write_block(src, outer, shape[axis], inner, start)?;
        Ok(out)
    }

    /// Joins buffers (with their shapes) along `axis`; other axes must agree.
    pub fn concat(
        parts: &[(&DeviceBuffer, &[usize])],
        axis: usize,
    ) -> Result<DeviceBuffer, CudaError> {
        let (first, fshape) = parts[0];
        let outer = numel(&fshape[..axis]);
        let inner = numel(&fshape[axis + 1..]);
        let total: usize = parts.iter().map(|(_, s)| s[axis]).sum();
        let mut out = DeviceBuffer::uninit(first.gpu(), first.dtype(), outer * total * inner)?;
        let mut start = 0;
        for (b, s) in parts {
            out.write_block(b, outer, total, inner, start)?;
            start += s[axis];
        }
        Ok(out)
    }

    /// Rows `indices` of axis 0 (rows of `row` elements).
    pub fn index_select(&self, row: usize, indices: &[usize]) -> Result<DeviceBuffer, CudaError> {
        let len = indices.len() * row;
        let n = check_len(len)?;
        let out = DeviceBuffer::uninit(self.gpu(), self.dtype(), len)?;
        if n == 0 {
            return Ok(out);
        }
        let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let idx = self.gpu().stream().clone_htod(&idx)?;
        let (rows, row32) = (indices.len() as u32, row as u32);
        let cfg = grid_1d(len, THREADS);
        let name = kname!(self.dtype(), "index_select");
        use crate::DeviceData::{F32, F64};
        match (self.data(), out.data()) {
            (F32(x), F32(y)) => launch!(self.gpu(), name, cfg; x, &idx, y, &rows, &row32)?,
            (F64(x), F64(y)) => launch!(self.gpu(), name, cfg; x, &idx, y, &rows, &row32)?,
            _ => unreachable!(),
        }
        Ok(out)
    }

    /// A copy of `self` with `src`'s rows added (`accumulate`) or written at rows `indices`;
    /// repeats accumulate in order, or the last one wins — exactly the CPU's loop.
    pub fn scatter_rows(
        &self,
        row: usize,
        indices: &[usize],
        src: &DeviceBuffer,
        accumulate: bool,
    ) -> Result<DeviceBuffer, CudaError> {
        same_dtype("scatter_rows", self, src)?;
        let mut out = self.try_clone()?;
        if indices.is_empty() || row == 0 {
            return Ok(out);
        }
        check_len(self.len())?;
        let (dest, offsets, order) = group_by_destination(indices);
        let gpu = self.gpu().clone();
        let s = gpu.stream();
        let (dest_d, off_d, src_d) = (
            s.clone_htod(&dest)?,
            s.clone_htod(&offsets)?,
            s.clone_htod(&order)?,
        );
        let (nd, row32, acc) = (dest.len() as u32, row as u32, accumulate as i32);
        let cfg = grid_1d(dest.len() * row, THREADS);
        let name = kname!(self.dtype(), "scatter_rows");
        use crate::DeviceData::{F32, F64};
        match (out.data_mut(), src.data()) {
            (F32(o), F32(x)) => {
                launch!(gpu, name, cfg; o, x, &dest_d, &off_d, &src_d, &nd, &row32, &acc)?
            }
            (F64(o), F64(x)) => {
                launch!(gpu, name, cfg; o, x, &dest_d, &off_d, &src_d, &nd, &row32, &acc)?
            }
            _ => unreachable!(),
        }
        Ok(out)
    }

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
        Ok((out, state.advanced(len)))
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
        Ok(state.advanced(self.len()))
    }
}
