//! Multi-scale DSM in closed form. For 1-d Gaussian data N(μ, s²) and x̃ = αx + σz, the
//! perturbed law is N(αμ, α²s² + σ²) with score −(x̃ − αμ)/(α²s² + σ²), and at that score the
//! σ²-weighted loss ½E‖σ·s(x̃) + z‖² equals ½·α²s²/(α²s² + σ²). A model that is exactly that
//! score (with learnable μ and log s²) must show this loss, averaged over the noise levels,
//! and zero expected gradient, for NCSN's geometric levels and the VE and VP SDEs.

use ebm_autodiff::{GradOpts, Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{param_grads, Model, ModelRef, Module, NoiseConditionalModel, Optimizer, Params};
use ebm_objectives::{train_step, MultiScaleDsm, NoiseSchedule, Objective, TrainStep};

/// The exact perturbed score of N(μ, s²) data, parameterised by μ and log s².
struct GaussianScore {
    params: Params,
    schedule: NoiseSchedule,
}

impl GaussianScore {
    fn new(mu: f64, var: f64, schedule: NoiseSchedule) -> Self {
        let mut params = Params::new();
        params.push("mu", Tensor::scalar(mu, DType::F64));
        params.push("log_var", Tensor::scalar(var.ln(), DType::F64));
        GaussianScore { params, schedule }
    }

    /// (α, σ) of a row's condition, written from the papers' formulas (not the library's).
    fn alpha_sigma(&self, c: f64) -> (f64, f64) {
        match self.schedule {
            NoiseSchedule::Geometric { .. } => (1.0, c),
            NoiseSchedule::Ve {
                sigma_min,
                sigma_max,
                ..
            } => (1.0, sigma_min * (sigma_max / sigma_min).powf(c)),
            NoiseSchedule::Vp {
                beta_min, beta_max, ..
            } => {
                let log_a = -0.25 * c * c * (beta_max - beta_min) - 0.5 * c * beta_min;
                (log_a.exp(), (1.0 - (2.0 * log_a).exp()).sqrt())
            }
        }
    }
}

impl Module for GaussianScore {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn config(&self) -> serde_json::Value {
        serde_json::json!({"kind": "gaussian_score"})
    }
}

impl Model for GaussianScore {
    fn view(&self) -> ModelRef<'_> {
        ModelRef::NoiseConditional(self)
    }
}

impl NoiseConditionalModel for GaussianScore {
    fn score_var(&self, x: &Var, cond: &Tensor, p: &[Var], _opts: GradOpts) -> Var {
        let (a, s): (Vec<f64>, Vec<f64>) = cond
            .to_vec_f64()
            .iter()
            .map(|&c| self.alpha_sigma(c))
            .unzip();
        let b = x.shape()[0];
        let a = Tensor::from_f64s(&a, &[b, 1], DType::F64);
        let s2 = Tensor::from_f64s(&s, &[b, 1], DType::F64).square();
        // −(x̃ − αμ)/(α² e^{log s²} + σ²)
        let var = p[1].exp().mul_const(&a.square()).add_const(&s2);
        x.sub(&p[0].mul_const(&a)).div(&var).neg()
    }
    fn energy_var(&self, _x: &Var, _cond: &Tensor, _p: &[Var]) -> Option<Var> {
        None
    }
}

/// E over the schedule's levels of ½α²s²/(α²s² + σ²), by the midpoint rule in t.
fn expected_loss(m: &GaussianScore, var: f64) -> f64 {
    let f = |c: f64| {
        let (a, s) = m.alpha_sigma(c);
        0.5 * a * a * var / (a * a * var + s * s)
    };
    match m.schedule {
        NoiseSchedule::Geometric { .. } => {
            let sig = m.schedule.sigmas();
            sig.iter().map(|&s| f(s)).sum::<f64>() / sig.len() as f64
        }
        NoiseSchedule::Ve { t_min, .. } | NoiseSchedule::Vp { t_min, .. } => {
            let n = 20_000;
            (0..n)
                .map(|i| f(t_min + (1.0 - t_min) * (i as f64 + 0.5) / n as f64))
                .sum::<f64>()
                / n as f64
        }
    }
}

