//! Ratio matching: score matching's analogue for binary data.

use crate::{energy_gaps, energy_model, eye, names, Objective};
use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::Model;

/// Ratio matching (Hyvärinen 2007, "Some extensions of score matching", §2).
///
/// For binary x ∈ {0, 1}ᵈ, the ratios p(x)/p(x^{¬j}) to the d states one flip away play the
/// part of the score, and need no normaliser. Matching g(u) = 1/(1 + u) of the model's ratios
/// to the data's in squared error, the data's ratios drop out (the paper's Theorem 2, by
/// pairing each x with its flip), leaving
///
/// J(θ) = mean_b Σ_j g(p_θ(x_b)/p_θ(x_b^{¬j}))² = mean_b Σ_j σ(E(x_b) − E(x_b^{¬j}))²,
///
/// with σ the logistic function, minimised by the true parameters when the family holds
/// them. Each row costs d + 1 energy evaluations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RatioMatching;

impl RatioMatching {
    /// Whether every entry of `x` is 0 or 1 (what a caller checks on data before training;
    /// the loss panics otherwise).
    pub fn is_binary(x: &Tensor) -> bool {
        x.to_vec_f64().iter().all(|&a| a == 0.0 || a == 1.0)
    }
}

impl Objective for RatioMatching {
    fn name(&self) -> &'static str {
        names::RATIO_MATCHING
    }

    /// Row b's term depends on row b only, and no randomness is drawn.
    fn row_blocks_allowed(&self) -> bool {
        true
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        _q: &[Var],
        x: &Tensor,
        _rng: &mut Rng,
    ) -> Var {
        let model = energy_model(model, self.name());
        assert!(
            RatioMatching::is_binary(x),
            "ratio matching: the batch has entries other than 0 and 1"
        );
        let (b, d) = (x.shape()[0], x.shape()[1]);
        // row b, flip j: x_b + (1 − 2x_b) ⊙ e_j, laid out [B, d (flips), d]
        let eye = eye(d, x.dtype()).reshape(&[1, d, d]);
        let sign = x.mul_scalar(-2.0).add_scalar(1.0).reshape(&[b, 1, d]);
        let flipped = x.reshape(&[b, 1, d]).add(&sign.mul(&eye));
        energy_gaps(tape, model, p, x, &flipped)
            .sigmoid()
            .square()
            .sum(&[1], false)
            .mean_all()
    }
}
