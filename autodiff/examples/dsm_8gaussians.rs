//! Trains the fixture-sized energy (MLP 2-128-128-1, SiLU) by denoising score matching on
//! FFJORD's 8-Gaussians, with Adam, and prints the loss falling and the test NLL by grid
//! quadrature against the data's entropy (2.831 nats).
//!
//! `cargo run --release -p ebm-autodiff --example dsm_8gaussians [steps]`

use ebm_autodiff::{grad, grad_with, GradOpts, Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_data::{Toy, TOY_TEST_ROWS, TOY_TEST_SEED};
use std::time::Instant;

const SIGMA: f64 = 0.1;
const BATCH: usize = 1024;

fn init_params(rng: &mut Rng, widths: &[usize]) -> Vec<Tensor> {
    let mut ps = Vec::new();
    for w in widths.windows(2) {
        let bound = 1.0 / (w[0] as f64).sqrt();
        ps.push(rng.uniform(&[w[1], w[0]], -bound, bound, DType::F32));
        ps.push(rng.uniform(&[w[1]], -bound, bound, DType::F32));
    }
    ps
}

fn energy(x: &Var, p: &[Var]) -> Var {
    let layers = p.len() / 2;
    let mut h = x.clone();
    for l in 0..layers {
        h = h.matmul_t(&p[2 * l], false, true).add(&p[2 * l + 1]);
        if l + 1 < layers {
            h = h.silu();
        }
    }
    h.reshape(&[x.shape()[0]])
}

/// Adam (Kingma & Ba 2015) with PyTorch's update: θ ← θ − lr·m̂/(√v̂ + ε).
struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl Adam {
    fn step(&mut self, params: &mut [Tensor], grads: &[Tensor], lr: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for i in 0..params.len() {
            self.m[i] = self.m[i].mul_scalar(b1).add(&grads[i].mul_scalar(1.0 - b1));
            self.v[i] = self.v[i]
                .mul_scalar(b2)
                .add(&grads[i].square().mul_scalar(1.0 - b2));
            let denom = self.v[i].mul_scalar(1.0 / c2).sqrt().add_scalar(eps);
            let update = self.m[i].mul_scalar(lr / c1).div(&denom);
            params[i] = params[i].sub(&update);
        }
    }
}

/// Test NLL by quadrature: log Z = log Σ exp(−E) ΔA on a 300×300 grid over [−5, 5]².
fn test_nll(params: &[Tensor], test: &Tensor) -> f64 {
    let tape = Tape::new();
    let p: Vec<Var> = params.iter().map(|t| tape.constant(t.clone())).collect();
    let (n, lo, hi) = (300usize, -5.0, 5.0);
    let h = (hi - lo) / n as f64;
    let mut pts = Vec::with_capacity(2 * n * n);
    for i in 0..n {
        for j in 0..n {
            pts.push(lo + (i as f64 + 0.5) * h);
            pts.push(lo + (j as f64 + 0.5) * h);
        }
    }
    let grid = tape.constant(Tensor::from_f64s(&pts, &[n * n, 2], DType::F32));
    let e = energy(&grid, &p).value().cast(DType::F64);
    let log_z = e.neg().logsumexp(&[0], false).item() + (h * h).ln();
    let et = energy(&tape.constant(test.clone()), &p)
        .value()
        .cast(DType::F64);
    et.mean_all().item() + log_z
}

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("steps must be a number"))
        .unwrap_or(3000);
    let mut rng = Rng::new(0);
    let mut params = init_params(&mut rng, &[2, 128, 128, 1]);
    let mut adam = Adam {
        m: params.iter().map(|p| p.zeros_like()).collect(),
        v: params.iter().map(|p| p.zeros_like()).collect(),
        t: 0,
    };
    let t0 = Instant::now();
    let mut avg = 0.0;
    for step in 1..=steps {
        let x = Toy::EightGaussians.sample(BATCH, &mut rng);
        let z = rng.normal(&[BATCH, 2], DType::F32);
        let tape = Tape::new();
        let p: Vec<Var> = params.iter().map(|t| tape.var(t.clone())).collect();
        let xt = tape.var(x.add(&z.mul_scalar(SIGMA)));
        let e = energy(&xt, &p);
        let g = grad_with(&e.sum_all(), &[&xt], GradOpts::create_graph()).remove(0);
        // ½‖s(x̃) + z/σ‖² with s = −∇E (Vincent 2011)
        let loss = g
            .neg()
            .add_const(&z.mul_scalar(1.0 / SIGMA))
            .square()
            .sum(&[1], false)
            .mean_all()
            .mul_scalar(0.5);
        let refs: Vec<&Var> = p.iter().collect();
        let grads: Vec<Tensor> = grad(&loss, &refs)
            .into_iter()
            .map(|g| g.value().clone())
            .collect();
        let lr = 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / steps as f64).cos());
        adam.step(&mut params, &grads, lr);
        avg += loss.item();
        if step % (steps / 10).max(1) == 0 {
            println!(
                "step {step:>5}  dsm loss {:.4}  ({:.0} steps/s)",
                avg / (steps / 10).max(1) as f64,
                step as f64 / t0.elapsed().as_secs_f64()
            );
            avg = 0.0;
        }
    }
    let test = Toy::EightGaussians.sample(TOY_TEST_ROWS, &mut Rng::new(TOY_TEST_SEED));
    let nll = test_nll(&params, &test);
    println!(
        "test NLL {nll:.3} nats (data entropy 2.831; gap {:.3}), {:.1} s",
        nll - 2.831,
        t0.elapsed().as_secs_f64()
    );
}
