//! # ebm-cuda: CUDA storage and kernels for ebm
//!
//! Sits below `ebm-core` (which uses it behind its `cuda` feature) and knows nothing of
//! tensors: it offers a GPU context ([`Gpu`]), typed device memory ([`DeviceBuffer`]) and one
//! method per kernel family on it — element-wise maps and broadcasting binary ops, reductions
//! over an axis, a tiled batched matmul beside cuBLAS, layout ops (strided gather, block copies,
//! row gather/scatter), `where`, random fills with `ebm_core::Rng`'s numbers, the fused
//! Langevin step, and the fused MLP-energy sampler ([`FusedMlpSampler`]).
//!
//! ## Without a GPU
//! Everything builds on any machine: cudarc loads libcuda / libnvrtc / libcublas at run time.
//! [`gpu`] returns [`CudaError::NoDriver`] where there is no driver (never a panic), so tests
//! and benchmarks print a skip line. The kernels are CUDA C sources under `kernels/`, embedded
//! with `include_str!` and compiled by NVRTC on first use (cached per module, per GPU); a test
//! compiles every one of them for sm_90 wherever libnvrtc is found, and the same sources are
//! compiled by g++ against `shim/cuda_shim.h` to test their logic on the CPU.
//!
//! ## Conventions
//! Element counts are 32-bit inside kernels ([`CudaError::Unsupported`] past 2³²). All work
//! goes to one stream per GPU. Random numbers: element i of a draw from state (seed, stream,
//! counter) is the CPU's element i, bit for bit, for uniforms and normals in f32 and f64
//! (kernels/philox.cuh says how).

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod buffer;
pub mod device;
pub mod error;
pub mod kernels;
pub mod layout;
pub mod matmul;
pub mod mlp;
pub mod nvrtc;
pub mod ops;
pub mod philox;

pub use buffer::{DType, DeviceBuffer, DeviceData, Float};
pub use device::{default_gpu, device_count, gpu, Gpu};
pub use ebm_optable::{BinaryOp, UnaryOp};
pub use error::CudaError;
pub use matmul::MatmulEngine;
pub use mlp::FusedMlpSampler;
pub use ops::{ConvGeom, ConvOp, Random, Reduce};
pub use philox::PhiloxState;

/// The line GPU tests and benchmarks print when they cannot run here.
pub fn skip_message(what: &str, why: &CudaError) -> String {
    format!("SKIP {what}: {why}")
}
