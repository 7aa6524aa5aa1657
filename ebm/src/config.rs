//! The full description of a training run: written to `config.json` and into every
//! checkpoint, so `--resume`, `ebm sample` and `ebm eval` rebuild exactly the same model,
//! objective and data.

use crate::data::{DataOptions, DataSpec};
use crate::error::Error;
use ebm_nn::{Activation, AdamConfig, OptimizerConfig, Schedule, SgdConfig};
use ebm_objectives::factory::{self, BuildError, ObjectiveInfo};
use ebm_objectives::{names, ObjectiveOptions};
use serde::{Deserialize, Serialize};

/// The row of the objective called `name` in [`factory::OBJECTIVES`], or a usage error
/// listing the names.
pub fn objective_info(name: &str) -> Result<&'static ObjectiveInfo, Error> {
    factory::find(name)
        .ok_or_else(|| Error::usage(BuildError::UnknownObjective(name.to_string()).to_string()))
}

/// An option's command-line flag: `sigma_min` → `--sigma-min`.
pub fn flag(option: &str) -> String {
    format!("--{}", option.replace('_', "-"))
}

/// The network family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// An MLP on the rows (a noise-conditional MLP for the multi-scale objectives).
    #[default]
    Mlp,
    /// Rows read as square one- or three-channel images: an IGEBM-style conv energy
    /// ([`ebm_nn::ConvEnergy`], `--hidden` its stage widths), or a noise-conditional U-Net
    /// ([`ebm_nn::UNet`], base width `--hidden`'s first) for the multi-scale objectives.
    Conv,
}

impl Arch {
    /// The square image of rows of `dim` pixels: `[1, s, s]` if `dim` is a square, else
    /// `[3, s, s]` if `dim / 3` is one (3s² is never a square, so the two cannot clash).
    pub fn square_image(dim: usize) -> Option<[usize; 3]> {
        let side = |n: usize| {
            let s = (n as f64).sqrt().round() as usize;
            (s > 0 && s * s == n).then_some(s)
        };
        match side(dim) {
            Some(s) => Some([1, s, s]),
            None if dim.is_multiple_of(3) => side(dim / 3).map(|s| [3, s, s]),
            None => None,
        }
    }
}

/// The optimizer family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// Adam (Kingma & Ba 2015).
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter 2019).
    AdamW,
    /// SGD with momentum.
    Sgd,
}

/// The learning-rate schedule family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The peak rate throughout.
    Constant,
    /// Cosine decay from the peak to `min_lr_factor` of it.
    Cosine,
    /// Linear warm-up over `warmup` steps, then the cosine.
    WarmupCosine,
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The training data.
    pub data: DataSpec,
    /// How the data are split and transformed.
    pub data_options: DataOptions,
    /// The objective's name, one of [`ebm_objectives::NAMES`].
    pub objective: String,
    /// The objective's options (each objective reads the ones it needs).
    pub params: ObjectiveOptions,
    /// Hidden widths of the MLP (input and output widths come from the data and the model),
    /// or the stage widths of the conv energy.
    pub hidden: Vec<usize>,
    /// The network family (runs written before it existed read as an MLP).
    #[serde(default)]
    pub arch: Arch,
    /// The conv energy's output layer: IGEBM's sum pooling, or a position-aware linear map of
    /// the whole last feature map (runs written before it existed read as sum pooling).
    #[serde(default)]
    pub conv_head: ebm_nn::ConvHead,
    /// The activation between layers.
    pub activation: Activation,
    /// The optimizer family.
    pub optimizer: OptimKind,
    /// The peak learning rate.
    pub lr: f64,
    /// Weight decay (L2 for Adam and SGD, decoupled for AdamW).
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// The learning-rate schedule.
    pub schedule: ScheduleKind,
    /// Warm-up steps of the warm-up cosine schedule.
    pub warmup: u64,
    /// The schedule's final learning rate as a share of `lr`.
    pub min_lr_factor: f64,
    /// Training steps.
    pub steps: u64,
    /// Rows per minibatch.
    pub batch: usize,
    /// The seed of initialisation, minibatches, noise and split.
    pub seed: u64,
    /// Clip the global gradient norm to this value.
    pub clip_grad: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (evaluated and
    /// sampled instead of the raw weights).
    pub ema: Option<f64>,
    /// Write the checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Write a metrics line every this many steps.
    pub log_every: u64,
    /// Measure the held-out (validation) figure every this many steps (0 = only at the end).
    pub eval_every: u64,
    /// Stop after this many held-out measurements without improvement, and evaluate the
    /// best checkpoint (runs written before it existed read as None).
    #[serde(default)]
    pub early_stop: Option<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: DataSpec::Toy {
                name: "8gaussians".into(),
            },
            data_options: DataOptions::default(),
            objective: names::DSM_CV.into(),
            params: ObjectiveOptions::default(),
            hidden: vec![128, 128],
            arch: Arch::Mlp,
            conv_head: ebm_nn::ConvHead::SumPool,
            activation: Activation::Silu,
            optimizer: OptimKind::Adam,
            lr: 3e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            schedule: ScheduleKind::Cosine,
            warmup: 0,
            min_lr_factor: 0.01,
            steps: 2000,
            batch: 512,
            seed: 0,
            clip_grad: None,
            ema: None,
            checkpoint_every: 500,
            log_every: 10,
            eval_every: 500,
            early_stop: None,
        }
    }
}

