//! Evaluation on energies with known answers: AIS brackets log Z (Gaussian, an enumerable
//! Gaussian–Bernoulli RBM), grid quadrature agrees with AIS and the truth in 2-d, and the
//! discrepancies vanish exactly when they should.

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{EnergyModel, Quadratic};
use ebm_objectives::eval::{ais_log_z, fisher_divergence, grid_log_z, ksd, mmd2, AisConfig};
use ebm_objectives::ModelTarget;
use ebm_samplers::analytic::{cholesky, GaussianMixture};
use ebm_samplers::target::Target;

/// ½(x − μ)ᵀA(x − μ) with A = [[2, 0.8], [0.8, 1]].
fn quadratic_2d() -> Quadratic {
    let l = cholesky(&[2.0, 0.8, 0.8, 1.0], 2).expect("positive definite");
    Quadratic::new(
        Tensor::from_f64s(&[1.0, -0.5], &[2], DType::F64),
        Tensor::from_f64s(&l, &[2, 2], DType::F64),
    )
}

/// Runs 8 independent AIS replicates and checks forward ≤ truth ≤ reverse, each up to 3
/// standard errors of its replicate mean (both are bounds in expectation only; the spread
/// across replicates is the honest error bar, since the within-run delta-method error
/// understates heavy-tailed weights), and that the bracket is no wider than `width`.
fn assert_brackets(
    name: &str,
    target: &impl Target,
    dim: usize,
    exact: &dyn Fn(u64) -> Tensor,
    cfg: &AisConfig,
    truth: f64,
    width: f64,
) {
    let runs: Vec<_> = (0..8u64)
        .map(|k| {
            ais_log_z(
                target,
                dim,
                Some(&exact(k)),
                cfg,
                DType::F64,
                &mut Rng::new(100 + k),
            )
        })
        .collect();
    let stats = |v: Vec<f64>| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        (m, sd / n.sqrt())
    };
    let (fwd, fse) = stats(runs.iter().map(|r| r.forward).collect());
    let (rev, rse) = stats(runs.iter().map(|r| r.reverse.unwrap()).collect());
    eprintln!(
        "{name}: forward {fwd:.4} (se {fse:.4}) ≤ truth {truth:.4} ≤ reverse {rev:.4} (se {rse:.4}); \
         forward ESS {:.0} of {}, acceptance {:.2}",
        runs[0].forward_ess, cfg.n_chains, runs[0].accept_rate
    );
    assert!(
        fwd <= truth + 3.0 * fse.max(1e-3),
        "forward AIS above the truth"
    );
    assert!(
        rev >= truth - 3.0 * rse.max(1e-3),
        "reverse AIS below the truth"
    );
    assert!(rev - fwd < width, "the bracket is loose: {fwd} .. {rev}");
}

#[test]
fn ais_brackets_gaussian_log_z() {
    let q = quadratic_2d();
    let truth = q.log_normalizer();
    let cfg = AisConfig {
        n_chains: 512,
        n_temps: 300,
        prior_std: 1.5,
        ..AisConfig::default()
    };
    let exact = |k: u64| q.sample(cfg.n_chains, &mut Rng::new(k));
    assert_brackets(
        "Gaussian",
        &ModelTarget::new(&q),
        2,
        &exact,
        &cfg,
        truth,
        0.05,
    );
}

/// A Gaussian–Bernoulli RBM, E(v) = ½‖v − b‖² − Σⱼ softplus(cⱼ + Wⱼᵀv), hidden units summed
/// out. Its log Z enumerates the 2^H hidden states: ∫ exp(−½‖v−b‖² + hᵀ(c + Wᵀv)) dv
/// = (2π)^{d/2} exp(hᵀc + ½‖b + Wh‖² − ½‖b‖²).
struct GbRbm {
    w: Vec<f64>, // d×h
    b: Vec<f64>,
    c: Vec<f64>,
    d: usize,
    h: usize,
}

