//! Evaluation (test NLL and log Z by quadrature in 2-D or AIS above, MMD, KSD) and the files
//! a finished run leaves: eval.json, samples.npy and the PNGs.

use crate::data::Dataset;
use crate::error::Error;
use crate::model::{Net, Noise};
use crate::plot::{self, Grid};
use crate::sample::{self, SampleInfo, SampleOptions};
use ebm_core::{DType, Rng, Tensor};
use ebm_objectives::eval::{ais_log_z, grid_log_z, ksd, mmd2, nll, AisConfig, DiagonalGaussian};
use ebm_samplers::Target;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Numbers of one evaluation, as written to eval.json.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The step of the checkpoint evaluated.
    pub step: u64,
    /// The data set's label.
    pub data: String,
    /// The objective's name.
    pub objective: String,
    /// Features per row.
    pub dim: usize,
    /// Test rows the NLL was taken over.
    pub test_rows: usize,
    /// The checkpoint evaluated (`checkpoint.safetensors`, or `best.safetensors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Test negative log-likelihood: nats per row, in the data file's units (standardisation
    /// undone), as [`Report::nll_units`] says.
    pub test_nll: Option<f64>,
    /// Test bits per dimension of an image set, in the units of its discrete pixels: the NLL
    /// of the dequantised pixels on [0, L)^d for L levels, NLL/(d ln 2) + log₂ L (Theis et al.
    /// 2016; L = 256 for 8-bit images, 17 for the digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_bits_per_dim: Option<f64>,
    /// The units of every NLL of the run (training progress, metrics, loss.png, eval.json).
    pub nll_units: String,
    /// log Z and how it was computed ("grid" quadrature or "ais").
    pub log_z: Option<f64>,
    /// How log Z was computed ("grid" or "ais").
    pub log_z_method: Option<String>,
    /// AIS's prior: "data" (the training rows' diagonal Gaussian, doubled) or "standard".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ais_prior: Option<String>,
    /// Quadrature: change when the grid is halved (an error bar). AIS: standard error.
    pub log_z_error: Option<f64>,
    /// The data's entropy when known, and NLL − entropy (≥ 0 up to estimation error).
    pub entropy: Option<f64>,
    /// NLL − entropy.
    pub gap: Option<f64>,
    /// Score-SDE runs (ve, vp): the test NLL of the model's probability-flow ODE density
    /// (Song et al. 2021, §4.3), nats per row in the data file's units, over
    /// [`Report::pf_ode_rows`] test rows: the likelihood the score-SDE paper reports, beside
    /// the AIS figure of the energy read at t_min.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pf_ode_nll: Option<f64>,
    /// [`Report::pf_ode_nll`] in bits per dimension of the discrete pixels (image sets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pf_ode_bits_per_dim: Option<f64>,
    /// Test rows of [`Report::pf_ode_nll`] (the first ones, at most `rows` of the options).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pf_ode_rows: Option<usize>,
    /// Squared MMD (Gaussian kernel, median bandwidth) between samples and test rows.
    pub mmd2: Option<f64>,
    /// Squared kernel Stein discrepancy (IMQ kernel) of test rows under the model's score,
    /// as an unbiased U-statistic: near zero for a good model, and it can be slightly
    /// negative (like MMD²).
    pub ksd2: Option<f64>,
    /// How the samples were drawn.
    pub sampler: Option<SampleInfo>,
    /// Model samples drawn.
    pub samples: usize,
    /// Wall-clock seconds of training.
    pub train_seconds: Option<f64>,
    /// Steps trained in `train_seconds` (fewer than `step` after a resume).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_steps: Option<u64>,
    /// Wall-clock seconds of this evaluation.
    pub eval_seconds: f64,
    /// The checkpoint with the best validation figure: file, step and figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_checkpoint: Option<serde_json::Value>,
    /// Warnings given during training (held-out figure worsening while the loss fell).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Files written, relative to the run directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// What every NLL of a run is measured in.
pub const NLL_UNITS: &str = "nats per row, in the data file's units";

impl Report {
    /// A report of no evaluation (a run with `--no-report`).
    pub fn empty(step: u64, train_seconds: f64) -> Report {
        Report {
            step,
            train_seconds: Some(train_seconds),
            nll_units: NLL_UNITS.into(),
            ..Report::default()
        }
    }
}

