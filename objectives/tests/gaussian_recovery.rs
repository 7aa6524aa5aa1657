//! Known answers on Gaussian data: minimum probability flow, minimum velocity learning,
//! kernel Stein discrepancy training, learned Stein discrepancy and energy discrepancy each fit
//! the quadratic energy ½(x − μ)ᵀA(x − μ) to draws of N(μ*, A*⁻¹), and recover μ* and A* to
//! a tolerance that shrinks as 1/√n, shown at two sample sizes.
//!
//! The tolerance is derived from maximum likelihood's standard errors: the ML precision
//! Â = S⁻¹ has Cov(Â_ij, Â_kl) = (A_ik A_jl + A_il A_jk)/n, so E‖Â − A‖²_F =
//! ((tr A)² + ‖A‖²_F)/n, and the ML mean has E‖x̄ − μ‖² = tr(A⁻¹)/n. A method is allowed 4κ
//! times ML's root-mean-square error, where κ ≥ 1 (stated per method) allows for the lower
//! statistical efficiency of an estimator that is not ML; every training run here also
//! converges its optimiser well inside that.

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{Module, Optimizer, Quadratic};
use ebm_objectives::{
    train_step, EnergyDiscrepancy, KernelSteinDiscrepancy, LearnedStein, LsdOptions,
    MinimumProbabilityFlow, MinimumVelocity, Objective, Projection, TrainStep,
};
use ebm_samplers::analytic::cholesky;

const D: usize = 2;
const MU: [f64; D] = [0.5, -1.0];
/// The true precision A* = [[2, 0.6], [0.6, 1]].
const PREC: [f64; D * D] = [2.0, 0.6, 0.6, 1.0];

fn truth() -> Quadratic {
    let l = cholesky(&PREC, D).expect("a positive-definite precision");
    Quadratic::new(
        Tensor::from_f64s(&MU, &[D], DType::F64),
        Tensor::from_f64s(&l, &[D, D], DType::F64),
    )
}

/// Root-mean-square errors of the ML fit from n draws: (‖Â − A‖_F/‖A‖_F, ‖x̄ − μ‖).
fn ml_rms(n: usize) -> (f64, f64) {
    let tr: f64 = (0..D).map(|i| PREC[i * D + i]).sum();
    let frob2: f64 = PREC.iter().map(|a| a * a).sum();
    let det = PREC[0] * PREC[3] - PREC[1] * PREC[2];
    let tr_cov = (PREC[0] + PREC[3]) / det; // tr A⁻¹ for a 2×2 matrix
    (
        ((tr * tr + frob2) / n as f64).sqrt() / frob2.sqrt(),
        (tr_cov / n as f64).sqrt(),
    )
}

/// How a fit runs: steps, peak Adam rate (cosine-decayed to 2%), minibatch rows (None: the
/// whole data set every step), and the critic's rate for objectives with parameters.
#[derive(Clone, Copy)]
struct Fit {
    steps: usize,
    lr: f64,
    batch: Option<usize>,
    objective_lr: f64,
}

/// Trains a quadratic energy from N(0, I) on `x` through the one training step.
fn fit(objective: &mut dyn Objective, x: &Tensor, how: Fit, seed: u64) -> Quadratic {
    let mut model = Quadratic::standard(D, DType::F64);
    let mut step = TrainStep::new(Optimizer::adam(how.lr, model.params()));
    if let Some(q) = objective.params() {
        step = step.with_objective_optimizer(Optimizer::adam(how.objective_lr, q));
    }
    let mut rng = Rng::new(seed);
    let n = x.shape()[0];
    let mut order: Vec<usize> = Vec::new();
    for k in 0..how.steps {
        let f =
            0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / how.steps as f64).cos());
        step.optimizer.set_lr(how.lr * f);
        if let Some(o) = step.objective_optimizer.as_mut() {
            o.set_lr(how.objective_lr * f);
        }
        let xb = match how.batch {
            None => x.clone(),
            Some(b) => {
                // minibatches without replacement, reshuffled every epoch
                if order.len() < b {
                    order = rng.permutation(n);
                }
                let idx: Vec<usize> = order.drain(..b).collect();
                x.index_select(&idx)
            }
        };
        let loss = train_step(objective, &mut model, &mut step, &xb, &mut rng);
        assert!(loss.is_finite(), "step {k}: loss {loss}");
    }
    model
}

