//! Checkpoints as safetensors files: parameters under their own names (so PyTorch, NumPy
//! and JAX read them directly), optimizer state under `optim.<slot>.<param>`, EMA weights
//! under `ema.<param>`, and in the string metadata the model config (JSON), the parameter
//! order, the step, the RNG state, the optimizer and EMA settings, and a checksum of all of
//! it. Writes are atomic; reads never panic and never return a silently different model.
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
//! | `extra` | JSON object of user strings (optional) |
//! | `checksum` | 64-bit digest (hex) of every other key, every tensor name, dtype, shape and byte |

use crate::ema::{Ema, EmaConfig};
use crate::model::Module;
use crate::optim::Optimizer;
use crate::params::Params;
use ebm_core::{DType, Rng, Tensor};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The value of the `format` metadata key.
pub const FORMAT: &str = "ebm-checkpoint/1";
/// Prefix of optimizer state tensors.
pub const OPTIM_PREFIX: &str = "optim.";
/// Prefix of EMA weight tensors.
pub const EMA_PREFIX: &str = "ema.";

/// Why a checkpoint could not be written, read, or restored into a model.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint is truncated: {detail}")]
    Truncated { detail: String },
    #[error("checkpoint header is corrupt: {detail}")]
    CorruptHeader { detail: String },
    #[error(
        "checkpoint is corrupt: its content does not match its checksum (stored {stored}, computed {computed})"
    )]
    ChecksumMismatch { stored: String, computed: String },
    #[error("checkpoint has no tensor `{name}`, which the model needs")]
    MissingTensor { name: String },
    #[error("checkpoint holds tensor `{name}`, which the model does not have")]
    UnexpectedTensor { name: String },
    #[error("checkpoint tensor `{name}` has shape {found:?}, but the model expects {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("checkpoint tensor `{name}` has dtype {found}, but the model expects {expected}")]
    WrongDtype {
        name: String,
        expected: String,
        found: String,
    },
    #[error("checkpoint metadata `{key}` is bad: {detail}")]
    BadMetadata { key: String, detail: String },
    #[error("checkpoint holds no {section} state, but it was asked to restore one")]
    MissingSection { section: &'static str },
    #[error(
        "checkpoint was saved from a different model configuration: checkpoint {found}, model {expected}"
    )]
    ConfigMismatch { expected: String, found: String },
    #[error("cannot serialise the checkpoint: {detail}")]
    Serialize { detail: String },
    #[error(
        "checkpoint tensor `{name}` holds a non-finite value ({value}) at flat index {index}: the run that wrote it had diverged"
    )]
    NonFinite {
        name: String,
        index: usize,
        value: f64,
    },
}

fn bad(key: &str, detail: impl Into<String>) -> CheckpointError {
    CheckpointError::BadMetadata {
        key: key.into(),
        detail: detail.into(),
    }
}

