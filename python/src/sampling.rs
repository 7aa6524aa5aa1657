//! Rust samplers on a Python energy: `ebm.sample(energy, x0, sampler="mala", …)` where the
//! energy is a Python function of a `Var` (rows `[B, d]` → `[B]`, written with `ebm.Var` ops)
//! or an `ebm.Model`. The sampler runs in Rust; each energy/score evaluation calls the function
//! once on a fresh tape and takes the score by reverse mode.

use crate::convert::{array, rows};
use crate::derivs::call_on_vars;
use crate::errors::{guard, PanicAs};
use crate::models::{density, PyModel, PyRng};
use ebm_autodiff::{grad, Tape};
use ebm_core::{Rng, Tensor};
use ebm_samplers::{Hmc, Mala, Samples, Step, Target, Ula};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A Python function of a `Var` as a sampler's target.
struct PyEnergy<'a, 'py> {
    f: &'a Bound<'py, PyAny>,
}

impl PyEnergy<'_, '_> {
    fn eval(&self, x: &Tensor, with_score: bool) -> (Tensor, Option<Tensor>) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let e = call_on_vars(self.f, std::slice::from_ref(&xv));
        assert_eq!(
            e.shape(),
            &x.shape()[..1],
            "the energy must map rows {:?} to one value per row, got shape {:?}",
            x.shape(),
            e.shape()
        );
        let s = with_score.then(|| grad(&e.sum_all(), &[&xv])[0].value().neg());
        (e.value().clone(), s)
    }
}

impl Target for PyEnergy<'_, '_> {
    fn energy(&self, x: &Tensor) -> Tensor {
        self.eval(x, false).0
    }
    fn score(&self, x: &Tensor) -> Tensor {
        self.eval(x, true).1.expect("asked for")
    }
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (e, s) = self.eval(x, true);
        (e, s.expect("asked for"))
    }
}

/// The generic samplers by name.
#[pyfunction]
pub fn sampler_names() -> Vec<&'static str> {
    vec!["ula", "mala", "hmc"]
}

#[allow(clippy::too_many_arguments)]
fn run_sampler(
    target: &impl Target,
    sampler: &str,
    x0: Tensor,
    steps: usize,
    warmup: usize,
    step_size: f64,
    adapt: bool,
    leapfrog: usize,
    rng: &mut Rng,
) -> PyResult<Samples> {
    Ok(match sampler {
        "ula" => Ula::new(Step::Tied { eps: step_size }, steps).run(target, x0, rng),
        "mala" => {
            let mut m = Mala::new(step_size, warmup, steps);
            m.adapt = adapt;
            m.run(target, x0, rng)
        }
        "hmc" => {
            let mut h = Hmc::new(step_size, leapfrog, warmup, steps);
            h.adapt = adapt;
            h.run(target, x0, rng)
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown sampler `{sampler}`: expected one of ula, mala, hmc"
            )))
        }
    })
}

/// Draws from exp(−E) with a Rust sampler, chains started at the rows `x0`: `energy` is a
/// Python function of a Var or an `ebm.Model`. `steps` draws after `warmup` adaptation steps
/// (MALA, HMC: the step size adapts during warm-up unless `adapt=False`). Returns
/// (final states [B, d], info dict).
#[pyfunction]
#[pyo3(signature = (energy, x0, sampler="mala", steps=500, warmup=None, step_size=0.1, adapt=true, leapfrog=10, seed=0, rng=None))]
#[allow(clippy::too_many_arguments)]
pub fn sample<'py>(
    py: Python<'py>,
    energy: &Bound<'py, PyAny>,
    x0: &Bound<'py, PyAny>,
    sampler: &str,
    steps: usize,
    warmup: Option<usize>,
    step_size: f64,
    adapt: bool,
    leapfrog: usize,
    seed: u64,
    rng: Option<&Bound<'py, PyRng>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    if steps == 0 || !(step_size.is_finite() && step_size > 0.0) || leapfrog == 0 {
        return Err(PyValueError::new_err(
            "steps and leapfrog must be at least 1, step_size positive",
        ));
    }
    let warmup = warmup.unwrap_or(steps / 2);
    let mut own = Rng::new(seed);
    let mut borrowed = rng.map(|r| r.borrow_mut());
    let r = match borrowed.as_mut() {
        Some(b) => &mut b.rng,
        None => &mut own,
    };
    let s = if let Ok(m) = energy.cast::<PyModel>() {
        let m = m.borrow();
        let x0 = m.input(x0)?;
        let target = density(&m.net);
        guard(PanicAs::Value, || {
            run_sampler(
                &target, sampler, x0, steps, warmup, step_size, adapt, leapfrog, r,
            )
        })?
    } else {
        if !energy.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "energy must be a function of a Var or an ebm.Model",
            ));
        }
        let x0 = rows(x0, "x0")?;
        let target = PyEnergy { f: energy };
        guard(PanicAs::Value, || {
            run_sampler(
                &target, sampler, x0, steps, warmup, step_size, adapt, leapfrog, r,
            )
        })?
    };
    let d = PyDict::new(py);
    d.set_item("sampler", sampler)?;
    d.set_item("steps", steps)?;
    d.set_item("step_size", s.stats.step_size.unwrap_or(step_size))?;
    d.set_item("accept_rate", s.stats.accept_rate)?;
    d.set_item("score_evals", s.stats.score_evals)?;
    Ok((array(py, &s.x), d))
}
