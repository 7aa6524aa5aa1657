//! The toy-density harness shared by the toy tests and `examples/toy_table.rs`: FFJORD's
//! 8-Gaussians and checkerboard, every objective with its toy settings, training through the
//! one training step, and test NLL by grid quadrature.
#![allow(dead_code)]

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{Mlp, MlpConfig, Model, NoiseConditionalConfig, NoiseConditionalNet, Optimizer};
use ebm_objectives::eval::{grid_log_z, nll};
use ebm_objectives::{
    names, train_step, ChainInit, ConditionalNce, DenoisingScoreMatching,
    DiffusionRecoveryLikelihood, EnergyDiscrepancy, ExactScoreMatching, FceOptions,
    FlowContrastive, GeneralizedScoreMatching, KernelSteinDiscrepancy, LearnedStein, LsdOptions,
    MaximumLikelihood, MinimumProbabilityFlow, MinimumVelocity, ModelKind, ModelTarget,
    MultiScaleDsm, Nce, NoiseDistribution, NoiseSchedule, Objective, Projection,
    SlicedScoreMatching, SteinKernel, TrainStep,
};
use ebm_samplers::replay::{Init, ReplayBuffer};
use ebm_samplers::target::Target;
use ebm_samplers::ula::{Step, Ula};
use std::time::Instant;

pub const ENTROPY_8G: f64 = 2.831;
pub const ENTROPY_CHECKER: f64 = 3.466; // ln 32
/// Peak Adam learning rate (cosine-decayed over the run).
pub const LR: f64 = 3e-3;
/// Adam learning rate of an objective's own parameters: NCE's log Z and LSD's critic 1e-2;
/// FCE's flow (and log Z) 3e-3, the adversary kept slower than the energy (at 1e-2 the flow
/// chases the energy's errors and FCE's lead over NCE shrinks from 0.2 to 0.1 nats at 1000
/// steps).
pub fn objective_lr(name: &str) -> f64 {
    if name == names::FCE {
        3e-3
    } else {
        1e-2
    }
}
/// NCSN's smallest noise level, at which its noise-conditional energy is read as the density.
pub const SIGMA_MIN: f64 = 0.1;
/// Generalised SM trains on the toy data shifted by this into [0, ∞)² (the toy box is
/// [−4.5, 4.5]²); the density is read back shifted.
pub const GSM_SHIFT: f64 = 4.5;

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
pub enum Data {
    EightGaussians,
    Checkerboard,
}

impl Data {
    pub fn sample(self, n: usize, rng: &mut Rng) -> Tensor {
        match self {
            Data::EightGaussians => eight_gaussians(n, rng),
            Data::Checkerboard => checkerboard(n, rng),
        }
    }

    pub fn entropy(self) -> f64 {
        match self {
            Data::EightGaussians => ENTROPY_8G,
            Data::Checkerboard => ENTROPY_CHECKER,
        }
    }
}