/// Everything needed to resume a run exactly: parameters, optimizer, EMA, step, RNG.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The model's configuration (JSON with a `"kind"`).
    pub model: serde_json::Value,
    /// The parameters, in model order.
    pub params: Params,
    pub optimizer: Option<Optimizer>,
    pub ema: Option<Ema>,
    /// Training steps taken.
    pub step: u64,
    /// [`Rng::state`] of the run's generator.
    pub rng: Option<[u64; 3]>,
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

    pub fn with_step(mut self, step: u64) -> Checkpoint {
        self.step = step;
        self
    }

    /// Records the generator's state (it resumes with [`Checkpoint::rng`]).
    pub fn with_rng(mut self, rng: &Rng) -> Checkpoint {
        self.rng = Some(rng.state());
        self
    }

    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<String>) -> Checkpoint {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The saved generator, positioned where the run left it.
    pub fn rng(&self) -> Option<Rng> {
        self.rng.map(Rng::from_state)
    }

    /// The safetensors bytes of this checkpoint; a non-finite value in any tensor is an error
    /// (the loader would refuse the file).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        if let Some(e) = first_non_finite(self) {
            return Err(e);
        }
        let mut tensors: Vec<(String, Raw)> = Vec::new();
        for (n, t) in self.params.iter() {
            tensors.push((n.to_string(), Raw::of(t)));
        }
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
            for (n, t) in o.state_tensors() {
                tensors.push((format!("{OPTIM_PREFIX}{n}"), Raw::of(&t)));
            }
        }
        if let Some(e) = &self.ema {
            let v = serde_json::json!({ "config": e.config(), "updates": e.updates() });
            meta.insert("ema".into(), v.to_string());
            for (n, t) in e.params().iter() {
                tensors.push((format!("{EMA_PREFIX}{n}"), Raw::of(t)));
            }
        }
        if !self.extra.is_empty() {
            meta.insert(
                "extra".into(),
                serde_json::to_string(&self.extra).expect("strings serialise"),
            );
        }
        let views: Vec<(&str, Dtype, &[usize], &[u8])> = tensors
            .iter()
            .map(|(n, r)| (n.as_str(), r.dtype, r.shape.as_slice(), r.data.as_slice()))
            .collect();
        let sum = digest(&meta, &views);
        meta.insert("checksum".into(), sum);
        safetensors::serialize(tensors, Some(meta)).map_err(|e| CheckpointError::Serialize {
            detail: e.to_string(),
        })
    }

    /// Writes the checkpoint to `path` atomically (temp file in the same directory, fsync,
    /// rename, fsync of the directory): a crash leaves the old file or the new one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::from_bytes(&bytes)
    }

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
        const KEYS: [&str; 9] = [
            "format",
            "model",
            "params",
            "step",
            "rng",
            "optimizer",
            "ema",
            "extra",
            "checksum",
        ];
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
        let order = match_params(model.params(), |n| {
            self.params.index_of(n).map(|i| self.params.get(i))
        })?;
        let order: Vec<usize> = order
            .into_iter()
            .map(|n| self.params.index_of(&n).expect("matched"))
            .collect();
        if let Some(extra) = self
            .params
            .names()
            .iter()
            .find(|n| model.params().index_of(n).is_none())
        {
            return Err(CheckpointError::UnexpectedTensor {
                name: extra.clone(),
            });
        }
        let config = model.config();
        if config != self.model {
            return Err(CheckpointError::ConfigMismatch {
                expected: config.to_string(),
                found: self.model.to_string(),
            });
        }
        let new_opt = match optimizer {
            None => None,
            Some(o) => {
                let saved = self
                    .optimizer
                    .as_ref()
                    .ok_or(CheckpointError::MissingSection {
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
                    .as_ref()
                    .ok_or(CheckpointError::MissingSection { section: "EMA" })?;
                let mut shadow = Params::new();
                for &i in &order {
                    shadow.push(self.params.name(i), saved.params().get(i).clone());
                }
                Some((e, Ema::from_parts(saved.config(), shadow, saved.updates())))
            }
        };
        for (dst, &src) in order.iter().enumerate() {
            model.params_mut().set(dst, self.params.get(src).clone());
        }
        if let Some((o, v)) = new_opt {
            *o = v;
        }
        if let Some((e, v)) = new_ema {
            *e = v;
        }
        Ok(())
    }

    /// Whether two checkpoints hold the same bits everywhere (tests of exact resumption).
    pub fn bit_eq(&self, other: &Checkpoint) -> bool {
        self.model == other.model
            && self.params.bit_eq(&other.params)
            && self.step == other.step
            && self.rng == other.rng
            && self.extra == other.extra
            && match (&self.optimizer, &other.optimizer) {
                (None, None) => true,
                (Some(a), Some(b)) => a.bit_eq(b),
                _ => false,
            }
            && match (&self.ema, &other.ema) {
                (None, None) => true,
                (Some(a), Some(b)) => a.bit_eq(b),
                _ => false,
            }
    }
}

