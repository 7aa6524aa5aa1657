//! `mpirun -np 2 ebm train`: data-parallel training through Open MPI, against one process.
//! Built and run only with `--features mpi` (CI installs Debian's Open MPI); `mpirun` runs as
//! root in CI, hence `--allow-run-as-root`, and on two cores, hence `--oversubscribe`.

mod common;

use common::*;
use ebm::nn::Checkpoint;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `ebm args…` on `ranks` ranks through mpirun.
fn mpirun(ranks: usize, args: &[&str]) -> Output {
    Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        .arg(EBM)
        .args(args)
        .output()
        .expect("mpirun runs (Open MPI installed: openmpi-bin)")
}

fn mpi_ok(ranks: usize, args: &[&str]) -> String {
    let o = mpirun(ranks, args);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "mpirun -np {ranks} ebm {args:?} failed: {:?}\n{out}\n{err}",
        o.status
    );
    format!("{out}{err}")
}

fn train_args<'a>(objective: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--objective",
        objective,
        "--data",
        "8gaussians",
        "--hidden",
        "32,32",
        "--batch",
        "256",
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    a
}

/// The model's and the optimizer's tensors of a run's checkpoint.
fn state(run: &Path) -> Vec<(String, Vec<f64>)> {
    let c = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
    c.named_tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("objective.state"))
        .map(|(n, t)| (n, t.to_vec_f64()))
        .collect()
}

/// The largest |a − b| / (|b| + 1e-3) over the parameters of two runs.
fn max_rel_diff(a: &[(String, Vec<f64>)], b: &[(String, Vec<f64>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0.0f64;
    for ((na, va), (nb, vb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            worst = worst.max((x - y).abs() / (y.abs() + 1e-3));
        }
    }
    worst
}

/// 200 DSM steps (f32, global batch 256) on two ranks reproduce one process to 1e-5
/// relative, and two 2-rank runs are bit for bit the same; `ebm train` names the ranks.
#[test]
fn two_ranks_reproduce_one_process() {
    let d = scratch("mpi-dsm");
    let steps = ["--steps", "200", "--no-report"];
    let one = d.join("one");
    ok(&train_args("dsm", &one, &steps));
    let (a, b) = (d.join("two-a"), d.join("two-b"));
    let said = mpi_ok(2, &train_args("dsm", &a, &steps));
    assert!(
        said.contains("2 ranks (MPI): each computes 128 of the 256 rows"),
        "{said}"
    );
    mpi_ok(2, &train_args("dsm", &b, &steps));
    let (s1, sa, sb) = (state(&one), state(&a), state(&b));
    assert_eq!(sa, sb, "two 2-rank runs are bit for bit the same");
    let rel = max_rel_diff(&sa, &s1);
    eprintln!("2 ranks vs 1 process after 200 DSM steps: max relative difference {rel:e}");
    assert!(rel <= 1e-5, "2 ranks vs 1 process: {rel:e}");
    // rank 0 alone wrote the run: one metrics line per log step
    let lines = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let one_lines = std::fs::read_to_string(one.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), one_lines.lines().count());
}

/// Three ranks share a minibatch of 256 rows (two default row blocks) in blocks of 86.
#[test]
fn three_ranks_share_a_small_batch() {
    let d = scratch("mpi-three");
    let run = d.join("run");
    let said = mpi_ok(
        3,
        &train_args("dsm", &run, &["--steps", "30", "--no-report"]),
    );
    assert!(
        said.contains("3 ranks (MPI): each computes 84–86 of the 256 rows of a minibatch (row blocks of 86 rows"),
        "{said}"
    );
    assert!(said.contains("communication:"), "{said}");
    let c = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(c.step, 30);
}

/// PCD (a replay buffer per rank, rows split evenly) and NCE (log Z averaged with the
/// gradients) on two ranks reach the test NLL of one process within the run-to-run noise of
/// one process over two seeds.
#[test]
fn pcd_and_nce_on_two_ranks_train_as_well_as_one_process() {
    let d = scratch("mpi-nll");
    for objective in ["nce", "pcd"] {
        let nll = |dir: &Path| json(&dir.join("eval.json"))["test_nll"].as_f64().unwrap();
        let extra = ["--steps", "300", "--eval-samples", "200", "--quiet"];
        let seeded = |seed: &'static str| -> Vec<&str> {
            extra.iter().copied().chain(["--seed", seed]).collect()
        };
        let (one, other, two) = (
            d.join(format!("{objective}-one")),
            d.join(format!("{objective}-one-seed")),
            d.join(format!("{objective}-two")),
        );
        ok(&train_args(objective, &one, &seeded("0")));
        ok(&train_args(objective, &other, &seeded("1")));
        mpi_ok(2, &train_args(objective, &two, &seeded("0")));
        let (n1, n1b, n2) = (nll(&one), nll(&other), nll(&two));
        let noise = (n1 - n1b).abs().max(0.05);
        eprintln!("{objective}: test NLL 1 process {n1:.4} (seed 1: {n1b:.4}), 2 ranks {n2:.4}");
        assert!(
            (n2 - n1).abs() <= 3.0 * noise,
            "{objective}: 2 ranks {n2} vs 1 process {n1} (seed-to-seed {noise})"
        );
    }
}

