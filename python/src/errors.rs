//! From Rust failures to Python exceptions: the `ebm` command's errors by kind, panics caught at
//! the boundary, and Python errors raised inside a Rust callback carried back out.

use pyo3::exceptions::{
    PyFileNotFoundError, PyFloatingPointError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

pyo3::create_exception!(
    ebm,
    GradcheckError,
    PyRuntimeError,
    "A derivative disagreed with its finite difference (gradcheck, gradgradcheck)."
);

thread_local! {
    /// Set while a call runs under [`guard`]: its panics become exceptions, so the default
    /// hook's stderr report is left out.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// A Python exception raised inside a callback (an energy, a checked function), waiting to
    /// be re-raised once the Rust code it unwound through has been left.
    static PENDING: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Keeps the default panic report for panics outside [`guard`] and silences it inside (the
/// message travels in the exception instead).
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if GUARDED.with(Cell::get) == 0 {
            default(info);
        }
    }));
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a Rust panic without a message".to_string()
    }
}

/// What a panic under [`guard`] becomes: `ValueError` for the argument errors that ops report by
/// panicking (shapes, dtypes, constants given to `grad`), `RuntimeError` for anything else.
#[derive(Clone, Copy)]
pub enum PanicAs {
    /// Raised as `ValueError`.
    Value,
    /// Raised as `RuntimeError`.
    Runtime,
}

/// Runs `f`, turning a panic into a Python exception (or re-raising the Python exception a
/// callback inside `f` stored with [`unwind_with`]).
pub fn guard<R>(kind: PanicAs, f: impl FnOnce() -> PyResult<R>) -> PyResult<R> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let out = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    match out {
        Ok(r) => r,
        Err(payload) => {
            if let Some(e) = PENDING.with(|p| p.borrow_mut().take()) {
                return Err(e);
            }
            let msg = panic_message(payload.as_ref());
            Err(match kind {
                PanicAs::Value => PyValueError::new_err(msg),
                PanicAs::Runtime => PyRuntimeError::new_err(msg),
            })
        }
    }
}

/// Leaves the Rust code a callback was called from, carrying `e` to the nearest [`guard`]
/// (which raises it): callbacks of the library return values, not `Result`s.
pub fn unwind_with(e: PyErr) -> ! {
    PENDING.with(|p| *p.borrow_mut() = Some(e));
    std::panic::resume_unwind(Box::new("a Python exception inside a callback"))
}

/// The `ebm` command's error as the Python exception of its kind, with the same message: a bad
/// flag or value is a `ValueError` (a missing input file a `FileNotFoundError`), an unusable
/// data file or checkpoint a `ValueError`, a failed read or write an `OSError`, a run directory
/// in use a `BlockingIOError`-like `OSError`, divergence a `FloatingPointError`, a lost rank of
/// a data-parallel run a `RuntimeError`.
pub fn to_py(e: ebm::error::Error) -> PyErr {
    use ebm::error::Error;
    let msg = e.to_string();
    match e {
        Error::Usage(_) | Error::Data(_) | Error::Checkpoint(_) if is_missing_file(&msg) => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Usage(_) | Error::Data(_) | Error::Checkpoint(_) => PyValueError::new_err(msg),
        Error::Io(_) | Error::Busy(_) => PyOSError::new_err(msg),
        Error::Diverged(_) => PyFloatingPointError::new_err(msg),
        Error::Lost(_) => PyRuntimeError::new_err(msg),
    }
}

/// Whether a message says that an input file or directory does not exist.
fn is_missing_file(msg: &str) -> bool {
    let m = msg.to_lowercase();
    m.contains("no such file") || m.contains("not found") || m.contains("does not exist")
}

/// Panics with `message` inside [`guard`] (tests: a panic must reach Python as RuntimeError).
#[pyfunction]
pub fn _panic_for_tests(message: &str) -> PyResult<()> {
    guard(PanicAs::Runtime, || -> PyResult<()> { panic!("{message}") })
}
