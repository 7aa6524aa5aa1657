//! The training loop behind `ebm train`: every objective through one step, checkpoints that
//! resume bit for bit, a divergence guard, metrics, progress, and the final report.
//!
//! A checkpoint holds the model, the optimizer, the EMA, the step, the training generator and,
//! in its string metadata, the run's configuration, the learning-rate scale left by the
//! divergence guard, the running loss window and the objective's own state (NCE's log Z and
//! its optimizer, PCD's replay buffer). Minibatches are a function of the step
//! ([`Dataset::batch`]), so nothing else is needed to continue exactly.

use crate::config::{ObjectiveKind, TrainConfig};
use crate::data::{DataSpec, Dataset, Standardization};
use crate::error::Error;
use crate::model::{Net, Noise};
use ebm_autodiff::Tape;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{clip_grad_norm, param_grads, Checkpoint, Ema, Module, Optimizer, Params, Schedule};
use ebm_objectives::{
    ChainInit, DenoisingScoreMatching, ExactScoreMatching, MaximumLikelihood, MultiScaleDsm, Nce,
    NoiseDistribution, NoiseSchedule, Objective, Projection, SlicedScoreMatching,
};
use ebm_samplers::{Init, ReplayBuffer, Step, Target, Ula};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The checkpoint file inside a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// Metadata keys of the checkpoint.
pub const EXTRA_CONFIG: &str = "train_config";
const EXTRA_DIM: &str = "dim";
const EXTRA_LR_SCALE: &str = "lr_scale";
const EXTRA_WINDOW: &str = "loss_window";
const EXTRA_NCE: &str = "nce_state";
const EXTRA_REPLAY: &str = "replay_buffer";
const EXTRA_STANDARDIZATION: &str = "standardization";
/// Rollbacks the divergence guard allows before giving up.
pub const MAX_ROLLBACKS: usize = 5;
/// A batch energy larger than this (in absolute mean) counts as divergence.
pub const ENERGY_LIMIT: f64 = 1e6;

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

    fn buffer(&self) -> Option<&ReplayBuffer> {
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
    schedule: Schedule,
}

