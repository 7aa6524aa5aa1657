//! The CUDA arm of every op (feature `cuda`): each op method in `ops/` asks the function of the
//! same name here first, which returns `None` when no operand lives on a GPU (the CPU path then
//! runs, untouched) and otherwise runs the op with `ebm-cuda`'s kernels.
//!
//! Mixed operands: when any operand is on a GPU, CPU operands (typically scalar constants such
//! as `Tensor::scalar`, or zeros built with `Tensor::zeros`) are uploaded to that GPU for the
//! op; the result lives on the GPU. Operands on two different GPUs are a programming error.
//!
//! GPU failures in the middle of an op (out of memory, a driver error) panic with the op's
//! name and the driver's message, like the shape errors of the CPU path; only moving a tensor
//! to a device ([`Tensor::try_to_device`]) reports "no GPU" as a `Result`.

use crate::dtype::DType;
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::rng::Rng;
use crate::shape::numel;
use crate::storage::{CpuStorage, Device, Storage};
use crate::tensor::Tensor;
use ebm_cuda as ec;
use std::sync::Arc;

pub(crate) use ebm_cuda::ConvOp;
pub use ebm_cuda::{CudaError, DeviceBuffer};

/// Unwraps a kernel result, panicking with the op's name on a GPU failure.
pub(crate) fn ok<T>(r: Result<T, ec::CudaError>, op: &str) -> T {
    r.unwrap_or_else(|e| panic!("{op} on the GPU failed: {e}"))
}

pub(crate) fn dtype_of(b: &ec::DeviceBuffer) -> DType {
    match b.dtype() {
        ec::DType::F32 => DType::F32,
        ec::DType::F64 => DType::F64,
    }
}

fn ec_dtype(d: DType) -> ec::DType {
    match d {
        DType::F32 => ec::DType::F32,
        DType::F64 => ec::DType::F64,
    }
}

fn device_buffer(t: &Tensor) -> Option<&ec::DeviceBuffer> {
    match t.storage() {
        Storage::Cuda(b) => Some(b),
        Storage::Cpu(_) => None,
    }
}

/// The GPU an op runs on: that of its CUDA operands (`None` when all are on the CPU).
fn gpu_of(op: &str, ts: &[&Tensor]) -> Option<Arc<ec::Gpu>> {
    let mut gpu: Option<&Arc<ec::Gpu>> = None;
    for t in ts {
        if let Some(b) = device_buffer(t) {
            match gpu {
                None => gpu = Some(b.gpu()),
                Some(g) => assert_eq!(
                    g.ordinal(),
                    b.gpu().ordinal(),
                    "{op}: operands on cuda:{} and cuda:{}",
                    g.ordinal(),
                    b.gpu().ordinal()
                ),
            }
        }
    }
    gpu.cloned()
}

/// An operand's device buffer: borrowed when it is on the GPU, uploaded when on the CPU.
enum Operand<'a> {
    Borrowed(&'a ec::DeviceBuffer),
    Owned(ec::DeviceBuffer),
}

impl std::ops::Deref for Operand<'_> {
    type Target = ec::DeviceBuffer;
    fn deref(&self) -> &ec::DeviceBuffer {
        match self {
            Operand::Borrowed(b) => b,
            Operand::Owned(b) => b,
        }
    }
}

fn upload(c: &CpuStorage, gpu: &Arc<ec::Gpu>) -> ec::DeviceBuffer {
    ok(
        match c {
            CpuStorage::F32(v) => ec::DeviceBuffer::from_host(gpu, v),
            CpuStorage::F64(v) => ec::DeviceBuffer::from_host(gpu, v),
        },
        "upload",
    )
}

fn operand<'a>(t: &'a Tensor, gpu: &Arc<ec::Gpu>) -> Operand<'a> {
    match t.storage() {
        Storage::Cuda(b) => Operand::Borrowed(b),
        Storage::Cpu(c) => Operand::Owned(upload(c, gpu)),
    }
}

fn wrap(b: ec::DeviceBuffer, shape: &[usize]) -> Tensor {
    debug_assert_eq!(b.len(), numel(shape));
    Tensor::from_parts(Storage::Cuda(b), shape)
}

