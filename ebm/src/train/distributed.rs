//! `ebm train` as one rank of a data-parallel run (`mpirun -np N ebm train …`): rank 0 opens
//! the run directory (fresh or resumed) and broadcasts its state as checkpoint bytes, so
//! every rank starts from the same parameters, optimizers and generator whatever the number
//! of ranks the checkpoint was written under; a rollback shares rank 0's checkpoint the same
//! way. Each rank then computes its rows of every minibatch
//! ([`ebm_objectives::shard_rows`]), and one all-reduce per step gives all the same update.

use super::progress::Metrics;
use super::{save, RunOptions, Trainer, CHECKPOINT};
use crate::config::TrainConfig;
use crate::error::Error;
use crate::rundir::{self, RunLock};
use ebm_comm::Communicator;
use ebm_nn::Checkpoint;
use std::path::Path;

/// A rank that fails on purpose, for tests of the collectives' timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankFailure {
    /// The rank that fails.
    pub rank: usize,
    /// Before this step.
    pub step: u64,
    /// Dies (aborts) rather than hangs.
    pub dies: bool,
}

impl RankFailure {
    /// Parses `RANK@STEP`.
    pub fn parse(s: &str, dies: bool) -> Option<RankFailure> {
        let (r, st) = s.split_once('@')?;
        Some(RankFailure {
            rank: r.trim().parse().ok()?,
            step: st.trim().parse().ok()?,
            dies,
        })
    }
}

