//! Experiment 4: denoising score matching's noisy optimum and its gradient variance.
//!
//! DSM (Vincent 2011) matches the score of the noised data q_σ = p ∗ N(0, σ²I), not of p. On
//! Gaussian data N(μ, diag v) a diagonal-Gaussian energy reaches λⱼ = 1/(vⱼ + σ²), whose test
//! NLL on p is ½Σⱼ[log 2π(vⱼ + σ²) + vⱼ/(vⱼ + σ²)], above the entropy ½Σⱼ log 2πe vⱼ by
//! ½Σⱼ[log(1 + σ²/vⱼ) − σ²/(vⱼ + σ²)] = O(σ⁴). The first half fits that energy at several σ and
//! measures the test NLL against the closed form.
//!
//! As σ → 0 the per-sample loss ‖s(x + σz) + z/σ‖² carries terms of size 1/σ whose mean is
//! zero, so the variance of the parameter gradient grows as σ⁻²; the control variate of Wang
//! et al. (2020) subtracts them and keeps it bounded. The second half measures the variance
//! of the minibatch gradient of an MLP energy over many minibatches at each σ, with and
//! without the control variate, on the same minibatches and noise.

use super::common::{
    diagonal_gaussian, diagonal_gaussian_log_z, fast_adam, fit, geometric, log_log_slope,
};
use super::figure::{Chart, Figure, Legend, Panel, Scale, Series};
use super::{Budget, Measured};
use ebm_autodiff::Tape;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{param_grads, Mlp, MlpConfig, Module};
use ebm_objectives::DenoisingScoreMatching;
use serde::Serialize;

/// The data's mean and standard deviations.
const MU: [f64; 2] = [1.0, -0.5];
const SD: [f64; 2] = [0.5, 1.0];

/// The test NLL of the DSM optimum at noise σ, in nats: ½Σⱼ[log 2π(vⱼ + σ²) + vⱼ/(vⱼ + σ²)].
pub fn closed_form_nll(sigma: f64) -> f64 {
    SD.iter()
        .map(|s| {
            let (v, q) = (s * s, s * s + sigma * sigma);
            0.5 * ((std::f64::consts::TAU * q).ln() + v / q)
        })
        .sum()
}

/// The data entropy ½Σⱼ log 2πe vⱼ.
pub fn entropy() -> f64 {
    closed_form_nll(0.0)
}

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct Numbers {
    /// σ of the fits, smallest first.
    pub fit_sigma: Vec<f64>,
    /// Test NLL of each fit (nats), its test-sample SE, and the closed form.
    pub test_nll: Vec<f64>,
    /// Standard errors of the test NLLs over the test sample.
    pub test_nll_se: Vec<f64>,
    /// The closed-form test NLL of the DSM optimum at each σ.
    pub closed_form_nll: Vec<f64>,
    /// The SE of the NLL from the training sample's variance (delta method).
    pub fit_se: Vec<f64>,
    /// The data entropy (the NLL at σ = 0).
    pub entropy: f64,
    /// The fitted precisions λ₀, λ₁ and the DSM optimum 1/(v̂ⱼ + σ²) of the training data.
    pub fitted_precision: Vec<[f64; 2]>,
    /// The DSM optimum 1/(v̂ⱼ + σ²) of the training data.
    pub optimum_precision: Vec<[f64; 2]>,
    /// Training rows.
    pub train_rows: usize,
    /// σ of the variance measurements, largest first.
    pub var_sigma: Vec<f64>,
    /// tr Cov of the minibatch gradient, and its SE, for DSM and DSM with the control variate.
    pub dsm_variance: Vec<f64>,
    /// Standard errors of DSM's variances.
    pub dsm_variance_se: Vec<f64>,
    /// tr Cov of DSM-CV's minibatch gradient.
    pub cv_variance: Vec<f64>,
    /// Standard errors of DSM-CV's variances.
    pub cv_variance_se: Vec<f64>,
    /// Log-log slope (± SE) of DSM's variance against σ over σ ≤ 0.1 (theory: −2).
    pub dsm_slope: f64,
    /// The slope's standard error.
    pub dsm_slope_se: f64,
    /// max/min of the control-variate variance over σ ≤ 0.1.
    pub cv_spread: f64,
    /// Minibatches and rows per minibatch of the variance estimates.
    pub minibatches: usize,
    /// Rows per minibatch.
    pub batch: usize,
}