/// The prior p₀ that AIS anneals from to exp(−E)/Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AisPrior {
    /// N(0, I): blind to the data; far from them (images in [0, 1]^d, say), it needs many
    /// temperatures, and with too few it underestimates log Z (the forward estimate is a
    /// stochastic lower bound) and so the NLL.
    Standard,
    /// The diagonal Gaussian of the training rows with each standard deviation doubled
    /// (broader than the data, so that no mode of the model near them is cut off) and at least
    /// [`AIS_PRIOR_FLOOR`]: the path starts near the data and converges in far fewer
    /// temperatures.
    Data,
}

/// Smallest standard deviation of [`AisPrior::Data`] (a constant column, such as the blank
/// corner pixels of the digits, would otherwise pin the prior to a point).
pub const AIS_PRIOR_FLOOR: f64 = 0.05;

impl AisPrior {
    /// The prior of [`AisConfig::prior`] for `data` (None: N(0, I)).
    pub fn of(self, data: &Dataset) -> Option<DiagonalGaussian> {
        match self {
            AisPrior::Data if data.train.shape()[0] >= 2 => {
                let mut g = DiagonalGaussian::fit(&data.train, 0.0);
                g.std = g
                    .std
                    .iter()
                    .map(|s| (2.0 * s).max(AIS_PRIOR_FLOOR))
                    .collect();
                Some(g)
            }
            _ => None,
        }
    }

    /// Parses `standard` or `data`.
    pub fn parse(s: &str) -> Result<AisPrior, Error> {
        match s {
            "standard" => Ok(AisPrior::Standard),
            "data" => Ok(AisPrior::Data),
            _ => Err(Error::usage(format!(
                "--ais-prior must be `standard` or `data`, got `{s}`"
            ))),
        }
    }
}

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Test rows used for MMD and KSD (all rows for the NLL).
    pub rows: usize,
    /// Model samples drawn for MMD and the pictures.
    pub samples: usize,
    /// AIS temperatures (d > 2).
    pub ais_temps: usize,
    /// AIS chains (importance samples; d > 2).
    pub ais_chains: usize,
    /// Where AIS starts (d > 2).
    pub ais_prior: AisPrior,
    /// The seed of the evaluation's draws.
    pub seed: u64,
    /// How model samples are drawn.
    pub sample: SampleOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            rows: 500,
            samples: 1000,
            ais_temps: 500,
            ais_chains: 256,
            ais_prior: AisPrior::Data,
            seed: 0,
            sample: SampleOptions::default(),
        }
    }
}

fn head(x: &Tensor, n: usize) -> Tensor {
    let n = n.min(x.shape()[0]);
    x.index_select(&(0..n).collect::<Vec<_>>())
}

/// Bits per dimension of an NLL of `dim` pixels in [0, 1] (nats per row) dequantised from
/// `levels` levels: the density on [0, L)^d is L^−d times the one on [0, 1]^d.
pub fn bits_per_dim(nll: f64, dim: usize, levels: usize) -> f64 {
    nll / (dim as f64 * std::f64::consts::LN_2) + (levels as f64).log2()
}