/// The test hook of [`RunOptions::fail_rank`]: the chosen rank aborts or hangs before the
/// chosen step.
pub(crate) fn test_failure(opts: &RunOptions, comm: &dyn Communicator, step: u64) {
    let Some(f) = opts.fail_rank else { return };
    if f.rank != comm.rank() || f.step != step {
        return;
    }
    if f.dies {
        crate::console::err(&format!("rank {}: dying at step {step} (test)", f.rank));
        std::process::abort();
    }
    crate::console::err(&format!("rank {}: hanging at step {step} (test)", f.rank));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// The trainer of this rank, rank 0's lock on the run directory and its metrics file.
pub(crate) type Started = (Trainer, Option<RunLock>, Option<Metrics>);

/// Opens the run on rank 0 (a fresh run directory with its first checkpoint, or the
/// resumed one) and gives every other rank the same state through one broadcast. When rank
/// 0 fails the others stop too, pointing at its message.
pub(crate) fn start(
    config: Option<TrainConfig>,
    opts: &RunOptions,
    comm: &dyn Communicator,
) -> Result<Started, Error> {
    let ckpt_path = opts.out.join(CHECKPOINT);
    // rank 0 loads the data and writes the first checkpoint while the others wait
    let timeout = comm.timeout();
    if let Some(t) = timeout {
        comm.set_timeout(t.max(START_TIMEOUT));
    }
    let started = start_ranks(config, opts, comm, &ckpt_path);
    if let Some(t) = timeout {
        comm.set_timeout(t);
    }
    let (mut trainer, lock, metrics) = started?;
    fit_blocks(&mut trainer, comm.size());
    Ok((trainer, lock, metrics))
}

/// Gives every rank work: when a minibatch has fewer row blocks than there are ranks (a batch
/// of 256 is two blocks of 128), blocks of ⌈B/N⌉ rows. The run then makes the draws of one
/// process with that block size (`TrainStep::block_rows`) rather than the default's; with
/// enough blocks the layout, and so the run, is that of one process whatever N.
fn fit_blocks(t: &mut Trainer, ranks: usize) {
    let b = t.config.batch;
    let o = t.objective.as_ref();
    if ranks > 1 && ebm_objectives::shard_capacity(o, t.train_step.block_rows, b) < ranks {
        t.train_step.block_rows = b.div_ceil(ranks).max(1);
    }
}

/// The least time the ranks wait for rank 0 to open the run.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

fn start_ranks(
    config: Option<TrainConfig>,
    opts: &RunOptions,
    comm: &dyn Communicator,
    ckpt_path: &Path,
) -> Result<Started, Error> {
    if comm.rank() == 0 {
        let opened = open_lead(config, opts).and_then(|(t, lock, m)| {
            let bytes = if comm.size() > 1 {
                t.checkpoint()?
                    .to_bytes()
                    .map_err(|e| Error::from_checkpoint(ckpt_path, e))?
            } else {
                Vec::new()
            };
            Ok(((t, Some(lock), Some(m)), bytes))
        });
        if comm.size() > 1 {
            // an empty message tells the other ranks that rank 0 could not start
            let mut bytes = opened.as_ref().map_or(Vec::new(), |(_, b)| b.clone());
            comm.broadcast_bytes(0, &mut bytes)?;
        }
        return opened.map(|(started, _)| started);
    }
    let mut bytes = Vec::new();
    comm.broadcast_bytes(0, &mut bytes)?;
    if bytes.is_empty() {
        return Err(Error::usage(
            "rank 0 could not start the run (its error is printed above)",
        ));
    }
    let ckpt = Checkpoint::from_bytes(&bytes).map_err(|e| Error::from_checkpoint(ckpt_path, e))?;
    let trainer = rundir::trainer_from(&ckpt, ckpt_path, None)?;
    Ok((trainer, None, None))
}

/// Rank 0's opening of the run: the directory, its lock, config.json, the metrics and (for a
/// fresh run) the first checkpoint.
fn open_lead(
    config: Option<TrainConfig>,
    opts: &RunOptions,
) -> Result<(Trainer, RunLock, Metrics), Error> {
    let dir = &opts.out;
    let (trainer, lock) = if opts.resume {
        rundir::resume_trainer(dir, opts.extend_steps)?
    } else {
        rundir::fresh_trainer(config.expect("a fresh run has a configuration"), dir)?
    };
    crate::io::write_json(&dir.join("config.json"), &trainer.config)?;
    let metrics = if opts.resume {
        Metrics::open(dir, Some(trainer.step))?
    } else {
        let m = Metrics::open(dir, None)?;
        save(&trainer, &dir.join(CHECKPOINT))?;
        m
    };
    Ok((trainer, lock, metrics))
}

/// The checkpoint at `path` as rank 0 reads it, on every rank (one broadcast).
pub(crate) fn load_shared(comm: &dyn Communicator, path: &Path) -> Result<Checkpoint, Error> {
    let load = || Checkpoint::load(path).map_err(|e| Error::from_checkpoint(path, e));
    if comm.size() == 1 {
        return load();
    }
    let mine = (comm.rank() == 0).then(load);
    let mut bytes = match &mine {
        Some(Ok(c)) => c.to_bytes().map_err(|e| Error::from_checkpoint(path, e))?,
        _ => Vec::new(),
    };
    comm.broadcast_bytes(0, &mut bytes)?;
    match mine {
        Some(c) => c,
        None if bytes.is_empty() => Err(Error::checkpoint(format!(
            "rank 0 could not read {} (its error is printed above)",
            path.display()
        ))),
        None => Checkpoint::from_bytes(&bytes).map_err(|e| Error::from_checkpoint(path, e)),
    }
}

/// The start line's account of the ranks: how many, through which engine, and the rows of
/// each minibatch each computes.
pub(crate) fn describe_ranks(t: &Trainer, comm: &dyn Communicator) -> String {
    let n = comm.size();
    if n == 1 {
        return "1 rank (single process)".into();
    }
    let b = t.config.batch;
    let rows: Vec<usize> = (0..n)
        .map(|r| {
            ebm_objectives::shard_rows(t.objective.as_ref(), t.train_step.block_rows, b, r, n).len()
        })
        .collect();
    let (lo, hi) = (
        rows.iter().min().unwrap_or(&0),
        rows.iter().max().unwrap_or(&0),
    );
    let each = if lo == hi {
        format!("{lo}")
    } else {
        format!("{lo}–{hi}")
    };
    let mut s = format!(
        "{n} ranks ({}): each computes {each} of the {b} rows of a minibatch",
        comm.engine()
    );
    if t.train_step.block_rows != ebm_objectives::TRAIN_BLOCK_ROWS {
        s.push_str(&format!(
            " (row blocks of {} rows, so that every rank has one)",
            t.train_step.block_rows
        ));
    }
    let idle = rows.iter().filter(|&&r| r == 0).count();
    if idle > 0 {
        let blocks =
            ebm_objectives::shard_capacity(t.objective.as_ref(), t.train_step.block_rows, b);
        s.push_str(&format!(
            "; warning: a minibatch of {b} rows is {blocks} row block(s) of work (blocks of up to {} rows), so {idle} rank(s) idle: raise --batch",
            t.train_step.block_rows
        ));
    }
    s
}

/// The closing line of a data-parallel run: rank 0's time in collectives per step (waiting
/// for slower ranks included) and its share of the step.
pub(crate) fn describe_overhead(
    spent: std::time::Duration,
    looped: std::time::Duration,
    steps: u64,
) -> String {
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / steps as f64;
    format!(
        "communication: {:.3} ms of each {:.3} ms step ({:.1}%) on rank 0, waiting for the other ranks included",
        per(spent),
        per(looped),
        100.0 * spent.as_secs_f64() / looped.as_secs_f64().max(1e-12)
    )
}

/// Several ranks on one machine share its cores: each gets cores ÷ local ranks threads
/// (unless RAYON_NUM_THREADS says otherwise).
pub fn share_cores(ranks: usize) {
    let local = ebm_comm::local_ranks();
    if ranks == 1 || local == 1 || std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads((cores / local).max(1))
        .build_global();
}
