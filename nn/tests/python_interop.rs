//! A checkpoint of the 2-128-128-1 MLP loads in Python with `safetensors.numpy.load_file`
//! and has the fixture's layout, shapes, dtype and values (`tests/python/check_checkpoint.py`).
//!
//! The interpreter is `$EBM_PYTHON` (CI creates a venv with safetensors and numpy and points
//! it there), else `python3`. Without safetensors available the test prints a skip line,
//! except under `CI=true`, where it fails.

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{load_weights, Checkpoint, Ema, Mlp, MlpConfig, Module, Optimizer};
use std::path::PathBuf;
use std::process::Command;

fn python() -> Option<String> {
    let exe = std::env::var("EBM_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&exe)
        .args(["-c", "import numpy, safetensors.numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(exe);
    }
    let msg = format!(
        "`{exe}` cannot import safetensors and numpy (set EBM_PYTHON to a Python that can, \
         e.g. a venv with `pip install safetensors numpy`)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED python_interop: {msg}");
    None
}

#[test]
fn checkpoint_loads_in_python_with_the_fixture_layout() {
    let Some(py) = python() else {
        return;
    };
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reference = manifest.join("tests/data/M2_weights.safetensors");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ebm-nn-python");
    std::fs::create_dir_all(&dir).unwrap();

    let mut rng = Rng::new(0);
    let mut model = Mlp::new(MlpConfig::new(&[2, 128, 128, 1]), &mut rng);
    load_weights(&reference, &mut model).unwrap();
    let params_only = dir.join("m2_params.safetensors");
    Checkpoint::new(&model).save(&params_only).unwrap();

    let mut opt = Optimizer::adam(1e-3, model.params());
    let grads: Vec<Tensor> = model
        .params()
        .tensors()
        .iter()
        .map(|t| rng.normal(t.shape(), DType::F32))
        .collect();
    opt.step(model.params_mut(), &grads);
    let mut ema = Ema::new(model.params(), 0.999);
    ema.update(model.params());
    let full = dir.join("m2_full.safetensors");
    Checkpoint::new(&model)
        .with_optimizer(&opt)
        .with_ema(&ema)
        .with_step(7)
        .with_rng(&rng)
        .save(&full)
        .unwrap();

    let out = Command::new(&py)
        .arg(manifest.join("tests/python/check_checkpoint.py"))
        .args([&params_only, &full, &reference])
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim_end().ends_with("ok"),
        "python check failed:\n{text}"
    );
}
