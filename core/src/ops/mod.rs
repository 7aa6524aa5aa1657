//! CPU kernels behind `Tensor`'s methods.

pub mod conv;
pub mod elementwise;
pub mod fastmath;
pub mod layout;
pub mod matmul;
pub mod reduce;
pub(crate) mod scalar;
mod silu;
mod silu_mlp;
mod silu_mlp_jvp;
pub(crate) mod transpose;