/// Fits the diagonal Gaussian by DSM at each σ; returns the NLL half of [`Numbers`].
fn fits(budget: Budget, rng: &mut Rng, n: &mut Numbers) {
    let (rows, steps) = budget.pick((4000, 600), (1000, 300));
    let test_rows = 20_000;
    let mu = Tensor::from_vec(MU.to_vec(), &[2]);
    let sd = Tensor::from_vec(SD.to_vec(), &[2]);
    let draw = |k: usize, rng: &mut Rng| rng.normal(&[k, 2], DType::F64).mul(&sd).add(&mu);
    let train = draw(rows, rng);
    let test = draw(test_rows, rng);
    let rn = rows as f64;
    let v_hat = train.col_var().mul_scalar((rn - 1.0) / rn).to_vec_f64();
    n.train_rows = rows;
    n.entropy = entropy();
    for &sigma in &n.fit_sigma.clone() {
        let mut model = diagonal_gaussian(2);
        let mut dsm = DenoisingScoreMatching::new(sigma);
        fit(
            &mut dsm,
            &mut model,
            steps,
            fast_adam(0.05),
            |_| train.clone(),
            rng,
        );
        let log_prec = model.params()["log_prec"].to_vec_f64();
        let log_z = diagonal_gaussian_log_z(&log_prec);
        let e = ebm_samplers::Target::energy(&ebm_objectives::ModelTarget::new(&model), &test);
        let (m, se) = super::common::mean_se(&e.to_vec_f64());
        n.test_nll.push(m + log_z);
        n.test_nll_se.push(se);
        n.closed_form_nll.push(closed_form_nll(sigma));
        let s2 = sigma * sigma;
        let fit_var: f64 = SD
            .iter()
            .map(|s| {
                let v = s * s;
                (0.5 * s2 * v / ((v + s2) * (v + s2))).powi(2) * 2.0 / rn
            })
            .sum();
        n.fit_se.push(fit_var.sqrt());
        n.fitted_precision
            .push([log_prec[0].exp(), log_prec[1].exp()]);
        n.optimum_precision
            .push([1.0 / (v_hat[0] + s2), 1.0 / (v_hat[1] + s2)]);
    }
}

/// tr Cov and its SE from per-minibatch gradients.
fn trace_cov(grads: &[Vec<f64>]) -> (f64, f64) {
    let r = grads.len() as f64;
    let p = grads[0].len();
    let mean: Vec<f64> = (0..p)
        .map(|j| grads.iter().map(|g| g[j]).sum::<f64>() / r)
        .collect();
    let dev: Vec<f64> = grads
        .iter()
        .map(|g| g.iter().zip(&mean).map(|(a, b)| (a - b) * (a - b)).sum())
        .collect();
    let (m, se) = super::common::mean_se(&dev);
    (m * r / (r - 1.0), se * r / (r - 1.0))
}

/// The gradient variance half of [`Numbers`].
fn variances(budget: Budget, rng: &mut Rng, n: &mut Numbers) {
    let (reps, batch) = budget.pick((256, 64), (96, 32));
    let model = Mlp::with_dtype(MlpConfig::new(&[2, 32, 32, 1]), rng, DType::F64);
    let mu = Tensor::from_vec(MU.to_vec(), &[2]);
    let sd = Tensor::from_vec(SD.to_vec(), &[2]);
    // the same minibatches and noise at every σ (common random numbers)
    let draws: Vec<(Tensor, Tensor)> = (0..reps)
        .map(|_| {
            let x = rng.normal(&[batch, 2], DType::F64).mul(&sd).add(&mu);
            (x, rng.normal(&[batch, 2], DType::F64))
        })
        .collect();
    let grad = |obj: &DenoisingScoreMatching, x: &Tensor, z: &Tensor| {
        let tape = Tape::new();
        let p = model.params().bind(&tape);
        let loss = obj.loss_with_noise(&tape, &model, &p, x, z);
        super::common::flatten(&param_grads(&loss, &p))
    };
    n.minibatches = reps;
    n.batch = batch;
    for &sigma in &n.var_sigma.clone() {
        let (dsm, cv) = (
            DenoisingScoreMatching::new(sigma),
            DenoisingScoreMatching::with_control_variate(sigma),
        );
        let g: Vec<Vec<f64>> = draws.iter().map(|(x, z)| grad(&dsm, x, z)).collect();
        let (v, se) = trace_cov(&g);
        n.dsm_variance.push(v);
        n.dsm_variance_se.push(se);
        let g: Vec<Vec<f64>> = draws.iter().map(|(x, z)| grad(&cv, x, z)).collect();
        let (v, se) = trace_cov(&g);
        n.cv_variance.push(v);
        n.cv_variance_se.push(se);
    }
    let small: Vec<usize> = (0..n.var_sigma.len())
        .filter(|&i| n.var_sigma[i] <= 0.1 + 1e-12)
        .collect();
    let pick = |v: &[f64]| small.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let (s, se) = log_log_slope(&pick(&n.var_sigma), &pick(&n.dsm_variance));
    n.dsm_slope = s;
    n.dsm_slope_se = se;
    let cv = pick(&n.cv_variance);
    let (lo, hi) = cv.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    n.cv_spread = hi / lo;
}

