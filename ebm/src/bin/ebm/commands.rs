//! What each subcommand does with its arguments.

use crate::args::{CompareArgs, EvalArgs, SampleArgs, TrainArgs};
use ebm::config::{self, TrainConfig};
use ebm::console::{err as say_err, out as say};
use ebm::data::DataSpec;
use ebm::error::Error;
use ebm::limits;
use ebm::model::load_run;
use ebm::report::{self, EvalOptions};
use ebm::sample::{SampleOptions, SamplerKind};
use ebm::train::{self, distributed::RankFailure, RunEnd, RunOptions};
use ebm_core::Rng;
use std::path::PathBuf;

/// `YYYYmmdd-HHMMSS` in UTC, for default run names.
fn timestamp() -> String {
    ebm::rundir::utc_timestamp(false)
}

pub fn train_cmd(a: TrainArgs) -> Result<i32, Error> {
    if a.eval_samples < 2 {
        return Err(Error::usage("--eval-samples must be at least 2"));
    }
    limits::at_most("--eval-samples", a.eval_samples, limits::MAX_SAMPLES)?;
    limits::check_ais(a.ais_temps, a.ais_chains)?;
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
        let objective = a
            .objective
            .as_deref()
            .unwrap_or(ebm_objectives::names::DSM_CV);
        config::objective_info(objective)?;
        let config = a.config.config(data, objective);
        config.validate()?;
        let out = a.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(format!(
                "{}-{}-{}",
                objective,
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
    let failure = |s: &Option<String>, dies: bool| -> Result<Option<RankFailure>, Error> {
        s.as_deref()
            .map(|v| {
                RankFailure::parse(v, dies)
                    .ok_or_else(|| Error::usage(format!("expected RANK@STEP, got `{v}`")))
            })
            .transpose()
    };
    let fail_rank = failure(&a.kill_rank, true)?.or(failure(&a.hang_rank, false)?);
    if !(a.comm_timeout.is_finite() && a.comm_timeout > 0.0) {
        return Err(Error::usage(
            "--comm-timeout must be a positive number of seconds",
        ));
    }
    let opts = RunOptions {
        stop_at: a.stop_at,
        poison_at: a.poison_at,
        no_report: a.no_report,
        eval_samples: a.eval_samples,
        ais_temps: a.ais_temps,
        ais_chains: a.ais_chains,
        quiet: a.quiet,
        fail_rank,
        ..opts
    };
    let comm = ebm::comm::from_environment(std::time::Duration::from_secs_f64(a.comm_timeout))?;
    train::distributed::share_cores(comm.size());
    let rank = comm.rank();
    let result = train::run_on(config, &opts, comm.as_ref());
    if result.is_ok() || comm.size() == 1 {
        drop(comm);
    } else {
        // MPI cannot be finalised now (that waits for every rank, one of which may be lost
        // or waiting for this one): exit without it, and the launcher stops the others
        std::mem::forget(comm);
    }
    let result = result.map_err(|e| match e {
        Error::Lost(m) => Error::Lost(format!(
            "rank {rank}: {m}; stopping (the last checkpoint in {} is intact: continue with `ebm train --resume {}`)",
            opts.out.display(),
            opts.out.display()
        )),
        e if rank > 0 => e.prefixed(&format!("rank {rank}: ")),
        e => e,
    });
    match result? {
        RunEnd::Finished(_) => Ok(0),
        RunEnd::Interrupted { .. } => Ok(130),
    }
}

pub fn sample_cmd(a: SampleArgs) -> Result<i32, Error> {
    if a.n < 2 {
        return Err(Error::usage("--n must be at least 2"));
    }
    let opts = a.options()?;
    let (loaded, data) = load_run(&a.run)?;
    limits::check_sampling(a.n, data.dim, a.steps, None, None)?;
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
    ebm::io::write_npy(&npy, &out)?;
    let png = npy.with_extension("png");
    let title = format!(
        "{} samples ({}, {} steps) — {} on {}",
        a.n,
        info.sampler,
        info.steps,
        loaded.config.objective,
        loaded.config.data.label()
    );
    if data.dim == 1 {
        let curve = ebm::plot1d::Curve::of(&loaded.density(), data.bounds()[0], 400);
        ebm::plot1d::samples_png(&png, &x.to_vec_f64(), &curve, &title)?;
    } else if data.dim == 2 {
        let g = ebm::plot::Grid::of(&loaded.density(), &data.bounds(), 200);
        ebm::plot::samples_png(&png, &g, &x, &title)?;
    } else if let Some(image) = data.images {
        let (model, real) = (data.to_pixels(&x), data.to_pixels(&data.test));
        ebm::plot::digits_png(&png, &model, &real, image, &title)?;
    } else {
        ebm::plot::scatter_png(&png, &data.test, &x, &title)?;
    }
    let json = npy.with_extension("json");
    let record = serde_json::json!({
        "checkpoint": loaded.file.display().to_string(),
        "step": loaded.step,
        "n": a.n,
        "seed": a.seed,
        "seconds": secs,
        "samples": npy.display().to_string(),
        "sampler": &info,
    });
    ebm::io::write_json(&json, &record)?;
    let finite = x.to_vec_f64().iter().filter(|v| v.is_finite()).count();
    let figures = info.summary();
    let mixing = info.diagnostics.as_ref().map_or(String::new(), |d| {
        format!(
            "\nmin ESS {:.0} (median {:.0}), max split-R̂ {:.3}, {:.2e} ESS/gradient, {:.0} ESS/s",
            d.min_ess, d.median_ess, d.max_rhat, d.ess_per_gradient, d.ess_per_second
        )
    });
    say(&format!(
        "{} samples by {} ({} steps{}) in {secs:.1} s{}{mixing}\nwrote {}, {}, {}",
        a.n,
        info.sampler,
        info.steps,
        if figures.is_empty() {
            String::new()
        } else {
            format!(", {figures}")
        },
        if finite < x.numel() {
            format!("; {} values are not finite", x.numel() - finite)
        } else {
            String::new()
        },
        npy.display(),
        png.display(),
        json.display()
    ));
    Ok(0)
}

pub fn eval_cmd(a: EvalArgs) -> Result<i32, Error> {
    if a.samples < 2 || a.rows < 2 {
        return Err(Error::usage("--samples and --rows must be at least 2"));
    }
    let (loaded, data) = load_run(&a.run)?;
    limits::check_sampling(a.samples, data.dim, None, Some(a.rows), Some(a.ais_temps))?;
    limits::check_ais(a.ais_temps, a.ais_chains)?;
    let log_det = data.nll_offset(&data.test);
    let opts = EvalOptions {
        rows: a.rows,
        samples: a.samples,
        ais_temps: a.ais_temps,
        ais_chains: a.ais_chains,
        ais_prior: report::AisPrior::parse(&a.ais_prior)?,
        seed: a.seed,
        sample: SampleOptions {
            sampler: Some(SamplerKind::parse(&a.sampler)?),
            ..SampleOptions::default()
        },
    };
    let (mut r, _) = report::evaluate(&loaded.net, loaded.noise(), &data, log_det, &opts)?;
    r.step = loaded.step;
    r.objective = loaded.config.objective.clone();
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

pub fn compare_cmd(a: CompareArgs) -> Result<i32, Error> {
    let data = DataSpec::parse(a.data.as_deref().unwrap_or("8gaussians"))?;
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("compare-{}-{}", data.label(), timestamp()))
    });
    let mut names: Vec<&str> = Vec::new();
    for o in &a.objectives {
        config::objective_info(o)?;
        if !names.contains(&o.as_str()) {
            names.push(o);
        }
    }
    let configs: Vec<TrainConfig> = names
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
        let name = c.objective.clone();
        let dir = out.join(&name);
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
