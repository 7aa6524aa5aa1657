//! Your own energy as a trainable model: named parameters and a closure `|x, p| -> Var`
//! become a [`CustomEnergy`], which every objective (through [`Model`](crate::Model)), the
//! sampler bridge and checkpoints take as they take an MLP. [`check_energy`] checks the first
//! and second derivatives of any energy in its input and its parameters, as exact and sliced
//! score matching differentiate through them.
//!
//! ```
//! use ebm_autodiff::{CheckOpts, Var};
//! use ebm_core::{DType, Rng};
//! use ebm_nn::{check_energy, CustomEnergy, EnergyModel, ParamVars};
//!
//! // E(x) = ‖x − μ‖² / (2σ²) per row, with μ and log σ learnable
//! let model = CustomEnergy::new(&[("mu", 0.5), ("log_sigma", 0.0)], |x: &Var, p: &ParamVars| {
//!     let inv_var = p["log_sigma"].mul_scalar(-2.0).exp();
//!     x.sub(&p["mu"]).square().sum(&[1], false).mul(&inv_var).mul_scalar(0.5)
//! })
//! .named("gaussian");
//! let x = Rng::new(0).normal(&[4, 3], DType::F64);
//! check_energy(&model, &x, &CheckOpts::default()).unwrap();
//! assert_eq!(model.energy(&x).shape(), &[4]);
//! assert_eq!(model.param("mu"), 0.5);
//! ```

use crate::model::{EnergyModel, Module};
use crate::params::{ParamVars, Params};
use ebm_autodiff::{gradgradcheck, CheckError, CheckOpts, Var};
use ebm_core::{DType, Tensor};
use std::fmt;

/// An energy E(x; θ) written as a closure over named parameters: `f(x, p)` maps a batch
/// `x` `[B, …]` to one energy per row `[B]`, reading the parameters bound on the tape by name
/// (`p["a"]`) or position (`p[0]`).
///
/// Its [`Module::config`] is `{"kind": "custom", "name": …, "params": [{"name", "shape"}…]}`,
/// so a checkpoint restores only into an energy of the same name and parameter shapes. The
/// closure must be `Send + Sync`: the sampler bridge evaluates row blocks in parallel.
#[derive(Clone)]
pub struct CustomEnergy<F> {
    name: String,
    params: Params,
    f: F,
}

impl<F> CustomEnergy<F>
where
    F: Fn(&Var, &ParamVars<'_>) -> Var + Send + Sync,
{
    /// An energy with scalar parameters `(name, initial value)`, stored as 0-d f64 tensors
    /// (see [`CustomEnergy::with_dtype`]); named `"custom"` until [`CustomEnergy::named`].
    pub fn new(params: &[(&str, f64)], energy: F) -> CustomEnergy<F> {
        let mut p = Params::new();
        for &(name, value) in params {
            p.push(name, Tensor::scalar(value, DType::F64));
        }
        CustomEnergy::from_params(p, energy)
    }

    /// An energy with parameters of any shape.
    pub fn from_params(params: Params, energy: F) -> CustomEnergy<F> {
        CustomEnergy {
            name: "custom".into(),
            params,
            f: energy,
        }
    }
}

impl<F> CustomEnergy<F> {
    /// Names the energy (recorded in its config, and so in checkpoints).
    pub fn named(mut self, name: impl Into<String>) -> CustomEnergy<F> {
        self.name = name.into();
        self
    }

    /// Converts every parameter to `dtype` (the data must then be of that dtype too).
    pub fn with_dtype(mut self, dtype: DType) -> CustomEnergy<F> {
        self.params.cast(dtype);
        self
    }

    /// The name given by [`CustomEnergy::named`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of the one-element parameter `name`; panics when there is none or it has
    /// several elements.
    pub fn param(&self, name: &str) -> f64 {
        self.params[name].item()
    }
}

impl<F> fmt::Debug for CustomEnergy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomEnergy")
            .field("name", &self.name)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl<F> Module for CustomEnergy<F> {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        let params: Vec<serde_json::Value> = self
            .params
            .iter()
            .map(|(n, t)| serde_json::json!({ "name": n, "shape": t.shape() }))
            .collect();
        serde_json::json!({ "kind": "custom", "name": self.name, "params": params })
    }
}

