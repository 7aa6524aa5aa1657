//! Models, parameters, optimizers, the generator and objectives by name: the pieces of a
//! training step driven from Python, each step itself running in Rust.

use crate::convert::{self, array, tensor};
use crate::errors::{guard, PanicAs};
use crate::var::{PyTape, PyVar};
use ebm::config::TrainConfig;
use ebm::model::Net;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{
    Activation, AdamConfig, EnergyModel, Mlp, MlpConfig, Module, Optimizer, OptimizerConfig,
    Params, SgdConfig,
};
use ebm_objectives::factory::{self, DataFacts, ObjectiveOptions};
use ebm_objectives::{train_step, ModelTarget, Objective, TrainStep};
use ebm_samplers::Target;
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The seeded counter-based generator (Philox): same seed, same numbers on any machine.
#[pyclass(name = "Rng", module = "ebm")]
pub struct PyRng {
    /// The generator.
    pub rng: Rng,
}

#[pymethods]
impl PyRng {
    #[new]
    #[pyo3(signature = (seed=0))]
    fn new(seed: u64) -> Self {
        PyRng {
            rng: Rng::new(seed),
        }
    }

    /// Standard normal draws of `shape`.
    #[pyo3(signature = (shape, dtype="float32"))]
    fn normal<'py>(
        &mut self,
        py: Python<'py>,
        shape: Vec<usize>,
        dtype: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(array(py, &self.rng.normal(&shape, convert::dtype(dtype)?)))
    }

    /// Uniform draws on [lo, hi) of `shape`.
    #[pyo3(signature = (shape, lo=0.0, hi=1.0, dtype="float32"))]
    fn uniform<'py>(
        &mut self,
        py: Python<'py>,
        shape: Vec<usize>,
        lo: f64,
        hi: f64,
        dtype: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(array(
            py,
            &self.rng.uniform(&shape, lo, hi, convert::dtype(dtype)?),
        ))
    }
}

/// Named parameter tensors, in order.
#[pyclass(name = "Params", module = "ebm")]
#[derive(Clone)]
pub struct PyParams {
    /// The parameters.
    pub params: Params,
}

#[pymethods]
impl PyParams {
    /// From a dict of name → float32/float64 array (its order is kept).
    #[new]
    fn new(values: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut params = Params::new();
        for (k, v) in values.iter() {
            let name: String = k.extract()?;
            params.push(name.clone(), tensor(&v, &name)?);
        }
        Ok(PyParams { params })
    }

    /// The names, in order.
    fn names(&self) -> Vec<String> {
        self.params.names().to_vec()
    }

    fn __len__(&self) -> usize {
        self.params.len()
    }

    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let t = self
            .params
            .by_name(name)
            .ok_or_else(|| PyKeyError::new_err(format!("no parameter named {name:?}")))?;
        Ok(array(py, t))
    }

    /// Every parameter as a dict of new arrays.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (n, t) in self.params.iter() {
            d.set_item(n, array(py, t))?;
        }
        Ok(d)
    }

    /// Every parameter as a differentiable leaf on `tape`, in order.
    fn bind(&self, tape: &PyTape) -> Vec<PyVar> {
        self.params
            .bind(&tape.tape)
            .into_iter()
            .map(PyVar::from)
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Params({})", self.params.names().join(", "))
    }
}

/// A network: an MLP energy E(x), or the noise-conditional net of NCSN / VE / VP.
#[pyclass(name = "Model", module = "ebm")]
pub struct PyModel {
    /// The network.
    pub net: Net,
}

fn activation(name: &str) -> PyResult<Activation> {
    name.parse().map_err(PyValueError::new_err)
}

