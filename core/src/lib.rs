//! # ebm-core: tensors for energy-based models
//!
//! One concrete [`Tensor`] type (f32 or f64, row-major, contiguous, shape + shared buffer) with
//! NumPy broadcasting, matrix products through `matrixmultiply`, stable element-wise math,
//! reductions with `keepdim`, layout ops, row gather/scatter, and a seeded counter-based
//! [`Rng`] whose draws do not depend on thread count.
//!
//! ## The device seam
//!
//! A tensor is `shape + Arc<Buffer>`, and a [`Buffer`] holds a [`Storage`]: an enum with one
//! variant per device (`Storage::Cpu`, and `Storage::Cuda` with the `cuda` feature). Every op
//! on `Tensor` dispatches on the storage variant inside this crate (`ops/`), so code above it —
//! autodiff, nn, samplers, objectives — only ever calls `Tensor` methods and never sees where
//! the elements live. The CUDA backend (crate `ebm-cuda`, below this one) supplies device
//! memory and kernels; `cuda.rs` holds the GPU arm of each op, which every op method asks first
//! (one `cfg`'d early return, absent without the feature). The derivative rules of
//! `ebm-autodiff` are written in `Tensor`/`Var` ops and so run on the GPU without a line
//! changed. Move data with [`Tensor::to_device`] / [`Tensor::to_cpu`]; host access
//! (`as_slice`, `data_mut`) panics for a device tensor, while `to_vec` and `item` copy back.
//!
//! ## Conventions
//! Shape mismatches are programming errors: ops panic with a message naming both shapes
//! (`Add: shapes [2, 3] and [2] do not broadcast`). [`live_tensor_bytes`] counts the bytes held
//! by all live buffers, so tests can prove that loops do not leak.

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
pub mod dtype;
pub mod host_alloc;
pub mod ops;
pub mod pool;
pub mod profile;
pub mod rng;
pub mod shape;
mod stats;
pub mod storage;
pub mod tensor;

pub use dtype::{DType, Elem};
pub use ops::conv::Conv2dSpec;
pub use ops::elementwise::{BinaryOp, UnaryOp};
pub use ops::matmul::{cpu_model, fma_peak_gflops, gemm_path, Gemm, GemmPath};
pub use profile::{profile, OpKind, Profile};
pub use rng::Rng;
pub use storage::{
    live_tensor_buffers, live_tensor_bytes, Buffer, CpuStorage, Device, HostVec, Storage,
};
pub use tensor::Tensor;