fn check_dtypes(op: &str, a: &Tensor, b: &Tensor) {
    assert!(
        a.dtype() == b.dtype(),
        "{op}: dtype mismatch, {} {:?} vs {} {:?}",
        a.dtype(),
        a.shape(),
        b.dtype(),
        b.shape()
    );
}

/// A host copy of a GPU tensor (`None` for a CPU tensor).
pub(crate) fn to_host(t: &Tensor) -> Option<Tensor> {
    let b = device_buffer(t)?;
    let storage = match b.dtype() {
        ec::DType::F32 => CpuStorage::F32(ok(b.to_host::<f32>(), "download")),
        ec::DType::F64 => CpuStorage::F64(ok(b.to_host::<f64>(), "download")),
    };
    Some(Tensor::from_storage(storage, t.shape()))
}

/// A copy of `t` on GPU `ordinal`, or why there is none (no driver, no such device).
pub(crate) fn to_gpu(t: &Tensor, ordinal: usize) -> Result<Tensor, ec::CudaError> {
    if let Some(b) = device_buffer(t) {
        if b.gpu().ordinal() == ordinal {
            return Ok(t.clone());
        }
        return to_gpu(&to_host(t).expect("a GPU tensor"), ordinal);
    }
    let gpu = ec::gpu(ordinal)?;
    let b = match t.cpu() {
        CpuStorage::F32(v) => ec::DeviceBuffer::from_host(&gpu, v)?,
        CpuStorage::F64(v) => ec::DeviceBuffer::from_host(&gpu, v)?,
    };
    Ok(wrap(b, t.shape()))
}

/// `value` in `shape` on GPU `ordinal`.
pub(crate) fn full_on(
    shape: &[usize],
    value: f64,
    dtype: DType,
    ordinal: usize,
) -> Result<Tensor, ec::CudaError> {
    let gpu = ec::gpu(ordinal)?;
    let b = ec::DeviceBuffer::full(&gpu, ec_dtype(dtype), numel(shape), value)?;
    Ok(wrap(b, shape))
}

pub(crate) fn full_like(t: &Tensor, value: f64) -> Option<Tensor> {
    let gpu = gpu_of("full_like", &[t])?;
    let b = ec::DeviceBuffer::full(&gpu, ec_dtype(t.dtype()), t.numel(), value);
    Some(wrap(ok(b, "full_like"), t.shape()))
}

pub(crate) fn cast(t: &Tensor, dtype: DType) -> Option<Tensor> {
    let b = device_buffer(t)?;
    Some(wrap(ok(b.cast(ec_dtype(dtype)), "cast"), t.shape()))
}

pub(crate) fn unary(t: &Tensor, op: UnaryOp) -> Option<Tensor> {
    let b = device_buffer(t)?;
    Some(wrap(ok(b.unary(op), "unary"), t.shape()))
}

pub(crate) fn binary(a: &Tensor, b: &Tensor, op: BinaryOp, out_shape: &[usize]) -> Option<Tensor> {
    let name = format!("{op:?}");
    let gpu = gpu_of(&name, &[a, b])?;
    check_dtypes(&name, a, b);
    let (x, y) = (operand(a, &gpu), operand(b, &gpu));
    let r = x.binary(a.shape(), &y, b.shape(), out_shape, op);
    Some(wrap(ok(r, &name), out_shape))
}

pub(crate) fn where_(cond: &Tensor, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Option<Tensor> {
    let gpu = gpu_of("where", &[cond, a, b])?;
    check_dtypes("where", a, b);
    let c = operand(cond, &gpu);
    let c = if cond.dtype() == a.dtype() {
        c
    } else {
        Operand::Owned(ok(c.cast(ec_dtype(a.dtype())), "where"))
    };
    let (x, y) = (operand(a, &gpu), operand(b, &gpu));
    let r = ec::DeviceBuffer::where_(
        (&c, cond.shape()),
        (&x, a.shape()),
        (&y, b.shape()),
        out_shape,
    );
    Some(wrap(ok(r, "where"), out_shape))
}

/// Sum (or max) over the middle axis of `t` viewed as `[outer, n, inner]`.
pub(crate) fn reduce(
    t: &Tensor,
    [outer, n, inner]: [usize; 3],
    max: bool,
    out_shape: &[usize],
) -> Option<Tensor> {
    let b = device_buffer(t)?;
    let kind = if max {
        ec::Reduce::Max
    } else {
        ec::Reduce::Sum
    };
    Some(wrap(
        ok(b.reduce(outer, n, inner, kind), "reduce"),
        out_shape,
    ))
}

/// op(a)·op(b); `matmul_t_add` adds its addend to this with a broadcasting add.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Option<Tensor> {
    let gpu = gpu_of("matmul", &[a, b])?;
    check_dtypes("matmul", a, b);
    let (x, y) = (operand(a, &gpu), operand(b, &gpu));
    let (out, shape) = ok(
        x.matmul(a.shape(), ta, &y, b.shape(), tb, ec::MatmulEngine::Auto),
        "matmul",
    );
    Some(wrap(out, &shape))
}

