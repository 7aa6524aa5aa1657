//! Checks of a checkpoint's contents before anything is built from them.
//!
//! The checksum proves a file is what its writer wrote, not that the writer was `ebm train`:
//! anyone can hand a colleague a file that passes it. So every stored value is checked,
//! with bounds, before it sizes an allocation, reaches an `assert!` or opens a file: the
//! training configuration (every flag's rule and [`crate::limits`]), the data dimension, the
//! tensors against the network the configuration describes (counted, not built), the
//! learning-rate scale, the loss window and the standardisation. Each failure is one error
//! naming the file and the value.

use crate::config::TrainConfig;
use crate::data::{DataSpec, Standardization};
use crate::error::Error;
use ebm_nn::Checkpoint;
use std::path::Path;

/// Checkpoint metadata key of the training configuration (JSON).
pub const EXTRA_CONFIG: &str = "train_config";
/// Checkpoint metadata key of the data's dimension.
pub const EXTRA_DIM: &str = "dim";
/// Checkpoint metadata key of the divergence guard's learning-rate scale (hex bits).
pub const EXTRA_LR_SCALE: &str = "lr_scale";
/// Checkpoint metadata key of the running loss window (hex sum, count).
pub const EXTRA_WINDOW: &str = "loss_window";
/// Checkpoint metadata key of a data file's standardisation (JSON).
pub const EXTRA_STANDARDIZATION: &str = "standardization";

fn bad(file: &Path, what: impl std::fmt::Display) -> Error {
    Error::checkpoint(format!("{}: {what}", file.display()))
}

/// The training configuration stored in a checkpoint, checked as the command line's would
/// be (a data file must be a `.csv` or `.npy` path).
pub fn stored_config(ckpt: &Checkpoint, file: &Path) -> Result<TrainConfig, Error> {
    let s = ckpt.extra.get(EXTRA_CONFIG).ok_or_else(|| {
        bad(
            file,
            "no training configuration inside (not written by `ebm train`)",
        )
    })?;
    let config: TrainConfig = serde_json::from_str(s).map_err(|e| {
        bad(
            file,
            format!("its training configuration is unreadable: {e}"),
        )
    })?;
    config
        .validate()
        .map_err(|e| bad(file, format!("its training configuration is invalid: {e}")))?;
    if let DataSpec::File { path } = &config.data {
        let ext = path.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("csv" | "npy")) {
            return Err(bad(
                file,
                format!(
                    "its data file {} is not a .csv or .npy path",
                    path.display()
                ),
            ));
        }
    }
    Ok(config)
}

/// The data dimension recorded in a checkpoint, within [`crate::limits::MAX_DIM`] and, for
/// the built-in sets, equal to theirs.
pub fn stored_dim(config: &TrainConfig, ckpt: &Checkpoint, file: &Path) -> Result<usize, Error> {
    let fixed = match &config.data {
        DataSpec::Toy { .. } => Some(2),
        DataSpec::Digits => Some(64),
        DataSpec::FashionMnist { .. } => Some(784),
        DataSpec::File { .. } => None,
    };
    let dim = match ckpt.extra.get(EXTRA_DIM) {
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad(file, format!("its data dimension `{s}` is not a number")))?,
        None => fixed.ok_or_else(|| bad(file, "it does not record its data dimension"))?,
    };
    if fixed.is_some_and(|f| f != dim) {
        return Err(bad(
            file,
            format!(
                "its data dimension {dim} is not that of {} ({})",
                config.data.label(),
                fixed.unwrap_or(0)
            ),
        ));
    }
    crate::limits::check_with_dim(config, dim).map_err(|e| bad(file, e))?;
    Ok(dim)
}

/// The tensors must be the network's: as many parameter values as the configuration's
/// network has (counted from its widths, so nothing is allocated for a configuration the
/// file cannot back). Shapes, names and the model config are compared when restoring.
pub fn tensors_fit(
    config: &TrainConfig,
    dim: usize,
    ckpt: &Checkpoint,
    file: &Path,
) -> Result<(), Error> {
    let want = crate::limits::param_count(config, dim);
    let have = ckpt.params.numel() as u64;
    // for `--arch conv` the count is an upper bound: the restore checks each tensor's shape
    let fits = match want {
        Some(w) if config.arch == crate::config::Arch::Conv => have <= w,
        w => w == Some(have),
    };
    if !fits {
        return Err(bad(
            file,
            format!(
                "its configuration ({dim} inputs, hidden {:?}, {}) needs {} parameter values, but it holds {have}",
                config.hidden,
                config.objective,
                want.map_or("too many".to_string(), |w| w.to_string()),
            ),
        ));
    }
    Ok(())
}

/// The learning-rate scale left by the divergence guard: finite, in (0, 1].
pub fn stored_lr_scale(ckpt: &Checkpoint, file: &Path) -> Result<f64, Error> {
    let s = ckpt
        .extra
        .get(EXTRA_LR_SCALE)
        .ok_or_else(|| bad(file, "no learning-rate scale"))?;
    match unhex_f64(s) {
        Some(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Some(v) => Err(bad(
            file,
            format!("its learning-rate scale {v} is not in (0, 1]"),
        )),
        None => Err(bad(
            file,
            format!("its learning-rate scale `{s}` is unreadable"),
        )),
    }
}

/// The running loss window (sum, count): a finite sum.
pub fn stored_window(ckpt: &Checkpoint, file: &Path) -> Result<(f64, u64), Error> {
    let s = ckpt
        .extra
        .get(EXTRA_WINDOW)
        .ok_or_else(|| bad(file, "no loss window"))?;
    let parsed = s
        .split_once(' ')
        .and_then(|(a, b)| Some((unhex_f64(a)?, b.parse::<u64>().ok()?)));
    match parsed {
        Some((sum, n)) if sum.is_finite() => Ok((sum, n)),
        _ => Err(bad(file, format!("its loss window `{s}` is unreadable"))),
    }
}

/// The standardisation of a file's columns: `dim` finite means and positive finite
/// standard deviations (None when the run did not standardise).
pub fn stored_standardization(
    ckpt: &Checkpoint,
    dim: usize,
    file: &Path,
) -> Result<Option<Standardization>, Error> {
    let Some(s) = ckpt.extra.get(EXTRA_STANDARDIZATION) else {
        return Ok(None);
    };
    let st: Standardization = serde_json::from_str(s)
        .map_err(|e| bad(file, format!("its standardisation is unreadable: {e}")))?;
    let ok = st.mean.len() == dim
        && st.std.len() == dim
        && st.mean.iter().all(|v| v.is_finite())
        && st.std.iter().all(|v| v.is_finite() && *v > 0.0);
    if !ok {
        return Err(bad(
            file,
            format!(
                "its standardisation is not {dim} finite means and positive standard deviations"
            ),
        ));
    }
    Ok(Some(st))
}

/// An f64 as 16 hex digits of its bits (exact in JSON strings).
pub fn hex_f64(v: f64) -> String {
    format!("{:016x}", v.to_bits())
}

/// The inverse of [`hex_f64`].
pub fn unhex_f64(s: &str) -> Option<f64> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok().map(f64::from_bits))
        .flatten()
}
