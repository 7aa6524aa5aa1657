//! The command line: every subcommand's arguments, and the training configuration they
//! describe (defaults, then the flags given).

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Parser, Subcommand};
use ebm::config::{OptimKind, ScheduleKind, TrainConfig};
use ebm::data::DataSpec;
use ebm::sample::table::{parse_metric, METRIC_NAMES};
use ebm::sample::{PtKernel, SampleOptions, SamplerKind};
use ebm_objectives::factory::OBJECTIVES;
use ebm_objectives::names;
use std::path::PathBuf;

const DATA_HELP: &str = "8gaussians, checkerboard, 2spirals, rings, moons, swissroll, pinwheel, circles, digits, fashion-mnist[=FOLDER], a folder of PNGs, a .npy of images ([n,H,W], NCHW or NHWC; nchw:FILE / nhwc:FILE to say which), or a path to a .csv/.npy file (rows = samples)";

#[derive(Parser)]
#[command(
    name = "ebm",
    version,
    about = "Train, sample and evaluate energy-based models",
    long_about = "Train, sample and evaluate energy-based models.\n\n\
        `ebm train` with no flags trains the 2-128-128-1 SiLU MLP on 8-Gaussians by denoising \
        score matching (with a control variate) and writes checkpoints, metrics.jsonl, eval.json, \
        samples.npy and PNGs to runs/<name>."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Train a model; the run directory gets checkpoints, metrics, eval.json and PNGs.
    #[command(allow_negative_numbers = true)]
    Train(TrainArgs),
    /// Draw samples from a trained model: writes .npy and a PNG.
    #[command(allow_negative_numbers = true)]
    Sample(SampleArgs),
    /// Evaluate a trained model: test NLL and log Z, MMD, KSD, as JSON.
    Eval(EvalArgs),
    /// Train several objectives on the same data with the same budget; one table, one figure.
    #[command(allow_negative_numbers = true)]
    Compare(CompareArgs),
    /// Reproduce the claims of Song & Kingma (2021): each experiment writes a PNG and a JSON.
    Reproduce(ebm::reproduce::ReproduceArgs),
}

