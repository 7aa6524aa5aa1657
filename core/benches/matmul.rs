//! Tensor matmul against raw `matrixmultiply::sgemm` on the same shapes (target: within 10%).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ebm_core::{DType, Rng};
use std::hint::black_box;

fn bench_matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32");
    for &(m, k, n) in &[(1024usize, 128usize, 128usize), (512, 512, 512)] {
        let mut rng = Rng::new(0);
        let a = rng.normal(&[m, k], DType::F32);
        let b = rng.normal(&[k, n], DType::F32);
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        let id = format!("{m}x{k}x{n}");
        g.bench_with_input(BenchmarkId::new("tensor", &id), &(), |bch, _| {
            bch.iter(|| black_box(a.matmul(&b)))
        });
        g.bench_with_input(BenchmarkId::new("tensor_bt", &id), &(), |bch, _| {
            let bt = b.t();
            bch.iter(|| black_box(a.matmul_t(&bt, false, true)))
        });
        let (av, bv) = (a.to_vec::<f32>(), b.to_vec::<f32>());
        g.bench_with_input(BenchmarkId::new("raw_sgemm", &id), &(), |bch, _| {
            bch.iter(|| {
                // allocate the output like the tensor op does, so both measure the same work
                let mut cv = vec![0f32; m * n];
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        av.as_ptr(),
                        k as isize,
                        1,
                        bv.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        cv.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
                black_box(cv)
            })
        });
    }
    g.finish();
}

fn bench_elementwise(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let x = rng.normal(&[1024, 128], DType::F32);
    let bias = rng.normal(&[128], DType::F32);
    let mut g = c.benchmark_group("elementwise_f32_1024x128");
    g.throughput(Throughput::Elements(x.numel() as u64));
    g.bench_function("silu", |b| b.iter(|| black_box(x.silu())));
    g.bench_function("add_bias", |b| b.iter(|| black_box(x.add(&bias))));
    g.bench_function("mul", |b| b.iter(|| black_box(x.mul(&x))));
    g.bench_function("sum_axis0", |b| {
        b.iter(|| black_box(x.sum_axes(&[0], false)))
    });
    g.finish();
}

criterion_group!(benches, bench_matmul, bench_elementwise);
criterion_main!(benches);
