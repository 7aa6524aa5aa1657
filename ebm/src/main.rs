//! The `ebm` command: train, sample, evaluate and compare energy-based models.

use clap::{Args, Parser, Subcommand};
use ebm::config::{ObjectiveKind, OptimKind, ScheduleKind, TrainConfig};
use ebm::console::{err as say_err, out as say};
use ebm::data::DataSpec;
use ebm::error::Error;
use ebm::limits;
use ebm::model::load_run;
use ebm::report::{self, EvalOptions};
use ebm::sample::{SampleOptions, SamplerKind};
use ebm::train::{self, RunEnd, RunOptions};
use ebm_core::Rng;
use std::path::PathBuf;

const OBJECTIVES: [&str; 11] = [
    "dsm", "dsm-cv", "esm", "ssm", "ssm-vr", "nce", "pcd", "cd", "ncsn", "ve", "vp",
];
const DATA_HELP: &str = "8gaussians, checkerboard, 2spirals, rings, moons, swissroll, pinwheel, circles, digits, or a path to a .csv/.npy file (rows = samples)";

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
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
struct ConfigArgs {
    /// Hidden widths of the network, comma-separated [default: 128,128]
    #[arg(long, value_delimiter = ',', help_heading = "Model")]
    hidden: Option<Vec<usize>>,
    /// Activation between layers [default: silu]
    #[arg(long, value_parser = ["silu", "softplus", "elu", "tanh", "gelu", "relu"], help_heading = "Model")]
    activation: Option<String>,
    /// Optimizer [default: adam]
    #[arg(long, value_parser = ["adam", "adamw", "sgd"], help_heading = "Optimization")]
    optimizer: Option<String>,
    /// Peak learning rate [default: 3e-3]
    #[arg(long, help_heading = "Optimization")]
    lr: Option<f64>,
    /// Weight decay (L2 for adam/sgd, decoupled for adamw) [default: 0]
    #[arg(long, help_heading = "Optimization")]
    weight_decay: Option<f64>,
    /// SGD momentum [default: 0.9]
    #[arg(long, help_heading = "Optimization")]
    momentum: Option<f64>,
    /// Learning-rate schedule [default: cosine]
    #[arg(long, value_parser = ["constant", "cosine", "warmup-cosine"], help_heading = "Optimization")]
    schedule: Option<String>,
    /// Warm-up steps of warmup-cosine [default: 0]
    #[arg(long, help_heading = "Optimization")]
    warmup: Option<u64>,
    /// Final learning rate of the cosine as a share of --lr [default: 0.01]
    #[arg(long, help_heading = "Optimization")]
    min_lr_factor: Option<f64>,
    /// Clip the global gradient norm to this value [default: off]
    #[arg(long, help_heading = "Optimization")]
    clip_grad: Option<f64>,
    /// Keep an EMA of the weights with this decay, used for evaluation and sampling [default: off]
    #[arg(long, help_heading = "Optimization")]
    ema: Option<f64>,
    /// Training steps [default: 2000]
    #[arg(long)]
    steps: Option<u64>,
    /// Minibatch size [default: 512]
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of initialisation, minibatches, noise and split [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// DSM / DSM-CV noise scale σ [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    sigma: Option<f64>,
    /// Smallest noise of ncsn / ve [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    sigma_min: Option<f64>,
    /// Largest noise of ncsn / ve [default: 2 for ncsn, 4 for ve]
    #[arg(long, help_heading = "Objective")]
    sigma_max: Option<f64>,
    /// NCSN noise levels [default: 10]
    #[arg(long, help_heading = "Objective")]
    levels: Option<usize>,
    /// VP SDE β_min [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    beta_min: Option<f64>,
    /// VP SDE β_max [default: 20]
    #[arg(long, help_heading = "Objective")]
    beta_max: Option<f64>,
    /// Smallest diffusion time of ve / vp (the density is read there) [default: 0.001]
    #[arg(long, help_heading = "Objective")]
    t_min: Option<f64>,
    /// Langevin steps per CD/PCD update [default: 20]
    #[arg(long, help_heading = "Objective")]
    langevin_steps: Option<usize>,
    /// Langevin step ε of CD/PCD (x ← x + ε²/2·s + ε·z) [default: 0.3]
    #[arg(long, help_heading = "Objective")]
    langevin_eps: Option<f64>,
    /// PCD replay buffer rows [default: 10000]
    #[arg(long, help_heading = "Objective")]
    buffer_size: Option<usize>,
    /// Share of PCD chains restarted from noise per batch [default: 0.05]
    #[arg(long, help_heading = "Objective")]
    reinit: Option<f64>,
    /// CD/PCD energy regulariser α(E₊² + E₋²) [default: 0.1]
    #[arg(long, help_heading = "Objective")]
    alpha: Option<f64>,
    /// NCE noise samples per data sample [default: 1]
    #[arg(long, help_heading = "Objective")]
    nce_ratio: Option<f64>,
    /// NCE: inflation of the Gaussian fitted to the data, used as noise [default: 1.2]
    #[arg(long, help_heading = "Objective")]
    nce_inflate: Option<f64>,
    /// SSM projections per sample [default: 1]
    #[arg(long, help_heading = "Objective")]
    projections: Option<usize>,
    /// Share of a finite data set held out for testing, in (0, 1) [default: 0.2]
    #[arg(long, help_heading = "Data")]
    test_frac: Option<f64>,
    /// Share of the rest held out for validation during training, in [0, 1) (0: none)
    /// [default: 0.1]
    #[arg(long, help_heading = "Data")]
    val_frac: Option<f64>,
    /// Do not standardise CSV/.npy columns (zero mean, unit variance)
    #[arg(long, help_heading = "Data")]
    no_standardize: bool,
    /// Write the checkpoint every N steps (and at the end) [default: 500]
    #[arg(long, help_heading = "Output")]
    checkpoint_every: Option<u64>,
    /// Write a metrics line every N steps [default: 10]
    #[arg(long, help_heading = "Output")]
    log_every: Option<u64>,
    /// Measure the validation figure every N steps (NLL in nats for d ≤ 2, else the
    /// objective's loss on the validation rows), 0 for only at the end [default: --steps/10]
    #[arg(long, help_heading = "Output")]
    eval_every: Option<u64>,
    /// Stop after N validation measurements without improvement and evaluate the best
    /// checkpoint (best.safetensors, kept in every run) [default: off]
    #[arg(long, value_name = "N", help_heading = "Output")]
    early_stop: Option<u64>,
}

impl ConfigArgs {
    /// The flags that were given (for --resume, which allows none of them but --steps).
    fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! check {
            ($($f:ident => $n:literal),*) => { $( if self.$f.is_some() { v.push($n); } )* };
        }
        check!(hidden => "--hidden", activation => "--activation", optimizer => "--optimizer",
            lr => "--lr", weight_decay => "--weight-decay", momentum => "--momentum",
            schedule => "--schedule", warmup => "--warmup", min_lr_factor => "--min-lr-factor",
            clip_grad => "--clip-grad", ema => "--ema", batch => "--batch", seed => "--seed",
            sigma => "--sigma", sigma_min => "--sigma-min", sigma_max => "--sigma-max",
            levels => "--levels", beta_min => "--beta-min", beta_max => "--beta-max",
            t_min => "--t-min", langevin_steps => "--langevin-steps",
            langevin_eps => "--langevin-eps", buffer_size => "--buffer-size",
            reinit => "--reinit", alpha => "--alpha", nce_ratio => "--nce-ratio",
            nce_inflate => "--nce-inflate", projections => "--projections",
            test_frac => "--test-frac", val_frac => "--val-frac",
            checkpoint_every => "--checkpoint-every", log_every => "--log-every",
            eval_every => "--eval-every", early_stop => "--early-stop");
        if self.no_standardize {
            v.push("--no-standardize");
        }
        v
    }

