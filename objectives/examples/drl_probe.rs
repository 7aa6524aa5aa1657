#[path = "../tests/common/mod.rs"]
mod common;
use common::{test_nll, Data, LR};
use ebm_core::Rng;
use ebm_nn::{Mlp, MlpConfig, Module, Optimizer};
use ebm_objectives::drl::DrlOptions;
use ebm_objectives::{train_step, DiffusionRecoveryLikelihood, ModelTarget, TrainStep};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = a[0].parse().unwrap();
    let sigma: f64 = a[1].parse().unwrap();
    let k: usize = a[2].parse().unwrap();
    let b: f64 = a[3].parse().unwrap();
    let width: usize = a[4].parse().unwrap();
    let data = if a.len() > 5 {
        Data::Checkerboard
    } else {
        Data::EightGaussians
    };
    let mut rng = Rng::new(0);
    let mut obj = DiffusionRecoveryLikelihood::new(DrlOptions {
        sigma,
        langevin_steps: k,
        step_factor: b,
    });
    let mut model = Mlp::new(MlpConfig::new(&[2, width, width, 1]), &mut rng);
    let mut step = TrainStep::new(Optimizer::adam(LR, model.params()));
    let t0 = std::time::Instant::now();
    for i in 0..steps {
        let lr = LR * 0.5 * (1.0 + (std::f64::consts::PI * i as f64 / steps as f64).cos());
        step.optimizer.set_lr(lr.max(1e-5));
        let x = data.sample(256, &mut rng);
        train_step(&mut obj, &mut model, &mut step, &x, &mut rng);
        if (i + 1) % (steps / 4) == 0 {
            let (enll, _) = test_nll(&ModelTarget::new(&model), data);
            println!(
                "σ={sigma} K={k} b={b} w={width} step {} NLL {enll:.3} gap {:.3} t {:.0}s",
                i + 1,
                enll - data.entropy(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
}