/// Model, optimizer and objective settings shared by `train` and `compare`.
#[derive(Args, Clone, Default)]
pub struct ConfigArgs {
    /// Hidden widths of the network, comma-separated [default: 128,128]
    #[arg(long, value_delimiter = ',', help_heading = "Model")]
    pub hidden: Option<Vec<usize>>,
    /// Network family: an MLP on the rows, or (rows read as square images of 1 or 3 channels) a
    /// conv energy / noise-conditional U-Net [default: mlp]
    #[arg(long, value_parser = ["mlp", "conv"], help_heading = "Model")]
    pub arch: Option<String>,
    /// Output layer of the conv energy: `sum-pool` (IGEBM: features summed over positions)
    /// or `flatten` (one weight per channel and position of the last map) [default: sum-pool]
    #[arg(long, value_parser = ["sum-pool", "flatten"], help_heading = "Model")]
    pub conv_head: Option<String>,
    /// Activation between layers [default: silu]
    #[arg(long, value_parser = ["silu", "softplus", "elu", "tanh", "gelu", "relu"], help_heading = "Model")]
    pub activation: Option<String>,
    /// Optimizer [default: adam]
    #[arg(long, value_parser = ["adam", "adamw", "sgd"], help_heading = "Optimization")]
    pub optimizer: Option<String>,
    /// Peak learning rate [default: 3e-3]
    #[arg(long, help_heading = "Optimization")]
    pub lr: Option<f64>,
    /// Weight decay (L2 for adam/sgd, decoupled for adamw) [default: 0]
    #[arg(long, help_heading = "Optimization")]
    pub weight_decay: Option<f64>,
    /// SGD momentum [default: 0.9]
    #[arg(long, help_heading = "Optimization")]
    pub momentum: Option<f64>,
    /// Learning-rate schedule [default: cosine]
    #[arg(long, value_parser = ["constant", "cosine", "warmup-cosine"], help_heading = "Optimization")]
    pub schedule: Option<String>,
    /// Warm-up steps of warmup-cosine [default: 0]
    #[arg(long, help_heading = "Optimization")]
    pub warmup: Option<u64>,
    /// Final learning rate of the cosine as a share of --lr [default: 0.01]
    #[arg(long, help_heading = "Optimization")]
    pub min_lr_factor: Option<f64>,
    /// Clip the global gradient norm to this value [default: off]
    #[arg(long, help_heading = "Optimization")]
    pub clip_grad: Option<f64>,
    /// Keep an EMA of the weights with this decay, used for evaluation and sampling [default: off]
    #[arg(long, help_heading = "Optimization")]
    pub ema: Option<f64>,
    /// Training steps [default: 2000]
    #[arg(long)]
    pub steps: Option<u64>,
    /// Minibatch size [default: 512]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed of initialisation, minibatches, noise and split [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// DSM / DSM-CV noise scale σ [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    pub sigma: Option<f64>,
    /// Smallest noise of ncsn / ve [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    pub sigma_min: Option<f64>,
    /// Largest noise of ncsn / ve [default: 2 for ncsn, 4 for ve]
    #[arg(long, help_heading = "Objective")]
    pub sigma_max: Option<f64>,
    /// NCSN noise levels [default: 10]
    #[arg(long, help_heading = "Objective")]
    pub levels: Option<usize>,
    /// VP SDE β_min [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    pub beta_min: Option<f64>,
    /// VP SDE β_max [default: 20]
    #[arg(long, help_heading = "Objective")]
    pub beta_max: Option<f64>,
    /// Smallest diffusion time of ve / vp (the density is read there) [default: 0.001]
    #[arg(long, help_heading = "Objective")]
    pub t_min: Option<f64>,
    /// Langevin steps per CD/PCD update [default: 20]
    #[arg(long, help_heading = "Objective")]
    pub langevin_steps: Option<usize>,
    /// Langevin step ε of CD/PCD (x ← x + ε²/2·s + ε·z) [default: 0.3]
    #[arg(long, help_heading = "Objective")]
    pub langevin_eps: Option<f64>,
    /// CD/PCD SGLD noise σ: with it, x ← x + η·s + σ·z and --langevin-eps is the drift step η
    /// (IGEBM: η 10, σ 0.005; JEM: η 1, σ 0.01); 0 for the tied step [default: 0]
    #[arg(long, help_heading = "Objective")]
    pub langevin_noise: Option<f64>,
    /// PCD replay buffer rows [default: 10000]
    #[arg(long, help_heading = "Objective")]
    pub buffer_size: Option<usize>,
    /// Share of PCD chains restarted from noise per batch [default: 0.05]
    #[arg(long, help_heading = "Objective")]
    pub reinit: Option<f64>,
    /// CD/PCD energy regulariser α(E₊² + E₋²) [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    pub alpha: Option<f64>,
    /// NCE noise samples per data sample [default: 1]
    #[arg(long, help_heading = "Objective")]
    pub nce_ratio: Option<f64>,
    /// NCE: inflation of the Gaussian fitted to the data, used as noise [default: 1.2]
    #[arg(long, help_heading = "Objective")]
    pub nce_inflate: Option<f64>,
    /// SSM projections per sample [default: 1]
    #[arg(long, help_heading = "Objective")]
    pub projections: Option<usize>,
    /// CNCE noise scale ε [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    pub epsilon: Option<f64>,
    /// FCE: affine couplings of the RealNVP noise flow [default: 6]
    #[arg(long, help_heading = "Objective")]
    pub flow_couplings: Option<usize>,
    /// MPF: standard deviation of the Gaussian neighbours [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    pub mpf_sigma: Option<f64>,
    /// MPF neighbours per data point, even [default: 4]
    #[arg(long, help_heading = "Objective")]
    pub neighbours: Option<usize>,
    /// MVL Langevin step η [default: 0.001]
    #[arg(long, help_heading = "Objective")]
    pub mvl_step: Option<f64>,
    /// KSD Gaussian-kernel bandwidth, 0 for the median heuristic [default: 0.5]
    #[arg(long, help_heading = "Objective")]
    pub ksd_bandwidth: Option<f64>,
    /// LSD critic penalty λ [default: 0.5]
    #[arg(long, help_heading = "Objective")]
    pub lsd_lambda: Option<f64>,
    /// Energy discrepancy: perturbation variance t [default: 0.25]
    #[arg(long, help_heading = "Objective")]
    pub ed_t: Option<f64>,
    /// Energy discrepancy: contrasts per data point [default: 32]
    #[arg(long, help_heading = "Objective")]
    pub contrasts: Option<usize>,
    /// DRL noise σ of the noisy copy [default: 0.5]
    #[arg(long, help_heading = "Objective")]
    pub drl_sigma: Option<f64>,
    /// DRL Langevin steps on p(x | x̃) per batch [default: 30]
    #[arg(long, help_heading = "Objective")]
    pub drl_steps: Option<usize>,
    /// Share of a finite data set held out for testing, in (0, 1) [default: 0.2]
    #[arg(long, help_heading = "Data")]
    pub test_frac: Option<f64>,
    /// Share of the rest held out for validation during training, in [0, 1) (0: none)
    /// [default: 0.1]
    #[arg(long, help_heading = "Data")]
    pub val_frac: Option<f64>,
    /// Do not standardise CSV/.npy columns (zero mean, unit variance)
    #[arg(long, help_heading = "Data")]
    pub no_standardize: bool,
    /// Train image sets on y = logit(λ + (1 − 2λ)x) of their pixels x in [0, 1], with this λ
    /// in (0, 0.5); NLLs and bits/dim stay those of the pixels [default: off]
    #[arg(long, value_name = "LAMBDA", help_heading = "Data")]
    pub logit: Option<f64>,
    /// Write the checkpoint every N steps (and at the end) [default: 500]
    #[arg(long, help_heading = "Output")]
    pub checkpoint_every: Option<u64>,
    /// Write a metrics line every N steps [default: 10]
    #[arg(long, help_heading = "Output")]
    pub log_every: Option<u64>,
    /// Measure the validation figure every N steps (NLL in nats for d ≤ 2, else the
    /// objective's loss on the validation rows), 0 for only at the end [default: --steps/10]
    #[arg(long, help_heading = "Output")]
    pub eval_every: Option<u64>,
    /// Stop after N validation measurements without improvement and evaluate the best
    /// checkpoint (best.safetensors, kept in every run) [default: off]
    #[arg(long, value_name = "N", help_heading = "Output")]
    pub early_stop: Option<u64>,
}