#[pymethods]
impl PyModel {
    /// The network `ebm train --objective OBJECTIVE --hidden … --activation …` builds for
    /// `dim`-dimensional data, initialised from `seed`.
    #[new]
    #[pyo3(signature = (dim, hidden=vec![128, 128], objective="dsm-cv", activation="silu", seed=0))]
    fn new(
        dim: usize,
        hidden: Vec<usize>,
        objective: &str,
        activation: &str,
        seed: u64,
    ) -> PyResult<Self> {
        let config = TrainConfig {
            objective: objective.to_string(),
            hidden,
            activation: self::activation(activation)?,
            ..TrainConfig::default()
        };
        ebm::config::objective_info(objective).map_err(crate::errors::to_py)?;
        if dim == 0 || config.hidden.is_empty() || config.hidden.contains(&0) {
            return Err(PyValueError::new_err(
                "dim and every hidden width must be at least 1",
            ));
        }
        Ok(PyModel {
            net: Net::new(&config, dim, &mut Rng::new(seed)),
        })
    }

    /// An MLP energy with layer `widths` (input … 1), PyTorch's default initialisation.
    #[staticmethod]
    #[pyo3(signature = (widths, activation="silu", seed=0, dtype="float32"))]
    fn mlp(widths: Vec<usize>, activation: &str, seed: u64, dtype: &str) -> PyResult<Self> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(PyValueError::new_err(format!(
                "widths must be at least two positive widths (input … output), got {widths:?}"
            )));
        }
        let c = MlpConfig::new(&widths).activation(self::activation(activation)?);
        let m = Mlp::with_dtype(c, &mut Rng::new(seed), convert::dtype(dtype)?);
        Ok(PyModel { net: Net::Mlp(m) })
    }

    /// A copy of the parameters.
    #[getter]
    fn params(&self) -> PyParams {
        PyParams {
            params: self.net.params().clone(),
        }
    }

    /// Replaces the parameters (same names and shapes).
    #[setter]
    fn set_params(&mut self, p: PyRef<'_, PyParams>) -> PyResult<()> {
        let own = self.net.params();
        if own.names() != p.params.names()
            || own
                .tensors()
                .iter()
                .zip(p.params.tensors())
                .any(|(a, b)| a.shape() != b.shape())
        {
            return Err(PyValueError::new_err(
                "the parameters must have the model's names and shapes",
            ));
        }
        *self.net.params_mut() = p.params.clone();
        Ok(())
    }

    /// E(x) per row as a Var, from the parameter Vars `params` (`Params.bind`): for losses
    /// written in Python. MLP energies only.
    fn energy_var(&self, x: &PyVar, params: Vec<PyRef<'_, PyVar>>) -> PyResult<PyVar> {
        let Net::Mlp(m) = &self.net else {
            return Err(PyTypeError::new_err(
                "energy_var needs an MLP energy (a noise-conditional net takes a noise level)",
            ));
        };
        let p: Vec<_> = params.iter().map(|v| v.v.clone()).collect();
        guard(PanicAs::Value, || Ok(m.energy_var(&x.v, &p).into()))
    }

    /// E(x) per row (a noise-conditional net at its smallest noise level).
    fn energy<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = self.input(x)?;
        let e = guard(PanicAs::Value, || Ok(density(&self.net).energy(&x)))?;
        Ok(array(py, &e))
    }

    /// The score −∇ₓE(x), shaped like x.
    fn score<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = self.input(x)?;
        let s = guard(PanicAs::Value, || Ok(density(&self.net).score(&x)))?;
        Ok(array(py, &s))
    }

    fn __repr__(&self) -> String {
        format!("Model({})", self.net.module().config())
    }
}

impl PyModel {
    /// Rows `[n, d]` in the model's dtype.
    pub fn input(&self, x: &Bound<'_, PyAny>) -> PyResult<Tensor> {
        let t = convert::rows(x, "x")?;
        Ok(t.cast(self.net.params().dtype().unwrap_or(DType::F32)))
    }
}

/// A network read as a density over x (noise-conditional nets at their smallest level: the
/// level the `ebm` command reads them at is set by the run; an untrained net has none).
pub fn density(net: &Net) -> ModelTarget<'_> {
    match net {
        Net::Mlp(_) | Net::Conv(_) => ModelTarget::new(net),
        Net::Cond(_) | Net::UNet(_) => ModelTarget::new(net).at(0.0),
    }
}

