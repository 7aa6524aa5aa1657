//! Layout launches: strided gathers (broadcast, permute, narrow), block copies (narrow_assign,
//! concat) and row gather/scatter (index_select, index_add / index_put).

use super::{same_dtype, THREADS};
use crate::buffer::DeviceBuffer;
use crate::device::{grid_1d, launch};
use crate::error::CudaError;
use crate::layout::{broadcast_strides, check_len, contiguous_strides, numel, Strided3};

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
}
