//! `ebm.Tape` and `ebm.Var`: a tape records ops on `Var`s (tensor values with their place on
//! the tape), and every op is differentiable to any order. Operators take a `Var`, a Python
//! number or an array (a constant, cast to the `Var`'s dtype) on either side.

use crate::convert::{self, tensor_as};
use crate::errors::{guard, PanicAs};
use ebm_autodiff::{Tape, Var};
use ebm_core::Tensor;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

/// A record of the computation: `var(x)` makes a differentiable leaf, `constant(x)` a value
/// with no gradient. One tape per step; dropping it and its Vars frees what it recorded.
#[pyclass(unsendable, name = "Tape", module = "ebm")]
pub struct PyTape {
    /// The tape.
    pub tape: Tape,
}

/// A tensor value on a tape; ops on it are recorded.
#[pyclass(unsendable, name = "Var", module = "ebm")]
#[derive(Clone)]
pub struct PyVar {
    /// The value and its place on the tape.
    pub v: Var,
}

impl From<Var> for PyVar {
    fn from(v: Var) -> PyVar {
        PyVar { v }
    }
}

/// Runs an op, a shape or dtype mismatch (a panic naming both) becoming `ValueError`.
fn op(f: impl FnOnce() -> Var) -> PyResult<PyVar> {
    guard(PanicAs::Value, || Ok(PyVar { v: f() }))
}

/// The tensor of `x`, in `dtype` if given.
fn tensor_of(x: &Bound<'_, PyAny>, dtype: Option<&str>) -> PyResult<Tensor> {
    let t = convert::tensor(x, "x")?;
    Ok(match dtype {
        Some(d) => t.cast(convert::dtype(d)?),
        None => t,
    })
}

#[pymethods]
impl PyTape {
    #[new]
    fn new() -> Self {
        PyTape { tape: Tape::new() }
    }

    /// A differentiable leaf holding a copy of `x` (float32/float64 array, number or list).
    #[pyo3(signature = (x, dtype=None))]
    fn var(&self, x: &Bound<'_, PyAny>, dtype: Option<&str>) -> PyResult<PyVar> {
        Ok(self.tape.var(tensor_of(x, dtype)?).into())
    }

    /// A constant (no gradient) holding a copy of `x`.
    #[pyo3(signature = (x, dtype=None))]
    fn constant(&self, x: &Bound<'_, PyAny>, dtype: Option<&str>) -> PyResult<PyVar> {
        Ok(self.tape.constant(tensor_of(x, dtype)?).into())
    }

    /// The number of recorded nodes.
    fn __len__(&self) -> usize {
        self.tape.len()
    }

    fn __repr__(&self) -> String {
        format!("Tape(nodes={})", self.tape.len())
    }
}

/// The other operand of a binary op.
enum Operand {
    Var(Var),
    Scalar(f64),
}

fn operand(like: &Var, other: &Bound<'_, PyAny>) -> PyResult<Operand> {
    if let Ok(v) = other.cast::<PyVar>() {
        return Ok(Operand::Var(v.borrow().v.clone()));
    }
    if other.is_instance_of::<pyo3::types::PyFloat>()
        || other.is_instance_of::<pyo3::types::PyInt>()
    {
        return Ok(Operand::Scalar(other.extract::<f64>()?));
    }
    let t = tensor_as(other, "operand", like.dtype())?;
    Ok(Operand::Var(like.constant(t)))
}

