//! Fuzzing everything the `ebm` command reads from the outside world: checkpoints (with
//! byte-level corruption, and with re-signed, checksum-valid but impossible contents: edited
//! stored configurations, dimensions, learning-rate scales, the objective's tensors (NCE's
//! log Z and its optimizer, PCD's replay buffer), parameters, headers) and data files (CSV and `.npy`, corrupted bytes and crafted headers, values and
//! shapes). Each case runs the command's own code path in-process — `ebm eval`/`ebm sample`'s
//! loading and a tiny evaluation, `ebm train --resume`'s restoration and one step, or, for a
//! data file, loading, a training step and (for some) the final report's evaluation and
//! pictures — and is sorted by outcome: accepted, rejected with an error, panic, abort, hang.
//!
//! * `cargo test -p ebm --test fuzz_loaders` runs a fixed small budget in-process (seconds).
//! * The acceptance budget, 10⁴ of each, each batch in a child process so an abort or a hang
//!   is counted rather than fatal:
//!   `EBM_FUZZ_CASES=10000 cargo test -p ebm --release --test fuzz_loaders -- --ignored
//!   fuzz_big_budget --nocapture` (add `EBM_FUZZ_SEED=n` for another set of cases).
//!
//! Cases are a function of (kind, seed, index), so any reported case reruns alone with
//! `EBM_FUZZ_ONLY=kind:index`.

mod common;

use common::npy_raw;
use ebm::config::TrainConfig;
use ebm::data::{DataOptions, DataSpec, Dataset};
use ebm::nn::checkpoint::{edit_header, resign};
use ebm::nn::Checkpoint;
use ebm::report::EvalOptions;
use ebm::sample::SampleOptions;
use ebm::train::{RunOptions, Trainer};
use ebm_core::Rng;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What one case did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Accepted,
    Rejected,
    Panic,
    Abort,
    Hang,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Panic => "panic",
            Outcome::Abort => "abort",
            Outcome::Hang => "hang",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Accepted,
            Outcome::Rejected,
            Outcome::Panic,
            Outcome::Abort,
            Outcome::Hang,
        ]
        .into_iter()
        .find(|o| o.name() == s)
    }
}

/// The kinds of input fuzzed.
const KINDS: [&str; 3] = ["checkpoint", "csv", "npy"];

/// Seconds one case may take before it counts as a hang (debug builds are slow; no case
/// legitimately takes more than a few).
const HANG_SECS: u64 = 120;

// ---------------------------------------------------------------------------------------------
// Random helpers

fn u64_of(rng: &mut Rng) -> u64 {
    let b = rng.next_block();
    (b[0] as u64) << 32 | b[1] as u64
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len())]
}

/// A value a careless or hostile writer might put where a number goes.
fn nasty_number(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    let v = [
        json!(0),
        json!(-1),
        json!(1),
        json!(2),
        json!(1e12),
        json!(1u64 << 62),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!(-1e308),
        json!(1e-320),
        json!(0.5),
        json!(3),
        json!(65),
        json!(1000000),
        json!("NaN"),
        json!(null),
        json!([]),
        json!({}),
        json!(true),
    ];
    pick(rng, &v).clone()
}

fn nasty_string(rng: &mut Rng) -> String {
    let v = [
        "",
        "0",
        "-1",
        "1e12",
        "18446744073709551616",
        "NaN",
        "inf",
        "7ff0000000000000",
        "fff8000000000000",
        "0000000000000000",
        "bff0000000000000",
        "3ff0000000000000 1",
        "7ff0000000000000 3",
        "====",
        "A===",
        "QUJD",
        "TWE=TWFu",
        "{}",
        "[]",
        "{\"mean\":[0],\"std\":[0]}",
        "{\"mean\":[1e400],\"std\":[1]}",
        "{\"mean\":[0,0],\"std\":[1,-1]}",
        "- 0 0 0",
        "5 3ff0000000000000 7ff0000000000000 0 0 0",
        "/dev/zero",
        "\u{0}",
        "ü",
    ];
    pick(rng, &v).to_string()
}