/// NCSN's geometric levels, and the VE and VP SDEs.
fn schedules() -> [NoiseSchedule; 3] {
    [
        NoiseSchedule::Geometric {
            sigma_max: 3.0,
            sigma_min: 0.05,
            levels: 10,
        },
        NoiseSchedule::Ve {
            sigma_min: 0.01,
            sigma_max: 5.0,
            t_min: 1e-5,
        },
        NoiseSchedule::Vp {
            beta_min: 0.1,
            beta_max: 20.0,
            t_min: 1e-5,
        },
    ]
}

#[test]
fn multiscale_dsm_closed_form_for_every_schedule() {
    let (mu, var) = (0.7, 0.5);
    for schedule in schedules() {
        let model = GaussianScore::new(mu, var, schedule.clone());
        let mut obj = MultiScaleDsm {
            schedule: schedule.clone(),
        };
        let mut rng = Rng::new(1);
        let (batches, b) = (200, 512);
        let mut losses = Vec::new();
        let mut g_mu = Vec::new();
        let mut g_lv = Vec::new();
        for _ in 0..batches {
            let x = rng
                .normal(&[b, 1], DType::F64)
                .mul_scalar(var.sqrt())
                .add_scalar(mu);
            let tape = Tape::new();
            let p = model.params().bind(&tape);
            let loss = obj.loss(&tape, &model, &p, &[], &x, &mut rng);
            let g = param_grads(&loss, &p);
            losses.push(loss.item());
            g_mu.push(g[0].item());
            g_lv.push(g[1].item());
        }
        let stats = |v: &[f64]| {
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            (m, sd / n.sqrt())
        };
        let (l, lse) = stats(&losses);
        let want = expected_loss(&model, var);
        let (gm, gmse) = stats(&g_mu);
        let (gl, glse) = stats(&g_lv);
        eprintln!(
            "{}: loss {l:.5} ± {lse:.5} vs closed form {want:.5}; ∂/∂μ {gm:.1e} ± {gmse:.1e}, \
             ∂/∂log s² {gl:.1e} ± {glse:.1e}",
            obj.name()
        );
        assert!(
            (l - want).abs() < 4.0 * lse,
            "{}: loss off its closed form",
            obj.name()
        );
        assert!(
            gm.abs() < 4.0 * gmse && gl.abs() < 4.0 * glse,
            "{}: gradient at the truth",
            obj.name()
        );
    }
}

/// Through the one training step, from a wrong start, every schedule fits the data's own
/// moments: over the family of exact Gaussian perturbed scores, the minimiser of the expected
/// multi-scale DSM loss on a fixed data set is its mean x̄ and (1/n) variance S at every level
/// (each level's loss is a least-squares fit of the perturbed data's first two moments).
#[test]
fn multiscale_dsm_through_train_step_fits_the_sample_moments() {
    let n = 4096;
    let x = Rng::new(7)
        .normal(&[n, 1], DType::F64)
        .mul_scalar(0.5f64.sqrt())
        .add_scalar(0.7);
    let v = x.to_vec_f64();
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    for schedule in schedules() {
        let mut model = GaussianScore::new(-1.0, 2.0, schedule.clone());
        let mut obj = MultiScaleDsm { schedule };
        let steps = 600;
        let mut step = TrainStep::new(Optimizer::adam(0.05, model.params()));
        let mut rng = Rng::new(3);
        for k in 0..steps {
            let frac = k as f64 / steps as f64;
            let lr = 0.05 * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()));
            step.optimizer.set_lr(lr);
            let loss = train_step(&mut obj, &mut model, &mut step, &x, &mut rng);
            assert!(loss.is_finite());
        }
        let mu_fit = model.params().get(0).item();
        let var_fit = model.params().get(1).item().exp();
        // the data's own standard errors, √(S/n) for x̄ and S·√(2/n) for S, bound what the
        // optimiser's last noisy steps may leave
        let (se_mu, se_var) = ((var / n as f64).sqrt(), var * (2.0 / n as f64).sqrt());
        eprintln!(
            "{} via train_step: μ {mu_fit:.4} (x̄ {mean:.4}, se {se_mu:.4}), \
             s² {var_fit:.4} (S {var:.4}, se {se_var:.4})",
            obj.name()
        );
        assert!((mu_fit - mean).abs() < se_mu, "{}: μ", obj.name());
        assert!((var_fit - var).abs() < se_var, "{}: s²", obj.name());
    }
}