/// The objective called `name` with its toy settings.
pub fn objective(name: &str, data: Data) -> Box<dyn Objective> {
    let x_fit = data.sample(10_000, &mut Rng::new(77));
    let langevin = || Ula::new(Step::Tied { eps: 0.3 }, 20);
    match name {
        names::DSM => Box::new(DenoisingScoreMatching::new(0.1)),
        names::DSM_CV => Box::new(DenoisingScoreMatching::with_control_variate(0.1)),
        names::ESM => Box::new(ExactScoreMatching),
        names::SSM => Box::new(SlicedScoreMatching::default()),
        names::SSM_VR => Box::new(SlicedScoreMatching {
            projection: Projection::Rademacher,
            n_projections: 1,
            variance_reduced: true,
        }),
        names::NCE => Box::new(Nce::new(
            NoiseDistribution::fitted(&x_fit, 1.2),
            1.0,
            0.0,
            DType::F32,
        )),
        names::PCD => Box::new(MaximumLikelihood::new(
            langevin(),
            ChainInit::Persistent(ReplayBuffer::new(
                10_000,
                &[2],
                Init::Uniform { lo: -4.0, hi: 4.0 },
                DType::F32,
                &mut Rng::new(5),
            )),
            0.1,
        )),
        names::CD => Box::new(MaximumLikelihood::new(langevin(), ChainInit::Data, 0.1)),
        names::NCSN => Box::new(MultiScaleDsm {
            schedule: NoiseSchedule::Geometric {
                sigma_max: 2.0,
                sigma_min: SIGMA_MIN,
                levels: 10,
            },
        }),
        names::CNCE => Box::new(ConditionalNce::default()),
        names::FCE => Box::new(
            FlowContrastive::new(2, &FceOptions::default(), &mut Rng::new(6), DType::F32)
                .standardized(&x_fit),
        ),
        names::MPF => Box::new(MinimumProbabilityFlow::default()),
        names::MVL => Box::new(MinimumVelocity::default()),
        // a local kernel: the heavy-tailed IMQ default couples every pair of the eight modes
        // and stalls at a 0.46-nat gap on 8-Gaussians (RBF h = 0.5: 0.15 at 1000 steps; the
        // median bandwidth, ≈ 4 here, does worse still)
        names::KSD => Box::new(KernelSteinDiscrepancy {
            kernel: SteinKernel::Rbf {
                bandwidth: Some(0.5),
            },
        }),
        names::LSD => Box::new(LearnedStein::new(
            2,
            LsdOptions::default(),
            &mut Rng::new(6),
            DType::F32,
        )),
        names::GSM => Box::new(GeneralizedScoreMatching::default()),
        names::ED => Box::new(EnergyDiscrepancy::default()),
        names::DRL => Box::new(DiffusionRecoveryLikelihood::default()),
        other => panic!("no toy settings for objective {other}"),
    }
}

/// Generalised SM's model read back on the toy box: at coordinates shifted by `by`, and
/// zero outside the domain [0, ∞)² where it is a density (energy +∞ there).
struct Shifted<T> {
    inner: T,
    by: f64,
}

impl<T: Target> Target for Shifted<T> {
    fn energy(&self, x: &Tensor) -> Tensor {
        let xs = x.add_scalar(self.by);
        let outside = xs
            .lt(&Tensor::zeros(&[1], x.dtype()))
            .sum_axes(&[1], false)
            .mul_scalar(1e30);
        self.inner.energy(&xs).add(&outside)
    }
    fn score(&self, x: &Tensor) -> Tensor {
        self.inner.score(&x.add_scalar(self.by))
    }
}

/// Test NLL by quadrature on the box the data live in (the grid doubles it if mass leaks):
/// (NLL, grid error).
pub fn test_nll(target: &impl Target, data: Data) -> (f64, f64) {
    let g = grid_log_z(target, &[(-4.5, 4.5), (-4.5, 4.5)], 200, 1e-4, DType::F32);
    let test = data.sample(20_000, &mut Rng::new(12_345));
    (nll(target, &test, g.log_z), g.grid_error)
}

/// One toy run's figures.
#[derive(Clone, Copy, Debug)]
pub struct ToyRun {
    pub nll: f64,
    pub grid_error: f64,
    pub seconds: f64,
}

/// Trains `name` on `data` through the one training step: the 2-128-128-1 MLP, or for NCSN the
/// noise-conditional energy of the same widths, read at σ_min.
pub fn train(name: &str, data: Data, steps: usize, batch: usize) -> ToyRun {
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
        step = step.with_objective_optimizer(Optimizer::adam(objective_lr(name), q));
    }
    let shift = if name == names::GSM { GSM_SHIFT } else { 0.0 };
    for k in 0..steps {
        let lr = LR * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / steps as f64).cos());
        step.optimizer.set_lr(lr.max(1e-5));
        let x = data.sample(batch, &mut rng).add_scalar(shift);
        train_step(obj.as_mut(), model.as_mut(), &mut step, &x, &mut rng);
    }
    let target = ModelTarget::new(model.as_ref()).at(SIGMA_MIN);
    let (nll, grid_error) = if shift != 0.0 {
        test_nll(
            &Shifted {
                inner: target,
                by: shift,
            },
            data,
        )
    } else {
        test_nll(&target, data)
    };
    ToyRun {
        nll,
        grid_error,
        seconds: t0.elapsed().as_secs_f64(),
    }
}
