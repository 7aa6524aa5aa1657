//! The state of a training run and its one step: the network, the objective (built by name
//! from the table of objectives), the one training step of `ebm_objectives::train_step`
//! (optimizers, EMA, clipping, row blocking), the generator, and what the divergence guard
//! and the held-out monitor keep.
//!
//! A checkpoint holds the model, the optimizer, the EMA, the objective's own parameters with
//! their optimizer and its state (NCE's log Z, PCD's replay buffer) as tensors, the step, the
//! training generator and, in its string metadata, the run's configuration, the
//! learning-rate scale left by the divergence guard, the running loss window and the
//! held-out monitor. Minibatches are a function of the step ([`Dataset::batch`]), so nothing
//! else is needed to continue exactly.

use crate::config::TrainConfig;
use crate::data::Dataset;
use crate::error::Error;
use crate::heldout::{self, Monitor};
use crate::model::Net;
use crate::verify::{
    self, hex_f64, EXTRA_CONFIG, EXTRA_DIM, EXTRA_LR_SCALE, EXTRA_STANDARDIZATION, EXTRA_WINDOW,
};
use ebm_comm::{CommError, Communicator, SingleProcess};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{Checkpoint, Ema, Optimizer, Schedule};
use ebm_objectives::factory::DataFacts;
use ebm_objectives::{train_step_shard, Objective, TrainStep};
use ebm_samplers::Init;
use std::path::Path;

/// Metadata keys under which checkpoints of earlier versions kept the objective's state as
/// base64 text (now tensors): such a checkpoint cannot be resumed.
const LEGACY_STATE_KEYS: [&str; 2] = ["nce_state", "replay_buffer"];
/// Rows NCE's noise is fitted to on a toy set (fresh draws from their own stream).
const NCE_FIT_ROWS: usize = 10_000;
const NCE_FIT_STREAM: u64 = 0xF17;
/// Stream of PCD's initial chains.
const CHAINS_STREAM: u64 = 0xB0F;

/// The whole state of a training run.
pub struct Trainer {
    /// The run's configuration.
    pub config: TrainConfig,
    /// The training data.
    pub data: Dataset,
    /// The network.
    pub net: Net,
    /// The objective, with its own parameters and state.
    pub objective: Box<dyn Objective>,
    /// The optimizers, the EMA and gradient clipping of the one training step.
    pub train_step: TrainStep,
    /// The training generator (noise, projections, chains).
    pub rng: Rng,
    /// Updates taken.
    pub step: u64,
    /// Multiplier of the scheduled learning rate (halved by each rollback).
    pub lr_scale: f64,
    /// Sum and count of the losses since the last metrics line.
    pub window: (f64, u64),
    /// Held-out monitoring (the best validation figure so far).
    pub monitor: Monitor,
    schedule: Schedule,
}

impl Trainer {
    /// A fresh run: data loaded, model initialised from the seed.
    pub fn new(config: TrainConfig) -> Result<Trainer, Error> {
        config.validate()?;
        let data = Dataset::load(&config.data, &config.data_options, config.seed)?;
        crate::limits::check_with_dim(&config, data.dim)?;
        let mut rng = Rng::new(config.seed);
        let net = Net::new(&config, data.dim, &mut rng);
        let objective = build_objective(&config, &data)?;
        let mut step = TrainStep::new(Optimizer::new(config.optimizer_config(), net.params()));
        if let Some(q) = objective.params() {
            let lr = config.objective_info().params_lr;
            step = step.with_objective_optimizer(Optimizer::adam(lr, q));
        }
        if let Some(d) = config.ema {
            step = step.with_ema(Ema::new(net.params(), d));
        }
        if let Some(c) = config.clip_grad {
            step = step.with_clip_grad_norm(c);
        }
        let schedule = config.lr_schedule();
        Ok(Trainer {
            config,
            data,
            net,
            objective,
            train_step: step,
            rng,
            step: 0,
            lr_scale: 1.0,
            window: (0.0, 0),
            monitor: Monitor::default(),
            schedule,
        })
    }

    /// The learning rate of the next update.
    pub fn lr(&self) -> f64 {
        self.schedule.lr(self.config.lr, self.step) * self.lr_scale
    }

    /// One update on the minibatch of this step through `ebm_objectives::train_step`;
    /// returns the loss (NaN or ∞ leave the model untouched). `poison` skips the update and
    /// reports a NaN loss (the divergence guard's test hook).
    pub fn step_once(&mut self, poison: bool) -> f64 {
        self.step_on(poison, &SingleProcess)
            .expect("a single process's collectives cannot fail")
    }

