//! The one training step every objective shares.

use crate::Objective;
use ebm_autodiff::Tape;
use ebm_core::{Rng, Tensor};
use ebm_nn::{param_grads, EnergyModel, Optimizer};

/// Rows per block when [`train_step`] splits a batch ([`Objective::rows_independent`]): a
/// 512×128 f32 activation is 256 KiB, so an element-wise op's operands stay near L2 (on the
/// benchmark MLP, blocks of 512 beat 256 and 128, and ran ESM 1.15× faster than one block
/// of 1024).
pub const TRAIN_BLOCK_ROWS: usize = 512;

/// One optimisation step of `objective` on the batch `x`: bind the parameters to a fresh tape,
/// build the loss, take parameter gradients, drop the tape, update. `objective_opt` updates the
/// objective's own parameters (NCE's log Z) and is required when it has any. Returns the loss.
///
/// When the objective's loss is a mean of per-row terms ([`Objective::rows_independent`]) and
/// the batch is larger than [`TRAIN_BLOCK_ROWS`], the loss and gradients are taken block by
/// block (one tape each) and combined with weights rows/B: the same step.
pub fn train_step(
    objective: &mut dyn Objective,
    model: &mut dyn EnergyModel,
    model_opt: &mut Optimizer,
    objective_opt: Option<&mut Optimizer>,
    x: &Tensor,
    rng: &mut Rng,
) -> f64 {
    let b = x.shape().first().copied().unwrap_or(0);
    let blocks: Vec<(usize, usize)> = if objective.rows_independent() && b > TRAIN_BLOCK_ROWS {
        (0..b)
            .step_by(TRAIN_BLOCK_ROWS)
            .map(|s| (s, TRAIN_BLOCK_ROWS.min(b - s)))
            .collect()
    } else {
        vec![(0, b)]
    };
    let mut loss = 0.0;
    let mut g: Vec<Tensor> = Vec::new();
    let mut gq: Vec<Tensor> = Vec::new();
    for &(start, rows) in &blocks {
        let xb = if blocks.len() == 1 {
            x.clone()
        } else {
            x.narrow(0, start, rows)
        };
        let weight = rows as f64 / b.max(1) as f64;
        let tape = Tape::new();
        let p = model.params().bind(&tape);
        let q = objective
            .params()
            .map(|q| q.bind(&tape))
            .unwrap_or_default();
        let mut l = objective.loss(&tape, model, &p, &q, &xb, rng);
        if blocks.len() > 1 {
            l = l.mul_scalar(weight);
        }
        loss += l.item();
        let add = |acc: &mut Vec<Tensor>, new: Vec<Tensor>| {
            if acc.is_empty() {
                *acc = new;
            } else {
                for (a, n) in acc.iter_mut().zip(new) {
                    *a = a.add(&n);
                }
            }
        };
        if !q.is_empty() {
            add(&mut gq, param_grads(&l, &q));
        }
        add(&mut g, param_grads(&l, &p));
    }
    model_opt.step(model.params_mut(), &g);
    if let Some(params) = objective.params_mut() {
        let opt = objective_opt
            .expect("train_step: this objective has parameters of its own; pass their optimizer");
        opt.step(params, &gq);
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DenoisingScoreMatching, ExactScoreMatching, SlicedScoreMatching};
    use ebm_core::DType;
    use ebm_nn::{Mlp, MlpConfig, Module};

    /// The blocked step equals one tape over the whole batch: same loss, same update.
    #[test]
    fn blocked_step_is_the_whole_batch_step() {
        let objectives: Vec<Box<dyn Fn() -> Box<dyn Objective>>> = vec![
            Box::new(|| Box::new(DenoisingScoreMatching { sigma: 0.3 })),
            Box::new(|| Box::new(ExactScoreMatching)),
            Box::new(|| Box::new(SlicedScoreMatching::default())),
        ];
        for make in objectives {
            let mut init = Rng::new(3);
            let model = Mlp::with_dtype(MlpConfig::new(&[2, 16, 16, 1]), &mut init, DType::F64);
            let b = 2 * TRAIN_BLOCK_ROWS + 37;
            let x = init.normal(&[b, 2], DType::F64);
            // blocked, through train_step
            let (mut m1, mut o1) = (model.clone(), Optimizer::sgd(0.1, 0.0, model.params()));
            let mut r1 = Rng::new(9);
            let l1 = train_step(make().as_mut(), &mut m1, &mut o1, None, &x, &mut r1);
            // one tape over the whole batch
            let (mut m2, mut o2) = (model.clone(), Optimizer::sgd(0.1, 0.0, model.params()));
            let mut r2 = Rng::new(9);
            let (l2, g) = {
                let tape = Tape::new();
                let p = m2.params().bind(&tape);
                let l = make().loss(&tape, &m2, &p, &[], &x, &mut r2);
                (l.item(), param_grads(&l, &p))
            };
            o2.step(m2.params_mut(), &g);
            let name = make().name();
            assert!(
                (l1 - l2).abs() <= 1e-12 * (1.0 + l2.abs()),
                "{name}: loss {l1} vs {l2}"
            );
            for ((n, a), (_, c)) in m1.params().iter().zip(m2.params().iter()) {
                let d = a.max_abs_diff(c);
                assert!(
                    d <= 1e-12 * (1.0 + c.max_abs()),
                    "{name}: {n} differs by {d}"
                );
            }
            assert_eq!(
                r1.state(),
                r2.state(),
                "{name}: the same randomness was drawn"
            );
        }
    }
}
