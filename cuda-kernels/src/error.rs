//! The typed errors of the CUDA backend.

/// Why a CUDA operation could not run.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CudaError {
    /// No driver library (libcuda) on this machine, or it failed to initialise.
    #[error("no CUDA driver: {0}")]
    NoDriver(String),
    /// The driver is present but there is no device with this ordinal.
    #[error("no CUDA device {ordinal} ({count} present)")]
    NoDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// How many devices the driver sees.
        count: usize,
    },
    /// NVRTC (run-time compiler) could not be loaded.
    #[error("no NVRTC: {0}")]
    NoNvrtc(String),
    /// NVRTC rejected a kernel module.
    #[error("NVRTC failed to compile {module}.cu for {arch}: {log}")]
    Compile {
        /// The module (`.cu` file) that failed.
        module: &'static str,
        /// The target architecture (`compute_90`, `sm_90`).
        arch: String,
        /// NVRTC's log.
        log: String,
    },
    /// A kernel name is not in the table of `kernels.rs`.
    #[error("unknown kernel {0}")]
    UnknownKernel(String),
    /// The driver reported an error.
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// cuBLAS is missing or failed.
    #[error("cuBLAS: {0}")]
    Blas(String),
    /// A request the kernels cannot serve (sizes past 32-bit indexing, too many layers, …).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        CudaError::Driver(format!("{e:?}"))
    }
}