    /// The configuration: defaults, then the flags given.
    fn config(&self, data: DataSpec, objective: ObjectiveKind) -> TrainConfig {
        let mut c = TrainConfig {
            data,
            objective,
            ..TrainConfig::default()
        };
        if objective == ObjectiveKind::Ve {
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
            buffer_size => c.params.buffer_size, reinit => c.params.reinit,
            alpha => c.params.alpha, nce_ratio => c.params.nce_ratio,
            nce_inflate => c.params.nce_inflate, projections => c.params.projections,
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
        c
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Training data: {DATA_HELP} [default: 8gaussians]
    #[arg(long, help = format!("Training data: {DATA_HELP} [default: 8gaussians]"))]
    data: Option<String>,
    /// Training objective [default: dsm-cv]
    #[arg(long, value_parser = OBJECTIVES)]
    objective: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
    /// Run directory [default: runs/<objective>-<data>-<time>]
    #[arg(long, help_heading = "Output")]
    out: Option<PathBuf>,
    /// Continue the run in this directory exactly where its checkpoint left it; --steps may
    /// extend it (the learning-rate schedule is then stretched to the new length)
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "out",
        help_heading = "Output"
    )]
    resume: Option<PathBuf>,
    /// Skip the final evaluation, samples and PNGs
    #[arg(long, help_heading = "Output")]
    no_report: bool,
    /// Model samples drawn at the end, for MMD and the pictures
    #[arg(long, default_value_t = 1000, help_heading = "Output")]
    eval_samples: usize,
    /// Print only errors
    #[arg(long, short, help_heading = "Output")]
    quiet: bool,
    /// Stop as if interrupted before this step (for tests)
    #[arg(long, hide = true)]
    stop_at: Option<u64>,
    /// Make the loss of this step NaN once (tests of the divergence guard)
    #[arg(long, hide = true)]
    poison_at: Option<u64>,
}

