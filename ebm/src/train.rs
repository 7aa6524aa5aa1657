//! The training loop behind `ebm train`: every objective through one step, checkpoints that
//! resume bit for bit, a divergence guard, metrics, progress, and the final report.
//!
//! A checkpoint holds the model, the optimizer, the EMA, the step, the training generator and,
//! in its string metadata, the run's configuration, the learning-rate scale left by the
//! divergence guard, the running loss window and the objective's own state (NCE's log Z and
//! its optimizer, PCD's replay buffer). Minibatches are a function of the step
//! ([`Dataset::batch`]), so nothing else is needed to continue exactly.

use crate::config::{ObjectiveKind, TrainConfig};
use crate::data::Dataset;
use crate::error::Error;
use crate::heldout::{self, Figure, Mark, Monitor};
use crate::model::Net;
use crate::verify::{
    self, hex_f64, EXTRA_CONFIG, EXTRA_DIM, EXTRA_LR_SCALE, EXTRA_STANDARDIZATION, EXTRA_WINDOW,
};
use ebm_autodiff::Tape;
use ebm_core::{DType, Rng};
use ebm_nn::{clip_grad_norm, param_grads, Checkpoint, Ema, Module, Optimizer, Params, Schedule};
use ebm_objectives::{
    ChainInit, DenoisingScoreMatching, ExactScoreMatching, MaximumLikelihood, MultiScaleDsm, Nce,
    NoiseDistribution, NoiseSchedule, Objective, Projection, SlicedScoreMatching,
};
use ebm_samplers::{Init, ReplayBuffer, Step, Ula};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The checkpoint file inside a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// Metadata keys of the objective's state in the checkpoint.
const EXTRA_NCE: &str = "nce_state";
const EXTRA_REPLAY: &str = "replay_buffer";
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

/// The objective of a run, with its extra state.
pub enum Obj {
    /// An objective with no state beyond the generator.
    Plain(Box<dyn Objective>),
    /// CD or PCD (PCD keeps a replay buffer).
    Mle(MaximumLikelihood),
    /// NCE (keeps a learnable log Z).
    Nce(Nce),
    /// Multi-scale DSM for a noise-conditional network.
    Multi(MultiScaleDsm),
}

impl Obj {
    /// The energy objective, for every kind but the multi-scale ones.
    pub fn energy(&mut self) -> Option<&mut dyn Objective> {
        match self {
            Obj::Plain(o) => Some(o.as_mut()),
            Obj::Mle(o) => Some(o),
            Obj::Nce(o) => Some(o),
            Obj::Multi(_) => None,
        }
    }

    /// PCD's replay buffer.
    pub fn buffer(&self) -> Option<&ReplayBuffer> {
        match self {
            Obj::Mle(MaximumLikelihood {
                init: ChainInit::Persistent(b),
                ..
            }) => Some(b),
            _ => None,
        }
    }
}