/// Axes from `None` (all), an int or a sequence of ints; negative axes count from the end.
fn axes(rank: usize, axis: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<usize>> {
    let raw: Vec<i64> = match axis {
        None => return Ok((0..rank).collect()),
        Some(a) => match a.extract::<i64>() {
            Ok(i) => vec![i],
            Err(_) => a.extract::<Vec<i64>>().map_err(|_| {
                PyTypeError::new_err("axis must be None, an int or a sequence of ints")
            })?,
        },
    };
    raw.into_iter().map(|a| axis_index(rank, a)).collect()
}

fn axis_index(rank: usize, a: i64) -> PyResult<usize> {
    let r = rank as i64;
    if a >= r || a < -r {
        return Err(PyValueError::new_err(format!(
            "axis {a} is out of range for a Var of rank {rank}"
        )));
    }
    Ok(a.rem_euclid(r.max(1)) as usize)
}

/// A shape from ints given separately or as one sequence.
fn shape_arg(args: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
    if args.len() == 1 {
        if let Ok(s) = args.get_item(0)?.extract::<Vec<usize>>() {
            return Ok(s);
        }
    }
    args.extract::<Vec<usize>>().map_err(|_| {
        PyTypeError::new_err("a shape is non-negative ints, separately or as one sequence")
    })
}

#[pymethods]
impl PyVar {
    /// The shape.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.v.shape())
    }

    /// The number of axes.
    #[getter]
    fn ndim(&self) -> usize {
        self.v.rank()
    }

    /// "float32" or "float64".
    #[getter]
    fn dtype(&self) -> &'static str {
        convert::dtype_name(self.v.dtype())
    }

    /// The value as a new NumPy array.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        convert::array(py, self.v.value())
    }

    /// The value as a new NumPy array.
    fn numpy<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        convert::array(py, self.v.value())
    }

    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = copy;
        let a = convert::array(py, self.v.value());
        match dtype {
            Some(d) => a.call_method1("astype", (d,)),
            None => Ok(a),
        }
    }

    /// The value of a one-element Var.
    fn item(&self) -> PyResult<f64> {
        guard(PanicAs::Value, || Ok(self.v.item()))
    }

    /// The same value as a constant (no gradient flows back through it).
    fn detach(&self) -> PyVar {
        self.v.detach().into()
    }

    /// Whether gradients can flow back through this Var (a leaf or a result of one).
    #[getter]
    fn requires_grad(&self) -> bool {
        self.v.is_tracked()
    }

    /// The tape this Var is on.
    #[getter]
    fn tape(&self) -> PyTape {
        PyTape {
            tape: self.v.tape().clone(),
        }
    }

    /// The transpose of a matrix.
    #[getter(T)]
    fn transpose_matrix(&self) -> PyResult<PyVar> {
        op(|| self.v.t())
    }

    fn __len__(&self) -> PyResult<usize> {
        self.v
            .shape()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d Var"))
    }

    fn __repr__(&self) -> String {
        format!(
            "Var(shape={:?}, dtype={}{})",
            self.v.shape(),
            self.dtype(),
            if self.v.is_tracked() {
                ""
            } else {
                ", constant"
            }
        )
    }

    /// −x.
    fn neg(&self) -> PyResult<PyVar> {
        op(|| self.v.neg())
    }

    /// eˣ.
    fn exp(&self) -> PyResult<PyVar> {
        op(|| self.v.exp())
    }

    /// eˣ − 1.
    fn expm1(&self) -> PyResult<PyVar> {
        op(|| self.v.expm1())
    }

    /// ln x.
    fn log(&self) -> PyResult<PyVar> {
        op(|| self.v.log())
    }

    /// ln(1 + x).
    fn log1p(&self) -> PyResult<PyVar> {
        op(|| self.v.log1p())
    }

    /// √x.
    fn sqrt(&self) -> PyResult<PyVar> {
        op(|| self.v.sqrt())
    }

    /// x².
    fn square(&self) -> PyResult<PyVar> {
        op(|| self.v.square())
    }

    /// 1/x.
    fn recip(&self) -> PyResult<PyVar> {
        op(|| self.v.recip())
    }

    /// tanh x.
    fn tanh(&self) -> PyResult<PyVar> {
        op(|| self.v.tanh())
    }

    /// σ(x) = 1/(1 + e⁻ˣ).
    fn sigmoid(&self) -> PyResult<PyVar> {
        op(|| self.v.sigmoid())
    }

    /// ln σ(x).
    fn log_sigmoid(&self) -> PyResult<PyVar> {
        op(|| self.v.log_sigmoid())
    }

    /// ln(1 + eˣ).
    fn softplus(&self) -> PyResult<PyVar> {
        op(|| self.v.softplus())
    }

    /// x·σ(x).
    fn silu(&self) -> PyResult<PyVar> {
        op(|| self.v.silu())
    }

    /// max(x, 0).
    fn relu(&self) -> PyResult<PyVar> {
        op(|| self.v.relu())
    }

    /// |x|.
    fn abs(&self) -> PyResult<PyVar> {
        op(|| self.v.abs())
    }

    /// sin x.
    fn sin(&self) -> PyResult<PyVar> {
        op(|| self.v.sin())
    }

    /// cos x.
    fn cos(&self) -> PyResult<PyVar> {
        op(|| self.v.cos())
    }

    /// ELU (α = 1).
    fn elu(&self) -> PyResult<PyVar> {
        op(|| self.v.elu())
    }

    /// GELU.
    fn gelu(&self) -> PyResult<PyVar> {
        op(|| self.v.gelu())
    }

    /// The sum of all elements (0-d).
    fn sum_all(&self) -> PyResult<PyVar> {
        op(|| self.v.sum_all())
    }

    /// The mean of all elements (0-d).
    fn mean_all(&self) -> PyResult<PyVar> {
        op(|| self.v.mean_all())
    }

    /// The transpose of a matrix.
    fn t(&self) -> PyResult<PyVar> {
        op(|| self.v.t())
    }

    fn __neg__(&self) -> PyResult<PyVar> {
        op(|| self.v.neg())
    }

    fn __add__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| self.v.add(&o)),
            Operand::Scalar(c) => op(|| self.v.add_scalar(c)),
        }
    }

    fn __radd__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| o.add(&self.v)),
            Operand::Scalar(c) => op(|| self.v.add_scalar(c)),
        }
    }

    fn __sub__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| self.v.sub(&o)),
            Operand::Scalar(c) => op(|| self.v.add_scalar(-c)),
        }
    }

    fn __rsub__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| o.sub(&self.v)),
            Operand::Scalar(c) => op(|| self.v.affine(-1.0, c)),
        }
    }

    fn __mul__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| self.v.mul(&o)),
            Operand::Scalar(c) => op(|| self.v.mul_scalar(c)),
        }
    }

    fn __rmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| o.mul(&self.v)),
            Operand::Scalar(c) => op(|| self.v.mul_scalar(c)),
        }
    }

    fn __truediv__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| self.v.div(&o)),
            Operand::Scalar(c) => op(|| self.v.mul_scalar(1.0 / c)),
        }
    }

    fn __rtruediv__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| o.div(&self.v)),
            Operand::Scalar(c) => op(|| self.v.recip().mul_scalar(c)),
        }
    }

    fn __pow__(
        &self,
        exponent: &Bound<'_, PyAny>,
        modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyVar> {
        if modulo.is_some_and(|m| !m.is_none()) {
            return Err(PyTypeError::new_err(
                "pow() with a modulus is not defined for Var",
            ));
        }
        let p: f64 = exponent.extract().map_err(|_| {
            PyTypeError::new_err("Var ** p needs a number p (use exp/log for a Var exponent)")
        })?;
        if p == 2.0 {
            op(|| self.v.square())
        } else if p == 1.0 {
            Ok(self.clone())
        } else {
            op(|| self.v.powf(p))
        }
    }

    fn __matmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| self.v.matmul(&o)),
            Operand::Scalar(_) => Err(PyTypeError::new_err("@ needs a matrix, not a number")),
        }
    }

    fn __rmatmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| o.matmul(&self.v)),
            Operand::Scalar(_) => Err(PyTypeError::new_err("@ needs a matrix, not a number")),
        }
    }

    /// xᵖ for a number p.
    fn pow(&self, p: f64) -> PyResult<PyVar> {
        op(|| self.v.powf(p))
    }

    /// a·x + b for numbers a, b.
    fn affine(&self, a: f64, b: f64) -> PyResult<PyVar> {
        op(|| self.v.affine(a, b))
    }

    /// The matrix product with `other`.
    fn matmul(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        self.__matmul__(other)
    }

    /// x Wᵀ + b, the layout of `torch.nn.Linear` (W is [out, in]).
    fn linear(&self, w: &PyVar, b: &PyVar) -> PyResult<PyVar> {
        op(|| self.v.linear(&w.v, &b.v))
    }

    /// The elementwise maximum with `other`.
    fn maximum(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| self.v.maximum(&o)),
            Operand::Scalar(c) => op(|| {
                self.v
                    .maximum(&self.v.constant(Tensor::scalar(c, self.v.dtype())))
            }),
        }
    }

    /// The elementwise minimum with `other`.
    fn minimum(&self, other: &Bound<'_, PyAny>) -> PyResult<PyVar> {
        match operand(&self.v, other)? {
            Operand::Var(o) => op(|| self.v.minimum(&o)),
            Operand::Scalar(c) => op(|| {
                self.v
                    .minimum(&self.v.constant(Tensor::scalar(c, self.v.dtype())))
            }),
        }
    }

    /// Row-wise dot products of two [B, d] Vars: [B].
    fn dot_rows(&self, other: &PyVar) -> PyResult<PyVar> {
        op(|| self.v.dot_rows(&other.v))
    }

    /// The sum over `axis` (None: all axes).
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn sum(&self, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyVar> {
        let a = axes(self.v.rank(), axis)?;
        op(|| self.v.sum(&a, keepdims))
    }

    /// The mean over `axis` (None: all axes).
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn mean(&self, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyVar> {
        let a = axes(self.v.rank(), axis)?;
        op(|| self.v.mean(&a, keepdims))
    }

    /// The maximum over `axis` (None: all axes).
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn max(&self, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyVar> {
        let a = axes(self.v.rank(), axis)?;
        op(|| self.v.max(&a, keepdims))
    }

    /// ln Σ exp over `axis` (None: all axes), stable.
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn logsumexp(&self, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyVar> {
        let a = axes(self.v.rank(), axis)?;
        op(|| self.v.logsumexp(&a, keepdims))
    }

    /// Σ x² over `axis` (None: all axes).
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn sum_squares(&self, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<PyVar> {
        let a = axes(self.v.rank(), axis)?;
        op(|| self.v.sum_squares(&a, keepdims))
    }

    /// Softmax along `axis`.
    #[pyo3(signature = (axis=-1))]
    fn softmax(&self, axis: i64) -> PyResult<PyVar> {
        let a = axis_index(self.v.rank(), axis)?;
        op(|| self.v.softmax(a))
    }

    /// ln softmax along `axis`.
    #[pyo3(signature = (axis=-1))]
    fn log_softmax(&self, axis: i64) -> PyResult<PyVar> {
        let a = axis_index(self.v.rank(), axis)?;
        op(|| self.v.log_softmax(a))
    }

    /// The same elements in a new shape (ints, or one sequence).
    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyVar> {
        let s = shape_arg(shape)?;
        op(|| self.v.reshape(&s))
    }

    /// Axes reordered (ints, or one sequence).
    #[pyo3(signature = (*perm))]
    fn permute(&self, perm: &Bound<'_, PyTuple>) -> PyResult<PyVar> {
        let p = shape_arg(perm)?;
        op(|| self.v.permute(&p))
    }

    /// Axes `a` and `b` swapped.
    fn transpose(&self, a: i64, b: i64) -> PyResult<PyVar> {
        let r = self.v.rank();
        let (a, b) = (axis_index(r, a)?, axis_index(r, b)?);
        op(|| self.v.transpose(a, b))
    }

    /// `length` elements of `axis` from `start`.
    fn narrow(&self, axis: i64, start: usize, length: usize) -> PyResult<PyVar> {
        let a = axis_index(self.v.rank(), axis)?;
        op(|| self.v.narrow(a, start, length))
    }

    /// Rows `indices` of axis 0.
    fn index_select(&self, indices: Vec<usize>) -> PyResult<PyVar> {
        op(|| self.v.index_select(&indices))
    }

    /// NumPy broadcast to `shape`.
    #[pyo3(signature = (*shape))]
    fn broadcast_to(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyVar> {
        let s = shape_arg(shape)?;
        op(|| self.v.broadcast_to(&s))
    }

    /// `cond ? a : b` elementwise, with a constant condition (nonzero = true).
    #[classmethod]
    fn where_(
        _cls: &Bound<'_, PyType>,
        cond: &Bound<'_, PyAny>,
        a: &PyVar,
        b: &PyVar,
    ) -> PyResult<PyVar> {
        let c = tensor_as(cond, "cond", a.v.dtype())?;
        op(|| Var::where_(&c, &a.v, &b.v))
    }
}
