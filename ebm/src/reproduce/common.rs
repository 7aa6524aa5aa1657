//! What the experiments share: means with standard errors, log-log slopes, vectors of
//! parameter gradients, a diagonal-Gaussian energy and a training loop.

use ebm_autodiff::Var;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{
    AdamConfig, CustomEnergy, Model, Optimizer, OptimizerConfig, ParamVars, Params, Schedule,
};
use ebm_objectives::{train_step, Objective, TrainStep};

/// Mean and standard error s/√n of `v` (SE 0 for fewer than two values).
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// The least-squares slope of `y` on `x` and its standard error (weights `w`, e.g. 1/SE²;
/// the SE is from the weights when `from_weights`, else from the residuals).
pub fn slope(x: &[f64], y: &[f64], w: &[f64], from_weights: bool) -> (f64, f64) {
    assert!(x.len() == y.len() && y.len() == w.len() && x.len() >= 2);
    let sw: f64 = w.iter().sum();
    let mx = x.iter().zip(w).map(|(a, w)| a * w).sum::<f64>() / sw;
    let my = y.iter().zip(w).map(|(a, w)| a * w).sum::<f64>() / sw;
    let sxx: f64 = x.iter().zip(w).map(|(a, w)| w * (a - mx).powi(2)).sum();
    let sxy: f64 = x
        .iter()
        .zip(y)
        .zip(w)
        .map(|((a, b), w)| w * (a - mx) * (b - my))
        .sum();
    let b = sxy / sxx;
    let se = if from_weights {
        (1.0 / sxx).sqrt()
    } else {
        let n = x.len() as f64;
        let rss: f64 = x
            .iter()
            .zip(y)
            .zip(w)
            .map(|((a, c), w)| w * (c - my - b * (a - mx)).powi(2))
            .sum();
        (rss / (n - 2.0).max(1.0) / sxx).sqrt()
    };
    (b, se)
}

/// The slope of log y on log x (natural logs; unweighted, SE from the residuals).
pub fn log_log_slope(x: &[f64], y: &[f64]) -> (f64, f64) {
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    slope(&lx, &ly, &vec![1.0; x.len()], false)
}

/// `n` values from `hi` down to `lo`, evenly spaced in log.
pub fn geometric(hi: f64, lo: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| hi * (lo / hi).powf(i as f64 / (n.max(2) - 1) as f64))
        .collect()
}

/// Every element of `tensors`, in order, as one vector.
pub fn flatten(tensors: &[Tensor]) -> Vec<f64> {
    tensors.iter().flat_map(|t| t.to_vec_f64()).collect()
}

/// ‖a − b‖ / ‖b‖.
pub fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

/// E(x) = ½ Σⱼ λⱼ (xⱼ − μⱼ)², λⱼ = exp(log_precⱼ), in `dim` dimensions (f64), starting at
/// μ = 0, λ = 1.
pub fn diagonal_gaussian(
    dim: usize,
) -> CustomEnergy<impl Fn(&Var, &ParamVars) -> Var + Send + Sync + Clone> {
    let mut params = Params::new();
    params.push("mu", Tensor::zeros(&[dim], DType::F64));
    params.push("log_prec", Tensor::zeros(&[dim], DType::F64));
    CustomEnergy::from_params(params, |x: &Var, p: &ParamVars| {
        let r = x.sub(&p["mu"]).square().mul(&p["log_prec"].exp());
        r.sum(&[1], false).mul_scalar(0.5)
    })
    .named("diagonal_gaussian")
}

/// log Z = Σⱼ ½ log(2π/λⱼ) of a [`diagonal_gaussian`] with log-precisions `log_prec`.
pub fn diagonal_gaussian_log_z(log_prec: &[f64]) -> f64 {
    log_prec
        .iter()
        .map(|l| 0.5 * (std::f64::consts::TAU.ln() - l))
        .sum()
}

/// `steps` steps of `objective` by Adam (`adam`) with a cosine schedule down to 1% (the
/// objective's own parameters, such as NCE's log Z, get the same), each on the batch `batch`
/// draws; returns the losses.
pub fn fit(
    objective: &mut dyn Objective,
    model: &mut dyn Model,
    steps: u64,
    adam: AdamConfig,
    mut batch: impl FnMut(&mut Rng) -> Tensor,
    rng: &mut Rng,
) -> Vec<f64> {
    let make = |p: &Params| {
        Optimizer::new(OptimizerConfig::Adam(adam), p).with_schedule(Schedule::cosine(steps, 0.01))
    };
    let mut step = TrainStep::new(make(model.params()));
    if let Some(q) = objective.params() {
        step = step.with_objective_optimizer(make(q));
    }
    (0..steps)
        .map(|_| {
            let x = batch(rng);
            train_step(objective, model, &mut step, &x, rng)
        })
        .collect()
}

/// Adam at `lr` whose second moment forgets in about ten steps (β₂ = 0.9): a model of a few
/// parameters whose gradients shrink by orders of magnitude on the way keeps moving.
pub fn fast_adam(lr: f64) -> AdamConfig {
    AdamConfig {
        beta2: 0.9,
        ..AdamConfig::new(lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_slopes_and_grids_are_right_on_known_cases() {
        let (m, se) = mean_se(&[1.0, 2.0, 3.0, 4.0]);
        // s² = 5/3, SE = √(5/12)
        assert!((m - 2.5).abs() < 1e-15 && (se - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
        let x = [1.0, 2.0, 4.0, 8.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| 3.0 * v * v).collect();
        let (b, se) = log_log_slope(&x, &y);
        assert!((b - 2.0).abs() < 1e-12 && se < 1e-12, "{b} {se}");
        let g = geometric(1.0, 1e-3, 4);
        assert!((g[1] - 0.1).abs() < 1e-15 && (g[3] - 1e-3).abs() < 1e-15);
        assert!((relative_error(&[1.0, 1.0], &[1.0, 0.0]) - 1.0).abs() < 1e-15);
        // a weighted fit ignores a point of zero weight
        let (b, _) = slope(&[0.0, 1.0, 2.0], &[0.0, 1.0, 9.0], &[1.0, 1.0, 0.0], true);
        assert!((b - 1.0).abs() < 1e-12);
    }
}
