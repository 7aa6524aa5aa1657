//! Experiment 7: conditional NCE becomes score matching as its perturbation shrinks.
//!
//! Conditional NCE (Ceylan & Gutmann 2018) contrasts each data point x with y = x ± εz. With
//! u = E(x) − E(x ± εz) and softplus(u) = log 2 + u/2 + u²/8 + O(u⁴), an antithetic pair
//! averages to log 2 + (ε²/4)[½(zᵀ∇E)² − zᵀ∇²E z] + O(ε⁴): the sliced score-matching term
//! with probe z. So (4/ε²)∇θJ_CNCE(ε, z) = ∇θJ_SSM(z) + O(ε²), and in expectation over z the
//! exact score-matching gradient (Hyvärinen 2005).
//!
//! The experiment fixes an MLP energy (f64) and a batch of 8-Gaussians and measures the
//! relative distance of the rescaled CNCE gradient from the exact SM gradient, with two kinds
//! of noise directions: the axis directions ±√d·eᵢ of
//! [`ConditionalNce::axis_directions`], over which the sliced term averages to the SM loss
//! exactly (so the distance is the O(ε²) remainder alone: a log-log slope of 2, as the
//! library's test `cnce_sm_limit` checks), and Gaussian probes, whose distance levels off at
//! their own Monte Carlo error, that of sliced SM with the same probes.

