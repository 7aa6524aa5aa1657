//! Flow contrastive estimation: NCE whose noise is a normalising flow trained against the
//! energy.

use crate::{energy_model, names, reversed, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{FlowConfig, Model, Module, Params, RealNvp};

/// The settings of [`FlowContrastive`].
#[derive(Clone, Debug, PartialEq)]
pub struct FceOptions {
    /// Affine coupling layers of the flow (default 6).
    pub couplings: usize,
    /// Hidden widths of each coupling's conditioner (default [64, 64]).
    pub hidden: Vec<usize>,
    /// Noise samples per data sample, ν (default 1).
    pub nu: f64,
    /// Initial log Z (default 0).
    pub log_z0: f64,
}

impl Default for FceOptions {
    fn default() -> Self {
        FceOptions {
            couplings: 6,
            hidden: vec![64, 64],
            nu: 1.0,
            log_z0: 0.0,
        }
    }
}

/// Name of the learnable log Z among [`FlowContrastive`]'s parameters (the flow's follow as
/// `flow.*`).
pub const LOG_Z: &str = "log_z";

/// Flow contrastive estimation (Gao, Nijkamp, Kingma, Xu, Dai & Wu 2020, "Flow contrastive
/// estimation of energy-based models").
///
/// NCE ([`crate::Nce`]) with the noise q_α a [`RealNvp`] flow, whose exact density NCE needs
/// and whose samples are reparameterised. With G(u) = −E(u) − log Z − log q_α(u) − log ν the
/// value is
///
/// V(θ, log Z; α) = mean_data log σ(G(x)) + ν·mean_{y∼q_α} log σ(−G(y)),
///
/// the NCE classifier's log-likelihood. The energy and log Z maximise V (NCE); the flow
/// minimises it, moving its mass to where the classifier tells model from data apart, so the
/// noise is tuned instead of chosen (at the saddle p_θ = p_data whatever q_α; the paper shows
/// the flow's step minimises a Jensen–Shannon divergence to the mixture of data and model).
/// The flow's draws y = f⁻¹(z) carry the gradient to α by reparameterisation, and
/// log q_α(y) = log N(z) − log|det ∂f⁻¹/∂z| comes with them.
///
/// The loss returned is −V (the NCE loss). The objective's parameters are [log Z, flow…]:
/// log Z enters plainly and the flow's parameters through a gradient reversal
/// (2·stop_grad(α) − α: same values, negated gradient), so one [`crate::train_step`], every
/// optimizer descending the one loss, descends −V in θ and log Z and ascends it in α.
#[derive(Clone, Debug)]
pub struct FlowContrastive {
    flow: RealNvp,
    params: Params,
    /// Noise samples per data sample, ν.
    pub nu: f64,
}

impl FlowContrastive {
    /// FCE for data of dimension `dim`: a new flow (the identity on a standard normal) drawn
    /// from `rng` in `dtype`.
    pub fn new(dim: usize, options: &FceOptions, rng: &mut Rng, dtype: DType) -> FlowContrastive {
        let flow = RealNvp::new(
            FlowConfig::new(dim, options.couplings, &options.hidden),
            rng,
            dtype,
        );
        FlowContrastive::with_flow(flow, options.nu, options.log_z0)
    }

    /// FCE with a given flow as the initial noise.
    pub fn with_flow(flow: RealNvp, nu: f64, log_z0: f64) -> FlowContrastive {
        assert!(nu > 0.0, "FCE: the noise ratio must be positive, got {nu}");
        let dtype = flow.params().dtype().unwrap_or(DType::F32);
        let mut params = Params::new();
        params.push(LOG_Z, Tensor::scalar(log_z0, dtype));
        for (name, t) in flow.params().iter() {
            params.push(format!("flow.{name}"), t.clone());
        }
        FlowContrastive { flow, params, nu }
    }

    /// Starts the flow at the diagonal Gaussian fitted to `data` ([`RealNvp::standardize`]).
    pub fn standardized(self, data: &Tensor) -> FlowContrastive {
        let mut flow = self.flow();
        flow.standardize(data);
        FlowContrastive::with_flow(flow, self.nu, self.log_z())
    }

    /// The current estimate of log Z.
    pub fn log_z(&self) -> f64 {
        self.params.get(0).item()
    }

    /// The flow with the current parameters.
    pub fn flow(&self) -> RealNvp {
        let mut own = Params::new();
        for (name, t) in self.params.iter().skip(1) {
            own.push(name.trim_start_matches("flow."), t.clone());
        }
        RealNvp::from_params(self.flow.flow_config().clone(), &own)
            .expect("FCE keeps the flow's parameter layout")
    }

    /// −V for given base draws `z` [m, d] of the flow's noise, with the bound parameters
    /// `q` = [log Z, flow…] entering as given (no gradient reversal: that is
    /// [`Objective::loss`]'s).
    pub fn loss_with_base_draws(
        &self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        q: &[Var],
        x: &Tensor,
        z: &Tensor,
    ) -> Var {
        let model = energy_model(model, self.name());
        let (log_z, flow_p) = (&q[0], &q[1..]);
        let log_nu = self.nu.ln();
        let g = |u: &Var, log_q: &Var| {
            model
                .energy_var(u, p)
                .neg()
                .sub(log_z)
                .sub(log_q)
                .add_scalar(-log_nu)
        };
        let xv = tape.constant(x.clone());
        let data_term = g(&xv, &self.flow.log_prob_var(&xv, flow_p))
            .log_sigmoid()
            .mean_all();
        let (y, log_q_y) = self.flow.sample_var(&tape.constant(z.clone()), flow_p);
        let noise_term = g(&y, &log_q_y)
            .neg()
            .log_sigmoid()
            .mean_all()
            .mul_scalar(self.nu);
        data_term.add(&noise_term).neg()
    }
}

impl Objective for FlowContrastive {
    fn name(&self) -> &'static str {
        names::FCE
    }

    fn params(&self) -> Option<&Params> {
        Some(&self.params)
    }

    fn params_mut(&mut self) -> Option<&mut Params> {
        Some(&mut self.params)
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
        let m = ((x.shape()[0] as f64) * self.nu).round().max(1.0) as usize;
        let z = rng.normal(&[m, self.flow.dim()], x.dtype());
        let mut q = q.to_vec();
        let flow_up = reversed(&q[1..]);
        q.truncate(1);
        q.extend(flow_up);
        self.loss_with_base_draws(tape, model, p, &q, x, &z)
    }
}
