//! The derivative operators on `Var`s: gradients (recorded for higher orders with
//! `create_graph=True`), Hessian-vector products, Hessian diagonals, Jacobian-vector products,
//! and the finite-difference checks of first and second derivatives of a Python function.

use crate::convert::{self, tensor_as};
use crate::errors::{guard, unwind_with, PanicAs};
use crate::var::PyVar;
use ebm_autodiff::{CheckOpts, GradOpts, Var};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

fn opts(create_graph: bool) -> GradOpts {
    GradOpts { create_graph }
}

/// Gradients of a one-element `output` with respect to `wrt` (a Var, or a sequence of Vars: a
/// list comes back). `create_graph=True` records the backward pass so the result can be
/// differentiated again.
#[pyfunction]
#[pyo3(signature = (output, wrt, create_graph=false))]
pub fn grad<'py>(
    py: Python<'py>,
    output: &PyVar,
    wrt: &Bound<'py, PyAny>,
    create_graph: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(one) = wrt.cast::<PyVar>() {
        let x = one.borrow().v.clone();
        let g = guard(PanicAs::Value, || {
            Ok(ebm_autodiff::grad_with(&output.v, &[&x], opts(create_graph)).remove(0))
        })?;
        return Ok(Bound::new(py, PyVar::from(g))?.into_any());
    }
    let xs = vars(wrt, "wrt")?;
    let refs: Vec<&Var> = xs.iter().collect();
    let gs = guard(PanicAs::Value, || {
        Ok(ebm_autodiff::grad_with(
            &output.v,
            &refs,
            opts(create_graph),
        ))
    })?;
    let items = gs
        .into_iter()
        .map(|g| Bound::new(py, PyVar::from(g)))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any())
}

