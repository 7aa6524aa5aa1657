//! Reading a checkpoint back: every check of a file before anything is built from it, and
//! the restores into a model, its optimizer and EMA, and the objective's own parameters.

use super::error::bad;
use super::format::{read_file, RawFile};
use super::{
    Checkpoint, CheckpointError, EMA_PREFIX, FORMAT, OBJECTIVE_OPTIM_PREFIX,
    OBJECTIVE_PARAM_PREFIX, OBJECTIVE_STATE_PREFIX, OPTIM_PREFIX,
};
use crate::ema::{Ema, EmaConfig};
use crate::model::Module;
use crate::optim::Optimizer;
use crate::params::Params;
use ebm_core::{DType, Tensor};
use safetensors::tensor::TensorInfo;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Every metadata key a checkpoint may hold.
const KEYS: [&str; 10] = [
    "format",
    "model",
    "params",
    "step",
    "rng",
    "optimizer",
    "ema",
    "objective",
    "extra",
    "checksum",
];

/// The `objective` metadata: names of the objective's parameters and state tensors, and
/// its optimizer's settings.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectiveMeta {
    params: Vec<String>,
    state: Vec<String>,
    #[serde(default)]
    optimizer: Option<serde_json::Value>,
}

impl Checkpoint {
    /// Parses and fully validates checkpoint bytes: structure, checksum, every tensor's
    /// presence, dtype and shape, every metadata value.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let file = RawFile::parse(bytes)?;
        let meta = file.metadata.metadata().clone().ok_or_else(|| {
            bad(
                "__metadata__",
                "missing: not an ebm checkpoint (plain safetensors files load with read_tensors or load_weights)",
            )
        })?;
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => return Err(bad("format", format!("`{f}` is not `{FORMAT}`"))),
            None => return Err(bad("format", "missing: not an ebm checkpoint")),
        }
        let stored = meta
            .get("checksum")
            .ok_or_else(|| bad("checksum", "missing"))?
            .clone();
        let mut rest = meta.clone();
        rest.remove("checksum");
        let infos = file.infos();
        let computed = file.digest(&rest);
        if stored != computed {
            return Err(CheckpointError::ChecksumMismatch { stored, computed });
        }
        let mut keys: Vec<&String> = meta.keys().collect();
        keys.sort();
        if let Some(k) = keys.into_iter().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(k, "unknown key"));
        }

        let by_name: HashMap<&str, &TensorInfo> =
            infos.iter().map(|(n, i)| (n.as_str(), *i)).collect();
        let mut used: HashSet<String> = HashSet::new();
        let mut take = |name: &str| -> Result<Tensor, CheckpointError> {
            let info = by_name
                .get(name)
                .ok_or_else(|| CheckpointError::MissingTensor { name: name.into() })?;
            used.insert(name.to_string());
            let t = file.tensor(name, info)?;
            check_finite(name, &t)?;
            Ok(t)
        };

        let get = |k: &str| meta.get(k).ok_or_else(|| bad(k, "missing"));
        let model: serde_json::Value =
            serde_json::from_str(get("model")?).map_err(|e| bad("model", e.to_string()))?;
        if !model.is_object() {
            return Err(bad("model", "not a JSON object"));
        }
        let names: Vec<String> =
            serde_json::from_str(get("params")?).map_err(|e| bad("params", e.to_string()))?;
        let mut params = Params::new();
        for n in &names {
            params.check_name(n).map_err(|e| bad("params", e))?;
            let t = take(n)?;
            params.push(n.clone(), t);
        }
        let step: u64 = get("step")?
            .parse()
            .map_err(|e: std::num::ParseIntError| bad("step", e.to_string()))?;
        let rng = match meta.get("rng") {
            None => None,
            Some(s) => {
                Some(serde_json::from_str::<[u64; 3]>(s).map_err(|e| bad("rng", e.to_string()))?)
            }
        };
        let extra = match meta.get("extra") {
            None => BTreeMap::new(),
            Some(s) => serde_json::from_str::<BTreeMap<String, String>>(s)
                .map_err(|e| bad("extra", e.to_string()))?,
        };

        // The state tensors of a parameter must match it exactly.
        let like = |name: &str, t: Tensor, p: &Tensor| -> Result<Tensor, CheckpointError> {
            check_like(name, &t, p)?;
            Ok(t)
        };
        let optimizer = match meta.get("optimizer") {
            None => None,
            Some(s) => {
                let hyper: serde_json::Value =
                    serde_json::from_str(s).map_err(|e| bad("optimizer", e.to_string()))?;
                let opt = Optimizer::from_parts(&hyper, &names, |slot, i| {
                    let key = format!("{OPTIM_PREFIX}{slot}.{}", names[i]);
                    like(&key, take(&key)?, params.get(i))
                })?;
                Some(opt)
            }
        };
        let ema = match meta.get("ema") {
            None => None,
            Some(s) => {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct EmaMeta {
                    config: EmaConfig,
                    updates: u64,
                }
                let m: EmaMeta = serde_json::from_str(s).map_err(|e| bad("ema", e.to_string()))?;
                if !(0.0..=1.0).contains(&m.config.decay) {
                    return Err(bad(
                        "ema",
                        format!("decay {} is not in [0, 1]", m.config.decay),
                    ));
                }
                let mut shadow = Params::new();
                for (i, n) in names.iter().enumerate() {
                    let key = format!("{EMA_PREFIX}{n}");
                    let t = like(&key, take(&key)?, params.get(i))?;
                    shadow.push(n.clone(), t);
                }
                Some(Ema::from_parts(m.config, shadow, m.updates))
            }
        };
        let mut objective_params = Params::new();
        let mut objective_optimizer = None;
        let mut objective_state = BTreeMap::new();
        if let Some(s) = meta.get("objective") {
            let m: ObjectiveMeta =
                serde_json::from_str(s).map_err(|e| bad("objective", e.to_string()))?;
            for n in &m.params {
                objective_params
                    .check_name(n)
                    .map_err(|e| bad("objective", e))?;
                let t = take(&format!("{OBJECTIVE_PARAM_PREFIX}{n}"))?;
                objective_params.push(n.clone(), t);
            }
            if let Some(hyper) = &m.optimizer {
                let q = &objective_params;
                objective_optimizer = Some(Optimizer::from_parts(hyper, &m.params, |slot, i| {
                    let key = format!("{OBJECTIVE_OPTIM_PREFIX}{slot}.{}", m.params[i]);
                    like(&key, take(&key)?, q.get(i))
                })?);
            }
            for n in &m.state {
                if n.is_empty() || objective_state.contains_key(n) {
                    return Err(bad(
                        "objective",
                        format!("state name `{n}` is empty or appears twice"),
                    ));
                }
                let t = take(&format!("{OBJECTIVE_STATE_PREFIX}{n}"))?;
                objective_state.insert(n.clone(), t);
            }
        }
        if let Some((n, _)) = infos.iter().find(|(n, _)| !used.contains(n)) {
            return Err(CheckpointError::UnexpectedTensor { name: n.clone() });
        }
        Ok(Checkpoint {
            model,
            params,
            optimizer,
            ema,
            step,
            rng,
            objective_params,
            objective_optimizer,
            objective_state,
            extra,
        })
    }

    /// Loads the parameters into `model`, and the optimizer and EMA state into those given.
    ///
    /// Checks, before changing anything: every model parameter is present with its dtype and
    /// shape, no other parameter is present, the model config equals the saved one, and the
    /// requested sections exist. Parameters are matched by name, so a model that lists them
    /// in another order still restores (optimizer and EMA state follow).
    pub fn restore<M: Module + ?Sized>(
        &self,
        model: &mut M,
        optimizer: Option<&mut Optimizer>,
        ema: Option<&mut Ema>,
    ) -> Result<(), CheckpointError> {
        let config = model.config();
        let saved = Group {
            params: &self.params,
            optimizer: self.optimizer.as_ref(),
            ema: self.ema.as_ref(),
            prefix: "",
        };
        saved.restore_into(model.params_mut(), optimizer, ema, || {
            if config != self.model {
                return Err(CheckpointError::ConfigMismatch {
                    expected: config.to_string(),
                    found: self.model.to_string(),
                });
            }
            Ok(())
        })
    }

    /// Loads the objective's own parameters ([`Checkpoint::objective_params`]) into `params`
    /// and their optimizer's state into `optimizer`, with the checks of
    /// [`Checkpoint::restore`] (matched by name; nothing changes unless all fit).
    pub fn restore_objective_params(
        &self,
        params: &mut Params,
        optimizer: Option<&mut Optimizer>,
    ) -> Result<(), CheckpointError> {
        let saved = Group {
            params: &self.objective_params,
            optimizer: self.objective_optimizer.as_ref(),
            ema: None,
            prefix: OBJECTIVE_PARAM_PREFIX,
        };
        saved.restore_into(params, optimizer, None, || Ok(()))
    }
}