impl ConfigArgs {
    /// The flags that were given (for --resume, which allows none of them but --steps).
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! check {
            ($($f:ident => $n:literal),*) => { $( if self.$f.is_some() { v.push($n); } )* };
        }
        check!(hidden => "--hidden", arch => "--arch", conv_head => "--conv-head", activation => "--activation", optimizer => "--optimizer",
            lr => "--lr", weight_decay => "--weight-decay", momentum => "--momentum",
            schedule => "--schedule", warmup => "--warmup", min_lr_factor => "--min-lr-factor",
            clip_grad => "--clip-grad", ema => "--ema", batch => "--batch", seed => "--seed",
            sigma => "--sigma", sigma_min => "--sigma-min", sigma_max => "--sigma-max",
            levels => "--levels", beta_min => "--beta-min", beta_max => "--beta-max",
            t_min => "--t-min", langevin_steps => "--langevin-steps",
            langevin_eps => "--langevin-eps", langevin_noise => "--langevin-noise", buffer_size => "--buffer-size",
            reinit => "--reinit", alpha => "--alpha", nce_ratio => "--nce-ratio",
            nce_inflate => "--nce-inflate", projections => "--projections",
            epsilon => "--epsilon", flow_couplings => "--flow-couplings",
            mpf_sigma => "--mpf-sigma", neighbours => "--neighbours", mvl_step => "--mvl-step",
            ksd_bandwidth => "--ksd-bandwidth", lsd_lambda => "--lsd-lambda", ed_t => "--ed-t",
            contrasts => "--contrasts", drl_sigma => "--drl-sigma", drl_steps => "--drl-steps",
            test_frac => "--test-frac", val_frac => "--val-frac", logit => "--logit",
            checkpoint_every => "--checkpoint-every", log_every => "--log-every",
            eval_every => "--eval-every", early_stop => "--early-stop");
        if self.no_standardize {
            v.push("--no-standardize");
        }
        v
    }

    /// The configuration: defaults, then the flags given.
    pub fn config(&self, data: DataSpec, objective: &str) -> TrainConfig {
        let mut c = TrainConfig {
            data,
            objective: objective.to_string(),
            ..TrainConfig::default()
        };
        if objective == names::VE {
            c.params.sigma_max = 4.0;
        }
        macro_rules! set {
            ($($f:ident => $dst:expr),*) => { $( if let Some(v) = self.$f.clone() { $dst = v; } )* };
        }
        set!(hidden => c.hidden, lr => c.lr, weight_decay => c.weight_decay,
            momentum => c.momentum, warmup => c.warmup, min_lr_factor => c.min_lr_factor,
            steps => c.steps, batch => c.batch, seed => c.seed, sigma => c.params.sigma,
            sigma_min => c.params.sigma_min, sigma_max => c.params.sigma_max,
            levels => c.params.levels, beta_min => c.params.beta_min,
            beta_max => c.params.beta_max, t_min => c.params.t_min,
            langevin_steps => c.params.langevin_steps, langevin_eps => c.params.langevin_eps,
            langevin_noise => c.params.langevin_noise,
            buffer_size => c.params.buffer_size, reinit => c.params.reinit,
            alpha => c.params.alpha, nce_ratio => c.params.nce_ratio,
            nce_inflate => c.params.nce_inflate, projections => c.params.projections,
            epsilon => c.params.epsilon, flow_couplings => c.params.flow_couplings,
            mpf_sigma => c.params.mpf_sigma, neighbours => c.params.neighbours,
            mvl_step => c.params.mvl_step, ksd_bandwidth => c.params.ksd_bandwidth,
            lsd_lambda => c.params.lsd_lambda, ed_t => c.params.ed_t,
            contrasts => c.params.contrasts, drl_sigma => c.params.drl_sigma,
            drl_steps => c.params.drl_steps,
            test_frac => c.data_options.test_frac, val_frac => c.data_options.val_frac,
            checkpoint_every => c.checkpoint_every, log_every => c.log_every,
            eval_every => c.eval_every);
        if self.eval_every.is_none() {
            // ten measurements per run, on metrics lines
            c.eval_every = (c.steps / 10).max(1).div_ceil(c.log_every) * c.log_every;
        }
        c.clip_grad = self.clip_grad;
        c.ema = self.ema;
        c.early_stop = self.early_stop;
        if let Some(a) = &self.arch {
            c.arch = match a.as_str() {
                "conv" => ebm::config::Arch::Conv,
                _ => ebm::config::Arch::Mlp,
            };
        }
        if let Some(h) = &self.conv_head {
            c.conv_head = match h.as_str() {
                "flatten" => ebm::nn::ConvHead::Flatten,
                _ => ebm::nn::ConvHead::SumPool,
            };
        }
        if let Some(a) = &self.activation {
            c.activation = a.parse().expect("clap checked the name");
        }
        if let Some(o) = &self.optimizer {
            c.optimizer = match o.as_str() {
                "adamw" => OptimKind::AdamW,
                "sgd" => OptimKind::Sgd,
                _ => OptimKind::Adam,
            };
        }
        if let Some(s) = &self.schedule {
            c.schedule = match s.as_str() {
                "constant" => ScheduleKind::Constant,
                "warmup-cosine" => ScheduleKind::WarmupCosine,
                _ => ScheduleKind::Cosine,
            };
        }
        c.data_options.standardize = !self.no_standardize;
        c.data_options.logit = self.logit;
        c
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Training data: {DATA_HELP} [default: 8gaussians]
    #[arg(long, help = format!("Training data: {DATA_HELP} [default: 8gaussians]"))]
    pub data: Option<String>,
    /// Training objective [default: dsm-cv]
    #[arg(long, value_parser = objective_names())]
    pub objective: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Run directory [default: runs/<objective>-<data>-<time>]
    #[arg(long, help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory exactly where its checkpoint left it; --steps may
    /// extend it (the learning-rate schedule is then stretched to the new length)
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "out",
        help_heading = "Output"
    )]
    pub resume: Option<PathBuf>,
    /// Skip the final evaluation, samples and PNGs
    #[arg(long, help_heading = "Output")]
    pub no_report: bool,
    /// Model samples drawn at the end, for MMD and the pictures
    #[arg(long, default_value_t = 1000, help_heading = "Output")]
    pub eval_samples: usize,
    /// AIS temperatures of the final report's test NLL (data with more than 2 dimensions)
    #[arg(long, default_value_t = 500, help_heading = "Output")]
    pub ais_temps: usize,
    /// AIS chains of the final report's test NLL (data with more than 2 dimensions)
    #[arg(long, default_value_t = 256, help_heading = "Output")]
    pub ais_chains: usize,
    /// Print only errors
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    /// Stop as if interrupted before this step (for tests)
    #[arg(long, hide = true)]
    pub stop_at: Option<u64>,
    /// Make the loss of this step NaN once (tests of the divergence guard)
    #[arg(long, hide = true)]
    pub poison_at: Option<u64>,
    /// Under mpirun/srun: seconds a rank waits for the others at a collective before it
    /// stops, naming the ranks that did not arrive
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub comm_timeout: f64,
    /// RANK@STEP: that rank hangs before that step (tests of the timeout)
    #[arg(long, hide = true)]
    pub hang_rank: Option<String>,
    /// RANK@STEP: that rank dies before that step (tests of the timeout)
    #[arg(long, hide = true)]
    pub kill_rank: Option<String>,
}