/// Measures both halves.
pub fn measure(budget: Budget, rng: &mut Rng) -> Numbers {
    let mut n = Numbers {
        fit_sigma: budget.pick(geometric(0.03, 3.0, 7), vec![0.03, 0.3, 3.0]),
        test_nll: Vec::new(),
        test_nll_se: Vec::new(),
        closed_form_nll: Vec::new(),
        fit_se: Vec::new(),
        entropy: 0.0,
        fitted_precision: Vec::new(),
        optimum_precision: Vec::new(),
        train_rows: 0,
        var_sigma: budget.pick(geometric(1.0, 1e-3, 7), vec![0.1, 0.01, 0.001]),
        dsm_variance: Vec::new(),
        dsm_variance_se: Vec::new(),
        cv_variance: Vec::new(),
        cv_variance_se: Vec::new(),
        dsm_slope: f64::NAN,
        dsm_slope_se: f64::NAN,
        cv_spread: f64::NAN,
        minibatches: 0,
        batch: 0,
    };
    fits(budget, rng, &mut n);
    variances(budget, rng, &mut n);
    n
}

impl Measured for Numbers {
    /// Each fit's test NLL is within 4 SE (test and training sampling) of the closed form, the
    /// largest σ costs more than 4 SE over the smallest, DSM's variance grows as σ^(−2 ± 0.3)
    /// and the control variate's stays within a factor 2 over σ ≤ 0.1.
    fn holds(&self) -> bool {
        let agree = (0..self.fit_sigma.len()).all(|i| {
            let se = self.test_nll_se[i].hypot(self.fit_se[i]);
            (self.test_nll[i] - self.closed_form_nll[i]).abs() < 4.0 * se
        });
        let k = self.fit_sigma.len() - 1;
        let worse = self.test_nll[k] - self.test_nll[0]
            > 4.0 * self.test_nll_se[k].hypot(self.test_nll_se[0]);
        agree && worse && (self.dsm_slope + 2.0).abs() < 0.3 && self.cv_spread < 2.0
    }

    /// The measured figures in a sentence.
    fn summary(&self) -> String {
        let (k, last) = (self.fit_sigma.len() - 1, self.var_sigma.len() - 1);
        let small = self
            .var_sigma
            .iter()
            .position(|&s| s <= 0.1 + 1e-12)
            .unwrap_or(0);
        format!(
            "test NLL {:.3} ± {:.3} at σ = {:.3} vs {:.3} ± {:.3} at σ = {:.3} (closed forms {:.3}, {:.3}; entropy {:.3}); from σ = {:.3} to {:.3} DSM's gradient variance grows {:.0}× (slope {:.2} ± {:.2}) while DSM-CV's stays within {:.2}×",
            self.test_nll[0], self.test_nll_se[0], self.fit_sigma[0],
            self.test_nll[k], self.test_nll_se[k], self.fit_sigma[k],
            self.closed_form_nll[0], self.closed_form_nll[k], self.entropy,
            self.var_sigma[small], self.var_sigma[last],
            self.dsm_variance[last] / self.dsm_variance[small],
            self.dsm_slope, self.dsm_slope_se, self.cv_spread
        )
    }

