//! `ebm.train`: the `ebm train` command itself — its argument parser and its `train_cmd`,
//! compiled from the command's own source files — run with the GIL released; and `ebm.load`:
//! a trained run's model with its energy, score, samples, log Z and NLL.

use crate::args::TrainArgs;
use crate::convert::{array, rows};
use crate::errors::{guard, to_py, PanicAs};
use crate::models::PyModel;
use clap::Parser;
use ebm::data::{DataSpec, Dataset};
use ebm::model::{load_run, Loaded};
use ebm::sample::{SampleOptions, SamplerKind};
use ebm_core::{DType, Rng};
use ebm_objectives::eval::{ais_log_z, grid_log_z, nll, AisConfig};
use ebm_samplers::Target;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// `ebm train`'s arguments, parsed by the command's own parser.
#[derive(Parser)]
#[command(
    name = "ebm train",
    no_binary_name = true,
    allow_negative_numbers = true
)]
struct TrainCommand {
    #[command(flatten)]
    args: TrainArgs,
}

/// The run directory `ebm train` picks when `--out` is not given.
fn default_out(a: &TrainArgs) -> Result<PathBuf, ebm::error::Error> {
    let data = DataSpec::parse(a.data.as_deref().unwrap_or("8gaussians"))?;
    let objective = a
        .objective
        .as_deref()
        .unwrap_or(ebm_objectives::names::DSM_CV);
    Ok(PathBuf::from("runs").join(format!(
        "{objective}-{}-{}",
        data.label(),
        ebm::rundir::utc_timestamp(false)
    )))
}

/// Runs `ebm train ARGS…` (the flags as the command takes them) in this process with the GIL
/// released; returns the run directory and whether training finished (False: interrupted).
/// Errors are the command's, with its messages: a bad flag is a ValueError.
#[pyfunction]
pub fn train(py: Python<'_>, argv: Vec<String>) -> PyResult<(String, bool)> {
    let mut parsed = TrainCommand::try_parse_from(&argv).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        PyValueError::new_err(first.to_string())
    })?;
    let a = &mut parsed.args;
    if a.out.is_none() && a.resume.is_none() {
        a.out = Some(default_out(a).map_err(to_py)?);
    }
    let dir = a
        .out
        .clone()
        .or_else(|| a.resume.clone())
        .expect("set above");
    let code = guard(PanicAs::Runtime, || {
        py.detach(|| crate::commands::train_cmd(parsed.args))
            .map_err(to_py)
    })?;
    Ok((dir.display().to_string(), code == 0))
}

/// A trained model loaded from a run directory (or checkpoint file), with its data set.
#[pyclass(name = "LoadedRun", module = "ebm")]
pub struct PyRun {
    loaded: Loaded,
    data: Dataset,
}

/// Loads the run at `path` (a run directory, or a checkpoint file such as RUN/best.safetensors).
#[pyfunction]
pub fn load(path: PathBuf) -> PyResult<PyRun> {
    let (loaded, data) = guard(PanicAs::Runtime, || load_run(&path).map_err(to_py))?;
    Ok(PyRun { loaded, data })
}

impl PyRun {
    fn density(&self) -> ebm::model::Density<'_> {
        self.loaded.density()
    }

    fn input(&self, x: &Bound<'_, PyAny>) -> PyResult<ebm_core::Tensor> {
        let t = rows(x, "x")?;
        if t.shape()[1] != self.loaded.dim {
            return Err(PyValueError::new_err(format!(
                "x has {} columns; the model was trained on {}-dimensional data",
                t.shape()[1],
                self.loaded.dim
            )));
        }
        Ok(t.cast(DType::F32))
    }

    fn log_z_value(&self, ais_temps: usize, seed: u64) -> f64 {
        let density = self.density();
        let dim = self.loaded.dim;
        if dim <= 2 {
            let cells = if dim == 1 { 2000 } else { 200 };
            grid_log_z(&density, &self.data.bounds(), cells, 1e-4, DType::F32).log_z
        } else {
            let cfg = AisConfig {
                n_temps: ais_temps.max(2),
                prior_std: 1.0,
                step_size: 0.1,
                ..AisConfig::default()
            };
            let mut rng = Rng::new(seed).stream(0xE7A1);
            ais_log_z(&density, dim, None, &cfg, DType::F32, &mut rng).forward
        }
    }
}