/// Evaluates `net` on `data`; returns the report and the model samples it drew.
pub fn evaluate(
    net: &Net,
    noise: Noise,
    data: &Dataset,
    log_det: f64,
    opts: &EvalOptions,
) -> Result<(Report, Tensor), Error> {
    let t0 = Instant::now();
    let density = net.density(noise);
    let mut rng = Rng::new(opts.seed).stream(0xE7A1);
    let mut r = Report {
        dim: data.dim,
        data: data.spec.label(),
        test_rows: data.test.shape()[0],
        entropy: data.entropy(),
        nll_units: NLL_UNITS.into(),
        ..Report::default()
    };
    let (log_z, method, err) = if data.dim <= 2 {
        let cells = if data.dim == 1 { 2000 } else { 200 };
        let g = grid_log_z(&density, &data.bounds(), cells, 1e-4, DType::F32);
        (g.log_z, "grid", g.grid_error)
    } else {
        let cfg = AisConfig {
            n_temps: opts.ais_temps.max(2),
            n_chains: opts.ais_chains.max(2),
            prior_std: 1.0,
            step_size: 0.1,
            prior: opts.ais_prior.of(data),
            ..AisConfig::default()
        };
        r.ais_prior = Some(
            if cfg.prior.is_some() {
                "data"
            } else {
                "standard"
            }
            .into(),
        );
        let a = ais_log_z(&density, data.dim, None, &cfg, DType::F32, &mut rng);
        (a.forward, "ais", a.forward_se)
    };
    if log_z.is_finite() {
        let v = nll(&density, &data.test, log_z) + log_det;
        r.test_nll = v.is_finite().then_some(v);
        if let Some(levels) = data.levels {
            r.test_bits_per_dim = r.test_nll.map(|v| bits_per_dim(v, data.dim, levels));
        }
        r.log_z = Some(log_z);
        r.log_z_method = Some(method.into());
        r.log_z_error = Some(err);
        r.gap = r.entropy.zip(r.test_nll).map(|(h, v)| v - h);
    }
    if let Some(v) = pf_ode_nll_of(net, noise, &head(&data.test, opts.rows), &mut rng) {
        let v = v + log_det;
        r.pf_ode_rows = Some(data.test.shape()[0].min(opts.rows));
        r.pf_ode_nll = v.is_finite().then_some(v);
        if let Some(levels) = data.levels {
            r.pf_ode_bits_per_dim = r.pf_ode_nll.map(|v| bits_per_dim(v, data.dim, levels));
        }
    }
    let (samples, info) = sample::draw(
        net,
        noise,
        &data.bounds(),
        opts.samples,
        &opts.sample,
        &mut rng,
    )?;
    r.samples = samples.shape()[0];
    r.sampler = Some(info);
    let finite = samples.to_vec_f64().iter().all(|v| v.is_finite());
    let test = head(&data.test, opts.rows);
    if finite && test.shape()[0] >= 2 {
        r.mmd2 = Some(mmd2(&head(&samples, opts.rows), &test, None));
    }
    if test.shape()[0] >= 2 {
        let k = ksd(&test, &density.score(&test));
        r.ksd2 = k.is_finite().then_some(k);
    }
    r.eval_seconds = t0.elapsed().as_secs_f64();
    Ok((r, samples))
}

/// Heun steps of the probability-flow ODE of [`pf_ode_nll_of`] on a uniform time grid (the
/// score-SDE paper integrates with adaptive RK45; docs/conv-images.md compares 100 with 200
/// steps on a digits run).
pub const PF_ODE_STEPS: usize = 100;

/// Mean −log p(x) over the rows `x` by the probability-flow ODE of a score-SDE run (VE or
/// VP; `None` for other runs), in the model's space: Heun steps from the run's t_min to 1,
/// the divergence exact up to 16 dimensions and by one Rademacher probe per row above.
fn pf_ode_nll_of(net: &Net, noise: Noise, x: &Tensor, rng: &mut Rng) -> Option<f64> {
    use ebm_objectives::eval::{pf_ode_nll, TimeModel};
    use ebm_samplers::ode::{Divergence, OdeSolver, PfOde, Probe};
    let model: &dyn ebm_nn::NoiseConditionalModel = match net {
        Net::Cond(m) => m,
        Net::UNet(m) => m.as_ref(),
        Net::Mlp(_) | Net::Conv(_) => return None,
    };
    let d = x.numel() / x.shape()[0].max(1);
    let divergence = if d <= 16 {
        Divergence::Exact
    } else {
        Divergence::Hutchinson(Probe::Rademacher)
    };
    let x = x.cast(DType::F32);
    fn solve<S: ebm_samplers::sde::Sde>(
        sde: &S,
        t_min: f64,
        model: &dyn ebm_nn::NoiseConditionalModel,
        x: &Tensor,
        divergence: Divergence,
        rng: &mut Rng,
    ) -> f64 {
        let ode = PfOde::new(
            OdeSolver::Heun {
                n_steps: PF_ODE_STEPS,
            },
            t_min,
        );
        pf_ode_nll(sde, &TimeModel(model), x, &ode, divergence, None, rng).nats
    }
    match noise {
        Noise::Ve(sde, t_min) => Some(solve(&sde, t_min, model, &x, divergence, rng)),
        Noise::Vp(sde, t_min) => Some(solve(&sde, t_min, model, &x, divergence, rng)),
        Noise::None | Noise::Levels { .. } => None,
    }
}

