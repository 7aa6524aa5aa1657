//! The one training step every objective shares.

use crate::Objective;
use ebm_autodiff::Tape;
use ebm_core::{Rng, Tensor};
use ebm_nn::{param_grads, EnergyModel, Optimizer};

/// One optimisation step of `objective` on the batch `x`: bind the parameters to a fresh tape,
/// build the loss, take parameter gradients, drop the tape, update. `objective_opt` updates the
/// objective's own parameters (NCE's log Z) and is required when it has any. Returns the loss.
pub fn train_step(
    objective: &mut dyn Objective,
    model: &mut dyn EnergyModel,
    model_opt: &mut Optimizer,
    objective_opt: Option<&mut Optimizer>,
    x: &Tensor,
    rng: &mut Rng,
) -> f64 {
    let (loss, g, gq) = {
        let tape = Tape::new();
        let p = model.params().bind(&tape);
        let q = objective
            .params()
            .map(|q| q.bind(&tape))
            .unwrap_or_default();
        let loss = objective.loss(&tape, model, &p, &q, x, rng);
        let gq = if q.is_empty() {
            Vec::new()
        } else {
            param_grads(&loss, &q)
        };
        (loss.item(), param_grads(&loss, &p), gq)
    };
    model_opt.step(model.params_mut(), &g);
    if let Some(params) = objective.params_mut() {
        let opt = objective_opt
            .expect("train_step: this objective has parameters of its own; pass their optimizer");
        opt.step(params, &gq);
    }
    loss
}
