//! Output that a closed pipe cannot kill.
//!
//! `ebm train … | head -1` or `ebm eval RUN | head -3` close stdout early; Rust ignores
//! SIGPIPE, so the next write fails with EPIPE and `println!` panics. Every line the command
//! prints goes through here instead: a write that fails marks the stream closed, and that
//! line and all later ones are dropped quietly. Training goes on to its last checkpoint and
//! report; `ebm eval` still writes its `--out` file. A command whose reader left early exits
//! with the status it would have had (0 on success), as `ripgrep` and `git` do: the reader
//! took what it wanted, which is not an error.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_line(closed: &AtomicBool, mut w: impl Write, line: &str) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let ok = w
        .write_all(line.as_bytes())
        .and_then(|_| w.write_all(b"\n"))
        .and_then(|_| w.flush());
    if ok.is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Prints `line` and a newline on stdout; dropped once stdout is closed.
pub fn out(line: &str) {
    write_line(&STDOUT_CLOSED, std::io::stdout().lock(), line);
}

/// Prints `line` and a newline on stderr; dropped once stderr is closed.
pub fn err(line: &str) {
    write_line(&STDERR_CLOSED, std::io::stderr().lock(), line);
}

/// Whether a write to stdout has failed (its reader has gone).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}