/// The whole state of a training run.
pub struct Trainer {
    pub config: TrainConfig,
    pub data: Dataset,
    pub net: Net,
    pub obj: Obj,
    pub opt: Optimizer,
    /// The optimizer of the objective's own parameters (NCE's log Z).
    pub opt_q: Option<Optimizer>,
    pub ema: Option<Ema>,
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
        let obj = build_objective(&config, &data, &mut rng);
        let opt = Optimizer::new(config.optimizer_config(), net.params());
        let opt_q = match &obj {
            Obj::Nce(o) => o.params().map(|q| Optimizer::adam(1e-2, q)),
            _ => None,
        };
        let ema = config.ema.map(|d| Ema::new(net.params(), d));
        let schedule = config.lr_schedule();
        Ok(Trainer {
            config,
            data,
            net,
            obj,
            opt,
            opt_q,
            ema,
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

    /// One update on the minibatch of this step; returns the loss (NaN or ∞ leave the model
    /// untouched). `poison` replaces the loss by NaN (the guard's test hook).
    pub fn step_once(&mut self, poison: bool) -> f64 {
        let x = self.data.batch(self.step, self.config.batch);
        let lr = self.lr();
        self.opt.set_lr(lr);
        let (loss, mut g, gq) = {
            let tape = Tape::new();
            let p = self.net.params().bind(&tape);
            match (&mut self.obj, &self.net) {
                (Obj::Multi(ms), Net::Cond(m)) => {
                    let loss = ms.loss(&tape, m, &p, &[], &x, &mut self.rng);
                    (loss.item(), param_grads(&loss, &p), Vec::new())
                }
                (obj, Net::Mlp(m)) => {
                    let o = obj.energy().expect("an energy objective for an MLP");
                    let q = o.params().map(|q| q.bind(&tape)).unwrap_or_default();
                    let loss = o.loss(&tape, m, &p, &q, &x, &mut self.rng);
                    let gq = if q.is_empty() {
                        Vec::new()
                    } else {
                        param_grads(&loss, &q)
                    };
                    (loss.item(), param_grads(&loss, &p), gq)
                }
                _ => unreachable!("the objective and the network are built together"),
            }
        };
        let loss = if poison { f64::NAN } else { loss };
        if !loss.is_finite() {
            return loss;
        }
        if let Some(c) = self.config.clip_grad {
            clip_grad_norm(&mut g, c);
        }
        self.opt.step(self.net.params_mut(), &g);
        if let (Obj::Nce(o), Some(oq)) = (&mut self.obj, self.opt_q.as_mut()) {
            if let Some(q) = o.params_mut() {
                oq.step(q, &gq);
            }
        }
        if let Some(e) = &mut self.ema {
            e.update(self.net.params());
        }
        self.step += 1;
        loss
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
        let mut c = Checkpoint::new(self.net.module())
            .with_optimizer(&self.opt)
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
        if let Some(e) = &self.ema {
            c = c.with_ema(e);
        }
        if let Obj::Nce(o) = &self.obj {
            if let (Some(q), Some(oq)) = (o.params(), &self.opt_q) {
                let inner = Checkpoint::new(&ParamsModule(q.clone()))
                    .with_optimizer(oq)
                    .to_bytes()
                    .map_err(|e| Error::Diverged(format!("NCE state: {e}")))?;
                c = c.with_extra(EXTRA_NCE, base64::encode(&canonical_header(inner)));
            }
        }
        {
            if let Some(buf) = self.obj.buffer() {
                let bytes =
                    ebm_nn::tensors_to_bytes(&[("buffer".into(), buf.data().clone())], None)
                        .map_err(|e| Error::io(format!("replay buffer: {e}")))?;
                c = c.with_extra(EXTRA_REPLAY, base64::encode(&bytes));
            }
        }
        Ok(c)
    }

    /// Puts the run back into the state of `ckpt` (written by [`Trainer::checkpoint`]).
    pub fn restore(&mut self, ckpt: &Checkpoint, file: &Path) -> Result<(), Error> {
        let bad = |what: &str| Error::checkpoint(format!("{}: {what}", file.display()));
        self.net
            .restore(ckpt, Some(&mut self.opt), self.ema.as_mut())
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
        if let Obj::Nce(o) = &mut self.obj {
            {
                let bytes = ckpt
                    .extra
                    .get(EXTRA_NCE)
                    .and_then(|s| base64::decode(s))
                    .ok_or_else(|| bad("no NCE state"))?;
                let inner = Checkpoint::from_bytes(&bytes).map_err(|e| bad(&e.to_string()))?;
                let mut m = ParamsModule(o.params().expect("checked").clone());
                let oq = self.opt_q.as_mut().expect("built with the objective");
                inner
                    .restore(&mut m, Some(oq), None)
                    .map_err(|e| bad(&e.to_string()))?;
                let q = o.params_mut().expect("checked");
                for i in 0..q.len() {
                    q.set(i, m.0.get(i).clone());
                }
            }
        }
        if let Obj::Mle(MaximumLikelihood {
            init: ChainInit::Persistent(buf),
            ..
        }) = &mut self.obj
        {
            {
                let bytes = ckpt
                    .extra
                    .get(EXTRA_REPLAY)
                    .and_then(|s| base64::decode(s))
                    .ok_or_else(|| bad("no replay buffer"))?;
                let t = ebm_nn::read_tensors_from_bytes(&bytes)
                    .map_err(|e| bad(&e.to_string()))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| bad("empty replay buffer"))?
                    .1;
                if t.shape() != buf.data().shape() || t.dtype() != buf.data().dtype() {
                    return Err(bad("replay buffer of another shape or dtype"));
                }
                if !t.to_vec_f64().iter().all(|v| v.is_finite()) {
                    return Err(bad("replay buffer holds non-finite values"));
                }
                let (init, reinit) = (buffer_init(&self.data), buf.reinit_fraction());
                *buf = ReplayBuffer::from_tensor(t, init).with_reinit(reinit);
            }
        }
        Ok(())
    }
}

/// Parameters as a module, to checkpoint an objective's own parameters.
struct ParamsModule(Params);

impl Module for ParamsModule {
    fn params(&self) -> &Params {
        &self.0
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.0
    }
    fn config(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "objective_params" })
    }
}

