//! NCE recovers the normaliser: with the correct family, the learned log Z matches the true
//! log-normaliser of the learned energy, more closely with more data and with more noise
//! samples per data point (Gutmann & Hyvärinen 2010, §2.3: the estimator is consistent and
//! its variance falls with ν).

use ebm_autodiff::{Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{param_grads, EnergyModel, Module, Optimizer, Params, Quadratic};
use ebm_objectives::{Nce, NoiseDistribution, Objective};
use ebm_samplers::analytic::{cholesky, GaussianMixture};

/// Full-batch NCE with Adam; returns (learned log Z, true log Z of the learned energy).
fn fit_quadratic(x: &Tensor, nu: f64, steps: usize, seed: u64) -> (f64, f64) {
    let d = x.shape()[1];
    let mut model = Quadratic::standard(d, DType::F64);
    let mut nce = Nce::new(NoiseDistribution::fitted(x, 1.5), nu, 0.0, DType::F64);
    let mut opt = Optimizer::adam(0.05, model.params());
    let mut opt_q = Optimizer::adam(0.05, nce.params().unwrap());
    let mut rng = Rng::new(seed);
    for k in 0..steps {
        let (g, gq) = {
            let tape = Tape::new();
            let p = model.params().bind(&tape);
            let q = nce.params().unwrap().bind(&tape);
            let loss = nce.loss(&tape, &model, &p, &q, x, &mut rng);
            (param_grads(&loss, &p), param_grads(&loss, &q))
        };
        let lr = 0.05 * (0.02 + 0.98 * (1.0 - k as f64 / steps as f64));
        opt.set_lr(lr);
        opt_q.set_lr(lr);
        opt.step(model.params_mut(), &g);
        opt_q.step(nce.params_mut().unwrap(), &gq);
    }
    (nce.log_z(), model.log_normalizer())
}

fn gaussian(d: usize, n: usize, seed: u64) -> Tensor {
    let mut prec = vec![0.0; d * d];
    for i in 0..d {
        prec[i * d + i] = 1.5;
        if i + 1 < d {
            prec[i * d + i + 1] = 0.5;
            prec[(i + 1) * d + i] = 0.5;
        }
    }
    let mu: Vec<f64> = (0..d).map(|i| 0.5 * i as f64 - 1.0).collect();
    let l = cholesky(&prec, d).expect("a diagonally dominant precision");
    Quadratic::new(
        Tensor::from_f64s(&mu, &[d], DType::F64),
        Tensor::from_f64s(&l, &[d, d], DType::F64),
    )
    .sample(n, &mut Rng::new(seed))
}

#[test]
fn nce_recovers_gaussian_log_z_in_2d_and_5d() {
    for d in [2, 5] {
        let x = gaussian(d, 20_000, d as u64);
        let (est, truth) = fit_quadratic(&x, 1.0, 400, 0);
        eprintln!("NCE {d}-d Gaussian: learned log Z {est:.4}, true {truth:.4}, |error| {:.4} (tolerance 0.05)", (est - truth).abs());
        assert!((est - truth).abs() < 0.05);
    }
}

#[test]
fn nce_error_falls_with_data_and_with_noise_ratio() {
    // mean |error| over 4 seeds: n = 500 vs n = 20 000 at ν = 1, and ν = 1 vs ν = 10 at n = 2 000
    let err = |n: usize, nu: f64| -> f64 {
        (0..4u64)
            .map(|s| {
                let x = gaussian(2, n, 10 + s);
                let (est, truth) = fit_quadratic(&x, nu, 300, s);
                (est - truth).abs()
            })
            .sum::<f64>()
            / 4.0
    };
    let (small, large) = (err(500, 1.0), err(20_000, 1.0));
    let (nu1, nu10) = (err(2_000, 1.0), err(2_000, 10.0));
    eprintln!("NCE mean |log Z error|: n=500 {small:.4}, n=20000 {large:.4}; ν=1 {nu1:.4}, ν=10 {nu10:.4}");
    assert!(large < small, "more data should shrink the error");
    assert!(nu10 < nu1, "ν = 10 should beat ν = 1");
}

/// The family of mixtures of K diagonal Gaussians as a learnable energy E = −log p: normalised
/// whatever its parameters (`logits` [K], `means` [K, d], `log_std` [K, d]), so log Z = 0.
#[derive(Clone)]
struct MixtureFamily {
    params: Params,
}

impl MixtureFamily {
    /// The member equal to `mix`, whose components must be isotropic.
    fn at(mix: &GaussianMixture) -> MixtureFamily {
        let d = mix.dim();
        let k = mix.components().len();
        let logits: Vec<f64> = mix.weights().iter().map(|w| w.ln()).collect();
        let means: Vec<f64> = mix
            .components()
            .iter()
            .flat_map(|c| c.mean().to_vec())
            .collect();
        let log_std: Vec<f64> = mix
            .components()
            .iter()
            .flat_map(|c| {
                (0..d)
                    .map(|i| 0.5 * c.cov()[i * d + i].ln())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut params = Params::new();
        params.push("logits", Tensor::from_f64s(&logits, &[k], DType::F64));
        params.push("means", Tensor::from_f64s(&means, &[k, d], DType::F64));
        params.push("log_std", Tensor::from_f64s(&log_std, &[k, d], DType::F64));
        MixtureFamily { params }
    }
}

impl Module for MixtureFamily {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn config(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "mixture_family" })
    }
}

impl EnergyModel for MixtureFamily {
    /// −log Σₖ πₖ N(x; μₖ, diag σₖ²) by log-sum-exp.
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        let (b, d) = (x.shape()[0], x.shape()[1]);
        let (logits, means, log_std) = (&p[0], &p[1], &p[2]);
        let z = x.reshape(&[b, 1, d]).sub(means).mul(&log_std.neg().exp());
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        z.sum_squares(&[2], false)
            .mul_scalar(-0.5)
            .add(&logits.log_softmax(0).sub(&log_std.sum(&[1], false)))
            .add_scalar(-0.5 * d as f64 * ln_2pi)
            .logsumexp(&[1], false)
            .neg()
    }
}