/// Replaces a random leaf of `v` by something nasty, or deletes a key.
fn mutate_json(v: &mut serde_json::Value, rng: &mut Rng) {
    use serde_json::Value;
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = pick(rng, &keys).clone();
            if rng.below(8) == 0 {
                m.remove(&k);
            } else {
                mutate_json(m.get_mut(&k).expect("a key"), rng);
            }
        }
        Value::Array(a) if !a.is_empty() && rng.below(4) != 0 => {
            let i = rng.below(a.len());
            mutate_json(&mut a[i], rng);
        }
        Value::Array(a) => {
            let n = [0, 1, 70, 3][rng.below(4)];
            *a = (0..n).map(|_| nasty_number(rng)).collect();
        }
        Value::String(_) => {
            *v = if rng.below(3) == 0 {
                nasty_number(rng)
            } else {
                let paths = [
                    "/dev/zero",
                    "/dev/stdin",
                    "/tmp",
                    "/nonexistent/x.csv",
                    "relative.npy",
                    "8gaussians",
                    "digits",
                    "file",
                    "toy",
                    "ssm-vr",
                    "relu",
                    "sgd",
                    "warmup-cosine",
                ];
                Value::String(pick(rng, &paths).to_string())
            };
        }
        _ => *v = nasty_number(rng),
    }
}

// ---------------------------------------------------------------------------------------------
// Base inputs (made once per process)

/// A scratch root for this process.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ebm-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn write_csv(path: &Path, rows: usize, cols: usize, header: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut s = String::new();
    if header {
        s += &(0..cols)
            .map(|j| format!("c{j}"))
            .collect::<Vec<_>>()
            .join(",");
        s += "\n";
    }
    for _ in 0..rows {
        let z = rng.normal_vec(cols);
        s += &z
            .iter()
            .enumerate()
            .map(|(j, v)| format!("{:.4}", v * (j + 1) as f64 + 3.0 * j as f64))
            .collect::<Vec<_>>()
            .join(",");
        s += "\n";
    }
    std::fs::write(path, s).unwrap();
}

/// Valid data files to mutate: (name, bytes).
fn base_data() -> &'static Vec<(String, Vec<u8>)> {
    static CELL: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = root().join("base-data");
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = Vec::new();
        for (name, rows, cols, header) in [
            ("two.csv", 60, 2, true),
            ("one.csv", 50, 1, false),
            ("three.csv", 40, 3, true),
        ] {
            let p = dir.join(name);
            write_csv(&p, rows, cols, header, rows as u64);
            out.push((name.to_string(), std::fs::read(&p).unwrap()));
        }
        let mut rng = Rng::new(7);
        let f4: Vec<u8> = rng
            .normal_vec(80)
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect();
        out.push(("f4.npy".into(), npy_raw("<f4", false, "(40, 2)", &f4)));
        let f8: Vec<u8> = rng
            .normal_vec(30)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        out.push(("f8.npy".into(), npy_raw("<f8", false, "(30,)", &f8)));
        let i4: Vec<u8> = (0..60i32).flat_map(|v| (v % 7 - 3).to_le_bytes()).collect();
        out.push(("i4.npy".into(), npy_raw("<i4", false, "(20, 3)", &i4)));
        let u1: Vec<u8> = (0..40u8).map(|v| v.wrapping_mul(37)).collect();
        out.push(("u1.npy".into(), npy_raw("|u1", false, "(20, 2)", &u1)));
        out
    })
}

