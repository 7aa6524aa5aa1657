//! Experiment 2: maximum likelihood with short-run MCMC: CD-k, PCD-k and long chains.
//!
//! The likelihood gradient ∇θE(x) − E_{p_θ}[∇θE] needs samples of the model. Contrastive
//! divergence (Hinton 2002) takes them from k Langevin steps started at the data; for small k
//! the negatives stay near the data, so whatever mixing k steps cannot do, CD cannot learn
//! (here: moving mass between two separated modes). Persistent CD (Tieleman 2008) carries its
//! chains across parameter updates, so they keep mixing however small k is; long chains
//! (large k) approach the exact gradient.
//!
//! Data: 0.3 N(−1, 0.5²) + 0.7 N(1, 0.5²) in 1-D. The model is a two-component Gaussian-mixture
//! energy E(x) = −log Σₖ exp(wₖ − log sₖ − (x − mₖ)²/2sₖ²) with log Z = ½ log 2π + log Σₖ e^{wₖ}
//! in closed form, started at equal weights, the means at ±0.5 and unit widths. Each k is
//! trained by CD-k and PCD-k (Langevin ε = 0.3, one persistent chain per batch row, no
//! restarts); the experiment measures the test NLL's excess over the data's own and the
//! learned weight of the left mode.

use super::common::{fast_adam, fit, mean_se};
use super::figure::{Chart, Figure, Legend, Panel, Scale, Series};
use super::{Budget, Measured};
use ebm_autodiff::Var;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{CustomEnergy, Model, ParamVars, Params};
use ebm_objectives::{ChainInit, MaximumLikelihood, ModelTarget};
use ebm_samplers::analytic::{Gaussian, GaussianMixture};
use ebm_samplers::{Init, ReplayBuffer, Step, Target, Ula};
use serde::Serialize;

/// The data's left weight.
const LEFT: f64 = 0.3;
/// Langevin's tied step.
const EPS: f64 = 0.3;
/// The k at which PCD is compared with CD: 10 steps from the data cannot cross between the
/// modes, 10 steps per update carried over hundreds of updates can.
const COMPARE_K: usize = 10;

/// The data density.
pub fn data() -> GaussianMixture {
    GaussianMixture::new(
        &[LEFT, 1.0 - LEFT],
        vec![
            Gaussian::isotropic(&[-1.0], 0.25),
            Gaussian::isotropic(&[1.0], 0.25),
        ],
    )
}

/// The two-component mixture energy, started at equal weights, means ±0.5, widths 1.
pub fn mixture_energy() -> CustomEnergy<impl Fn(&Var, &ParamVars) -> Var + Send + Sync + Clone> {
    let mut params = Params::new();
    params.push("w", Tensor::zeros(&[2], DType::F64));
    params.push("m", Tensor::from_vec(vec![-0.5, 0.5], &[2]));
    params.push("log_s", Tensor::zeros(&[2], DType::F64));
    CustomEnergy::from_params(params, |x: &Var, p: &ParamVars| {
        // x [B, 1] against the two components [2] → [B, 2]
        let z = x.sub(&p["m"]).div(&p["log_s"].exp());
        let log_terms = z.square().mul_scalar(-0.5).add(&p["w"].sub(&p["log_s"]));
        log_terms.logsumexp(&[1], false).neg()
    })
    .named("gaussian_mixture_energy")
}

/// log Z of [`mixture_energy`] and its left weight, from its parameters.
fn log_z_and_weight(model: &dyn Model) -> (f64, f64) {
    let w = model.params()["w"].to_vec_f64();
    let top = w[0].max(w[1]);
    let sum = (w[0] - top).exp() + (w[1] - top).exp();
    let log_z = 0.5 * std::f64::consts::TAU.ln() + top + sum.ln();
    (log_z, (w[0] - top).exp() / sum)
}

