//! The `Tensor` type: a shape plus a shared, reference-counted buffer.

use crate::dtype::{DType, Elem};
use crate::shape::numel;
use crate::storage::{Buffer, CpuStorage, Device, HostVec, Storage};
use std::sync::Arc;

/// An immutable n-dimensional array of f32 or f64, row-major and contiguous.
///
/// Cloning is cheap (the buffer is shared). Every op returns a new tensor; `reshape` shares the
/// buffer. Shape errors are programming errors and panic with a message naming both shapes.
#[derive(Clone)]
pub struct Tensor {
    buf: Arc<Buffer>,
    shape: Vec<usize>,
}

/// Runs `$body` with `$v` bound to the CPU slice of `$t`, for whichever element type it holds.
#[macro_export]
#[doc(hidden)]
macro_rules! with_slice {
    ($t:expr, |$v:ident| $body:expr) => {
        match $t.cpu() {
            $crate::CpuStorage::F32($v) => $body,
            $crate::CpuStorage::F64($v) => $body,
        }
    };
}

/// Runs `$body` with both operands' slices, which must share an element type.
#[macro_export]
#[doc(hidden)]
macro_rules! with_slices2 {
    ($op:expr, $a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {
        match ($a.cpu(), $b.cpu()) {
            ($crate::CpuStorage::F32($x), $crate::CpuStorage::F32($y)) => $body,
            ($crate::CpuStorage::F64($x), $crate::CpuStorage::F64($y)) => $body,
            _ => panic!(
                "{}: dtype mismatch, {} {:?} vs {} {:?}",
                $op,
                $a.dtype(),
                $a.shape(),
                $b.dtype(),
                $b.shape()
            ),
        }
    };
}

impl Tensor {
    /// Wraps CPU storage with a shape; panics if the element count disagrees.
    pub fn from_storage(storage: CpuStorage, shape: &[usize]) -> Tensor {
        assert_eq!(
            storage.len(),
            numel(shape),
            "Tensor: {} elements cannot have shape {:?}",
            storage.len(),
            shape
        );
        Tensor {
            buf: Arc::new(Buffer::new(Storage::Cpu(storage))),
            shape: shape.to_vec(),
        }
    }

    /// Wraps any storage (a device's) with a shape; the caller guarantees the element count.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn from_parts(storage: Storage, shape: &[usize]) -> Tensor {
        Tensor {
            buf: Arc::new(Buffer::new(storage)),
            shape: shape.to_vec(),
        }
    }

    /// The storage behind this tensor (any device).
    pub fn storage(&self) -> &Storage {
        self.buf.storage()
    }

    /// A tensor owning `data` with the given shape.
    pub fn from_vec<T: HostVec>(data: Vec<T>, shape: &[usize]) -> Tensor {
        Self::from_storage(T::wrap(data), shape)
    }

    /// A tensor copying `data`.
    pub fn from_slice<T: HostVec>(data: &[T], shape: &[usize]) -> Tensor {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A tensor from f64 values, converted to `dtype`.
    pub fn from_f64s(data: &[f64], shape: &[usize], dtype: DType) -> Tensor {
        match dtype {
            DType::F32 => Self::from_vec(data.iter().map(|&v| v as f32).collect::<Vec<_>>(), shape),
            DType::F64 => Self::from_vec(data.to_vec(), shape),
        }
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        let n = numel(shape);
        match dtype {
            DType::F32 => Self::from_vec(crate::pool::filled(n, value as f32), shape),
            DType::F64 => Self::from_vec(crate::pool::filled(n, value), shape),
        }
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Self::full(shape, 0.0, dtype)
    }

    /// Ones of `shape`.
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Self::full(shape, 1.0, dtype)
    }

    /// A 0-d tensor.
    pub fn scalar(value: f64, dtype: DType) -> Tensor {
        Self::full(&[], value, dtype)
    }

    /// `[0, 1, …, n-1]` as a 1-d tensor.
    pub fn arange(n: usize, dtype: DType) -> Tensor {
        let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
        Self::from_f64s(&v, &[n], dtype)
    }

    /// Zeros of this tensor's shape and dtype, on its device.
    pub fn zeros_like(&self) -> Tensor {
        self.full_like(0.0)
    }

    /// Ones of this tensor's shape and dtype, on its device.
    pub fn ones_like(&self) -> Tensor {
        self.full_like(1.0)
    }

    /// `value` in this tensor's shape and dtype, on its device.
    pub fn full_like(&self, value: f64) -> Tensor {
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::full_like(self, value) {
            return t;
        }
        Self::full(&self.shape, value, self.dtype())
    }

    /// The size of every axis.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Size of axis `axis`; panics when out of range.
    pub fn dim(&self, axis: usize) -> usize {
        assert!(
            axis < self.rank(),
            "dim: axis {axis} out of range for shape {:?}",
            self.shape
        );
        self.shape[axis]
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self.buf.storage() {
            Storage::Cpu(c) => c.dtype(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => crate::cuda::dtype_of(b),
        }
    }

    /// The device the elements live on.
    pub fn device(&self) -> Device {
        self.buf.device()
    }

    /// The host storage; panics for a tensor on another device.
    pub fn cpu(&self) -> &CpuStorage {
        match self.buf.storage() {
            Storage::Cpu(c) => c,
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => panic!(
                "tensor {:?} is on {:?}: call .to_cpu() for host access",
                self.shape,
                self.device()
            ),
        }
    }

    /// The elements as a slice of `T`; panics if the dtype is not `T`.
    pub fn as_slice<T: HostVec>(&self) -> &[T] {
        T::view(self.cpu()).unwrap_or_else(|| {
            panic!(
                "as_slice: tensor {:?} holds {}, not {}",
                self.shape,
                self.dtype(),
                T::DTYPE
            )
        })
    }

    /// Mutable access to the elements, copying the buffer first if it is shared.
    pub fn data_mut<T: HostVec>(&mut self) -> &mut [T] {
        let dt = self.dtype();
        #[cfg(feature = "cuda")]
        let _ = self.cpu(); // a clear panic for device tensors
        let buf = Arc::make_mut(&mut self.buf);
        match buf.storage_mut() {
            Storage::Cpu(c) => T::view_mut(c)
                .unwrap_or_else(|| panic!("data_mut: tensor holds {dt}, not {}", T::DTYPE)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => unreachable!("checked by self.cpu() above"),
        }
    }

    /// The elements converted to `T`.
    pub fn to_vec<T: Elem>(&self) -> Vec<T> {
        #[cfg(feature = "cuda")]
        if let Some(host) = crate::cuda::to_host(self) {
            return host.to_vec();
        }
        with_slice!(self, |v| v.iter().map(|&x| T::of(x.f64())).collect())
    }

    /// The elements widened to f64.
    pub fn to_vec_f64(&self) -> Vec<f64> {
        self.to_vec::<f64>()
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> f64 {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {:?} has {} elements",
            self.shape,
            self.numel()
        );
        #[cfg(feature = "cuda")]
        if let Some(host) = crate::cuda::to_host(self) {
            return host.item();
        }
        with_slice!(self, |v| v[0].f64())
    }

    /// Converts to another element type (a shared copy when it already is that type).
    pub fn cast(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::cast(self, dtype) {
            return t;
        }
        match dtype {
            DType::F32 => Tensor::from_vec(self.to_vec::<f32>(), &self.shape),
            DType::F64 => Tensor::from_vec(self.to_vec::<f64>(), &self.shape),
        }
    }

    /// Same elements, new shape (shares the buffer). One axis may be `usize::MAX` to infer it.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        let mut shape = shape.to_vec();
        if let Some(pos) = shape.iter().position(|&d| d == usize::MAX) {
            let known: usize = shape.iter().filter(|&&d| d != usize::MAX).product();
            assert!(
                known > 0 && self.numel().is_multiple_of(known),
                "reshape: cannot infer an axis to reshape {:?} to {:?}",
                self.shape,
                shape
            );
            shape[pos] = self.numel() / known;
        }
        assert_eq!(
            numel(&shape),
            self.numel(),
            "reshape: {:?} ({} elements) cannot become {:?}",
            self.shape,
            self.numel(),
            shape
        );
        Tensor {
            buf: self.buf.clone(),
            shape,
        }
    }

    /// self (2-d) transposed into its own contiguous buffer, made once per buffer contents and
    /// kept with the buffer (see `Buffer`); `None` if the buffer was first transposed under
    /// another shape.
    pub(crate) fn transposed_kept(&self) -> Option<Tensor> {
        self.buf
            .transposed_for(&self.shape, || crate::ops::layout::transpose_2d(self))
            .cloned()
    }

    /// This 2-d f32 tensor packed by `make` as the f32 GEMM kernel's B, kept with the buffer
    /// from the second request on (see `Buffer::packed_b_for`). x86-64 only, as those kernels.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn kept_packed_b(&self, make: impl FnOnce() -> Vec<f32>) -> Option<&[f32]> {
        self.buf.packed_b_for(&self.shape, make)
    }

    /// Whether no other tensor shares this buffer (writes through `data_mut` are then in place).
    pub fn buffer_is_unique(&self) -> bool {
        Arc::strong_count(&self.buf) == 1 && Arc::weak_count(&self.buf) == 0
    }

    /// σ(self), when the op that made it or read it kept one (see `Buffer`'s sigmoid cache).
    pub(crate) fn sigmoid_cache(&self) -> Option<&Tensor> {
        self.buf.sigmoid_cache()
    }

    /// Keeps `s` = σ(self) with this tensor's buffer.
    pub(crate) fn set_sigmoid_cache(&self, s: Tensor) {
        debug_assert_eq!(s.shape(), self.shape());
        self.buf.set_sigmoid_cache(s)
    }

    /// Whether two tensors share one buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// Largest absolute difference to `other` (same shape), in f64.
    pub fn max_abs_diff(&self, other: &Tensor) -> f64 {
        assert_eq!(
            self.shape, other.shape,
            "max_abs_diff: shapes {:?} and {:?} differ",
            self.shape, other.shape
        );
        let a = self.to_vec_f64();
        let b = other.to_vec_f64();
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// Largest absolute element, in f64.
    pub fn max_abs(&self) -> f64 {
        self.to_vec_f64().iter().fold(0.0, |m, x| m.max(x.abs()))
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_vec_f64();
        let shown: Vec<_> = v.iter().take(8).collect();
        write!(
            f,
            "Tensor({}{:?}, {:?}{})",
            self.dtype(),
            self.shape,
            shown,
            if v.len() > 8 { " …" } else { "" }
        )
    }
}
