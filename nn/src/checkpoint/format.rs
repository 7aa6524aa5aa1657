//! Plain safetensors files: tensors to bytes and back (f32 and f64), with typed errors for
//! every way a file can be cut short or malformed. Any producer's files read here (PyTorch,
//! NumPy, JAX); ebm's own checkpoint layout is built on top ([`super::Checkpoint`]).

use super::digest::{digest, TensorView};
use super::CheckpointError;
use ebm_core::{DType, Tensor};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// A tensor's bytes for serialisation.
pub(crate) struct Raw {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<u8>,
}

impl Raw {
    /// The little-endian bytes of `t`.
    pub(crate) fn of(t: &Tensor) -> Raw {
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

/// The safetensors dtype of an ebm dtype.
pub(crate) fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// The bytes of named tensors with metadata, the metadata's checksum added under
/// `checksum` (ebm's checkpoint layout).
pub(crate) fn serialize_signed(
    tensors: Vec<(String, Raw)>,
    mut meta: HashMap<String, String>,
) -> Result<Vec<u8>, CheckpointError> {
    let views: Vec<TensorView<'_>> = tensors
        .iter()
        .map(|(n, r)| (n.as_str(), r.dtype, r.shape.as_slice(), r.data.as_slice()))
        .collect();
    let sum = digest(&meta, &views);
    meta.insert("checksum".into(), sum);
    safetensors::serialize(tensors, Some(meta)).map_err(|e| CheckpointError::Serialize {
        detail: e.to_string(),
    })
}

/// A parsed, structurally valid safetensors buffer.
pub(crate) struct RawFile<'a> {
    pub(crate) metadata: Metadata,
    data: &'a [u8],
}

impl<'a> RawFile<'a> {
    /// Parses the header, or says how the bytes fall short of a safetensors file.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<RawFile<'a>, CheckpointError> {
        match SafeTensors::read_metadata(bytes) {
            Ok((n, metadata)) => Ok(RawFile {
                metadata,
                data: &bytes[8 + n..],
            }),
            Err(e) => Err(diagnose(bytes, e)),
        }
    }

    /// (name, info) sorted by name.
    pub(crate) fn infos(&self) -> Vec<(String, &TensorInfo)> {
        let mut v: Vec<(String, &TensorInfo)> = self.metadata.tensors().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The checksum of `meta` and this file's tensors.
    pub(crate) fn digest(&self, meta: &HashMap<String, String>) -> String {
        let infos = self.infos();
        let views: Vec<TensorView<'_>> = infos
            .iter()
            .map(|(n, i)| (n.as_str(), i.dtype, i.shape.as_slice(), self.data(i)))
            .collect();
        digest(meta, &views)
    }

    /// The bytes of one tensor.
    pub(crate) fn data(&self, info: &TensorInfo) -> &'a [u8] {
        &self.data[info.data_offsets.0..info.data_offsets.1]
    }

    /// One tensor, f32 or f64 (any other dtype is an error naming it).
    pub(crate) fn tensor(&self, name: &str, info: &TensorInfo) -> Result<Tensor, CheckpointError> {
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

/// Every tensor of a safetensors file (any producer), sorted by name; f32 and f64 only.
pub fn read_tensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    read_tensors_from_bytes(&read_file(path.as_ref())?)
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
    super::write_atomic(path.as_ref(), &tensors_to_bytes(tensors, metadata)?)
}

/// The bytes of a file, or an error naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|source| CheckpointError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}
