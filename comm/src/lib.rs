//! # ebm-comm: the communicator of data-parallel training
//!
//! Data-parallel training runs one process per rank; each computes the gradient of its share
//! of the global batch, the ranks add their gradients with one all-reduce per step, and every
//! rank takes the same optimizer step. This crate is the seam between that training step and
//! the engine that moves the bytes, with no transport of its own:
//!
//! | communicator | engine | feature |
//! | --- | --- | --- |
//! | [`SingleProcess`] | none: one rank, every operation is the identity | (default) |
//! | `MpiCommunicator` | MPI (Open MPI, MPICH) through the `mpi` crate (rsmpi) | `mpi` |
//! | `NcclCommunicator` | NCCL through cudarc, loaded at run time | `nccl` |
//!
//! The operations are the three data-parallel training needs (as in Horovod and PyTorch DDP):
//! an all-reduce of a flat buffer (sum or mean), a broadcast from one rank (the parameters at
//! start and resume, as checkpoint bytes), and a barrier. A collective that does not complete
//! within the communicator's timeout fails with [`CommError::Lost`], naming the ranks that
//! did not reach it, rather than hanging.

#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;

use std::fmt;
use std::time::Duration;

/// How an all-reduce combines the ranks' buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Element-wise sum over the ranks.
    Sum,
    /// Element-wise sum divided by the number of ranks.
    Mean,
}

/// Why a collective failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommError {
    /// Some ranks did not reach the collective within the timeout (dead, hung or too slow):
    /// the run cannot continue.
    Lost {
        /// The collective ("all-reduce", "broadcast", "barrier").
        op: &'static str,
        /// The ranks that did not answer, in order.
        ranks: Vec<usize>,
        /// How long this rank waited.
        waited: Duration,
    },
    /// The engine reported an error or could not start.
    Engine(String),
}

impl fmt::Display for CommError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommError::Lost { op, ranks, waited } => {
                let names: Vec<String> = ranks.iter().map(|r| r.to_string()).collect();
                let who = if ranks.len() == 1 {
                    format!("rank {} was", names[0])
                } else {
                    format!("ranks {} were", names.join(", "))
                };
                write!(
                    f,
                    "{who} lost: no answer at the {op} within {:.1} s",
                    waited.as_secs_f64()
                )
            }
            CommError::Engine(m) => write!(f, "communicator: {m}"),
        }
    }
}

impl std::error::Error for CommError {}

/// The ranks of one data-parallel run and the collectives between them. Every rank calls the
/// same collectives in the same order with buffers of the same length.
pub trait Communicator {
    /// This process's rank, 0 ..= size − 1.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// The engine, for messages ("single process", "MPI", "NCCL").
    fn engine(&self) -> &'static str;

    /// Replaces `buf` on every rank by the element-wise sum of all ranks' `buf`.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<(), CommError>;

    /// [`Communicator::all_reduce_sum_f32`] in f64.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<(), CommError>;

    /// Replaces `bytes` on every rank by rank `root`'s (any length: the other ranks' vectors
    /// are resized).
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<(), CommError>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<(), CommError>;

    /// How long a collective waits for the other ranks before failing (None: no timeout).
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// Changes [`Communicator::timeout`] (a no-op for communicators without one): a longer
    /// one while some rank is known to be busy for long, such as rank 0 opening a run.
    fn set_timeout(&self, timeout: Duration) {
        let _ = timeout;
    }

    /// The all-reduce of `buf` with `op`.
    fn all_reduce_f32(&self, buf: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.all_reduce_sum_f32(buf)?;
        if op == ReduceOp::Mean && self.size() > 1 {
            let n = self.size() as f32;
            buf.iter_mut().for_each(|v| *v /= n);
        }
        Ok(())
    }

    /// The all-reduce of `buf` with `op`, in f64.
    fn all_reduce_f64(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), CommError> {
        self.all_reduce_sum_f64(buf)?;
        if op == ReduceOp::Mean && self.size() > 1 {
            let n = self.size() as f64;
            buf.iter_mut().for_each(|v| *v /= n);
        }
        Ok(())
    }