/// Saved parameters with their optimizer and EMA, as one unit to restore.
struct Group<'a> {
    params: &'a Params,
    optimizer: Option<&'a Optimizer>,
    ema: Option<&'a Ema>,
    /// How the parameters are named in the file (for errors).
    prefix: &'static str,
}

impl Group<'_> {
    /// Checks that the saved parameters are `target`'s by name, dtype and shape, then `check`,
    /// then that the requested sections exist; only then overwrites the target, `optimizer`
    /// and `ema`.
    fn restore_into(
        &self,
        target: &mut Params,
        optimizer: Option<&mut Optimizer>,
        ema: Option<&mut Ema>,
        check: impl FnOnce() -> Result<(), CheckpointError>,
    ) -> Result<(), CheckpointError> {
        let order: Vec<usize> = match_params(target, self.prefix, |n| {
            self.params.index_of(n).map(|i| self.params.get(i))
        })?
        .iter()
        .map(|n| self.params.index_of(n).expect("matched"))
        .collect();
        if let Some(extra) = self
            .params
            .names()
            .iter()
            .find(|n| target.index_of(n).is_none())
        {
            return Err(CheckpointError::UnexpectedTensor {
                name: format!("{}{extra}", self.prefix),
            });
        }
        check()?;
        let new_opt = match optimizer {
            None => None,
            Some(o) => {
                let saved = self.optimizer.ok_or(CheckpointError::MissingSection {
                    section: "optimizer",
                })?;
                Some((o, saved.permuted(&order)))
            }
        };
        let new_ema = match ema {
            None => None,
            Some(e) => {
                let saved = self
                    .ema
                    .ok_or(CheckpointError::MissingSection { section: "EMA" })?;
                let mut shadow = Params::new();
                for &i in &order {
                    shadow.push(self.params.name(i), saved.params().get(i).clone());
                }
                Some((e, Ema::from_parts(saved.config(), shadow, saved.updates())))
            }
        };
        for (dst, &src) in order.iter().enumerate() {
            target.set(dst, self.params.get(src).clone());
        }
        if let Some((o, v)) = new_opt {
            *o = v;
        }
        if let Some((e, v)) = new_ema {
            *e = v;
        }
        Ok(())
    }
}