pub(crate) fn broadcast_to(t: &Tensor, shape: &[usize]) -> Option<Tensor> {
    let b = device_buffer(t)?;
    Some(wrap(
        ok(b.broadcast_to(t.shape(), shape), "broadcast_to"),
        shape,
    ))
}

pub(crate) fn permute(t: &Tensor, perm: &[usize]) -> Option<Tensor> {
    let b = device_buffer(t)?;
    let shape: Vec<usize> = perm.iter().map(|&p| t.shape()[p]).collect();
    Some(wrap(ok(b.permute(t.shape(), perm), "permute"), &shape))
}

pub(crate) fn narrow(t: &Tensor, axis: usize, start: usize, len: usize) -> Option<Tensor> {
    let b = device_buffer(t)?;
    let mut shape = t.shape().to_vec();
    shape[axis] = len;
    Some(wrap(
        ok(b.narrow(t.shape(), axis, start, len), "narrow"),
        &shape,
    ))
}

pub(crate) fn narrow_assign(t: &Tensor, axis: usize, start: usize, src: &Tensor) -> Option<Tensor> {
    let gpu = gpu_of("narrow_assign", &[t, src])?;
    check_dtypes("narrow_assign", t, src);
    let (d, s) = (operand(t, &gpu), operand(src, &gpu));
    Some(wrap(
        ok(d.narrow_assign(t.shape(), axis, start, &s), "narrow_assign"),
        t.shape(),
    ))
}

pub(crate) fn concat(parts: &[Tensor], axis: usize) -> Option<Tensor> {
    let refs: Vec<&Tensor> = parts.iter().collect();
    let gpu = gpu_of("concat", &refs)?;
    let ops: Vec<Operand> = parts.iter().map(|p| operand(p, &gpu)).collect();
    let args: Vec<(&ec::DeviceBuffer, &[usize])> = ops
        .iter()
        .zip(parts)
        .map(|(o, p)| (&**o, p.shape()))
        .collect();
    let mut shape = parts[0].shape().to_vec();
    shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
    Some(wrap(
        ok(ec::DeviceBuffer::concat(&args, axis), "concat"),
        &shape,
    ))
}

pub(crate) fn index_select(t: &Tensor, indices: &[usize]) -> Option<Tensor> {
    let b = device_buffer(t)?;
    let mut shape = t.shape().to_vec();
    shape[0] = indices.len();
    let row = numel(&t.shape()[1..]);
    Some(wrap(
        ok(b.index_select(row, indices), "index_select"),
        &shape,
    ))
}

pub(crate) fn scatter_rows(
    t: &Tensor,
    indices: &[usize],
    src: &Tensor,
    accumulate: bool,
) -> Option<Tensor> {
    let op = if accumulate { "index_add" } else { "index_put" };
    let gpu = gpu_of(op, &[t, src])?;
    check_dtypes(op, t, src);
    let (d, s) = (operand(t, &gpu), operand(src, &gpu));
    let row = numel(&t.shape()[1..]);
    Some(wrap(
        ok(d.scatter_rows(row, indices, &s, accumulate), op),
        t.shape(),
    ))
}

