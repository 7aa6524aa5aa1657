//! Device memory: a typed allocation on one [`Gpu`], f32 or f64.

use crate::device::Gpu;
use crate::error::CudaError;
use cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};
use std::sync::Arc;

/// The element type of a device buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

/// The typed allocation inside a [`DeviceBuffer`].
#[derive(Debug)]
pub enum DeviceData {
    /// f32 elements.
    F32(CudaSlice<f32>),
    /// f64 elements.
    F64(CudaSlice<f64>),
}

/// `len` elements of one type in the memory of one GPU.
///
/// Every kernel launch and copy goes to the GPU's single stream, so work is ordered; reading
/// the elements back (`to_host`) waits for it.
pub struct DeviceBuffer {
    gpu: Arc<Gpu>,
    data: DeviceData,
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceBuffer(cuda:{}, {:?} × {})",
            self.gpu.ordinal(),
            self.dtype(),
            self.len()
        )
    }
}

/// An element type kernels exist for.
pub trait Float: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
    /// The matching runtime tag.
    const DTYPE: DType;
    #[doc(hidden)]
    fn wrap(s: CudaSlice<Self>) -> DeviceData;
    #[doc(hidden)]
    fn get(d: &DeviceData) -> Option<&CudaSlice<Self>>;
    #[doc(hidden)]
    fn get_mut(d: &mut DeviceData) -> Option<&mut CudaSlice<Self>>;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn wrap(s: CudaSlice<Self>) -> DeviceData {
        DeviceData::F32(s)
    }
    fn get(d: &DeviceData) -> Option<&CudaSlice<Self>> {
        match d {
            DeviceData::F32(s) => Some(s),
            _ => None,
        }
    }
    fn get_mut(d: &mut DeviceData) -> Option<&mut CudaSlice<Self>> {
        match d {
            DeviceData::F32(s) => Some(s),
            _ => None,
        }
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    fn wrap(s: CudaSlice<Self>) -> DeviceData {
        DeviceData::F64(s)
    }
    fn get(d: &DeviceData) -> Option<&CudaSlice<Self>> {
        match d {
            DeviceData::F64(s) => Some(s),
            _ => None,
        }
    }
    fn get_mut(d: &mut DeviceData) -> Option<&mut CudaSlice<Self>> {
        match d {
            DeviceData::F64(s) => Some(s),
            _ => None,
        }
    }
}

/// Elements kernels may overwrite without reading: allocation without initialisation.
fn alloc_raw<T: Float>(gpu: &Arc<Gpu>, len: usize) -> Result<CudaSlice<T>, CudaError> {
    if len == 0 {
        return gpu.stream().null().map_err(CudaError::from);
    }
    // SAFETY: callers write every element before any is read.
    unsafe { gpu.stream().alloc::<T>(len) }.map_err(CudaError::from)
}

impl DeviceBuffer {
    /// `len` elements whose values are unspecified, for kernels that write all of them.
    pub fn uninit(gpu: &Arc<Gpu>, dtype: DType, len: usize) -> Result<DeviceBuffer, CudaError> {
        let data = match dtype {
            DType::F32 => DeviceData::F32(alloc_raw(gpu, len)?),
            DType::F64 => DeviceData::F64(alloc_raw(gpu, len)?),
        };
        Ok(DeviceBuffer {
            gpu: gpu.clone(),
            data,
        })
    }

    /// `len` zeros.
    pub fn zeros(gpu: &Arc<Gpu>, dtype: DType, len: usize) -> Result<DeviceBuffer, CudaError> {
        let mut b = Self::uninit(gpu, dtype, len)?;
        if len > 0 {
            let s = gpu.stream();
            match &mut b.data {
                DeviceData::F32(d) => s.memset_zeros(d)?,
                DeviceData::F64(d) => s.memset_zeros(d)?,
            }
        }
        Ok(b)
    }

    /// A copy of host elements.
    pub fn from_host<T: Float>(gpu: &Arc<Gpu>, host: &[T]) -> Result<DeviceBuffer, CudaError> {
        let mut d = alloc_raw::<T>(gpu, host.len())?;
        if !host.is_empty() {
            gpu.stream().memcpy_htod(host, &mut d)?;
        }
        Ok(DeviceBuffer {
            gpu: gpu.clone(),
            data: T::wrap(d),
        })
    }

    /// Wraps an existing allocation.
    pub fn from_data(gpu: &Arc<Gpu>, data: DeviceData) -> DeviceBuffer {
        DeviceBuffer {
            gpu: gpu.clone(),
            data,
        }
    }

    /// The elements, copied to the host (waits for queued work).
    pub fn to_host<T: Float>(&self) -> Result<Vec<T>, CudaError> {
        let s = self.slice::<T>();
        let mut out = vec![T::default(); s.len()];
        if !out.is_empty() {
            self.gpu.stream().memcpy_dtoh(s, &mut out)?;
        }
        Ok(out)
    }

    /// Overwrites the elements with host data of the same length.
    pub fn copy_from_host<T: Float>(&mut self, host: &[T]) -> Result<(), CudaError> {
        assert_eq!(
            host.len(),
            self.len(),
            "copy_from_host: {} elements into a buffer of {}",
            host.len(),
            self.len()
        );
        if host.is_empty() {
            return Ok(());
        }
        let gpu = self.gpu.clone();
        gpu.stream().memcpy_htod(host, self.slice_mut::<T>())?;
        Ok(())
    }

    /// A device-to-device copy.
    pub fn try_clone(&self) -> Result<DeviceBuffer, CudaError> {
        let mut out = Self::uninit(&self.gpu, self.dtype(), self.len())?;
        if !self.is_empty() {
            let s = self.gpu.stream();
            match (&self.data, &mut out.data) {
                (DeviceData::F32(a), DeviceData::F32(b)) => s.memcpy_dtod(a, b)?,
                (DeviceData::F64(a), DeviceData::F64(b)) => s.memcpy_dtod(a, b)?,
                _ => unreachable!("uninit keeps the dtype"),
            }
        }
        Ok(out)
    }

    /// The GPU whose memory holds the elements.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// The typed allocation (for kernel launches).
    pub fn data(&self) -> &DeviceData {
        &self.data
    }

    /// The typed allocation for kernels that write it.
    pub fn data_mut(&mut self) -> &mut DeviceData {
        &mut self.data
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            DeviceData::F32(_) => DType::F32,
            DeviceData::F64(_) => DType::F64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            DeviceData::F32(s) => s.len(),
            DeviceData::F64(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// The typed allocation; panics if the buffer holds the other type.
    pub fn slice<T: Float>(&self) -> &CudaSlice<T> {
        T::get(&self.data)
            .unwrap_or_else(|| panic!("device buffer holds {:?}, not {:?}", self.dtype(), T::DTYPE))
    }

    /// The typed allocation, mutably; panics if the buffer holds the other type.
    pub fn slice_mut<T: Float>(&mut self) -> &mut CudaSlice<T> {
        let dt = self.dtype();
        T::get_mut(&mut self.data)
            .unwrap_or_else(|| panic!("device buffer holds {dt:?}, not {:?}", T::DTYPE))
    }
}
