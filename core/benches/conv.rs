//! conv2d forward, input gradient (conv_transpose2d) and weight gradient against the raw GEMM
//! of each one's im2col shape, the limit of an im2col lowering (goal: within 1.3×).
//!
//! `cargo bench -p ebm-core --bench conv` (set RAYON_NUM_THREADS for 1 vs 2 threads).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ebm_core::{Conv2dSpec, DType, Rng};
use std::hint::black_box;

/// (name, N, C, H=W, O, k, padding): a digits-sized 8×8 layer, a 28×28 layer, a 1×1 layer.
const CELLS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("8x8_c32_k3", 128, 32, 8, 32, 3, 1),
    ("28x28_c32_k3", 64, 32, 28, 32, 3, 1),
    ("14x14_c64_k1", 64, 64, 14, 64, 1, 0),
];

fn bench_conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv2d_f32");
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(2));
    g.warm_up_time(std::time::Duration::from_millis(500));
    for &(name, n, ch, hw, o, k, p) in CELLS {
        let mut rng = Rng::new(0);
        let spec = Conv2dSpec::new().padding(p);
        let x = rng.normal(&[n, ch, hw, hw], DType::F32);
        let w = rng.normal(&[o, ch, k, k], DType::F32);
        let y = x.conv2d(&w, spec);
        let gy = rng.normal(y.shape(), DType::F32);
        let (kk, l) = (ch * k * k, n * y.shape()[2] * y.shape()[3]);
        // the im2col shapes: W [O, K], cols [K, N·L], Y [O, N·L]
        let wm = rng.normal(&[o, kk], DType::F32);
        let cols = rng.normal(&[kk, l], DType::F32);
        let ym = rng.normal(&[o, l], DType::F32);
        g.throughput(Throughput::Elements((2 * o * kk * l) as u64));
        g.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| black_box(x.conv2d(&w, spec)))
        });
        g.bench_function(BenchmarkId::new("forward_gemm", name), |b| {
            b.iter(|| black_box(wm.matmul(&cols)))
        });
        g.bench_function(BenchmarkId::new("input_grad", name), |b| {
            b.iter(|| black_box(gy.conv_transpose2d(&w, spec, [0, 0])))
        });
        g.bench_function(BenchmarkId::new("input_grad_gemm", name), |b| {
            b.iter(|| black_box(wm.matmul_t(&ym, true, false)))
        });
        g.bench_function(BenchmarkId::new("weight_grad", name), |b| {
            b.iter(|| black_box(x.conv2d_weight(&gy, spec, [k, k])))
        });
        g.bench_function(BenchmarkId::new("weight_grad_gemm", name), |b| {
            b.iter(|| black_box(ym.matmul_t(&cols, false, true)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