/// Small finished runs of every kind of checkpoint state: (name, run directory, bytes).
fn base_runs() -> &'static Vec<(String, PathBuf, Vec<u8>)> {
    static CELL: OnceLock<Vec<(String, PathBuf, Vec<u8>)>> = OnceLock::new();
    CELL.get_or_init(|| {
        let data = root().join("base-data");
        base_data();
        let mut out = Vec::new();
        let runs: [(&str, &str, Option<&str>, Option<f64>); 7] = [
            ("dsm-cv", "dsm-cv", None, None),
            ("pcd", "pcd", None, None),
            ("nce", "nce", Some("two.csv"), None),
            ("ncsn", "ncsn", None, Some(0.9)),
            ("esm-1d", "esm", Some("one.csv"), None),
            ("vp-3d", "vp", Some("three.csv"), None),
            ("ssm-vr-3d", "ssm-vr", Some("three.csv"), Some(0.5)),
        ];
        for (name, objective, file, ema) in runs {
            let mut c = TrainConfig {
                objective: objective.into(),
                hidden: vec![8],
                batch: 16,
                steps: 4,
                log_every: 2,
                eval_every: 2,
                checkpoint_every: 2,
                ema,
                ..TrainConfig::default()
            };
            c.params.buffer_size = 64;
            c.params.langevin_steps = 2;
            c.params.levels = 3;
            if let Some(f) = file {
                c.data = DataSpec::File { path: data.join(f) };
            }
            let dir = root().join("base-runs").join(name);
            let opts = RunOptions {
                out: dir.clone(),
                no_report: true,
                quiet: true,
                ..RunOptions::default()
            };
            ebm::train::run(Some(c), &opts).unwrap_or_else(|e| panic!("base run {name}: {e}"));
            let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
            out.push((name.to_string(), dir, bytes));
        }
        out
    })
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// Byte-level corruption: flips, a cut, an insertion (the checksum must catch these).
fn corrupt_bytes(bytes: &mut Vec<u8>, rng: &mut Rng) {
    match rng.below(4) {
        0 => {
            let cut = rng.below(bytes.len().max(1));
            bytes.truncate(cut);
        }
        1 => {
            let at = rng.below(bytes.len() + 1);
            let n = 1 + rng.below(8);
            for k in 0..n {
                bytes.insert(at.min(bytes.len()), (u64_of(rng) >> (k % 8)) as u8);
            }
        }
        _ => {
            for _ in 0..1 + rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 + rng.below(255) as u8;
            }
        }
    }
}

/// A checkpoint with checksum-valid but (mostly) impossible contents.
fn crafted_checkpoint(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let Ok(mut c) = Checkpoint::from_bytes(bytes) else {
        return bytes.to_vec();
    };
    let edits = 1 + rng.below(3);
    for _ in 0..edits {
        match rng.below(12) {
            // the stored training configuration
            0..=3 => {
                if let Some(s) = c.extra.get(ebm::verify::EXTRA_CONFIG) {
                    let mut v: serde_json::Value =
                        serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
                    mutate_json(&mut v, rng);
                    c.extra
                        .insert(ebm::verify::EXTRA_CONFIG.into(), v.to_string());
                }
            }
            // one of the stored strings
            4..=5 => {
                let keys = [
                    "dim",
                    "lr_scale",
                    "loss_window",
                    "standardization",
                    "heldout",
                    "train_config",
                    "unknown",
                    // the keys of earlier versions' base64 state
                    "nce_state",
                    "replay_buffer",
                ];
                let k = pick(rng, &keys).to_string();
                if rng.below(5) == 0 {
                    c.extra.remove(&k);
                } else {
                    c.extra.insert(k, nasty_string(rng));
                }
            }
            // the objective's tensors: its state, its parameters, their optimizer
            6 => craft_objective(&mut c, rng),
            // the model's own config
            7 => mutate_json(&mut c.model, rng),
            // a parameter replaced by another shape
            8 => {
                if !c.params.is_empty() {
                    let i = rng.below(c.params.len());
                    let shape: Vec<usize> = (0..1 + rng.below(2)).map(|_| rng.below(5)).collect();
                    let mut p = ebm::nn::Params::new();
                    for (k, (n, t)) in c.params.iter().enumerate() {
                        let t = if k == i {
                            ebm_core::Tensor::zeros(&shape, t.dtype())
                        } else {
                            t.clone()
                        };
                        p.push(n, t);
                    }
                    c.params = p;
                    // the optimizer and EMA no longer match: drop them, or keep them (the
                    // writer then refuses, and the case runs on the original bytes)
                    if rng.below(2) == 0 {
                        c.optimizer = None;
                        c.ema = None;
                    }
                }
            }
            9 => c.step = u64_of(rng) >> rng.below(64),
            10 => {
                c.optimizer = None;
                if rng.below(2) == 0 {
                    c.ema = None;
                }
            }
            _ => c.rng = Some([u64_of(rng), u64_of(rng), u64_of(rng)]),
        }
    }
    let mut out = c.to_bytes().unwrap_or_else(|_| bytes.to_vec());
    // now and then a header-level edit on top, re-signed
    if rng.below(4) == 0 {
        let raw = edit_header(&out, |h| {
            let Some(obj) = h.as_object_mut() else {
                return;
            };
            let keys: Vec<String> = obj.keys().cloned().collect();
            let k = pick(rng, &keys).clone();
            let entry = obj.get_mut(&k).expect("a key");
            if k == "__metadata__" {
                mutate_json(entry, rng);
                // metadata values must stay strings for the file to parse at all
                if let Some(m) = entry.as_object_mut() {
                    for v in m.values_mut() {
                        if !v.is_string() {
                            *v = serde_json::Value::String(v.to_string());
                        }
                    }
                }
            } else {
                let f = *pick(rng, &["shape", "dtype", "data_offsets"]);
                entry[f] = match f {
                    "dtype" => serde_json::json!(pick(rng, &["F16", "I64", "BOOL", "F64", "U8"])),
                    _ => serde_json::json!([
                        u64_of(rng) >> rng.below(64),
                        u64_of(rng) >> rng.below(64)
                    ]),
                };
            }
        });
        if let Some(raw) = raw {
            out = resign(&raw).unwrap_or(raw);
        }
    }
    out
}

