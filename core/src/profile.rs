//! Where the time goes: per-kind op timers, off by default (one thread-local read per op).
//!
//! `let (out, prof) = profile(|| step());` runs `step` with timers on for this thread and
//! returns the time spent in matmul, element-wise, reduction and layout kernels.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The families of kernels timed separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Matmul = 0,
    Elementwise = 1,
    Reduce = 2,
    Layout = 3,
}

const KINDS: usize = 4;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static NANOS: Cell<[u64; KINDS]> = const { Cell::new([0; KINDS]) };
    static CALLS: Cell<[u64; KINDS]> = const { Cell::new([0; KINDS]) };
}

/// Time and call counts per op kind, accumulated while profiling was on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Profile {
    pub nanos: [u64; KINDS],
    pub calls: [u64; KINDS],
    pub wall: Duration,
}

impl Profile {
    pub fn time(&self, kind: OpKind) -> Duration {
        Duration::from_nanos(self.nanos[kind as usize])
    }
    pub fn calls(&self, kind: OpKind) -> u64 {
        self.calls[kind as usize]
    }
    /// Fraction of wall time spent outside matmul kernels.
    pub fn share_outside_matmul(&self) -> f64 {
        1.0 - self.time(OpKind::Matmul).as_secs_f64() / self.wall.as_secs_f64().max(1e-12)
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wall = self.wall.as_secs_f64().max(1e-12);
        let names = ["matmul", "elementwise", "reduce", "layout"];
        let mut accounted = 0.0;
        for (i, n) in names.iter().enumerate() {
            let t = self.nanos[i] as f64 * 1e-9;
            accounted += t;
            write!(
                f,
                "{n}: {:.1}% ({} calls) ",
                100.0 * t / wall,
                self.calls[i]
            )?;
        }
        write!(
            f,
            "other (tape, allocation, glue): {:.1}%",
            100.0 * (1.0 - accounted / wall)
        )
    }
}

/// Runs `f` with the op timers on (this thread only) and returns its result and the profile.
pub fn profile<R>(f: impl FnOnce() -> R) -> (R, Profile) {
    let was = ENABLED.with(|e| e.replace(true));
    let n0 = NANOS.with(|n| n.get());
    let c0 = CALLS.with(|c| c.get());
    let t0 = Instant::now();
    let r = f();
    let wall = t0.elapsed();
    ENABLED.with(|e| e.set(was));
    let (n1, c1) = (NANOS.with(|n| n.get()), CALLS.with(|c| c.get()));
    let mut p = Profile {
        wall,
        ..Profile::default()
    };
    for i in 0..KINDS {
        p.nanos[i] = n1[i] - n0[i];
        p.calls[i] = c1[i] - c0[i];
    }
    (r, p)
}

/// Times `f` under `kind` when profiling is on.
#[inline]
pub(crate) fn timed<R>(kind: OpKind, f: impl FnOnce() -> R) -> R {
    if !ENABLED.with(|e| e.get()) {
        return f();
    }
    let t0 = Instant::now();
    let r = f();
    let dt = t0.elapsed().as_nanos() as u64;
    NANOS.with(|n| {
        let mut v = n.get();
        v[kind as usize] += dt;
        n.set(v)
    });
    CALLS.with(|c| {
        let mut v = c.get();
        v[kind as usize] += 1;
        c.set(v)
    });
    r
}
