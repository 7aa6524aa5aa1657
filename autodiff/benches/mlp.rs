//! The fixture-sized MLP energy (2-128-128-1, SiLU) at batch 1024, f32, one thread: forward,
//! forward + score, and the full DSM loss + parameter gradient, in steps/s; then the share of a
//! DSM step's time spent outside matmul.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ebm_autodiff::{grad, grad_with, GradOpts, Tape, Var};
use ebm_core::{profile, DType, Rng, Tensor};
use std::hint::black_box;

const BATCH: usize = 1024;
const SIGMA: f64 = 0.1;

/// PyTorch's default Linear init: U(−1/√in, 1/√in) for weight [out, in] and bias [out].
fn init_params(rng: &mut Rng, widths: &[usize]) -> Vec<Tensor> {
    let mut ps = Vec::new();
    for w in widths.windows(2) {
        let bound = 1.0 / (w[0] as f64).sqrt();
        ps.push(rng.uniform(&[w[1], w[0]], -bound, bound, DType::F32));
        ps.push(rng.uniform(&[w[1]], -bound, bound, DType::F32));
    }
    ps
}

/// E(x) = l2(silu(l1(silu(l0(x))))), one value per row.
fn energy(x: &Var, p: &[Var]) -> Var {
    let mut h = x.clone();
    let layers = p.len() / 2;
    for l in 0..layers {
        h = h.matmul_t(&p[2 * l], false, true).add(&p[2 * l + 1]);
        if l + 1 < layers {
            h = h.silu();
        }
    }
    h.reshape(&[x.shape()[0]])
}

/// ½ mean‖s(x̃) + z/σ‖², s = −∇ₓE, x̃ = x + σz (Vincent 2011); returns the loss and ∇θ.
fn dsm_step(params: &[Tensor], x: &Tensor, z: &Tensor) -> (f64, Vec<Tensor>) {
    let tape = Tape::new();
    let p: Vec<Var> = params.iter().map(|t| tape.var(t.clone())).collect();
    let xt = tape.var(x.add(&z.mul_scalar(SIGMA)));
    let e = energy(&xt, &p);
    let g = grad_with(&e.sum_all(), &[&xt], GradOpts::create_graph()).remove(0);
    // s + z/σ = −∇E + z/σ
    let r = g.neg().add_const(&z.mul_scalar(1.0 / SIGMA));
    let loss = r.square().sum(&[1], false).mean_all().mul_scalar(0.5);
    let refs: Vec<&Var> = p.iter().collect();
    let gs = grad(&loss, &refs);
    (
        loss.item(),
        gs.into_iter().map(|v| v.value().clone()).collect(),
    )
}

fn bench_mlp(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let params = init_params(&mut rng, &[2, 128, 128, 1]);
    let x = rng.normal(&[BATCH, 2], DType::F32);
    let z = rng.normal(&[BATCH, 2], DType::F32);
    let mut g = c.benchmark_group("mlp_2_128_128_1_b1024_f32");
    g.throughput(Throughput::Elements(1)); // elements/s = steps/s
    g.bench_function("forward", |b| {
        b.iter(|| {
            let tape = Tape::new();
            let p: Vec<Var> = params.iter().map(|t| tape.constant(t.clone())).collect();
            black_box(energy(&tape.constant(x.clone()), &p).value().clone())
        })
    });
    g.bench_function("forward_score", |b| {
        b.iter(|| {
            let tape = Tape::new();
            let p: Vec<Var> = params.iter().map(|t| tape.constant(t.clone())).collect();
            let xv = tape.var(x.clone());
            let e = energy(&xv, &p);
            black_box(grad(&e.sum_all(), &[&xv]).remove(0).value().clone())
        })
    });
    g.bench_function("dsm_loss_param_grad", |b| {
        b.iter(|| black_box(dsm_step(&params, &x, &z)))
    });
    g.finish();

    // Where a DSM step's time goes (median-ish: take the fastest of 20 profiled steps).
    let best = (0..20)
        .map(|_| profile(|| dsm_step(&params, &x, &z)).1)
        .min_by_key(|p| p.wall)
        .unwrap();
    eprintln!(
        "dsm step profile: wall {:.3} ms; {best}; outside matmul: {:.1}%",
        best.wall.as_secs_f64() * 1e3,
        100.0 * best.share_outside_matmul()
    );
}

criterion_group!(benches, bench_mlp);
criterion_main!(benches);