/// A tensor of a random small shape filled with one of a few values (some beyond what a
/// checkpoint may hold: the writer then refuses, and the case runs on the original bytes).
fn odd_tensor(rng: &mut Rng, like: Option<&ebm_core::Tensor>) -> ebm_core::Tensor {
    let shape: Vec<usize> = match like {
        Some(t) if rng.below(2) == 0 => t.shape().to_vec(),
        _ => (0..rng.below(3)).map(|_| rng.below(4)).collect(),
    };
    let dtype = match like {
        Some(t) if rng.below(4) != 0 => t.dtype(),
        _ => *pick(rng, &[ebm_core::DType::F32, ebm_core::DType::F64]),
    };
    let v = *pick(rng, &[0.0, 1.0, -1e30, 1e30, f64::NAN, f64::INFINITY]);
    ebm_core::Tensor::full(&shape, v, dtype)
}

/// Edits the objective's tensors of a checkpoint: PCD's replay buffer and NCE's log Z
/// replaced, removed or renamed, their optimizer dropped, a state the objective does not
/// keep added.
fn craft_objective(c: &mut Checkpoint, rng: &mut Rng) {
    match rng.below(6) {
        0 => {
            let names: Vec<String> = c.objective_state.keys().cloned().collect();
            let name = names
                .first()
                .cloned()
                .unwrap_or_else(|| "replay_buffer".into());
            let t = odd_tensor(rng, c.objective_state.get(&name));
            c.objective_state.insert(name, t);
        }
        1 => {
            if rng.below(2) == 0 {
                c.objective_state.clear();
            } else {
                let t = odd_tensor(rng, None);
                c.objective_state.insert(nasty_string(rng), t);
            }
        }
        2 => {
            let mut q = ebm::nn::Params::new();
            for (n, t) in c.objective_params.iter() {
                q.push(n, odd_tensor(rng, Some(t)));
            }
            if q.is_empty() || rng.below(4) == 0 {
                q = ebm::nn::Params::new();
                q.push("log_z", odd_tensor(rng, None));
            }
            c.objective_params = q;
            // an optimizer of the old parameters no longer fits: drop it, or keep it (the
            // loader then refuses its tensors' shapes)
            if rng.below(2) == 0 {
                c.objective_optimizer = None;
            }
        }
        3 => {
            c.objective_params = ebm::nn::Params::new();
            c.objective_optimizer = None;
        }
        4 => c.objective_optimizer = None,
        _ => {
            // the state of one run grafted onto another's
            let donor = &base_runs()[rng.below(base_runs().len())].2;
            if let Ok(d) = Checkpoint::from_bytes(donor) {
                c.objective_state = d.objective_state;
                c.objective_params = d.objective_params;
                c.objective_optimizer = d.objective_optimizer;
            }
        }
    }
}