use super::common::{flatten, geometric, log_log_slope, relative_error};
use super::figure::{Chart, Figure, Legend, Panel, Scale, Series};
use super::{Budget, Measured};
use ebm_autodiff::{Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_data::Toy;
use ebm_nn::{param_grads, Mlp, MlpConfig, Module};
use ebm_objectives::{ConditionalNce, ExactScoreMatching, Objective, SlicedScoreMatching};
use serde::Serialize;

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct Numbers {
    /// The perturbation sizes ε, largest first.
    pub eps: Vec<f64>,
    /// ‖(4/ε²)∇J_CNCE − ∇J_SM‖/‖∇J_SM‖ with the axis directions.
    pub grad_error_axes: Vec<f64>,
    /// The same with Gaussian probes.
    pub grad_error_gaussian: Vec<f64>,
    /// (4/ε²)(J_CNCE − log 2) with the axis directions.
    pub rescaled_loss: Vec<f64>,
    /// J_SM.
    pub exact_loss: f64,
    /// ‖∇J_SSM − ∇J_SM‖/‖∇J_SM‖ for sliced SM with the Gaussian probes: their Monte Carlo
    /// error.
    pub probe_error: f64,
    /// Log-log slope (± SE) of the axis-direction error against ε, over ε ≤ 0.1.
    pub slope: f64,
    /// The slope's standard error.
    pub slope_se: f64,
    /// Batch rows and Gaussian probes per row.
    pub rows: usize,
    /// Gaussian probes per row.
    pub probes_per_row: usize,
}

/// The loss and its parameter gradient for one objective on a fresh tape.
fn loss_and_grad(model: &Mlp, f: impl Fn(&Tape, &[Var]) -> Var) -> (f64, Vec<f64>) {
    let tape = Tape::new();
    let p = model.params().bind(&tape);
    let loss = f(&tape, &p);
    (loss.item(), flatten(&param_grads(&loss, &p)))
}

/// Measures the gradients at every ε.
pub fn measure(budget: Budget, rng: &mut Rng) -> Numbers {
    let rows = budget.pick(512, 64);
    let kappa = budget.pick(16, 2);
    let eps = geometric(1.0, 1e-3, budget.pick(10, 4));
    let model = Mlp::with_dtype(MlpConfig::new(&[2, 32, 32, 1]), rng, DType::F64);
    let x = Toy::EightGaussians.sample(rows, rng).cast(DType::F64);
    let axes = ConditionalNce::axis_directions(rows, 2, DType::F64);
    let z = rng.normal(&[rows, kappa, 2], DType::F64);
    // sliced SM with the same probes: projection m of row b is z[b, m]
    let v: Vec<Tensor> = (0..kappa)
        .map(|m| z.narrow(1, m, 1).reshape(&[rows, 2]))
        .collect();
    let ssm = SlicedScoreMatching::default();
    let (_, g_ssm) = loss_and_grad(&model, |t, p| {
        ssm.loss_with_projections(t, &model, p, &x, &v)
    });
    let (exact_loss, g_esm) = loss_and_grad(&model, |t, p| {
        ExactScoreMatching.loss(t, &model, p, &[], &x, &mut Rng::new(0))
    });
    let mut n = Numbers {
        eps: eps.clone(),
        grad_error_axes: Vec::new(),
        grad_error_gaussian: Vec::new(),
        rescaled_loss: Vec::new(),
        exact_loss,
        probe_error: relative_error(&g_ssm, &g_esm),
        slope: f64::NAN,
        slope_se: f64::NAN,
        rows,
        probes_per_row: kappa,
    };
    for &e in &eps {
        let scale = 4.0 / (e * e);
        let rescaled = |noise: &Tensor| {
            let cnce = ConditionalNce {
                epsilon: e,
                noise_per_point: noise.shape()[1],
                antithetic: true,
            };
            let (l, g) =
                loss_and_grad(&model, |t, p| cnce.loss_with_noise(t, &model, p, &x, noise));
            let g: Vec<f64> = g.iter().map(|v| v * scale).collect();
            (
                scale * (l - std::f64::consts::LN_2),
                relative_error(&g, &g_esm),
            )
        };
        let (loss, err) = rescaled(&axes);
        n.rescaled_loss.push(loss);
        n.grad_error_axes.push(err);
        n.grad_error_gaussian.push(rescaled(&z).1);
    }
    let small: Vec<usize> = (0..eps.len()).filter(|&i| eps[i] <= 0.1 + 1e-12).collect();
    let pick = |v: &[f64]| small.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let (s, se) = log_log_slope(&pick(&eps), &pick(&n.grad_error_axes));
    n.slope = s;
    n.slope_se = se;
    n
}

impl Measured for Numbers {
    /// The O(ε²) law holds: slope within 0.2 of 2, at the smallest ε the rescaled CNCE
    /// gradient with the axis directions is the SM gradient to 10⁻⁴, and with Gaussian
    /// probes it is within twice their own Monte Carlo error.
    fn holds(&self) -> bool {
        let last = self.eps.len() - 1;
        (self.slope - 2.0).abs() < 0.2
            && self.grad_error_axes[last] < 1e-4
            && self.grad_error_gaussian[last] < 2.0 * self.probe_error.max(1e-12)
    }

    /// The measured figures in a sentence.
    fn summary(&self) -> String {
        let last = self.eps.len() - 1;
        format!(
            "with the axis directions ‖(4/ε²)∇J_CNCE − ∇J_SM‖/‖∇J_SM‖ falls as ε^{:.2} (± {:.2}) to {:.1e} at ε = {}; with {} Gaussian probes per row it levels off at {:.3}, their own Monte Carlo error ({:.3})",
            self.slope,
            self.slope_se,
            self.grad_error_axes[last],
            self.eps[last],
            self.probes_per_row,
            self.grad_error_gaussian[last],
            self.probe_error
        )
    }

    /// The gradient distances against ε (log-log), and the rescaled losses.
    fn figure(&self) -> Figure {
        let pts = |v: &[f64]| self.eps.iter().copied().zip(v.iter().copied()).collect();
        let i = self.eps.iter().position(|&e| e <= 0.1 + 1e-12).unwrap_or(0);
        let c = self.grad_error_axes[i] / (self.eps[i] * self.eps[i]);
        let theory: Vec<(f64, f64)> = self.eps.iter().map(|&e| (e, c * e * e)).collect();
        let grads = Chart::new(
            "gradient: (4/ε²)∇J_CNCE against score matching's",
            "perturbation ε",
            "relative distance",
        )
        .scales(Scale::Log, Scale::Log)
        .legend(Legend::LowerRight)
        .series(Series::new(
            "axis directions ±√d·eᵢ",
            pts(&self.grad_error_axes),
            0,
        ))
        .series(Series::new(
            "Gaussian probes",
            pts(&self.grad_error_gaussian),
            1,
        ))
        .series(Series::reference("∝ ε²", theory, 6))
        .series(Series::reference(
            "probes' Monte Carlo error",
            self.eps.iter().map(|&e| (e, self.probe_error)).collect(),
            3,
        ));
        let flat = |v: f64| self.eps.iter().map(|&e| (e, v)).collect();
        let losses = Chart::new(
            "loss: (4/ε²)(J_CNCE − log 2) → J_SM",
            "perturbation ε",
            "loss",
        )
        .scales(Scale::Log, Scale::Linear)
        .legend(Legend::UpperRight)
        .series(Series::new(
            "CNCE (axis directions), rescaled",
            pts(&self.rescaled_loss),
            0,
        ))
        .series(Series::reference("exact SM", flat(self.exact_loss), 2));
        let title = format!(
                "Conditional NCE → score matching (2-32-32-1 MLP, {} rows of 8-Gaussians, {} antithetic Gaussian probes each)",
                self.rows, self.probes_per_row
            );
        Figure::new(
            title,
            vec![Panel::Chart(grads), Panel::Chart(losses)],
            2,
            (560, 430),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rescaled_cnce_gradient_approaches_score_matching_as_eps_squared() {
        let n = measure(Budget::Quick, &mut Rng::new(7));
        // ε = 1, 0.1, 0.01, 0.001: each tenfold step divides the error by ~100
        for i in 1..3 {
            let ratio = n.grad_error_axes[i] / n.grad_error_axes[i + 1];
            assert!(
                (70.0..140.0).contains(&ratio),
                "ratio {ratio} at ε = {}",
                n.eps[i]
            );
        }
        assert!(n.holds(), "{}", n.summary());
        // the rescaled loss converges too, to the score-matching loss
        let last = n.eps.len() - 1;
        let gap = (n.rescaled_loss[last] - n.exact_loss).abs();
        assert!(gap < 1e-4 * n.exact_loss.abs().max(1.0), "loss gap {gap}");
    }
}
