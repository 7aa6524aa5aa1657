//! The full description of a training run: written to `config.json` and into every
//! checkpoint, so `--resume`, `ebm sample` and `ebm eval` rebuild exactly the same model,
//! objective and data.

use crate::data::{DataOptions, DataSpec};
use crate::error::Error;
use ebm_nn::{Activation, AdamConfig, OptimizerConfig, Schedule, SgdConfig};
use serde::{Deserialize, Serialize};

/// A training method, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectiveKind {
    /// Denoising score matching (Vincent 2011).
    #[serde(rename = "dsm")]
    Dsm,
    /// DSM with a control variate (Wang et al. 2020).
    #[serde(rename = "dsm-cv")]
    DsmCv,
    /// Exact score matching (Hyvärinen 2005).
    #[serde(rename = "esm")]
    Esm,
    /// Sliced score matching (Song et al. 2019).
    #[serde(rename = "ssm")]
    Ssm,
    /// Sliced score matching, variance reduced.
    #[serde(rename = "ssm-vr")]
    SsmVr,
    /// Noise contrastive estimation (Gutmann & Hyvärinen 2010).
    #[serde(rename = "nce")]
    Nce,
    /// Persistent contrastive divergence with a replay buffer.
    #[serde(rename = "pcd")]
    Pcd,
    /// Contrastive divergence, chains started at the data.
    #[serde(rename = "cd")]
    Cd,
    /// Multi-scale DSM over geometric σ levels (NCSN).
    #[serde(rename = "ncsn")]
    Ncsn,
    /// Multi-scale DSM on the variance-exploding SDE.
    #[serde(rename = "ve")]
    Ve,
    /// Multi-scale DSM on the variance-preserving SDE.
    #[serde(rename = "vp")]
    Vp,
}

impl ObjectiveKind {
    pub const ALL: [ObjectiveKind; 11] = [
        ObjectiveKind::Dsm,
        ObjectiveKind::DsmCv,
        ObjectiveKind::Esm,
        ObjectiveKind::Ssm,
        ObjectiveKind::SsmVr,
        ObjectiveKind::Nce,
        ObjectiveKind::Pcd,
        ObjectiveKind::Cd,
        ObjectiveKind::Ncsn,
        ObjectiveKind::Ve,
        ObjectiveKind::Vp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::Dsm => "dsm",
            ObjectiveKind::DsmCv => "dsm-cv",
            ObjectiveKind::Esm => "esm",
            ObjectiveKind::Ssm => "ssm",
            ObjectiveKind::SsmVr => "ssm-vr",
            ObjectiveKind::Nce => "nce",
            ObjectiveKind::Pcd => "pcd",
            ObjectiveKind::Cd => "cd",
            ObjectiveKind::Ncsn => "ncsn",
            ObjectiveKind::Ve => "ve",
            ObjectiveKind::Vp => "vp",
        }
    }

    pub fn parse(s: &str) -> Result<ObjectiveKind, Error> {
        ObjectiveKind::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ObjectiveKind::ALL.iter().map(|o| o.name()).collect();
                Error::usage(format!(
                    "unknown objective `{s}`: expected one of {}",
                    names.join(", ")
                ))
            })
    }

    /// Whether the model is a noise-conditional network (the multi-scale objectives).
    pub fn noise_conditional(self) -> bool {
        matches!(
            self,
            ObjectiveKind::Ncsn | ObjectiveKind::Ve | ObjectiveKind::Vp
        )
    }

    /// Whether the objective samples negatives by Langevin dynamics.
    pub fn mcmc(self) -> bool {
        matches!(self, ObjectiveKind::Pcd | ObjectiveKind::Cd)
    }
}

/// The optimizer family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    Adam,
    AdamW,
    Sgd,
}

/// The learning-rate schedule family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    Constant,
    Cosine,
    WarmupCosine,
}

/// Hyperparameters of the objectives (each uses the ones it needs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveParams {
    /// Noise scale of DSM and DSM-CV.
    pub sigma: f64,
    /// Largest and smallest noise of NCSN and the VE SDE.
    pub sigma_max: f64,
    pub sigma_min: f64,
    /// NCSN noise levels.
    pub levels: usize,
    /// VP SDE β range.
    pub beta_min: f64,
    pub beta_max: f64,
    /// Smallest diffusion time of VE/VP training (and the time the density is evaluated at).
    pub t_min: f64,
    /// Langevin steps per CD/PCD update, and the tied step ε (x ← x + ε²/2·s + ε·z).
    pub langevin_steps: usize,
    pub langevin_eps: f64,
    /// PCD replay buffer rows, and the share restarted from noise each batch.
    pub buffer_size: usize,
    pub reinit: f64,
    /// CD/PCD energy-magnitude regulariser α(E₊² + E₋²).
    pub alpha: f64,
    /// NCE noise samples per data sample, and the inflation of the fitted Gaussian noise.
    pub nce_ratio: f64,
    pub nce_inflate: f64,
    /// SSM projections per sample.
    pub projections: usize,
}