/// A mutated CSV file.
fn mutated_csv(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let text = String::from_utf8_lossy(base).into_owned();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for _ in 0..1 + rng.below(3) {
        match rng.below(10) {
            0..=3 => {
                // a cell replaced by an extreme or malformed value
                let cells = [
                    "1e39", "-1e39", "3.4e38", "3.5e38", "1e308", "-1e308", "1e-320", "nan", "NaN",
                    "inf", "-inf", "", " ", "1e", "0x10", "1,2", "\"3\"", "١", "5e-5", "1e30",
                    "-1e31",
                ];
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    let mut f: Vec<String> = lines[i].split(',').map(String::from).collect();
                    let j = rng.below(f.len().max(1));
                    if j < f.len() {
                        f[j] = pick(rng, &cells).to_string();
                    }
                    lines[i] = f.join(",");
                }
            }
            4 => {
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    lines.remove(i);
                }
            }
            5 => {
                let i = rng.below(lines.len() + 1);
                let extra = [
                    "",
                    "#comment",
                    "1",
                    "1,2,3,4,5,6",
                    "a,b",
                    ",,,",
                    "\r",
                    "1,2\r",
                ];
                lines.insert(i, pick(rng, &extra).to_string());
            }
            6 => {
                // a very wide row
                let n = [70_000, 5, 300][rng.below(3)];
                lines.push(vec!["1"; n].join(","));
            }
            7 => lines.truncate(rng.below(4)),
            8 => {
                // every row duplicated (a constant or degenerate set)
                let first = lines.iter().find(|l| !l.starts_with('c')).cloned();
                if let Some(f) = first {
                    for l in lines.iter_mut() {
                        if !l.starts_with('c') {
                            *l = f.clone();
                        }
                    }
                }
            }
            _ => {
                let mut b = lines.join("\n").into_bytes();
                corrupt_bytes(&mut b, rng);
                return b;
            }
        }
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s.into_bytes()
}

