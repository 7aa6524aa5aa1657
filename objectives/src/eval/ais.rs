//! Annealed importance sampling (Neal 2001) for log Z, with forward and reverse runs that
//! bracket it (bidirectional Monte Carlo; Grosse, Ghahramani & Adams 2015).

use ebm_core::{DType, Rng, Tensor};
use ebm_samplers::mala::Mala;
use ebm_samplers::target::Target;

/// Settings of an AIS run.
#[derive(Clone, Debug)]
pub struct AisConfig {
    /// Intermediate distributions K.
    pub n_temps: usize,
    /// Chains (importance samples).
    pub n_chains: usize,
    /// MALA steps per intermediate distribution.
    pub steps_per_temp: usize,
    /// Standard deviation s of the normalised prior p₀ = N(0, s²I).
    pub prior_std: f64,
    /// Initial MALA step; adapted across temperatures toward 0.6 acceptance.
    pub step_size: f64,
    /// A diagonal Gaussian prior p₀ = N(μ, diag s²) instead of N(0, prior_std²·I): one mean
    /// and one standard deviation per dimension (e.g. fitted to the training rows, so that
    /// the path starts near the data and fewer temperatures reach the same accuracy).
    pub prior: Option<DiagonalGaussian>,
}

/// A Gaussian with diagonal covariance, the AIS prior [`AisConfig::prior`].
#[derive(Clone, Debug, PartialEq)]
pub struct DiagonalGaussian {
    /// Means, one per dimension.
    pub mean: Vec<f64>,
    /// Standard deviations (positive), one per dimension.
    pub std: Vec<f64>,
}

impl DiagonalGaussian {
    /// The per-column mean and standard deviation of `rows` `[n, d]`, each standard deviation
    /// at least `floor`.
    pub fn fit(rows: &Tensor, floor: f64) -> DiagonalGaussian {
        let (n, d) = (rows.shape()[0], rows.shape()[1]);
        let v = rows.to_vec_f64();
        let mut mean = vec![0.0; d];
        for row in v.chunks(d) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += x / n as f64;
            }
        }
        let mut var = vec![0.0; d];
        for row in v.chunks(d) {
            for ((s, x), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (x - m) * (x - m) / n as f64;
            }
        }
        let std = var.iter().map(|v| v.sqrt().max(floor)).collect();
        DiagonalGaussian { mean, std }
    }
}

/// The prior of a run: N(μ, diag s²) as `[1, d]` tensors of μ and 1/s², and Σ log sⱼ.
#[derive(Clone)]
struct Prior {
    mean: Tensor,
    std: Tensor,
    precision: Tensor,
    log_det_std: f64,
}

impl Prior {
    fn of(cfg: &AisConfig, d: usize, dtype: DType) -> Prior {
        let (mean, std) = match &cfg.prior {
            Some(g) => {
                assert!(
                    g.mean.len() == d && g.std.len() == d && g.std.iter().all(|s| *s > 0.0),
                    "AIS prior: {} means and {} standard deviations (all positive) for {d} dimensions",
                    g.mean.len(),
                    g.std.len()
                );
                (g.mean.clone(), g.std.clone())
            }
            None => (vec![0.0; d], vec![cfg.prior_std; d]),
        };
        let precision: Vec<f64> = std.iter().map(|s| 1.0 / (s * s)).collect();
        Prior {
            mean: Tensor::from_f64s(&mean, &[1, d], dtype),
            std: Tensor::from_f64s(&std, &[1, d], dtype),
            precision: Tensor::from_f64s(&precision, &[1, d], dtype),
            log_det_std: std.iter().map(|s| s.ln()).sum(),
        }
    }

    /// ½ Σⱼ (xⱼ − μⱼ)²/sⱼ² per row (the energy without its constant).
    fn energy(&self, x: &Tensor) -> Tensor {
        let b = x.shape()[0];
        let z = x.reshape(&[b, usize::MAX]).sub(&self.mean);
        z.square()
            .mul(&self.precision)
            .sum_axes(&[1], false)
            .mul_scalar(0.5)
    }

    /// −(x − μ)/s², shaped like x.
    fn score(&self, x: &Tensor) -> Tensor {
        let b = x.shape()[0];
        x.reshape(&[b, usize::MAX])
            .sub(&self.mean)
            .mul(&self.precision)
            .neg()
            .reshape(x.shape())
    }

    /// log p₀(x) per row.
    fn log_prob(&self, x: &Tensor) -> Tensor {
        let d = (x.numel() / x.shape()[0]) as f64;
        self.energy(x)
            .neg()
            .add_scalar(-0.5 * d * (2.0 * std::f64::consts::PI).ln() - self.log_det_std)
    }

    /// n draws of p₀.
    fn sample(&self, n: usize, rng: &mut Rng, dtype: DType) -> Tensor {
        let d = self.mean.shape()[1];
        rng.normal(&[n, d], dtype).mul(&self.std).add(&self.mean)
    }
}

impl Default for AisConfig {
    fn default() -> Self {
        AisConfig {
            n_temps: 200,
            n_chains: 256,
            steps_per_temp: 1,
            prior_std: 3.0,
            step_size: 0.3,
            prior: None,
        }
    }
}

/// Estimates of log Z from an AIS run.
#[derive(Clone, Debug, PartialEq)]
pub struct AisResult {
    /// log mean exp of the forward log-weights: a stochastic lower bound
    /// (E[log Ẑ] ≤ log Z by Jensen).
    pub forward: f64,
    /// −log mean exp of the reverse log-weights, from exact target samples: a stochastic upper
    /// bound. `None` without exact samples.
    pub reverse: Option<f64>,
    /// Effective sample size of the forward weights, (Σw)²/Σw².
    pub forward_ess: f64,
    /// Delta-method standard error of `forward`: √((n/ESS − 1)/n).
    pub forward_se: f64,
    /// The same for `reverse`.
    pub reverse_se: Option<f64>,
    /// Mean MALA acceptance along the forward path.
    pub accept_rate: f64,
}

