//! Helpers of the `ebm` binary's tests: scratch directories, running the binary and
//! judging its exit, reading its JSON, `.npy` and PNG outputs.
#![allow(dead_code)]

use ebm::nn::Checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const EBM: &str = env!("CARGO_BIN_EXE_ebm");

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ebm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn ebm(args: &[&str]) -> Output {
    Command::new(EBM)
        .args(args)
        .output()
        .expect("the ebm binary runs")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs and requires success.
pub fn ok(args: &[&str]) -> String {
    let o = ebm(args);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "ebm {args:?} failed: {:?}\n{out}\n{err}",
        o.status
    );
    out
}

/// Runs and requires exit status 2 with a single `error:` line and no panic.
pub fn fails(args: &[&str]) -> String {
    let o = ebm(args);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "ebm {args:?}: {out}\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

/// A one-line error of our own (clap's usage errors have their own format).
pub fn fails_one_line(args: &[&str]) -> String {
    let err = fails(args);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "ebm {args:?}: expected one line, got {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Decodes a PNG; checks its size and that it is a picture, not a blank: the gray levels
/// vary and several distinct colours appear.
pub fn check_png(path: &Path, min_w: u32, min_h: u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(
        info.width >= min_w && info.height >= min_h,
        "{}: {}×{}",
        path.display(),
        info.width,
        info.height
    );
    let ch = info.color_type.samples();
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(ch).collect();
    let gray: Vec<f64> = px
        .iter()
        .map(|p| p[..3.min(ch)].iter().map(|&v| v as f64).sum::<f64>() / 3.0)
        .collect();
    let mean = gray.iter().sum::<f64>() / gray.len() as f64;
    let var = gray.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gray.len() as f64;
    assert!(
        var > 100.0,
        "{}: gray variance {var:.1}, a blank picture",
        path.display()
    );
    let mut colours: Vec<[u8; 3]> = px
        .iter()
        .map(|p| [p[0], p[1.min(ch - 1)], p[2.min(ch - 1)]])
        .collect();
    colours.sort();
    colours.dedup();
    assert!(
        colours.len() > 20,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
}

pub fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().to_vec();
    (shape, f.into_vec::<f32>().unwrap())
}

/// Tiny settings for quick runs.
pub const TINY: [&str; 8] = [
    "--hidden",
    "32,32",
    "--batch",
    "64",
    "--eval-samples",
    "200",
    "--log-every",
    "5",
];

/// A version-1.0 `.npy` file.
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape_s = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    npy_raw(descr, false, &shape_s, data)
}

/// A version-1.0 `.npy` file with the shape written as given (any Python literal).
pub fn npy_raw(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// Trains `steps` steps without interruption, and the same run stopped at `stop` and resumed;
/// the final checkpoints must hold the same bits.
pub fn resume_matches(obj: &str, steps: u64, stop: u64) {
    let d = scratch(&format!("resume-{obj}"));
    let (a, b) = (d.join("a"), d.join("b"));
    let common = |out: &Path| -> Vec<String> {
        [
            "train",
            "--objective",
            obj,
            "--steps",
            &steps.to_string(),
            "--checkpoint-every",
            "10",
            "--hidden",
            "16,16",
            "--batch",
            "32",
            "--buffer-size",
            "200",
            "--log-every",
            "4",
            "--eval-every",
            "0",
            "--no-report",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |args: Vec<String>| ebm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(common(&a)).status.success());
    let mut stopped = common(&b);
    stopped.extend(["--stop-at".to_string(), stop.to_string()]);
    let o = run(stopped);
    assert_eq!(o.status.code(), Some(130), "{:?}", text(&o));
    let mid = Checkpoint::load(b.join("checkpoint.safetensors")).unwrap();
    assert_eq!(mid.step, stop);
    let o = ebm(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--no-report",
        "--quiet",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let ca = Checkpoint::load(a.join("checkpoint.safetensors")).unwrap();
    let cb = Checkpoint::load(b.join("checkpoint.safetensors")).unwrap();
    assert_eq!(cb.step, steps);
    assert!(
        ca.bit_eq(&cb),
        "{obj}: the resumed run differs from the uninterrupted one"
    );
    // the metrics agree too, line for line (but for the wall clock)
    let strip = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("elapsed_s");
                v
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b), "{obj}: metrics differ");
    let _ = std::fs::remove_dir_all(&d);
}
