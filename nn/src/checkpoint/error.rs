//! Why a checkpoint could not be written, read, or restored.

use std::path::PathBuf;

/// Why a checkpoint could not be written, read, or restored into a model.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing, syncing or renaming a file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", "rename into", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file ends before the data its header announces.
    #[error("checkpoint is truncated: {detail}")]
    Truncated {
        /// What is missing.
        detail: String,
    },
    /// The safetensors header cannot be parsed or does not describe the data section.
    #[error("checkpoint header is corrupt: {detail}")]
    CorruptHeader {
        /// What is wrong.
        detail: String,
    },
    /// The stored checksum does not match the content.
    #[error(
        "checkpoint is corrupt: its content does not match its checksum (stored {stored}, computed {computed})"
    )]
    ChecksumMismatch {
        /// The checksum in the file.
        stored: String,
        /// The checksum of what the file holds.
        computed: String,
    },
    /// A tensor the model (or objective) needs is absent.
    #[error("checkpoint has no tensor `{name}`, which the model needs")]
    MissingTensor {
        /// The tensor's name in the file.
        name: String,
    },
    /// The file holds a tensor nothing restores into.
    #[error("checkpoint holds tensor `{name}`, which the model does not have")]
    UnexpectedTensor {
        /// The tensor's name in the file.
        name: String,
    },
    /// A tensor has another shape than the one it restores into.
    #[error("checkpoint tensor `{name}` has shape {found:?}, but the model expects {expected:?}")]
    WrongShape {
        /// The tensor's name in the file.
        name: String,
        /// The shape restored into.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has another dtype than the one it restores into (or one ebm cannot hold).
    #[error("checkpoint tensor `{name}` has dtype {found}, but the model expects {expected}")]
    WrongDtype {
        /// The tensor's name in the file.
        name: String,
        /// The dtype restored into.
        expected: String,
        /// The dtype in the file.
        found: String,
    },
    /// A metadata value is missing, unknown or unreadable.
    #[error("checkpoint metadata `{key}` is bad: {detail}")]
    BadMetadata {
        /// The metadata key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A restore asked for a section the file does not hold.
    #[error("checkpoint holds no {section} state, but it was asked to restore one")]
    MissingSection {
        /// The section ("optimizer", "EMA", …).
        section: &'static str,
    },
    /// The file's model configuration is not the model's.
    #[error(
        "checkpoint was saved from a different model configuration: checkpoint {found}, model {expected}"
    )]
    ConfigMismatch {
        /// The model's configuration.
        expected: String,
        /// The file's.
        found: String,
    },
    /// safetensors could not serialise the tensors.
    #[error("cannot serialise the checkpoint: {detail}")]
    Serialize {
        /// safetensors' message.
        detail: String,
    },
    /// A tensor holds NaN or ∞ (never written by ebm: a diverged or hand-made state).
    #[error(
        "checkpoint tensor `{name}` holds a non-finite value ({value}) at flat index {index}: the run that wrote it had diverged"
    )]
    NonFinite {
        /// The tensor's name in the file.
        name: String,
        /// The flat index of the first non-finite value.
        index: usize,
        /// That value.
        value: f64,
    },
}

/// A [`CheckpointError::BadMetadata`].
pub(crate) fn bad(key: &str, detail: impl Into<String>) -> CheckpointError {
    CheckpointError::BadMetadata {
        key: key.into(),
        detail: detail.into(),
    }
}