impl TrainConfig {
    /// The objective's row in the table of objectives (an unknown name, which
    /// [`TrainConfig::validate`] refuses, panics here).
    pub fn objective_info(&self) -> &'static ObjectiveInfo {
        objective_info(&self.objective).expect("a validated configuration")
    }

    /// Checks every value a user can set; the message names the flag.
    pub fn validate(&self) -> Result<(), Error> {
        let u = |m: String| Err(Error::usage(m));
        let pos = |name: &str, v: f64| -> Result<(), Error> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::usage(format!(
                    "--{name} must be a positive number, got {v}"
                )))
            }
        };
        if self.steps == 0 {
            return u("--steps must be at least 1".into());
        }
        crate::limits::check_config(self)?;
        if self.early_stop == Some(0) {
            return u("--early-stop must be at least 1".into());
        }
        if self.batch == 0 {
            return u("--batch must be at least 1".into());
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return u(format!(
                "--hidden needs at least one positive width, got {:?}",
                self.hidden
            ));
        }
        if self.conv_head != ebm_nn::ConvHead::SumPool && self.arch != Arch::Conv {
            return u("--conv-head is the conv energy's; add --arch conv".into());
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            return u("--checkpoint-every and --log-every must be at least 1".into());
        }
        pos("lr", self.lr)?;
        if !(self.min_lr_factor.is_finite() && (0.0..=1.0).contains(&self.min_lr_factor)) {
            return u(format!(
                "--min-lr-factor must be in [0, 1], got {}",
                self.min_lr_factor
            ));
        }
        if self.warmup > 0 && self.schedule != ScheduleKind::WarmupCosine {
            return u("--warmup needs --schedule warmup-cosine".into());
        }
        self.optimizer_config().validate().map_err(|e| {
            Error::usage(format!(
                "optimizer: {e} (see --lr, --weight-decay, --momentum)"
            ))
        })?;
        if let Some(c) = self.clip_grad {
            pos("clip-grad", c)?;
        }
        if let Some(d) = self.ema {
            if !(0.0..1.0).contains(&d) {
                return u(format!("--ema decay must be in [0, 1), got {d}"));
            }
        }
        let info = objective_info(&self.objective)?;
        if !self.activation.is_smooth() && info.second_order {
            return u(format!(
                "--activation relu has no second derivative, which {} needs; use silu, softplus, elu, tanh or gelu",
                self.objective
            ));
        }
        info.check(&self.params, &flag).map_err(Error::usage)?;
        let p = &self.params;
        if self.objective == names::PCD && p.buffer_size < self.batch {
            return u(format!(
                "--buffer-size ({}) must be at least --batch ({})",
                p.buffer_size, self.batch
            ));
        }
        Ok(())
    }

    /// The optimizer's configuration.
    pub fn optimizer_config(&self) -> OptimizerConfig {
        match self.optimizer {
            OptimKind::Adam => OptimizerConfig::Adam(AdamConfig {
                weight_decay: self.weight_decay,
                ..AdamConfig::new(self.lr)
            }),
            OptimKind::AdamW => OptimizerConfig::AdamW(AdamConfig {
                weight_decay: self.weight_decay,
                ..AdamConfig::new(self.lr)
            }),
            OptimKind::Sgd => OptimizerConfig::Sgd(SgdConfig {
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                ..SgdConfig::new(self.lr)
            }),
        }
    }

    /// The learning-rate schedule over `steps`.
    pub fn lr_schedule(&self) -> Schedule {
        match self.schedule {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Cosine => Schedule::Cosine {
                steps: self.steps,
                min_factor: self.min_lr_factor,
            },
            ScheduleKind::WarmupCosine => {
                Schedule::warmup_cosine(self.warmup, self.steps, self.min_lr_factor)
            }
        }
    }
}
