//! The device context: one per GPU ordinal, created once and shared. Creating it never panics:
//! without a driver it is a typed [`CudaError::NoDriver`] (cudarc's dynamic loader panics when
//! libcuda is missing, so its presence is checked first and every driver call that could load
//! it runs under `catch_unwind`).

use crate::error::CudaError;
use crate::kernels::{module_of, Module};
use crate::nvrtc::{self, Target};
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

/// Runs `f`, turning a missing driver library and any panic of cudarc's loader into
/// [`CudaError::NoDriver`].
pub(crate) fn guarded<T>(
    f: impl FnOnce() -> Result<T, cudarc::driver::DriverError>,
) -> Result<T, CudaError> {
    // SAFETY: `is_culib_present` only tries to dlopen libcuda; a loader panic is caught.
    let present =
        catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false);
    if !present {
        return Err(CudaError::NoDriver(
            "libcuda.so was not found: this machine has no NVIDIA driver".into(),
        ));
    }
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(CudaError::from),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the driver library failed to load".into());
            Err(CudaError::NoDriver(msg))
        }
    }
}

/// Tensors are allocated and freed with every op (stream-ordered `cuMemAllocAsync`); by default
/// the pool hands freed memory back to the OS at each synchronisation, and the next step pays
/// for fresh mappings. An unlimited release threshold keeps it cached, as PyTorch's caching
/// allocator does.
fn keep_freed_memory(ctx: &Arc<CudaContext>) -> Result<(), CudaError> {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold: u64 = u64::MAX;
    // SAFETY: valid device handle and out-pointers; the attribute takes a u64.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()).result()?;
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            &mut threshold as *mut u64 as *mut std::ffi::c_void,
        )
        .result()?;
    }
    Ok(())
}

/// The number of CUDA devices, or why there are none to use.
pub fn device_count() -> Result<usize, CudaError> {
    guarded(|| CudaContext::device_count().map(|n| n as usize))
}

/// A GPU ready to run this crate's kernels: context, stream, compiled-module cache, cuBLAS.
pub struct Gpu {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    arch: u32,
    sm_count: u32,
    smem_optin: u32,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    funcs: Mutex<HashMap<&'static str, CudaFunction>>,
    blas: OnceLock<Result<Arc<cudarc::cublas::CudaBlas>, CudaError>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({}: {}, sm_{})", self.ordinal, self.name, self.arch)
    }
}

type Cache = Mutex<HashMap<usize, Result<Arc<Gpu>, CudaError>>>;
static GPUS: OnceLock<Cache> = OnceLock::new();

/// The shared context of GPU `ordinal`, created on first use; the outcome (including "no
/// driver") is remembered, so asking again is cheap.
pub fn gpu(ordinal: usize) -> Result<Arc<Gpu>, CudaError> {
    let cache = GPUS.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(ordinal)
        .or_insert_with(|| Gpu::create(ordinal).map(Arc::new))
        .clone()
}

/// GPU 0 if there is one; `Err` says why not ("no CUDA driver", "no CUDA device 0").
pub fn default_gpu() -> Result<Arc<Gpu>, CudaError> {
    gpu(0)
}