/// The geometric bridge p_β ∝ p₀^{1−β} exp(−βE).
struct Bridge<'a, T: Target> {
    target: &'a T,
    beta: f64,
    prior: &'a Prior,
}

impl<T: Target> Target for Bridge<'_, T> {
    fn energy(&self, x: &Tensor) -> Tensor {
        let prior = self.prior.energy(x);
        self.target
            .energy(x)
            .mul_scalar(self.beta)
            .add(&prior.mul_scalar(1.0 - self.beta))
    }
    fn score(&self, x: &Tensor) -> Tensor {
        self.energy_and_score(x).1
    }
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (e, s) = self.target.energy_and_score(x);
        let e = e
            .mul_scalar(self.beta)
            .add(&self.prior.energy(x).mul_scalar(1.0 - self.beta));
        let s = s
            .mul_scalar(self.beta)
            .add(&self.prior.score(x).mul_scalar(1.0 - self.beta));
        (e, s)
    }
}

/// The sigmoidal schedule of Grosse et al. (2013): β_k ∝ σ(δ(2k/K − 1)), rescaled to [0, 1].
fn schedule(k: usize) -> Vec<f64> {
    let delta = 4.0;
    let raw: Vec<f64> = (0..=k)
        .map(|i| 1.0 / (1.0 + (-delta * (2.0 * i as f64 / k as f64 - 1.0)).exp()))
        .collect();
    let (lo, hi) = (raw[0], raw[k]);
    raw.iter().map(|r| (r - lo) / (hi - lo)).collect()
}

/// √((n/ESS − 1)/n): the standard error of log mean exp(v) by the delta method.
fn log_mean_exp_se(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = v.iter().map(|l| (l - m).exp()).collect();
    let n = v.len() as f64;
    let ess = w.iter().sum::<f64>().powi(2) / w.iter().map(|x| x * x).sum::<f64>();
    ((n / ess - 1.0).max(0.0) / n).sqrt()
}

fn log_mean_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + (v.iter().map(|x| (x - m).exp()).sum::<f64>() / v.len() as f64).ln()
}

/// One annealing pass over `betas` (in the order given) from `x`, accumulating the log-weight
/// increments f_{β'}(x) − f_β(x) = (β' − β)(−E(x) − log p₀(x)) before each transition.
fn anneal(
    target: &impl Target,
    betas: &[f64],
    mut x: Tensor,
    cfg: &AisConfig,
    rng: &mut Rng,
) -> (Vec<f64>, f64) {
    let d = x.numel() / x.shape()[0].max(1);
    let prior = Prior::of(cfg, d, x.dtype());
    let b = x.shape()[0];
    let mut log_w = vec![0.0; b];
    let mut eps = cfg.step_size;
    let mut accept_sum = 0.0;
    for w in betas.windows(2) {
        let (from, to) = (w[0], w[1]);
        let gap = target
            .energy(&x)
            .cast(DType::F64)
            .neg()
            .sub(&prior.log_prob(&x).cast(DType::F64))
            .mul_scalar(to - from)
            .to_vec_f64();
        for (l, g) in log_w.iter_mut().zip(gap) {
            *l += g;
        }
        let bridge = Bridge {
            target,
            beta: to,
            prior: &prior,
        };
        let mut mala = Mala::new(eps, 0, cfg.steps_per_temp);
        mala.adapt = false;
        let run = mala.run(&bridge, x, rng);
        let acc = run.stats.accept_rate.unwrap_or(0.0);
        accept_sum += acc;
        // any step size leaves p_β invariant; steer it toward ≈ 0.6 acceptance
        eps *= if acc > 0.6 { 1.05 } else { 0.95 };
        x = run.x;
    }
    (log_w, accept_sum / (betas.len() - 1) as f64)
}

/// log Z = log ∫ exp(−E) of `target` by AIS from p₀ = N(0, s²I) or the diagonal Gaussian
/// [`AisConfig::prior`] (forward), and, given exact
/// samples of the target, by reverse AIS (an upper bound: Grosse et al. 2015).
pub fn ais_log_z(
    target: &impl Target,
    dim: usize,
    exact_samples: Option<&Tensor>,
    cfg: &AisConfig,
    dtype: DType,
    rng: &mut Rng,
) -> AisResult {
    let betas = schedule(cfg.n_temps);
    let x0 = Prior::of(cfg, dim, dtype).sample(cfg.n_chains, rng, dtype);
    let (log_w, accept_rate) = anneal(target, &betas, x0, cfg, rng);
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - m).exp()).collect();
    let forward_ess = w.iter().sum::<f64>().powi(2) / w.iter().map(|v| v * v).sum::<f64>();
    let reverse = exact_samples.map(|xs| {
        let rev: Vec<f64> = betas.iter().rev().copied().collect();
        let (lw, _) = anneal(target, &rev, xs.clone(), cfg, rng);
        (-log_mean_exp(&lw), log_mean_exp_se(&lw))
    });
    AisResult {
        forward: log_mean_exp(&log_w),
        reverse: reverse.map(|r| r.0),
        forward_ess,
        forward_se: log_mean_exp_se(&log_w),
        reverse_se: reverse.map(|r| r.1),
        accept_rate,
    }
}
