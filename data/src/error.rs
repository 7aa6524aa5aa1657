//! The one error type of the data crate: each variant is a sentence for the user.

/// Why data could not be read or used. The message names the file, and where it helps the
/// line, column or flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A bad argument: an unknown data set name, a fraction out of range, a missing file.
    #[error("{0}")]
    Usage(String),
    /// A data file that cannot be used (ragged, non-finite, wrong dtype, empty, too large).
    #[error("{0}")]
    Data(String),
    /// Encoding data for writing failed.
    #[error("{0}")]
    Io(String),
}

impl DataError {
    /// A [`DataError::Usage`].
    pub fn usage(msg: impl Into<String>) -> DataError {
        DataError::Usage(msg.into())
    }

    /// A [`DataError::Data`].
    pub fn data(msg: impl Into<String>) -> DataError {
        DataError::Data(msg.into())
    }

    /// A [`DataError::Io`].
    pub fn io(msg: impl Into<String>) -> DataError {
        DataError::Io(msg.into())
    }
}