impl<F> EnergyModel for CustomEnergy<F>
where
    F: Fn(&Var, &ParamVars<'_>) -> Var + Send + Sync,
{
    /// `f(x, p)`; panics unless `x` has the parameters' dtype and the closure gives one
    /// energy per row of `x`.
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        if let Some(dtype) = p.first().map(Var::dtype) {
            assert!(
                x.dtype() == dtype,
                "CustomEnergy `{}`: the input is {} but the parameters are {dtype}; convert \
                 one (CustomEnergy::with_dtype, Tensor::cast)",
                self.name,
                x.dtype()
            );
        }
        let e = (self.f)(x, &self.params.named(p));
        let rows = x.shape().first().copied().unwrap_or(1);
        assert!(
            e.shape() == [rows],
            "CustomEnergy `{}`: the energy of input {:?} has shape {:?}; it must be one \
             energy per row, [{rows}] (sum over the other axes)",
            self.name,
            x.shape(),
            e.shape()
        );
        e
    }
}

/// Checks the first and second derivatives of `model`'s energy E(x; θ) at `x`, in the input
/// and every parameter jointly, against finite differences ([`gradgradcheck`]), in f64 (the
/// input and parameters are cast). Score matching differentiates ∇ₓE again, in x and θ, so a
/// hand-written op or a detached term shows up here first.
pub fn check_energy<M: EnergyModel + ?Sized>(
    model: &M,
    x: &Tensor,
    opts: &CheckOpts,
) -> Result<(), CheckError> {
    let mut inputs = vec![x.cast(DType::F64)];
    inputs.extend(model.params().tensors().iter().map(|t| t.cast(DType::F64)));
    gradgradcheck(|v| model.energy_var(&v[0], &v[1..]), &inputs, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{param_grads, Checkpoint, Model, Optimizer, Schedule};
    use ebm_autodiff::{GradOpts, Tape};
    use ebm_core::Rng;

    /// E(x) = ½‖(x − μ)/σ‖², σ = exp(log_sigma): a Gaussian with a closed-form score.
    fn gaussian(mu: f64, log_sigma: f64) -> CustomEnergy<impl Fn(&Var, &ParamVars) -> Var + Clone> {
        CustomEnergy::new(
            &[("mu", mu), ("log_sigma", log_sigma)],
            |x: &Var, p: &ParamVars| {
                let z = x.sub(&p["mu"]).mul(&p[1].neg().exp());
                z.square().sum(&[1], false).mul_scalar(0.5)
            },
        )
        .named("gaussian")
    }

    #[test]
    fn energy_and_score_are_the_closures() {
        let m = gaussian(1.0, 2f64.ln());
        let x = Tensor::from_vec(vec![1.0f64, 3.0, -1.0, 1.0], &[2, 2]);
        // rows (1, 3) and (−1, 1): ‖x − 1‖² = 4 and 4, over 2σ² = 8
        assert_eq!(m.energy(&x).to_vec_f64(), vec![0.5, 0.5]);
        // s = −(x − μ)/σ²
        let s = m.score(&x).to_vec_f64();
        let want = [0.0, -0.5, 0.5, 0.0];
        assert!(
            s.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15),
            "{s:?}"
        );
        assert_eq!(m.param("log_sigma"), 2f64.ln());
        check_energy(&m, &x, &CheckOpts::default()).unwrap();
    }

    #[test]
    fn parameter_gradients_reach_named_parameters() {
        // d/dμ of mean E over data at x̄ = μ is 0; d/dlog σ of ½‖x − μ‖²/σ² is −‖x − μ‖²/σ²
        let m = gaussian(0.0, 0.0);
        let x = Tensor::from_vec(vec![1.0f64, -1.0, -1.0, 1.0], &[2, 2]);
        let tape = Tape::new();
        let p = m.params().bind(&tape);
        let loss = m.energy_var(&tape.constant(x), &p).mean_all();
        let g = param_grads(&loss, &p);
        assert_eq!(g[0].item(), 0.0);
        assert_eq!(g[1].item(), -2.0);
        // and the score on the tape is differentiable in the parameters (DSM needs it)
        let tape = Tape::new();
        let p = m.params().bind(&tape);
        let xv = tape.var(Tensor::from_vec(vec![2.0f64, 0.0], &[1, 2]));
        let s = m.score_var(&xv, &p, GradOpts::create_graph());
        // s = −(x − μ)e^{−2 log σ}: ∂s₀/∂μ = 1 at log σ = 0
        let g = param_grads(&s.narrow(1, 0, 1).sum_all(), &p);
        assert_eq!(g[0].item(), 1.0);
    }

    #[test]
    fn config_names_the_energy_and_its_shapes() {
        let m = gaussian(0.0, 0.0);
        assert_eq!(
            m.config(),
            serde_json::json!({"kind": "custom", "name": "gaussian", "params": [
                {"name": "mu", "shape": []}, {"name": "log_sigma", "shape": []}]})
        );
        let f32_model = gaussian(0.0, 0.0).with_dtype(DType::F32);
        assert_eq!(f32_model.params().dtype(), Some(DType::F32));
        assert!(format!("{m:?}").contains("gaussian"));
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_another_energy() {
        let mut m = gaussian(0.25, -0.5);
        let opt = Optimizer::adam(0.1, m.params()).with_schedule(Schedule::Cosine {
            steps: 10,
            min_factor: 0.1,
        });
        let bytes = Checkpoint::new(&m).with_optimizer(&opt).to_bytes().unwrap();
        let ck = Checkpoint::from_bytes(&bytes).unwrap();
        let mut fresh = gaussian(0.0, 0.0);
        let mut opt2 = Optimizer::adam(0.1, fresh.params());
        ck.restore(&mut fresh, Some(&mut opt2), None).unwrap();
        assert!(fresh.params().bit_eq(m.params()));
        assert!(
            opt2.bit_eq(&opt),
            "the schedule comes back with the optimizer"
        );
        // same parameters, another name: refused
        let mut other = gaussian(0.0, 0.0).named("other");
        assert!(ck.restore(&mut other, None, None).is_err());
        m.params_mut().set(0, Tensor::scalar(3.0, DType::F64));
        assert_eq!(m.param("mu"), 3.0);
    }

    #[test]
    fn a_detached_term_fails_the_check() {
        // E = ½ a·x² with `a` cut from the tape: the parameter gradient is silently 0
        let broken = CustomEnergy::new(&[("a", 2.0)], |x: &Var, p: &ParamVars| {
            x.square()
                .mul(&p["a"].detach())
                .sum(&[1], false)
                .mul_scalar(0.5)
        });
        let x = Rng::new(1).normal(&[3, 2], DType::F64);
        let err = check_energy(&broken, &x, &CheckOpts::default()).unwrap_err();
        assert_eq!((err.order, err.input), (1, Some(1)));
    }

    #[test]
    #[should_panic(expected = "CustomEnergy `custom`: the energy of input [3, 2] has shape [3, 2]")]
    fn an_energy_per_element_panics() {
        let m = CustomEnergy::new(&[], |x: &Var, _: &ParamVars| x.square());
        m.energy(&Tensor::zeros(&[3, 2], DType::F64));
    }

    #[test]
    #[should_panic(
        expected = "CustomEnergy `gaussian`: the input is f32 but the parameters are f64"
    )]
    fn mixed_dtypes_panic_with_the_fix() {
        gaussian(0.0, 0.0).energy(&Tensor::zeros(&[2, 2], DType::F32));
    }

    #[test]
    fn closures_infer_and_models_cross_threads() {
        fn model_for_threads<M: Model + Send>(_: &M) {}
        let m = CustomEnergy::new(&[("k", 1.0)], |x, p| {
            x.square().mul(&p["k"]).sum(&[1], false)
        });
        model_for_threads(&m);
        let x = Tensor::ones(&[2, 2], DType::F64);
        let e = std::thread::scope(|s| s.spawn(|| m.energy(&x)).join().unwrap());
        assert_eq!(e.to_vec_f64(), vec![2.0, 2.0]);
    }
}