#[derive(Args)]
pub struct SampleArgs {
    /// Run directory (its checkpoint.safetensors), or a checkpoint file such as RUN/best.safetensors
    pub run: PathBuf,
    /// Sampler; auto picks MALA for an energy, annealed Langevin for ncsn, predictor–corrector
    /// for ve/vp
    #[arg(long, default_value = "auto", value_parser = SamplerKind::NAMES)]
    pub sampler: String,
    /// Number of samples (chains)
    #[arg(long, short, default_value_t = 1000)]
    pub n: usize,
    /// Sampler steps after warm-up (per noise level for annealed) [default: depends on the
    /// sampler]
    #[arg(long)]
    pub steps: Option<usize>,
    /// Step size (fixes it for ULA, MALA and HMC, which otherwise adapt it; the initial one of
    /// nuts, chees and pt) [default: depends on the sampler]
    #[arg(long)]
    pub step_size: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .npy [default: RUN/samples-<sampler>.npy]; the PNG and the JSON of diagnostics
    /// go beside it
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Warm-up (adaptation) iterations of mala, hmc, nuts, chees and pt [default: --steps/2]
    #[arg(long, help_heading = "Sampler options")]
    pub warmup: Option<usize>,
    /// Target acceptance of the step-size adaptation, in (0, 1) (mala 0.574, hmc 0.65, nuts
    /// 0.8, chees 0.651)
    #[arg(long, help_heading = "Sampler options")]
    pub target_accept: Option<f64>,
    /// nuts: maximum tree depth (at most 2^depth − 1 leapfrog steps) [default: 10]
    #[arg(long, help_heading = "Sampler options")]
    pub max_depth: Option<u32>,
    /// nuts: the mass matrix adapted during warm-up [default: diag]
    #[arg(long, value_parser = METRIC_NAMES, help_heading = "Sampler options")]
    pub metric: Option<String>,
    /// hmc, and pt with --kernel hmc: leapfrog steps per trajectory [default: 10]
    #[arg(long, help_heading = "Sampler options")]
    pub leapfrog: Option<usize>,
    /// pt: replicas on the temperature ladder [default: 8]
    #[arg(long, help_heading = "Sampler options")]
    pub replicas: Option<usize>,
    /// pt: the hottest inverse temperature, in (0, 1) [default: 0.05]
    #[arg(long, help_heading = "Sampler options")]
    pub beta_min: Option<f64>,
    /// pt: the kernel inside each replica [default: mala]
    #[arg(long, value_parser = PtKernel::NAMES, help_heading = "Sampler options")]
    pub kernel: Option<String>,
    /// pt: adapt the ladder from the swap rates during warm-up
    #[arg(long, help_heading = "Sampler options")]
    pub adaptive_ladder: bool,
}

