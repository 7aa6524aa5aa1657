//! Every objective trains the 2-128-128-1 SiLU MLP on FFJORD's 8-Gaussians and checkerboard,
//! and its test NLL by grid quadrature lands within a stated margin of the data's entropy
//! (8-Gaussians 2.831 nats; checkerboard ln 32 = 3.466 nats).
//!
//! The default runs are short (800 steps) with loose margins, enough to separate a trained
//! model from an untrained one (ln 81 = 4.39 nats: uniform over the [−4.5, 4.5]² box, a gap of
//! 1.56 nats on 8-Gaussians and 0.93 on checkerboard). The long
//! runs behind `--ignored` use the budgets and margins of the results table in the closing note.

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{Mlp, MlpConfig, Model, NoiseConditionalConfig, NoiseConditionalNet, Optimizer};
use ebm_objectives::eval::{grid_log_z, nll};
use ebm_objectives::{
    train_step, ChainInit, DenoisingScoreMatching, ExactScoreMatching, MaximumLikelihood,
    ModelKind, ModelTarget, MultiScaleDsm, Nce, NoiseDistribution, NoiseSchedule, Objective,
    Projection, SlicedScoreMatching, TrainStep,
};
use ebm_samplers::replay::{Init, ReplayBuffer};
use ebm_samplers::target::Target;
use ebm_samplers::ula::{Step, Ula};
use std::time::Instant;

const ENTROPY_8G: f64 = 2.831;
const ENTROPY_CHECKER: f64 = 3.466; // ln 32
/// Peak Adam learning rate (cosine-decayed over the run).
const LR: f64 = 3e-3;
/// NCSN's smallest noise level, at which its noise-conditional energy is read as the density.
const SIGMA_MIN: f64 = 0.1;

/// FFJORD's 8-Gaussians: centres 4·(cos kπ/4, sin kπ/4)/√2, standard deviation 0.5/√2.
fn eight_gaussians(n: usize, rng: &mut Rng) -> Tensor {
    let z = rng.normal_vec(2 * n);
    let s = std::f64::consts::SQRT_2;
    let mut v = Vec::with_capacity(2 * n);
    for i in 0..n {
        let k = rng.below(8) as f64 * std::f64::consts::FRAC_PI_4;
        v.push((4.0 * k.cos() + 0.5 * z[2 * i]) / s);
        v.push((4.0 * k.sin() + 0.5 * z[2 * i + 1]) / s);
    }
    Tensor::from_f64s(&v, &[n, 2], DType::F32)
}

/// FFJORD's checkerboard: uniform on 8 of the 16 unit squares of [−2, 2)², scaled by 2.
fn checkerboard(n: usize, rng: &mut Rng) -> Tensor {
    let mut v = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let x1 = rng.next_f64() * 4.0 - 2.0;
        let x2 = rng.next_f64() - 2.0 * rng.below(2) as f64 + (x1.floor().rem_euclid(2.0));
        v.push(2.0 * x1);
        v.push(2.0 * x2);
    }
    Tensor::from_f64s(&v, &[n, 2], DType::F32)
}

#[derive(Clone, Copy, Debug)]
enum Data {
    EightGaussians,
    Checkerboard,
}

impl Data {
    fn sample(self, n: usize, rng: &mut Rng) -> Tensor {
        match self {
            Data::EightGaussians => eight_gaussians(n, rng),
            Data::Checkerboard => checkerboard(n, rng),
        }
    }
    fn entropy(self) -> f64 {
        match self {
            Data::EightGaussians => ENTROPY_8G,
            Data::Checkerboard => ENTROPY_CHECKER,
        }
    }
}

