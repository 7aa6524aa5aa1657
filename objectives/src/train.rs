//! The one training step every objective, model and caller shares (`ebm train`, the
//! benchmark, library loops), and the checkpoint of everything it updates.

use crate::blocks::{step_grads, StepGrads};
use crate::shard::{all_reduce_grads, shard_grads};
use crate::{ModelKind, Objective, StateError};
use ebm_comm::{CommError, Communicator};
use ebm_core::{Rng, Tensor};
use ebm_nn::checkpoint::OBJECTIVE_STATE_PREFIX;
use ebm_nn::{clip_grad_norm, Checkpoint, CheckpointError, Ema, Model, ModelRef, Optimizer};

/// Rows per block when [`train_step`] splits a batch ([`Objective::row_blocks_allowed`]): a
/// 256×128 f32 activation is 128 KiB, so an element-wise op's operands stay in a 512 KiB L2
/// (AMD EPYC, AVX2; 2026-11-30, 1 thread, steps/s against blocks of 512, 2 rounds: ESM M2
/// +6–9%, SSM M2 +2–15%, DSM M2 +1–3%, NCE M2 +0–4%, DSM and SSM at width 256 and batch 1024
/// +2–3%; at widths 512 and 1024, where a layer's weights no longer fit L2 either, −1 to −3%).
/// Blocks of 512 were chosen first on an AVX-512 machine with a larger L2, where they beat
/// 256 and ran ESM 1.15× faster than one block of 1024.
pub const TRAIN_BLOCK_ROWS: usize = 256;

/// What a training step updates besides the model and the objective, and how: the
/// optimizers, the EMA, gradient clipping and row blocking.
///
/// The learning-rate schedule is the optimizer's own ([`Optimizer::with_schedule`]); a caller
/// that keeps its own instead sets `optimizer`'s rate ([`Optimizer::set_lr`]) before each step.
#[derive(Clone, Debug)]
pub struct TrainStep {
    /// The model's optimizer.
    pub optimizer: Optimizer,
    /// The optimizer of the objective's own parameters (NCE's log Z). When the objective has
    /// parameters and this is `None`, the first step creates one with `optimizer`'s settings
    /// and schedule.
    pub objective_optimizer: Option<Optimizer>,
    /// An exponential moving average of the model's parameters, updated after each step.
    pub ema: Option<Ema>,
    /// Scale the model's gradient to at most this global L2 norm ([`clip_grad_norm`]).
    pub clip_grad_norm: Option<f64>,
    /// Rows per block when the objective allows row blocks ([`TRAIN_BLOCK_ROWS`]).
    pub block_rows: usize,
}

impl TrainStep {
    /// Steps with `optimizer`: no EMA, no clipping, blocks of [`TRAIN_BLOCK_ROWS`] rows.
    pub fn new(optimizer: Optimizer) -> TrainStep {
        TrainStep {
            optimizer,
            objective_optimizer: None,
            ema: None,
            clip_grad_norm: None,
            block_rows: TRAIN_BLOCK_ROWS,
        }
    }

    /// With `optimizer` for the objective's own parameters.
    pub fn with_objective_optimizer(mut self, optimizer: Optimizer) -> TrainStep {
        self.objective_optimizer = Some(optimizer);
        self
    }

    /// With an EMA of the model's parameters.
    pub fn with_ema(mut self, ema: Ema) -> TrainStep {
        self.ema = Some(ema);
        self
    }

