//! MPI through rsmpi: the world communicator of the job `mpirun`/`srun` started.
//!
//! Each collective starts with a non-blocking barrier (MPI_Ibarrier) polled against a
//! deadline, so a rank that died or hung makes the others fail with [`CommError::Lost`]
//! instead of blocking forever; once every rank has arrived, the collective itself is MPI's
//! blocking one (MPI_Allreduce, MPI_Bcast), which Open MPI runs with its tuned algorithms.
//! (Polling MPI_Iallreduce instead was 2–10× slower for messages of 256 KiB and more on
//! loopback: Open MPI's non-blocking collectives use plainer algorithms and advance only
//! inside MPI calls.) The barrier costs one small-message latency per collective.
//!
//! Naming the lost ranks: after the deadline every live rank announces itself to every other
//! (a point-to-point message) and listens for the same length of time; the ranks it did not
//! hear from are the lost ones. A live rank that reached the collective later than this one
//! (by less than the timeout) reaches its own deadline, and announces itself, within the
//! listening window.

use crate::{CommError, Communicator};
use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::request::{Request, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::Communicator as _;
use mpi::traits::*;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// The tag of the roll call after a timeout (collectives do not use tags).
const ROLL_CALL_TAG: i32 = 0x4c05;

/// The MPI world of this job.
pub struct MpiCommunicator {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    timeout: Cell<Duration>,
    /// Set once a collective has timed out: MPI's state is then undefined.
    failed: Cell<bool>,
    /// Dropped last (fields drop in order): MPI_Finalize.
    _universe: mpi::environment::Universe,
}

impl MpiCommunicator {
    /// Initialises MPI (once per process) and takes its world; each collective fails after
    /// waiting half of `timeout`, the roll call of the lost ranks takes the other half.
    pub fn init(timeout: Duration) -> Result<MpiCommunicator, CommError> {
        let universe = mpi::initialize().ok_or_else(|| {
            CommError::Engine("MPI is already initialised in this process".into())
        })?;
        let world = universe.world();
        Ok(MpiCommunicator {
            rank: world.rank() as usize,
            size: world.size() as usize,
            world,
            timeout: Cell::new(timeout),
            failed: Cell::new(false),
            _universe: universe,
        })
    }

    /// The MPI library's own version line (`MPI_Get_library_version`).
    pub fn library_version() -> String {
        mpi::environment::library_version().unwrap_or_else(|_| "unknown MPI".into())
    }

    fn check_usable(&self, op: &'static str) -> Result<(), CommError> {
        if self.failed.get() {
            return Err(CommError::Engine(format!(
                "{op} after an earlier collective failed"
            )));
        }
        Ok(())
    }

    /// Polls `req` until it completes or half the timeout passes; on timeout the request is
    /// forgotten (it holds no buffer of ours) and the lost ranks are named.
    fn complete<D: ?Sized>(
        &self,
        mut req: Request<'static, D, StaticScope>,
        op: &'static str,
    ) -> Result<(), CommError> {
        let t0 = Instant::now();
        let wait = self.timeout.get() / 2;
        loop {
            match req.test() {
                Ok(_) => return Ok(()),
                Err(r) => req = r,
            }
            if t0.elapsed() >= wait {
                // never completed: dropping it would abort the process
                std::mem::forget(req);
                self.failed.set(true);
                let ranks = self.roll_call();
                return Err(CommError::Lost {
                    op,
                    ranks,
                    waited: t0.elapsed(),
                });
            }
            backoff(t0);
        }
    }

    /// The ranks that do not answer within half the timeout, after this rank has announced
    /// itself to all.
    fn roll_call(&self) -> Vec<usize> {
        let me: &'static i32 = Box::leak(Box::new(self.rank as i32));
        let others: Vec<usize> = (0..self.size).filter(|&r| r != self.rank).collect();
        for &r in &others {
            let req = self
                .world
                .process_at_rank(r as i32)
                .immediate_send_with_tag(StaticScope, me, ROLL_CALL_TAG);
            // a send to a lost rank may never complete: the message buffer is leaked
            std::mem::forget(req);
        }
        let mut pending: Vec<(usize, Request<'static, i32, StaticScope>)> = others
            .iter()
            .map(|&r| {
                let slot: &'static mut i32 = Box::leak(Box::new(-1));
                let req = self
                    .world
                    .process_at_rank(r as i32)
                    .immediate_receive_into_with_tag(StaticScope, slot, ROLL_CALL_TAG);
                (r, req)
            })
            .collect();
        let t0 = Instant::now();
        while !pending.is_empty() && t0.elapsed() < self.timeout.get() / 2 {
            pending = pending
                .into_iter()
                .filter_map(|(r, req)| req.test().err().map(|req| (r, req)))
                .collect();
            backoff(t0);
        }
        pending
            .into_iter()
            .map(|(r, req)| {
                std::mem::forget(req);
                r
            })
            .collect()
    }

    /// Waits, at most half the timeout, until every rank has reached this collective.
    fn arrive(&self, op: &'static str) -> Result<(), CommError> {
        self.check_usable(op)?;
        self.complete(self.world.immediate_barrier(), op)
    }

    fn all_reduce_sum<T: Equivalence + Copy + Default>(
        &self,
        buf: &mut [T],
    ) -> Result<(), CommError> {
        if self.size == 1 || buf.is_empty() {
            return self.check_usable("all-reduce");
        }
        self.arrive("all-reduce")?;
        let mut sum = vec![T::default(); buf.len()];
        self.world
            .all_reduce_into(&*buf, &mut sum[..], SystemOperation::sum());
        buf.copy_from_slice(&sum);
        Ok(())
    }
}

/// Waits between polls of the barrier: yields for the first 200 µs (ranks in step arrive
/// within microseconds), then sleeps 50 µs at a time, so a rank that waits for one still
/// computing leaves the cores to it (spinning for longer made 2 ranks on 2 busy cores ~1.5×
/// slower).
fn backoff(since: Instant) {
    if since.elapsed() < Duration::from_micros(200) {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(50));
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn engine(&self) -> &'static str {
        "MPI"
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
        if self.size == 1 {
            return self.check_usable("broadcast");
        }
        self.arrive("broadcast")?;
        let from = self.world.process_at_rank(root as i32);
        let mut len = bytes.len() as u64;
        from.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        if len > 0 {
            from.broadcast_into(&mut bytes[..]);
        }
        Ok(())
    }
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout.get())
    }
    fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(timeout);
    }
    fn barrier(&self) -> Result<(), CommError> {
        if self.size == 1 {
            return self.check_usable("barrier");
        }
        self.arrive("barrier")
    }
}
