//! Moving tensors between devices, and constructors on a given device. Available with or
//! without the `cuda` feature, so device-agnostic code needs no `cfg`: without it the only
//! device is the CPU and these are plain copies.

use crate::dtype::DType;
use crate::rng::Rng;
use crate::storage::Device;
use crate::tensor::Tensor;

impl Tensor {
    /// A copy on `device` (a shared copy when already there); panics with the reason when the
    /// device cannot be used (see `try_to_device` with the `cuda` feature for a `Result`).
    pub fn to_device(&self, device: Device) -> Tensor {
        match device {
            Device::Cpu => self.to_cpu(),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => crate::cuda::to_gpu(self, i)
                .unwrap_or_else(|e| panic!("to_device(cuda:{i}) of {:?}: {e}", self.shape())),
        }
    }

    /// A host copy (a shared copy when already on the CPU).
    pub fn to_cpu(&self) -> Tensor {
        #[cfg(feature = "cuda")]
        if let Some(host) = crate::cuda::to_host(self) {
            return host;
        }
        self.clone()
    }

    /// Whether the elements live in host memory.
    pub fn is_cpu(&self) -> bool {
        self.device() == Device::Cpu
    }

    /// `value` in `shape` on `device`.
    pub fn full_on(shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
        match device {
            Device::Cpu => Tensor::full(shape, value, dtype),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => crate::cuda::full_on(shape, value, dtype, i)
                .unwrap_or_else(|e| panic!("full_on(cuda:{i}): {e}")),
        }
    }

    /// Zeros in `shape` on `device`.
    pub fn zeros_on(shape: &[usize], dtype: DType, device: Device) -> Tensor {
        Tensor::full_on(shape, 0.0, dtype, device)
    }
}

impl Rng {
    /// Standard normal draws on `device`: the same numbers as [`Rng::normal`] (generated on the
    /// device itself by the same counter-based mapping), and `self` advances the same way.
    pub fn normal_on(&mut self, shape: &[usize], dtype: DType, device: Device) -> Tensor {
        match device {
            Device::Cpu => self.normal(shape, dtype),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => {
                crate::cuda::random_on(self, shape, dtype, ebm_cuda::Random::Normal, i)
                    .unwrap_or_else(|e| panic!("normal_on(cuda:{i}): {e}"))
            }
        }
    }

    /// Uniform draws on [lo, hi) on `device`, as [`Rng::uniform`] gives them.
    pub fn uniform_on(
        &mut self,
        shape: &[usize],
        lo: f64,
        hi: f64,
        dtype: DType,
        device: Device,
    ) -> Tensor {
        match device {
            Device::Cpu => self.uniform(shape, lo, hi, dtype),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => {
                crate::cuda::random_on(self, shape, dtype, ebm_cuda::Random::Uniform { lo, hi }, i)
                    .unwrap_or_else(|e| panic!("uniform_on(cuda:{i}): {e}"))
            }
        }
    }
}

/// Every device this build and machine can run on: the CPU, and GPU 0 when ebm-core has its
/// `cuda` feature and a driver answers. Meant for tests and benchmarks (see
/// [`for_each_device!`](crate::for_each_device)): the first call prints one SKIP line saying
/// why there is no GPU.
pub fn test_devices() -> &'static [Device] {
    static DEVICES: std::sync::OnceLock<Vec<Device>> = std::sync::OnceLock::new();
    DEVICES.get_or_init(|| {
        #[cfg(feature = "cuda")]
        match crate::cuda::available(0) {
            Ok(()) => return vec![Device::Cpu, Device::Cuda(0)],
            Err(e) => eprintln!("SKIP the GPU runs of device-parametric tests: {e}"),
        }
        #[cfg(not(feature = "cuda"))]
        eprintln!(
            "SKIP the GPU runs of device-parametric tests: ebm-core was built without its \
             `cuda` feature"
        );
        vec![Device::Cpu]
    })
}

/// Runs a test body once per device of [`test_devices`]: on the CPU always, and on GPU 0 when
/// the `cuda` feature is on and a driver answers (otherwise one SKIP line says why).
///
/// ```
/// use ebm_core::{for_each_device, DType, Tensor};
/// for_each_device!(|dev| {
///     let x = Tensor::full_on(&[3], 2.0, DType::F64, dev);
///     assert_eq!(x.mul(&x).to_vec_f64(), vec![4.0; 3], "on {dev:?}");
/// });
/// ```
#[macro_export]
macro_rules! for_each_device {
    (|$dev:ident| $body:expr) => {
        for &$dev in $crate::device::test_devices() {
            $body
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_moves_are_shared_copies() {
        let t = Tensor::arange(5, DType::F32);
        assert!(t.to_device(Device::Cpu).same_buffer(&t));
        assert!(t.to_cpu().same_buffer(&t) && t.is_cpu());
        let z = Tensor::zeros_on(&[2, 3], DType::F64, Device::Cpu);
        assert_eq!(z.to_vec_f64(), vec![0.0; 6]);
        let (mut a, mut b) = (Rng::new(4), Rng::new(4));
        assert_eq!(
            a.normal_on(&[7], DType::F32, Device::Cpu).to_vec_f64(),
            b.normal(&[7], DType::F32).to_vec_f64()
        );
        assert_eq!(a.state(), b.state());
    }
}