#[derive(Args)]
struct SampleArgs {
    /// Run directory (its checkpoint.safetensors), or a checkpoint file such as RUN/best.safetensors
    run: PathBuf,
    /// Sampler; auto picks MALA for an energy, annealed Langevin for ncsn, predictor–corrector for ve/vp
    #[arg(long, default_value = "auto", value_parser = SamplerKind::NAMES)]
    sampler: String,
    /// Number of samples (chains)
    #[arg(long, short, default_value_t = 1000)]
    n: usize,
    /// Sampler steps (per noise level for annealed) [default: depends on the sampler]
    #[arg(long)]
    steps: Option<usize>,
    /// Step size (fixes it; MALA and HMC otherwise adapt it) [default: depends on the sampler]
    #[arg(long)]
    step_size: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output .npy [default: RUN/samples-<sampler>.npy]; the PNG goes beside it
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
    /// Run directory (its last checkpoint), or a checkpoint file such as RUN/best.safetensors
    /// (the best validation figure)
    run: PathBuf,
    /// Model samples for MMD
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Test rows for MMD and KSD (the NLL uses all)
    #[arg(long, default_value_t = 500)]
    rows: usize,
    /// AIS temperatures (data with more than 2 dimensions)
    #[arg(long, default_value_t = 500)]
    ais_temps: usize,
    /// Sampler for the MMD samples
    #[arg(long, default_value = "auto", value_parser = SamplerKind::NAMES)]
    sampler: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the JSON to this file
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    /// Objectives to train, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "dsm,dsm-cv,ssm-vr,nce,pcd,ncsn", value_parser = OBJECTIVES)]
    objectives: Vec<String>,
    /// Training data (see `ebm train --help`) [default: 8gaussians]
    #[arg(long)]
    data: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
    /// Output directory [default: runs/compare-<data>-<time>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only errors and the table
    #[arg(long, short)]
    quiet: bool,
}

/// `YYYYmmdd-HHMMSS` in UTC, for default run names.
fn timestamp() -> String {
    ebm::rundir::utc_timestamp(false)
}

fn train_cmd(a: TrainArgs) -> Result<i32, Error> {
    if a.eval_samples < 2 {
        return Err(Error::usage("--eval-samples must be at least 2"));
    }
    limits::at_most("--eval-samples", a.eval_samples, limits::MAX_SAMPLES)?;
    let (config, opts) = if let Some(dir) = &a.resume {
        let mut given = a.config.given();
        if a.data.is_some() {
            given.push("--data");
        }
        if a.objective.is_some() {
            given.push("--objective");
        }
        if let Some(f) = given.first() {
            return Err(Error::usage(format!(
                "--resume continues a run with its own settings; {f} cannot be changed (only --steps may extend it)"
            )));
        }
        if !dir.is_dir() {
            return Err(Error::checkpoint(format!(
                "cannot resume: {} is not a run directory",
                dir.display()
            )));
        }
        let opts = RunOptions {
            out: dir.clone(),
            resume: true,
            extend_steps: a.config.steps,
            ..RunOptions::default()
        };
        (None, opts)
    } else {
        let data = DataSpec::parse(a.data.as_deref().unwrap_or("8gaussians"))?;
        let objective = ObjectiveKind::parse(a.objective.as_deref().unwrap_or("dsm-cv"))?;
        let config = a.config.config(data, objective);
        config.validate()?;
        let out = a.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(format!(
                "{}-{}-{}",
                objective.name(),
                config.data.label(),
                timestamp()
            ))
        });
        let opts = RunOptions {
            out,
            ..RunOptions::default()
        };
        (Some(config), opts)
    };
    let opts = RunOptions {
        stop_at: a.stop_at,
        poison_at: a.poison_at,
        no_report: a.no_report,
        eval_samples: a.eval_samples,
        quiet: a.quiet,
        ..opts
    };
    match train::run(config, &opts)? {
        RunEnd::Finished(_) => Ok(0),
        RunEnd::Interrupted { .. } => Ok(130),
    }
}

