//! Where a tensor's elements live. This is the device seam (see the crate docs).

use crate::dtype::{DType, Elem};
use std::sync::atomic::{AtomicI64, Ordering};

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BUFFERS: AtomicI64 = AtomicI64::new(0);

/// Bytes currently held by all live tensor buffers of this process (every device), with what
/// they keep about their contents: a weight's packed GEMM panels (x86 kernels) count here too
/// (its kept transpose and σ are tensors and count themselves).
///
/// Used by tests and benchmarks to prove that long sampling loops do not leak.
pub fn live_tensor_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Number of live tensor buffers of this process.
pub fn live_tensor_buffers() -> i64 {
    LIVE_BUFFERS.load(Ordering::Relaxed)
}

/// The device a tensor's storage lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// A CUDA GPU by ordinal (feature `cuda`).
    #[cfg(feature = "cuda")]
    Cuda(usize),
}

/// Host memory, one variant per element type.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
}

impl CpuStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Conversion between a typed `Vec` and the untyped storage.
pub trait HostVec: Elem + crate::pool::Pooled {
    /// The vector as untyped storage.
    fn wrap(v: Vec<Self>) -> CpuStorage;
    /// The storage's elements, if they are of this type.
    fn view(s: &CpuStorage) -> Option<&[Self]>;
    /// The storage's elements for writing, if they are of this type.
    fn view_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
}

impl HostVec for f32 {
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
    fn view(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn view_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl HostVec for f64 {
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
    fn view(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn view_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// The storage of one tensor buffer: an enum over devices.
///
/// A device backend adds a variant here (behind its cargo feature) and an arm in each kernel
/// dispatch of `ops/`; nothing above `ebm-core` sees which variant a tensor holds.
#[derive(Debug)]
pub enum Storage {
    /// Host memory.
    Cpu(CpuStorage),
    /// Device memory on a GPU (feature `cuda`); kernels in `ebm-cuda`, dispatch in `cuda.rs`.
    #[cfg(feature = "cuda")]
    Cuda(ebm_cuda::DeviceBuffer),
}

/// An allocation with its size accounted in [`live_tensor_bytes`].
#[derive(Debug)]
pub struct Buffer {
    storage: Storage,
    bytes: i64,
    /// σ of every element, when an op that computed it kept it (SiLU's forward pass): the
    /// derivative ops of SiLU then read σ instead of evaluating an exponential again. A
    /// buffer's contents never change while it is shared, and [`Buffer::storage_mut`]
    /// (the one way to write them) drops the cache.
    sigmoid: std::sync::OnceLock<crate::tensor::Tensor>,
    /// The contents as a transposed matrix, when a product read this buffer as `Wᵀ`: a
    /// weight is transposed once and reused by every `x·Wᵀ` until it is written. Kept with the
    /// shape it transposes.
    transposed: std::sync::OnceLock<(Vec<usize>, crate::tensor::Tensor)>,
    /// The contents packed as the f32 GEMM kernel's B panels (an f32 matrix read as B by
    /// products; the panel width of the path in use), once a second product asks: a weight is packed once per contents instead
    /// of once per product, and a buffer read as B once (an activation) costs nothing. Kept
    /// with the shape it packs.
    packed_b: std::sync::OnceLock<(Vec<usize>, Vec<f32>)>,
    /// How many products asked for `packed_b` of these contents.
    pack_requests: std::sync::atomic::AtomicU32,
}

impl Buffer {
    /// Wraps storage, counting its bytes as live.
    pub fn new(storage: Storage) -> Self {
        let bytes = match &storage {
            Storage::Cpu(c) => (c.len() * c.dtype().size()) as i64,
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => b.bytes() as i64,
        };
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        LIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        Buffer {
            storage,
            bytes,
            sigmoid: std::sync::OnceLock::new(),
            transposed: std::sync::OnceLock::new(),
            packed_b: std::sync::OnceLock::new(),
            pack_requests: std::sync::atomic::AtomicU32::new(0),
        }
    }
    /// The elements.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    /// The elements for writing; drops what was kept about the old contents (σ, transpose).
    pub fn storage_mut(&mut self) -> &mut Storage {
        self.sigmoid = std::sync::OnceLock::new();
        self.transposed = std::sync::OnceLock::new();
        self.release_packed_b();
        *self.pack_requests.get_mut() = 0;
        &mut self.storage
    }
    /// The cached σ of the contents, if an op stored one.
    pub fn sigmoid_cache(&self) -> Option<&crate::tensor::Tensor> {
        self.sigmoid.get()
    }
    /// The contents transposed for `shape`, made by `make` on first use and kept.
    pub fn transposed_for(
        &self,
        shape: &[usize],
        make: impl FnOnce() -> crate::tensor::Tensor,
    ) -> Option<&crate::tensor::Tensor> {
        let (s, t) = self.transposed.get_or_init(|| (shape.to_vec(), make()));
        (s.as_slice() == shape).then_some(t)
    }
    /// The contents packed for `shape` by `make`, kept from the second request on; `None` on
    /// the first request (the caller packs for itself) and for another shape than the kept one.
    pub fn packed_b_for(&self, shape: &[usize], make: impl FnOnce() -> Vec<f32>) -> Option<&[f32]> {
        if self.packed_b.get().is_none() && self.pack_requests.fetch_add(1, Ordering::Relaxed) == 0
        {
            return None;
        }
        let (s, v) = self.packed_b.get_or_init(|| {
            let v = make();
            LIVE_BYTES.fetch_add(packed_bytes(&v), Ordering::Relaxed);
            (shape.to_vec(), v)
        });
        (s.as_slice() == shape).then_some(v.as_slice())
    }
    /// Gives the kept packed panels back to the pool and out of [`live_tensor_bytes`].
    fn release_packed_b(&mut self) {
        if let Some((_, v)) = self.packed_b.take() {
            LIVE_BYTES.fetch_sub(packed_bytes(&v), Ordering::Relaxed);
            crate::pool::give(v);
        }
    }
    /// Keeps σ of the contents (ignored if one is already kept).
    pub fn set_sigmoid_cache(&self, s: crate::tensor::Tensor) {
        let _ = self.sigmoid.set(s);
    }
    /// The device the elements live on.
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => Device::Cuda(b.gpu().ordinal()),
        }
    }
}

/// The bytes of kept packed panels.
fn packed_bytes(v: &[f32]) -> i64 {
    std::mem::size_of_val(v) as i64
}

impl Clone for Buffer {
    fn clone(&self) -> Self {
        match &self.storage {
            Storage::Cpu(c) => Buffer::new(Storage::Cpu(c.clone())),
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => Buffer::new(Storage::Cuda(crate::cuda::ok(b.try_clone(), "copy"))),
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.release_packed_b();
        match &mut self.storage {
            Storage::Cpu(CpuStorage::F32(v)) => crate::pool::give(std::mem::take(v)),
            Storage::Cpu(CpuStorage::F64(v)) => crate::pool::give(std::mem::take(v)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {}
        }
        LIVE_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
    }
}