impl GbRbm {
    fn new(d: usize, h: usize, rng: &mut Rng) -> GbRbm {
        GbRbm {
            w: rng.normal_vec(d * h).iter().map(|v| 0.6 * v).collect(),
            b: rng.normal_vec(d),
            c: rng.normal_vec(h).iter().map(|v| 0.5 * v).collect(),
            d,
            h,
        }
    }

    /// log-weights of every hidden configuration, and log Z.
    fn hidden_log_weights(&self) -> (Vec<f64>, f64) {
        let (d, h) = (self.d, self.h);
        let bb: f64 = self.b.iter().map(|x| x * x).sum();
        let lw: Vec<f64> = (0..1usize << h)
            .map(|mask| {
                let on: Vec<f64> = (0..h).map(|j| ((mask >> j) & 1) as f64).collect();
                let hc: f64 = on.iter().zip(&self.c).map(|(a, b)| a * b).sum();
                let m: Vec<f64> = (0..d)
                    .map(|i| self.b[i] + (0..h).map(|j| self.w[i * h + j] * on[j]).sum::<f64>())
                    .collect();
                hc + 0.5 * m.iter().map(|x| x * x).sum::<f64>() - 0.5 * bb
            })
            .collect();
        let mx = lw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + lw.iter().map(|l| (l - mx).exp()).sum::<f64>().ln();
        (lw, lse + 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln())
    }

    /// Exact draws: h from its marginal, then v ~ N(b + Wh, I).
    fn sample(&self, n: usize, rng: &mut Rng) -> Tensor {
        let (lw, _) = self.hidden_log_weights();
        let mx = lw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = lw.iter().map(|l| (l - mx).exp()).collect();
        let total: f64 = p.iter().sum();
        let mut out = Vec::with_capacity(n * self.d);
        for _ in 0..n {
            let mut u = rng.next_f64() * total;
            let mut mask = 0;
            for (k, &pk) in p.iter().enumerate() {
                mask = k;
                if u < pk {
                    break;
                }
                u -= pk;
            }
            let z = rng.normal_vec(self.d);
            for (i, zi) in z.iter().enumerate() {
                let m: f64 = self.b[i]
                    + (0..self.h)
                        .map(|j| self.w[i * self.h + j] * ((mask >> j) & 1) as f64)
                        .sum::<f64>();
                out.push(m + zi);
            }
        }
        Tensor::from_f64s(&out, &[n, self.d], DType::F64)
    }

    /// cⱼ + Wⱼᵀv per row and hidden unit.
    fn pre(&self, x: &Tensor) -> (usize, Vec<f64>, Vec<f64>) {
        let n = x.shape()[0];
        let v = x.to_vec_f64();
        let mut a = vec![0.0; n * self.h];
        for r in 0..n {
            for j in 0..self.h {
                a[r * self.h + j] = self.c[j]
                    + (0..self.d)
                        .map(|i| self.w[i * self.h + j] * v[r * self.d + i])
                        .sum::<f64>();
            }
        }
        (n, v, a)
    }
}

impl Target for GbRbm {
    fn energy(&self, x: &Tensor) -> Tensor {
        let (n, v, a) = self.pre(x);
        let e: Vec<f64> = (0..n)
            .map(|r| {
                let q: f64 = (0..self.d)
                    .map(|i| (v[r * self.d + i] - self.b[i]).powi(2))
                    .sum();
                let sp: f64 = a[r * self.h..(r + 1) * self.h]
                    .iter()
                    .map(|&t| t.max(0.0) + (-t.abs()).exp().ln_1p())
                    .sum();
                0.5 * q - sp
            })
            .collect();
        Tensor::from_f64s(&e, &[n], DType::F64)
    }