impl Default for ObjectiveParams {
    fn default() -> Self {
        ObjectiveParams {
            sigma: 0.1,
            sigma_max: 2.0,
            sigma_min: 0.1,
            levels: 10,
            beta_min: 0.1,
            beta_max: 20.0,
            t_min: 1e-3,
            langevin_steps: 20,
            langevin_eps: 0.3,
            buffer_size: 10_000,
            reinit: 0.05,
            alpha: 0.1,
            nce_ratio: 1.0,
            nce_inflate: 1.2,
            projections: 1,
        }
    }
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub data: DataSpec,
    pub data_options: DataOptions,
    pub objective: ObjectiveKind,
    pub params: ObjectiveParams,
    /// Hidden widths of the MLP (input and output widths come from the data and the model).
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub optimizer: OptimKind,
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub schedule: ScheduleKind,
    pub warmup: u64,
    /// The schedule's final learning rate as a share of `lr`.
    pub min_lr_factor: f64,
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    /// Clip the global gradient norm to this value.
    pub clip_grad: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (evaluated and
    /// sampled instead of the raw weights).
    pub ema: Option<f64>,
    pub checkpoint_every: u64,
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
            objective: ObjectiveKind::DsmCv,
            params: ObjectiveParams::default(),
            hidden: vec![128, 128],
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
        if !self.activation.is_smooth()
            && !matches!(
                self.objective,
                ObjectiveKind::Nce | ObjectiveKind::Cd | ObjectiveKind::Pcd
            )
        {
            return u(format!(
                "--activation relu has no second derivative, which {} needs; use silu, softplus, elu, tanh or gelu",
                self.objective.name()
            ));
        }
        let p = &self.params;
        match self.objective {
            ObjectiveKind::Dsm | ObjectiveKind::DsmCv => pos("sigma", p.sigma)?,
            ObjectiveKind::Ncsn | ObjectiveKind::Ve => {
                pos("sigma-min", p.sigma_min)?;
                pos("sigma-max", p.sigma_max)?;
                if p.sigma_min >= p.sigma_max {
                    return u(format!(
                        "--sigma-min ({}) must be below --sigma-max ({})",
                        p.sigma_min, p.sigma_max
                    ));
                }
                if self.objective == ObjectiveKind::Ncsn && p.levels < 2 {
                    return u(format!("--levels must be at least 2, got {}", p.levels));
                }
            }
            ObjectiveKind::Vp => {
                pos("beta-min", p.beta_min)?;
                pos("beta-max", p.beta_max)?;
                if p.beta_min >= p.beta_max {
                    return u(format!(
                        "--beta-min ({}) must be below --beta-max ({})",
                        p.beta_min, p.beta_max
                    ));
                }
            }
            ObjectiveKind::Cd | ObjectiveKind::Pcd => {
                pos("langevin-eps", p.langevin_eps)?;
                if p.langevin_steps == 0 {
                    return u("--langevin-steps must be at least 1".into());
                }
                if !(0.0..=1.0).contains(&p.reinit) {
                    return u(format!("--reinit must be in [0, 1], got {}", p.reinit));
                }
                if self.objective == ObjectiveKind::Pcd && p.buffer_size < self.batch {
                    return u(format!(
                        "--buffer-size ({}) must be at least --batch ({})",
                        p.buffer_size, self.batch
                    ));
                }
                if !(p.alpha.is_finite() && p.alpha >= 0.0) {
                    return u(format!("--alpha must be ≥ 0, got {}", p.alpha));
                }
            }
            ObjectiveKind::Nce => {
                pos("nce-ratio", p.nce_ratio)?;
                pos("nce-inflate", p.nce_inflate)?;
            }
            ObjectiveKind::Ssm | ObjectiveKind::SsmVr => {
                if p.projections == 0 {
                    return u("--projections must be at least 1".into());
                }
            }
            ObjectiveKind::Esm => {}
        }
        if matches!(self.objective, ObjectiveKind::Ve | ObjectiveKind::Vp)
            && !(p.t_min > 0.0 && p.t_min < 1.0)
        {
            return u(format!("--t-min must be in (0, 1), got {}", p.t_min));
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