/// Draws the pictures of a model into `dir`; returns the file names written.
pub fn pictures(
    dir: &Path,
    r: &Report,
    net: &Net,
    noise: Noise,
    data: &Dataset,
    samples: &Tensor,
    title: &str,
) -> Result<Vec<String>, Error> {
    let mut files = Vec::new();
    if data.dim == 1 {
        let b = data.bounds()[0];
        let model = crate::plot1d::Curve::of(&net.density(noise), b, 400);
        let train = data.train_sample(100_000).to_vec_f64();
        crate::plot1d::density_png(&dir.join("density.png"), &train, &model, title)?;
        files.push("density.png".into());
        let sampler = r.sampler.as_ref().map_or("model", |s| s.sampler.as_str());
        let st = format!("{} {sampler} samples over exp(−E)/Z", samples.shape()[0]);
        crate::plot1d::samples_png(&dir.join("samples.png"), &samples.to_vec_f64(), &model, &st)?;
        files.push("samples.png".into());
    } else if data.dim == 2 {
        let b = data.bounds();
        let model = Grid::of(&net.density(noise), &b, 200);
        let hist = Grid::histogram(&data.train_sample(100_000).cast(DType::F64), &b, 100);
        plot::density_png(&dir.join("density.png"), &hist, &model, title)?;
        files.push("density.png".into());
        let sampler = r.sampler.as_ref().map_or("model", |s| s.sampler.as_str());
        let st = format!("{} {sampler} samples over exp(−E)/Z", samples.shape()[0]);
        plot::samples_png(&dir.join("samples.png"), &model, samples, &st)?;
        files.push("samples.png".into());
    } else if let Some(image) = data.images {
        let (model, real) = (data.to_pixels(samples), data.to_pixels(&data.test));
        plot::digits_png(&dir.join("samples.png"), &model, &real, image, title)?;
        files.push("samples.png".into());
    } else {
        plot::scatter_png(
            &dir.join("samples.png"),
            &data.test,
            samples,
            &format!("coordinates 1–2: {title}"),
        )?;
        files.push("samples.png".into());
    }
    Ok(files)
}

/// Points (step, value) of a curve.
pub type Series = Vec<(f64, f64)>;

/// (step, loss) and (step, held-out figure) from a run's metrics.jsonl, and the figure's
/// key: `val_nll` or `val_loss` (`test_nll` in runs written before validation existed).
pub fn read_metrics(path: &Path) -> (Series, Series, Option<&'static str>) {
    let mut loss = Vec::new();
    let mut val = Vec::new();
    let mut key = None;
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
            continue;
        };
        if let Some(l) = v.get("loss").and_then(|l| l.as_f64()) {
            loss.push((step, l));
        }
        for k in ["val_nll", "val_loss", "test_nll"] {
            if let Some(l) = v.get(k).and_then(|l| l.as_f64()) {
                val.push((step, l));
                key = Some(k);
            }
        }
    }
    (loss, val, key)
}

/// The end of `ebm train`: evaluation, samples.npy, eval.json, and the PNGs.
pub fn final_report(
    t: &crate::train::Trainer,
    dir: &Path,
    train_secs: f64,
    run: &crate::train::RunOptions,
    notes: &crate::train::RunNotes,
) -> Result<Report, Error> {
    let mut net = t.net.clone();
    if let Some(e) = &t.train_step.ema {
        e.copy_to(net.params_mut());
    }
    let noise = Noise::of(&t.config);
    let log_det = t.data.nll_offset(&t.data.test);
    let mut opts = EvalOptions {
        seed: t.config.seed,
        ..EvalOptions::default()
    };
    if run.eval_samples > 0 {
        opts.samples = run.eval_samples;
    }
    if run.ais_temps > 0 {
        opts.ais_temps = run.ais_temps;
    }
    if run.ais_chains > 0 {
        opts.ais_chains = run.ais_chains;
    }
    let (mut r, samples) = evaluate(&net, noise, &t.data, log_det, &opts)?;
    r.step = t.step;
    r.objective = t.config.objective.clone();
    r.train_seconds = Some(train_secs);
    r.train_steps = Some(notes.end_step - notes.start_step);
    r.checkpoint = Some(if notes.early_stopped {
        crate::heldout::BEST.into()
    } else {
        crate::train::CHECKPOINT.into()
    });
    r.warnings = notes.warnings.clone();
    r.best_checkpoint = best_checkpoint(dir, notes.figure, &t.monitor);
    write_outputs(dir, &mut r, &net, noise, &t.data, &samples)?;
    if !run.quiet {
        crate::console::out(&summary(&r, dir, notes.start_step));
    }
    Ok(r)
}