/// For each parameter of `target` in order: the saved tensor of that name must exist with
/// the same dtype and shape (`prefix` is how the file names it, for errors). Returns the
/// names in `target` order.
fn match_params<'a>(
    target: &Params,
    prefix: &str,
    saved: impl Fn(&str) -> Option<&'a Tensor>,
) -> Result<Vec<String>, CheckpointError> {
    let mut out = Vec::with_capacity(target.len());
    for (name, want) in target.iter() {
        let got = saved(name).ok_or_else(|| CheckpointError::MissingTensor {
            name: format!("{prefix}{name}"),
        })?;
        check_like(&format!("{prefix}{name}"), got, want)?;
        out.push(name.to_string());
    }
    Ok(out)
}

/// Every value of `t` must be finite (a checkpoint never holds NaN or ∞: the writer refuses
/// them, so one in a file is a diverged or hand-made state).
fn check_finite(name: &str, t: &Tensor) -> Result<(), CheckpointError> {
    let bad = match t.dtype() {
        DType::F32 => t
            .as_slice::<f32>()
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| (i, f64::from(t.as_slice::<f32>()[i]))),
        DType::F64 => t
            .as_slice::<f64>()
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| (i, t.as_slice::<f64>()[i])),
    };
    match bad {
        None => Ok(()),
        Some((index, value)) => Err(CheckpointError::NonFinite {
            name: name.into(),
            index,
            value,
        }),
    }
}

