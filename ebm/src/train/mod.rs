//! The training loop behind `ebm train`: every objective through the one training step
//! ([`trainer`]), checkpoints that resume bit for bit, a divergence guard that rolls back,
//! held-out monitoring, metrics and progress ([`progress`]), and the final report.

pub mod distributed;
pub mod progress;
pub mod trainer;

pub use trainer::{build_objective, Trainer};

use crate::config::TrainConfig;
use crate::error::Error;
use crate::heldout::{self, Figure, Mark};
use ebm_comm::{Communicator, SingleProcess};
use ebm_nn::Checkpoint;
use progress::{Metrics, Progress};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The checkpoint file inside a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// Rollbacks the divergence guard allows before giving up.
pub const MAX_ROLLBACKS: usize = 5;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks a running training loop to stop at the end of its current step (Ctrl-C).
pub fn request_stop() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn stop_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How `ebm train` runs, beyond the configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// Extend a resumed run to this many steps.
    pub extend_steps: Option<u64>,
    /// Behave as if Ctrl-C was pressed before this step (tests).
    pub stop_at: Option<u64>,
    /// Make the loss of this step NaN once (tests of the divergence guard).
    pub poison_at: Option<u64>,
    /// Skip the final report (PNGs, eval.json, samples).
    pub no_report: bool,
    /// Model samples drawn for the final report (0: the default, 1000).
    pub eval_samples: usize,
    /// AIS temperatures of the final report's NLL when d > 2 (0: the default, 500).
    pub ais_temps: usize,
    /// AIS chains of the final report's NLL when d > 2 (0: the default, 256).
    pub ais_chains: usize,
    /// Print nothing but errors.
    pub quiet: bool,
    /// Lose a rank at a step (tests of a data-parallel run's timeout).
    pub fail_rank: Option<distributed::RankFailure>,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// Trained to the end (or stopped early), with the final report.
    Finished(Box<crate::report::Report>),
    /// Stopped by Ctrl-C (or `--stop-at`) after a checkpoint at `step`.
    Interrupted {
        /// The step of the checkpoint left behind.
        step: u64,
    },
}

/// A one-line description of the run: the network (an MLP's widths, or the conv energy's
/// / U-Net's image and stage widths), the objective, the optimizer and the budget.
pub fn describe(c: &TrainConfig, dim: usize) -> String {
    let join =
        |w: &mut dyn Iterator<Item = usize>| w.map(|w| w.to_string()).collect::<Vec<_>>().join("-");
    let kind = c.objective_info().model_kind;
    let net = match (c.arch, kind, crate::config::Arch::square_image(dim)) {
        (crate::config::Arch::Conv, k, Some([ch, h, w])) => {
            let what = match k {
                ebm_objectives::ModelKind::Energy => "conv energy",
                ebm_objectives::ModelKind::NoiseConditional(_) => "noise-conditional u-net",
            };
            let head = match (k, c.conv_head) {
                (ebm_objectives::ModelKind::Energy, ebm_nn::ConvHead::Flatten) => " (flatten head)",
                _ => "",
            };
            format!(
                "{ch}×{h}×{w} {} {} {what}{head}",
                join(&mut c.hidden.iter().copied()),
                c.activation
            )
        }
        (_, ebm_objectives::ModelKind::Energy, _) => format!(
            "{} {} mlp",
            join(
                &mut std::iter::once(dim)
                    .chain(c.hidden.iter().copied())
                    .chain([1])
            ),
            c.activation
        ),
        (_, ebm_objectives::ModelKind::NoiseConditional(_), _) => format!(
            "{} {} noise-conditional",
            join(
                &mut std::iter::once(dim)
                    .chain(c.hidden.iter().copied())
                    .chain([1])
            ),
            c.activation
        ),
    };
    format!(
        "{} on {}: {net}, {:?} lr {:.0e} {:?}, {} steps × batch {}, seed {}",
        c.objective,
        c.data.label(),
        c.optimizer,
        c.lr,
        c.schedule,
        c.steps,
        c.batch,
        c.seed
    )
    .to_lowercase()
}

/// What the run noticed on the way, for the final report.
#[derive(Clone, Debug, Default)]
pub struct RunNotes {
    /// The step the run (re)started at.
    pub start_step: u64,
    /// The step it trained to.
    pub end_step: u64,
    /// The held-out figure, when monitored.
    pub figure: Option<Figure>,
    /// Warnings given during training.
    pub warnings: Vec<String>,
    /// Whether `--early-stop` ended the run (the best checkpoint is then evaluated).
    pub early_stopped: bool,
}

/// Runs `ebm train`: a fresh run from `config`, or `opts.resume` the one in `opts.out`.
pub fn run(config: Option<TrainConfig>, opts: &RunOptions) -> Result<RunEnd, Error> {
    run_on(config, opts, &SingleProcess)
}

