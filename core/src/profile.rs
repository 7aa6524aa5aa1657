//! Where the time goes: per-kind op timers, off by default (one thread-local read per op).
//!
//! `let (out, prof) = profile(|| step());` runs `step` with timers on for this thread and
//! returns the time spent in matmul, element-wise, reduction and layout kernels, and per
//! op and operand shapes ([`Profile::ops`]: "which 17 matmuls and 18 SiLU passes a step is").

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The families of kernels timed separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Matrix products.
    Matmul = 0,
    /// Element-wise maps and broadcasting binary ops.
    Elementwise = 1,
    /// Reductions over axes.
    Reduce = 2,
    /// Copies that move elements: transposes, broadcasts, gathers, concatenations.
    Layout = 3,
}

const KINDS: usize = 4;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static NANOS: Cell<[u64; KINDS]> = const { Cell::new([0; KINDS]) };
    static CALLS: Cell<[u64; KINDS]> = const { Cell::new([0; KINDS]) };
    static OPS: RefCell<HashMap<String, OpStat>> = RefCell::new(HashMap::new());
}

/// Calls and time of one op at one set of operand shapes, e.g. `matmul [1024, 128]ᵀ·[1024, 2]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpStat {
    /// The op and its operand shapes.
    pub label: String,
    /// How many times it ran.
    pub calls: u64,
    /// Time spent in it, in nanoseconds.
    pub nanos: u64,
    /// Floating-point operations done (products: 2·m·k·n per call; 0 where not counted).
    pub flops: u64,
}

/// Time and call counts per op kind, accumulated while profiling was on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// Nanoseconds per [`OpKind`] (indexed by its discriminant).
    pub nanos: [u64; KINDS],
    /// Calls per [`OpKind`].
    pub calls: [u64; KINDS],
    /// Wall-clock time of the profiled closure.
    pub wall: Duration,
    /// Per op label (op and operand shapes), most time first.
    pub ops: Vec<OpStat>,
}

impl Profile {
    /// Time spent in ops of `kind`.
    pub fn time(&self, kind: OpKind) -> Duration {
        Duration::from_nanos(self.nanos[kind as usize])
    }
    /// Calls of ops of `kind`.
    pub fn calls(&self, kind: OpKind) -> u64 {
        self.calls[kind as usize]
    }
    /// Floating-point operations of the matrix products (2·m·k·n each).
    pub fn matmul_flops(&self) -> u64 {
        self.ops.iter().map(|o| o.flops).sum()
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
    let ops0 = OPS.with(|o| std::mem::take(&mut *o.borrow_mut()));
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
    // this run's ops; an enclosing profile() gets its own back, with these added
    let mine = OPS.with(|o| std::mem::replace(&mut *o.borrow_mut(), ops0));
    if was {
        OPS.with(|o| {
            let mut outer = o.borrow_mut();
            for (k, v) in &mine {
                let e = outer.entry(k.clone()).or_default();
                e.calls += v.calls;
                e.nanos += v.nanos;
                e.flops += v.flops;
            }
        });
    }
    p.ops = mine
        .into_iter()
        .map(|(label, v)| OpStat { label, ..v })
        .collect();
    p.ops
        .sort_by(|a, b| b.nanos.cmp(&a.nanos).then(a.label.cmp(&b.label)));
    (r, p)
}

/// Times `f` under `kind` when profiling is on.
#[inline]
pub(crate) fn timed<R>(kind: OpKind, f: impl FnOnce() -> R) -> R {
    timed_op(kind, || format!("{kind:?}"), f)
}

/// Times `f` under `kind` and under the op label `label()` (built only when profiling is on).
#[inline]
pub(crate) fn timed_op<R>(
    kind: OpKind,
    label: impl FnOnce() -> String,
    f: impl FnOnce() -> R,
) -> R {
    timed_op_flops(kind, label, 0, f)
}

/// [`timed_op`] for an op that does `flops` floating-point operations.
pub(crate) fn timed_op_flops<R>(
    kind: OpKind,
    label: impl FnOnce() -> String,
    flops: u64,
    f: impl FnOnce() -> R,
) -> R {
    if !ENABLED.with(|e| e.get()) {
        return f();
    }
    let t0 = Instant::now();
    let r = f();
    let dt = t0.elapsed().as_nanos() as u64;
    OPS.with(|o| {
        let mut o = o.borrow_mut();
        let e = o.entry(label()).or_default();
        e.calls += 1;
        e.nanos += dt;
        e.flops += flops;
    });
    account(kind, dt);
    r
}

fn account(kind: OpKind, dt: u64) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Tensor};

    #[test]
    fn ops_are_counted_by_label_and_nest() {
        let a = Tensor::ones(&[8, 3], DType::F32);
        let (_, outer) = profile(|| {
            let _ = a.matmul_t(&a, true, false);
            let (_, inner) = profile(|| {
                let _ = a.matmul_t(&a, true, false);
                let _ = a.exp();
            });
            assert_eq!(inner.ops.len(), 2);
            let mm = inner
                .ops
                .iter()
                .find(|o| o.label.starts_with("matmul"))
                .unwrap();
            assert_eq!((mm.label.as_str(), mm.calls), ("matmul [8, 3]ᵀ·[8, 3]", 1));
        });
        let mm = outer
            .ops
            .iter()
            .find(|o| o.label.starts_with("matmul"))
            .unwrap();
        assert_eq!(
            mm.calls, 2,
            "the inner profile's ops count in the outer one too"
        );
        assert_eq!(outer.calls(OpKind::Matmul), 2);
        assert!(outer
            .ops
            .iter()
            .any(|o| o.label == "Exp [8, 3]" && o.calls == 1));
        // off: nothing recorded
        let _ = a.exp();
        assert!(OPS.with(|o| o.borrow().is_empty()));
    }
}