/// An optimizer with its training-step settings (the objective's own optimizer, EMA, clipping).
#[pyclass(unsendable, name = "Optimizer", module = "ebm")]
pub struct PyOptimizer {
    /// The optimizer inside the training step's settings.
    pub step: TrainStep,
}

#[pymethods]
impl PyOptimizer {
    /// `kind` "adam", "adamw" or "sgd" over `params` (a Params or a Model).
    #[new]
    #[pyo3(signature = (params, kind="adam", lr=1e-3, weight_decay=0.0, momentum=0.9, betas=(0.9, 0.999), eps=1e-8, clip_grad=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        params: &Bound<'_, PyAny>,
        kind: &str,
        lr: f64,
        weight_decay: f64,
        momentum: f64,
        betas: (f64, f64),
        eps: f64,
        clip_grad: Option<f64>,
    ) -> PyResult<Self> {
        let p = params_of(params)?;
        let adam = AdamConfig {
            lr,
            beta1: betas.0,
            beta2: betas.1,
            eps,
            weight_decay,
        };
        let config = match kind {
            "adam" => OptimizerConfig::Adam(adam),
            "adamw" => OptimizerConfig::AdamW(adam),
            "sgd" => OptimizerConfig::Sgd(SgdConfig {
                momentum,
                weight_decay,
                ..SgdConfig::new(lr)
            }),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown optimizer `{kind}`: expected one of adam, adamw, sgd"
                )))
            }
        };
        config.validate().map_err(PyValueError::new_err)?;
        let mut step = TrainStep::new(Optimizer::new(config, &p));
        step.clip_grad_norm = clip_grad;
        Ok(PyOptimizer { step })
    }

    /// One update of `params` (a Params or a Model) with `grads` (Vars or arrays, in order).
    fn step(&mut self, params: &Bound<'_, PyAny>, grads: &Bound<'_, PyList>) -> PyResult<()> {
        let gs = grads
            .iter()
            .map(|g| match g.cast::<PyVar>() {
                Ok(v) => Ok(v.borrow().v.value().clone()),
                Err(_) => tensor(&g, "grads"),
            })
            .collect::<PyResult<Vec<Tensor>>>()?;
        let opt = &mut self.step.optimizer;
        with_params_mut(params, |p| {
            guard(PanicAs::Value, || {
                opt.step(p, &gs);
                Ok(())
            })
        })
    }

    /// The current learning rate.
    #[getter]
    fn lr(&self) -> f64 {
        self.step.optimizer.lr()
    }

    /// Updates taken.
    #[getter]
    fn steps(&self) -> u64 {
        self.step.optimizer.steps()
    }
}

/// A copy of the parameters of a Params or a Model.
fn params_of(obj: &Bound<'_, PyAny>) -> PyResult<Params> {
    if let Ok(p) = obj.cast::<PyParams>() {
        return Ok(p.borrow().params.clone());
    }
    if let Ok(m) = obj.cast::<PyModel>() {
        return Ok(m.borrow().net.params().clone());
    }
    Err(PyTypeError::new_err(
        "params must be an ebm.Params or an ebm.Model",
    ))
}

fn with_params_mut<R>(
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&mut Params) -> PyResult<R>,
) -> PyResult<R> {
    if let Ok(p) = obj.cast::<PyParams>() {
        return f(&mut p.borrow_mut().params);
    }
    if let Ok(m) = obj.cast::<PyModel>() {
        return f(m.borrow_mut().net.params_mut());
    }
    Err(PyTypeError::new_err(
        "params must be an ebm.Params or an ebm.Model",
    ))
}

/// Every objective's name.
#[pyfunction]
pub fn objective_names() -> Vec<&'static str> {
    factory::NAMES.to_vec()
}

/// The options objective `name` reads, with their defaults.
#[pyfunction]
pub fn objective_options<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let info = ebm::config::objective_info(name).map_err(crate::errors::to_py)?;
    let d = PyDict::new(py);
    let defaults = ObjectiveOptions::default();
    for &o in info.options {
        d.set_item(o, defaults.get(o))?;
    }
    Ok(d)
}