/// (relative precision error, mean error) of a fitted model against the truth.
fn errors(model: &Quadratic) -> (f64, f64) {
    let a = model.precision().to_vec_f64();
    let num: f64 = a.iter().zip(&PREC).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = PREC.iter().map(|y| y * y).sum();
    let mu = model.mu().to_vec_f64();
    let mu_err: f64 = mu.iter().zip(&MU).map(|(x, y)| (x - y).powi(2)).sum();
    ((num / den).sqrt(), mu_err.sqrt())
}

/// Fits `make()` at a small and a large sample size and checks both errors against
/// 4κ × ML's RMS error at that n.
fn recovers(
    name: &str,
    make: &dyn Fn() -> Box<dyn Objective>,
    sizes: [usize; 2],
    how: Fit,
    kappa: f64,
) {
    for (i, &n) in sizes.iter().enumerate() {
        let x = truth().sample(n, &mut Rng::new(100 + i as u64));
        let model = fit(make().as_mut(), &x, how, 7);
        let (a_err, mu_err) = errors(&model);
        let (a_rms, mu_rms) = ml_rms(n);
        let (a_tol, mu_tol) = (4.0 * kappa * a_rms, 4.0 * kappa * mu_rms);
        eprintln!(
            "{name} n={n}: ‖A − A*‖/‖A*‖ = {a_err:.4} (tolerance {a_tol:.4}); ‖μ − μ*‖ = {mu_err:.4} (tolerance {mu_tol:.4})"
        );
        assert!(
            a_err < a_tol,
            "{name} n={n}: precision error {a_err} ≥ {a_tol}"
        );
        assert!(
            mu_err < mu_tol,
            "{name} n={n}: mean error {mu_err} ≥ {mu_tol}"
        );
    }
}

const FULL_BATCH: Fit = Fit {
    steps: 600,
    lr: 0.05,
    batch: None,
    objective_lr: 0.0,
};

#[test]
fn minimum_probability_flow_recovers_a_gaussian() {
    // consistent at any σ (symmetric proposal); less efficient than ML: κ = 2
    recovers(
        "MPF",
        &|| Box::new(MinimumProbabilityFlow::default()),
        [1_000, 16_000],
        FULL_BATCH,
        2.0,
    );
}

#[test]
fn minimum_velocity_recovers_a_gaussian() {
    // the score-matching (= ML for Gaussians) answer up to O(η) = 1e-3: κ = 1
    recovers(
        "MVL",
        &|| Box::new(MinimumVelocity::default()),
        [1_000, 16_000],
        FULL_BATCH,
        1.0,
    );
}

#[test]
fn kernel_stein_discrepancy_recovers_a_gaussian() {
    // the minimiser of the data set's U-statistic, reached by minibatches of 256: κ = 2
    recovers(
        "KSD",
        &|| Box::new(KernelSteinDiscrepancy::default()),
        [1_000, 16_000],
        Fit {
            steps: 1000,
            lr: 0.05,
            batch: Some(256),
            objective_lr: 0.0,
        },
        2.0,
    );
}

#[test]
fn learned_stein_discrepancy_recovers_a_gaussian() {
    // with a linear critic the learned discrepancy is the Fisher divergence over affine
    // witnesses, exact for Gaussians: the score-matching (= ML) answer, κ = 1
    let make = || -> Box<dyn Objective> {
        let options = LsdOptions {
            critic_hidden: vec![],
            projection: Projection::Rademacher,
            ..LsdOptions::default()
        };
        Box::new(LearnedStein::new(D, options, &mut Rng::new(3), DType::F64))
    };
    recovers(
        "LSD",
        &make,
        [1_000, 16_000],
        Fit {
            steps: 1000,
            lr: 0.02,
            batch: None,
            objective_lr: 0.2,
        },
        1.0,
    );
}

#[test]
fn energy_discrepancy_recovers_a_gaussian() {
    // consistent as M → ∞; with M = 32 contrasts the log-average's bias is small: κ = 2
    recovers(
        "ED",
        &|| Box::new(EnergyDiscrepancy::default()),
        [1_000, 16_000],
        Fit {
            steps: 800,
            lr: 0.05,
            batch: Some(1000),
            objective_lr: 0.0,
        },
        2.0,
    );
}
