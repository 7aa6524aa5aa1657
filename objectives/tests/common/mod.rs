//! The toy-density harness shared by the toy tests and `examples/toy_table.rs`: FFJORD's
//! 8-Gaussians and checkerboard (from `ebm-data`), every objective as the table of objectives
//! builds it for the `ebm` command, training through the one training step, and test NLL by
//! grid quadrature.
#![allow(dead_code)]

use ebm_core::{DType, Rng, Tensor};
use ebm_data::{Toy, TOY_TEST_ROWS, TOY_TEST_SEED};
use ebm_nn::{Mlp, MlpConfig, Model, NoiseConditionalConfig, NoiseConditionalNet, Optimizer};
use ebm_objectives::eval::{grid_log_z, nll};
use ebm_objectives::factory::{self, DataFacts, ObjectiveOptions};
use ebm_objectives::{names, train_step, ModelKind, ModelTarget, Objective, TrainStep};
use ebm_samplers::replay::Init;
use ebm_samplers::target::Target;
use std::time::Instant;

/// Peak Adam learning rate (cosine-decayed over the run).
pub const LR: f64 = 3e-3;
/// NCSN's smallest noise level, at which its noise-conditional energy is read as the density.
pub const SIGMA_MIN: f64 = 0.1;
/// Generalised SM trains on the toy data shifted by this into [0, ∞)² (the toy box is
/// [−4.5, 4.5]²); the density is read back shifted.
pub const GSM_SHIFT: f64 = 4.5;

/// The objective called `name` with the `ebm` command's options (built by the table of
/// objectives), NCE's and FCE's noise fitted to 10,000 draws of `data` shifted by `shift`, PCD's
/// chains started uniformly on [−4, 4]².
pub fn objective(name: &str, data: Toy, shift: f64) -> Box<dyn Objective> {
    let x_fit = data.sample(10_000, &mut Rng::new(77)).add_scalar(shift);
    let facts = DataFacts {
        dim: 2,
        fit_rows: &x_fit,
        chain_init: Init::Uniform { lo: -4.0, hi: 4.0 },
        dtype: DType::F32,
    };
    let options = ObjectiveOptions {
        sigma_min: SIGMA_MIN,
        ..ObjectiveOptions::default()
    };
    factory::build(name, &options, &facts, &mut Rng::new(6)).expect("a known objective")
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
pub fn test_nll(target: &impl Target, data: Toy) -> (f64, f64) {
    let g = grid_log_z(target, &[(-4.5, 4.5), (-4.5, 4.5)], 200, 1e-4, DType::F32);
    let test = data.sample(TOY_TEST_ROWS, &mut Rng::new(TOY_TEST_SEED));
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
pub fn train(name: &str, data: Toy, steps: usize, batch: usize) -> ToyRun {
    let t0 = Instant::now();
    let mut rng = Rng::new(0);
    let shift = if name == names::GSM { GSM_SHIFT } else { 0.0 };
    let mut obj = objective(name, data, shift);
    let mut model: Box<dyn Model> = match obj.model_kind() {
        ModelKind::Energy => Box::new(Mlp::new(MlpConfig::new(&[2, 128, 128, 1]), &mut rng)),
        ModelKind::NoiseConditional(c) => Box::new(NoiseConditionalNet::new(
            NoiseConditionalConfig::new(2, &[128, 128]).conditioning(c),
            &mut rng,
        )),
    };
    let mut step = TrainStep::new(Optimizer::adam(LR, model.params()));
    if let Some(q) = obj.params() {
        let lr = factory::find(name).expect("a known objective").params_lr;
        step = step.with_objective_optimizer(Optimizer::adam(lr, q));
    }
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