    /// [`Trainer::step_once`] as rank `comm.rank()` of a data-parallel run: this rank's rows
    /// of the step's minibatch ([`ebm_objectives::shard_rows`]) through
    /// `ebm_objectives::train_step_shard`, whose all-reduce gives every rank the global
    /// batch's loss and the same update.
    pub fn step_on(&mut self, poison: bool, comm: &dyn Communicator) -> Result<f64, CommError> {
        let b = self.config.batch;
        let rows = self.shard_rows(comm);
        let lr = self.lr();
        self.train_step.optimizer.set_lr(lr);
        if poison {
            return Ok(f64::NAN);
        }
        let x = self.data.batch_rows(self.step, b, rows);
        let loss = train_step_shard(
            self.objective.as_mut(),
            &mut self.net,
            &mut self.train_step,
            &x,
            b,
            &mut self.rng,
            comm,
        )?;
        if loss.is_finite() {
            self.step += 1;
        }
        Ok(loss)
    }

    /// The rows of each minibatch this rank computes.
    pub fn shard_rows(&self, comm: &dyn Communicator) -> std::ops::Range<usize> {
        ebm_objectives::shard_rows(
            self.objective.as_ref(),
            self.train_step.block_rows,
            self.config.batch,
            comm.rank(),
            comm.size(),
        )
    }

    /// The checkpoint of the current state; an error when any of it is not finite (the
    /// divergence guard rolls back before that can happen).
    pub fn checkpoint(&self) -> Result<Checkpoint, Error> {
        if let Some(why) = crate::guard::state_problem(self) {
            return Err(Error::Diverged(format!(
                "refusing to write a checkpoint at step {}: {why}",
                self.step
            )));
        }
        let mut c = self
            .train_step
            .checkpoint(&self.net, self.objective.as_ref())
            .with_step(self.step)
            .with_rng(&self.rng)
            .with_extra(
                EXTRA_CONFIG,
                serde_json::to_string(&self.config).expect("configs serialise"),
            )
            .with_extra(EXTRA_DIM, self.data.dim.to_string())
            .with_extra(EXTRA_LR_SCALE, hex_f64(self.lr_scale))
            .with_extra(
                EXTRA_WINDOW,
                format!("{} {}", hex_f64(self.window.0), self.window.1),
            )
            .with_extra(heldout::EXTRA_HELDOUT, self.monitor.to_extra());
        if let Some(s) = &self.data.standardization {
            c = c.with_extra(
                EXTRA_STANDARDIZATION,
                serde_json::to_string(s).expect("serialises"),
            );
        }
        Ok(c)
    }

    /// Puts the run back into the state of `ckpt` (written by [`Trainer::checkpoint`]).
    pub fn restore(&mut self, ckpt: &Checkpoint, file: &Path) -> Result<(), Error> {
        let bad = |what: &str| Error::checkpoint(format!("{}: {what}", file.display()));
        if LEGACY_STATE_KEYS
            .iter()
            .any(|k| ckpt.extra.contains_key(*k))
        {
            return Err(bad(
                "it keeps the objective's state as base64 text, as earlier versions of ebm wrote it; this version stores it as tensors and cannot resume it (`ebm eval` and `ebm sample` still read it; retrain to continue)",
            ));
        }
        self.train_step
            .restore(ckpt, &mut self.net, self.objective.as_mut())
            .map_err(|e| Error::from_checkpoint(file, e))?;
        self.rng = ckpt.rng().ok_or_else(|| bad("no RNG state"))?;
        self.step = ckpt.step;
        self.lr_scale = verify::stored_lr_scale(ckpt, file)?;
        self.window = verify::stored_window(ckpt, file)?;
        self.monitor = match ckpt.extra.get(heldout::EXTRA_HELDOUT) {
            // runs written before held-out monitoring start it afresh
            None => Monitor::default(),
            Some(s) => Monitor::from_extra(s).ok_or_else(|| bad("unreadable held-out state"))?,
        };
        Ok(())
    }
}

/// Where PCD chains (re)start: uniform over the data's box.
fn chain_init(data: &Dataset) -> Init {
    if data.toy.is_some() {
        return Init::Uniform { lo: -4.0, hi: 4.0 };
    }
    let b = data.bounds();
    let lo = b.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = b.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    Init::Uniform { lo, hi }
}

/// The objective named in `config`, built by the table of objectives for `data`: NCE's and
/// FCE's noise fitted to the training rows (fresh draws of a toy set), PCD's chains uniform
/// over the data's box, f32. Data outside the objective's domain (generalised SM, ratio
/// matching) are a usage error.
pub fn build_objective(config: &TrainConfig, data: &Dataset) -> Result<Box<dyn Objective>, Error> {
    let drawn: Tensor;
    let fit_rows = match data.toy {
        Some(toy) => {
            let mut rng = Rng::new(config.seed).stream(NCE_FIT_STREAM);
            drawn = toy.sample(NCE_FIT_ROWS, &mut rng);
            &drawn
        }
        None => &data.train,
    };
    let facts = DataFacts {
        dim: data.dim,
        fit_rows,
        chain_init: chain_init(data),
        dtype: DType::F32,
    };
    let info = config.objective_info();
    info.check_data(&facts).map_err(Error::usage)?;
    let mut rng = Rng::new(config.seed).stream(CHAINS_STREAM);
    Ok(info.build(&config.params, &facts, &mut rng))
}
