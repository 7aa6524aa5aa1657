//! A Python function as a trainable energy: `ebm.Objective(...).step(f, opt, x, rng,
//! params=p)` trains E(x) = f(x, [p₀, p₁, …]) (written with `ebm.Var` ops) with the library's
//! objective and training step, in Rust. The step splits its batch into row blocks as for any
//! model (one call of `f` per block, on rayon's threads when there are several), so a Python
//! energy gets the same step — and the same cache-sized blocks — as the built-in MLP.

use crate::derivs::var_result;
use crate::var::PyVar;
use ebm_autodiff::Var;
use ebm_nn::{CustomEnergy, ParamVars, Params};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::{Arc, Mutex};

/// The first Python exception the function raised during a step, carried out of the step's
/// worker threads (the thread-local channel of [`crate::errors::unwind_with`] reaches only the
/// thread it was raised on).
pub type Raised = Arc<Mutex<Option<PyErr>>>;

/// `f` as a [`CustomEnergy`] named "python" over `params`. Each call attaches to the
/// interpreter, so the step may run with the GIL released; an exception of `f` is kept in
/// `raised` and unwinds the step.
pub fn python_energy(
    f: Py<PyAny>,
    params: Params,
    raised: Raised,
) -> CustomEnergy<impl Fn(&Var, &ParamVars<'_>) -> Var + Send + Sync> {
    let energy = move |x: &Var, p: &ParamVars<'_>| -> Var {
        let out = Python::attach(|py| -> PyResult<Var> {
            let xv = Bound::new(py, PyVar::from(x.clone()))?;
            let pv = p
                .vars()
                .iter()
                .map(|v| Bound::new(py, PyVar::from(v.clone())))
                .collect::<PyResult<Vec<_>>>()?;
            let out = f.bind(py).call1((xv, PyList::new(py, pv)?));
            out.and_then(|e| var_result(&e)).inspect_err(|e| {
                // The traceback's frames hold this call's Vars, which must be freed on the
                // thread that made them (a step's row blocks may run on rayon's threads):
                // clear their locals here; the exception keeps its type, message and trace.
                if let Some(tb) = e.traceback(py) {
                    let _ = py
                        .import("traceback")
                        .and_then(|m| m.call_method1("clear_frames", (tb,)));
                }
            })
        });
        out.unwrap_or_else(|e| {
            raised
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get_or_insert(e);
            std::panic::resume_unwind(Box::new("a Python exception inside the energy"))
        })
    };
    CustomEnergy::from_params(params, energy).named("python")
}

/// The exception [`python_energy`]'s function raised, if it raised one.
pub fn take_raised(raised: &Raised) -> Option<PyErr> {
    raised
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
}