#[test]
fn nce_recovers_eight_gaussians_log_z_with_mixture_family() {
    // The mixture energy is −log p (normalised): its true log Z is 0 whatever its parameters.
    let truth = eight_gaussians();
    let x = truth.sample(20_000, &mut Rng::new(3), DType::F64);
    let mut model = MixtureFamily::at(&truth);
    // the family's energy is the truth's −log p
    let on_x = model.energy(&x).neg();
    assert!(on_x.max_abs_diff(&truth.log_prob(&x)) < 1e-10);
    // start away from the truth: shift means and widen components
    model.params_mut().update(|name, t| match name {
        "means" => t.mul_scalar(0.8),
        "log_std" => t.add_scalar(0.3),
        _ => t.clone(),
    });
    let mut nce = Nce::new(NoiseDistribution::fitted(&x, 1.2), 1.0, 1.0, DType::F64);
    let mut opt = Optimizer::adam(0.02, model.params());
    let mut opt_q = Optimizer::adam(0.02, nce.params().unwrap());
    let mut rng = Rng::new(4);
    for _ in 0..400 {
        let (g, gq) = {
            let tape = Tape::new();
            let p = model.params().bind(&tape);
            let q = nce.params().unwrap().bind(&tape);
            let loss = nce.loss(&tape, &model, &p, &q, &x, &mut rng);
            (param_grads(&loss, &p), param_grads(&loss, &q))
        };
        opt.step(model.params_mut(), &g);
        opt_q.step(nce.params_mut().unwrap(), &gq);
    }
    eprintln!(
        "NCE 8-Gaussians: learned log Z {:.4} (truth 0, tolerance 0.05)",
        nce.log_z()
    );
    assert!(nce.log_z().abs() < 0.05);
}

/// FFJORD's 8-Gaussians as a density, with the data crate's parameters.
fn eight_gaussians() -> GaussianMixture {
    let e = ebm_data::EIGHT_GAUSSIANS;
    GaussianMixture::ring(e.modes, e.radius, e.std)
}
