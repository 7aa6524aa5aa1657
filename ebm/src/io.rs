//! Small file helpers: atomic writes of bytes, JSON and `.npy` arrays.

use crate::error::Error;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    ebm_nn::write_atomic(path, bytes).map_err(|e| Error::io(e.to_string()))
}

/// Writes pretty JSON atomically, with a trailing newline.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), Error> {
    let mut s = serde_json::to_string_pretty(value).expect("values serialise to JSON");
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::checkpoint(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::checkpoint(format!("{} is not valid: {e}", path.display())))
}

/// Creates a directory and its parents.
pub fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path)
        .map_err(|e| Error::io(format!("cannot create directory {}: {e}", path.display())))
}

/// Writes `x` as a float32 `.npy` file, atomically.
pub fn write_npy(path: &Path, x: &ebm_core::Tensor) -> Result<(), Error> {
    let bytes = ebm_data::npy::to_npy_bytes(x)
        .map_err(|e| Error::io(format!("cannot write {}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}
