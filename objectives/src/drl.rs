//! Diffusion recovery likelihood: maximum likelihood of the data given a noisy copy, whose
//! conditional is easy to sample.

use crate::mle::contrastive_loss;
use crate::{energy_model, names, ModelTarget, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Model, ModelRef};
use ebm_samplers::target::Target;
use ebm_samplers::ula::{Step, Ula};

/// The settings of [`DiffusionRecoveryLikelihood`].
#[derive(Clone, Debug, PartialEq)]
pub struct DrlOptions {
    /// Standard deviation σ of the noisy copy x̃ = x + σz (default 0.5, in units of the data's
    /// scale).
    pub sigma: f64,
    /// Langevin steps on the conditional p_θ(x | x̃) per batch, K (default 30).
    pub langevin_steps: usize,
    /// Langevin step as a share of σ: ε = b·σ in x ← x + (ε²/2)∇log p_θ(x | x̃) + εz
    /// (default b = 0.4; the conditional's Gaussian factor has scale σ, so a chain relaxes in
    /// about 2/b² steps and ULA's variance bias there is b²/4).
    pub step_factor: f64,
}

impl Default for DrlOptions {
    fn default() -> Self {
        DrlOptions {
            sigma: 0.5,
            langevin_steps: 30,
            step_factor: 0.4,
        }
    }
}

/// The conditional energy E(x) + ‖x − x̃‖²/(2σ²) of the recovery likelihood, per row.
struct Recovery<'a> {
    model: ModelTarget<'a>,
    noisy: &'a Tensor,
    inv_var: f64,
}

impl Recovery<'_> {
    fn pull(&self, x: &Tensor) -> Tensor {
        x.sub(self.noisy).mul_scalar(self.inv_var)
    }
}

impl Target for Recovery<'_> {
    fn energy(&self, x: &Tensor) -> Tensor {
        let quad = x
            .sub(self.noisy)
            .square()
            .sum_axes(&[1], false)
            .mul_scalar(0.5 * self.inv_var);
        self.model.energy(x).add(&quad)
    }

    fn score(&self, x: &Tensor) -> Tensor {
        self.model.score(x).sub(&self.pull(x))
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        (self.energy(x), self.score(x))
    }
}

/// Diffusion recovery likelihood (Gao, Song, Poole, Wu & Kingma 2021, "Learning energy-based
/// models by diffusion recovery likelihood"), at one noise level.
///
/// Instead of the marginal likelihood of x, maximise the likelihood of x given its noisy copy
/// x̃ = x + σz: p_θ(x | x̃) ∝ exp(−E(x) − ‖x̃ − x‖²/(2σ²)). Its gradient is
/// −∇θE(x) + E_{p_θ(x′|x̃)}[∇θE(x′)]; the conditional is the model tilted by a Gaussian of
/// scale σ around x̃, nearly unimodal for small σ, so K short Langevin steps started at x̃
/// sample it where the marginal would need long chains. The surrogate loss is
///
/// L = mean_b E(x_b) − mean_b E(x′_b), x′ from K ULA steps on the conditional (detached),
///
/// and since p_θ = p_data makes p_θ(x | x̃) the true posterior, maximising the recovery
/// likelihood is consistent for the marginal p_θ itself (the paper's §3.1): the model is the
/// density of the clean data. The paper chains T such levels with a noise-conditional
/// E(x, t) to reach high-dimensional images; one level suffices in low dimensions, and is
/// what this objective trains, on an energy model.
#[derive(Clone, Debug)]
pub struct DiffusionRecoveryLikelihood {
    /// The settings.
    pub options: DrlOptions,
    last_negatives: Option<Tensor>,
}

impl DiffusionRecoveryLikelihood {
    /// DRL with `options`.
    pub fn new(options: DrlOptions) -> DiffusionRecoveryLikelihood {
        assert!(
            options.sigma > 0.0 && options.step_factor > 0.0,
            "DRL: σ and the step factor must be positive, got {options:?}"
        );
        DiffusionRecoveryLikelihood {
            options,
            last_negatives: None,
        }
    }

    /// Samples of p_θ(x | x̃) for each row of `noisy`: K ULA steps from x̃.
    pub fn recover(&self, model: &dyn EnergyModel, noisy: &Tensor, rng: &mut Rng) -> Tensor {
        let o = &self.options;
        let target = Recovery {
            model: ModelTarget::of(ModelRef::Energy(model)),
            noisy,
            inv_var: 1.0 / (o.sigma * o.sigma),
        };
        let ula = Ula::new(
            Step::Tied {
                eps: o.step_factor * o.sigma,
            },
            o.langevin_steps,
        );
        ula.run(&target, noisy.clone(), rng).x
    }

    /// The surrogate for given negatives.
    pub fn loss_with_negatives(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        negatives: &Tensor,
    ) -> Var {
        contrastive_loss(tape, model, p, x, negatives, 0.0)
    }
}

impl Default for DiffusionRecoveryLikelihood {
    fn default() -> Self {
        DiffusionRecoveryLikelihood::new(DrlOptions::default())
    }
}

impl Objective for DiffusionRecoveryLikelihood {
    fn name(&self) -> &'static str {
        names::DRL
    }

    fn negatives(&self) -> Option<&Tensor> {
        self.last_negatives.as_ref()
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        _q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let model = energy_model(model, self.name());
        let noisy = x.add(
            &rng.normal(x.shape(), x.dtype())
                .mul_scalar(self.options.sigma),
        );
        let negatives = self.recover(model, &noisy, rng);
        let loss = self.loss_with_negatives(tape, model, p, x, &negatives);
        self.last_negatives = Some(negatives);
        loss
    }
}