/// A rank that hangs makes the other stop within the timeout, naming it, with a non-zero
/// status; a rank that dies is reported by mpirun, naming it. Either run resumes from its
/// checkpoint under one process and under two ranks, to the step count of an unbroken run.
#[test]
fn a_lost_rank_stops_the_run_and_it_resumes_under_one_or_two_ranks() {
    let d = scratch("mpi-lost");
    let base = [
        "--steps",
        "120",
        "--checkpoint-every",
        "20",
        "--no-report",
        "--comm-timeout",
        "10",
    ];
    for (how, flag) in [("hang", "--hang-rank"), ("die", "--kill-rank")] {
        let run = d.join(how);
        let mut args = train_args("dsm", &run, &base);
        args.extend([flag, "1@50"]);
        let t0 = Instant::now();
        let o = mpirun(2, &args);
        let took = t0.elapsed();
        let (out, err) = text(&o);
        let said = format!("{out}{err}");
        assert!(!o.status.success(), "{how}: the run must fail\n{said}");
        assert!(
            said.contains("rank 1 was lost") || said.contains("rank 1 with PID"),
            "{how}: the lost rank is named\n{said}"
        );
        if how == "hang" {
            assert!(
                said.contains("rank 0: rank 1 was lost: no answer at the all-reduce"),
                "{said}"
            );
            assert!(!said.contains("panicked"), "{said}");
        }
        assert!(took < Duration::from_secs(60), "{how}: took {took:?}");
        // the checkpoint of step 40 is whole
        let c = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
        assert_eq!(c.step, 40, "{how}");
        // resume: a copy under one process, the run itself under two ranks
        let copy = d.join(format!("{how}-copy"));
        copy_dir(&run, &copy);
        ok(&["train", "--resume", copy.to_str().unwrap(), "--no-report"]);
        let said = mpi_ok(
            2,
            &["train", "--resume", run.to_str().unwrap(), "--no-report"],
        );
        assert!(said.contains("resuming at step 40"), "{said}");
        for r in [&run, &copy] {
            let c = Checkpoint::load(r.join("checkpoint.safetensors")).unwrap();
            assert_eq!(c.step, 120, "{how}: {}", r.display());
        }
        // resumed under 1 or 2 ranks from the same checkpoint: the same run to rounding
        let rel = max_rel_diff(&state(&run), &state(&copy));
        assert!(rel <= 1e-5, "{how}: resumed under 2 ranks vs 1: {rel:e}");
    }
}

/// An error on rank 0 before training (nothing to resume) stops every rank at once, each
/// with one line, none waiting for the timeout or in MPI_Finalize.
#[test]
fn an_error_on_rank_zero_stops_every_rank() {
    let d = scratch("mpi-error");
    let missing = d.join("missing");
    std::fs::create_dir_all(&missing).unwrap();
    let t0 = Instant::now();
    let o = mpirun(2, &["train", "--resume", missing.to_str().unwrap()]);
    let (out, err) = text(&o);
    let said = format!("{out}{err}");
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("error: cannot resume"), "{said}");
    assert!(
        said.contains("error: rank 1: rank 0 could not start the run"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
