//! A numeric table read from a file (rows = samples), and the reader that picks CSV or
//! `.npy` by the file's extension.

use crate::error::DataError as Error;
use crate::values::read_regular_file;
use ebm_core::{DType, Tensor};
use std::path::Path;

/// A parsed numeric table: `rows` × `cols` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Rows (samples).
    pub rows: usize,
    /// Columns (features).
    pub cols: usize,
    /// The values, row after row.
    pub values: Vec<f64>,
}

impl Table {
    /// The table as an `[rows, cols]` tensor.
    pub fn to_tensor(&self, dtype: DType) -> Tensor {
        Tensor::from_f64s(&self.values, &[self.rows, self.cols], dtype)
    }
}

/// Reads a regular CSV or `.npy` file of rows (`.npy` by extension, CSV otherwise); every
/// value finite and within float32's range, at most [`crate::MAX_DIM`] columns.
pub fn read_file(path: &Path) -> Result<Table, Error> {
    let what = path.display().to_string();
    let bytes = read_regular_file(path)?;
    match path.extension().and_then(|e| e.to_str()) {
        #[cfg(feature = "npy")]
        Some("npy") => crate::npy::read_npy(&bytes, &what),
        #[cfg(not(feature = "npy"))]
        Some("npy") => Err(Error::usage(format!(
            "{what}: reading .npy files needs ebm-data's `npy` feature"
        ))),
        _ => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| Error::data(format!("{what}: not a text (UTF-8) CSV file")))?;
            crate::csv::parse_csv(text, &what)
        }
    }
}
