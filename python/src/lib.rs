//! The native module of the `ebm` Python package (`ebm._ebm`): tapes and `Var`s with any-order
//! derivatives ([`var`], [`derivs`]), models, optimizers, objectives and samplers by name
//! ([`models`], [`sampling`]), and the training loop of `ebm train` with its run directories
//! ([`run`]). NumPy f32/f64 arrays go in and come out ([`convert`]).
//!
//! Errors: a user error is a Python exception with the message the `ebm` command prints
//! ([`errors`]); a Rust panic is caught at the boundary and raised as `RuntimeError` (a shape
//! error in an op as `ValueError`), never an abort.

// `ebm train`'s own argument parser and command, compiled here from the command's sources so
// that `ebm.train` is the same code path as the command line (same flags, defaults, checks and
// messages). Only the training command is used.
#[allow(dead_code)]
#[path = "../../ebm/src/bin/ebm/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../../ebm/src/bin/ebm/commands.rs"]
mod commands;

pub mod convert;
pub mod derivs;
pub mod errors;
pub mod models;
pub mod py_energy;
pub mod run;
pub mod sampling;
pub mod var;

use pyo3::prelude::*;

// the Rust side's allocator: mimalloc, its memory in huge pages (ebm_core::host_alloc)
ebm_core::use_mimalloc!();

#[pymodule]
fn _ebm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::install_panic_hook();
    m.add_class::<var::PyTape>()?;
    m.add_class::<var::PyVar>()?;
    m.add_class::<models::PyRng>()?;
    m.add_class::<models::PyParams>()?;
    m.add_class::<models::PyModel>()?;
    m.add_class::<models::PyOptimizer>()?;
    m.add_class::<models::PyObjective>()?;
    m.add_class::<run::PyRun>()?;
    m.add_function(wrap_pyfunction!(derivs::grad, m)?)?;
    m.add_function(wrap_pyfunction!(derivs::hvp, m)?)?;
    m.add_function(wrap_pyfunction!(derivs::hessian_diag, m)?)?;
    m.add_function(wrap_pyfunction!(derivs::jvp, m)?)?;
    m.add_function(wrap_pyfunction!(derivs::gradcheck, m)?)?;
    m.add_function(wrap_pyfunction!(derivs::gradgradcheck, m)?)?;
    m.add_function(wrap_pyfunction!(derivs::concat, m)?)?;
    m.add_function(wrap_pyfunction!(models::objective_names, m)?)?;
    m.add_function(wrap_pyfunction!(models::objective_options, m)?)?;
    m.add_function(wrap_pyfunction!(sampling::sample, m)?)?;
    m.add_function(wrap_pyfunction!(sampling::sampler_names, m)?)?;
    m.add_function(wrap_pyfunction!(run::train, m)?)?;
    m.add_function(wrap_pyfunction!(run::load, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_panic_for_tests, m)?)?;
    m.add(
        "GradcheckError",
        m.py().get_type::<errors::GradcheckError>(),
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