/// For each parameter of `target` in order: the saved tensor of that name must exist with
/// the same dtype and shape. Returns the names in `target` order.
fn match_params<'a>(
    target: &Params,
    saved: impl Fn(&str) -> Option<&'a Tensor>,
) -> Result<Vec<String>, CheckpointError> {
    let mut out = Vec::with_capacity(target.len());
    for (name, want) in target.iter() {
        let got =
            saved(name).ok_or_else(|| CheckpointError::MissingTensor { name: name.into() })?;
        check_like(name, got, want)?;
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

/// The first tensor of a checkpoint (parameters, optimizer state, EMA) holding a non-finite
/// value, as the error [`Checkpoint::from_bytes`] would give for it.
pub fn first_non_finite(c: &Checkpoint) -> Option<CheckpointError> {
    let params = c.params.iter().map(|(n, t)| (n.to_string(), t.clone()));
    let optim = c
        .optimizer
        .iter()
        .flat_map(|o| o.state_tensors())
        .map(|(n, t)| (format!("{OPTIM_PREFIX}{n}"), t));
    let ema = c.ema.iter().flat_map(|e| {
        e.params()
            .iter()
            .map(|(n, t)| (format!("{EMA_PREFIX}{n}"), t.clone()))
            .collect::<Vec<_>>()
    });
    params
        .chain(optim)
        .chain(ema)
        .find_map(|(n, t)| check_finite(&n, &t).err())
}

/// `got` must have `want`'s dtype and shape.
fn check_like(name: &str, got: &Tensor, want: &Tensor) -> Result<(), CheckpointError> {
    if got.dtype() != want.dtype() {
        return Err(CheckpointError::WrongDtype {
            name: name.into(),
            expected: st_dtype(want.dtype()).to_string(),
            found: st_dtype(got.dtype()).to_string(),
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
/// ebm checkpoint (fully validated, config included; optimizer and EMA ignored) or a plain
/// file written by PyTorch, NumPy or JAX (names, dtypes and shapes checked; tensors named
/// `optim.*` or `ema.*` ignored, any other extra tensor is an error).
pub fn load_weights<M: Module + ?Sized>(
    path: impl AsRef<Path>,
    model: &mut M,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    load_weights_from_bytes(&bytes, model)
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
        if n.starts_with(OPTIM_PREFIX) || n.starts_with(EMA_PREFIX) {
            continue;
        }
        saved.insert(n.clone(), file.tensor(&n, info)?);
    }
    let names = match_params(model.params(), |n| saved.get(n))?;
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

/// Every tensor of a safetensors file (any producer), sorted by name; f32 and f64 only.
pub fn read_tensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    read_tensors_from_bytes(&bytes)
}

/// [`read_tensors`] from bytes.
pub fn read_tensors_from_bytes(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let file = RawFile::parse(bytes)?;
    file.infos()
        .into_iter()
        .map(|(n, i)| Ok((n.clone(), file.tensor(&n, i)?)))
        .collect()
}

/// The safetensors bytes of named tensors with optional string metadata (a plain file, as
/// PyTorch or NumPy would write it; no checksum).
pub fn tensors_to_bytes(
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, CheckpointError> {
    let raw: Vec<(&str, Raw)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), Raw::of(t)))
        .collect();
    safetensors::serialize(raw, metadata).map_err(|e| CheckpointError::Serialize {
        detail: e.to_string(),
    })
}

/// Writes named tensors as a plain safetensors file, atomically.
pub fn write_tensors(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), CheckpointError> {
    write_atomic(path.as_ref(), &tensors_to_bytes(tensors, metadata)?)
}

/// Recomputes the checksum of checkpoint bytes whose metadata or tensors were edited by hand
/// (or by the loader's fuzz tests, which build files that pass the checksum but hold
/// impossible contents); the file must still be structurally valid safetensors. Nothing
/// else is checked: [`Checkpoint::from_bytes`] still validates every value.
pub fn resign(bytes: &[u8]) -> Result<Vec<u8>, CheckpointError> {
    let file = RawFile::parse(bytes)?;
    let mut meta = file.metadata.metadata().clone().unwrap_or_default();
    meta.remove("checksum");
    meta.insert("checksum".into(), file.digest(&meta));
    let tensors: Vec<(String, Raw)> = file
        .infos()
        .iter()
        .map(|(n, i)| {
            let raw = Raw {
                dtype: i.dtype,
                shape: i.shape.clone(),
                data: file.data(i).to_vec(),
            };
            (n.clone(), raw)
        })
        .collect();
    safetensors::serialize(tensors, Some(meta)).map_err(|e| CheckpointError::Serialize {
        detail: e.to_string(),
    })
}

/// Safetensors bytes with their JSON header edited by `edit` (the header re-padded, the
/// data section untouched, the checksum not updated: pass the result to [`resign`] for a
/// file that passes it). None when the bytes have no readable header.
pub fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Option<Vec<u8>> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let end = 8usize.checked_add(n)?;
    let mut header: serde_json::Value = serde_json::from_slice(bytes.get(8..end)?).ok()?;
    edit(&mut header);
    let mut h = header.to_string();
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h.as_bytes());
    out.extend(&bytes[end..]);
    Some(out)
}

/// Writes `bytes` to `path` atomically: a uniquely named temp file in the same directory,
/// fsync, rename over `path`, fsync of the directory. On error the temp file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| CheckpointError::Io {
            action,
            path: p,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            io("write", path)(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            ))
        })?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io("rename into", path))?;
        #[cfg(unix)]
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync directory", &dir))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Raw safetensors access