    /// With the model's gradient clipped to global L2 norm `max_norm`.
    pub fn with_clip_grad_norm(mut self, max_norm: f64) -> TrainStep {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// A checkpoint of everything this step updates, as tensors: `model` with the optimizer
    /// and the EMA, and `objective`'s own parameters (with their optimizer) and state (PCD's
    /// replay buffer). Add the step count, the generator and any metadata of the caller's.
    pub fn checkpoint(&self, model: &dyn Model, objective: &dyn Objective) -> Checkpoint {
        let mut c = Checkpoint::new(model).with_optimizer(&self.optimizer);
        if let Some(e) = &self.ema {
            c = c.with_ema(e);
        }
        if let Some(q) = objective.params() {
            c = c.with_objective_params(q, self.objective_optimizer.as_ref());
        }
        for (name, t) in objective.state() {
            c = c.with_objective_state(name, t);
        }
        c
    }

    /// Puts `model`, the optimizers, the EMA and `objective` back into the state of `ckpt`
    /// (written by [`TrainStep::checkpoint`] for the same model and objective). Every tensor
    /// is checked against what it restores into; the objective's are checked before any of
    /// them is set. A checkpoint without the objective's optimizer leaves this step's.
    pub fn restore(
        &mut self,
        ckpt: &Checkpoint,
        model: &mut dyn Model,
        objective: &mut dyn Objective,
    ) -> Result<(), CheckpointError> {
        let state_name = |n: &str| format!("{OBJECTIVE_STATE_PREFIX}{n}");
        let current = objective.state();
        let wanted: Vec<&'static str> = current.iter().map(|(n, _)| *n).collect();
        for (n, now) in &current {
            let saved =
                ckpt.objective_state
                    .get(*n)
                    .ok_or_else(|| CheckpointError::MissingTensor {
                        name: state_name(n),
                    })?;
            if saved.dtype() != now.dtype() {
                return Err(CheckpointError::WrongDtype {
                    name: state_name(n),
                    expected: format!("{:?}", now.dtype()),
                    found: format!("{:?}", saved.dtype()),
                });
            }
            if saved.shape() != now.shape() {
                return Err(CheckpointError::WrongShape {
                    name: state_name(n),
                    expected: now.shape().to_vec(),
                    found: saved.shape().to_vec(),
                });
            }
        }
        drop(current);
        if let Some(n) = ckpt
            .objective_state
            .keys()
            .find(|n| !wanted.contains(&n.as_str()))
        {
            return Err(CheckpointError::UnexpectedTensor {
                name: state_name(n),
            });
        }
        if objective.params().is_none() && !ckpt.objective_params.is_empty() {
            return Err(CheckpointError::UnexpectedTensor {
                name: format!(
                    "{}{}",
                    ebm_nn::checkpoint::OBJECTIVE_PARAM_PREFIX,
                    ckpt.objective_params.name(0)
                ),
            });
        }
        ckpt.restore(model, Some(&mut self.optimizer), self.ema.as_mut())?;
        if let Some(q) = objective.params_mut() {
            match &ckpt.objective_optimizer {
                Some(saved) => {
                    let mut o = saved.clone();
                    ckpt.restore_objective_params(q, Some(&mut o))?;
                    self.objective_optimizer = Some(o);
                }
                None => ckpt.restore_objective_params(q, None)?,
            }
        }
        for name in wanted {
            let t = ckpt.objective_state[name].clone();
            objective.set_state(name, t).map_err(|e| match e {
                StateError::Shape {
                    name,
                    expected,
                    found,
                } => CheckpointError::WrongShape {
                    name: state_name(&name),
                    expected,
                    found,
                },
                StateError::Unknown { name, .. } => CheckpointError::UnexpectedTensor {
                    name: state_name(&name),
                },
            })?;
        }
        Ok(())
    }
}

/// One optimisation step of `objective` on the batch `x`: bind the parameters to a fresh tape,
/// build the loss, take parameter gradients, drop the tape, clip the model's gradient, update
/// the model and the objective's own parameters, update the EMA. Returns the loss.
///
/// A NaN or infinite loss leaves the model, the objective's parameters, the optimizers and the
/// EMA untouched (the randomness drawn and the objective's state, such as PCD's chains, have
/// moved on), so the caller can see it and decide.
///
/// When the objective allows row blocks ([`Objective::row_blocks_allowed`]) and the batch is
/// larger than `step.block_rows`, the loss and gradients are taken block by block (one tape
/// each) and combined with weights rows/B: the same step. An objective with block workers
/// ([`Objective::block_worker`]) has its blocks (also the two halves of a batch of 256 to
/// `block_rows` rows) drawn from their own streams and computed in parallel on the rayon
/// pool: the same step on any number of threads.
///
/// Panics when `model` is not of the kind the objective trains ([`Objective::model_kind`]).
pub fn train_step(
    objective: &mut dyn Objective,
    model: &mut dyn Model,
    step: &mut TrainStep,
    x: &Tensor,
    rng: &mut Rng,
) -> f64 {
    check_kind(objective, model.view());
    let grads = step_grads(objective, &*model, x, step.block_rows, rng);
    apply(objective, model, step, grads)
}

/// One data-parallel step on rank `comm.rank()` of `comm.size()`: this rank's loss and
/// gradients on its rows `x` (rows [`crate::shard_rows`] of a global batch of `global_rows`,
/// drawn on streams keyed so that N ranks make the same draws as one process: see
/// [`crate::shard`]), one all-reduce that adds every rank's (the model's gradients, the
/// objective's own such as NCE's log Z, and the loss), then [`train_step`]'s update, the
/// same on every rank. Returns the global batch's loss. On one rank it is [`train_step`].
///
/// Every rank must start from the same model, optimizers and generator (broadcast them at
/// start and resume); objective state such as PCD's replay buffer is each rank's own. An
/// error when the all-reduce fails ([`CommError`]): the state is then untouched.
pub fn train_step_shard(
    objective: &mut dyn Objective,
    model: &mut dyn Model,
    step: &mut TrainStep,
    x: &Tensor,
    global_rows: usize,
    rng: &mut Rng,
    comm: &dyn Communicator,
) -> Result<f64, CommError> {
    check_kind(objective, model.view());
    let shard = (comm.rank(), comm.size());
    let mut grads = shard_grads(
        objective,
        &*model,
        x,
        global_rows,
        step.block_rows,
        rng,
        shard,
    );
    all_reduce_grads(&mut grads, comm)?;
    Ok(apply(objective, model, step, grads))
}

/// The update of [`train_step`] from the step's loss and gradients.
fn apply(
    objective: &mut dyn Objective,
    model: &mut dyn Model,
    step: &mut TrainStep,
    grads: StepGrads,
) -> f64 {
    let StepGrads {
        loss,
        model: mut g,
        objective: gq,
    } = grads;
    if !loss.is_finite() {
        return loss;
    }
    if let Some(max_norm) = step.clip_grad_norm {
        clip_grad_norm(&mut g, max_norm);
    }
    step.optimizer.step(model.params_mut(), &g);
    if let Some(params) = objective.params_mut() {
        let (settings, schedule) = (*step.optimizer.config(), step.optimizer.schedule());
        step.objective_optimizer
            .get_or_insert_with(|| {
                let opt = Optimizer::new(settings, params);
                match schedule {
                    Some(s) => opt.with_schedule(s.clone()),
                    None => opt,
                }
            })
            .step(params, &gq);
    }
    if let Some(ema) = &mut step.ema {
        ema.update(model.params());
    }
    loss
}

/// Panics, naming both, when `model` is not of the kind `objective` trains.
fn check_kind(objective: &dyn Objective, model: ModelRef<'_>) {
    let fits = matches!(
        (objective.model_kind(), model),
        (ModelKind::Energy, ModelRef::Energy(_))
            | (
                ModelKind::NoiseConditional(_),
                ModelRef::NoiseConditional(_)
            )
    );
    assert!(
        fits,
        "train_step: objective `{}` trains {:?} models, got {}",
        objective.name(),
        objective.model_kind(),
        model.describe()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DenoisingScoreMatching, ExactScoreMatching};
    use ebm_autodiff::Tape;
    use ebm_core::DType;
    use ebm_nn::param_grads;
    use ebm_nn::{Mlp, MlpConfig, Module};

    /// ESM draws nothing: its blocked step (two full blocks and one of 37, on their own
    /// streams) equals one tape over the whole batch: same loss, same update.
    #[test]
    fn blocked_step_is_the_whole_batch_step() {
        let mut init = Rng::new(3);
        let model = Mlp::with_dtype(MlpConfig::new(&[2, 16, 16, 1]), &mut init, DType::F64);
        let x = init.normal(&[2 * TRAIN_BLOCK_ROWS + 37, 2], DType::F64);
        let mut m1 = model.clone();
        let mut s1 = TrainStep::new(Optimizer::sgd(0.1, 0.0, model.params()));
        let l1 = train_step(
            &mut ExactScoreMatching,
            &mut m1,
            &mut s1,
            &x,
            &mut Rng::new(9),
        );
        let (mut m2, mut o2) = (model.clone(), Optimizer::sgd(0.1, 0.0, model.params()));
        let (l2, g) = {
            let tape = Tape::new();
            let p = m2.params().bind(&tape);
            let l = ExactScoreMatching.loss(&tape, &m2, &p, &[], &x, &mut Rng::new(9));
            (l.item(), param_grads(&l, &p))
        };
        o2.step(m2.params_mut(), &g);
        assert!(
            (l1 - l2).abs() <= 1e-12 * (1.0 + l2.abs()),
            "loss {l1} vs {l2}"
        );
        for ((n, a), (_, c)) in m1.params().iter().zip(m2.params().iter()) {
            let d = a.max_abs_diff(c);
            assert!(d <= 1e-12 * (1.0 + c.max_abs()), "{n} differs by {d}");
        }
    }

    /// Clipping, the EMA and a non-finite loss, each against the same step written by hand.
    #[test]
    fn clipping_ema_and_a_non_finite_loss() {
        let mut init = Rng::new(4);
        let model = Mlp::with_dtype(MlpConfig::new(&[2, 8, 1]), &mut init, DType::F64);
        let x = init.normal(&[64, 2], DType::F64);
        let mut m1 = model.clone();
        let mut s1 = TrainStep::new(Optimizer::sgd(0.1, 0.0, model.params()))
            .with_clip_grad_norm(1e-3)
            .with_ema(Ema::new(model.params(), 0.5));
        let mut dsm = DenoisingScoreMatching::new(0.1);
        let l1 = train_step(&mut dsm, &mut m1, &mut s1, &x, &mut Rng::new(5));
        let (mut m2, mut o2) = (model.clone(), Optimizer::sgd(0.1, 0.0, model.params()));
        let mut g = {
            let tape = Tape::new();
            let p = m2.params().bind(&tape);
            let l = dsm.loss(&tape, &m2, &p, &[], &x, &mut Rng::new(5));
            assert_eq!(l.item(), l1);
            param_grads(&l, &p)
        };
        assert!(clip_grad_norm(&mut g, 1e-3) > 1e-3, "the clip is active");
        o2.step(m2.params_mut(), &g);
        let mut ema = Ema::new(model.params(), 0.5);
        ema.update(m2.params());
        for ((_, a), (_, c)) in m1.params().iter().zip(m2.params().iter()) {
            assert_eq!(a.max_abs_diff(c), 0.0, "clipped update");
        }
        assert!(s1.ema.as_ref().unwrap().bit_eq(&ema), "EMA update");
        // a NaN in the batch gives a NaN loss and no update at all
        let before = (m1.clone(), s1.clone());
        let nan = x.mul_scalar(f64::NAN);
        let l = train_step(&mut dsm, &mut m1, &mut s1, &nan, &mut Rng::new(6));
        assert!(l.is_nan());
        for ((_, a), (_, c)) in m1.params().iter().zip(before.0.params().iter()) {
            assert!(ebm_nn::tensor_bit_eq(a, c), "parameters untouched");
        }
        assert!(s1.optimizer.bit_eq(&before.1.optimizer));
        assert!(s1.ema.unwrap().bit_eq(&before.1.ema.unwrap()));
    }

    /// A run checkpointed after three steps and restored into freshly built objects takes
    /// the same fourth step, bit for bit: the objective's parameters, their optimizer and
    /// its state (NCE's log Z, PCD's replay buffer) travel as tensors.
    #[test]
    fn checkpoint_and_restore_continue_bit_for_bit() {
        use crate::factory::{build, DataFacts, ObjectiveOptions};
        let x = Rng::new(2).normal(&[32, 2], DType::F32);
        let options = ObjectiveOptions {
            buffer_size: 64,
            langevin_steps: 2,
            ..ObjectiveOptions::default()
        };
        for name in ["nce", "pcd", "dsm"] {
            let fresh = |seed: u64| {
                let mut init = Rng::new(seed);
                let model = Mlp::new(MlpConfig::new(&[2, 8, 1]), &mut init);
                let obj = build(name, &options, &DataFacts::of(&x), &mut init).unwrap();
                let mut step = TrainStep::new(Optimizer::adam(1e-2, model.params()))
                    .with_ema(Ema::new(model.params(), 0.9));
                if let Some(q) = obj.params() {
                    step = step.with_objective_optimizer(Optimizer::adam(1e-2, q));
                }
                (model, obj, step)
            };
            let (mut m1, mut o1, mut s1) = fresh(0);
            let mut rng = Rng::new(7);
            for _ in 0..3 {
                train_step(o1.as_mut(), &mut m1, &mut s1, &x, &mut rng);
            }
            let bytes = s1.checkpoint(&m1, o1.as_ref()).to_bytes().unwrap();
            let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
            let (mut m2, mut o2, mut s2) = fresh(1);
            s2.restore(&ckpt, &mut m2, o2.as_mut()).unwrap();
            let mut rng2 = rng.clone();
            let l1 = train_step(o1.as_mut(), &mut m1, &mut s1, &x, &mut rng);
            let l2 = train_step(o2.as_mut(), &mut m2, &mut s2, &x, &mut rng2);
            assert_eq!(l1.to_bits(), l2.to_bits(), "{name}: loss");
            let (c1, c2) = (
                s1.checkpoint(&m1, o1.as_ref()),
                s2.checkpoint(&m2, o2.as_ref()),
            );
            assert!(c1.bit_eq(&c2), "{name}: state after the step");
        }
        // a replay buffer of another shape is refused, naming it, before anything changes
        let mut bad = {
            let mut init = Rng::new(0);
            let model = Mlp::new(MlpConfig::new(&[2, 8, 1]), &mut init);
            let obj = build("pcd", &options, &DataFacts::of(&x), &mut init).unwrap();
            TrainStep::new(Optimizer::adam(1e-2, model.params())).checkpoint(&model, obj.as_ref())
        };
        bad.objective_state
            .insert("replay_buffer".into(), Tensor::zeros(&[3, 3], DType::F32));
        let mut init = Rng::new(0);
        let mut model = Mlp::new(MlpConfig::new(&[2, 8, 1]), &mut init);
        let before = model.clone();
        let mut obj = build("pcd", &options, &DataFacts::of(&x), &mut init).unwrap();
        let mut step = TrainStep::new(Optimizer::adam(1e-2, model.params()));
        let e = step.restore(&bad, &mut model, obj.as_mut()).unwrap_err();
        assert!(
            e.to_string().contains("objective.state.replay_buffer"),
            "{e}"
        );
        assert!(model.params().bit_eq(before.params()));
    }

    #[test]
    #[should_panic(expected = "trains NoiseConditional(LogSigma) models, got an energy model")]
    fn a_model_of_the_wrong_kind_is_refused() {
        let mut rng = Rng::new(0);
        let mut model = Mlp::new(MlpConfig::new(&[2, 4, 1]), &mut rng);
        let mut step = TrainStep::new(Optimizer::adam(1e-3, model.params()));
        let mut ncsn = crate::MultiScaleDsm {
            schedule: crate::NoiseSchedule::Geometric {
                sigma_max: 1.0,
                sigma_min: 0.1,
                levels: 3,
            },
        };
        let x = rng.normal(&[8, 2], DType::F32);
        train_step(&mut ncsn, &mut model, &mut step, &x, &mut rng);
    }

    /// An objective optimizer made by the step follows the model optimizer's schedule.
    #[test]
    fn the_objective_optimizer_shares_the_schedule() {
        let mut rng = Rng::new(1);
        let mut model = Mlp::new(MlpConfig::new(&[2, 4, 1]), &mut rng);
        let schedule = ebm_nn::Schedule::cosine(10, 0.1);
        let opt = Optimizer::adam(1e-2, model.params()).with_schedule(schedule);
        let mut step = TrainStep::new(opt);
        let noise = crate::NoiseDistribution::isotropic(2, 1.5);
        let mut nce = crate::Nce::new(noise, 1.0, 0.0, DType::F32);
        for _ in 0..4 {
            let x = rng.normal(&[16, 2], DType::F32);
            train_step(&mut nce, &mut model, &mut step, &x, &mut rng);
        }
        let q = step.objective_optimizer.as_ref().expect("made by the step");
        assert!(q.schedule().is_some());
        assert_eq!(
            q.lr(),
            step.optimizer.lr(),
            "both at the same point of the schedule"
        );
    }
}