fn objective(name: &str, data: Data) -> Box<dyn Objective> {
    let x_fit = data.sample(10_000, &mut Rng::new(77));
    match name {
        "dsm" => Box::new(DenoisingScoreMatching::new(0.1)),
        "dsm-cv" => Box::new(DenoisingScoreMatching::with_control_variate(0.1)),
        "esm" => Box::new(ExactScoreMatching),
        "ssm" => Box::new(SlicedScoreMatching::default()),
        "ssm-vr" => Box::new(SlicedScoreMatching {
            projection: Projection::Rademacher,
            n_projections: 1,
            variance_reduced: true,
        }),
        "nce" => Box::new(Nce::new(
            NoiseDistribution::fitted(&x_fit, 1.2),
            1.0,
            0.0,
            DType::F32,
        )),
        "pcd" => Box::new(MaximumLikelihood::new(
            Ula::new(Step::Tied { eps: 0.3 }, 20),
            ChainInit::Persistent(ReplayBuffer::new(
                10_000,
                &[2],
                Init::Uniform { lo: -4.0, hi: 4.0 },
                DType::F32,
                &mut Rng::new(5),
            )),
            0.1,
        )),
        "cd" => Box::new(MaximumLikelihood::new(
            Ula::new(Step::Tied { eps: 0.3 }, 20),
            ChainInit::Data,
            0.1,
        )),
        "ncsn" => Box::new(MultiScaleDsm {
            schedule: NoiseSchedule::Geometric {
                sigma_max: 2.0,
                sigma_min: SIGMA_MIN,
                levels: 10,
            },
        }),
        other => panic!("unknown objective {other}"),
    }
}

/// Test NLL by quadrature on the box the data live in (the grid doubles it if mass leaks).
fn test_nll(target: &impl Target, data: Data) -> (f64, f64) {
    let g = grid_log_z(target, &[(-4.5, 4.5), (-4.5, 4.5)], 200, 1e-4, DType::F32);
    let test = data.sample(20_000, &mut Rng::new(12_345));
    (nll(target, &test, g.log_z), g.grid_error)
}

/// Trains `name` on `data` through the one training step: the 2-128-128-1 MLP, or for NCSN the
/// noise-conditional energy of the same widths, read at σ_min; returns (test NLL, grid error,
/// seconds).
fn train(name: &str, data: Data, steps: usize, batch: usize) -> (f64, f64, f64) {
    let t0 = Instant::now();
    let mut rng = Rng::new(0);
    let mut obj = objective(name, data);
    let mut model: Box<dyn Model> = match obj.model_kind() {
        ModelKind::Energy => Box::new(Mlp::new(MlpConfig::new(&[2, 128, 128, 1]), &mut rng)),
        ModelKind::NoiseConditional(c) => Box::new(NoiseConditionalNet::new(
            NoiseConditionalConfig::new(2, &[128, 128]).conditioning(c),
            &mut rng,
        )),
    };
    let mut step = TrainStep::new(Optimizer::adam(LR, model.params()));
    if let Some(q) = obj.params() {
        step = step.with_objective_optimizer(Optimizer::adam(1e-2, q));
    }
    for k in 0..steps {
        let lr = LR * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / steps as f64).cos());
        step.optimizer.set_lr(lr.max(1e-5));
        let x = data.sample(batch, &mut rng);
        train_step(obj.as_mut(), model.as_mut(), &mut step, &x, &mut rng);
    }
    let target = ModelTarget::new(model.as_ref()).at(SIGMA_MIN);
    let (nll, grid_err) = test_nll(&target, data);
    (nll, grid_err, t0.elapsed().as_secs_f64())
}

const OBJECTIVES: [&str; 9] = [
    "dsm", "dsm-cv", "esm", "ssm", "ssm-vr", "nce", "pcd", "cd", "ncsn",
];

fn run_all(steps: usize, batch: usize, margin_8g: f64, margin_cb: f64) {
    let mut failures = Vec::new();
    for data in [Data::EightGaussians, Data::Checkerboard] {
        let margin = match data {
            Data::EightGaussians => margin_8g,
            Data::Checkerboard => margin_cb,
        };
        let rows: Vec<(String, (f64, f64, f64))> = OBJECTIVES
            .iter()
            .map(|&o| (o.to_string(), train(o, data, steps, batch)))
            .collect();
        for (name, (nll, grid_err, secs)) in rows {
            let gap = nll - data.entropy();
            eprintln!(
                "| {name} | {data:?} | {nll:.3} | {gap:+.3} | {steps} | {secs:.1} s | grid err {grid_err:.1e} |"
            );
            if gap.is_nan() || gap.abs() >= margin {
                failures.push(format!(
                    "{name} on {data:?}: NLL {nll:.3}, gap {gap:+.3} > {margin}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_objective_learns_both_toy_sets_short_run() {
    run_all(800, 256, 0.75, 0.75);
}

#[test]
#[ignore = "long: 4000 steps per objective and dataset"]
fn every_objective_learns_both_toy_sets_long_run() {
    run_all(4000, 512, 0.3, 0.4);
}
