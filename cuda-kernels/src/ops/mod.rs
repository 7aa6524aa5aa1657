//! Kernel launches behind the tensor ops, one file per family: element-wise maps and
//! broadcasting binary ops (`elementwise`), reductions over an axis (`reduce`), strided gathers,
//! block copies and row gather/scatter (`gather`), convolutions (`conv`), random fills and the fused Langevin step
//! (`random`). Every op allocates its output and queues one or two kernels on the stream.

use crate::buffer::DeviceBuffer;
use crate::error::CudaError;

pub use conv::{ConvGeom, ConvOp};
pub use gather::group_by_destination;
pub use random::Random;
pub use reduce::Reduce;

/// Threads per block of the 1-d launches.
const THREADS: u32 = 256;

/// `$base` + "_f32" / "_f64" for the buffer's dtype, as a static kernel name.
macro_rules! kname {
    ($dt:expr, $base:literal) => {
        match $dt {
            $crate::buffer::DType::F32 => concat!($base, "_f32"),
            $crate::buffer::DType::F64 => concat!($base, "_f64"),
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

/// Both operands of a two-input op share a dtype and a GPU, or an `Unsupported` error says why
/// not.
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

mod conv;
mod elementwise;
mod gather;
mod random;
mod reduce;