impl SampleArgs {
    /// The sampler and its options, as given (checked against the sampler by `draw`).
    pub fn options(&self) -> Result<SampleOptions, ebm::error::Error> {
        Ok(SampleOptions {
            sampler: Some(SamplerKind::parse(&self.sampler)?),
            steps: self.steps,
            step_size: self.step_size,
            warmup: self.warmup,
            target_accept: self.target_accept,
            max_depth: self.max_depth,
            metric: self.metric.as_deref().map(parse_metric).transpose()?,
            leapfrog: self.leapfrog,
            replicas: self.replicas,
            beta_min: self.beta_min,
            kernel: self.kernel.as_deref().map(PtKernel::parse).transpose()?,
            adaptive_ladder: self.adaptive_ladder,
            diagnostics: true,
        })
    }
}

#[derive(Args)]
pub struct EvalArgs {
    /// Run directory (its last checkpoint), or a checkpoint file such as RUN/best.safetensors
    /// (the best validation figure)
    pub run: PathBuf,
    /// Model samples for MMD
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Test rows for MMD and KSD (the NLL uses all)
    #[arg(long, default_value_t = 500)]
    pub rows: usize,
    /// AIS temperatures (data with more than 2 dimensions)
    #[arg(long, default_value_t = 500)]
    pub ais_temps: usize,
    /// AIS chains (importance samples)
    #[arg(long, default_value_t = 256)]
    pub ais_chains: usize,
    /// Where AIS starts: `data`, the training rows' diagonal Gaussian with doubled standard
    /// deviations, or `standard`, N(0, I) (needs far more temperatures on images)
    #[arg(long, default_value = "data", value_parser = ["data", "standard"])]
    pub ais_prior: String,
    /// Sampler for the MMD samples
    #[arg(long, default_value = "auto", value_parser = SamplerKind::NAMES)]
    pub sampler: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the JSON to this file
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Objectives to train, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "dsm,dsm-cv,ssm-vr,nce,pcd,ncsn", value_parser = objective_names())]
    pub objectives: Vec<String>,
    /// Training data (see `ebm train --help`) [default: 8gaussians]
    #[arg(long)]
    pub data: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output directory [default: runs/compare-<data>-<time>]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print only errors and the table
    #[arg(long, short)]
    pub quiet: bool,
}

/// The objectives' names for clap, each with its line from the table of objectives (shown by
/// `--help`).
fn objective_names() -> PossibleValuesParser {
    PossibleValuesParser::new(
        OBJECTIVES
            .iter()
            .map(|o| PossibleValue::new(o.name).help(o.about)),
    )
}