/// One training run's result.
#[derive(Clone, Debug, Serialize)]
pub struct Fit {
    /// Langevin steps per update.
    pub k: usize,
    /// Test NLL minus the data's own −log p (paired per test point), mean ± SE.
    pub excess_nll: f64,
    /// Its standard error over the test rows.
    pub excess_nll_se: f64,
    /// The learned left weight.
    pub left_weight: f64,
}

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct Numbers {
    /// Langevin steps per update k of CD.
    pub k: Vec<usize>,
    /// The k at which CD and PCD are compared.
    pub compare_k: usize,
    /// CD-k's fit at each k.
    pub cd: Vec<Fit>,
    /// PCD-k's fit at each k (the quick budget: the smallest k only).
    pub pcd: Vec<Fit>,
    /// The data's left weight.
    pub true_left_weight: f64,
    /// Parameter updates per fit.
    pub steps: u64,
    /// Rows per update (and persistent chains).
    pub batch: usize,
    /// The learned densities on `curve_x` of CD with the smallest and the largest k, and of
    /// the data.
    pub curve_x: Vec<f64>,
    /// CD's density with the smallest k.
    pub curve_cd_small_k: Vec<f64>,
    /// CD's density with the largest k.
    pub curve_cd_large_k: Vec<f64>,
    /// The data density.
    pub curve_data: Vec<f64>,
}

/// Trains the energy by CD-k (`persistent` false) or PCD-k; returns the fit and the model.
fn train(
    k: usize,
    persistent: bool,
    budget: Budget,
    rng: &mut Rng,
) -> (
    Fit,
    CustomEnergy<impl Fn(&Var, &ParamVars) -> Var + Send + Sync + Clone>,
) {
    let (steps, batch) = budget.pick((300, 200), (150, 100));
    let p = data();
    let init = if persistent {
        let chains = Init::Uniform { lo: -3.0, hi: 3.0 };
        ChainInit::Persistent(
            ReplayBuffer::new(batch, &[1], chains, DType::F64, rng).with_reinit(0.0),
        )
    } else {
        ChainInit::Data
    };
    let mut objective = MaximumLikelihood::new(Ula::new(Step::Tied { eps: EPS }, k), init, 0.0);
    let mut model = mixture_energy();
    fit(
        &mut objective,
        &mut model,
        steps,
        fast_adam(0.05),
        |rng| p.sample(batch, rng, DType::F64),
        rng,
    );
    let test = p.sample(20_000, rng, DType::F64);
    let (log_z, left) = log_z_and_weight(&model);
    let e = ModelTarget::new(&model).energy(&test).add_scalar(log_z);
    let gap = e.add(&p.log_prob(&test)).to_vec_f64();
    let (m, se) = mean_se(&gap);
    let fit = Fit {
        k,
        excess_nll: m,
        excess_nll_se: se,
        left_weight: left,
    };
    (fit, model)
}

/// p(x) on `xs` of a model with log Z `log_z`.
fn density(target: &impl Target, xs: &[f64], log_z: f64) -> Vec<f64> {
    let x = Tensor::from_vec(xs.to_vec(), &[xs.len(), 1]);
    let e = target.energy(&x).to_vec_f64();
    e.iter().map(|e| (-e - log_z).exp()).collect()
}

/// Trains every k both ways.
pub fn measure(budget: Budget, rng: &mut Rng) -> Numbers {
    let k = budget.pick(vec![1, 3, 10, 30, 100, 300], vec![1, 10, 100]);
    let (steps, batch) = budget.pick((300, 200), (150, 100));
    let xs: Vec<f64> = (0..121).map(|i| -3.0 + 0.05 * i as f64).collect();
    let mut n = Numbers {
        k: k.clone(),
        compare_k: COMPARE_K,
        cd: Vec::new(),
        pcd: Vec::new(),
        true_left_weight: LEFT,
        steps,
        batch,
        curve_data: density(&data(), &xs, 0.0),
        curve_x: xs.clone(),
        curve_cd_small_k: Vec::new(),
        curve_cd_large_k: Vec::new(),
    };
    for (i, &kk) in k.iter().enumerate() {
        let (f, model) = train(kk, false, budget, rng);
        n.cd.push(f);
        let curve = density(&ModelTarget::new(&model), &xs, log_z_and_weight(&model).0);
        if i == 0 {
            n.curve_cd_small_k = curve;
        } else if i == k.len() - 1 {
            n.curve_cd_large_k = curve;
        }
        // the quick budget compares PCD with CD at one k only
        if kk == COMPARE_K || budget == Budget::Full {
            n.pcd.push(train(kk, true, budget, rng).0);
        }
    }
    n
}

/// a − b > 4 combined SEs.
fn worse(a: &Fit, b: &Fit) -> bool {
    a.excess_nll - b.excess_nll > 4.0 * a.excess_nll_se.hypot(b.excess_nll_se)
}