/// An objective built by name from the table of objectives, for data like `data`.
#[pyclass(unsendable, name = "Objective", module = "ebm")]
pub struct PyObjective {
    objective: Box<dyn Objective>,
}

#[pymethods]
impl PyObjective {
    /// `name` with keyword options named as the `ebm train` flags (`sigma_min=0.05`), for data
    /// like the rows `data` (NCE fits its noise to them, PCD starts chains in their box).
    #[new]
    #[pyo3(signature = (name, data, seed=0, **options))]
    fn new(
        name: &str,
        data: &Bound<'_, PyAny>,
        seed: u64,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut o = ObjectiveOptions::default();
        if name == ebm_objectives::names::VE {
            o.sigma_max = 4.0; // the `ebm` command's default for ve
        }
        for (k, v) in options
            .map(|d| d.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let key: String = k.extract()?;
            o.set(&key, v.extract::<f64>()?)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
        }
        let x = convert::rows(data, "data")?;
        let facts = DataFacts::of(&x);
        let objective = factory::build(name, &o, &facts, &mut Rng::new(seed))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyObjective { objective })
    }

    /// The name.
    #[getter]
    fn name(&self) -> &'static str {
        self.objective.name()
    }

    /// One training step on the rows `x` with `optimizer` (the loss, its gradient and the
    /// update, in Rust), drawing noise from `rng`; returns the loss. `model` is an ebm.Model,
    /// or a Python energy `f(x, p)` of a Var `x` `[B, d]` and the list `p` of `params` (an
    /// ebm.Params, updated in place) bound as Vars, returning one energy per row: the step
    /// then calls `f` once per row block, with the GIL released between calls.
    #[pyo3(signature = (model, optimizer, x, rng, params=None))]
    fn step(
        &mut self,
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        optimizer: &mut PyOptimizer,
        x: &Bound<'_, PyAny>,
        rng: &mut PyRng,
        params: Option<&Bound<'_, PyParams>>,
    ) -> PyResult<f64> {
        let obj = &mut self.objective;
        if let Ok(m) = model.cast::<PyModel>() {
            let mut m = m.borrow_mut();
            let x = m.input(x)?;
            return guard(PanicAs::Value, || {
                Ok(train_step(
                    obj.as_mut(),
                    &mut m.net,
                    &mut optimizer.step,
                    &x,
                    &mut rng.rng,
                ))
            });
        }
        if !model.is_callable() {
            return Err(PyTypeError::new_err(
                "model must be an ebm.Model or a Python energy f(x, params)",
            ));
        }
        let params = params.ok_or_else(|| {
            PyTypeError::new_err("a Python energy needs params=ebm.Params (its parameters)")
        })?;
        let p = params.borrow().params.clone();
        let x = convert::rows(x, "x")?.cast(p.dtype().unwrap_or(DType::F32));
        let raised = crate::py_energy::Raised::default();
        let mut energy = crate::py_energy::python_energy(model.clone().unbind(), p, raised.clone());
        let (step, rng) = (&mut optimizer.step, &mut rng.rng);
        // SAFETY of the Send claim: `detach` runs the closure on this thread before it returns;
        // the bound only keeps GIL-bound references out, and none is captured (the energy
        // holds a `Py` and attaches for each call).
        let run = AssertSend(|| {
            guard(PanicAs::Value, || {
                Ok(train_step(obj.as_mut(), &mut energy, step, &x, rng))
            })
        });
        let loss = py.detach(move || (run.into_inner())());
        if let Some(e) = crate::py_energy::take_raised(&raised) {
            return Err(e);
        }
        let loss = loss?;
        params.borrow_mut().params = energy.params().clone();
        Ok(loss)
    }
}

/// A value `Python::detach` may take although its type is not `Send` (see its use).
struct AssertSend<T>(T);

// SAFETY: used only to run a closure within `Python::detach` on the thread that made it.
unsafe impl<T> Send for AssertSend<T> {}

impl<T> AssertSend<T> {
    fn into_inner(self) -> T {
        self.0
    }
}