/// Convolution op `op` on its two operands (see [`ConvOp`]) of geometry `g`.
pub(crate) fn conv(
    a: &Tensor,
    b: &Tensor,
    g: &crate::ops::conv::ConvGeom,
    op: ConvOp,
) -> Option<Tensor> {
    let gpu = gpu_of("conv", &[a, b])?;
    check_dtypes("conv", a, b);
    let (x, y) = (operand(a, &gpu), operand(b, &gpu));
    let u = |v: usize| {
        ok(
            u32::try_from(v).map_err(|_| ec::CudaError::Unsupported(format!("conv size {v}"))),
            "conv",
        )
    };
    let eg = ec::ConvGeom {
        n: u(g.n),
        c: u(g.c),
        h: u(g.h),
        w: u(g.w),
        o: u(g.o),
        kh: u(g.kh),
        kw: u(g.kw),
        ho: u(g.ho),
        wo: u(g.wo),
        sh: u(g.spec.stride[0]),
        sw: u(g.spec.stride[1]),
        ph: u(g.spec.padding[0]),
        pw: u(g.spec.padding[1]),
        dh: u(g.spec.dilation[0]),
        dw: u(g.spec.dilation[1]),
        groups: u(g.spec.groups),
    };
    let shape = match op {
        ConvOp::Forward => [g.n, g.o, g.ho, g.wo],
        ConvOp::InputGrad => [g.n, g.c, g.h, g.w],
        ConvOp::WeightGrad => [g.o, g.cg(), g.kh, g.kw],
    };
    Some(wrap(ok(x.conv(&y, &eg, op), "conv"), &shape))
}

/// A random draw on GPU `ordinal` with the numbers `rng` would give on the CPU; advances `rng`
/// exactly as the CPU draw does.
pub(crate) fn random_on(
    rng: &mut Rng,
    shape: &[usize],
    dtype: DType,
    kind: ec::Random,
    ordinal: usize,
) -> Result<Tensor, ec::CudaError> {
    let gpu = ec::gpu(ordinal)?;
    let [seed, stream, counter] = rng.state();
    let (b, after) = ec::DeviceBuffer::random(
        &gpu,
        ec_dtype(dtype),
        numel(shape),
        kind,
        ec::PhiloxState::new(seed, stream, counter),
    )?;
    *rng = Rng::from_state([after.seed, after.stream, after.counter]);
    Ok(wrap(b, shape))
}

impl Tensor {
    /// A copy on `device`, or why that device cannot be used (no driver, no such GPU).
    pub fn try_to_device(&self, device: Device) -> Result<Tensor, CudaError> {
        match device {
            Device::Cpu => Ok(self.to_cpu()),
            Device::Cuda(i) => to_gpu(self, i),
        }
    }

    /// The device buffer of a GPU tensor (`None` on the CPU), for kernels outside this crate
    /// (the fused samplers of `ebm-cuda`).
    pub fn device_buffer(&self) -> Option<&DeviceBuffer> {
        device_buffer(self)
    }

    /// Wraps a device buffer holding `numel(shape)` elements as a tensor.
    pub fn from_device_buffer(buffer: DeviceBuffer, shape: &[usize]) -> Tensor {
        assert_eq!(
            buffer.len(),
            numel(shape),
            "from_device_buffer: {} elements cannot have shape {shape:?}",
            buffer.len()
        );
        wrap(buffer, shape)
    }
}

/// Whether GPU `ordinal` can be used here; `Err` says why not (for skip messages).
pub fn available(ordinal: usize) -> Result<(), CudaError> {
    ec::gpu(ordinal).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_to_a_missing_gpu_is_an_error() {
        let t = Tensor::arange(4, DType::F32);
        match available(0) {
            Ok(()) => {
                let g = t.try_to_device(Device::Cuda(0)).unwrap();
                assert_eq!(g.device(), Device::Cuda(0));
                assert_eq!(g.to_vec_f64(), t.to_vec_f64());
            }
            Err(e) => {
                eprintln!("SKIP the GPU half of this test: {e}");
                let err = t.try_to_device(Device::Cuda(0)).unwrap_err();
                assert!(err.to_string().starts_with("no CUDA"), "{err}");
                // the CPU path is untouched: ops on CPU tensors never ask for a GPU
                assert_eq!(t.add(&t).to_vec_f64(), vec![0.0, 2.0, 4.0, 6.0]);
            }
        }
    }
}
