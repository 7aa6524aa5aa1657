//! NumPy arrays ↔ tensors. In: float32 and float64 arrays of any shape and layout (a
//! C-contiguous array is copied with one memcpy, any other layout gathered in C order), Python
//! numbers and nested lists as float64; any other dtype is refused with a `TypeError` that says
//! how to convert. Out: a new C-contiguous array of the tensor's dtype.

use ebm_core::{DType, Tensor};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A tensor from a float array of either dtype (read-only borrow, one copy).
fn from_array<T>(a: PyReadonlyArrayDyn<'_, T>) -> Tensor
where
    T: numpy::Element + ebm_core::HostVec + Copy,
{
    let shape = a.shape().to_vec();
    // `as_slice` also accepts Fortran order, whose memory order is not the logical one
    match a.as_slice() {
        Ok(s) if a.is_c_contiguous() => Tensor::from_slice(s, &shape),
        // Fortran-ordered, strided, transposed or negative-stride views: gathered in logical
        // (C) order
        _ => Tensor::from_vec(a.as_array().iter().copied().collect(), &shape),
    }
}

/// The tensor an argument stands for: a float32/float64 array as it is, a Python number or
/// nested list as float64; `what` names the argument in errors.
pub fn tensor(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Tensor> {
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        return Ok(from_array(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        return Ok(from_array(a));
    }
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        let dt = a.dtype().to_string();
        return Err(PyTypeError::new_err(format!(
            "{what}: expected a float32 or float64 array, got dtype {dt}; convert it with .astype(numpy.float64)"
        )));
    }
    let np = obj.py().import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .map_err(|e| PyTypeError::new_err(format!("{what}: not an array of numbers ({e})")))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "f" | "i" | "u") {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected numbers, got {}",
            obj.get_type().name()?
        )));
    }
    let arr = arr.call_method1("astype", ("float64",))?;
    Ok(from_array(arr.extract::<PyReadonlyArrayDyn<'_, f64>>()?))
}

/// A tensor of `dtype` from an argument (cast when the argument has the other float dtype).
pub fn tensor_as(obj: &Bound<'_, PyAny>, what: &str, dtype: DType) -> PyResult<Tensor> {
    let t = tensor(obj, what)?;
    Ok(if t.dtype() == dtype { t } else { t.cast(dtype) })
}

/// A 2-d tensor `[n, d]` of rows (a 1-d array is one column of n rows).
pub fn rows(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Tensor> {
    let t = tensor(obj, what)?;
    match t.shape().len() {
        2 => Ok(t),
        1 => {
            let n = t.shape()[0];
            Ok(t.reshape(&[n, 1]))
        }
        _ => Err(PyValueError::new_err(format!(
            "{what}: expected rows of samples, an array of shape [n, d], got shape {:?}",
            t.shape()
        ))),
    }
}

/// A dtype from its NumPy name.
pub fn dtype(name: &str) -> PyResult<DType> {
    match name {
        "float32" | "f32" | "single" => Ok(DType::F32),
        "float64" | "f64" | "double" | "float" => Ok(DType::F64),
        _ => Err(PyValueError::new_err(format!(
            "dtype must be \"float32\" or \"float64\", got {name:?}"
        ))),
    }
}

/// The NumPy name of a dtype.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
    }
}

/// A new NumPy array holding `t`'s values (its dtype and shape).
pub fn array<'py>(py: Python<'py>, t: &Tensor) -> Bound<'py, PyAny> {
    let shape = IxDyn(t.shape());
    match t.dtype() {
        DType::F32 => ArrayD::from_shape_vec(shape, t.as_slice::<f32>().to_vec())
            .expect("a tensor's length matches its shape")
            .into_pyarray(py)
            .into_any(),
        DType::F64 => ArrayD::from_shape_vec(shape, t.as_slice::<f64>().to_vec())
            .expect("a tensor's length matches its shape")
            .into_pyarray(py)
            .into_any(),
    }
}
