//! The one error type of the `ebm` command: each variant is a sentence for the user.

use ebm_data::DataError;
use ebm_nn::CheckpointError;

/// Why a command could not do what it was asked. Every variant but [`Error::Diverged`] (exit
/// status one) and [`Error::Lost`] (three) is the user's to fix (a flag, a file, a
/// checkpoint) and exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag value or combination, or a missing input file.
    #[error("{0}")]
    Usage(String),
    /// A data file that cannot be used (ragged, non-finite, wrong dtype, empty).
    #[error("{0}")]
    Data(String),
    /// A checkpoint or run directory that cannot be used.
    #[error("{0}")]
    Checkpoint(String),
    /// Reading or writing an output failed.
    #[error("{0}")]
    Io(String),
    /// A run directory another `ebm` process is writing (it holds the directory's lock).
    #[error("{0}")]
    Busy(String),
    /// Training diverged and the guard ran out of retries.
    #[error("{0}")]
    Diverged(String),
    /// A rank of a data-parallel run was lost (dead or hung) or the communicator failed.
    #[error("{0}")]
    Lost(String),
}

impl Error {
    /// An [`Error::Usage`].
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }
    /// An [`Error::Data`].
    pub fn data(msg: impl Into<String>) -> Error {
        Error::Data(msg.into())
    }
    /// An [`Error::Checkpoint`].
    pub fn checkpoint(msg: impl Into<String>) -> Error {
        Error::Checkpoint(msg.into())
    }
    /// An [`Error::Io`].
    pub fn io(msg: impl Into<String>) -> Error {
        Error::Io(msg.into())
    }

    /// The same error with its message prefixed by `p`.
    pub fn prefixed(self, p: &str) -> Error {
        let f = |m: String| format!("{p}{m}");
        match self {
            Error::Usage(m) => Error::Usage(f(m)),
            Error::Data(m) => Error::Data(f(m)),
            Error::Checkpoint(m) => Error::Checkpoint(f(m)),
            Error::Io(m) => Error::Io(f(m)),
            Error::Busy(m) => Error::Busy(f(m)),
            Error::Diverged(m) => Error::Diverged(f(m)),
            Error::Lost(m) => Error::Lost(f(m)),
        }
    }

    /// A checkpoint error, prefixed with the file it came from.
    pub fn from_checkpoint(path: &std::path::Path, e: CheckpointError) -> Error {
        match e {
            CheckpointError::Io {
                action,
                path,
                source,
            } => Error::Checkpoint(format!(
                "cannot {action} checkpoint {}: {source}",
                path.display()
            )),
            other => Error::Checkpoint(format!("{}: {other}", path.display())),
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Diverged(_) => 1,
            Error::Lost(_) => 3,
            _ => 2,
        }
    }
}

impl From<ebm_comm::CommError> for Error {
    fn from(e: ebm_comm::CommError) -> Error {
        Error::Lost(e.to_string())
    }
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Error {
        match e {
            DataError::Usage(m) => Error::Usage(m),
            DataError::Data(m) => Error::Data(m),
            DataError::Io(m) => Error::Io(m),
        }
    }
}