fn sample_cmd(a: SampleArgs) -> Result<i32, Error> {
    if a.n < 2 {
        return Err(Error::usage("--n must be at least 2"));
    }
    let (loaded, data) = load_run(&a.run)?;
    limits::check_sampling(a.n, data.dim, a.steps, None, None)?;
    let opts = SampleOptions {
        sampler: Some(SamplerKind::parse(&a.sampler)?),
        steps: a.steps,
        step_size: a.step_size,
    };
    let mut rng = Rng::new(a.seed).stream(0x5A3);
    let t0 = std::time::Instant::now();
    let (x, info) = ebm::sample::draw(
        &loaded.net,
        loaded.noise(),
        &data.bounds(),
        a.n,
        &opts,
        &mut rng,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let dir = report::run_dir(&a.run);
    let npy = a
        .out
        .clone()
        .unwrap_or_else(|| dir.join(format!("samples-{}.npy", info.sampler)));
    if npy.extension().and_then(|e| e.to_str()) != Some("npy") {
        return Err(Error::usage(format!(
            "--out {} must end in .npy",
            npy.display()
        )));
    }
    if let Some(parent) = npy.parent().filter(|p| !p.as_os_str().is_empty()) {
        ebm::io::create_dir(parent)?;
    }
    let out = loaded.standardization().map_or(x.clone(), |s| s.invert(&x));
    ebm::data::write_npy(&npy, &out)?;
    let png = npy.with_extension("png");
    let title = format!(
        "{} samples ({}, {} steps) — {} on {}",
        a.n,
        info.sampler,
        info.steps,
        loaded.config.objective.name(),
        loaded.config.data.label()
    );
    if data.dim == 1 {
        let curve = ebm::plot1d::Curve::of(&loaded.density(), data.bounds()[0], 400);
        ebm::plot1d::samples_png(&png, &x.to_vec_f64(), &curve, &title)?;
    } else if data.dim == 2 {
        let g = ebm::plot::Grid::of(&loaded.density(), &data.bounds(), 200);
        ebm::plot::samples_png(&png, &g, &x, &title)?;
    } else if let Some(hw) = data.images {
        ebm::plot::digits_png(&png, &x, &data.test, hw, &title)?;
    } else {
        ebm::plot::scatter_png(&png, &data.test, &x, &title)?;
    }
    let finite = x.to_vec_f64().iter().filter(|v| v.is_finite()).count();
    say(&format!(
        "{} samples by {} ({} steps{}) in {secs:.1} s{}\nwrote {}, {}",
        a.n,
        info.sampler,
        info.steps,
        info.accept_rate
            .map(|r| format!(", acceptance {r:.2}"))
            .unwrap_or_default(),
        if finite < x.numel() {
            format!("; {} values are not finite", x.numel() - finite)
        } else {
            String::new()
        },
        npy.display(),
        png.display()
    ));
    Ok(0)
}

fn eval_cmd(a: EvalArgs) -> Result<i32, Error> {
    if a.samples < 2 || a.rows < 2 {
        return Err(Error::usage("--samples and --rows must be at least 2"));
    }
    let (loaded, data) = load_run(&a.run)?;
    limits::check_sampling(a.samples, data.dim, None, Some(a.rows), Some(a.ais_temps))?;
    let log_det = data.standardization.as_ref().map_or(0.0, |s| s.log_det());
    let opts = EvalOptions {
        rows: a.rows,
        samples: a.samples,
        ais_temps: a.ais_temps,
        seed: a.seed,
        sample: SampleOptions {
            sampler: Some(SamplerKind::parse(&a.sampler)?),
            ..SampleOptions::default()
        },
    };
    let (mut r, _) = report::evaluate(&loaded.net, loaded.noise(), &data, log_det, &opts)?;
    r.step = loaded.step;
    r.objective = loaded.config.objective.name().into();
    r.checkpoint = loaded
        .file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    let json = serde_json::to_string_pretty(&r).expect("reports serialise");
    // a reader that leaves early (`| head`) takes what it wanted: no error, no panic
    say(&json);
    if let Some(p) = &a.out {
        ebm::io::write_json(p, &r)?;
    }
    if let Some(note) = better_best(&loaded) {
        say_err(&note);
    }
    Ok(0)
}

/// A note when the run keeps a best checkpoint other than the one evaluated.
fn better_best(loaded: &ebm::model::Loaded) -> Option<String> {
    let best = loaded.dir.join(ebm::heldout::BEST);
    if loaded.file.file_name() == best.file_name() {
        return None;
    }
    let ck = ebm::nn::Checkpoint::load(&best).ok()?;
    (ck.step != loaded.step).then(|| {
        format!(
            "note: {} holds the checkpoint with the best validation figure (step {} of {}); evaluate it with `ebm eval {}`",
            best.display(),
            ck.step,
            loaded.step,
            best.display()
        )
    })
}

fn compare_cmd(a: CompareArgs) -> Result<i32, Error> {
    let data = DataSpec::parse(a.data.as_deref().unwrap_or("8gaussians"))?;
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("compare-{}-{}", data.label(), timestamp()))
    });
    let mut kinds = Vec::new();
    for o in &a.objectives {
        let k = ObjectiveKind::parse(o)?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let configs: Vec<TrainConfig> = kinds
        .iter()
        .map(|&k| a.config.config(data.clone(), k))
        .collect();
    for c in &configs {
        c.validate()?;
    }
    ebm::io::create_dir(&out)?;
    let _lock = ebm::rundir::RunLock::acquire(&out, "compare")?;
    if out.join("compare.json").exists() {
        return Err(Error::usage(format!(
            "{} already holds a comparison; pick another --out",
            out.display()
        )));
    }
    let mut rows = Vec::new();
    let mut panels = Vec::new();
    let mut dataset = None;
    for c in configs {
        let name = c.objective.name();
        let dir = out.join(name);
        if !a.quiet {
            say(&format!("── {name}"));
        }
        let opts = RunOptions {
            out: dir.clone(),
            quiet: a.quiet,
            ..RunOptions::default()
        };
        let r = match train::run(Some(c), &opts) {
            Ok(RunEnd::Finished(r)) => *r,
            Ok(RunEnd::Interrupted { .. }) => return Ok(130),
            Err(Error::Diverged(msg)) => {
                say_err(&format!("{name}: {msg}"));
                rows.push(serde_json::json!({"objective": name, "diverged": true}));
                continue;
            }
            Err(e) => return Err(e),
        };
        let (loaded, ds) = load_run(&dir)?;
        if ds.dim == 2 {
            if dataset.is_none() {
                let hist = ebm::plot::Grid::histogram(
                    &ds.train_sample(100_000).cast(ebm_core::DType::F64),
                    &ds.bounds(),
                    100,
                );
                panels.push(("data".to_string(), hist));
            }
            let nll = r
                .test_nll
                .map(|v| format!(" — NLL {v:.3}"))
                .unwrap_or_default();
            panels.push((
                format!("{name}{nll}"),
                ebm::plot::Grid::of(&loaded.density(), &ds.bounds(), 150),
            ));
        }
        dataset.get_or_insert(ds);
        rows.push(serde_json::json!({
            "objective": name, "test_nll": r.test_nll, "gap": r.gap, "mmd2": r.mmd2,
            "ksd2": r.ksd2, "train_seconds": r.train_seconds, "steps": r.step,
        }));
    }
    let label = data.label();
    let mut md = format!(
        "# {label}: objectives compared\n\n| objective | test NLL (nats/row, data units) | gap to entropy | MMD² | KSD² | train time (s) |\n| --- | --- | --- | --- | --- | --- |\n"
    );
    let f = |v: &serde_json::Value, d: usize| {
        v.as_f64().map_or("—".to_string(), |x| format!("{x:.d$}"))
    };
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r["objective"].as_str().unwrap_or("?"),
            f(&r["test_nll"], 3),
            f(&r["gap"], 3),
            r["mmd2"]
                .as_f64()
                .map_or("—".into(), |x| format!("{x:.2e}")),
            r["ksd2"]
                .as_f64()
                .map_or("—".into(), |x| format!("{x:.2e}")),
            f(&r["train_seconds"], 1),
        );
    }
    ebm::io::write_atomic(&out.join("compare.md"), md.as_bytes())?;
    ebm::io::write_json(&out.join("compare.json"), &rows)?;
    let mut files = vec!["compare.md", "compare.json"];
    if !panels.is_empty() {
        ebm::plot::compare_png(
            &out.join("compare.png"),
            &panels,
            &format!("{label}: learned densities, same budget"),
        )?;
        files.push("compare.png");
    }
    say(&md);
    let files: Vec<String> = files
        .iter()
        .map(|f| out.join(f).display().to_string())
        .collect();
    say(&format!("wrote {}", files.join(", ")));
    Ok(0)
}

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
        Cmd::Train(a) => train_cmd(a),
        Cmd::Sample(a) => sample_cmd(a),
        Cmd::Eval(a) => eval_cmd(a),
        Cmd::Compare(a) => compare_cmd(a),
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
