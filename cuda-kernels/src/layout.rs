//! Shapes and strides as the kernels read them.

use crate::error::CudaError;
use cudarc::driver::DeviceRepr;

/// Most axes a strided kernel handles.
pub const MAX_RANK: usize = 8;

/// An output shape and the strides of up to three operands read as broadcast to it. Mirrors
/// `struct Strided3` in kernels/common.cuh (passed by value as a kernel argument).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strided3 {
    /// Number of axes used.
    pub rank: u32,
    /// The output's shape (first `rank` entries).
    pub shape: [u32; MAX_RANK],
    /// Element strides of operand 0 along each output axis (0 where broadcast).
    pub s0: [u32; MAX_RANK],
    /// Element strides of operand 1.
    pub s1: [u32; MAX_RANK],
    /// Element strides of operand 2.
    pub s2: [u32; MAX_RANK],
}

// SAFETY: plain-old-data with the C layout of the CUDA struct.
unsafe impl DeviceRepr for Strided3 {}

fn to_u32(v: usize, what: &str) -> Result<u32, CudaError> {
    u32::try_from(v)
        .map_err(|_| CudaError::Unsupported(format!("{what} {v} exceeds 32-bit indexing")))
}

/// Checks that an element count fits the kernels' 32-bit indexing.
pub fn check_len(n: usize) -> Result<u32, CudaError> {
    to_u32(n, "element count")
}

impl Strided3 {
    /// `out` with operand strides (each as long as `out`; unused operands may be empty).
    pub fn new(out: &[usize], strides: [&[usize]; 3]) -> Result<Strided3, CudaError> {
        if out.len() > MAX_RANK {
            return Err(CudaError::Unsupported(format!(
                "rank {} (shape {out:?}) exceeds {MAX_RANK}",
                out.len()
            )));
        }
        let mut l = Strided3 {
            rank: out.len() as u32,
            ..Default::default()
        };
        for (d, &n) in out.iter().enumerate() {
            l.shape[d] = to_u32(n, "axis length")?;
            for (k, s) in strides.iter().enumerate() {
                let v = s.get(d).copied().unwrap_or(0);
                let v = to_u32(v, "stride")?;
                match k {
                    0 => l.s0[d] = v,
                    1 => l.s1[d] = v,
                    _ => l.s2[d] = v,
                }
            }
        }
        Ok(l)
    }
}

/// Row-major strides in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// Strides reading a contiguous `shape` as broadcast to `out` (0 along broadcast axes).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                own[i - off]
            }
        })
        .collect()
}

/// Element count of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}