/// A tensor's bytes for serialisation.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Raw {
    fn of(t: &Tensor) -> Raw {
        let data = match t.dtype() {
            DType::F32 => t
                .as_slice::<f32>()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            DType::F64 => t
                .as_slice::<f64>()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        Raw {
            dtype: st_dtype(t.dtype()),
            shape: t.shape().to_vec(),
            data,
        }
    }
}

impl View for Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// A parsed, structurally valid safetensors buffer.
struct RawFile<'a> {
    metadata: Metadata,
    data: &'a [u8],
}

impl<'a> RawFile<'a> {
    fn parse(bytes: &'a [u8]) -> Result<RawFile<'a>, CheckpointError> {
        match SafeTensors::read_metadata(bytes) {
            Ok((n, metadata)) => Ok(RawFile {
                metadata,
                data: &bytes[8 + n..],
            }),
            Err(e) => Err(diagnose(bytes, e)),
        }
    }

    /// (name, info) sorted by name.
    fn infos(&self) -> Vec<(String, &TensorInfo)> {
        let mut v: Vec<(String, &TensorInfo)> = self.metadata.tensors().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The checksum of `meta` and this file's tensors.
    fn digest(&self, meta: &HashMap<String, String>) -> String {
        let infos = self.infos();
        let views: Vec<(&str, Dtype, &[usize], &[u8])> = infos
            .iter()
            .map(|(n, i)| (n.as_str(), i.dtype, i.shape.as_slice(), self.data(i)))
            .collect();
        digest(meta, &views)
    }

    fn data(&self, info: &TensorInfo) -> &'a [u8] {
        &self.data[info.data_offsets.0..info.data_offsets.1]
    }

    fn tensor(&self, name: &str, info: &TensorInfo) -> Result<Tensor, CheckpointError> {
        let bytes = self.data(info);
        Ok(match info.dtype {
            Dtype::F32 => Tensor::from_vec(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect::<Vec<f32>>(),
                &info.shape,
            ),
            Dtype::F64 => Tensor::from_vec(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect::<Vec<f64>>(),
                &info.shape,
            ),
            other => {
                return Err(CheckpointError::WrongDtype {
                    name: name.into(),
                    expected: "F32 or F64".into(),
                    found: format!("{other:?}"),
                })
            }
        })
    }
}

/// Turns a safetensors parse error into a typed error, naming the first tensor that does not
/// fit when the file is cut short.
fn diagnose(bytes: &[u8], e: SafeTensorError) -> CheckpointError {
    let announced =
        || -> Option<u64> { Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)) };
    match e {
        SafeTensorError::HeaderTooSmall => CheckpointError::Truncated {
            detail: format!(
                "the file has {} bytes, fewer than its 8-byte header length",
                bytes.len()
            ),
        },
        SafeTensorError::InvalidHeaderLength => CheckpointError::Truncated {
            detail: format!(
                "the header announces {} bytes but only {} follow",
                announced().unwrap_or(0),
                bytes.len().saturating_sub(8)
            ),
        },
        SafeTensorError::MetadataIncompleteBuffer => {
            truncated_tensor(bytes).unwrap_or_else(|| CheckpointError::CorruptHeader {
                detail: "the tensors do not cover the data section exactly".into(),
            })
        }
        other => CheckpointError::CorruptHeader {
            detail: other.to_string(),
        },
    }
}

