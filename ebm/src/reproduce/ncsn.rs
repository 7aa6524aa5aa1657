//! Experiment 8: a multi-scale score model, sampled three ways, and its likelihood.
//!
//! One time-conditioned score network s(x, t) is trained by multi-scale denoising score
//! matching on the variance-exploding SDE (Song et al. 2021; the table's `ve`) on 8-Gaussians.
//! It is then sampled by annealed Langevin dynamics over its noise levels (Song & Ermon 2019;
//! σ read as the time t with σ(t) = σ), by the reverse SDE (Euler–Maruyama) and by the
//! probability-flow ODE (Heun), and its likelihood of held-out data is measured by the
//! PF-ODE's instantaneous change of variables (exact divergence), against the data's own
//! −log p (8-Gaussians is a known mixture). Each sampler's samples are compared with held-out
//! data by MMD², against the MMD² of the SDE's prior N(0, σ_max²I) as the scale.

use super::common::mean_se;
use super::figure::{Bars, Figure, Panel};
use super::{Budget, Measured};
use crate::plot::Grid;
use ebm_core::{DType, Rng, Tensor};
use ebm_data::{Toy, EIGHT_GAUSSIANS};
use ebm_nn::{Conditioning, NoiseConditionalConfig, NoiseConditionalNet};
use ebm_objectives::eval::{mmd2, pf_ode_nll, TimeModel};
use ebm_objectives::factory::{build, DataFacts, ObjectiveOptions};
use ebm_objectives::ModelTarget;
use ebm_samplers::analytic::GaussianMixture;
use ebm_samplers::target::{NoiseScore, TimeScore};
use ebm_samplers::{AnnealedLangevin, Divergence, OdeSolver, PfOde, ReverseSde, Sde, VeSde};
use serde::Serialize;

/// The VE SDE's σ(0) and σ(1), and the smallest time trained and sampled to.
const SIGMA_MIN: f64 = 0.02;
const SIGMA_MAX: f64 = 5.0;
const T_MIN: f64 = 1e-3;

/// A time-conditioned VE score read at noise σ: t = log(σ/σ_min)/log(σ_max/σ_min).
struct SigmaAsTime<'a>(ModelTarget<'a>);

impl NoiseScore for SigmaAsTime<'_> {
    fn score_sigma(&self, x: &Tensor, sigma: f64) -> Tensor {
        let t = (sigma / SIGMA_MIN).ln() / (SIGMA_MAX / SIGMA_MIN).ln();
        self.0.score_t(x, t)
    }
}

/// The names of the samplers, in the order of [`Numbers::mmd`].
pub const SAMPLERS: [&str; 3] = ["annealed Langevin", "reverse SDE", "PF-ODE"];

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct Numbers {
    /// MMD² of each sampler's samples to held-out data, and of the prior's.
    pub mmd: Vec<f64>,
    /// MMD² of draws of the SDE's prior to the held-out data.
    pub prior_mmd: f64,
    /// MMD² of a second held-out draw of the data: the floor at this sample size.
    pub data_mmd: f64,
    /// PF-ODE test NLL (nats), the data's own −log p on the same rows ± SE, the entropy.
    pub ode_nll: f64,
    /// The data's own −log p of the same rows (nats).
    pub data_nll: f64,
    /// Its standard error.
    pub data_nll_se: f64,
    /// The data entropy (nats).
    pub entropy: f64,
    /// The prior's NLL of the same rows.
    pub prior_nll: f64,
    /// How far above the data's NLL the model's may lie for the claim to hold.
    pub nll_tolerance: f64,
    /// The largest share of the prior's MMD² a sampler's may have for the claim to hold.
    pub mmd_share: f64,
    /// Training: steps, batch, hidden widths, final loss (mean of the last tenth).
    pub train_steps: u64,
    /// Rows per training step.
    pub batch: usize,
    /// Hidden widths of the score network.
    pub hidden: Vec<usize>,
    /// The training loss, mean of the last tenth of the steps.
    pub final_loss: f64,
    /// Samples per sampler, and rows whose likelihood was measured.
    pub samples: usize,
    /// Held-out rows whose likelihood was measured.
    pub nll_rows: usize,
    /// Each sampler's samples (for the figure; not written).
    #[serde(skip)]
    pub draws: Vec<Tensor>,
}

