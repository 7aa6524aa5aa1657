//! GFLOP/s of our tiled matmul kernel against cuBLAS, for square products, the training MLP's
//! layer shapes, and batches of small per-chain matrices (where launch overhead dominates).
//! Prints one JSON line per (shape, engine).
//!
//! `cargo run --release -p ebm-cuda-bench --features cuda --bin matmul`

use ebm_cuda::{DType, DeviceBuffer, MatmulEngine};
use ebm_cuda_bench::{device_json, gpu_or_exit, time_per_call};

fn main() {
    let g = gpu_or_exit("matmul");
    // (name, batch, m, k, n, transpose b)
    let cases: &[(&str, usize, usize, usize, usize, bool)] = &[
        ("square", 1, 256, 256, 256, false),
        ("square", 1, 1024, 1024, 1024, false),
        ("square", 1, 4096, 4096, 4096, false),
        ("mlp_hidden_b65536", 1, 65536, 128, 128, true),
        ("mlp_input_b65536", 1, 65536, 2, 128, true),
        ("mlp_grad_w_b65536", 1, 128, 65536, 128, false),
        ("per_chain_8", 100_000, 8, 8, 8, false),
        ("per_chain_32", 10_000, 32, 32, 32, false),
        ("per_chain_64", 1_000, 64, 64, 64, false),
    ];
    for &(name, batch, m, k, n, tb) in cases {
        for dtype in [DType::F32, DType::F64] {
            let a = DeviceBuffer::full(&g, dtype, batch * m * k, 0.5).expect("alloc");
            let b = DeviceBuffer::full(&g, dtype, batch * k * n, 0.25).expect("alloc");
            let ashape: Vec<usize> = if batch > 1 {
                vec![batch, m, k]
            } else {
                vec![m, k]
            };
            let bshape: Vec<usize> = match (batch > 1, tb) {
                (true, false) => vec![batch, k, n],
                (true, true) => vec![batch, n, k],
                (false, false) => vec![k, n],
                (false, true) => vec![n, k],
            };
            for engine in [MatmulEngine::Tiled, MatmulEngine::Cublas] {
                if let Err(e) = a.matmul(&ashape, false, &b, &bshape, tb, engine) {
                    eprintln!("matmul {name} {engine:?}: {e}");
                    continue;
                }
                let secs = time_per_call(&g, 0.5, 5, || {
                    let _ = a
                        .matmul(&ashape, false, &b, &bshape, tb, engine)
                        .expect("matmul");
                });
                let flops = 2.0 * (batch * m * n * k) as f64;
                println!(
                    "{}",
                    serde_json::json!({
                        "bench": "matmul", "case": name, "engine": format!("{engine:?}").to_lowercase(),
                        "dtype": format!("{dtype:?}").to_lowercase(),
                        "batch": batch, "m": m, "k": k, "n": n, "transpose_b": tb,
                        "ms": secs * 1e3, "gflops": flops / secs * 1e-9, "device": device_json(&g),
                    })
                );
            }
        }
    }
}