/// A mutated `.npy` file: a crafted header (shape, dtype, order), other data, or bytes.
fn mutated_npy(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let data_at = 10 + u16::from_le_bytes([base[8], base[9]]) as usize;
    let data = &base[data_at.min(base.len())..];
    match rng.below(6) {
        0 | 1 => {
            let shapes = [
                "(1099511627776, 2)",
                "(9223372036854775807,)",
                "(18446744073709551615, 2)",
                "(4294967296, 4294967296)",
                "(0, 5)",
                "(5, 0)",
                "()",
                "(2, 2, 2)",
                "(10, 70000)",
                "(3,)",
                "(1, 1)",
                "(-1, 2)",
                "(2, 'a')",
            ];
            let descrs = [
                "<f4", "<f8", ">f8", "<f2", "|b1", "<c8", "<U3", "|O", "|V8", "<i8", "<u8", "|i1",
                "<M8",
            ];
            let descr = pick(rng, &descrs);
            let shape = pick(rng, &shapes);
            npy_raw(descr, rng.below(4) == 0, shape, data)
        }
        2 => {
            // extreme values in float64
            let vals = [
                1e39,
                -1e39,
                f64::NAN,
                f64::INFINITY,
                3.5e38,
                1e300,
                1e31,
                0.0,
            ];
            let n = 2 * (1 + rng.below(20));
            let v: Vec<u8> = (0..n)
                .flat_map(|_| pick(rng, &vals).to_le_bytes())
                .collect();
            npy_raw("<f8", false, &format!("({}, 2)", n / 2), &v)
        }
        3 => {
            // broken header syntax
            let bad = [
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), ",
                "{'descr': '<f4' 'shape': (2, 2)}",
                "not a dict at all",
                "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 2), }",
                "{}",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'extra': 1, }",
            ];
            let h = pick(rng, &bad).to_string();
            let mut out = b"\x93NUMPY\x01\x00".to_vec();
            out.extend((h.len() as u16 + 1).to_le_bytes());
            out.extend(h.as_bytes());
            out.push(b'\n');
            out.extend(data);
            out
        }
        _ => {
            let mut b = base.to_vec();
            corrupt_bytes(&mut b, rng);
            b
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running one case

/// The final evaluation, on a budget: 8 rows and samples, 3 sampler steps, 3 AIS
/// temperatures.
fn tiny_eval() -> EvalOptions {
    EvalOptions {
        rows: 8,
        samples: 8,
        ais_temps: 3,
        seed: 1,
        sample: SampleOptions {
            steps: Some(3),
            ..SampleOptions::default()
        },
        ..EvalOptions::default()
    }
}

/// Runs one checkpoint case: the eval/sample path and the resume path.
fn run_checkpoint_case(index: u64, seed: u64) -> Result<(), String> {
    let bases = base_runs();
    let mut rng = Rng::new(seed).stream(index);
    let (_, _, base) = &bases[index as usize % bases.len()];
    let bytes = if rng.below(5) == 0 {
        let mut b = base.clone();
        corrupt_bytes(&mut b, &mut rng);
        b
    } else {
        crafted_checkpoint(base, &mut rng)
    };
    let dir = root().join("cases").join(format!("c{index}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("checkpoint.safetensors"), &bytes).unwrap();
    let result = (|| -> Result<(), String> {
        // `ebm eval` / `ebm sample`
        let (loaded, data) = ebm::model::load_run(&dir).map_err(|e| e.to_string())?;
        let (r, samples) =
            ebm::report::evaluate(&loaded.net, loaded.noise(), &data, 0.0, &tiny_eval())
                .map_err(|e| e.to_string())?;
        assert_eq!(samples.shape(), &[8, data.dim], "{r:?}");
        if let Some(s) = loaded.standardization() {
            let _ = s.invert(&samples);
        }
        // `ebm train --resume`
        let (mut t, _lock) = ebm::rundir::resume_trainer(&dir, None).map_err(|e| e.to_string())?;
        let loss = t.step_once(false);
        if loss.is_finite() && ebm::guard::state_problem(&t).is_none() {
            t.checkpoint().map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs one data-file case: loading, a training step, and (one case in eight) the final
/// report's evaluation and pictures.
fn run_data_case(kind: &str, index: u64, seed: u64) -> Result<(), String> {
    let bases: Vec<&(String, Vec<u8>)> = base_data()
        .iter()
        .filter(|(n, _)| n.ends_with(kind))
        .collect();
    let mut rng = Rng::new(seed ^ 0xDA7A).stream(index);
    let (_, base) = bases[index as usize % bases.len()];
    let bytes = if kind == "csv" {
        mutated_csv(base, &mut rng)
    } else {
        mutated_npy(base, &mut rng)
    };
    let dir = root().join("cases").join(format!("{kind}{index}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("data.{kind}"));
    std::fs::write(&path, &bytes).unwrap();
    let result = (|| -> Result<(), String> {
        let opts = DataOptions {
            test_frac: *pick(&mut rng, &[0.2, 0.5, 0.05, 0.9]),
            val_frac: *pick(&mut rng, &[0.1, 0.0, 0.5]),
            standardize: rng.below(3) != 0,
            logit: None,
        };
        let spec = DataSpec::File { path: path.clone() };
        let ds = Dataset::load(&spec, &opts, index).map_err(|e| e.to_string())?;
        assert!(ds.train.shape()[0] >= 2 && ds.test.shape()[0] >= 1);
        let objective = *pick(&mut rng, &["dsm-cv", "nce", "ssm-vr", "cd", "ncsn"]);
        let mut c = TrainConfig {
            data: spec,
            data_options: opts,
            objective: objective.into(),
            hidden: vec![8],
            batch: 16,
            steps: 2,
            seed: index,
            ..TrainConfig::default()
        };
        c.params.langevin_steps = 2;
        c.params.levels = 3;
        let mut t = Trainer::new(c).map_err(|e| e.to_string())?;
        for _ in 0..2 {
            t.step_once(false);
        }
        let _ = ebm::guard::state_problem(&t);
        let x = t.data.batch(t.step, 8);
        let _ = ebm::guard::energy_problem(&t, &x);
        if index.is_multiple_of(8) {
            let noise = ebm::model::Noise::of(&t.config);
            let (r, samples) = ebm::report::evaluate(&t.net, noise, &t.data, 0.0, &tiny_eval())
                .map_err(|e| e.to_string())?;
            ebm::report::pictures(&dir, &r, &t.net, noise, &t.data, &samples, "fuzz")
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    if std::env::var_os("EBM_FUZZ_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Running many cases

static CURRENT: AtomicU64 = AtomicU64::new(u64::MAX);
static STARTED_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A thread that ends the process (exit status 3, after naming the case) when a case runs
/// longer than [`HANG_SECS`].
fn watchdog() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        now_ms();
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(200));
            let case = CURRENT.load(Ordering::SeqCst);
            let started = STARTED_MS.load(Ordering::SeqCst);
            if case != u64::MAX && now_ms().saturating_sub(started) > HANG_SECS * 1000 {
                println!("HANG {case}");
                let _ = std::io::stdout().flush();
                std::process::exit(3);
            }
        });
    });
}

/// The last panic's message (the hook records it instead of printing a backtrace).
static PANIC_MSG: Mutex<String> = Mutex::new(String::new());

fn quiet_panics() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = format!("{info}").replace('\n', " ");
            *PANIC_MSG.lock().unwrap_or_else(|e| e.into_inner()) = msg;
        }));
    });
}

/// Runs case `index` of `kind`; a panic is caught and reported.
fn run_case(kind: &str, index: u64, seed: u64) -> (Outcome, String) {
    quiet_panics();
    watchdog();
    STARTED_MS.store(now_ms(), Ordering::SeqCst);
    CURRENT.store(index, Ordering::SeqCst);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| match kind {
        "checkpoint" => run_checkpoint_case(index, seed),
        k => run_data_case(k, index, seed),
    }));
    CURRENT.store(u64::MAX, Ordering::SeqCst);
    match r {
        Ok(Ok(())) => (Outcome::Accepted, String::new()),
        Ok(Err(e)) => (Outcome::Rejected, e),
        Err(_) => (
            Outcome::Panic,
            PANIC_MSG.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Counts by outcome, per kind.
type Tally = BTreeMap<(String, Outcome), u64>;

fn report(tally: &Tally, failures: &[String]) -> String {
    let mut s = String::from("kind        accepted  rejected  panic  abort  hang\n");
    for kind in KINDS {
        let n = |o| tally.get(&(kind.to_string(), o)).copied().unwrap_or(0);
        s += &format!(
            "{kind:<11} {:>8}  {:>8}  {:>5}  {:>5}  {:>4}\n",
            n(Outcome::Accepted),
            n(Outcome::Rejected),
            n(Outcome::Panic),
            n(Outcome::Abort),
            n(Outcome::Hang)
        );
    }
    for f in failures.iter().take(20) {
        s += &format!("  {f}\n");
    }
    s
}

/// The small fixed budget of the normal test run: every kind, in-process.
#[test]
fn fuzz_small_budget() {
    let seed = 1;
    let mut tally = Tally::new();
    let mut failures = Vec::new();
    let t0 = Instant::now();
    for kind in KINDS {
        let n = if kind == "checkpoint" { 60 } else { 50 };
        for i in 0..n {
            let (o, msg) = run_case(kind, i, seed);
            *tally.entry((kind.to_string(), o)).or_default() += 1;
            if o == Outcome::Panic {
                failures.push(format!("{kind}:{i} {msg}"));
            }
        }
    }
    let table = report(&tally, &failures);
    eprintln!("{table}in {:.1} s", t0.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{table}");
    // the budget exercises both outcomes of every kind
    for kind in KINDS {
        for o in [Outcome::Accepted, Outcome::Rejected] {
            assert!(
                tally.get(&(kind.to_string(), o)).copied().unwrap_or(0) > 0,
                "{kind}: no case {}\n{table}",
                o.name()
            );
        }
    }
    let _ = std::fs::remove_dir_all(root());
}

/// A batch of cases for [`fuzz_big_budget`]: `EBM_FUZZ_RANGE=kind:start:end`, one line per
/// case on stdout.
#[test]
#[ignore = "a worker process of fuzz_big_budget"]
fn fuzz_worker() {
    let Ok(range) = std::env::var("EBM_FUZZ_RANGE") else {
        return;
    };
    let seed = env_u64("EBM_FUZZ_SEED", 1);
    let f: Vec<&str> = range.split(':').collect();
    let (kind, start, end) = (f[0], f[1].parse().unwrap(), f[2].parse().unwrap());
    for i in start..end {
        let (o, msg) = run_case(kind, i, seed);
        println!("CASE {kind} {i} {} {}", o.name(), msg.replace('\n', " "));
        let _ = std::io::stdout().flush();
    }
    let _ = std::fs::remove_dir_all(root());
}

/// The acceptance budget: `EBM_FUZZ_CASES` (default 10⁴) checkpoints and as many data files
/// of each format, in child processes of `EBM_FUZZ_BATCH` cases (default 500): a child that
/// dies (abort, out of memory) or hangs is one case of that outcome, and the run goes on
/// with the next case. Prints the counts by outcome; fails on any panic, abort or hang.
#[test]
#[ignore = "the 10⁴-case fuzz run (minutes); see the module documentation"]
fn fuzz_big_budget() {
    let cases = env_u64("EBM_FUZZ_CASES", 10_000);
    let batch = env_u64("EBM_FUZZ_BATCH", 500);
    let exe = std::env::current_exe().unwrap();
    let mut tally = Tally::new();
    let mut failures = Vec::new();
    let t0 = Instant::now();
    for kind in KINDS {
        let mut next = 0;
        while next < cases {
            let end = (next + batch).min(cases);
            let mut child = std::process::Command::new(&exe)
                .args(["--exact", "fuzz_worker", "--ignored", "--nocapture"])
                .args(["--test-threads", "1"])
                .env("EBM_FUZZ_RANGE", format!("{kind}:{next}:{end}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut hang = None;
            for line in out.lines().map_while(Result::ok) {
                // libtest's "test fuzz_worker ... " may precede the first line
                let at = ["CASE ", "HANG "]
                    .iter()
                    .filter_map(|m| line.find(m))
                    .min()
                    .unwrap_or(0);
                let f: Vec<&str> = line[at..].splitn(5, ' ').collect();
                match f.as_slice() {
                    ["CASE", k, i, o, rest @ ..] => {
                        let o = Outcome::parse(o).expect("an outcome");
                        *tally.entry((k.to_string(), o)).or_default() += 1;
                        next = i.parse::<u64>().unwrap() + 1;
                        if o == Outcome::Panic {
                            failures.push(format!("{k}:{i} panic: {}", rest.join(" ")));
                        }
                    }
                    ["HANG", i] => hang = Some(i.parse::<u64>().unwrap()),
                    _ => {}
                }
            }
            let status = child.wait().unwrap();
            if next < end {
                // the child died on case `next`: an abort (signal, allocation failure) or
                // the watchdog's hang
                let o = if hang == Some(next) {
                    Outcome::Hang
                } else {
                    Outcome::Abort
                };
                *tally.entry((kind.to_string(), o)).or_default() += 1;
                failures.push(format!("{kind}:{next} {} ({status})", o.name()));
                next += 1;
            }
            eprint!(
                "\r{kind} {next}/{cases} ({:.0} s)   ",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let table = report(&tally, &failures);
    for kind in KINDS {
        let counted: u64 = tally
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            counted, cases,
            "{kind}: every case is counted once\n{table}"
        );
    }
    eprintln!(
        "\nfuzz: {cases} cases of each kind in {:.0} s (seed {})\n{table}",
        t0.elapsed().as_secs_f64(),
        env_u64("EBM_FUZZ_SEED", 1)
    );
    assert!(failures.is_empty(), "{table}");
}

/// Reruns one case: `EBM_FUZZ_ONLY=kind:index` (with `--ignored --nocapture`; with
/// `EBM_FUZZ_KEEP=1` a data case's file stays in the temp directory named).
#[test]
#[ignore = "reruns the case named by EBM_FUZZ_ONLY"]
fn fuzz_one() {
    let Ok(only) = std::env::var("EBM_FUZZ_ONLY") else {
        return;
    };
    let (kind, i) = only.split_once(':').expect("kind:index");
    let (o, msg) = run_case(kind, i.parse().unwrap(), env_u64("EBM_FUZZ_SEED", 1));
    eprintln!(
        "{kind}:{i} {} {msg} (files under {})",
        o.name(),
        root().display()
    );
    if std::env::var_os("EBM_FUZZ_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(root());
    }
}
