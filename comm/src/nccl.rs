//! NCCL through cudarc: the collectives between GPUs that PyTorch DDP and JAX use.
//!
//! NCCL is loaded at run time like NVRTC (cudarc's dynamic loading: `libnccl.so` on
//! `LD_LIBRARY_PATH`, e.g. from PyPI's `nvidia-nccl-cu13` wheel with a `libnccl.so` link to
//! its `libnccl.so.2`), so this builds with no CUDA present. The ranks find each other
//! through a bootstrap communicator (MPI, as Horovod does): rank 0 makes NCCL's unique id
//! and broadcasts it. Host buffers are copied to the rank's GPU, reduced there and copied
//! back; a model whose gradients live on the GPU would hand NCCL its device buffers instead.
//! NCCL collectives have no timeout here: a lost rank is detected by the bootstrap's
//! launcher.

use crate::{CommError, Communicator};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use cudarc::nccl::safe::{Comm, Id, ReduceOp};
use std::sync::Arc;

/// One rank of an NCCL clique, on one GPU.
pub struct NcclCommunicator {
    comm: Comm,
    stream: Arc<CudaStream>,
    rank: usize,
    size: usize,
}

fn engine_error(what: &str, e: impl std::fmt::Debug) -> CommError {
    CommError::Engine(format!("NCCL: {what}: {e:?}"))
}

impl NcclCommunicator {
    /// Joins the clique of `bootstrap`'s ranks on GPU `ordinal` (rank r usually takes GPU
    /// r mod the GPUs per machine). An error, not a panic, when there is no CUDA driver or
    /// no NCCL library.
    pub fn new(
        bootstrap: &dyn Communicator,
        ordinal: usize,
    ) -> Result<NcclCommunicator, CommError> {
        // SAFETY: these only try to dlopen the libraries and report whether it worked.
        let present = unsafe {
            cudarc::driver::sys::is_culib_present() && cudarc::nccl::sys::is_culib_present()
        };
        if !present {
            return Err(CommError::Engine(
                "NCCL needs a CUDA driver and libnccl.so on LD_LIBRARY_PATH".into(),
            ));
        }
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| CommError::Engine(format!("no GPU {ordinal}")))?
            .map_err(|e| engine_error("context", e))?;
        let stream = ctx.default_stream();
        let mut id_bytes = if bootstrap.rank() == 0 {
            let id = Id::new().map_err(|e| engine_error("unique id", e))?;
            id.internal().iter().map(|&c| c as u8).collect()
        } else {
            Vec::new()
        };
        bootstrap.broadcast_bytes(0, &mut id_bytes)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        if id_bytes.len() != internal.len() {
            return Err(CommError::Engine(format!(
                "NCCL unique id of {} bytes from rank 0",
                id_bytes.len()
            )));
        }
        for (c, b) in internal.iter_mut().zip(&id_bytes) {
            *c = *b as std::ffi::c_char;
        }
        let (rank, size) = (bootstrap.rank(), bootstrap.size());
        let comm = Comm::from_rank(stream.clone(), rank, size, Id::uninit(internal))
            .map_err(|e| engine_error("init", e))?;
        Ok(NcclCommunicator {
            comm,
            stream,
            rank,
            size,
        })
    }

    fn all_reduce_sum<T>(&self, buf: &mut [T]) -> Result<(), CommError>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::safe::NcclType + Default + Copy,
    {
        self.on_gpu("all-reduce", buf, |comm, dev| {
            comm.all_reduce_in_place(dev, &ReduceOp::Sum).map(drop)
        })
    }

    fn broadcast<T>(&self, root: usize, buf: &mut [T]) -> Result<(), CommError>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::safe::NcclType + Default + Copy,
    {
        self.on_gpu("broadcast", buf, |comm, dev| {
            comm.broadcast_in_place(dev, root as i32).map(drop)
        })
    }

    /// Copies `buf` to the GPU, runs the collective `what` on the copy and copies the result
    /// back (the host-buffer round trip every collective here makes).
    fn on_gpu<T, E: std::fmt::Debug>(
        &self,
        what: &str,
        buf: &mut [T],
        collective: impl FnOnce(&Comm, &mut CudaSlice<T>) -> Result<(), E>,
    ) -> Result<(), CommError>
    where
        T: cudarc::driver::DeviceRepr + Default + Copy,
    {
        if buf.is_empty() {
            return Ok(());
        }
        let mut dev = self
            .stream
            .clone_htod(&*buf)
            .map_err(|e| engine_error("copy to GPU", e))?;
        collective(&self.comm, &mut dev).map_err(|e| engine_error(what, e))?;
        self.stream
            .memcpy_dtoh(&dev, buf)
            .map_err(|e| engine_error("copy from GPU", e))?;
        self.stream
            .synchronize()
            .map_err(|e| engine_error("synchronize", e))
    }
}

impl Communicator for NcclCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn engine(&self) -> &'static str {
        "NCCL"
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<(), CommError> {
        self.all_reduce_sum(buf)
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<(), CommError> {
        self.all_reduce_sum(buf)
    }
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<(), CommError> {
        assert!(
            root < self.size,
            "broadcast from rank {root} of {}",
            self.size
        );
        let mut len = [bytes.len() as u64];
        self.broadcast(root, &mut len)?;
        bytes.resize(len[0] as usize, 0);
        self.broadcast(root, bytes)
    }
    fn barrier(&self) -> Result<(), CommError> {
        // an all-reduce completes on a rank only once every rank has joined it
        self.all_reduce_sum(&mut [0f32])
    }
}
