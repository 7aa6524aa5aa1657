//! What fuzzing and a new user's first hour found (issue 12), each kept fixed by a test of
//! the `ebm` binary: 1-D data, a closed stdout, forced divergence, values beyond float32,
//! huge declared shapes, checksum-valid but impossible checkpoints, two writers on one run
//! directory, held-out monitoring on a small real set, and the smaller ones (units, KSD²,
//! relative data paths, size bounds, stale temp files, resume timing, `-q` after Ctrl-C).

mod common;

use common::*;
use ebm::nn::Checkpoint;
use ebm_core::Rng;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every tensor of a checkpoint file is finite: parameters, optimizer moments, EMA.
fn assert_all_finite(path: &Path) {
    let c = Checkpoint::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tensors: Vec<(String, ebm_core::Tensor)> = c
        .params
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    if let Some(o) = &c.optimizer {
        tensors.extend(o.state_tensors());
    }
    if let Some(e) = &c.ema {
        tensors.extend(e.params().iter().map(|(n, t)| (n.to_string(), t.clone())));
    }
    assert!(!tensors.is_empty());
    for (n, t) in tensors {
        assert!(
            t.to_vec_f64().iter().all(|v| v.is_finite()),
            "{}: `{n}` is not finite",
            path.display()
        );
    }
}

