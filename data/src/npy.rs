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
    check_npy_shape(bytes, what)?;
    let file = npyz::NpyFile::new(bytes)
        .map_err(|e| Error::data(format!("{what}: not a valid .npy file: {}", one_line(e))))?;
    let item = match file.dtype() {
        NpyType::Plain(ts) => ts.size_field(),
        _ => 1,
    };
    check_declared_size(file.shape(), item.max(1), bytes.len(), what)?;
    let shape: Vec<usize> = file.shape().iter().map(|&s| s as usize).collect();
    let (n, d) = match shape.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        other => {
            return Err(Error::data(format!(
                "{what}: array of shape {other:?}; expected rows of samples, shape [n, d] or [n]"
            )))
        }
    };
    if file.order() == npyz::Order::Fortran && d > 1 {
        return Err(Error::data(format!(
            "{what}: array is in Fortran order; save it C-contiguous (numpy.ascontiguousarray)"
        )));
    }
    if n == 0 || d == 0 {
        return Err(Error::data(format!(
            "{what}: array of shape {shape:?} is empty"
        )));
    }
    check_columns(d, what)?;
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
    check_values(&values, d, what)?;
    Ok(Table {
        rows: n,
        cols: d,
        values,
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
