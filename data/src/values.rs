//! What a data file's values must satisfy before they are used.
//!
//! Rows are trained on in float32, so a value beyond float32's range (a CSV cell of `1e39`)
//! would silently become ∞; it is refused with its row and column instead. Only regular files
//! are read (a stored data path of `/dev/zero` would otherwise be read until memory runs out).
//! (What a `.npy` header may declare is checked in [`crate::npy`].)

use crate::error::DataError as Error;
use ebm_core::Tensor;
use std::path::Path;

/// Columns of a data set (the bound of every reader; a million-row minibatch of this width
/// is far above any run the tools are meant for).
pub const MAX_DIM: usize = 1 << 16;

/// The largest magnitude of an unstandardised value: padded by a quarter and doubled six
/// times by the quadrature, the box still fits float32 (3.4·10³⁸).
pub const MAX_UNSTANDARDIZED: f64 = 1e30;

/// Why a value cannot be a float32 data value, if it cannot.
pub fn value_problem(v: f64) -> Option<&'static str> {
    if !v.is_finite() {
        Some("is not finite (NaN or Inf)")
    } else if v.abs() > f64::from(f32::MAX) {
        Some("is beyond float32's range (±3.4e38)")
    } else {
        None
    }
}

/// The first value of row-major `values` (`d` columns) that cannot be a float32 data value,
/// as an error naming its row and column (1-based).
pub fn check_values(values: &[f64], d: usize, what: &str) -> Result<(), Error> {
    for (i, &v) in values.iter().enumerate() {
        if let Some(why) = value_problem(v) {
            return Err(Error::data(format!(
                "{what}: row {}, column {}: value {v} {why}",
                i / d.max(1) + 1,
                i % d.max(1) + 1
            )));
        }
    }
    Ok(())
}

/// Columns within [`MAX_DIM`].
pub fn check_columns(cols: usize, what: &str) -> Result<(), Error> {
    if cols > MAX_DIM {
        return Err(Error::data(format!(
            "{what}: {cols} columns is above the limit of {MAX_DIM}"
        )));
    }
    Ok(())
}

/// Data trained on without standardisation must stay within [`MAX_UNSTANDARDIZED`].
pub fn check_unstandardized(x: &Tensor, path: &Path) -> Result<(), Error> {
    let d = x.shape()[1].max(1);
    let v = x.to_vec_f64();
    if let Some(i) = v.iter().position(|v| v.abs() > MAX_UNSTANDARDIZED) {
        return Err(Error::data(format!(
            "{}: row {}, column {}: |{}| is too large to train on unstandardised (limit {MAX_UNSTANDARDIZED:e}); drop --no-standardize",
            path.display(),
            i / d + 1,
            i % d + 1,
            v[i]
        )));
    }
    Ok(())
}

/// The bytes of a data file: a regular file only.
pub fn read_regular_file(path: &Path) -> Result<Vec<u8>, Error> {
    let what = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::usage(format!("cannot read data file {what}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::data(format!(
            "data file {what} is not a regular file (a device, pipe or directory cannot be read as data)"
        )));
    }
    std::fs::read(path).map_err(|e| Error::usage(format!("cannot read data file {what}: {e}")))
}

/// A library's error message on one line (npy header parse errors span several).
pub fn one_line(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let mut line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        line = line.chars().take(200).collect::<String>() + "…";
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_float32_are_named() {
        assert!(value_problem(3.0e38).is_none());
        assert!(value_problem(1e39).unwrap().contains("float32"));
        assert!(value_problem(-1e39).is_some());
        assert!(value_problem(f64::NAN).unwrap().contains("not finite"));
        let e = check_values(&[1.0, 2.0, 3.0, 1e39], 2, "f.npy")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 2, column 2") && e.contains("float32"),
            "{e}"
        );
    }

    #[test]
    fn devices_are_not_data() {
        let e = read_regular_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert_eq!(
            one_line("a\n   b\n\tc"),
            "a b c",
            "multi-line messages are joined"
        );
    }
}
