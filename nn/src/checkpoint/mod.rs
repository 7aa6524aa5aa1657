//! Checkpoints as safetensors files: parameters under their own names (so PyTorch, NumPy
//! and JAX read them directly), optimizer state under `optim.<slot>.<param>`, EMA weights
//! under `ema.<param>`, the state of the objective being trained under `objective.…`, and
//! in the string metadata the model config (JSON), the parameter order, the step, the RNG
//! state, the optimizer and EMA settings, and a checksum of all of it. Writes are atomic;
//! reads never panic and never return a silently different model.
//!
//! | metadata key | value |
//! | --- | --- |
//! | `format` | `ebm-checkpoint/1` |
//! | `model` | the model's [`Module::config`] as JSON |
//! | `params` | JSON list of parameter names, in model order |
//! | `step` | decimal step count |
//! | `rng` | JSON `[seed, stream, counter]` of [`Rng::state`] (optional) |
//! | `optimizer` | JSON `{"config": {"kind": …}, "lr": …, "step": …}`, plus `"schedule"` when the optimizer owns one (optional) |
//! | `ema` | JSON `{"config": {"decay": …, "warmup": …}, "updates": …}` (optional) |
//! | `objective` | JSON `{"params": [names], "state": [names], "optimizer": {…}}` (optional) |
//! | `extra` | JSON object of user strings (optional) |
//! | `checksum` | 64-bit digest (hex) of every other key, every tensor name, dtype, shape and byte |
//!
//! | tensor | holds |
//! | --- | --- |
//! | `<param>` | a model parameter |
//! | `optim.<slot>.<param>` | the model optimizer's state (`exp_avg`, `exp_avg_sq`, `momentum_buffer`) |
//! | `ema.<param>` | an EMA weight |
//! | `objective.param.<name>` | a parameter of the objective (NCE's `log_z`) |
//! | `objective.optim.<slot>.<name>` | its optimizer's state |
//! | `objective.state.<name>` | a tensor the objective carries between steps (PCD's `replay_buffer`) |
//!
//! The modules: [`format`](self::format) (plain safetensors bytes), [`load`] (every check of a file and the
//! restores into models), [`digest`] (the checksum, and re-signing edited files for tests),
//! [`atomic`] (temp file + rename).

pub mod atomic;
pub mod digest;
pub mod error;
pub mod format;
pub mod load;

pub use atomic::write_atomic;
pub use digest::{edit_header, resign};
pub use error::CheckpointError;
pub use format::{read_tensors, read_tensors_from_bytes, tensors_to_bytes, write_tensors};
pub use load::{first_non_finite, load_weights, load_weights_from_bytes};

use crate::ema::Ema;
use crate::model::Module;
use crate::optim::Optimizer;
use crate::params::Params;
use ebm_core::{Rng, Tensor};
use format::Raw;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The value of the `format` metadata key.
pub const FORMAT: &str = "ebm-checkpoint/1";
/// Prefix of optimizer state tensors.
pub const OPTIM_PREFIX: &str = "optim.";
/// Prefix of EMA weight tensors.
pub const EMA_PREFIX: &str = "ema.";
/// Prefix of the objective's parameters.
pub const OBJECTIVE_PARAM_PREFIX: &str = "objective.param.";
/// Prefix of the state of the objective's optimizer.
pub const OBJECTIVE_OPTIM_PREFIX: &str = "objective.optim.";
/// Prefix of the objective's state tensors.
pub const OBJECTIVE_STATE_PREFIX: &str = "objective.state.";

/// Everything needed to resume a run exactly: parameters, optimizer, EMA, step, RNG, and
/// the objective's own parameters, optimizer and state.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The model's configuration (JSON with a `"kind"`).
    pub model: serde_json::Value,
    /// The parameters, in model order.
    pub params: Params,
    /// The model's optimizer.
    pub optimizer: Option<Optimizer>,
    /// An exponential moving average of the parameters.
    pub ema: Option<Ema>,
    /// Training steps taken.
    pub step: u64,
    /// [`Rng::state`] of the run's generator.
    pub rng: Option<[u64; 3]>,
    /// Parameters trained beside the model's that belong to the objective (NCE's log Z), in
    /// order (empty: none).
    pub objective_params: Params,
    /// The optimizer of [`Checkpoint::objective_params`].
    pub objective_optimizer: Option<Optimizer>,
    /// Tensors the objective carries from step to step (PCD's replay buffer), by name.
    pub objective_state: BTreeMap<String, Tensor>,
    /// Free-form strings (e.g. the training command line, the schedule as JSON).
    pub extra: BTreeMap<String, String>,
}