/// When the data section is shorter than the header says: which tensor is cut.
fn truncated_tensor(bytes: &[u8]) -> Option<CheckpointError> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let available = bytes.len() - 8 - n;
    let mut cut: Option<(u64, u64, &str)> = None;
    let mut end = 0u64;
    for (name, info) in header.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let offs = info.get("data_offsets")?.as_array()?;
        let (s, e) = (offs.first()?.as_u64()?, offs.get(1)?.as_u64()?);
        end = end.max(e);
        if e > available as u64 && cut.is_none_or(|(cs, _, _)| s < cs) {
            cut = Some((s, e, name));
        }
    }
    match cut {
        Some((s, e, name)) => Some(CheckpointError::Truncated {
            detail: format!(
                "tensor `{name}` needs bytes {s}..{e} of the data section, but the file ends after {available}"
            ),
        }),
        None => Some(CheckpointError::CorruptHeader {
            detail: format!(
                "{} bytes follow the last tensor",
                available as u64 - end.min(available as u64)
            ),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Checksum

/// A 64-bit digest: each 8-byte word is xored in, multiplied by an odd constant and
/// xor-shifted. Every step is a bijection of the state, so changing any single word always
/// changes the result; several changes collide with probability about 2⁻⁶⁴. Corruption
/// detection, not security.
struct Digest(u64);

impl Digest {
    fn word(&mut self, w: u64) {
        let h = (self.0 ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
        self.0 = h ^ (h >> 29);
    }

    /// Length-prefixed bytes, so concatenations cannot collide by shifting boundaries.
    fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut last = [0u8; 8];
            last[..rem.len()].copy_from_slice(rem);
            self.word(u64::from_le_bytes(last));
        }
    }

    /// splitmix64's finaliser.
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Digest of metadata (sorted by key) and tensors (sorted by name).
fn digest(meta: &HashMap<String, String>, tensors: &[(&str, Dtype, &[usize], &[u8])]) -> String {
    let mut d = Digest(0x6562_6d2d_636b_7074); // "ebm-ckpt"
    let mut keys: Vec<&String> = meta.keys().collect();
    keys.sort();
    d.word(keys.len() as u64);
    for k in keys {
        d.bytes(k.as_bytes());
        d.bytes(meta[k].as_bytes());
    }
    let mut ts: Vec<&(&str, Dtype, &[usize], &[u8])> = tensors.iter().collect();
    ts.sort_by(|a, b| a.0.cmp(b.0));
    d.word(ts.len() as u64);
    for (name, dtype, shape, data) in ts {
        d.bytes(name.as_bytes());
        d.bytes(format!("{dtype:?}").as_bytes());
        d.word(shape.len() as u64);
        for &s in shape.iter() {
            d.word(s as u64);
        }
        d.bytes(data);
    }
    format!("{:016x}", d.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_sees_every_single_word_change() {
        let meta: HashMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let data = vec![7u8; 40];
        let base = digest(&meta, &[("t", Dtype::F32, &[10], &data)]);
        for i in 0..data.len() {
            for bit in 0..8 {
                let mut d2 = data.clone();
                d2[i] ^= 1 << bit;
                assert_ne!(digest(&meta, &[("t", Dtype::F32, &[10], &d2)]), base);
            }
        }
        assert_ne!(digest(&meta, &[("t", Dtype::F32, &[5, 2], &data)]), base);
        assert_ne!(digest(&meta, &[("u", Dtype::F32, &[10], &data)]), base);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("ebm-nn-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let err = write_atomic(&dir.join("missing/x.bin"), b"z").unwrap_err();
        assert!(err.to_string().starts_with("cannot create"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