    fn score(&self, x: &Tensor) -> Tensor {
        let (n, v, a) = self.pre(x);
        let mut s = vec![0.0; n * self.d];
        for r in 0..n {
            for i in 0..self.d {
                let pull: f64 = (0..self.h)
                    .map(|j| self.w[i * self.h + j] / (1.0 + (-a[r * self.h + j]).exp()))
                    .sum();
                s[r * self.d + i] = -(v[r * self.d + i] - self.b[i]) + pull;
            }
        }
        Tensor::from_f64s(&s, &[n, self.d], DType::F64)
    }
}

#[test]
fn ais_brackets_enumerable_rbm_log_z() {
    let rbm = GbRbm::new(3, 8, &mut Rng::new(4));
    let (_, truth) = rbm.hidden_log_weights();
    let cfg = AisConfig {
        n_temps: 300,
        n_chains: 512,
        ..AisConfig::default()
    };
    let exact = |k: u64| rbm.sample(cfg.n_chains, &mut Rng::new(k));
    assert_brackets(
        "GB-RBM (3 visible, 8 hidden)",
        &rbm,
        3,
        &exact,
        &cfg,
        truth,
        0.1,
    );
}

#[test]
fn ais_from_a_fitted_diagonal_prior_brackets_the_rbm_and_is_exact_on_the_prior() {
    let rbm = GbRbm::new(3, 8, &mut Rng::new(4));
    let (_, truth) = rbm.hidden_log_weights();
    let fitted =
        ebm_objectives::eval::DiagonalGaussian::fit(&rbm.sample(4096, &mut Rng::new(77)), 1e-3);
    let cfg = AisConfig {
        n_temps: 100,
        n_chains: 512,
        prior: Some(fitted.clone()),
        ..AisConfig::default()
    };
    let exact = |k: u64| rbm.sample(cfg.n_chains, &mut Rng::new(k));
    // a third of the default's temperatures: the path starts near the target
    assert_brackets(
        "GB-RBM from a fitted prior",
        &rbm,
        3,
        &exact,
        &cfg,
        truth,
        0.1,
    );
    // the target exp(−½Σ(x−μ)²/s²) is the prior up to its constant: every weight is exact
    let shifted = ebm_objectives::eval::DiagonalGaussian {
        mean: vec![0.3, -1.0, 2.0],
        std: vec![0.5, 2.0, 1.0],
    };
    let q = GaussianTarget(shifted.clone());
    let r = ais_log_z(
        &q,
        3,
        None,
        &AisConfig {
            n_temps: 5,
            prior: Some(shifted.clone()),
            ..AisConfig::default()
        },
        DType::F64,
        &mut Rng::new(1),
    );
    let want =
        shifted.std.iter().map(|s| s.ln()).sum::<f64>() + 1.5 * (2.0 * std::f64::consts::PI).ln();
    assert!((r.forward - want).abs() < 1e-9, "{} vs {want}", r.forward);
}

/// E(x) = ½Σ(xⱼ − μⱼ)²/sⱼ², unnormalised: log Z = Σ log sⱼ + (d/2) log 2π.
struct GaussianTarget(ebm_objectives::eval::DiagonalGaussian);

impl Target for GaussianTarget {
    fn energy(&self, x: &Tensor) -> Tensor {
        let g = &self.0;
        let d = g.mean.len();
        let v = x.to_vec_f64();
        let e: Vec<f64> = v
            .chunks(d)
            .map(|r| {
                r.iter()
                    .zip(g.mean.iter().zip(&g.std))
                    .map(|(x, (m, s))| 0.5 * (x - m) * (x - m) / (s * s))
                    .sum()
            })
            .collect();
        Tensor::from_f64s(&e, &[v.len() / d], DType::F64)
    }
    fn score(&self, x: &Tensor) -> Tensor {
        let g = &self.0;
        let d = g.mean.len();
        let s: Vec<f64> = x
            .to_vec_f64()
            .iter()
            .enumerate()
            .map(|(k, x)| -(x - g.mean[k % d]) / (g.std[k % d] * g.std[k % d]))
            .collect();
        Tensor::from_f64s(&s, x.shape(), DType::F64)
    }
}

