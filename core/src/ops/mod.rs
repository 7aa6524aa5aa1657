//! CPU kernels behind `Tensor`'s methods.

pub mod elementwise;
pub mod fastmath;
pub mod layout;
pub mod matmul;
pub mod reduce;
pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod sgemm_avx512;
mod silu;