/// Where PCD chains (re)start: uniform over the data's box.
fn buffer_init(data: &Dataset) -> Init {
    if data.toy.is_some() {
        return Init::Uniform { lo: -4.0, hi: 4.0 };
    }
    let b = data.bounds();
    let lo = b.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = b.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    Init::Uniform { lo, hi }
}

/// The objective named in `config`, with the settings of objectives/tests/train_toy.rs.
pub fn build_objective(config: &TrainConfig, data: &Dataset, rng: &mut Rng) -> Obj {
    let p = &config.params;
    let langevin = || {
        Ula::new(
            Step::Tied {
                eps: p.langevin_eps,
            },
            p.langevin_steps,
        )
    };
    let e: Box<dyn Objective> = match config.objective {
        ObjectiveKind::Dsm => Box::new(DenoisingScoreMatching::new(p.sigma)),
        ObjectiveKind::DsmCv => Box::new(DenoisingScoreMatching::with_control_variate(p.sigma)),
        ObjectiveKind::Esm => Box::new(ExactScoreMatching),
        ObjectiveKind::Ssm | ObjectiveKind::SsmVr => Box::new(SlicedScoreMatching {
            projection: if config.objective == ObjectiveKind::SsmVr {
                Projection::Rademacher
            } else {
                Projection::Gaussian
            },
            n_projections: p.projections,
            variance_reduced: config.objective == ObjectiveKind::SsmVr,
        }),
        ObjectiveKind::Nce => {
            let fit = match data.toy {
                Some(t) => t.sample(10_000, &mut Rng::new(config.seed).stream(0xF17)),
                None => data.train.clone(),
            };
            return Obj::Nce(Nce::new(
                NoiseDistribution::fitted(&fit, p.nce_inflate),
                p.nce_ratio,
                0.0,
                DType::F32,
            ));
        }
        ObjectiveKind::Pcd => {
            let buffer = ReplayBuffer::new(
                p.buffer_size,
                &[data.dim],
                buffer_init(data),
                DType::F32,
                &mut Rng::new(config.seed).stream(0xB0F),
            )
            .with_reinit(p.reinit);
            return Obj::Mle(MaximumLikelihood::new(
                langevin(),
                ChainInit::Persistent(buffer),
                p.alpha,
            ));
        }
        ObjectiveKind::Cd => {
            return Obj::Mle(MaximumLikelihood::new(langevin(), ChainInit::Data, p.alpha))
        }
        ObjectiveKind::Ncsn => {
            return Obj::Multi(MultiScaleDsm {
                schedule: NoiseSchedule::Geometric {
                    sigma_max: p.sigma_max,
                    sigma_min: p.sigma_min,
                    levels: p.levels,
                },
            })
        }
        ObjectiveKind::Ve => {
            return Obj::Multi(MultiScaleDsm {
                schedule: NoiseSchedule::Ve {
                    sigma_min: p.sigma_min,
                    sigma_max: p.sigma_max,
                    t_min: p.t_min,
                },
            })
        }
        ObjectiveKind::Vp => {
            return Obj::Multi(MultiScaleDsm {
                schedule: NoiseSchedule::Vp {
                    beta_min: p.beta_min,
                    beta_max: p.beta_max,
                    t_min: p.t_min,
                },
            })
        }
    };
    let _ = rng;
    Obj::Plain(e)
}