/// The Vars of a sequence.
pub fn vars(seq: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Var>> {
    let err = || PyTypeError::new_err(format!("{what} must be a Var or a sequence of Vars"));
    let items: Vec<Bound<'_, PyAny>> = seq
        .try_iter()
        .map_err(|_| err())?
        .collect::<PyResult<_>>()?;
    items
        .iter()
        .map(|o| {
            o.cast::<PyVar>()
                .map(|v| v.borrow().v.clone())
                .map_err(|_| err())
        })
        .collect()
}

/// The Hessian-vector product H·v of a one-element `output` with respect to `x` (v shaped
/// like x).
#[pyfunction]
#[pyo3(signature = (output, x, v, create_graph=false))]
pub fn hvp(output: &PyVar, x: &PyVar, v: &Bound<'_, PyAny>, create_graph: bool) -> PyResult<PyVar> {
    let v = tensor_as(v, "v", x.v.dtype())?;
    guard(PanicAs::Value, || {
        Ok(ebm_autodiff::hvp(&output.v, &x.v, &v, opts(create_graph)).into())
    })
}

/// The diagonal of each row's Hessian of a batched energy `[B]` with respect to its input `x`
/// `[B, d…]`: `out[b, i] = ∂²E_b/∂x_{b,i}²`, exact (d backward passes).
#[pyfunction]
#[pyo3(signature = (energy, x, create_graph=false))]
pub fn hessian_diag(energy: &PyVar, x: &PyVar, create_graph: bool) -> PyResult<PyVar> {
    guard(PanicAs::Value, || {
        Ok(ebm_autodiff::hessian_diag(&energy.v, &x.v, opts(create_graph)).into())
    })
}

/// The Jacobian-vector product J·v of `output` with respect to `x` (v shaped like x).
#[pyfunction]
#[pyo3(signature = (output, x, v, create_graph=false))]
pub fn jvp(output: &PyVar, x: &PyVar, v: &Bound<'_, PyAny>, create_graph: bool) -> PyResult<PyVar> {
    let v = tensor_as(v, "v", x.v.dtype())?;
    guard(PanicAs::Value, || {
        Ok(ebm_autodiff::jvp(&output.v, &x.v, &v, opts(create_graph)).into())
    })
}

/// Joins Vars along `axis`.
#[pyfunction]
#[pyo3(signature = (parts, axis=0))]
pub fn concat(parts: &Bound<'_, PyAny>, axis: usize) -> PyResult<PyVar> {
    let xs = vars(parts, "parts")?;
    if xs.is_empty() {
        return Err(PyValueError::new_err("concat needs at least one Var"));
    }
    guard(PanicAs::Value, || Ok(Var::concat(&xs, axis).into()))
}

/// Calls the Python function `f` on Vars: its exception, or a result that is not a Var, unwinds
/// to the enclosing guard.
pub fn call_on_vars(f: &Bound<'_, PyAny>, xs: &[Var]) -> Var {
    let py = f.py();
    let result = (|| -> PyResult<Var> {
        let args = xs
            .iter()
            .map(|x| Bound::new(py, PyVar::from(x.clone())))
            .collect::<PyResult<Vec<_>>>()?;
        var_result(&f.call1(PyTuple::new(py, args)?)?)
    })();
    result.unwrap_or_else(|e| unwind_with(e))
}

/// The Var a Python function returned, or a `TypeError` naming what it returned instead.
pub fn var_result(out: &Bound<'_, PyAny>) -> PyResult<Var> {
    let v = out.cast::<PyVar>().map_err(|_| {
        PyTypeError::new_err(format!(
            "the function must return a Var, got {}",
            out.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    Ok(v.borrow().v.clone())
}

#[allow(clippy::too_many_arguments)]
fn check(
    second: bool,
    f: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    eps: f64,
    atol: f64,
    rtol: f64,
    directions: usize,
    seed: u64,
    raise_exception: bool,
) -> PyResult<bool> {
    let xs = inputs
        .try_iter()
        .map_err(|_| PyTypeError::new_err("inputs must be a sequence of float64 arrays"))?
        .map(|x| {
            let t = convert::tensor(&x?, "inputs")?;
            if t.dtype() != ebm_core::DType::F64 {
                return Err(PyValueError::new_err(
                    "finite-difference checks need float64 inputs (float32 rounding swamps the differences)",
                ));
            }
            Ok(t)
        })
        .collect::<PyResult<Vec<_>>>()?;
    let o = CheckOpts {
        eps,
        atol,
        rtol,
        directions,
        seed,
    };
    let call = |vs: &[Var]| call_on_vars(f, vs);
    let r = guard(PanicAs::Value, || {
        Ok(if second {
            ebm_autodiff::gradgradcheck(call, &xs, &o)
        } else {
            ebm_autodiff::gradcheck(call, &xs, &o)
        })
    })?;
    match r {
        Ok(()) => Ok(true),
        Err(e) if raise_exception => Err(crate::errors::GradcheckError::new_err(e.to_string())),
        Err(_) => Ok(false),
    }
}

/// Checks the first derivatives of `f(*vars) -> Var` at `inputs` (float64 arrays) against
/// central finite differences along random directions. True, or `GradcheckError` naming the
/// input and the two numbers (False instead with `raise_exception=False`).
#[pyfunction]
#[pyo3(signature = (f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, directions=3, seed=0, raise_exception=true))]
#[allow(clippy::too_many_arguments)]
pub fn gradcheck(
    f: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    eps: f64,
    atol: f64,
    rtol: f64,
    directions: usize,
    seed: u64,
    raise_exception: bool,
) -> PyResult<bool> {
    check(
        false,
        f,
        inputs,
        eps,
        atol,
        rtol,
        directions,
        seed,
        raise_exception,
    )
}

/// Checks first AND second derivatives of `f` at `inputs`: the gradient of the recorded
/// backward pass against finite differences of the gradient.
#[pyfunction]
#[pyo3(signature = (f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, directions=3, seed=0, raise_exception=true))]
#[allow(clippy::too_many_arguments)]
pub fn gradgradcheck(
    f: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    eps: f64,
    atol: f64,
    rtol: f64,
    directions: usize,
    seed: u64,
    raise_exception: bool,
) -> PyResult<bool> {
    check(
        true,
        f,
        inputs,
        eps,
        atol,
        rtol,
        directions,
        seed,
        raise_exception,
    )
}