    /// For each flag, whether any rank set it (one small all-reduce; none on one rank).
    fn any(&self, flags: &[bool]) -> Result<Vec<bool>, CommError> {
        if self.size() == 1 {
            return Ok(flags.to_vec());
        }
        let mut v: Vec<f32> = flags.iter().map(|&f| f32::from(u8::from(f))).collect();
        self.all_reduce_sum_f32(&mut v)?;
        Ok(v.iter().map(|&c| c > 0.0).collect())
    }
}

/// One process: rank 0 of 1. Every collective is the identity and cannot fail.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn engine(&self) -> &'static str {
        "single process"
    }
    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<(), CommError> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<(), CommError> {
        Ok(())
    }
    fn broadcast_bytes(&self, root: usize, _bytes: &mut Vec<u8>) -> Result<(), CommError> {
        assert_eq!(root, 0, "broadcast from rank {root} of a single process");
        Ok(())
    }
    fn barrier(&self) -> Result<(), CommError> {
        Ok(())
    }
}

/// A communicator that adds up the time spent in its collectives (waiting for the other
/// ranks included): the communication overhead of a run.
pub struct Timed<'a> {
    inner: &'a dyn Communicator,
    spent: std::cell::Cell<Duration>,
    calls: std::cell::Cell<u64>,
}

impl<'a> Timed<'a> {
    /// Times the collectives of `inner`.
    pub fn new(inner: &'a dyn Communicator) -> Timed<'a> {
        Timed {
            inner,
            spent: Default::default(),
            calls: Default::default(),
        }
    }

    /// The time spent in collectives so far, and their number.
    pub fn spent(&self) -> (Duration, u64) {
        (self.spent.get(), self.calls.get())
    }

    fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        let t0 = std::time::Instant::now();
        let r = f();
        self.spent.set(self.spent.get() + t0.elapsed());
        self.calls.set(self.calls.get() + 1);
        r
    }
}

impl Communicator for Timed<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<(), CommError> {
        self.time(|| self.inner.all_reduce_sum_f32(buf))
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<(), CommError> {
        self.time(|| self.inner.all_reduce_sum_f64(buf))
    }
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<(), CommError> {
        self.time(|| self.inner.broadcast_bytes(root, bytes))
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.time(|| self.inner.barrier())
    }
    fn timeout(&self) -> Option<Duration> {
        self.inner.timeout()
    }
    fn set_timeout(&self, timeout: Duration) {
        self.inner.set_timeout(timeout)
    }
}

/// Environment variables set by the launchers this crate recognises (Open MPI's `mpirun`,
/// PMIx, Hydra/MPICH and SLURM's `srun`): their presence means "launched as one of several
/// ranks".
pub const LAUNCHER_VARIABLES: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_SIZE",
    "SLURM_STEP_NUM_TASKS",
];

/// Whether an MPI launcher started this process (one of [`LAUNCHER_VARIABLES`] is set).
pub fn launched_by_mpi() -> bool {
    LAUNCHER_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// How many ranks the launcher put on this machine (Open MPI's and SLURM's local size;
/// 1 when unknown), to share its cores among them.
pub fn local_ranks() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "SLURM_NTASKS_PER_NODE",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse::<usize>().ok())
    .unwrap_or(1)
    .max(1)
}

/// The communicator this process was launched with: MPI when built with feature `mpi` and
/// started by an MPI launcher ([`launched_by_mpi`]), collectives failing after `timeout`;
/// otherwise [`SingleProcess`]. An error when a launcher started it but this build has no
/// MPI (N copies of a single-process run would each train alone).
pub fn from_environment(timeout: Duration) -> Result<Box<dyn Communicator>, CommError> {
    if !launched_by_mpi() {
        return Ok(Box::new(SingleProcess));
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Box::new(mpi::MpiCommunicator::init(timeout)?))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = timeout;
        let many = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.trim().parse::<usize>().ok())
            .is_none_or(|n| n > 1);
        if many {
            Err(CommError::Engine(
                "started by an MPI launcher, but this build has no MPI: rebuild with `--features mpi` (e.g. `cargo install --path ebm --features mpi`)".into(),
            ))
        } else {
            Ok(Box::new(SingleProcess))
        }
    }
}

