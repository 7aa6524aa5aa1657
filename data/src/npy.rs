//! `.npy` arrays of rows: reading with every size checked before anything is allocated, and
//! encoding for writing.
//!
//! A `.npy` header may declare any shape: the values it implies are compared with the file's
//! length before the header reaches the parser (which multiplies dimensions without overflow
//! checks), and the bytes the dtype implies before anything is read. Arrays are `[n, d]` or
//! `[n]` (one column), C order, float32/float64 or integers (converted to f64).

use crate::error::DataError as Error;
use crate::table::Table;
use crate::values::{check_columns, check_values, one_line};
use ebm_core::Tensor;
use npyz::{DType as NpyType, TypeChar};

/// Reads `.npy` bytes as a table of rows; `what` names the source in errors.
pub fn read_npy(bytes: &[u8], what: &str) -> Result<Table, Error> {
    let array = read_npy_array(bytes, what, |shape| match shape {
        [_] | [_, _] => Ok(()),
        other => Err(Error::data(format!(
            "{what}: array of shape {other:?}; expected rows of samples, shape [n, d] or [n]"
        ))),
    })?;
    let (n, d) = match array.shape[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => unreachable!("shapes checked above"),
    };
    check_columns(d, what)?;
    check_values(&array.values, d, what)?;
    Ok(Table {
        rows: n,
        cols: d,
        values: array.values,
    })
}

/// A `.npy` array of any rank: its shape and values (C order, as f64).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape, as declared.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f64>,
    /// Whether the stored dtype is a float (else an integer).
    pub float: bool,
}

/// Reads `.npy` bytes of any rank: sizes checked against the file before anything is
/// allocated, `check_shape` run on the declared shape before the values are read, Fortran
/// order refused when it matters, empty arrays refused, float32/float64/integer dtypes
/// converted to f64. `what` names the source in errors.
pub fn read_npy_array(
    bytes: &[u8],
    what: &str,
    check_shape: impl Fn(&[usize]) -> Result<(), Error>,
) -> Result<NpyArray, Error> {
    check_npy_shape(bytes, what)?;
    let file = npyz::NpyFile::new(bytes)
        .map_err(|e| Error::data(format!("{what}: not a valid .npy file: {}", one_line(e))))?;
    let item = match file.dtype() {
        NpyType::Plain(ts) => ts.size_field(),
        _ => 1,
    };
    check_declared_size(file.shape(), item.max(1), bytes.len(), what)?;
    let shape: Vec<usize> = file.shape().iter().map(|&s| s as usize).collect();
    check_shape(&shape)?;
    if file.order() == npyz::Order::Fortran && shape.iter().filter(|&&s| s > 1).count() > 1 {
        return Err(Error::data(format!(
            "{what}: array is in Fortran order; save it C-contiguous (numpy.ascontiguousarray)"
        )));
    }
    if shape.is_empty() || shape.contains(&0) {
        return Err(Error::data(format!(
            "{what}: array of shape {shape:?} is empty"
        )));
    }
    let ts = match file.dtype() {
        NpyType::Plain(ts) => ts,
        other => {
            return Err(Error::data(format!(
                "{what}: structured dtype {}; expected float32/float64 (or integers)",
                other.descr()
            )))
        }
    };
    let values = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => values_of::<f32>(file, what)?,
        (TypeChar::Float, 8) => values_of::<f64>(file, what)?,
        (TypeChar::Int, 1) => values_of::<i8>(file, what)?,
        (TypeChar::Int, 2) => values_of::<i16>(file, what)?,
        (TypeChar::Int, 4) => values_of::<i32>(file, what)?,
        (TypeChar::Int, 8) => values_of::<i64>(file, what)?,
        (TypeChar::Uint, 1) => values_of::<u8>(file, what)?,
        (TypeChar::Uint, 2) => values_of::<u16>(file, what)?,
        (TypeChar::Uint, 4) => values_of::<u32>(file, what)?,
        (TypeChar::Uint, 8) => values_of::<u64>(file, what)?,
        _ => {
            return Err(Error::data(format!(
                "{what}: dtype `{ts}` is not supported; expected float32 or float64 (integers are converted)"
            )))
        }
    };
    Ok(NpyArray {
        shape,
        values,
        float: ts.type_char() == TypeChar::Float,
    })
}

/// A `.npy` element type read as f64 (64-bit integers round to the nearest f64).
trait Element: npyz::Deserialize {
    fn to_f64(self) -> f64;
}

macro_rules! element {
    ($($t:ty),*) => { $( impl Element for $t {
        fn to_f64(self) -> f64 { self as f64 }
    } )* };
}
element!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);

/// Every value of `file` as `T`, converted to f64.
fn values_of<T: Element>(file: npyz::NpyFile<&[u8]>, what: &str) -> Result<Vec<f64>, Error> {
    let v = file
        .into_vec::<T>()
        .map_err(|e| Error::data(format!("{what}: cannot read the array: {e}")))?;
    Ok(v.into_iter().map(T::to_f64).collect())
}

/// The bytes of `x` (any shape) as a float32 `.npy` file.
pub fn to_npy_bytes(x: &Tensor) -> Result<Vec<u8>, Error> {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = x.shape().iter().map(|&s| s as u64).collect();
    let encode = |e: std::io::Error| Error::io(format!("cannot encode an array as .npy: {e}"));
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut buf)
            .begin_nd()
            .map_err(encode)?;
        w.extend(x.to_vec::<f32>()).map_err(encode)?;
        w.finish().map_err(encode)?;
    }
    Ok(buf.into_inner())
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

/// The dimensions a `.npy` header declares, read from its text without the parser (`None`
/// when the header cannot be read this way; the parser then gives its own error).
pub fn declared_dims(bytes: &[u8]) -> Option<Vec<u128>> {
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
    let text = std::str::from_utf8(header?).ok()?;
    let at = text.find("'shape'").or_else(|| text.find("\"shape\""))?;
    let rest = &text[at..];
    let (open, close) = (rest.find('(')?, rest.find(')')?);
    if close < open {
        return None;
    }
    rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| f.parse::<u128>().ok())
        .collect()
}

/// Checks the shape a `.npy` header declares before the header is handed to the parser
/// (npyz multiplies the dimensions without overflow checks, which panics or wraps): every
/// product of dimensions, zeros counted as ones, must stay within the file's length. A
/// header this cannot read is left to the parser's own error.
pub fn check_npy_shape(bytes: &[u8], what: &str) -> Result<(), Error> {
    let Some(dims) = declared_dims(bytes) else {
        return Ok(());
    };
    let product = dims.iter().fold(1u128, |p, &d| p.saturating_mul(d.max(1)));
    if product > bytes.len() as u128 {
        return Err(Error::data(format!(
            "{what}: the header declares shape {dims:?}, more values than the {} bytes the file holds",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn written_arrays_read_back() {
        let x = Tensor::from_f64s(
            &[1.0, -2.5, 3.0, 4.0, 5.0, 6.0],
            &[3, 2],
            ebm_core::DType::F32,
        );
        let t = read_npy(&to_npy_bytes(&x).unwrap(), "x.npy").unwrap();
        assert_eq!((t.rows, t.cols), (3, 2));
        assert_eq!(t.values, x.to_vec_f64());
    }
}
