//! The `ebm` binary as a user runs it: small budgets for every objective, the files and
//! numbers each run writes, the pictures decoded and checked for content, exact resumption,
//! Ctrl-C, the divergence guard, and one clear line with exit status 2 for every bad input.

mod common;

use common::*;
use ebm::nn::Checkpoint;
use std::process::Command;

#[test]
fn a_default_style_run_writes_checkpoint_metrics_eval_samples_and_pictures() {
    let d = scratch("default");
    let run = d.join("run");
    let out = ok(&[
        &["train", "--steps", "120", "--out", run.to_str().unwrap()][..],
        &TINY,
    ]
    .concat());
    // a progress line (no terminal here: plain lines), and the closing summary
    assert!(out.contains("step    120/120"), "{out}");
    assert!(
        out.contains("test NLL") && out.contains("data entropy 2.831"),
        "{out}"
    );
    for f in [
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
        "eval.json",
        "samples.npy",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let e = json(&run.join("eval.json"));
    assert_eq!(e["step"], 120);
    assert_eq!(e["dim"], 2);
    assert_eq!(e["log_z_method"], "grid");
    let nll = e["test_nll"].as_f64().unwrap();
    // 120 steps: better than the uniform density on the box (ln 81 = 4.39), above the entropy
    assert!(nll > 2.7 && nll < 4.39, "NLL {nll}");
    assert!((e["gap"].as_f64().unwrap() - (nll - 2.831)).abs() < 1e-9);
    assert!(e["mmd2"].as_f64().unwrap().is_finite() && e["ksd2"].as_f64().unwrap().is_finite());
    assert_eq!(e["nll_units"], "nats per row, in the data file's units");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 24, "one line every 5 steps");
    assert_eq!(lines.last().unwrap()["step"], 120);
    assert!(lines
        .iter()
        .all(|l| l["loss"].as_f64().unwrap().is_finite()));
    assert!(lines.iter().any(|l| l.get("val_nll").is_some()));
    let (shape, v) = read_npy(&run.join("samples.npy"));
    assert_eq!(shape, vec![200, 2]);
    assert!(v.iter().all(|x| x.is_finite()));
    check_png(&run.join("density.png"), 1000, 500);
    check_png(&run.join("samples.png"), 600, 600);
    check_png(&run.join("loss.png"), 800, 480);
    let ck = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.step, 120);
    let cfg = json(&run.join("config.json"));
    assert_eq!(cfg["objective"], "dsm-cv");
    assert_eq!(cfg["hidden"], serde_json::json!([32, 32]));
    // the run directory is taken: a second run there is refused, not overwritten
    let err = fails_one_line(&["train", "--steps", "5", "--out", run.to_str().unwrap()]);
    assert!(err.contains("already holds a run"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_objective_trains_and_reports_finite_numbers() {
    let d = scratch("objectives");
    for (obj, data) in [
        ("dsm", "8gaussians"),
        ("dsm-cv", "checkerboard"),
        ("esm", "moons"),
        ("ssm", "rings"),
        ("ssm-vr", "2spirals"),
        ("nce", "swissroll"),
        ("pcd", "pinwheel"),
        ("cd", "circles"),
        ("ncsn", "8gaussians"),
        ("ve", "8gaussians"),
        ("vp", "8gaussians"),
    ] {
        let run = d.join(obj);
        let args = [
            &[
                "train",
                "--objective",
                obj,
                "--data",
                data,
                "--steps",
                "30",
                "--quiet",
            ][..],
            &["--out", run.to_str().unwrap()],
            &TINY,
        ]
        .concat();
        let out = ok(&args);
        assert!(out.is_empty(), "--quiet printed {out}");
        let e = json(&run.join("eval.json"));
        assert_eq!(e["objective"], obj);
        assert_eq!(e["data"], data);
        let nll = e["test_nll"].as_f64().unwrap_or(f64::NAN);
        // 30 steps teach little, but a quadrature NLL can never sit far below the entropy
        // (2.83 for 8-Gaussians, ≥ 2.3 for the others' spreads)
        assert!(nll.is_finite() && nll > 2.0, "{obj} on {data}: NLL {nll}");
        let sampler = e["sampler"]["sampler"].as_str().unwrap();
        let want = match obj {
            "ncsn" => "annealed",
            "ve" | "vp" => "pc",
            _ => "mala",
        };
        assert_eq!(sampler, want, "{obj}");
        // score-SDE runs also report the probability-flow ODE's likelihood
        let ode = e["pf_ode_nll"].as_f64();
        if matches!(obj, "ve" | "vp") {
            let ode = ode.unwrap_or(f64::NAN);
            assert!(ode.is_finite() && ode > 2.0, "{obj}: PF-ODE NLL {ode}");
            let rows = e["test_rows"].as_u64().unwrap().min(500);
            assert_eq!(e["pf_ode_rows"].as_u64(), Some(rows), "{obj}");
        } else {
            assert!(ode.is_none() && e.get("pf_ode_rows").is_none(), "{obj}");
        }
        let (shape, v) = read_npy(&run.join("samples.npy"));
        assert_eq!(shape, vec![200, 2], "{obj}");
        assert!(v.iter().all(|x| x.is_finite()), "{obj}: samples not finite");
        for f in ["density.png", "samples.png", "loss.png"] {
            assert!(run.join(f).is_file(), "{obj}: no {f}");
        }
        let ck = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
        assert_eq!(ck.step, 30, "{obj}");
    }
    // one set of pictures decoded per kind of model
    check_png(&d.join("pcd").join("density.png"), 1000, 500);
    check_png(&d.join("ncsn").join("samples.png"), 600, 600);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resume_continues_bit_for_bit() {
    // DSM-CV (noise only), PCD (replay buffer), NCE (its own log Z and optimizer), and
    // NCSN (noise-conditional net); stops off the checkpoint and log grids
    resume_matches("dsm-cv", 30, 17);
    resume_matches("pcd", 30, 13);
    resume_matches("nce", 30, 21);
    resume_matches("ncsn", 30, 9);
}

#[test]
fn resume_with_more_steps_extends_and_refuses_other_changes() {
    let d = scratch("extend");
    let run = d.join("r");
    let r = run.to_str().unwrap();
    ok(&[
        "train",
        "--steps",
        "20",
        "--hidden",
        "16",
        "--no-report",
        "--quiet",
        "--out",
        r,
    ]);
    let err = fails_one_line(&["train", "--resume", r, "--lr", "0.1"]);
    assert!(err.contains("--lr cannot be changed"), "{err}");
    let err = fails_one_line(&["train", "--resume", r, "--steps", "10"]);
    assert!(err.contains("below the 20 steps"), "{err}");
    ok(&[
        "train",
        "--resume",
        r,
        "--steps",
        "30",
        "--no-report",
        "--quiet",
    ]);
    assert_eq!(
        Checkpoint::load(run.join("checkpoint.safetensors"))
            .unwrap()
            .step,
        30
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ctrl_c_leaves_a_checkpoint_that_resumes() {
    let d = scratch("sigint");
    let run = d.join("r");
    let r = run.to_str().unwrap();
    let child = Command::new(EBM)
        .args([
            "train",
            "--steps",
            "1000000",
            "--hidden",
            "16",
            "--batch",
            "32",
            "--checkpoint-every",
            "50",
            "--out",
            r,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait for training to be under way
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |s| s.lines().count()) < 3 {
        assert!(t0.elapsed().as_secs() < 60, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted at step") && err.contains("--resume"),
        "{err}"
    );
    let ck = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
    assert!(ck.step >= 30 && ck.step < 1_000_000, "step {}", ck.step);
    // no temp files left behind
    let stray: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let o = ebm(&[
        "train",
        "--resume",
        r,
        "--steps",
        &(ck.step + 10).to_string(),
        "--no-report",
        "--quiet",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(
        Checkpoint::load(run.join("checkpoint.safetensors"))
            .unwrap()
            .step,
        ck.step + 10
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_divergence_guard_rolls_back_and_lowers_the_learning_rate() {
    let d = scratch("guard");
    let run = d.join("r");
    let out = ok(&[
        "train",
        "--steps",
        "30",
        "--hidden",
        "16",
        "--batch",
        "32",
        "--checkpoint-every",
        "10",
        "--poison-at",
        "15",
        "--no-report",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.contains(
            "divergence guard: loss is NaN at step 15; rolled back to the checkpoint at step 10"
        ),
        "{out}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("event").is_some())
        .collect();
    assert_eq!(events.len(), 1, "{metrics}");
    assert_eq!(events[0]["event"], "rollback");
    assert_eq!(events[0]["lr_scale"], 0.5);
    let ck = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.step, 30);
    assert_eq!(ck.extra["lr_scale"], format!("{:016x}", 0.5f64.to_bits()));
    // an absurd learning rate diverges for real: the guard retries, then gives up cleanly
    let o = ebm(&[
        "train",
        "--objective",
        "cd",
        "--steps",
        "200",
        "--hidden",
        "16",
        "--batch",
        "32",
        "--lr",
        "1e6",
        "--checkpoint-every",
        "5",
        "--no-report",
        "--out",
        d.join("boom").to_str().unwrap(),
    ]);
    let (sout, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{sout}\n{err}");
    assert!(
        err.contains("training diverged") && err.contains("after 5 rollbacks"),
        "{err}"
    );
    // each rollback halves the rate again: ×0.5, ×0.25, … ×0.03125
    for k in 1..=5 {
        let scale = 0.5f64.powi(k);
        assert!(
            sout.contains(&format!("(×{scale})")),
            "no rollback to ×{scale}: {sout}"
        );
    }
    let last = Checkpoint::load(d.join("boom").join("checkpoint.safetensors")).unwrap();
    assert_eq!(
        last.extra["lr_scale"],
        format!("{:016x}", 0.5f64.powi(5).to_bits())
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sample_and_eval_read_a_run() {
    let d = scratch("sample");
    let run = d.join("r");
    let r = run.to_str().unwrap();
    ok(&[
        &["train", "--steps", "40", "--out", r, "--quiet"][..],
        &TINY,
    ]
    .concat());
    for (sampler, n) in [("ula", "150"), ("mala", "100"), ("hmc", "80")] {
        let out = ok(&["sample", r, "--sampler", sampler, "--n", n, "--steps", "40"]);
        assert!(out.contains(&format!("{n} samples by {sampler}")), "{out}");
        let (shape, _) = read_npy(&run.join(format!("samples-{sampler}.npy")));
        assert_eq!(shape, vec![n.parse::<u64>().unwrap(), 2]);
        assert!(run.join(format!("samples-{sampler}.png")).is_file());
    }
    check_png(&run.join("samples-ula.png"), 600, 600);
    let custom = d.join("out").join("x.npy");
    ok(&[
        "sample",
        &run.join("checkpoint.safetensors").to_string_lossy(),
        "--out",
        custom.to_str().unwrap(),
        "--n",
        "50",
        "--step-size",
        "0.05",
    ]);
    assert!(custom.is_file() && d.join("out").join("x.png").is_file());
    let err = fails_one_line(&["sample", r, "--sampler", "annealed"]);
    assert!(err.contains("needs an NCSN model"), "{err}");
    let err = fails_one_line(&["sample", r, "--step-size", "-1"]);
    assert!(err.contains("--step-size must be positive"), "{err}");
    let out = ok(&["eval", r, "--samples", "100", "--rows", "100"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["test_nll"].as_f64().unwrap().is_finite());
    assert_eq!(v["step"], 40);
    assert_eq!(v["log_z_method"], "grid");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn compare_writes_one_table_and_one_figure() {
    let d = scratch("compare");
    let out_dir = d.join("c");
    let out = ok(&[
        &[
            "compare",
            "--objectives",
            "dsm,nce,ncsn",
            "--steps",
            "30",
            "--quiet",
        ][..],
        &[
            "--out",
            out_dir.to_str().unwrap(),
            "--hidden",
            "16,16",
            "--batch",
            "64",
        ],
    ]
    .concat());
    assert!(out.contains("| objective | test NLL"), "{out}");
    let rows = json(&out_dir.join("compare.json"));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert!(r["test_nll"].as_f64().unwrap().is_finite(), "{r}");
    }
    let md = std::fs::read_to_string(out_dir.join("compare.md")).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 5);
    check_png(&out_dir.join("compare.png"), 4 * 380, 400);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn digits_and_user_files_train() {
    let d = scratch("files");
    // digits: 64-D, log Z by AIS, a grid of images
    let run = d.join("digits");
    ok(&[
        "train",
        "--data",
        "digits",
        "--steps",
        "20",
        "--hidden",
        "32",
        "--batch",
        "64",
        "--eval-samples",
        "100",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    let e = json(&run.join("eval.json"));
    assert_eq!(e["dim"], 64);
    assert_eq!(e["log_z_method"], "ais");
    assert!(e["test_nll"].as_f64().unwrap().is_finite());
    assert_eq!(e["test_rows"], 359); // ⌊0.2 · 1797⌋
    check_png(&run.join("samples.png"), 800, 500);
    // a 3-column CSV with a header: standardised, 3-D (AIS), scatter picture, samples back
    // in the file's units
    let csv = d.join("blob.csv");
    let mut s = String::from("a,b,c\n");
    for i in 0..300 {
        let t = i as f64 * 0.1;
        s += &format!(
            "{},{},{}\n",
            100.0 + t.sin(),
            -5.0 + 2.0 * t.cos(),
            (i % 7) as f64
        );
    }
    std::fs::write(&csv, s).unwrap();
    let run = d.join("csv");
    ok(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--steps",
        "20",
        "--hidden",
        "16",
        "--batch",
        "32",
        "--eval-samples",
        "100",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    let e = json(&run.join("eval.json"));
    assert_eq!(e["dim"], 3);
    assert_eq!(e["test_rows"], 60);
    let (shape, _) = read_npy(&run.join("samples.npy"));
    assert_eq!(shape, vec![100, 3]);
    check_png(&run.join("samples.png"), 600, 600);
    // chains that barely move stay in the data's box, which must come back in the file's
    // units (column 1 is 100 ± 1, padded by a quarter of its range)
    ok(&[
        "sample",
        run.to_str().unwrap(),
        "--sampler",
        "ula",
        "--steps",
        "1",
        "--step-size",
        "1e-4",
        "--n",
        "200",
    ]);
    let (_, v) = read_npy(&run.join("samples-ula.npy"));
    let col0: Vec<f32> = v.chunks(3).map(|r| r[0]).collect();
    assert!(
        col0.iter().all(|x| (98.4..101.6).contains(x)),
        "samples are not in the file's units: {:?}",
        &col0[..5]
    );
    // an .npy file (float64, 2 columns)
    let npy = d.join("pts.npy");
    let vals: Vec<f64> = (0..400)
        .map(|i| ((i * 7919) % 1000) as f64 / 100.0)
        .collect();
    std::fs::write(
        &npy,
        npy_bytes(
            "<f8",
            &[200, 2],
            &vals
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    )
    .unwrap();
    let run = d.join("npy");
    ok(&[
        "train",
        "--data",
        npy.to_str().unwrap(),
        "--steps",
        "10",
        "--hidden",
        "16",
        "--eval-samples",
        "50",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    let e = json(&run.join("eval.json"));
    assert_eq!(e["log_z_method"], "grid");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_input_gives_one_clear_line_and_status_2() {
    let d = scratch("bad");
    let w = |name: &str, body: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    let train = |data: &str| {
        fails_one_line(&[
            "train",
            "--data",
            data,
            "--out",
            d.join("never").to_str().unwrap(),
        ])
    };
    // files
    let e = train(&w("ragged.csv", b"x,y\n1,2\n3,4\n5\n"));
    assert!(
        e.contains("line 4 has 1 column,") && e.contains("ragged"),
        "{e}"
    );
    let e = train(&w("nan.csv", b"1,2\n3,NaN\n"));
    assert!(
        e.contains("line 2, column 2") && e.contains("not finite"),
        "{e}"
    );
    let e = train(&w("inf.csv", b"1,2\ninf,4\n"));
    assert!(e.contains("line 2, column 1"), "{e}");
    let e = train(&w("text.csv", b"1,2\n3,abc\n"));
    assert!(e.contains("line 2, column 2: `abc` is not a number"), "{e}");
    let e = train(&w("empty.csv", b""));
    assert!(e.contains("no data rows"), "{e}");
    let e = train(&w("c64.npy", &npy_bytes("<c8", &[2, 2], &[0; 32])));
    assert!(e.contains("dtype") && e.contains("not supported"), "{e}");
    let e = train(&w("bool.npy", &npy_bytes("|b1", &[2, 2], &[1; 4])));
    assert!(e.contains("not supported"), "{e}");
    let nan = [1.0f32, 2.0, f32::NAN, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<_>>();
    let e = train(&w("nan.npy", &npy_bytes("<f4", &[2, 2], &nan)));
    assert!(
        e.contains("row 2, column 1") && e.contains("not finite"),
        "{e}"
    );
    let e = train(&w("empty.npy", &npy_bytes("<f4", &[0, 3], &[])));
    assert!(e.contains("empty"), "{e}");
    // rank 3 and 4 arrays are images; rank 5 is nothing ebm reads
    let e = train(&w(
        "rank5.npy",
        &npy_bytes("<f4", &[1, 1, 1, 1, 1], &[0; 4]),
    ));
    assert!(e.contains("shape [1, 1, 1, 1, 1]"), "{e}");
    let e = train(&w("junk.npy", b"not numpy at all"));
    assert!(e.contains("not a valid .npy"), "{e}");
    let e = train(d.join("missing.csv").to_str().unwrap());
    assert!(e.contains("does not exist"), "{e}");
    let e = train("9gaussians");
    assert!(e.contains("unknown data `9gaussians`"), "{e}");
    // flag values we check
    for (args, want) in [
        (&["--steps", "0"][..], "--steps must be at least 1"),
        (
            &["--hidden", "0"],
            "--hidden needs at least one positive width",
        ),
        (&["--lr", "-1"], "--lr must be a positive number"),
        (&["--sigma", "0"], "--sigma must be a positive number"),
        (
            &["--objective", "ncsn", "--sigma-min", "3"],
            "--sigma-min (3) must be below --sigma-max (2)",
        ),
        (
            &["--objective", "esm", "--activation", "relu"],
            "relu has no second derivative",
        ),
        (&["--ema", "1.5"], "--ema decay must be in [0, 1)"),
        (&["--test-frac", "1"], "--test-frac must be in (0, 1)"),
        (&["--test-frac", "0"], "--test-frac must be in (0, 1)"),
        (&["--val-frac", "1"], "--val-frac must be in [0, 1)"),
        (&["--early-stop", "0"], "--early-stop must be at least 1"),
        (
            &["--warmup", "10"],
            "--warmup needs --schedule warmup-cosine",
        ),
        (
            &["--objective", "pcd", "--buffer-size", "10"],
            "--buffer-size (10) must be at least --batch (512)",
        ),
        (
            &["--optimizer", "adam", "--weight-decay", "-1"],
            "weight_decay must be finite",
        ),
        (
            &["--eval-samples", "1"],
            "--eval-samples must be at least 2",
        ),
    ] {
        let mut a = vec!["train", "--out", d.to_str().unwrap()];
        a.extend(args);
        let e = fails_one_line(&a);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // flag syntax clap checks (its own message, also status 2)
    for args in [
        &["train", "--lr", "abc"][..],
        &["train", "--objective", "magic"],
        &["train", "--no-such-flag"],
        &["sample"],
        &["frobnicate"],
    ] {
        let e = fails(args);
        assert!(e.starts_with("error:"), "{args:?}: {e}");
    }
    // checkpoints
    let e = fails_one_line(&["eval", d.join("nothing-here").to_str().unwrap()]);
    assert!(e.contains("does not exist"), "{e}");
    let e = fails_one_line(&["sample", d.to_str().unwrap()]);
    assert!(e.contains("holds no checkpoint.safetensors"), "{e}");
    let e = fails_one_line(&[
        "train",
        "--resume",
        d.join("nothing-here").to_str().unwrap(),
    ]);
    assert!(e.contains("is not a run directory"), "{e}");
    let e = fails_one_line(&["train", "--resume", d.to_str().unwrap()]);
    assert!(e.contains("checkpoint.safetensors does not exist"), "{e}");
    // a truncated and a corrupted checkpoint
    let run = d.join("r");
    ok(&[
        "train",
        "--steps",
        "5",
        "--hidden",
        "8",
        "--no-report",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    let ck = run.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails_one_line(&["eval", run.to_str().unwrap()]);
    assert!(e.contains("truncated"), "{e}");
    let e = fails_one_line(&["train", "--resume", run.to_str().unwrap()]);
    assert!(e.contains("truncated"), "{e}");
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x40;
    std::fs::write(&ck, &flipped).unwrap();
    let e = fails_one_line(&["sample", run.to_str().unwrap()]);
    assert!(e.contains("does not match its checksum"), "{e}");
    let e = fails_one_line(&[
        "eval",
        w("plain.safetensors", b"\x02\x00\x00\x00\x00\x00\x00\x00{}").as_str(),
    ]);
    assert!(e.contains("not an ebm checkpoint"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn help_lists_every_flag_and_version_prints() {
    let out = ok(&["train", "--help"]);
    for flag in [
        "--data",
        "--objective",
        "--hidden",
        "--activation",
        "--optimizer",
        "--lr",
        "--schedule",
        "--steps",
        "--batch",
        "--seed",
        "--out",
        "--resume",
        "--checkpoint-every",
        "--ema",
        "--clip-grad",
        "--sigma",
        "--langevin-steps",
        "--nce-ratio",
        "--projections",
    ] {
        assert!(out.contains(flag), "train --help lacks {flag}");
    }
    assert!(
        !out.contains("--stop-at") && !out.contains("--poison-at"),
        "test hooks are hidden"
    );
    assert!(ok(&["--version"]).starts_with("ebm "));
    for sub in ["sample", "eval", "compare"] {
        assert!(ok(&[sub, "--help"]).contains("Usage: ebm"));
    }
}

/// The README's main job, in release: `cargo test --release -p ebm -- --ignored`.
#[test]
#[ignore = "acceptance: the default run (~10 s in release, minutes in the dev profile)"]
fn default_train_reaches_the_entropy_within_0_15_nats() {
    let d = scratch("acceptance");
    let run = d.join("run");
    let t0 = std::time::Instant::now();
    let out = ok(&["train", "--out", run.to_str().unwrap()]);
    let secs = t0.elapsed().as_secs_f64();
    let e = json(&run.join("eval.json"));
    let gap = e["gap"].as_f64().unwrap();
    eprintln!("{out}\nwall time {secs:.1} s, gap {gap:+.3}");
    assert!(
        gap.abs() < 0.15,
        "test NLL {} is {gap:+.3} from the entropy",
        e["test_nll"]
    );
    for f in ["density.png", "samples.png", "loss.png"] {
        check_png(&run.join(f), 600, 480);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn conv_energy_and_unet_train_on_digit_images() {
    let d = scratch("conv");
    // an IGEBM-style conv energy (two stages of 8 and 16 channels) on 1×8×8 digits
    let run = d.join("conv");
    ok(&[
        "train",
        "--data",
        "digits",
        "--arch",
        "conv",
        "--hidden",
        "8,16",
        "--objective",
        "dsm",
        "--steps",
        "4",
        "--batch",
        "32",
        "--eval-samples",
        "50",
        "--ais-temps",
        "5",
        "--ais-chains",
        "8",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    let e = json(&run.join("eval.json"));
    assert_eq!(e["dim"], 64);
    assert!(e["test_nll"].as_f64().unwrap().is_finite());
    check_png(&run.join("samples.png"), 800, 500);
    let cfg = std::fs::read_to_string(run.join("config.json")).unwrap_or_default();
    assert!(cfg.is_empty() || cfg.contains("conv"), "{cfg}");
    // `ebm eval` reads the conv run back (from the data prior and from N(0, I))
    for prior in ["data", "standard"] {
        let out = ok(&[
            "eval",
            run.to_str().unwrap(),
            "--ais-temps",
            "5",
            "--ais-chains",
            "8",
            "--ais-prior",
            prior,
            "--samples",
            "8",
            "--rows",
            "8",
        ]);
        let e: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(e["ais_prior"], prior, "{e}");
        assert!(e["test_bits_per_dim"].as_f64().unwrap().is_finite(), "{e}");
    }
    // image PCD: a replay buffer and short-run SGLD (decoupled drift and noise), a
    // position-aware head, EMA weights; the header names the conv network
    let run = d.join("pcd");
    let out = ok(&[
        "train",
        "--data",
        "digits",
        "--arch",
        "conv",
        "--conv-head",
        "flatten",
        "--hidden",
        "8,8",
        "--objective",
        "pcd",
        "--langevin-eps",
        "1",
        "--langevin-noise",
        "0.01",
        "--langevin-steps",
        "3",
        "--buffer-size",
        "64",
        "--ema",
        "0.9",
        "--steps",
        "3",
        "--batch",
        "16",
        "--eval-samples",
        "20",
        "--ais-temps",
        "5",
        "--ais-chains",
        "8",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.contains("1×8×8 8-8 silu conv energy (flatten head)"),
        "{out}"
    );
    assert!(json(&run.join("eval.json"))["test_nll"]
        .as_f64()
        .unwrap()
        .is_finite());
    check_png(&run.join("samples.png"), 800, 500);
    let err = fails_one_line(&["train", "--data", "digits", "--conv-head", "flatten"]);
    assert!(err.contains("add --arch conv"), "{err}");
    let err = fails_one_line(&[
        "train",
        "--data",
        "digits",
        "--objective",
        "pcd",
        "--langevin-noise",
        "-1",
    ]);
    assert!(err.contains("--langevin-noise must be 0"), "{err}");
    // the multi-scale objective gets the noise-conditional U-Net
    let run = d.join("unet");
    ok(&[
        "train",
        "--data",
        "digits",
        "--arch",
        "conv",
        "--hidden",
        "8",
        "--objective",
        "ncsn",
        "--steps",
        "3",
        "--batch",
        "16",
        "--eval-samples",
        "20",
        "--ais-temps",
        "5",
        "--ais-chains",
        "8",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    // a score-SDE U-Net (base 16: its checkpoint once failed the size check of `ebm eval`)
    // reads back, with the probability-flow ODE's likelihood
    let run = d.join("unet-ve");
    let r = run.to_str().unwrap();
    let train = [
        "train",
        "--data",
        "digits",
        "--arch",
        "conv",
        "--hidden",
        "16",
        "--objective",
        "ve",
        "--steps",
        "2",
        "--batch",
        "16",
        "--no-report",
        "--quiet",
        "--out",
        r,
    ];
    ok(&train);
    let eval = run.join("eval-again.json");
    let args = [
        "eval",
        r,
        "--ais-temps",
        "5",
        "--ais-chains",
        "4",
        "--samples",
        "10",
        "--rows",
        "8",
        "--out",
    ];
    ok(&[&args[..], &[eval.to_str().unwrap()]].concat());
    let e = json(&eval);
    assert_eq!(e["pf_ode_rows"].as_u64(), Some(8));
    let bpd = e["pf_ode_bits_per_dim"].as_f64().unwrap_or(f64::NAN);
    assert!(bpd.is_finite() && bpd > 0.0, "PF-ODE bits/dim {bpd}");
    // rows that are not square images: one clear line, status 2
    let err = fails_one_line(&[
        "train",
        "--data",
        "8gaussians",
        "--arch",
        "conv",
        "--steps",
        "2",
    ]);
    assert!(
        err.contains("--arch conv reads rows as square images of 1 or 3 channels"),
        "{err}"
    );
}

/// An 8-bit gray PNG of `w` × `h` pixels.
fn gray_png(w: u32, h: u32, px: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(px).unwrap();
    }
    out
}

#[test]
fn png_folders_and_npy_images_train_and_damaged_ones_exit_2() {
    let d = scratch("images");
    // 12 gray 8×8 PNGs: a conv energy trains on them and reports bits/dim
    let folder = d.join("pngs");
    std::fs::create_dir_all(&folder).unwrap();
    for k in 0..12u8 {
        let px: Vec<u8> = (0..64u8).map(|q| q.wrapping_mul(k + 3)).collect();
        std::fs::write(folder.join(format!("{k:02}.png")), gray_png(8, 8, &px)).unwrap();
    }
    let run = d.join("run-png");
    let f = folder.to_str().unwrap();
    let common = [
        "--steps",
        "2",
        "--batch",
        "4",
        "--eval-samples",
        "10",
        "--ais-temps",
        "5",
        "--ais-chains",
        "8",
        "--quiet",
    ];
    let mut args = vec!["train", "--data", f, "--arch", "conv", "--hidden", "4"];
    args.extend(common);
    args.extend(["--objective", "dsm", "--out", run.to_str().unwrap()]);
    ok(&args);
    let e = json(&run.join("eval.json"));
    assert_eq!(e["dim"], 64);
    assert!(e["test_bits_per_dim"].as_f64().unwrap().is_finite(), "{e}");
    check_png(&run.join("samples.png"), 800, 500);

    // 3-channel 4×4 images stored NHWC, trained through the logit transform
    let px: Vec<u8> = (0..20 * 48).map(|v| (v * 37 % 256) as u8).collect();
    let npy = d.join("rgb.npy");
    std::fs::write(&npy, npy_bytes("|u1", &[20, 4, 4, 3], &px)).unwrap();
    let run = d.join("run-npy");
    let n = format!("nhwc:{}", npy.display());
    let mut args = vec!["train", "--data", n.as_str(), "--logit", "0.01"];
    args.extend(common);
    args.extend(["--hidden", "8", "--out", run.to_str().unwrap()]);
    ok(&args);
    let e = json(&run.join("eval.json"));
    assert_eq!(e["dim"], 48);
    assert!(e["test_nll"].as_f64().unwrap().is_finite(), "{e}");

    // damaged files: one clear line and status 2 each
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let truncated = d.join("truncated");
    std::fs::create_dir_all(&truncated).unwrap();
    let good = gray_png(8, 8, &[5; 64]);
    std::fs::write(truncated.join("a.png"), &good).unwrap();
    std::fs::write(truncated.join("b.png"), &good[..good.len() / 2]).unwrap();
    let mixed = d.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::write(mixed.join("a.png"), &good).unwrap();
    std::fs::write(mixed.join("b.png"), gray_png(4, 4, &[5; 16])).unwrap();
    let no_magic = [
        &b"\x93NUMPX"[..],
        &npy_bytes("|u1", &[2, 1, 2, 2], &[1; 8])[6..],
    ]
    .concat();
    let cases = [
        (truncated.display().to_string(), "not a readable PNG"),
        (mixed.display().to_string(), "must have one shape"),
        (
            format!("nchw:{}", write("magic.npy", &no_magic)),
            "not a valid .npy",
        ),
        (
            write("shape.npy", &npy_bytes("|u1", &[2, 2, 2, 2], &[1; 16])),
            "cannot tell the layout",
        ),
        (
            write(
                "huge.npy",
                &npy_bytes("|u1", &[1 << 40, 1 << 30, 1, 1], &[1; 16]),
            ),
            "declares shape",
        ),
        (
            write("range.npy", &npy_bytes("<f4", &[4, 1, 2, 2], &[0x40; 64])),
            "is not a pixel",
        ),
    ];
    for (data, want) in cases {
        let err = fails_one_line(&["train", "--data", &data, "--steps", "1"]);
        assert!(err.contains(want), "{data}: {err}");
    }
    // the logit transform is for images only
    let err = fails_one_line(&[
        "train", "--data", "moons", "--logit", "0.01", "--steps", "1",
    ]);
    assert!(err.contains("not an image set"), "{err}");
}