    /// Test NLL against σ with its closed form, and the gradient variances (log-log).
    fn figure(&self) -> Figure {
        let fine = geometric(self.fit_sigma[0], *self.fit_sigma.last().unwrap(), 60);
        let nll = Chart::new(
            "DSM fits q_σ: test NLL of a Gaussian fit on p_data",
            "noise σ",
            "test NLL (nats)",
        )
        .scales(Scale::Log, Scale::Linear)
        .legend(Legend::UpperLeft)
        .series(
            Series::new(
                "measured (± SE)",
                self.fit_sigma
                    .iter()
                    .copied()
                    .zip(self.test_nll.iter().copied())
                    .collect(),
                0,
            )
            .with_err(
                self.test_nll_se
                    .iter()
                    .zip(&self.fit_se)
                    .map(|(a, b)| a.hypot(*b))
                    .collect(),
            ),
        )
        .series(Series::reference(
            "closed form for the DSM optimum",
            fine.iter().map(|&s| (s, closed_form_nll(s))).collect(),
            1,
        ))
        .series(Series::reference(
            "data entropy",
            vec![
                (fine[0], self.entropy),
                (*fine.last().unwrap(), self.entropy),
            ],
            2,
        ));
        let pts = |v: &[f64]| -> Vec<(f64, f64)> {
            self.var_sigma
                .iter()
                .copied()
                .zip(v.iter().copied())
                .collect()
        };
        let last = self.var_sigma.len() - 1;
        let anchor = self.dsm_variance[last] * self.var_sigma[last].powi(2);
        let var = Chart::new(
            "minibatch gradient variance (2-32-32-1 MLP)",
            "noise σ",
            "tr Cov[∇θ loss]",
        )
        .scales(Scale::Log, Scale::Log)
        .legend(Legend::UpperRight)
        .series(
            Series::new("DSM", pts(&self.dsm_variance), 1).with_err(self.dsm_variance_se.clone()),
        )
        .series(
            Series::new("DSM with control variate", pts(&self.cv_variance), 0)
                .with_err(self.cv_variance_se.clone()),
        )
        .series(Series::reference(
            "∝ σ⁻²",
            self.var_sigma
                .iter()
                .map(|&s| (s, anchor / (s * s)))
                .collect(),
            6,
        ));
        let title = format!(
                "Denoising score matching: the noisy optimum ({} training rows) and the gradient variance ({} minibatches of {})",
                self.train_rows, self.minibatches, self.batch
            );
        Figure::new(
            title,
            vec![Panel::Chart(nll), Panel::Chart(var)],
            2,
            (580, 440),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_form_is_the_entropy_at_zero_noise_and_grows_as_sigma_to_the_fourth() {
        // ½Σ log 2πe vⱼ with v = (0.25, 1)
        let h = 0.5 * ((std::f64::consts::TAU * std::f64::consts::E).ln() * 2.0 + 0.25f64.ln());
        assert!((entropy() - h).abs() < 1e-12);
        // excess ≈ Σⱼ σ⁴/(4vⱼ²) for small σ
        let s: f64 = 1e-2;
        let excess = closed_form_nll(s) - entropy();
        let approx = s.powi(4) / 4.0 * (1.0 / 0.0625 + 1.0);
        assert!((excess / approx - 1.0).abs() < 1e-2, "{excess} vs {approx}");
    }

    #[test]
    fn dsm_fits_the_noised_data_and_only_the_control_variate_keeps_the_variance_flat() {
        let n = measure(Budget::Quick, &mut Rng::new(3));
        // σ = 0.1, 0.01, 0.001: DSM's variance grows ≥ 100× while DSM-CV's stays within 2×
        let growth = n.dsm_variance[2] / n.dsm_variance[0];
        assert!(growth >= 100.0, "DSM grows only {growth:.1}×");
        assert!(n.cv_spread <= 2.0, "DSM-CV spreads {:.2}×", n.cv_spread);
        for i in 0..n.fit_sigma.len() {
            let se = n.test_nll_se[i].hypot(n.fit_se[i]);
            let z = (n.test_nll[i] - n.closed_form_nll[i]) / se;
            assert!(
                z.abs() < 4.0,
                "σ = {}: NLL off the closed form by {z:.1} SE",
                n.fit_sigma[i]
            );
        }
        assert!(n.holds(), "{}", n.summary());
    }
}
