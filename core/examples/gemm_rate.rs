//! GFLOP/s of `Tensor::matmul_t` on the f32 products of the benchmark's models, one JSON line
//! per shape, with the CPU, the GEMM path (set it with `EBM_GEMM=avx512|avx2|portable`) and
//! the measured one-thread FMA peak:
//!
//! `cargo run --release -p ebm-core --example gemm_rate [-- M,K,N,ta,tb ...]`
//!
//! `ta`/`tb` (0 or 1) transpose the stored operand as the backward passes do (Aᵀ: A stored
//! K×M). Runs on one thread unless `RAYON_NUM_THREADS` says otherwise.

use ebm_core::{cpu_model, fma_peak_gflops, gemm_path, DType, Rng};
use std::time::Instant;

/// The models' products: (M2: batch 1024, width 128; M64: batch 256, width 256) forward x·W,
/// input gradient g·Wᵀ, weight gradient xᵀ·g; then square ones from the width sweep.
const SHAPES: [(usize, usize, usize, bool, bool); 9] = [
    (1024, 128, 128, false, false),
    (1024, 128, 128, false, true),
    (128, 1024, 128, true, false),
    (256, 256, 256, false, false),
    (256, 256, 256, false, true),
    (256, 256, 256, true, false),
    (1024, 512, 512, false, false),
    (1024, 1024, 1024, false, false),
    (512, 512, 512, false, false),
];

fn parse(s: &str) -> Option<(usize, usize, usize, bool, bool)> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (v.len() == 5).then(|| (v[0], v[1], v[2], v[3] == 1, v[4] == 1))
}

fn main() {
    let parsed: Option<Vec<_>> = std::env::args().skip(1).map(|a| parse(&a)).collect();
    let shapes = match parsed {
        Some(v) if !v.is_empty() => v,
        Some(_) => SHAPES.to_vec(),
        None => {
            eprintln!("usage: gemm_rate [M,K,N,ta,tb ...]");
            std::process::exit(2)
        }
    };
    let peak = fma_peak_gflops();
    let mut rng = Rng::new(0);
    for (m, k, n, ta, tb) in shapes {
        let a = rng.normal(&if ta { [k, m] } else { [m, k] }, DType::F32);
        let b = rng.normal(&if tb { [n, k] } else { [k, n] }, DType::F32);
        let flops = 2.0 * (m * k * n) as f64;
        // about 0.2 s per shape: the median and the best of the repetitions' rates (the best is
        // the steadier figure on a shared machine, where long repetitions get preempted)
        let reps = ((0.2e9 / flops) as usize).clamp(5, 2000);
        let mut rates: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                std::hint::black_box(a.matmul_t(&b, ta, tb));
                flops / t0.elapsed().as_secs_f64() * 1e-9
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        let (gflops, best) = (rates[reps / 2], rates[reps - 1]);
        let t = |f: bool| if f { "T" } else { "" };
        println!(
            "{{\"shape\":\"{m}x{k}{}·{k}x{n}{}\",\"m\":{m},\"k\":{k},\"n\":{n},\"ta\":{ta},\"tb\":{tb},\"gflops\":{gflops:.2},\"best_gflops\":{best:.2},\"peak_gflops\":{},\"fraction_of_peak\":{},\"path\":\"{}\",\"cpu\":{:?}}}",
            t(ta),
            t(tb),
            peak.map_or("null".into(), |p| format!("{p:.2}")),
            peak.map_or("null".into(), |p| format!("{:.3}", gflops / p)),
            gemm_path().name(),
            cpu_model(),
        );
    }
}