#[test]
fn grid_quadrature_agrees_with_truth_and_ais_in_2d() {
    // an 8-Gaussians mixture normalised to log Z = 0, and a correlated Gaussian
    let mix = eight_gaussians();
    let g = grid_log_z(&mix, &[(-2.0, 2.0), (-2.0, 2.0)], 256, 1e-6, DType::F64);
    eprintln!(
        "8-Gaussians: grid log Z {:.2e} (truth 0), grid error {:.1e}, edge mass {:.1e}, box {:?}",
        g.log_z, g.grid_error, g.edge_mass, g.bounds
    );
    assert!(g.log_z.abs() < 1e-4 && g.grid_error < 1e-3 && g.edge_mass < 1e-6);
    let q = quadratic_2d();
    let gq = grid_log_z(
        &ModelTarget::new(&q),
        &[(-1.0, 1.0), (-1.0, 1.0)],
        256,
        1e-6,
        DType::F64,
    );
    let a = ais_log_z(
        &ModelTarget::new(&q),
        2,
        None,
        &AisConfig::default(),
        DType::F64,
        &mut Rng::new(7),
    );
    eprintln!(
        "Gaussian: grid {:.5}, AIS {:.4}, truth {:.5}",
        gq.log_z,
        a.forward,
        q.log_normalizer()
    );
    assert!((gq.log_z - q.log_normalizer()).abs() < 1e-4);
    assert!((gq.log_z - a.forward).abs() < 0.02);
}

#[test]
fn discrepancies_vanish_exactly_when_they_should() {
    let mut rng = Rng::new(8);
    let q = quadratic_2d();
    let x = q.sample(400, &mut rng);
    let y = q.sample(400, &mut rng);
    let shifted = y.add_scalar(0.7);
    let (same, diff) = (mmd2(&x, &y, None), mmd2(&x, &shifted, None));
    // the unbiased MMD² of equal laws has mean 0 and s.e. ≈ 1e-3 at n = 400
    eprintln!("MMD²: same law {same:.2e}, shifted by 0.7 {diff:.2e}");
    assert!(same.abs() < 5e-3 && diff > 0.05);
    let s = q.score(&x);
    let (k_same, k_shift) = (ksd(&x, &s), ksd(&shifted, &q.score(&shifted)));
    eprintln!("KSD²: model samples {k_same:.2e}, shifted samples {k_shift:.2e}");
    assert!(k_same.abs() < 0.02 && k_shift > 0.2);
    // Fisher divergence of s(x) = −2x against N(0, I)'s −x, at N(0, I) samples: ½E‖x‖² = d/2
    let z = rng.normal(&[20_000, 2], DType::F64);
    let f = fisher_divergence(&z.mul_scalar(-2.0), &z.neg());
    eprintln!("Fisher divergence: {f:.4} (exact 1; s.e. ≈ 0.007)");
    assert!((f - 1.0).abs() < 0.03);
    assert_eq!(fisher_divergence(&s, &s), 0.0);
}

/// FFJORD's 8-Gaussians as a density, with the data crate's parameters.
fn eight_gaussians() -> GaussianMixture {
    let e = ebm_data::EIGHT_GAUSSIANS;
    GaussianMixture::ring(e.modes, e.radius, e.std)
}

/// The toy generator and the analytic density are one distribution: the mean −log p of
/// generated rows is the entropy the toy set reports (within 4 standard errors).
#[test]
fn the_toy_set_draws_from_the_analytic_mixture() {
    let toy = ebm_data::Toy::EightGaussians;
    let x = toy.sample(20_000, &mut Rng::new(8)).cast(DType::F64);
    let nlp = eight_gaussians().log_prob(&x).neg().to_vec_f64();
    let n = nlp.len() as f64;
    let mean = nlp.iter().sum::<f64>() / n;
    let se = (nlp.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
    let h = toy.entropy().unwrap();
    assert!(
        (mean - h).abs() < 4.0 * se,
        "mean −log p {mean} vs entropy {h} (se {se})"
    );
}