impl Numbers {
    /// CD's and PCD's fits at `compare_k`.
    pub fn at_compare_k(&self) -> (&Fit, &Fit) {
        let find = |v: &'_ [Fit]| -> usize {
            v.iter()
                .position(|f| f.k == self.compare_k)
                .expect("both were fitted at compare_k")
        };
        (&self.cd[find(&self.cd)], &self.pcd[find(&self.pcd)])
    }
}

impl Measured for Numbers {
    /// CD with the smallest k is worse (by 4 SE in test NLL) than with the largest, and its
    /// left weight further from the truth. (PCD against CD at `compare_k` is measured and
    /// reported, not part of the verdict.)
    fn holds(&self) -> bool {
        let (small, large) = (&self.cd[0], self.cd.last().expect("k"));
        let off = |f: &Fit| (f.left_weight - self.true_left_weight).abs();
        worse(small, large) && off(small) > off(large)
    }

    /// The measured figures in a sentence.
    fn summary(&self) -> String {
        let (small, large) = (&self.cd[0], self.cd.last().expect("k"));
        let show = |name: &str, f: &Fit| {
            format!(
                "{name}-{} {:.4} ± {:.4} (left weight {:.3})",
                f.k, f.excess_nll, f.excess_nll_se, f.left_weight
            )
        };
        let (cd, pcd) = self.at_compare_k();
        format!(
            "test NLL above the data's: {}, {}; {}, {}; true weight {}",
            show("CD", small),
            show("CD", large),
            show("CD", cd),
            show("PCD", pcd),
            self.true_left_weight
        )
    }

    /// NLL and weight against k, and the learned densities.
    fn figure(&self) -> Figure {
        let ks = |fits: &[Fit], y: fn(&Fit) -> f64| -> Vec<(f64, f64)> {
            fits.iter().map(|f| (f.k as f64, y(f))).collect()
        };
        let se = |fits: &[Fit]| fits.iter().map(|f| f.excess_nll_se).collect();
        let nll = Chart::new("test NLL above the data's own", "Langevin steps k", "nats")
            .scales(Scale::Log, Scale::Linear)
            .legend(Legend::UpperRight)
            .series(
                Series::new("CD-k (± SE)", ks(&self.cd, |f| f.excess_nll), 1)
                    .with_err(se(&self.cd)),
            )
            .series(
                Series::new("PCD-k (± SE)", ks(&self.pcd, |f| f.excess_nll), 0)
                    .with_err(se(&self.pcd)),
            )
            .series(Series::reference(
                "0: the data's law",
                vec![(1.0, 0.0), (*self.k.last().expect("k") as f64, 0.0)],
                6,
            ));
        let kmax = *self.k.last().expect("k") as f64;
        let weight = Chart::new(
            "learned weight of the left mode",
            "Langevin steps k",
            "weight",
        )
        .scales(Scale::Log, Scale::Linear)
        .legend(Legend::UpperRight)
        .series(Series::new("CD-k", ks(&self.cd, |f| f.left_weight), 1))
        .series(Series::new("PCD-k", ks(&self.pcd, |f| f.left_weight), 0))
        .series(Series::reference(
            format!("true weight {}", self.true_left_weight),
            vec![(1.0, self.true_left_weight), (kmax, self.true_left_weight)],
            6,
        ));
        let line = |v: &[f64]| {
            self.curve_x
                .iter()
                .copied()
                .zip(v.iter().copied())
                .collect()
        };
        let curves = Chart::new("learned densities", "x", "p(x)")
            .legend(Legend::UpperLeft)
            .series(Series::reference("data", line(&self.curve_data), 6))
            .series(Series::reference(
                format!("CD-{}", self.k[0]),
                line(&self.curve_cd_small_k),
                1,
            ))
            .series(Series::reference(
                format!("CD-{}", kmax),
                line(&self.curve_cd_large_k),
                0,
            ));
        let title = format!(
                "Maximum likelihood with Langevin negatives: CD-k against PCD-k ({} updates of {} rows, ε = {EPS})",
                self.steps, self.batch
            );
        Figure::new(
            title,
            vec![
                Panel::Chart(nll),
                Panel::Chart(weight),
                Panel::Chart(curves),
            ],
            3,
            (500, 420),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_run_cd_is_biased_and_persistence_or_long_chains_remove_the_bias() {
        let n = measure(Budget::Quick, &mut Rng::new(2));
        assert!(n.holds(), "{}", n.summary());
    }
}
