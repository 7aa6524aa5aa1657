//! The objectives of the review's later sections (issue 16) from the command line: each trains
//! and reports, those with state of their own resume bit for bit, and those with a data domain
//! (generalised SM, ratio matching) train on data inside it and refuse other data with one
//! line and exit status 2.

mod common;

use common::*;
use ebm::nn::Checkpoint;
use std::path::Path;

/// `ebm train` with small settings; the run's eval.json.
fn train(obj: &str, data: &str, run: &Path, extra: &[&str]) -> serde_json::Value {
    let args = [
        &[
            "train",
            "--objective",
            obj,
            "--data",
            data,
            "--steps",
            "20",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ][..],
        extra,
        &TINY,
    ]
    .concat();
    let out = ok(&args);
    assert!(out.is_empty(), "--quiet printed {out}");
    let ck = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.step, 20, "{obj}");
    json(&run.join("eval.json"))
}

#[test]
fn every_new_objective_trains_from_the_command_line() {
    let d = scratch("new-objectives");
    for obj in ["cnce", "fce", "mpf", "mvl", "ksd", "lsd", "ed", "drl"] {
        let e = train(obj, "8gaussians", &d.join(obj), &[]);
        assert_eq!(e["objective"], obj);
        let nll = e["test_nll"].as_f64().unwrap_or(f64::NAN);
        // 20 steps teach little, but a quadrature NLL never sits far below the entropy (2.83)
        assert!(nll.is_finite() && nll > 2.0, "{obj}: NLL {nll}");
        let (shape, v) = read_npy(&d.join(obj).join("samples.npy"));
        assert_eq!(shape, vec![200, 2], "{obj}");
        assert!(v.iter().all(|x| x.is_finite()), "{obj}: samples not finite");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn objectives_with_state_of_their_own_resume_bit_for_bit() {
    // FCE's flow and log Z, LSD's critic (each with its own optimizer), DRL's chains
    resume_matches("fce", 24, 11);
    resume_matches("lsd", 24, 7);
    resume_matches("drl", 24, 13);
}

/// A CSV of `rows` rows of `f(row, col)` over 3 columns.
fn csv(path: &Path, rows: usize, f: impl Fn(usize, usize) -> f64) {
    let mut s = String::from("a,b,c\n");
    for i in 0..rows {
        let row: Vec<String> = (0..3).map(|j| f(i, j).to_string()).collect();
        s.push_str(&row.join(","));
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn objectives_with_a_data_domain_train_inside_it_and_refuse_data_outside() {
    let d = scratch("domains");
    // Gamma-ish positive values and a 3-spin pattern with noise: deterministic, no RNG needed
    let positive = d.join("positive.csv");
    csv(&positive, 300, |i, j| {
        0.05 + ((i * 7 + j * 13) % 29) as f64 / 10.0
    });
    let binary = d.join("binary.csv");
    csv(&binary, 300, |i, j| ((i * (j + 3) / 5 + j) % 2) as f64);

    let e = train(
        "gsm",
        positive.to_str().unwrap(),
        &d.join("gsm"),
        &["--no-standardize"],
    );
    assert!(e["test_nll"].as_f64().is_some_and(f64::is_finite), "{e}");
    let e = train(
        "ratio-matching",
        binary.to_str().unwrap(),
        &d.join("rm"),
        &["--no-standardize"],
    );
    assert_eq!(e["dim"], 3);

    // standardised columns have negative values; a toy set is signed; neither is binary
    for (obj, data, extra, says) in [
        ("gsm", positive.to_str().unwrap(), &[][..], "[0, ∞)"),
        ("gsm", "8gaussians", &[][..], "[0, ∞)"),
        ("ratio-matching", "moons", &[][..], "binary"),
        (
            "ratio-matching",
            positive.to_str().unwrap(),
            &["--no-standardize"][..],
            "binary",
        ),
    ] {
        let run = d.join(format!("refused-{obj}"));
        let args = [
            &[
                "train",
                "--objective",
                obj,
                "--data",
                data,
                "--out",
                run.to_str().unwrap(),
            ][..],
            extra,
            &TINY,
        ]
        .concat();
        let err = fails_one_line(&args);
        assert!(
            err.contains(says) && err.contains(obj),
            "{obj} on {data}: {err}"
        );
        assert!(
            !run.join("checkpoint.safetensors").exists(),
            "{obj} on {data} wrote a checkpoint"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn new_options_are_checked_with_their_flag_names() {
    for (obj, flag, value, says) in [
        ("mpf", "--neighbours", "3", "--neighbours must be even"),
        (
            "cnce",
            "--epsilon",
            "0",
            "--epsilon must be a positive number",
        ),
        (
            "ksd",
            "--ksd-bandwidth",
            "-1",
            "--ksd-bandwidth must be ≥ 0",
        ),
        ("ed", "--contrasts", "0", "--contrasts must be at least 1"),
        (
            "drl",
            "--drl-sigma",
            "-0.5",
            "--drl-sigma must be a positive number",
        ),
    ] {
        let err = fails_one_line(&["train", "--objective", obj, flag, value, "--steps", "1"]);
        assert!(err.contains(says), "{obj} {flag} {value}: {err}");
    }
}