/// The best checkpoint's file, step and validation figure, when one was kept.
fn best_checkpoint(
    dir: &Path,
    figure: Option<crate::heldout::Figure>,
    monitor: &crate::heldout::Monitor,
) -> Option<serde_json::Value> {
    let (fig, best) = (figure?, monitor.best?);
    dir.join(crate::heldout::BEST).exists().then(|| {
        let mut v = serde_json::json!({ "file": crate::heldout::BEST, "step": best.step });
        v[fig.key()] = serde_json::json!(best.value);
        v
    })
}

/// samples.npy, the PNGs and eval.json of an evaluated model.
pub fn write_outputs(
    dir: &Path,
    r: &mut Report,
    net: &Net,
    noise: Noise,
    data: &Dataset,
    samples: &Tensor,
) -> Result<(), Error> {
    let out = match &data.standardization {
        Some(s) => s.invert(samples),
        None => samples.clone(),
    };
    crate::io::write_npy(&dir.join("samples.npy"), &out)?;
    r.files.push("samples.npy".into());
    let title = match (r.test_nll, r.gap) {
        (Some(v), Some(g)) => format!(
            "{} on {} — test NLL {v:.3} nats (gap {g:+.3})",
            r.objective, r.data
        ),
        (Some(v), None) => format!("{} on {} — test NLL {v:.3} nats", r.objective, r.data),
        _ => format!("{} on {}", r.objective, r.data),
    };
    let pics = pictures(dir, r, net, noise, data, samples, &title)?;
    r.files.extend(pics);
    let (loss, val, key) = read_metrics(&dir.join("metrics.jsonl"));
    if !loss.is_empty() {
        let units = if data.standardization.is_some() {
            " (standardised units)"
        } else {
            ""
        };
        let val_title = match key {
            Some("val_loss") => "validation loss (the objective's, on the validation rows)",
            Some("test_nll") => "test NLL (nats per row, quick grid estimate)",
            _ => "validation NLL (nats per row, in the data's units)",
        };
        plot::loss_png(
            &dir.join("loss.png"),
            &loss,
            &val,
            &format!("training loss{units} — {} on {}", r.objective, r.data),
            val_title,
        )?;
        r.files.push("loss.png".into());
    }
    r.files.push("eval.json".into());
    crate::io::write_json(&dir.join("eval.json"), r)?;
    Ok(())
}

/// The closing lines of a run that (re)started at `start_step`.
pub fn summary(r: &Report, dir: &Path, start_step: u64) -> String {
    let mut s = String::new();
    if let Some(t) = r.train_seconds {
        let n = r.train_steps.unwrap_or(r.step);
        if start_step > 0 {
            s += &format!(
                "trained {n} steps ({start_step} → {}) in {t:.1} s; ",
                start_step + n
            );
        } else {
            s += &format!("trained {n} steps in {t:.1} s; ");
        }
    }
    if r.checkpoint.as_deref() == Some(crate::heldout::BEST) {
        s += &format!("evaluated the best checkpoint (step {}); ", r.step);
    }
    match (r.test_nll, r.log_z_method.as_deref()) {
        (Some(v), Some(m)) => {
            s += &format!("test NLL {v:.3} nats per row in the data's units (log Z by {m})");
            if let (Some(h), Some(g)) = (r.entropy, r.gap) {
                s += &format!(", data entropy {h:.3}, gap {g:+.3}");
            }
        }
        _ => s += "test NLL unavailable (log Z did not converge)",
    }
    if let Some(m) = r.mmd2 {
        s += &format!("; MMD² {m:.2e}");
    }
    if let Some(k) = r.ksd2 {
        s += &format!("; KSD² {k:.2e}");
    }
    if let (Some(b), false) = (&r.best_checkpoint, r.warnings.is_empty()) {
        s += &format!(
            "\nheld-out figure was best at step {}: {} (`ebm eval {}`)",
            b["step"],
            dir.join(crate::heldout::BEST).display(),
            dir.join(crate::heldout::BEST).display()
        );
    }
    let files: Vec<String> = r
        .files
        .iter()
        .map(|f| dir.join(f).display().to_string())
        .collect();
    s += &format!("\nwrote {}", files.join(", "));
    s
}

/// The run directory of a path given to `ebm eval` / `ebm sample`.
pub fn run_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}