/// Trains the score model and measures everything.
pub fn measure(budget: Budget, rng: &mut Rng) -> Numbers {
    let hidden = budget.pick(vec![128, 128], vec![32, 32]);
    let (steps, batch) = budget.pick((5000, 256), (300, 128));
    let (samples, nll_rows) = budget.pick((2000, 1000), (300, 100));
    let train = Toy::EightGaussians.sample(20_000, rng);
    let options = ObjectiveOptions {
        sigma_min: SIGMA_MIN,
        sigma_max: SIGMA_MAX,
        t_min: T_MIN,
        ..ObjectiveOptions::default()
    };
    let mut objective = build("ve", &options, &DataFacts::of(&train), rng)
        .expect("the table builds ve with these options");
    let mut cfg = NoiseConditionalConfig::new(2, &hidden);
    cfg.conditioning = Conditioning::Time;
    let mut net = NoiseConditionalNet::new(cfg, rng);
    let rows = train.shape()[0];
    let losses = super::common::fit(
        objective.as_mut(),
        &mut net,
        steps,
        ebm_nn::AdamConfig::new(3e-3),
        |rng| {
            let idx: Vec<usize> = (0..batch).map(|_| rng.below(rows)).collect();
            train.index_select(&idx)
        },
        rng,
    );
    let tail = &losses[losses.len() - losses.len() / 10..];
    let final_loss = tail.iter().sum::<f64>() / tail.len() as f64;
    let sde = VeSde::new(SIGMA_MIN, SIGMA_MAX);
    let score = ModelTarget::new(&net);
    let ald = AnnealedLangevin::geometric(
        SIGMA_MAX,
        SIGMA_MIN,
        budget.pick(20, 10),
        0.1 * SIGMA_MIN * SIGMA_MIN,
        budget.pick(50, 20),
    )
    .with_denoise(true);
    let x0 = sde.prior_sample(&[samples, 2], rng, DType::F32);
    let draws = vec![
        ald.run(&SigmaAsTime(score), x0, rng).x,
        ReverseSde::euler_maruyama(budget.pick(500, 100), T_MIN)
            .sample(&sde, &score, samples, &[2], DType::F32, rng)
            .x,
        PfOde::new(
            OdeSolver::Heun {
                n_steps: budget.pick(200, 50),
            },
            T_MIN,
        )
        .sample(&sde, &score, samples, &[2], DType::F32, rng)
        .x,
    ];
    let held_out = Toy::EightGaussians.sample(samples, rng);
    let mmd: Vec<f64> = draws.iter().map(|x| mmd2(x, &held_out, None)).collect();
    let prior = sde.prior_sample(&[samples, 2], rng, DType::F32);
    let prior_mmd = mmd2(&prior, &held_out, None);
    let data_mmd = mmd2(&Toy::EightGaussians.sample(samples, rng), &held_out, None);
    let test = Toy::EightGaussians.sample(nll_rows, rng).cast(DType::F64);
    let ode = PfOde::new(
        OdeSolver::Heun {
            n_steps: budget.pick(200, 50),
        },
        T_MIN,
    );
    let ode_nll = pf_ode_nll(
        &sde,
        &TimeModel(&net),
        &test.cast(DType::F32),
        &ode,
        Divergence::Exact,
        None,
        rng,
    )
    .nats;
    let ring = GaussianMixture::ring(
        EIGHT_GAUSSIANS.modes,
        EIGHT_GAUSSIANS.radius,
        EIGHT_GAUSSIANS.std,
    );
    let (data_nll, data_nll_se) = mean_se(&ring.log_prob(&test).neg().to_vec_f64());
    let v = SIGMA_MAX * SIGMA_MAX;
    let prior_nll = (std::f64::consts::TAU * v).ln()
        + test.square().sum_all().item() / (2.0 * v * nll_rows as f64);
    Numbers {
        mmd,
        prior_mmd,
        data_mmd,
        ode_nll,
        data_nll,
        data_nll_se,
        entropy: Toy::EightGaussians.entropy().unwrap_or(f64::NAN),
        prior_nll,
        nll_tolerance: budget.pick(0.5, 1.5),
        // the quick budget's 300 steps of a 2-32-32 net give rougher samples
        mmd_share: budget.pick(0.1, 0.5),
        train_steps: steps,
        batch,
        hidden,
        final_loss,
        samples,
        nll_rows,
        draws,
    }
}