/// The first tensor of a checkpoint (parameters, optimizer state, EMA, the objective's
/// parameters, optimizer and state) holding a non-finite value, as the error
/// [`Checkpoint::from_bytes`] would give for it.
pub fn first_non_finite(c: &Checkpoint) -> Option<CheckpointError> {
    c.named_tensors()
        .into_iter()
        .find_map(|(n, t)| check_finite(&n, &t).err())
}

/// `got` must have `want`'s dtype and shape.
fn check_like(name: &str, got: &Tensor, want: &Tensor) -> Result<(), CheckpointError> {
    if got.dtype() != want.dtype() {
        return Err(CheckpointError::WrongDtype {
            name: name.into(),
            expected: super::format::st_dtype(want.dtype()).to_string(),
            found: super::format::st_dtype(got.dtype()).to_string(),
        });
    }
    if got.shape() != want.shape() {
        return Err(CheckpointError::WrongShape {
            name: name.into(),
            expected: want.shape().to_vec(),
            found: got.shape().to_vec(),
        });
    }
    Ok(())
}

/// Loads `model`'s parameters from a safetensors file holding them under their names: an
/// ebm checkpoint (fully validated, config included; optimizer, EMA and objective ignored)
/// or a plain file written by PyTorch, NumPy or JAX (names, dtypes and shapes checked;
/// tensors named `optim.*`, `ema.*` or `objective.*` ignored, any other extra tensor is an
/// error).
pub fn load_weights<M: Module + ?Sized>(
    path: impl AsRef<Path>,
    model: &mut M,
) -> Result<(), CheckpointError> {
    load_weights_from_bytes(&read_file(path.as_ref())?, model)
}

/// [`load_weights`] from bytes.
pub fn load_weights_from_bytes<M: Module + ?Sized>(
    bytes: &[u8],
    model: &mut M,
) -> Result<(), CheckpointError> {
    let file = RawFile::parse(bytes)?;
    let is_ebm = file
        .metadata
        .metadata()
        .as_ref()
        .is_some_and(|m| m.contains_key("format"));
    if is_ebm {
        return Checkpoint::from_bytes(bytes)?.restore(model, None, None);
    }
    let mut saved: HashMap<String, Tensor> = HashMap::new();
    for (n, info) in file.infos() {
        if [OPTIM_PREFIX, EMA_PREFIX, "objective."]
            .iter()
            .any(|p| n.starts_with(p))
        {
            continue;
        }
        saved.insert(n.clone(), file.tensor(&n, info)?);
    }
    let names = match_params(model.params(), "", |n| saved.get(n))?;
    for n in &names {
        check_finite(n, &saved[n])?;
    }
    let mut extras: Vec<&String> = saved.keys().filter(|n| !names.contains(n)).collect();
    extras.sort();
    if let Some(n) = extras.first() {
        return Err(CheckpointError::UnexpectedTensor { name: (*n).clone() });
    }
    for (i, n) in names.iter().enumerate() {
        model.params_mut().set(i, saved[n].clone());
    }
    Ok(())
}
