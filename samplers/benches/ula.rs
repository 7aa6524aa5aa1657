//! ULA on 10,000 chains of the fixture MLP energy (2-128-128-1, SiLU), f32, one thread:
//! chain-steps per second (criterion's elements/s, one element = one chain advanced one step).
//!
//! Weights come from `autodiff/tests/data/M2_weights.safetensors` (the fixture the autodiff
//! tests check against PyTorch); if that file is missing, a PyTorch-style random init of the
//! same shapes (same cost).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ebm_autodiff::Var;
use ebm_core::{profile, DType, Rng, Tensor};
use ebm_samplers::{Step, Target, Ula, VarEnergy};
use safetensors::{Dtype, SafeTensors};
use std::hint::black_box;

const CHAINS: usize = 10_000;
const PARAMS: [&str; 6] = [
    "l0.weight",
    "l0.bias",
    "l1.weight",
    "l1.bias",
    "l2.weight",
    "l2.bias",
];

fn fixture_weights() -> Option<Vec<Tensor>> {
    let path = format!(
        "{}/../autodiff/tests/data/M2_weights.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(path).ok()?;
    let st = SafeTensors::deserialize(&bytes).ok()?;
    PARAMS
        .iter()
        .map(|&n| {
            let v = st.tensor(n).ok()?;
            (v.dtype() == Dtype::F32).then(|| {
                let data: Vec<f32> = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                Tensor::from_vec(data, v.shape())
            })
        })
        .collect()
}

/// PyTorch's default Linear init: U(−1/√in, 1/√in).
fn random_weights(rng: &mut Rng) -> Vec<Tensor> {
    let mut ps = Vec::new();
    for w in [2usize, 128, 128, 1].windows(2) {
        let bound = 1.0 / (w[0] as f64).sqrt();
        ps.push(rng.uniform(&[w[1], w[0]], -bound, bound, DType::F32));
        ps.push(rng.uniform(&[w[1]], -bound, bound, DType::F32));
    }
    ps
}

/// E(x) = l2(silu(l1(silu(l0(x))))), `nn.Linear` layout (x·Wᵀ + b), one value per row.
fn mlp_energy(weights: Vec<Tensor>) -> impl Fn(&Var) -> Var {
    move |x: &Var| {
        let p: Vec<Var> = weights.iter().map(|w| x.constant(w.clone())).collect();
        let linear = |h: &Var, l: usize| h.matmul_t(&p[2 * l], false, true).add(&p[2 * l + 1]);
        let h = linear(x, 0).silu();
        let h = linear(&h, 1).silu();
        linear(&h, 2).reshape(&[x.shape()[0]])
    }
}

fn bench_ula(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let mut rng = Rng::new(0);
    let (weights, source) = match fixture_weights() {
        Some(w) => (w, "M2 fixture weights"),
        None => (random_weights(&mut rng), "random init"),
    };
    eprintln!("ula bench: {CHAINS} chains, MLP 2-128-128-1 ({source}), f32, 1 thread");
    let target = VarEnergy::new(mlp_energy(weights));
    let ula = Ula::new(Step::Tied { eps: 0.01 }, 1);
    let mut x = rng.normal(&[CHAINS, 2], DType::F32);

    let mut g = c.benchmark_group("ula_mlp_2_128_128_1_f32");
    g.throughput(Throughput::Elements(CHAINS as u64));
    g.bench_function("chains_10000_step", |b| {
        pool.install(|| {
            b.iter(|| {
                // hand the step the only handle to x, so the update runs in place
                let xi = std::mem::replace(&mut x, Tensor::zeros(&[0], DType::F32));
                x = ula.step(&target, xi, &mut rng);
                black_box(&x);
            })
        })
    });
    g.bench_function("chains_10000_score_only", |b| {
        pool.install(|| b.iter(|| black_box(target.score(&x))))
    });
    // where a step's time goes besides the score: the Gaussian noise for every chain
    g.bench_function("chains_10000_noise_only", |b| {
        b.iter(|| black_box(rng.normal(&[CHAINS, 2], DType::F32)))
    });
    g.finish();

    // Where a step's time goes (the fastest of 20 profiled steps).
    let best = pool.install(|| {
        (0..20)
            .map(|_| {
                let xi = std::mem::replace(&mut x, Tensor::zeros(&[0], DType::F32));
                let (xn, prof) = profile(|| ula.step(&target, xi, &mut rng));
                x = xn;
                prof
            })
            .min_by_key(|p| p.wall)
            .unwrap()
    });
    eprintln!(
        "ula step profile: wall {:.3} ms; {best}; outside matmul: {:.1}%",
        best.wall.as_secs_f64() * 1e3,
        100.0 * best.share_outside_matmul()
    );
}

criterion_group!(benches, bench_ula);
criterion_main!(benches);
