//! One custom energy fitted by each score-matching objective and by NCE, each against what it
//! provably recovers. The energy is a diagonal Gaussian with learnable mean and log-precision,
//!   E(x) = ½ Σⱼ λⱼ (xⱼ − μⱼ)²,  λⱼ = exp(log_precⱼ),
//! and the data n = 4000 draws of N((1, −0.5), diag(0.25, 4)). With x̄ and v̂ the data's column
//! mean and variance (divisor n), the minimisers of the losses over this data set are:
//! - exact and sliced score matching: μ = x̄, λ = 1/v̂ (for a Gaussian, score matching is
//!   maximum likelihood; Hyvärinen 2005), sliced in expectation over its projections;
//! - denoising score matching at σ: μ = x̄, λ = 1/(v̂ + σ²), the precision of the noised data
//!   (Vincent 2011);
//! - NCE with ν noise draws per data point: consistent for μ and λ, with an asymptotic variance
//!   (1 + 1/ν) times maximum likelihood's when the noise is the data's law (Gutmann & Hyvärinen
//!   2012), and log Z = Σⱼ ½ log(2π/λⱼ) of its own fit.
//!
//! Tolerances: the sampling error of x̄ⱼ is sⱼ/√n and that of log v̂ⱼ is √(2/n) (the SEs of
//! maximum likelihood). Exact score matching is deterministic here, so it must reach its
//! minimiser to 10⁻⁴; sliced and denoising score matching draw fresh projections or noise at
//! every step, and must land within one data SE of their minimiser; NCE within 4 of its SEs of
//! the truth.
use ebm::prelude::*;

const N: usize = 4000;
const MU: [f64; 2] = [1.0, -0.5];
const SD: [f64; 2] = [0.5, 2.0];
const SIGMA: f64 = 0.5;
const NU: f64 = 4.0;
const STEPS: u64 = 600;

/// The energy, both parameters `[2]` vectors starting at 0 (μ = 0, λ = 1).
fn diagonal_gaussian() -> CustomEnergy<impl Fn(&Var, &ParamVars) -> Var + Send + Sync> {
    let mut params = Params::new();
    params.push("mu", Tensor::zeros(&[2], DType::F64));
    params.push("log_prec", Tensor::zeros(&[2], DType::F64));
    CustomEnergy::from_params(params, |x: &Var, p: &ParamVars| {
        let r = x.sub(&p["mu"]).square().mul(&p["log_prec"].exp());
        r.sum(&[1], false).mul_scalar(0.5)
    })
    .named("diagonal_gaussian")
}

/// `STEPS` full-batch steps of Adam with a cosine schedule (the objective's own parameters, NCE's
/// log Z, get the same).
fn fit(objective: &mut dyn Objective, model: &mut dyn Model, data: &Tensor, rng: &mut Rng) {
    let adam = |p: &Params| Optimizer::adam(0.05, p).with_schedule(Schedule::cosine(STEPS, 0.01));
    let mut step = TrainStep::new(adam(model.params()));
    if let Some(q) = objective.params() {
        step = step.with_objective_optimizer(adam(q));
    }
    for _ in 0..STEPS {
        let loss = train_step(objective, model, &mut step, data, rng);
        assert!(loss.is_finite(), "{} diverged", objective.name());
    }
}

/// The fitted (μ, log λ) as one vector.
fn fitted(model: &dyn Model) -> Vec<f64> {
    let p = model.params();
    [p["mu"].to_vec_f64(), p["log_prec"].to_vec_f64()].concat()
}

pub(crate) fn main() {
    let mut rng = Rng::new(7);
    let (mu, sd) = (
        Tensor::from_vec(MU.to_vec(), &[2]),
        Tensor::from_vec(SD.to_vec(), &[2]),
    );
    let data = rng.normal(&[N, 2], DType::F64).mul(&sd).add(&mu);
    let n = N as f64;
    let (mean, v) = (
        data.col_mean().to_vec_f64(),
        data.col_var().mul_scalar((n - 1.0) / n),
    );
    // (μ, log λ): the minimiser over this data set (σ² added for DSM), the truth, the data SEs
    let target = |s2: f64| [mean.clone(), v.add_scalar(s2).log().neg().to_vec_f64()].concat();
    let truth = [MU.to_vec(), SD.iter().map(|s| -2.0 * s.ln()).collect()].concat();
    let se = [SD.map(|s| s / n.sqrt()).to_vec(), vec![(2.0 / n).sqrt(); 2]].concat();
    let names = ["μ₀", "μ₁", "log λ₀", "log λ₁"];

    let nce = Nce::new(NoiseDistribution::fitted(&data, 1.0), NU, 0.0, DType::F64);
    let cases: Vec<(Box<dyn Objective>, Vec<f64>, f64)> = vec![
        (Box::new(ExactScoreMatching), target(0.0), 1e-4),
        (Box::new(SlicedScoreMatching::default()), target(0.0), 1.0),
        (
            Box::new(DenoisingScoreMatching::new(SIGMA)),
            target(SIGMA * SIGMA),
            1.0,
        ),
        (Box::new(nce), truth.clone(), 4.0 * (1.0 + 1.0 / NU).sqrt()),
    ];
    for (mut objective, want, tol) in cases {
        let mut model = diagonal_gaussian();
        fit(objective.as_mut(), &mut model, &data, &mut rng);
        let got = fitted(&model);
        println!("{}:", objective.name());
        for j in 0..4 {
            let z = (got[j] - want[j]) / se[j];
            println!(
                "  {} = {:+.4} (minimiser {:+.4}, {z:+.2} SE)",
                names[j], got[j], want[j]
            );
            // ESM's tolerance is absolute: it is an optimisation, not a sampling, error
            let ok = if tol < 1e-3 {
                (got[j] - want[j]).abs() < tol
            } else {
                z.abs() < tol
            };
            assert!(ok, "{}: {} is off by {z:.2} SE", objective.name(), names[j]);
        }
        if let Some(q) = objective.params() {
            // NCE's learned normaliser against the one of its own fit, Σⱼ ½ log(2π/λⱼ), whose
            // SE is ½√(Σⱼ Var log λⱼ) = √((1 + 1/ν)/n)
            let tau = 2.0 * std::f64::consts::PI;
            let log_z: f64 = got[2..].iter().map(|l| 0.5 * (tau.ln() - l)).sum();
            let (learned, se_z) = (q["log_z"].item(), ((1.0 + 1.0 / NU) / n).sqrt());
            println!("  log Z = {learned:.4} (of the fit: {log_z:.4}, SE {se_z:.4})");
            assert!((learned - log_z).abs() < 4.0 * se_z);
        }
    }
}
