//! MPI through rsmpi: the world communicator of the job `mpirun`/`srun` started.
//!
//! Every collective is posted as a non-blocking MPI operation (MPI_Iallreduce, MPI_Ibcast,
//! MPI_Ibarrier) and polled against a deadline, so a rank that died or hung makes the others
//! fail with [`CommError::Lost`] instead of blocking forever. The buffers MPI works on are
//! this module's own heap copies: when a collective times out they are leaked, never freed
//! while MPI may still write into them, and the process is expected to exit.
//!
//! Naming the lost ranks: after the deadline every live rank announces itself to every other
//! (a point-to-point message) and listens for the same length of time; the ranks it did not
//! hear from are the lost ones. A live rank that reached the collective later than this one
//! (by less than the timeout) reaches its own deadline, and announces itself, within the
//! listening window.

use crate::{CommError, Communicator};
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
    /// forgotten (its buffers are leaked by the caller) and the lost ranks are named.
    fn complete<D: ?Sized>(
        &self,
        mut req: Request<'static, D, StaticScope>,
        op: &'static str,
    ) -> Result<(), CommError> {
        let t0 = Instant::now();
        let wait = self.timeout.get() / 2;
        let mut polls = 0u32;
        loop {
            match req.test() {
                Ok(_) => return Ok(()),
                Err(r) => req = r,
            }
            if t0.elapsed() >= wait {
                // never completed: MPI may still write into the (leaked) buffers
                std::mem::forget(req);
                self.failed.set(true);
                return Err(CommError::Lost {
                    op,
                    ranks: self.roll_call(),
                    waited: t0.elapsed() + wait,
                });
            }
            polls += 1;
            backoff(polls);
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
        let mut polls = 0u32;
        while !pending.is_empty() && t0.elapsed() < self.timeout.get() / 2 {
            pending = pending
                .into_iter()
                .filter_map(|(r, req)| req.test().err().map(|req| (r, req)))
                .collect();
            polls += 1;
            backoff(polls);
        }
        pending
            .into_iter()
            .map(|(r, req)| {
                std::mem::forget(req);
                r
            })
            .collect()
    }

    fn all_reduce_sum<T: Equivalence + Copy + Default + 'static>(
        &self,
        buf: &mut [T],
    ) -> Result<(), CommError> {
        self.check_usable("all-reduce")?;
        if self.size == 1 || buf.is_empty() {
            return Ok(());
        }
        let send: &'static [T] = Box::leak(buf.to_vec().into_boxed_slice());
        let recv_ptr: *mut [T] = Box::into_raw(vec![T::default(); buf.len()].into_boxed_slice());
        // SAFETY: `recv_ptr` comes from a live Box that nothing else references; the
        // reference is handed to MPI for as long as the request lives.
        let recv: &'static mut [T] = unsafe { &mut *recv_ptr };
        let req = self.world.immediate_all_reduce_into(
            StaticScope,
            send,
            recv,
            mpi::collective::SystemOperation::sum(),
        );
        self.complete(req, "all-reduce")?;
        // SAFETY: the request completed and was consumed: MPI no longer touches either
        // buffer, and the references given to it are not used again, so the boxes leaked
        // above can be taken back and freed.
        let (send, recv) = unsafe {
            (
                Box::from_raw(send as *const [T] as *mut [T]),
                Box::from_raw(recv_ptr),
            )
        };
        drop(send);
        buf.copy_from_slice(&recv);
        Ok(())
    }

    /// Broadcasts a fixed-length buffer from `root`.
    fn broadcast<T: Equivalence + Copy + 'static>(
        &self,
        root: usize,
        buf: &mut [T],
    ) -> Result<(), CommError> {
        if buf.is_empty() {
            return Ok(());
        }
        let ptr: *mut [T] = Box::into_raw(buf.to_vec().into_boxed_slice());
        // SAFETY: `ptr` comes from a live Box that nothing else references.
        let leaked: &'static mut [T] = unsafe { &mut *ptr };
        let req = self
            .world
            .process_at_rank(root as i32)
            .immediate_broadcast_into(StaticScope, leaked);
        self.complete(req, "broadcast")?;
        // SAFETY: the request completed and was consumed; MPI no longer touches the buffer.
        let back = unsafe { Box::from_raw(ptr) };
        buf.copy_from_slice(&back);
        Ok(())
    }
}

/// Waits between polls: a yield for the first hundred (a collective between busy ranks
/// completes within microseconds), then sleeps of 50 µs, so a waiting rank leaves the
/// cores to the ranks still computing.
fn backoff(polls: u32) {
    if polls < 100 {
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
        self.check_usable("broadcast")?;
        assert!(
            root < self.size,
            "broadcast from rank {root} of {}",
            self.size
        );
        if self.size == 1 {
            return Ok(());
        }
        let mut len = [bytes.len() as u64];
        self.broadcast(root, &mut len)?;
        bytes.resize(len[0] as usize, 0);
        self.broadcast(root, bytes)
    }
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout.get())
    }
    fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(timeout);
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.check_usable("barrier")?;
        if self.size == 1 {
            return Ok(());
        }
        let req = self.world.immediate_barrier();
        self.complete(req, "barrier")
    }
}