/// Splits `items` consecutive items (row blocks) among `ranks` as evenly as possible, in
/// order: rank r owns items ⌊r·items/ranks⌋ .. ⌊(r+1)·items/ranks⌋. Ranks beyond the item
/// count own none.
pub fn owned_range(items: usize, rank: usize, ranks: usize) -> std::ops::Range<usize> {
    assert!(rank < ranks, "rank {rank} of {ranks}");
    let at = |r: usize| (r as u128 * items as u128 / ranks as u128) as usize;
    at(rank)..at(rank + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_process_is_the_identity() {
        let c = SingleProcess;
        assert_eq!((c.rank(), c.size()), (0, 1));
        let mut a = vec![1.5f32, -2.0, 3.25];
        c.all_reduce_f32(&mut a, ReduceOp::Sum).unwrap();
        assert_eq!(a, [1.5, -2.0, 3.25]);
        c.all_reduce_f32(&mut a, ReduceOp::Mean).unwrap();
        assert_eq!(a, [1.5, -2.0, 3.25]);
        let mut b = vec![0.1f64, 7.0];
        c.all_reduce_f64(&mut b, ReduceOp::Mean).unwrap();
        assert_eq!(b, [0.1, 7.0]);
        let mut bytes = b"state".to_vec();
        c.broadcast_bytes(0, &mut bytes).unwrap();
        assert_eq!(bytes, b"state");
        c.barrier().unwrap();
        assert_eq!(c.any(&[true, false]).unwrap(), [true, false]);
    }

    #[test]
    fn timed_counts_the_collectives() {
        let t = Timed::new(&SingleProcess);
        t.all_reduce_f32(&mut [1.0], ReduceOp::Sum).unwrap();
        t.barrier().unwrap();
        t.broadcast_bytes(0, &mut vec![1]).unwrap();
        assert_eq!(t.spent().1, 3);
        assert_eq!((t.rank(), t.size(), t.engine()), (0, 1, "single process"));
    }

    #[test]
    #[should_panic(expected = "broadcast from rank 1 of a single process")]
    fn a_single_process_has_no_rank_one() {
        SingleProcess.broadcast_bytes(1, &mut Vec::new()).unwrap();
    }

    /// The ranges tile 0..items in order, differ in length by at most one, and leave the
    /// ranks beyond the item count empty.
    #[test]
    fn owned_ranges_tile_the_items() {
        for items in 0..40 {
            for ranks in 1..12 {
                let rs: Vec<_> = (0..ranks).map(|r| owned_range(items, r, ranks)).collect();
                assert_eq!(rs[0].start, 0);
                assert_eq!(rs[ranks - 1].end, items);
                for w in rs.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let lens: Vec<usize> = rs.iter().map(|r| r.len()).collect();
                let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(hi - lo <= 1, "{items} over {ranks}: {lens:?}");
            }
        }
        assert_eq!(owned_range(3, 0, 2), 0..1);
        assert_eq!(owned_range(3, 1, 2), 1..3);
        assert_eq!(owned_range(1, 1, 4), 0..0);
    }

    #[test]
    fn a_lost_rank_is_named() {
        let e = CommError::Lost {
            op: "all-reduce",
            ranks: vec![1],
            waited: Duration::from_millis(5000),
        };
        assert_eq!(
            e.to_string(),
            "rank 1 was lost: no answer at the all-reduce within 5.0 s"
        );
        let e = CommError::Lost {
            op: "barrier",
            ranks: vec![0, 3],
            waited: Duration::from_secs(2),
        };
        assert!(e.to_string().starts_with("ranks 0, 3 were lost"), "{e}");
    }
}