impl Measured for Numbers {
    /// Every sampler's MMD² is below `mmd_share` of the prior's, and the PF-ODE NLL lies
    /// within `nll_tolerance` of the data's own NLL on the same rows (and below the prior's).
    fn holds(&self) -> bool {
        self.mmd
            .iter()
            .all(|m| *m < self.mmd_share * self.prior_mmd)
            && self.ode_nll < self.data_nll + self.nll_tolerance
            && self.ode_nll < self.prior_nll
    }

    /// The measured figures in a sentence.
    fn summary(&self) -> String {
        let each: Vec<String> = SAMPLERS
            .iter()
            .zip(&self.mmd)
            .map(|(s, m)| format!("{s} {m:.1e}"))
            .collect();
        format!(
            "MMD² to held-out data: {} (prior {:.3}, a second data draw {:.1e}); PF-ODE test NLL {:.3} nats against the data's own {:.3} ± {:.3} (entropy {:.3}; prior {:.3})",
            each.join(", "), self.prior_mmd, self.data_mmd, self.ode_nll, self.data_nll,
            self.data_nll_se, self.entropy, self.prior_nll
        )
    }

    /// The samples of each sampler over the data density, and the MMDs.
    fn figure(&self) -> Figure {
        let bounds = [(-4.0, 4.0), (-4.0, 4.0)];
        let ring = GaussianMixture::ring(
            EIGHT_GAUSSIANS.modes,
            EIGHT_GAUSSIANS.radius,
            EIGHT_GAUSSIANS.std,
        );
        let truth = Grid::of(&ring, &bounds, 100);
        let mut panels: Vec<Panel> = SAMPLERS
            .iter()
            .zip(&self.draws)
            .zip(&self.mmd)
            .map(|((name, x), m)| Panel::Density {
                title: format!("{name}: MMD² to data {m:.1e}"),
                grid: truth.clone(),
                points: Some(x.narrow(0, 0, x.shape()[0].min(600))),
            })
            .collect();
        let top = self.ode_nll.max(self.data_nll) + 0.4;
        let nll = Bars {
            title: "test NLL (nats) of held-out rows".into(),
            y_label: "nats".into(),
            bars: vec![
                ("PF-ODE, model".into(), self.ode_nll, 0.0, 0),
                (
                    "−log p_data (± SE)".into(),
                    self.data_nll,
                    self.data_nll_se,
                    2,
                ),
            ],
            references: vec![(format!("entropy {:.3}", self.entropy), self.entropy)],
            y_range: (self.entropy - 0.6, top),
        };
        panels.push(Panel::Bars(nll));
        let title = format!(
                "A multi-scale score model (VE SDE, {:?} MLP, {} steps) sampled three ways over the 8-Gaussians density",
                self.hidden, self.train_steps
            );
        Figure::new(title, panels, 2, (500, 480))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sampler_of_a_multiscale_score_model_lands_on_the_data() {
        let n = measure(Budget::Quick, &mut Rng::new(8));
        for (s, m) in SAMPLERS.iter().zip(&n.mmd) {
            assert!(
                *m < 0.5 * n.prior_mmd,
                "{s}: MMD² {m} against the prior's {}",
                n.prior_mmd
            );
        }
        assert!(n.holds(), "{}", n.summary());
    }
}