#[pymethods]
impl PyRun {
    /// Columns of the data.
    #[getter]
    fn dim(&self) -> usize {
        self.loaded.dim
    }

    /// Steps the checkpoint had taken.
    #[getter]
    fn step(&self) -> u64 {
        self.loaded.step
    }

    /// The checkpoint file.
    #[getter]
    fn checkpoint(&self) -> String {
        self.loaded.file.display().to_string()
    }

    /// The model (a copy), to sample from or evaluate further.
    #[getter]
    fn model(&self) -> PyModel {
        PyModel {
            net: self.loaded.net.clone(),
        }
    }

    /// The run's held-out test rows (in the model's coordinates).
    fn test_rows<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        array(py, &self.data.test)
    }

    /// E(x) per row, as the run's evaluation reads the model.
    fn energy<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = self.input(x)?;
        let e = guard(PanicAs::Value, || Ok(self.density().energy(&x)))?;
        Ok(array(py, &e))
    }

    /// The score −∇ₓE(x).
    fn score<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = self.input(x)?;
        let s = guard(PanicAs::Value, || Ok(self.density().score(&x)))?;
        Ok(array(py, &s))
    }

    /// `n` samples, as `ebm sample RUN --sampler … --n n --seed seed` draws them (the same
    /// numbers); returns (samples, info dict).
    #[pyo3(signature = (n=1000, sampler="auto", steps=None, step_size=None, seed=0))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        sampler: &str,
        steps: Option<usize>,
        step_size: Option<f64>,
        seed: u64,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        if n < 2 {
            return Err(to_py(ebm::error::Error::usage("--n must be at least 2")));
        }
        ebm::limits::check_sampling(n, self.data.dim, steps, None, None).map_err(to_py)?;
        let opts = SampleOptions {
            sampler: Some(SamplerKind::parse(sampler).map_err(to_py)?),
            steps,
            step_size,
        };
        let mut rng = Rng::new(seed).stream(0x5A3);
        let (loaded, bounds) = (&self.loaded, self.data.bounds());
        let (x, info) = guard(PanicAs::Runtime, || {
            py.detach(|| {
                ebm::sample::draw(&loaded.net, loaded.noise(), &bounds, n, &opts, &mut rng)
            })
            .map_err(to_py)
        })?;
        let d = PyDict::new(py);
        d.set_item("sampler", info.sampler)?;
        d.set_item("steps", info.steps)?;
        d.set_item("step_size", info.step_size)?;
        d.set_item("accept_rate", info.accept_rate)?;
        Ok((array(py, &x), d))
    }

    /// log Z of the model: quadrature on the data's box for d ≤ 2 (as the run's evaluation),
    /// annealed importance sampling with `ais_temps` temperatures above.
    #[pyo3(signature = (ais_temps=500, seed=0))]
    fn log_z(&self, py: Python<'_>, ais_temps: usize, seed: u64) -> PyResult<f64> {
        guard(PanicAs::Runtime, || {
            Ok(py.detach(|| self.log_z_value(ais_temps, seed)))
        })
    }

    /// The mean negative log-likelihood E(x) + log Z of rows `x` (default: the run's test
    /// rows), in nats.
    #[pyo3(signature = (x=None, ais_temps=500, seed=0))]
    fn nll(
        &self,
        py: Python<'_>,
        x: Option<&Bound<'_, PyAny>>,
        ais_temps: usize,
        seed: u64,
    ) -> PyResult<f64> {
        let x = match x {
            Some(x) => self.input(x)?,
            None => self.data.test.clone(),
        };
        guard(PanicAs::Runtime, || {
            Ok(py.detach(|| nll(&self.density(), &x, self.log_z_value(ais_temps, seed))))
        })
    }
}
