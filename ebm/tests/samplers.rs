//! `ebm sample` with every Markov chain sampler of the table (NUTS, ChEES, parallel tempering
//! and the Langevin/HMC ones): outputs, the JSON of diagnostics, and one-line errors for bad
//! sampler options.

mod common;

use common::*;
use ebm::sample::{SamplerKind, SAMPLERS};

/// A small trained run, shared by the checks of one test.
fn tiny_run(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = scratch(name);
    let run = d.join("r");
    ok(&[
        &[
            "train",
            "--steps",
            "30",
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ][..],
        &TINY,
    ]
    .concat());
    (d, run)
}

#[test]
fn every_markov_chain_sampler_writes_samples_a_picture_and_diagnostics() {
    let (d, run) = tiny_run("mcmc");
    let r = run.to_str().unwrap();
    let cases: [(&str, &[&str]); 6] = [
        ("ula", &[]),
        ("mala", &["--target-accept", "0.6"]),
        ("hmc", &["--leapfrog", "4"]),
        (
            "nuts",
            &[
                "--max-depth",
                "5",
                "--target-accept",
                "0.9",
                "--metric",
                "dense",
            ],
        ),
        ("chees", &["--target-accept", "0.7"]),
        (
            "pt",
            &[
                "--replicas",
                "3",
                "--beta-min",
                "0.2",
                "--kernel",
                "hmc",
                "--leapfrog",
                "3",
                "--adaptive-ladder",
            ],
        ),
    ];
    for (sampler, extra) in cases {
        let args = [
            &[
                "sample",
                r,
                "--sampler",
                sampler,
                "--n",
                "40",
                "--steps",
                "40",
            ][..],
            &["--warmup", "40"][..(if sampler == "ula" { 0 } else { 2 })],
            extra,
        ]
        .concat();
        let out = ok(&args);
        assert!(out.contains(&format!("40 samples by {sampler}")), "{out}");
        assert!(out.contains("min ESS"), "{sampler}: {out}");
        let (shape, v) = read_npy(&run.join(format!("samples-{sampler}.npy")));
        assert_eq!(shape, vec![40, 2], "{sampler}");
        assert!(v.iter().all(|x| x.is_finite()), "{sampler}");
        check_png(&run.join(format!("samples-{sampler}.png")), 600, 600);
        let j = json(&run.join(format!("samples-{sampler}.json")));
        let s = &j["sampler"];
        assert_eq!(s["sampler"], sampler);
        assert_eq!(s["steps"], 40);
        assert_eq!(j["n"], 40);
        let diag = &s["diagnostics"];
        assert_eq!(diag["draws"], 40, "{sampler}: {j}");
        for k in ["min_ess", "median_ess", "max_rhat", "ess_per_gradient"] {
            let v = diag[k].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{sampler}: {k} = {v}");
        }
        // ESS is at most the draws of all chains ×(a margin for antithetic chains)
        assert!(diag["min_ess"].as_f64().unwrap() < 4.0 * 40.0 * 40.0);
        assert!(
            diag["gradient_evals"].as_u64().unwrap() >= 40 * 40,
            "{sampler}"
        );
        if sampler != "ula" {
            assert_eq!(s["warmup"], 40, "{sampler}");
            let acc = s["accept_rate"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&acc), "{sampler}: acceptance {acc}");
        }
        match sampler {
            "nuts" => {
                let depth = s["mean_tree_depth"].as_f64().unwrap();
                assert!((0.0..=5.0).contains(&depth), "{depth}");
                assert!(s["divergences"].is_u64() && s["max_depth_hits"].is_u64());
                assert!(out.contains("tree depth"), "{out}");
            }
            "chees" => {
                assert!(s["trajectory_length"].as_f64().unwrap() > 0.0);
                assert!(out.contains("trajectory length"), "{out}");
            }
            "pt" => {
                let betas: Vec<f64> = serde_json::from_value(s["betas"].clone()).unwrap();
                assert_eq!((betas.len(), betas[0], betas[2]), (3, 1.0, 0.2));
                assert_eq!(s["swap_rates"].as_array().unwrap().len(), 2);
                assert!(out.contains("round trips"), "{out}");
            }
            _ => assert!(s.get("betas").is_none() && s.get("mean_tree_depth").is_none()),
        }
    }
    // the same seed, the same samples
    let again = d.join("again.npy");
    ok(&[
        "sample",
        r,
        "--sampler",
        "nuts",
        "--n",
        "40",
        "--steps",
        "40",
        "--warmup",
        "40",
        "--max-depth",
        "5",
        "--target-accept",
        "0.9",
        "--metric",
        "dense",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(
        read_npy(&again),
        read_npy(&run.join("samples-nuts.npy")),
        "NUTS is not reproducible"
    );
    // eval takes the same names
    let out = ok(&[
        "eval",
        r,
        "--samples",
        "50",
        "--rows",
        "50",
        "--sampler",
        "pt",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sampler"]["sampler"], "pt");
    assert!(v["mmd2"].as_f64().unwrap().is_finite());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_sampler_options_are_one_line_errors() {
    let (d, run) = tiny_run("mcmc-bad");
    let r = run.to_str().unwrap();
    let cases: [(&[&str], &str); 11] = [
        (
            &["--sampler", "nuts", "--target-accept", "1.5"],
            "--target-accept must be in (0, 1), got 1.5",
        ),
        (
            &["--sampler", "chees", "--target-accept", "0"],
            "--target-accept must be in (0, 1)",
        ),
        (
            &["--sampler", "nuts", "--max-depth", "0"],
            "--max-depth must be between 1 and 20, got 0",
        ),
        (
            &["--sampler", "nuts", "--max-depth", "64"],
            "--max-depth must be between 1 and 20",
        ),
        (
            &["--sampler", "pt", "--replicas", "1"],
            "--replicas must be at least 2, got 1",
        ),
        (
            &["--sampler", "pt", "--beta-min", "1.5"],
            "--beta-min must be in (0, 1)",
        ),
        (
            &["--sampler", "pt", "--leapfrog", "3"],
            "--leapfrog needs --kernel hmc",
        ),
        (
            &["--sampler", "hmc", "--leapfrog", "0"],
            "--leapfrog must be at least 1",
        ),
        (
            &["--sampler", "mala", "--max-depth", "4"],
            "sampler mala does not read --max-depth",
        ),
        (
            &["--max-depth", "4"],
            "sampler mala does not read --max-depth",
        ),
        (
            &["--sampler", "chees", "--step-size", "0"],
            "--step-size must be positive",
        ),
    ];
    for (extra, want) in cases {
        let args = [&["sample", r, "--n", "10"][..], extra].concat();
        let e = fails_one_line(&args);
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    // names outside the table are clap's errors: status 2, no panic
    let e = fails(&["sample", r, "--sampler", "gibbs"]);
    assert!(e.contains("gibbs"), "{e}");
    let e = fails(&["sample", r, "--sampler", "nuts", "--metric", "full"]);
    assert!(e.contains("full"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_command_lists_every_sampler_of_the_table() {
    let o = ebm(&["sample", "--help"]);
    let (help, _) = text(&o);
    for s in SAMPLERS.iter() {
        assert!(help.contains(s.name), "{} missing from --help", s.name);
    }
    assert_eq!(SamplerKind::NAMES.len(), SAMPLERS.len());
    for name in ["nuts", "chees", "pt"] {
        assert!(SamplerKind::parse(name).is_ok());
    }
}
