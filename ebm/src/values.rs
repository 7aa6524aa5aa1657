//! What a data file's values and declared sizes must satisfy before they are used.
//!
//! Rows are trained on in float32, so a value beyond float32's range (a CSV cell of `1e39`)
//! would silently become ∞; it is refused with its row and column instead. A `.npy` header
//! may declare any shape: the bytes it implies are compared with the file's length before
//! anything is allocated. Only regular files are read (a stored data path of `/dev/zero`
//! would otherwise be read until memory runs out).

use crate::error::Error;
use crate::limits::MAX_DIM;
use ebm_core::Tensor;
use std::path::Path;

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

/// A `.npy` header's declared array must fit in the file: `rows × cols × item` bytes (with
/// overflow checked) at most `available`.
pub fn check_declared_size(
    shape: &[u64],
    item: u64,
    available: usize,
    what: &str,
) -> Result<(), Error> {
    let bytes = shape
        .iter()
        .try_fold(item, |acc, &s| acc.checked_mul(s))
        .filter(|&b| b <= available as u64);
    if bytes.is_none() {
        return Err(Error::data(format!(
            "{what}: the header declares shape {shape:?} of {item}-byte values, more than the {available} bytes the file holds"
        )));
    }
    Ok(())
}

/// Checks the shape a `.npy` header declares before the header is handed to the parser
/// (npyz multiplies the dimensions without overflow checks, which panics or wraps): every
/// product of dimensions, zeros counted as ones, must stay within the file's length. A
/// header this cannot read is left to the parser's own error.
pub fn check_npy_shape(bytes: &[u8], what: &str) -> Result<(), Error> {
    let header = match bytes.get(6) {
        Some(1) => bytes
            .get(8..10)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .and_then(|n| bytes.get(10..10 + n)),
        Some(2 | 3) => bytes
            .get(8..12)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|n| bytes.get(12..12usize.checked_add(n)?)),
        _ => None,
    };
    let Some(text) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
        return Ok(());
    };
    let Some(at) = text.find("'shape'").or_else(|| text.find("\"shape\"")) else {
        return Ok(());
    };
    let rest = &text[at..];
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return Ok(());
    };
    if close < open {
        return Ok(());
    }
    let mut product: u128 = 1;
    let mut dims = Vec::new();
    for f in rest[open + 1..close].split(',').map(str::trim) {
        if f.is_empty() {
            continue;
        }
        let Ok(d) = f.parse::<u128>() else {
            return Ok(());
        };
        dims.push(d);
        product = product.saturating_mul(d.max(1));
    }
    if product > bytes.len() as u128 {
        return Err(Error::data(format!(
            "{what}: the header declares shape {dims:?}, more values than the {} bytes the file holds",
            bytes.len()
        )));
    }
    Ok(())
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
    fn declared_sizes_are_checked_without_overflow() {
        assert!(check_declared_size(&[10, 2], 4, 80, "f").is_ok());
        assert!(check_declared_size(&[10, 2], 4, 79, "f").is_err());
        assert!(check_declared_size(&[u64::MAX, 2], 8, 100, "f").is_err());
        assert!(check_declared_size(&[1 << 32, 1 << 32], 8, 100, "f").is_err());
    }

    #[test]
    fn npy_shapes_that_overflow_are_refused_before_parsing() {
        let npy = |shape: &str| {
            let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            h.push('\n');
            let mut out = b"\x93NUMPY\x01\x00".to_vec();
            out.extend((h.len() as u16).to_le_bytes());
            out.extend(h.as_bytes());
            out.extend([0u8; 16]);
            out
        };
        assert!(check_npy_shape(&npy("(2, 2)"), "f").is_ok());
        for bad in [
            "(18446744073709551615, 2)",
            "(0, 4294967296, 4294967296)",
            "(99999,)",
        ] {
            let e = check_npy_shape(&npy(bad), "f").unwrap_err().to_string();
            assert!(e.contains("declares shape"), "{bad}: {e}");
        }
        // what it cannot read is the parser's to reject
        assert!(check_npy_shape(b"junk", "f").is_ok());
        assert!(check_npy_shape(&npy("(2, 'a')"), "f").is_ok());
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
