//! The `ebm` command: train, sample, evaluate and compare energy-based models, and reproduce
//! the review's claims.

mod args;
mod commands;

use args::{Cli, Cmd};
use clap::Parser;
use ebm::console::err as say_err;
use ebm::train;

// mimalloc, its memory in huge pages: 1–5% more training steps per second (ebm_core::host_alloc)
ebm_core::use_mimalloc!();

/// Ctrl-C during training: finish the step, save a checkpoint, exit 130; a second Ctrl-C exits
/// at once (checkpoints are written atomically, so the last one on disk is whole). Other
/// commands keep the default (their outputs are written atomically too).
fn catch_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        static PRESSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if PRESSED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // a second Ctrl-C: quit now; checkpoints are written atomically, so the last
            // one on disk is whole
            say_err("interrupted again: exiting without a final checkpoint");
            std::process::exit(130);
        }
        say_err(
            "interrupt: finishing this step and saving a checkpoint (Ctrl-C again to quit now)",
        );
        train::request_stop();
    });
}

fn main() {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Train(_) | Cmd::Compare(_)) {
        catch_ctrl_c();
    }
    let result = match cli.cmd {
        Cmd::Train(a) => commands::train_cmd(a),
        Cmd::Sample(a) => commands::sample_cmd(a),
        Cmd::Eval(a) => commands::eval_cmd(a),
        Cmd::Compare(a) => commands::compare_cmd(a),
        Cmd::Reproduce(a) => ebm::reproduce::command(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            say_err(&format!("error: {e}"));
            std::process::exit(e.exit_code());
        }
    }
}
