//! Learned Stein discrepancy: a critic network finds the Stein discrepancy's witness while the
//! energy minimises it.

use crate::{energy_model, names, reversed, Objective, Projection};
use ebm_autodiff::{grad_with, GradOpts, Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{Activation, Mlp, MlpConfig, Model, Module, Params};

/// The settings of [`LearnedStein`].
#[derive(Clone, Debug, PartialEq)]
pub struct LsdOptions {
    /// Hidden widths of the critic f: ℝᵈ → ℝᵈ (default [128, 128]).
    pub critic_hidden: Vec<usize>,
    /// The critic's nonlinearity (default SiLU).
    pub activation: Activation,
    /// Weight λ of the critic's L2 penalty (default ½: the optimal critic's value is then
    /// ½E‖s_θ − s_data‖², the Fisher divergence on score matching's scale).
    pub lambda: f64,
    /// Probe distribution of the Hutchinson trace estimate (default Rademacher).
    pub projection: Projection,
}

impl Default for LsdOptions {
    fn default() -> Self {
        LsdOptions {
            critic_hidden: vec![128, 128],
            activation: Activation::Silu,
            lambda: 0.5,
            projection: Projection::Rademacher,
        }
    }
}

/// Learned Stein discrepancy (Grathwohl, Wang, Jacobsen, Duvenaud & Zemel 2020, "Learning the
/// Stein discrepancy for training and evaluating energy-based models without sampling").
///
/// The Stein discrepancy sup_f E_data[s_θ(x)ᵀf(x) + tr ∇ₓf(x)] is zero exactly when
/// p_θ = p_data; LSD restricts f to a critic network and regularises it:
///
/// J(θ, φ) = mean_b [s_θ(x_b)ᵀf_φ(x_b) + εᵀ∇ₓ(εᵀf_φ(x_b))] − λ mean_b ‖f_φ(x_b)‖²,
///
/// with s_θ = −∇ₓE and the trace by Hutchinson's estimator (one probe ε per row, E[εεᵀ] = I).
/// Over all f the maximum is at f* = (s_θ − s_data)/(2λ) with value
/// (1/(4λ))E‖s_θ − s_data‖², so min_θ max_φ J is Fisher-divergence minimisation (score
/// matching) with the critic in place of the Hessian trace.
///
/// The min–max runs inside the one [`crate::train_step`]: the critic's parameters are the
/// objective's own ([`Objective::params`]) and enter the loss through a gradient reversal,
/// φ ↦ 2·stop_grad(φ) − φ (the same values, the gradient negated). So the loss returned is J,
/// the model's optimizer descends it, and the objective's optimizer, descending the same
/// loss, ascends J in φ: simultaneous gradient descent–ascent, one step each per batch (give
/// the critic its own, usually larger, rate with
/// [`crate::TrainStep::with_objective_optimizer`]). The critic's value is concave in f, so a
/// critic that keeps up tracks f*.
#[derive(Clone, Debug)]
pub struct LearnedStein {
    critic: Mlp,
    /// Weight λ of the critic's L2 penalty.
    pub lambda: f64,
    /// Probe distribution of the trace estimate.
    pub projection: Projection,
}

impl LearnedStein {
    /// LSD for data of dimension `dim`, the critic drawn from `rng` in `dtype`.
    pub fn new(dim: usize, options: LsdOptions, rng: &mut Rng, dtype: DType) -> LearnedStein {
        let mut widths = vec![dim];
        widths.extend(&options.critic_hidden);
        widths.push(dim);
        let critic = Mlp::with_dtype(
            MlpConfig::new(&widths).activation(options.activation),
            rng,
            dtype,
        );
        LearnedStein::with_critic(critic, options.lambda, options.projection)
    }

    /// LSD with a given critic network (widths d → … → d).
    pub fn with_critic(critic: Mlp, lambda: f64, projection: Projection) -> LearnedStein {
        let w = &critic.mlp_config().widths;
        assert!(
            w.first() == w.last(),
            "LSD: the critic must map ℝᵈ to ℝᵈ, its widths are {w:?}"
        );
        assert!(lambda > 0.0, "LSD: λ must be positive, got {lambda}");
        LearnedStein {
            critic,
            lambda,
            projection,
        }
    }

    /// The critic network (its parameters are [`Objective::params`]).
    pub fn critic(&self) -> &Mlp {
        &self.critic
    }

    /// J for given probes `eps` (shaped like `x`), with the critic's bound parameters `q`
    /// entering as given (no gradient reversal: that is [`Objective::loss`]'s).
    pub fn loss_with_probes(
        &self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        q: &[Var],
        x: &Tensor,
        eps: &Tensor,
    ) -> Var {
        let model = energy_model(model, self.name());
        let xv = tape.var(x.clone());
        let s = model.score_var(&xv, p, GradOpts::create_graph());
        let f = self.critic.forward(&xv, q);
        let jv = grad_with(
            &f.mul_const(eps).sum_all(),
            &[&xv],
            GradOpts::create_graph(),
        )
        .remove(0);
        let trace = jv.mul_const(eps).sum(&[1], false);
        let stein = s.mul(&f).sum(&[1], false).add(&trace);
        let penalty = f.square().sum(&[1], false).mul_scalar(self.lambda);
        stein.sub(&penalty).mean_all()
    }
}

impl Objective for LearnedStein {
    fn name(&self) -> &'static str {
        names::LSD
    }

    fn params(&self) -> Option<&Params> {
        Some(self.critic.params())
    }

    fn params_mut(&mut self) -> Option<&mut Params> {
        Some(self.critic.params_mut())
    }

    /// Row b's term depends on row b and its own probe, drawn in row order.
    fn row_blocks_allowed(&self) -> bool {
        true
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let eps = self.projection.draw(x.shape(), rng, x.dtype());
        self.loss_with_probes(tape, model, p, &reversed(q), x, &eps)
    }
}