impl Trainer {
    /// A fresh run: data loaded, model initialised from the seed.
    pub fn new(config: TrainConfig) -> Result<Trainer, Error> {
        config.validate()?;
        let data = Dataset::load(&config.data, &config.data_options, config.seed)?;
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

    /// Checks the energies of `x` (and, for CD/PCD, their gap to the last negatives) under the
    /// current weights; says why they are unusable.
    pub fn energy_check(&self, x: &Tensor) -> Result<(), String> {
        let e = self.net.density(Noise::of(&self.config)).energy(x);
        let v = e.to_vec_f64();
        if v.iter().any(|e| !e.is_finite()) {
            return Err("energy is NaN or infinite".into());
        }
        let mean_abs = v.iter().map(|e| e.abs()).sum::<f64>() / v.len().max(1) as f64;
        if mean_abs > ENERGY_LIMIT {
            return Err(format!("energy exploded (mean |E| = {mean_abs:.3e})"));
        }
        // CD/PCD: the gap between data and negative energies is what the loss pushes on
        if let Obj::Mle(ml) = &self.obj {
            if let Some(neg) = ml.negatives() {
                let en = self.net.density(Noise::of(&self.config)).energy(neg);
                let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len().max(1) as f64;
                let gap = mean(&v) - mean(&en.to_vec_f64());
                if !gap.is_finite() || gap.abs() > ENERGY_LIMIT {
                    return Err(format!(
                        "energy gap between data and negatives exploded ({gap:.3e})"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether every parameter is finite.
    pub fn params_finite(&self) -> bool {
        self.net
            .params()
            .tensors()
            .iter()
            .all(|t| t.to_vec_f64().iter().all(|v| v.is_finite()))
    }

    /// The checkpoint of the current state.
    pub fn checkpoint(&self) -> Checkpoint {
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
            );
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
                    .expect("a small checkpoint serialises");
                c = c.with_extra(EXTRA_NCE, base64::encode(&canonical_header(inner)));
            }
        }
        {
            if let Some(buf) = self.obj.buffer() {
                let bytes =
                    ebm_nn::tensors_to_bytes(&[("buffer".into(), buf.data().clone())], None)
                        .expect("a tensor serialises");
                c = c.with_extra(EXTRA_REPLAY, base64::encode(&bytes));
            }
        }
        c
    }

    /// Puts the run back into the state of `ckpt` (written by [`Trainer::checkpoint`]).
    pub fn restore(&mut self, ckpt: &Checkpoint, file: &Path) -> Result<(), Error> {
        let bad = |what: &str| Error::checkpoint(format!("{}: {what}", file.display()));
        self.net
            .restore(ckpt, Some(&mut self.opt), self.ema.as_mut())
            .map_err(|e| Error::from_checkpoint(file, e))?;
        self.rng = ckpt.rng().ok_or_else(|| bad("no RNG state"))?;
        self.step = ckpt.step;
        self.lr_scale = ckpt
            .extra
            .get(EXTRA_LR_SCALE)
            .and_then(|s| unhex_f64(s))
            .ok_or_else(|| bad("no learning-rate scale"))?;
        self.window = ckpt
            .extra
            .get(EXTRA_WINDOW)
            .and_then(|s| {
                let (a, b) = s.split_once(' ')?;
                Some((unhex_f64(a)?, b.parse().ok()?))
            })
            .ok_or_else(|| bad("no loss window"))?;
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
                if t.shape() != buf.data().shape() {
                    return Err(bad("replay buffer of another shape"));
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

/// The data dimension recorded in a checkpoint.
pub fn data_dim(config: &TrainConfig, ckpt: &Checkpoint) -> Result<usize, Error> {
    if let Some(d) = ckpt.extra.get(EXTRA_DIM).and_then(|s| s.parse().ok()) {
        return Ok(d);
    }
    match &config.data {
        DataSpec::Toy { .. } => Ok(2),
        DataSpec::Digits => Ok(64),
        DataSpec::File { .. } => Err(Error::checkpoint(
            "the checkpoint does not record its data dimension",
        )),
    }
}

/// The standardisation recorded in a checkpoint.
pub fn standardization_of(ckpt: &Checkpoint) -> Option<Standardization> {
    ckpt.extra
        .get(EXTRA_STANDARDIZATION)
        .and_then(|s| serde_json::from_str(s).ok())
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

fn hex_f64(v: f64) -> String {
    format!("{:016x}", v.to_bits())
}

fn unhex_f64(s: &str) -> Option<f64> {
    u64::from_str_radix(s, 16).ok().map(f64::from_bits)
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

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let s = s.as_bytes();
        if !s.len().is_multiple_of(4) {
            return None;
        }
        let val = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        for q in s.chunks(4) {
            let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
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
            Some(pb) => pb.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    fn update(&self, step: u64, total: u64, loss: f64, lr: f64, rate: f64, nll: Option<f64>) {
        let nll_s = nll
            .map(|v| format!("  test NLL {v:.3}"))
            .unwrap_or_default();
        match &self.bar {
            Some(pb) => {
                pb.set_position(step);
                pb.set_message(format!("{rate:.0} steps/s  loss {loss:.4}{nll_s}"));
            }
            None => {
                if !self.quiet && (step.is_multiple_of(self.every) || step == total) {
                    println!(
                        "step {step:>6}/{total}  loss {loss:>10.4}  lr {lr:.2e}  {rate:>6.0} steps/s{nll_s}"
                    );
                    let _ = std::io::stdout().flush();
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

/// A quick test NLL for progress (2-D only: a 100² grid and 5,000 test rows).
fn quick_nll(t: &Trainer) -> Option<f64> {
    if t.data.dim != 2 {
        return None;
    }
    let d = t.net.density(Noise::of(&t.config));
    let g = ebm_objectives::eval::grid_log_z(&d, &t.data.bounds(), 100, 1e-3, DType::F32);
    let n = t.data.test.shape()[0].min(5000);
    let test = t.data.test.index_select(&(0..n).collect::<Vec<_>>());
    let v = ebm_objectives::eval::nll(&d, &test, g.log_z);
    v.is_finite().then_some(v)
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

/// Runs `ebm train`: a fresh run from `config`, or `opts.resume` the one in `opts.out`.
pub fn run(config: Option<TrainConfig>, opts: &RunOptions) -> Result<RunEnd, Error> {
    let dir = &opts.out;
    let ckpt_path = dir.join(CHECKPOINT);
    let t0 = Instant::now();
    let mut trainer;
    let metrics;
    if opts.resume {
        if !ckpt_path.exists() {
            return Err(Error::checkpoint(format!(
                "cannot resume: {} does not exist",
                ckpt_path.display()
            )));
        }
        let ckpt =
            Checkpoint::load(&ckpt_path).map_err(|e| Error::from_checkpoint(&ckpt_path, e))?;
        let mut cfg = crate::model::config_of(&ckpt, &ckpt_path)?;
        if let Some(s) = opts.extend_steps {
            if s < ckpt.step {
                return Err(Error::usage(format!(
                    "--steps {s} is below the {} steps the checkpoint has already taken",
                    ckpt.step
                )));
            }
            cfg.steps = s;
        }
        trainer = Trainer::new(cfg)?;
        trainer.restore(&ckpt, &ckpt_path)?;
        crate::io::write_json(&dir.join("config.json"), &trainer.config)?;
        metrics = Metrics::open(dir, Some(trainer.step))?;
    } else {
        let config = config.expect("a fresh run has a configuration");
        trainer = Trainer::new(config)?;
        if ckpt_path.exists() {
            return Err(Error::usage(format!(
                "{} already holds a run; continue it with `ebm train --resume {}` or pick another --out",
                dir.display(),
                dir.display()
            )));
        }
        crate::io::create_dir(dir)?;
        crate::io::write_json(&dir.join("config.json"), &trainer.config)?;
        metrics = Metrics::open(dir, None)?;
        save(&trainer, &ckpt_path)?;
    }
    let total = trainer.config.steps;
    let progress = Progress::new(total, trainer.step, opts.quiet);
    progress.say(&format!(
        "{} {}\n  → {}",
        if opts.resume && trainer.step > 0 {
            format!("resuming at step {}:", trainer.step)
        } else {
            "training".into()
        },
        describe(&trainer.config, trainer.data.dim),
        dir.display()
    ));
    let start_step = trainer.step;
    let mut last_nll = None;
    let mut rollbacks = 0;
    let mut poisoned = false;
    let loop_t0 = Instant::now();
    while trainer.step < total {
        if stop_requested() || opts.stop_at == Some(trainer.step) {
            progress.finish();
            let saved = if trainer.params_finite() {
                save(&trainer, &ckpt_path)?;
                format!("checkpoint at step {} saved", trainer.step)
            } else {
                "the last good checkpoint is kept".into()
            };
            if !opts.quiet {
                eprintln!(
                    "interrupted at step {}: {saved} in {}; continue with `ebm train --resume {}`",
                    trainer.step,
                    ckpt_path.display(),
                    dir.display()
                );
            }
            return Ok(RunEnd::Interrupted { step: trainer.step });
        }
        let poison = opts.poison_at == Some(trainer.step + 1) && !poisoned;
        poisoned |= poison;
        let lr = trainer.lr();
        let loss = trainer.step_once(poison);
        let mut problem = (!loss.is_finite()).then(|| format!("loss is {loss}"));
        if problem.is_none() && (trainer.step.is_multiple_of(10) || trainer.config.objective.mcmc())
        {
            let x = trainer
                .data
                .batch(trainer.step, trainer.config.batch.min(256));
            problem = trainer.energy_check(&x).err();
        }
        if problem.is_none()
            && trainer.step.is_multiple_of(trainer.config.checkpoint_every)
            && !trainer.params_finite()
        {
            problem = Some("parameters are NaN".into());
        }
        if let Some(why) = problem {
            let at = trainer.step + u64::from(!loss.is_finite());
            rollbacks += 1;
            if rollbacks > MAX_ROLLBACKS {
                progress.finish();
                return Err(Error::Diverged(format!(
                    "training diverged at step {at} ({why}) after {MAX_ROLLBACKS} rollbacks with lower learning rates; \
                     the last good checkpoint is {}; try a smaller --lr",
                    ckpt_path.display()
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
        let step = trainer.step;
        if step.is_multiple_of(trainer.config.log_every) || step == total {
            let mean = trainer.window.0 / trainer.window.1 as f64;
            trainer.window = (0.0, 0);
            let mut line = serde_json::json!({
                "step": step, "loss": mean, "lr": lr,
                "elapsed_s": (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            });
            if trainer.config.eval_every > 0 && step.is_multiple_of(trainer.config.eval_every) {
                last_nll = quick_nll(&trainer);
                if let Some(v) = last_nll {
                    line["test_nll"] = serde_json::json!(v);
                }
            }
            metrics.push(line)?;
            let rate = (step - start_step) as f64 / loop_t0.elapsed().as_secs_f64().max(1e-9);
            progress.update(step, total, mean, lr, rate, last_nll);
        }
        if step.is_multiple_of(trainer.config.checkpoint_every) || step == total {
            save(&trainer, &ckpt_path)?;
        }
    }
    progress.finish();
    let train_secs = t0.elapsed().as_secs_f64();
    if opts.no_report {
        return Ok(RunEnd::Finished(Box::new(crate::report::Report::empty(
            trainer.step,
            train_secs,
        ))));
    }
    let report = crate::report::final_report(&trainer, dir, train_secs, opts)?;
    Ok(RunEnd::Finished(Box::new(report)))
}

fn save(t: &Trainer, path: &Path) -> Result<(), Error> {
    t.checkpoint()
        .save(path)
        .map_err(|e| Error::from_checkpoint(path, e))
}