impl Checkpoint {
    /// A checkpoint of `model`'s parameters and config at step 0.
    pub fn new<M: Module + ?Sized>(model: &M) -> Checkpoint {
        Checkpoint {
            model: model.config(),
            params: model.params().clone(),
            optimizer: None,
            ema: None,
            step: 0,
            rng: None,
            objective_params: Params::new(),
            objective_optimizer: None,
            objective_state: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Adds the optimizer; panics unless it was built for these parameters.
    pub fn with_optimizer(mut self, optimizer: &Optimizer) -> Checkpoint {
        assert_eq!(
            optimizer.param_names(),
            self.params.names(),
            "Checkpoint::with_optimizer: the optimizer belongs to other parameters"
        );
        self.optimizer = Some(optimizer.clone());
        self
    }

    /// Adds the EMA weights; panics unless they shadow these parameters.
    pub fn with_ema(mut self, ema: &Ema) -> Checkpoint {
        assert_eq!(
            ema.params().names(),
            self.params.names(),
            "Checkpoint::with_ema: the EMA belongs to other parameters"
        );
        self.ema = Some(ema.clone());
        self
    }

    /// Sets the step count.
    pub fn with_step(mut self, step: u64) -> Checkpoint {
        self.step = step;
        self
    }

    /// Records the generator's state (it resumes with [`Checkpoint::rng`]).
    pub fn with_rng(mut self, rng: &Rng) -> Checkpoint {
        self.rng = Some(rng.state());
        self
    }

    /// Adds the objective's own parameters and, when given, their optimizer; panics unless
    /// the optimizer was built for them.
    pub fn with_objective_params(
        mut self,
        params: &Params,
        optimizer: Option<&Optimizer>,
    ) -> Checkpoint {
        if let Some(o) = optimizer {
            assert_eq!(
                o.param_names(),
                params.names(),
                "Checkpoint::with_objective_params: the optimizer belongs to other parameters"
            );
        }
        self.objective_params = params.clone();
        self.objective_optimizer = optimizer.cloned();
        self
    }

    /// Adds a tensor the objective carries from step to step.
    pub fn with_objective_state(mut self, name: impl Into<String>, value: Tensor) -> Checkpoint {
        self.objective_state.insert(name.into(), value);
        self
    }

    /// Adds a free-form string.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<String>) -> Checkpoint {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The saved generator, positioned where the run left it.
    pub fn rng(&self) -> Option<Rng> {
        self.rng.map(Rng::from_state)
    }

    /// Every tensor of the checkpoint under its name in the file.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .params
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        if let Some(o) = &self.optimizer {
            out.extend(
                o.state_tensors()
                    .into_iter()
                    .map(|(n, t)| (format!("{OPTIM_PREFIX}{n}"), t)),
            );
        }
        if let Some(e) = &self.ema {
            out.extend(
                e.params()
                    .iter()
                    .map(|(n, t)| (format!("{EMA_PREFIX}{n}"), t.clone())),
            );
        }
        out.extend(
            self.objective_params
                .iter()
                .map(|(n, t)| (format!("{OBJECTIVE_PARAM_PREFIX}{n}"), t.clone())),
        );
        if let Some(o) = &self.objective_optimizer {
            out.extend(
                o.state_tensors()
                    .into_iter()
                    .map(|(n, t)| (format!("{OBJECTIVE_OPTIM_PREFIX}{n}"), t)),
            );
        }
        out.extend(
            self.objective_state
                .iter()
                .map(|(n, t)| (format!("{OBJECTIVE_STATE_PREFIX}{n}"), t.clone())),
        );
        out
    }

    /// The safetensors bytes of this checkpoint; a non-finite value in any tensor is an error
    /// (the loader would refuse the file).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        if let Some(e) = first_non_finite(self) {
            return Err(e);
        }
        let tensors: Vec<(String, Raw)> = self
            .named_tensors()
            .into_iter()
            .map(|(n, t)| (n, Raw::of(&t)))
            .collect();
        let mut meta: HashMap<String, String> = HashMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("model".into(), self.model.to_string());
        meta.insert(
            "params".into(),
            serde_json::to_string(self.params.names()).expect("names serialise"),
        );
        meta.insert("step".into(), self.step.to_string());
        if let Some(r) = self.rng {
            meta.insert("rng".into(), serde_json::json!(r).to_string());
        }
        if let Some(o) = &self.optimizer {
            meta.insert("optimizer".into(), o.hyper_json().to_string());
        }
        if let Some(e) = &self.ema {
            let v = serde_json::json!({ "config": e.config(), "updates": e.updates() });
            meta.insert("ema".into(), v.to_string());
        }
        if !self.objective_params.is_empty() || !self.objective_state.is_empty() {
            let state: Vec<&String> = self.objective_state.keys().collect();
            let mut v =
                serde_json::json!({ "params": self.objective_params.names(), "state": state });
            if let Some(o) = &self.objective_optimizer {
                v["optimizer"] = o.hyper_json();
            }
            meta.insert("objective".into(), v.to_string());
        }
        if !self.extra.is_empty() {
            meta.insert(
                "extra".into(),
                serde_json::to_string(&self.extra).expect("strings serialise"),
            );
        }
        format::serialize_signed(tensors, meta)
    }

    /// Writes the checkpoint to `path` atomically (temp file in the same directory, fsync,
    /// rename, fsync of the directory): a crash leaves the old file or the new one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::from_bytes(&format::read_file(path.as_ref())?)
    }

    /// Whether two checkpoints hold the same bits everywhere (tests of exact resumption).
    pub fn bit_eq(&self, other: &Checkpoint) -> bool {
        let opt_eq = |a: &Option<Optimizer>, b: &Option<Optimizer>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.bit_eq(b),
            _ => false,
        };
        self.model == other.model
            && self.params.bit_eq(&other.params)
            && self.step == other.step
            && self.rng == other.rng
            && self.extra == other.extra
            && opt_eq(&self.optimizer, &other.optimizer)
            && match (&self.ema, &other.ema) {
                (None, None) => true,
                (Some(a), Some(b)) => a.bit_eq(b),
                _ => false,
            }
            && self.objective_params.bit_eq(&other.objective_params)
            && opt_eq(&self.objective_optimizer, &other.objective_optimizer)
            && self.objective_state.len() == other.objective_state.len()
            && self
                .objective_state
                .iter()
                .zip(&other.objective_state)
                .all(|((na, a), (nb, b))| na == nb && crate::params::tensor_bit_eq(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mlp, MlpConfig};
    use ebm_core::DType;

    /// An objective's parameters, their optimizer and its state survive the file bit for
    /// bit, and restore by name.
    #[test]
    fn objective_tensors_round_trip() {
        let mut rng = Rng::new(1);
        let model = Mlp::new(MlpConfig::new(&[2, 4, 1]), &mut rng);
        let mut q = Params::new();
        q.push("log_z", Tensor::scalar(0.25, DType::F32));
        let mut oq = Optimizer::adam(1e-2, &q);
        oq.step(&mut q, &[Tensor::scalar(0.5, DType::F32)]);
        let buffer = rng.normal(&[16, 2], DType::F32);
        let c = Checkpoint::new(&model)
            .with_objective_params(&q, Some(&oq))
            .with_objective_state("replay_buffer", buffer.clone());
        let bytes = c.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(&bytes).unwrap();
        assert!(back.bit_eq(&c));
        let names: Vec<String> = crate::read_tensors_from_bytes(&bytes)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("objective."))
            .collect();
        assert_eq!(
            names,
            [
                "objective.optim.exp_avg.log_z",
                "objective.optim.exp_avg_sq.log_z",
                "objective.param.log_z",
                "objective.state.replay_buffer"
            ]
        );
        let mut q2 = Params::new();
        q2.push("log_z", Tensor::scalar(0.0, DType::F32));
        let mut oq2 = Optimizer::adam(1e-2, &q2);
        back.restore_objective_params(&mut q2, Some(&mut oq2))
            .unwrap();
        assert!(q2.bit_eq(&q) && oq2.bit_eq(&oq));
        // another parameter name is refused before anything changes
        let mut q3 = Params::new();
        q3.push("log_c", Tensor::scalar(0.0, DType::F32));
        let e = back.restore_objective_params(&mut q3, None).unwrap_err();
        assert!(e.to_string().contains("`objective.param.log_c`"), "{e}");
        assert_eq!(q3.get(0).item(), 0.0);
    }

    #[test]
    fn a_model_parameter_cannot_take_an_objective_name() {
        let mut p = Params::new();
        let r = std::panic::catch_unwind(move || {
            p.push("objective.param.x", Tensor::scalar(0.0, DType::F32));
        });
        assert!(r.is_err());
    }
}