/// A run's metrics lines.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until a run has written `lines` metrics lines.
fn wait_for_metrics(run: &Path, lines: usize) {
    let t0 = Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |s| s.lines().count())
        < lines
    {
        assert!(t0.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 272 rows × 2 columns shaped like the Old Faithful data (eruption minutes to three
/// decimals, waiting minutes as whole numbers): two clusters, a real set's discreteness.
fn faithful_like(path: &Path) {
    let mut rng = Rng::new(272);
    let mut s = String::from("eruptions,waiting\n");
    for _ in 0..272 {
        let z = rng.normal_vec(2);
        let (e, w) = if rng.next_f64() < 0.36 {
            (2.04 + 0.27 * z[0], 54.5 + 5.9 * z[1])
        } else {
            (4.29 + 0.41 * z[0], 80.0 + 5.9 * z[1])
        };
        s += &format!("{e:.3},{}\n", w.round());
    }
    std::fs::write(path, s).unwrap();
}

const SMALL: [&str; 6] = ["--hidden", "16,16", "--batch", "32", "--eval-samples", "60"];

// 1 ---------------------------------------------------------------------------------------

#[test]
fn one_dimensional_data_trains_samples_evaluates_and_draws() {
    let d = scratch("rel-1d");
    // a 1-column CSV and a `.npy` of shape [n]
    let csv = d.join("one.csv");
    let mut rng = Rng::new(1);
    let mut s = String::from("x\n");
    for _ in 0..300 {
        let z = rng.normal_vec(1)[0];
        let v = if rng.next_f64() < 0.4 {
            -2.0 + 0.5 * z
        } else {
            1.5 + 0.8 * z
        };
        s += &format!("{v:.4}\n");
    }
    std::fs::write(&csv, s).unwrap();
    let npy = d.join("flat.npy");
    let vals: Vec<u8> = Rng::new(2)
        .normal_vec(200)
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    std::fs::write(&npy, npy_bytes("<f4", &[200], &vals)).unwrap();
    for (data, obj) in [(&csv, "dsm-cv"), (&npy, "nce"), (&csv, "ncsn")] {
        let run = d.join(format!(
            "{obj}-{}",
            data.file_stem().unwrap().to_string_lossy()
        ));
        let r = run.to_str().unwrap();
        ok(&[
            &[
                "train",
                "--data",
                data.to_str().unwrap(),
                "--objective",
                obj,
            ][..],
            &["--steps", "40", "--quiet", "--out", r],
            &SMALL,
        ]
        .concat());
        let e = json(&run.join("eval.json"));
        assert_eq!(e["dim"], 1);
        assert_eq!(e["log_z_method"], "grid");
        assert!(e["test_nll"].as_f64().unwrap().is_finite(), "{obj}: {e}");
        let (shape, v) = read_npy(&run.join("samples.npy"));
        assert_eq!(shape, vec![60, 1]);
        assert!(v.iter().all(|x| x.is_finite()));
        check_png(&run.join("density.png"), 800, 500);
        check_png(&run.join("samples.png"), 800, 500);
        let out = ok(&["sample", r, "--n", "50", "--steps", "20"]);
        assert!(out.contains("50 samples"), "{out}");
        let sampler = if obj == "ncsn" { "annealed" } else { "mala" };
        check_png(&run.join(format!("samples-{sampler}.png")), 800, 500);
        let (shape, _) = read_npy(&run.join(format!("samples-{sampler}.npy")));
        assert_eq!(shape, vec![50, 1]);
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["eval", r, "--samples", "40", "--rows", "40"])).unwrap();
        assert_eq!(v["dim"], 1);
        assert!(v["test_nll"].as_f64().unwrap().is_finite());
    }
    let _ = std::fs::remove_dir_all(&d);
}

// 2 ---------------------------------------------------------------------------------------

#[test]
fn a_closed_stdout_never_kills_training_or_panics() {
    let d = scratch("rel-pipe");
    let run = d.join("r");
    let r = run.to_str().unwrap();
    // `ebm train … | head -1`: the reader takes one line and leaves
    let mut child = Command::new(EBM)
        .args(
            [
                &["train", "--steps", "60", "--log-every", "2", "--out", r][..],
                &SMALL,
            ]
            .concat(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("training"), "{first}");
    // the reader is gone (the pipe's read end is closed)
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_eq!(
        Checkpoint::load(run.join("checkpoint.safetensors"))
            .unwrap()
            .step,
        60
    );
    assert!(run.join("eval.json").is_file(), "the report was written");
    // `ebm eval RUN | head -3` and `ebm sample RUN | head -1`, many times: stdout closed
    // before the command writes (the quiet exit is status 0)
    for k in 0..6 {
        let args: Vec<&str> = if k % 2 == 0 {
            vec!["eval", r, "--samples", "20", "--rows", "20"]
        } else {
            vec!["sample", r, "--n", "20", "--steps", "5"]
        };
        let mut child = Command::new(EBM)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // and half-read: the reader takes 3 lines of the JSON, then leaves
    let mut child = Command::new(EBM)
        .args(["eval", r, "--samples", "20", "--rows", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next().unwrap().unwrap();
    }
    drop(lines);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    let _ = std::fs::remove_dir_all(&d);
}

// 3 ---------------------------------------------------------------------------------------

#[test]
fn forced_divergence_never_leaves_a_non_finite_checkpoint() {
    let d = scratch("rel-diverge");
    for (name, args, why) in [
        (
            "huge-lr",
            &["--lr", "1e300", "--steps", "1"][..],
            "parameter",
        ),
        (
            "lr-1e6",
            &["--lr", "1e6", "--steps", "7"][..],
            "optimizer state",
        ),
        (
            "nce",
            &["--objective", "nce", "--lr", "1e6", "--steps", "60"][..],
            "energy",
        ),
    ] {
        let run = d.join(name);
        let o = ebm(&[
            &[
                "train",
                "--out",
                run.to_str().unwrap(),
                "--hidden",
                "32,32",
                "--batch",
                "64",
            ][..],
            args,
        ]
        .concat());
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {out}\n{err}");
        assert!(
            err.contains("training diverged") && err.contains(why),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !run.join("eval.json").exists(),
            "{name}: no report of a diverged run"
        );
        // the last step and the rollback target: every tensor finite
        assert_all_finite(&run.join("checkpoint.safetensors"));
        let rollbacks = metrics(&run)
            .iter()
            .filter(|l| l["event"] == "rollback")
            .count();
        assert_eq!(rollbacks, 5, "{name}");
        // and what is there still evaluates
        let v: serde_json::Value = serde_json::from_str(&ok(&[
            "eval",
            run.to_str().unwrap(),
            "--samples",
            "20",
            "--rows",
            "20",
        ]))
        .unwrap();
        assert!(v["test_nll"].as_f64().unwrap().is_finite(), "{name}: {v}");
    }
    // a checkpoint holding NaN (re-signed, so the checksum passes) is refused naming the
    // tensor, by eval, sample and resume
    let run = d.join("huge-lr");
    let ck = run.join("checkpoint.safetensors");
    let mut c = Checkpoint::load(&ck).unwrap();
    let w = c.params.get(0).clone();
    let mut p = ebm::nn::Params::new();
    for (i, (n, t)) in c.params.iter().enumerate() {
        p.push(
            n,
            if i == 0 {
                w.full_like(f64::NAN)
            } else {
                t.clone()
            },
        );
    }
    c.params = p;
    assert!(c.to_bytes().is_err(), "the writer refuses NaN");
    let bytes = std::fs::read(&ck).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let name = c.params.name(0).to_string();
    let at = 8 + n + header[&name]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut bad = bytes.clone();
    bad[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&ck, ebm::nn::checkpoint::resign(&bad).unwrap()).unwrap();
    for args in [
        vec!["eval", run.to_str().unwrap()],
        vec!["sample", run.to_str().unwrap()],
        vec!["train", "--resume", run.to_str().unwrap()],
    ] {
        let e = fails_one_line(&args);
        assert!(
            e.contains(&format!("`{name}`")) && e.contains("non-finite"),
            "{args:?}: {e}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

// 4, 5 -------------------------------------------------------------------------------------

#[test]
fn values_beyond_float32_and_huge_declared_shapes_are_one_line_errors() {
    let d = scratch("rel-values");
    let w = |name: &str, body: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    let train = |data: &str, extra: &[&str]| {
        fails_one_line(
            &[
                &[
                    "train",
                    "--data",
                    data,
                    "--out",
                    d.join("never").to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let e = train(&w("big.csv", b"a,b\n1,2\n3,1e39\n5,6\n"), &[]);
    assert!(
        e.contains("line 3, column 2") && e.contains("float32"),
        "{e}"
    );
    let e = train(&w("neg.csv", b"-1e39\n1\n2\n3\n4\n5\n"), &[]);
    assert!(e.contains("line 1, column 1"), "{e}");
    let f8: Vec<u8> = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1e39, 8.0]
        .iter()
        .flat_map(|v: &f64| v.to_le_bytes())
        .collect();
    let e = train(&w("big.npy", &npy_bytes("<f8", &[4, 2], &f8)), &[]);
    assert!(
        e.contains("row 4, column 1") && e.contains("float32"),
        "{e}"
    );
    // within float32 but too large to train on as they are
    let e = train(
        &w("huge.csv", b"1,2\n3,2e35\n5,6\n7,8\n9,10\n"),
        &["--no-standardize"],
    );
    assert!(
        e.contains("row 2, column 2") && e.contains("--no-standardize"),
        "{e}"
    );
    // huge declared shapes: checked against the file's length before any allocation
    for shape in [
        &[1usize << 40, 2][..],
        &[1 << 62],
        &[usize::MAX, 2],
        &[1 << 32, 1 << 32],
    ] {
        let e = train(&w("huge.npy", &npy_bytes("<f4", shape, &[0; 64])), &[]);
        assert!(e.contains("declares shape"), "{shape:?}: {e}");
    }
    // a header syntax error: one line, not a parser dump
    let mut bad = b"\x93NUMPY\x01\x00".to_vec();
    let h = b"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 2), }\n";
    bad.extend((h.len() as u16).to_le_bytes());
    bad.extend(h);
    bad.extend([0; 16]);
    let e = train(&w("syntax.npy", &bad), &[]);
    assert!(e.contains("not a valid .npy"), "{e}");
    // a file too small to hold out a test row
    let e = train(&w("one-row.csv", b"1\n"), &[]);
    assert!(e.contains("holds out no test row"), "{e}");
    // only regular files are data: a device behind a .csv name is refused, not read for ever
    let zero = d.join("zero.csv");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let e = train(zero.to_str().unwrap(), &[]);
    assert!(e.contains("not a regular file"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unstandardised_extreme_data_ends_promptly() {
    // finite, within the limit, and far from unit scale: the run must end (trained, or
    // diverged with advice) rather than hang drawing its figures
    let d = scratch("rel-scale");
    let csv = d.join("wide.csv");
    let mut s = String::new();
    for i in 0..100 {
        s += &format!("{},{}\n", 1e20 * (i % 7) as f64, -3e19 * (i % 5) as f64);
    }
    std::fs::write(&csv, s).unwrap();
    let run = d.join("r");
    let mut child = Command::new(EBM)
        .args(
            [
                &["train", "--data", csv.to_str().unwrap(), "--no-standardize"][..],
                &["--steps", "20", "--out", run.to_str().unwrap()],
                &SMALL,
            ]
            .concat(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("the run hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    if status.code() == Some(1) {
        assert!(err.contains("drop --no-standardize"), "{err}");
    }
    // NCE fits a Gaussian to the data: collinear columns of variance ~10¹⁸ must not break
    // its factorisation (found by the fuzz run)
    let collinear = d.join("collinear.csv");
    let mut s = String::new();
    for i in 0..60 {
        let v = ((i * 7919) % 1000) as f64 * 2e6;
        s += &format!("{v},{v},{}\n", -v);
    }
    std::fs::write(&collinear, s).unwrap();
    let o = ebm(&[
        &[
            "train",
            "--data",
            collinear.to_str().unwrap(),
            "--no-standardize",
        ][..],
        &["--objective", "nce", "--steps", "10", "--no-report"],
        &["--out", d.join("nce").to_str().unwrap()],
        &SMALL,
    ]
    .concat());
    let (_, err) = text(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

// 6 ---------------------------------------------------------------------------------------

/// The run's checkpoint with `edit` applied, re-signed (the checksum passes).
fn craft(run: &Path, edit: impl FnOnce(&mut Checkpoint)) {
    let ck = run.join("checkpoint.safetensors");
    let mut c = Checkpoint::load(&ck).unwrap();
    edit(&mut c);
    std::fs::write(&ck, c.to_bytes().unwrap()).unwrap();
}

/// An edit of a checkpoint.
type Edit = Box<dyn Fn(&mut Checkpoint)>;

/// Sets the stored string `key`.
fn extra(key: &str, value: &str) -> Edit {
    let (key, value) = (key.to_string(), value.to_string());
    Box::new(move |c| {
        c.extra.insert(key.clone(), value.clone());
    })
}

/// Sets the value at JSON `pointer` of the stored training configuration.
fn config(pointer: &str, value: serde_json::Value) -> Edit {
    let pointer = pointer.to_string();
    Box::new(move |c| {
        let mut v: serde_json::Value = serde_json::from_str(&c.extra["train_config"]).unwrap();
        *v.pointer_mut(&pointer).expect("a configuration field") = value.clone();
        c.extra.insert("train_config".into(), v.to_string());
    })
}

#[test]
fn checksummed_checkpoints_with_impossible_contents_are_refused() {
    let d = scratch("rel-crafted");
    let base = d.join("base");
    ok(&[
        &[
            "train",
            "--objective",
            "pcd",
            "--steps",
            "4",
            "--no-report",
            "--quiet",
        ][..],
        &["--buffer-size", "64", "--langevin-steps", "2"],
        &["--out", base.to_str().unwrap()],
        &SMALL,
    ]
    .concat());
    let pristine = std::fs::read(base.join("checkpoint.safetensors")).unwrap();
    let zero = d.join("zero.csv");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let zero_csv = zero.to_string_lossy().into_owned();
    let file = d.join("f.csv");
    faithful_like(&file);
    let csv = file.to_string_lossy().into_owned();
    let file_data = |path: &str| serde_json::json!({"kind": "file", "path": path});
    let hex = |v: f64| format!("{:016x}", v.to_bits());
    let cases: Vec<(&str, Vec<Edit>, &str)> = vec![
        (
            "dim 10¹² on a file",
            vec![
                config("/data", file_data(&csv)),
                extra("dim", "1000000000000"),
            ],
            "data with 1000000000000 columns",
        ),
        (
            "dim 0 on a file",
            vec![config("/data", file_data(&csv)), extra("dim", "0")],
            "data with 0 columns",
        ),
        (
            "dim 3 on a toy set",
            vec![extra("dim", "3")],
            "data dimension 3",
        ),
        (
            "hidden 2⁶²",
            vec![config("/hidden", serde_json::json!([1u64 << 62]))],
            "--hidden width 4611686018427387904 is above the limit",
        ),
        (
            "hidden that the tensors do not back",
            vec![config("/hidden", serde_json::json!([4000, 4000]))],
            "needs 16020001 parameter values, but it holds",
        ),
        (
            "batch 10¹²",
            vec![config("/batch", serde_json::json!(1_000_000_000_000u64))],
            "--batch 1000000000000 is above the limit",
        ),
        (
            "langevin steps 10¹²",
            vec![config(
                "/params/langevin_steps",
                serde_json::json!(1_000_000_000_000u64),
            )],
            "--langevin-steps",
        ),
        (
            "lr scale ∞",
            vec![extra("lr_scale", &hex(f64::INFINITY))],
            "learning-rate scale inf is not in (0, 1]",
        ),
        (
            "replay buffer of another shape",
            vec![Box::new(|c: &mut Checkpoint| {
                c.objective_state.insert(
                    "replay_buffer".into(),
                    ebm_core::Tensor::zeros(&[3, 3], ebm_core::DType::F32),
                );
            })],
            "`objective.state.replay_buffer` has shape [3, 3], but the model expects [64, 2]",
        ),
        (
            "replay buffer missing",
            vec![Box::new(|c: &mut Checkpoint| c.objective_state.clear())],
            "no tensor `objective.state.replay_buffer`",
        ),
        (
            "replay buffer as base64 text (earlier versions)",
            vec![extra("replay_buffer", "AAAA")],
            "keeps the objective's state as base64 text",
        ),
        (
            "data path /dev/zero",
            vec![config("/data", file_data("/dev/zero"))],
            "is not a .csv or .npy path",
        ),
        (
            "data path a device named .csv",
            vec![config("/data", file_data(&zero_csv))],
            "not a regular file",
        ),
        (
            "loss window NaN",
            vec![extra("loss_window", &format!("{} 3", hex(f64::NAN)))],
            "loss window",
        ),
        (
            "unreadable config",
            vec![extra("train_config", "{")],
            "training configuration is unreadable",
        ),
    ];
    for (what, edits, want) in cases {
        std::fs::write(base.join("checkpoint.safetensors"), &pristine).unwrap();
        craft(&base, |c| edits.iter().for_each(|e| e(c)));
        let mut commands = vec![
            vec!["eval", base.to_str().unwrap()],
            vec!["sample", base.to_str().unwrap()],
            vec!["train", "--resume", base.to_str().unwrap(), "--no-report"],
        ];
        if what.starts_with("lr scale") || what.starts_with("replay") || what.starts_with("loss") {
            // state only a resume reads
            commands.drain(..2);
        }
        for args in commands {
            let e = fails_one_line(&args);
            assert!(e.contains(want), "{what}, {args:?}: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

// 7 ---------------------------------------------------------------------------------------

#[test]
fn two_writers_on_one_run_directory_the_second_names_the_first() {
    let d = scratch("rel-lock");
    let run = d.join("r");
    let r = run.to_str().unwrap();
    let mut first = Command::new(EBM)
        .args(
            [
                &[
                    "train",
                    "--steps",
                    "1000000",
                    "--checkpoint-every",
                    "50",
                    "--out",
                    r,
                ][..],
                &SMALL,
            ]
            .concat(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metrics(&run, 2);
    let pid = first.id();
    for args in [
        vec!["train", "--steps", "5", "--out", r],
        vec!["train", "--resume", r],
    ] {
        let e = fails_one_line(&args);
        assert!(
            e.contains("is in use by `ebm train`") && e.contains(&format!("pid {pid} on host")),
            "{args:?}: {e}"
        );
    }
    let lock = std::fs::read_to_string(run.join(".lock")).unwrap();
    assert!(lock.contains(&format!("\"pid\":{pid}")), "{lock}");
    assert!(Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let mut err = String::new();
    first
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(130), "{err}");
    // the lock died with its process: the run continues
    let step = Checkpoint::load(run.join("checkpoint.safetensors"))
        .unwrap()
        .step;
    ok(&[
        "train",
        "--resume",
        r,
        "--steps",
        &(step + 4).to_string(),
        "--no-report",
        "--quiet",
    ]);
    // two started together: exactly one trains, the other is refused
    let both = d.join("both");
    let b = both.to_str().unwrap();
    let spawn = || {
        Command::new(EBM)
            .args(
                [
                    &["train", "--steps", "30", "--no-report", "--out", b][..],
                    &SMALL,
                ]
                .concat(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (x, y) = (spawn(), spawn());
    let (ox, oy) = (x.wait_with_output().unwrap(), y.wait_with_output().unwrap());
    let mut codes = [ox.status.code(), oy.status.code()];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(2)], "{ox:?}\n{oy:?}");
    let loser = if ox.status.code() == Some(2) {
        &ox
    } else {
        &oy
    };
    let e = String::from_utf8_lossy(&loser.stderr);
    assert!(
        e.contains("is in use by") || e.contains("already holds a run"),
        "{e}"
    );
    // one run's metrics, whole lines, in order
    let steps: Vec<u64> = metrics(&both)
        .iter()
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=3).map(|k| k * 10).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&d);
}

// 8 ---------------------------------------------------------------------------------------

#[test]
fn sliced_score_matching_collapsing_on_a_small_real_set_is_flagged_and_the_best_kept() {
    let d = scratch("rel-heldout");
    let csv = d.join("faithful.csv");
    faithful_like(&csv);
    let collapse = [
        "--objective",
        "ssm-vr",
        "--hidden",
        "64,64",
        "--batch",
        "256",
        "--lr",
        "1e-2",
        "--schedule",
        "constant",
        "--steps",
        "800",
        "--eval-samples",
        "100",
    ];
    let run = d.join("ssm");
    let r = run.to_str().unwrap();
    let o = ebm(&[
        &["train", "--data", csv.to_str().unwrap(), "--out", r][..],
        &collapse,
    ]
    .concat());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    // 272 rows: 54 test, 21 validation, 197 training
    assert!(
        out.contains("197 training, 21 validation, 54 test rows"),
        "{out}"
    );
    assert!(
        err.contains("warning: the validation NLL rose")
            && err.contains("the model is overfitting its 197 training rows"),
        "{err}"
    );
    assert!(err.contains("best.safetensors"), "{err}");
    let events: Vec<serde_json::Value> = metrics(&run)
        .into_iter()
        .filter(|l| l["event"] == "held_out_worse")
        .collect();
    assert_eq!(events.len(), 1, "one warning");
    let e = json(&run.join("eval.json"));
    assert_eq!(e["warnings"].as_array().unwrap().len(), 1);
    assert_eq!(e["checkpoint"], "checkpoint.safetensors");
    let best_step = e["best_checkpoint"]["step"].as_u64().unwrap();
    let best_val = e["best_checkpoint"]["val_nll"].as_f64().unwrap();
    assert!(best_step < 800, "{e}");
    let last_nll = e["test_nll"].as_f64().unwrap();
    // the summary offers the best checkpoint, and so does `ebm eval` on the directory
    assert!(out.contains("held-out figure was best at step"), "{out}");
    let o = ebm(&["eval", r, "--samples", "50", "--rows", "50"]);
    let (_, note) = text(&o);
    assert!(
        note.contains("best.safetensors holds the checkpoint with the best validation figure"),
        "{note}"
    );
    let best = run.join("best.safetensors");
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        best.to_str().unwrap(),
        "--samples",
        "50",
        "--rows",
        "50",
    ]))
    .unwrap();
    assert_eq!(v["step"].as_u64().unwrap(), best_step);
    let best_nll = v["test_nll"].as_f64().unwrap();
    assert!(
        best_nll < last_nll - 1.0,
        "best {best_nll} vs last {last_nll}"
    );
    // the validation NLL is in the same units as the test NLL (the data's), not the
    // standardised ones (Σ log σ ≈ 2.6 nats apart here)
    assert!(
        (best_val - best_nll).abs() < 1.0,
        "val {best_val}, test {best_nll}"
    );
    // with --early-stop the run ends early and its report evaluates the best checkpoint
    let stopped = d.join("stopped");
    let o = ebm(&[
        &[
            "train",
            "--data",
            csv.to_str().unwrap(),
            "--out",
            stopped.to_str().unwrap(),
        ][..],
        &collapse,
        &["--early-stop", "3"],
    ]
    .concat());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("early stop at step"), "{out}");
    let last = Checkpoint::load(stopped.join("checkpoint.safetensors")).unwrap();
    assert!(last.step < 800, "stopped at {}", last.step);
    let e = json(&stopped.join("eval.json"));
    assert_eq!(e["checkpoint"], "best.safetensors");
    assert!(e["step"].as_u64().unwrap() < last.step);
    assert!(e["test_nll"].as_f64().unwrap() < last_nll - 1.0, "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

// 9 ---------------------------------------------------------------------------------------

#[test]
fn the_smaller_ones() {
    let d = scratch("rel-small");
    // a relative --data path: the run evaluates from any directory
    let work = d.join("work");
    std::fs::create_dir_all(&work).unwrap();
    faithful_like(&work.join("f.csv"));
    let run = d.join("r");
    let r = run.to_str().unwrap();
    let o = Command::new(EBM)
        .current_dir(&work)
        .args(
            [
                &["train", "--data", "f.csv", "--steps", "20", "--out", r][..],
                &SMALL,
            ]
            .concat(),
        )
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let cfg = json(&run.join("config.json"));
    assert!(
        PathBuf::from(cfg["data"]["path"].as_str().unwrap()).is_absolute(),
        "{cfg}"
    );
    let o = Command::new(EBM)
        .current_dir(&d)
        .args(["eval", r, "--samples", "20", "--rows", "20"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // units said everywhere; KSD² named as the squared U-statistic it is
    assert_eq!(v["nll_units"], "nats per row, in the data file's units");
    assert!(v.get("ksd2").is_some() && v.get("ksd").is_none(), "{v}");
    assert!(out.contains("val NLL") && out.contains("nats"), "{out}");
    // a resumed run says how many steps this session trained
    let out = ok(&[
        "train",
        "--resume",
        r,
        "--steps",
        "30",
        "--eval-samples",
        "60",
    ]);
    assert!(out.contains("trained 10 steps (20 → 30)"), "{out}");
    assert_eq!(json(&run.join("eval.json"))["train_steps"], 10);
    // stale temp files of a killed writer are removed by the next one
    for f in [
        ".checkpoint.safetensors.tmp-999999-0",
        ".loss.png.tmp-999999-1",
    ] {
        std::fs::write(run.join(f), b"partial").unwrap();
    }
    ok(&[
        "train",
        "--resume",
        r,
        "--steps",
        "32",
        "--no-report",
        "--quiet",
    ]);
    let stray: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    // -q keeps the way back in after an interrupt
    let q = d.join("q");
    let o = ebm(&[
        &[
            "train",
            "--steps",
            "20",
            "--stop-at",
            "7",
            "-q",
            "--out",
            q.to_str().unwrap(),
        ][..],
        &SMALL,
    ]
    .concat());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(130));
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("interrupted at step 7") && err.contains("--resume"),
        "{err}"
    );
    // size flags are bounded, each with one line naming the flag
    for (args, want) in [
        (
            &["train", "--batch", "1000000000000"][..],
            "--batch 1000000000000 is above the limit",
        ),
        (
            &[
                "train",
                "--objective",
                "cd",
                "--langevin-steps",
                "1000000000000",
            ],
            "--langevin-steps 1000000000000 is above the limit",
        ),
        (
            &["train", "--hidden", "100000"],
            "--hidden width 100000 is above the limit",
        ),
        (
            &["train", "--objective", "ncsn", "--levels", "1000000"],
            "--levels 1000000 is above the limit",
        ),
        (
            &["train", "--eval-samples", "1000000000000"],
            "--eval-samples 1000000000000 is above the limit",
        ),
        (&["sample", r, "--n", "1000000000000"], "above the limit"),
        (
            &["sample", r, "--steps", "1000000000000"],
            "--steps 1000000000000 is above the limit",
        ),
        (
            &["eval", r, "--rows", "1000000000"],
            "--rows 1000000000 is above the limit",
        ),
        (
            &["eval", r, "--ais-temps", "1000000000"],
            "--ais-temps 1000000000 is above the limit",
        ),
    ] {
        let mut a = args.to_vec();
        let never = d.join("never");
        if a[0] == "train" {
            a.extend(["--out", never.to_str().unwrap()]);
        }
        let e = fails_one_line(&a);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
