//! What a run says while it trains: a progress bar on a terminal or plain lines otherwise,
//! and the metrics file (`metrics.jsonl`, one JSON object a line).

use crate::error::Error;
use crate::heldout::Figure;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Progress output: a bar on a terminal, plain lines otherwise.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    every: u64,
}

impl Progress {
    /// Progress of a run of `steps` steps starting at `start` (nothing but errors when
    /// `quiet`).
    pub(crate) fn new(steps: u64, start: u64, quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let pb = indicatif::ProgressBar::new(steps);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
                )
                .expect("a valid template"),
            );
            pb.set_position(start);
            pb
        });
        Progress {
            bar,
            quiet,
            every: (steps / 10).max(1),
        }
    }

    /// A line for the user (above the bar on a terminal).
    pub(crate) fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(pb) => pb.suspend(|| crate::console::out(line)),
            None => crate::console::out(line),
        }
    }

    /// A warning on stderr (above the bar on a terminal).
    pub(crate) fn warn(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(pb) => pb.suspend(|| crate::console::err(line)),
            None => crate::console::err(line),
        }
    }

    /// The bar's state, or a line every tenth of the run.
    pub(crate) fn update(
        &self,
        step: u64,
        total: u64,
        loss: f64,
        lr: f64,
        rate: f64,
        val: Option<(Figure, f64)>,
    ) {
        let nll_s = val
            .map(|(f, v)| match f {
                Figure::Nll => format!("  val NLL {v:.3} nats"),
                Figure::Loss => format!("  val loss {v:.4}"),
            })
            .unwrap_or_default();
        match &self.bar {
            Some(pb) => {
                pb.set_position(step);
                pb.set_message(format!("{rate:.0} steps/s  loss {loss:.4}{nll_s}"));
            }
            None => {
                if !self.quiet && (step.is_multiple_of(self.every) || step == total) {
                    crate::console::out(&format!(
                        "step {step:>6}/{total}  loss {loss:>10.4}  lr {lr:.2e}  {rate:>6.0} steps/s{nll_s}"
                    ));
                }
            }
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

/// Appends lines to metrics.jsonl.
pub(crate) struct Metrics {
    path: PathBuf,
}

impl Metrics {
    /// Opens the metrics of a run, dropping lines after `step` (a resumed or rolled-back run
    /// writes them again).
    pub(crate) fn open(dir: &Path, keep_until: Option<u64>) -> Result<Metrics, Error> {
        let path = dir.join("metrics.jsonl");
        let kept: String = match keep_until {
            None => String::new(),
            Some(s) => std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|x| x.as_u64()))
                        .is_some_and(|k| k <= s)
                })
                .map(|l| format!("{l}\n"))
                .collect(),
        };
        crate::io::write_atomic(&path, kept.as_bytes())?;
        Ok(Metrics { path })
    }

    /// Appends one line.
    pub(crate) fn push(&self, v: serde_json::Value) -> Result<(), Error> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(format!("cannot append to {}: {e}", self.path.display())))?;
        writeln!(f, "{v}")
            .map_err(|e| Error::io(format!("cannot append to {}: {e}", self.path.display())))
    }
}