/// The safetensors bytes with the header's JSON keys in sorted order (the writer emits its
/// metadata map in hash order), so equal states give equal strings in the checkpoint.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let Some(n) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    else {
        return bytes;
    };
    let Some(Ok(v)) = bytes
        .get(8..8 + n)
        .map(serde_json::from_slice::<serde_json::Value>)
    else {
        return bytes;
    };
    let mut s = serde_json::to_string(&v).expect("JSON re-serialises");
    if s.len() > n {
        return bytes;
    }
    while s.len() < n {
        s.push(' ');
    }
    let mut out = bytes[..8].to_vec();
    out.extend(s.as_bytes());
    out.extend(&bytes[8 + n..]);
    out
}

/// Standard base64 (RFC 4648, with padding), for binary state in checkpoint metadata.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for c in bytes.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// The bytes of `s`; None unless it is canonical base64 (padding only at the end, at
    /// most two `=`).
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let s = s.as_bytes();
        if !s.len().is_multiple_of(4) {
            return None;
        }
        let val = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        let quads = s.len() / 4;
        for (k, q) in s.chunks(4).enumerate() {
            let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && k + 1 != quads) {
                return None;
            }
            let mut n = 0u32;
            for &c in &q[..4 - pad] {
                n = n << 6 | val(c)?;
            }
            n <<= 6 * pad as u32;
            out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..3 - pad]);
        }
        Some(out)
    }

    #[cfg(test)]
    #[test]
    fn round_trips() {
        for n in 0..20 {
            let b: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&b)).unwrap(), b);
        }
        assert_eq!(encode(b"Man"), "TWFu");
        assert_eq!(encode(b"Ma"), "TWE=");
        // malformed padding is refused, not a panic
        for bad in ["====", "A===", "TWE=TWFu", "TW=u", "TWFu=", "T*Fu"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

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
    /// Print nothing but errors.
    pub quiet: bool,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    Finished(Box<crate::report::Report>),
    Interrupted { step: u64 },
}

/// Progress output: a bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    every: u64,
}

impl Progress {
    fn new(steps: u64, start: u64, quiet: bool) -> Progress {
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
    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(pb) => pb.suspend(|| crate::console::out(line)),
            None => crate::console::out(line),
        }
    }

    /// A warning on stderr (above the bar on a terminal).
    fn warn(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(pb) => pb.suspend(|| crate::console::err(line)),
            None => crate::console::err(line),
        }
    }

    fn update(
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

    fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

/// Appends lines to metrics.jsonl.
struct Metrics {
    path: PathBuf,
}

impl Metrics {
    /// Opens the metrics of a run, dropping lines after `step` (a resumed or rolled-back run
    /// writes them again).
    fn open(dir: &Path, keep_until: Option<u64>) -> Result<Metrics, Error> {
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

    fn push(&self, v: serde_json::Value) -> Result<(), Error> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(format!("cannot append to {}: {e}", self.path.display())))?;
        writeln!(f, "{v}")
            .map_err(|e| Error::io(format!("cannot append to {}: {e}", self.path.display())))
    }
}