impl Gpu {
    fn create(ordinal: usize) -> Result<Gpu, CudaError> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        let ctx = guarded(|| CudaContext::new(ordinal))?;
        // One stream for everything: ordering is the stream's, so per-buffer events (cudarc's
        // multi-stream tracking, two events per allocation) would be pure overhead.
        // SAFETY: cudarc requires that no other stream use this context's buffers without
        // events; every launch and copy here goes to the one stream below.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        if ctx.has_async_alloc() {
            keep_freed_memory(&ctx)?;
        }
        let (major, minor) = ctx.compute_capability()?;
        let attr = |a| ctx.attribute(a).map(|v| v.max(0) as u32);
        let sm_count = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let smem_optin =
            attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
        Ok(Gpu {
            ordinal,
            name: ctx.name().unwrap_or_default(),
            arch: (major * 10 + minor) as u32,
            sm_count,
            smem_optin,
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
            funcs: Mutex::new(HashMap::new()),
            blas: OnceLock::new(),
        })
    }

    /// The device's ordinal (`cuda:N`).
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Compute capability as one number (90 for sm_90).
    pub fn arch(&self) -> u32 {
        self.arch
    }

    /// Number of streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// Most dynamic shared memory one block may opt in to, in bytes.
    pub fn smem_optin(&self) -> u32 {
        self.smem_optin
    }

    /// The cudarc context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The one stream all work on this GPU goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for all queued work (for timing).
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(CudaError::from)
    }

    /// A module compiled for this device and loaded, compiled on first use and cached.
    ///
    /// A CUBIN for the device's own architecture avoids the PTX-version question entirely; if
    /// this NVRTC does not know the architecture, PTX for compute_90 (or lower) is JIT-compiled
    /// by the driver instead.
    pub fn module(&self, m: &'static Module) -> Result<Arc<CudaModule>, CudaError> {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = modules.get(m.name) {
            return Ok(loaded.clone());
        }
        let image = match nvrtc::compile(m, Target::Cubin(self.arch)) {
            Ok(cubin) => cudarc::nvrtc::Ptx::from_binary(cubin),
            Err(CudaError::Compile { .. }) => {
                let ptx = nvrtc::compile(m, Target::Ptx(self.arch.min(90)))?;
                cudarc::nvrtc::Ptx::from_src(String::from_utf8_lossy(&ptx).into_owned())
            }
            Err(e) => return Err(e),
        };
        let loaded = self.ctx.load_module(image)?;
        modules.insert(m.name, loaded.clone());
        Ok(loaded)
    }

    /// The kernel `name` (one of the names in `kernels.rs`), loaded and cached.
    pub fn func(&self, name: &'static str) -> Result<CudaFunction, CudaError> {
        if let Some(f) = self
            .funcs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(f.clone());
        }
        let m = module_of(name).ok_or_else(|| CudaError::UnknownKernel(name.into()))?;
        let f = self.module(m)?.load_function(name)?;
        self.funcs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, f.clone());
        Ok(f)
    }

    /// The cuBLAS handle on this GPU's stream, or why there is none (libcublas is part of the
    /// CUDA toolkit, not of the driver, so it may be missing where the driver is present).
    pub fn blas(&self) -> Result<Arc<cudarc::cublas::CudaBlas>, CudaError> {
        self.blas
            .get_or_init(|| {
                // SAFETY: only tries to dlopen libcublas; a loader panic is caught.
                let present = catch_unwind(|| unsafe { cudarc::cublas::sys::is_culib_present() })
                    .unwrap_or(false);
                if !present {
                    return Err(CudaError::Blas("libcublas was not found".into()));
                }
                catch_unwind(AssertUnwindSafe(|| {
                    cudarc::cublas::CudaBlas::new(self.stream.clone())
                }))
                .map_err(|_| CudaError::Blas("libcublas failed to load".into()))?
                .map(Arc::new)
                .map_err(|e| CudaError::Blas(format!("{e:?}")))
            })
            .clone()
    }
}

/// Launches kernel `$name` on `$gpu`'s stream with config `$cfg` and the given arguments;
/// evaluates to `Result<(), CudaError>`.
macro_rules! launch {
    ($gpu:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        use cudarc::driver::PushKernelArg as _;
        let f = $gpu.func($name)?;
        let stream = $gpu.stream().clone();
        let mut b = stream.launch_builder(&f);
        $( b.arg($arg); )*
        // SAFETY: argument lists match the kernel signatures in kernels/*.cu (checked by the
        // GPU tests), and every buffer is at least as long as the kernel's index range.
        unsafe { b.launch($cfg) }
            .map(|_| ())
            .map_err($crate::error::CudaError::from)
    }};
}
pub(crate) use launch;

/// A 1-d launch of `threads`-wide blocks covering `n` elements with a grid-stride loop.
pub(crate) fn grid_1d(n: usize, threads: u32) -> cudarc::driver::LaunchConfig {
    let blocks = n.div_ceil(threads as usize).clamp(1, 1 << 20) as u32;
    cudarc::driver::LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}
