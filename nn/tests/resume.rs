//! Save → load → continue gives bit-identical parameters, optimizer state, EMA, step and RNG
//! state to an uninterrupted run, for Adam, AdamW and SGD with Nesterov momentum.

use ebm_autodiff::{GradOpts, Tape};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{
    clip_grad_norm, param_grads, AdamConfig, Checkpoint, Ema, EmaConfig, EnergyModel, Mlp,
    MlpConfig, Module, Optimizer, OptimizerConfig, Schedule, SgdConfig,
};
use std::path::PathBuf;

const SIGMA: f64 = 0.2;
const TOTAL: u64 = 30;
const CUT: u64 = 12;

/// Everything a training run carries between steps.
struct Run {
    model: Mlp,
    opt: Optimizer,
    ema: Ema,
    rng: Rng,
    step: u64,
}

impl Run {
    fn new(seed: u64, opt: OptimizerConfig) -> Run {
        let mut rng = Rng::new(seed);
        let model = Mlp::new(MlpConfig::new(&[2, 16, 16, 1]), &mut rng);
        let ema = Ema::with_config(
            model.params(),
            EmaConfig {
                decay: 0.99,
                warmup: true,
            },
        );
        Run {
            opt: Optimizer::new(opt, model.params()),
            model,
            ema,
            rng,
            step: 0,
        }
    }

    /// `n` DSM steps on N((1, −1), I) data with clipping, a warmup+cosine schedule and EMA.
    fn train(&mut self, n: u64) {
        let shift = Tensor::from_vec(vec![1.0f32, -1.0], &[2]);
        let sched = Schedule::warmup_cosine(5, TOTAL, 0.1);
        let base = self.opt.config().lr();
        for _ in 0..n {
            let x = self.rng.normal(&[64, 2], DType::F32).add(&shift);
            let z = self.rng.normal(&[64, 2], DType::F32);
            let mut grads = {
                let tape = Tape::new();
                let p = self.model.params().bind(&tape);
                let xt = tape.var(x.add(&z.mul_scalar(SIGMA)));
                let s = self.model.score_var(&xt, &p, GradOpts::create_graph());
                let loss = s
                    .add_const(&z.mul_scalar(1.0 / SIGMA))
                    .sum_squares(&[1], false)
                    .mean_all();
                param_grads(&loss, &p)
            };
            clip_grad_norm(&mut grads, 5.0);
            self.opt.set_lr(sched.lr(base, self.step));
            self.opt.step(self.model.params_mut(), &grads);
            self.ema.update(self.model.params());
            self.step += 1;
        }
    }

    fn snapshot(&self) -> Checkpoint {
        Checkpoint::new(&self.model)
            .with_optimizer(&self.opt)
            .with_ema(&self.ema)
            .with_step(self.step)
            .with_rng(&self.rng)
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ebm-nn-resume");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn resume_is_exact(opt: OptimizerConfig, tag: &str) {
    let mut straight = Run::new(0, opt);
    straight.train(TOTAL);

    let mut first = Run::new(0, opt);
    first.train(CUT);
    let path = tmp(&format!("{tag}.safetensors"));
    first.snapshot().save(&path).unwrap();
    drop(first);

    // A run built from another seed: restore must overwrite every piece of state.
    let mut resumed = Run::new(99, opt);
    let ckpt = Checkpoint::load(&path).unwrap();
    ckpt.restore(
        &mut resumed.model,
        Some(&mut resumed.opt),
        Some(&mut resumed.ema),
    )
    .unwrap();
    resumed.rng = ckpt.rng().expect("rng saved");
    resumed.step = ckpt.step;
    assert_eq!(resumed.step, CUT);
    resumed.train(TOTAL - CUT);

    assert!(
        straight.snapshot().bit_eq(&resumed.snapshot()),
        "{tag}: resumed run differs from the uninterrupted one"
    );

    // The check has teeth: resuming the weights alone (fresh optimizer) does not match.
    let mut weights_only = Run::new(99, opt);
    ckpt.restore(&mut weights_only.model, None, None).unwrap();
    weights_only.rng = ckpt.rng().unwrap();
    weights_only.step = ckpt.step;
    weights_only.train(TOTAL - CUT);
    assert!(!straight.model.params().bit_eq(weights_only.model.params()));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn resume_adam_is_bit_identical() {
    resume_is_exact(OptimizerConfig::Adam(AdamConfig::new(3e-3)), "adam");
}

#[test]
fn resume_adamw_is_bit_identical() {
    let c = AdamConfig {
        weight_decay: 0.05,
        ..AdamConfig::new(3e-3)
    };
    resume_is_exact(OptimizerConfig::AdamW(c), "adamw");
}

#[test]
fn resume_sgd_nesterov_is_bit_identical() {
    let c = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
        ..SgdConfig::new(1e-2)
    };
    resume_is_exact(OptimizerConfig::Sgd(c), "sgd");
}