/// A one-line description of the run.
pub fn describe(c: &TrainConfig, dim: usize) -> String {
    let widths: Vec<String> = std::iter::once(dim)
        .chain(c.hidden.iter().copied())
        .chain(std::iter::once(1))
        .map(|w| w.to_string())
        .collect();
    let net = if c.objective.noise_conditional() {
        "noise-conditional"
    } else {
        "MLP"
    };
    format!(
        "{} on {}: {} {} {net}, {:?} lr {:.0e} {:?}, {} steps × batch {}, seed {}",
        c.objective.name(),
        c.data.label(),
        widths.join("-"),
        c.activation,
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
    let dir = &opts.out;
    let ckpt_path = dir.join(CHECKPOINT);
    let best_path = dir.join(heldout::BEST);
    let t0 = Instant::now();
    let (mut trainer, _lock) = if opts.resume {
        crate::rundir::resume_trainer(dir, opts.extend_steps)?
    } else {
        crate::rundir::fresh_trainer(config.expect("a fresh run has a configuration"), dir)?
    };
    crate::io::write_json(&dir.join("config.json"), &trainer.config)?;
    let metrics = if opts.resume {
        Metrics::open(dir, Some(trainer.step))?
    } else {
        let m = Metrics::open(dir, None)?;
        save(&trainer, &ckpt_path)?;
        m
    };
    let total = trainer.config.steps;
    let progress = Progress::new(total, trainer.step, opts.quiet);
    let mut notes = RunNotes {
        start_step: trainer.step,
        figure: Figure::of(&trainer.data, trainer.config.objective),
        ..RunNotes::default()
    };
    progress.say(&format!(
        "{} {}\n  → {}{}",
        if opts.resume && trainer.step > 0 {
            format!("resuming at step {}:", trainer.step)
        } else {
            "training".into()
        },
        describe(&trainer.config, trainer.data.dim),
        dir.display(),
        heldout::describe_split(&trainer, notes.figure)
    ));
    let start_step = trainer.step;
    let mut last_val = None;
    let mut rollbacks = 0;
    let mut poisoned = false;
    let loop_t0 = Instant::now();
    while trainer.step < total {
        if stop_requested() || opts.stop_at == Some(trainer.step) {
            progress.finish();
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
            return Ok(RunEnd::Interrupted { step: trainer.step });
        }
        let poison = opts.poison_at == Some(trainer.step + 1) && !poisoned;
        poisoned |= poison;
        let lr = trainer.lr();
        let loss = trainer.step_once(poison);
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
        if problem.is_none() && (step.is_multiple_of(10) || c.objective.mcmc() || saving || measure)
        {
            let x = trainer.data.batch(step, c.batch.min(256));
            problem = crate::guard::energy_problem(&trainer, &x);
        }
        if let Some(why) = problem {
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
            let ckpt =
                Checkpoint::load(&ckpt_path).map_err(|e| Error::from_checkpoint(&ckpt_path, e))?;
            // the scale compounds over rollbacks (the checkpoint holds the one before this)
            let scale = trainer.lr_scale * 0.5;
            trainer.restore(&ckpt, &ckpt_path)?;
            trainer.lr_scale = scale;
            // make the lower rate durable: a resume from here keeps it
            save(&trainer, &ckpt_path)?;
            let _ = Metrics::open(dir, Some(trainer.step))?;
            metrics.push(serde_json::json!({
                "step": trainer.step, "event": "rollback", "diverged_at": at, "reason": why,
                "lr_scale": trainer.lr_scale,
            }))?;
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
        let mut stop_early = false;
        if log_line {
            let mean = trainer.window.0 / trainer.window.1 as f64;
            trainer.window = (0.0, 0);
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
        if saving || stop_early {
            save(&trainer, &ckpt_path)?;
        }
        if stop_early {
            break;
        }
    }
    progress.finish();
    let train_secs = t0.elapsed().as_secs_f64();
    notes.end_step = trainer.step;
    if opts.no_report {
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

fn save(t: &Trainer, path: &Path) -> Result<(), Error> {
    t.checkpoint()?
        .save(path)
        .map_err(|e| Error::from_checkpoint(path, e))
}