/// [`run`] as rank `comm.rank()` of a data-parallel run ([`distributed`]): every rank trains
/// its share of each minibatch and takes the same update; rank 0 alone opens the run
/// directory and writes metrics, checkpoints and the report, and its state is broadcast to
/// the others at start, at resume and at each rollback.
pub fn run_on(
    config: Option<TrainConfig>,
    opts: &RunOptions,
    comm: &dyn Communicator,
) -> Result<RunEnd, Error> {
    let timed = ebm_comm::Timed::new(comm);
    let comm: &dyn Communicator = &timed;
    let lead = comm.rank() == 0;
    let dir = &opts.out;
    let ckpt_path = dir.join(CHECKPOINT);
    let best_path = dir.join(heldout::BEST);
    let t0 = Instant::now();
    let (mut trainer, _lock, metrics) = distributed::start(config, opts, comm)?;
    let total = trainer.config.steps;
    let progress = Progress::new(total, trainer.step, opts.quiet || !lead);
    let mut notes = RunNotes {
        start_step: trainer.step,
        figure: Figure::of(&trainer.data, trainer.config.objective_info()),
        ..RunNotes::default()
    };
    progress.say(&format!(
        "{} {}\n  → {}{}\n  {}",
        if opts.resume && trainer.step > 0 {
            format!("resuming at step {}:", trainer.step)
        } else {
            "training".into()
        },
        describe(&trainer.config, trainer.data.dim),
        dir.display(),
        heldout::describe_split(&trainer, notes.figure),
        distributed::describe_ranks(&trainer, comm)
    ));
    let start_step = trainer.step;
    let mut last_val = None;
    let mut rollbacks = 0;
    let mut poisoned = false;
    let mut stop_early = false;
    let loop_t0 = Instant::now();
    let comm_t0 = timed.spent().0;
    let per_rank_state = comm.size() > 1 && !trainer.objective.state().is_empty();
    while trainer.step < total {
        // every rank stops at the same step: a Ctrl-C seen by one, or rank 0's early stop
        let local_stop = stop_requested() || opts.stop_at == Some(trainer.step);
        let agreed = comm.any(&[local_stop, stop_early])?;
        if agreed[1] {
            break;
        }
        if agreed[0] {
            progress.finish();
            if lead {
                let saved = match checked_save(&trainer, &ckpt_path) {
                    Ok(()) => format!("checkpoint at step {} saved", trainer.step),
                    Err(_) => "the last good checkpoint is kept".into(),
                };
                // the way back in is printed even with --quiet
                crate::console::err(&format!(
                    "interrupted at step {}: {saved} in {}; continue with `ebm train --resume {}`",
                    trainer.step,
                    ckpt_path.display(),
                    dir.display()
                ));
            }
            return Ok(RunEnd::Interrupted { step: trainer.step });
        }
        distributed::test_failure(opts, comm, trainer.step);
        let poison = opts.poison_at == Some(trainer.step + 1) && !poisoned;
        poisoned |= poison;
        let lr = trainer.lr();
        let loss = trainer.step_on(poison, comm)?;
        let step = trainer.step;
        let c = &trainer.config;
        let log_line = step.is_multiple_of(c.log_every) || step == total;
        let measure = notes.figure.is_some()
            && log_line
            && ((c.eval_every > 0 && step.is_multiple_of(c.eval_every)) || step == total);
        let saving = step.is_multiple_of(c.checkpoint_every) || step == total;
        let mut problem = (!loss.is_finite()).then(|| format!("loss is {loss}"));
        if problem.is_none() {
            problem = crate::guard::state_problem(&trainer);
        }
        let mcmc = c.objective_info().mcmc;
        if problem.is_none() && (step.is_multiple_of(10) || mcmc || saving || measure) {
            let x = trainer.data.batch(step, c.batch.min(256));
            problem = crate::guard::energy_problem(&trainer, &x);
        }
        // a problem on any rank rolls every rank back: only the objective's state (PCD's
        // chains) differs between ranks, the rest is the same everywhere
        let rollback = if per_rank_state {
            comm.any(&[problem.is_some()])?[0]
        } else {
            problem.is_some()
        };
        if rollback {
            let why = problem.unwrap_or_else(|| "a problem on another rank".into());
            let at = trainer.step + u64::from(!loss.is_finite());
            rollbacks += 1;
            if rollbacks > MAX_ROLLBACKS {
                progress.finish();
                return Err(Error::Diverged(format!(
                    "training diverged at step {at} ({why}) after {MAX_ROLLBACKS} rollbacks with lower learning rates; \
                     the last good checkpoint is {}; try a smaller --lr{}",
                    ckpt_path.display(),
                    crate::guard::scale_hint(&trainer.data)
                )));
            }
            let ckpt = distributed::load_shared(comm, &ckpt_path)?;
            // the scale compounds over rollbacks (the checkpoint holds the one before this)
            let scale = trainer.lr_scale * 0.5;
            trainer.restore(&ckpt, &ckpt_path)?;
            trainer.lr_scale = scale;
            if let Some(metrics) = &metrics {
                // make the lower rate durable: a resume from here keeps it
                save(&trainer, &ckpt_path)?;
                let _ = Metrics::open(dir, Some(trainer.step))?;
                metrics.push(serde_json::json!({
                    "step": trainer.step, "event": "rollback", "diverged_at": at, "reason": why,
                    "lr_scale": trainer.lr_scale,
                }))?;
            }
            progress.say(&format!(
                "divergence guard: {why} at step {at}; rolled back to the checkpoint at step {} and lowered the learning rate to {:.3e} (×{})",
                trainer.step,
                trainer.lr(),
                trainer.lr_scale
            ));
            continue;
        }
        trainer.window.0 += loss;
        trainer.window.1 += 1;
        if log_line {
            let mean = trainer.window.0 / trainer.window.1 as f64;
            trainer.window = (0.0, 0);
            if let Some(metrics) = &metrics {
                let mut line = serde_json::json!({
                    "step": step, "loss": mean, "lr": lr,
                    "elapsed_s": (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                });
                let mut event = None;
                if let (true, Some(fig)) = (measure, notes.figure) {
                    last_val = heldout::measure(&mut trainer, fig).map(|v| (fig, v));
                    if let Some((_, v)) = last_val {
                        line[fig.key()] = serde_json::json!(v);
                        let mark = Mark {
                            step,
                            value: v,
                            train_loss: mean,
                        };
                        let patience = trainer.config.early_stop;
                        let verdict = trainer.monitor.observe(fig, mark, patience);
                        if verdict.improved {
                            save(&trainer, &best_path)?;
                        }
                        if let Some(w) = verdict.warning {
                            let w = match trainer.data.train_rows() {
                                Some(n) => {
                                    format!("{w}: the model is overfitting its {n} training rows")
                                }
                                // fresh draws every step: the objective itself parts from the
                                // likelihood (score matching can sharpen or move mass it does
                                // not see)
                                None => format!(
                                    "{w}: the objective is improving at the likelihood's expense"
                                ),
                            };
                            let msg = format!(
                                "warning: {w}. The best checkpoint is kept in {} (`ebm eval {}`); --early-stop N ends such a run after N measurements without improvement",
                                best_path.display(),
                                best_path.display()
                            );
                            progress.warn(&msg);
                            event = Some(serde_json::json!({
                                "step": step, "event": "held_out_worse", "warning": w,
                            }));
                            notes.warnings.push(w);
                        }
                        if verdict.stop {
                            stop_early = true;
                            notes.early_stopped = true;
                            progress.say(&format!(
                                "early stop at step {step}: the {} has not improved in {} measurements",
                                fig.label(),
                                patience.unwrap_or(0)
                            ));
                        }
                    }
                }
                metrics.push(line)?;
                if let Some(e) = event {
                    metrics.push(e)?;
                }
                let rate = (step - start_step) as f64 / loop_t0.elapsed().as_secs_f64().max(1e-9);
                progress.update(step, total, mean, lr, rate, last_val);
            }
        }
        if lead && (saving || stop_early) {
            save(&trainer, &ckpt_path)?;
        }
    }
    progress.finish();
    if comm.size() > 1 && trainer.step > start_step {
        progress.say(&distributed::describe_overhead(
            timed.spent().0 - comm_t0,
            loop_t0.elapsed(),
            trainer.step - start_step,
        ));
    }
    let train_secs = t0.elapsed().as_secs_f64();
    notes.end_step = trainer.step;
    if opts.no_report || !lead {
        let mut r = crate::report::Report::empty(trainer.step, train_secs);
        r.train_steps = Some(notes.end_step - notes.start_step);
        return Ok(RunEnd::Finished(Box::new(r)));
    }
    if notes.early_stopped && best_path.exists() {
        let best =
            Checkpoint::load(&best_path).map_err(|e| Error::from_checkpoint(&best_path, e))?;
        trainer.restore(&best, &best_path)?;
        progress.say(&format!(
            "evaluating the best checkpoint (step {} of {})",
            trainer.step, notes.end_step
        ));
    }
    let report = crate::report::final_report(&trainer, dir, train_secs, opts, &notes)?;
    Ok(RunEnd::Finished(Box::new(report)))
}

/// Saves after checking the state and the energies (for a stop between steps).
fn checked_save(t: &Trainer, path: &Path) -> Result<(), Error> {
    let x = t.data.batch(t.step, t.config.batch.min(256));
    if let Some(why) = crate::guard::energy_problem(t, &x) {
        return Err(Error::Diverged(why));
    }
    save(t, path)
}

pub(crate) fn save(t: &Trainer, path: &Path) -> Result<(), Error> {
    t.checkpoint()?
        .save(path)
        .map_err(|e| Error::from_checkpoint(path, e))
}
