//! Shared pieces of the GPU benchmark binaries (`langevin`, `matmul`, `train`): finding the
//! GPU (or exiting with a clear message), timing, command-line numbers, JSON lines.
//!
//! Run on a GPU machine (NVRTC must be loadable, e.g. the pinned wheel of .ci/run on
//! LD_LIBRARY_PATH):
//! `cargo run --release -p ebm-cuda-bench --features cuda --bin langevin`
//! and the PyTorch side with `python bench/cuda/torch_gpu.py langevin` on the same machine.

use std::time::Instant;

/// GPU 0, or a one-line explanation on stderr and exit status 2 (nothing is measured).
pub fn gpu_or_exit(bench: &str) -> std::sync::Arc<ebm_cuda::Gpu> {
    match ebm_cuda::default_gpu() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{bench}: no GPU to benchmark on ({e}); nothing measured");
            std::process::exit(2);
        }
    }
}

/// The device's description for the JSON lines.
pub fn device_json(g: &ebm_cuda::Gpu) -> serde_json::Value {
    serde_json::json!({ "name": g.name(), "arch": format!("sm_{}", g.arch()), "sms": g.sm_count() })
}

/// Seconds per call of `f`: one warm-up call, then calls until `min_secs` have passed (at least
/// `min_reps`), with the GPU synchronised before the clock starts and after it stops.
pub fn time_per_call(
    g: &ebm_cuda::Gpu,
    min_secs: f64,
    min_reps: usize,
    mut f: impl FnMut(),
) -> f64 {
    f();
    g.synchronize().expect("synchronize");
    let t0 = Instant::now();
    let mut reps = 0;
    while reps < min_reps || t0.elapsed().as_secs_f64() < min_secs {
        f();
        reps += 1;
        if reps % 8 == 0 {
            g.synchronize().expect("synchronize");
        }
    }
    g.synchronize().expect("synchronize");
    t0.elapsed().as_secs_f64() / reps as f64
}

/// `--name v1,v2,…` from the command line, or `default`.
pub fn arg_list(name: &str, default: &[usize]) -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.split(',')
                .map(|s| {
                    s.trim().parse().unwrap_or_else(|_| {
                        eprintln!("{name}: `{s}` is not a whole number");
                        std::process::exit(2)
                    })
                })
                .collect()
        })
        .unwrap_or_else(|| default.to_vec())
}

/// `--name v` from the command line, or `default`.
pub fn arg_one(name: &str, default: usize) -> usize {
    arg_list(name, &[default])[0]
}
