//! Generalised score matching for data on [0, ∞)ᵈ or [0, 1]ᵈ.

use crate::{energy_model, names, Objective};
use ebm_autodiff::{grad_with, hessian_diag_from_grad, GradOpts, Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::Model;

/// Where the data live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// [0, ∞)ᵈ: counts, intensities, anything non-negative.
    NonNegative,
    /// [0, 1]ᵈ: pixels, proportions.
    UnitCube,
}

impl Domain {
    /// Whether every entry of `x` lies in the domain (what a caller checks on data before
    /// training; the loss panics on an entry outside).
    pub fn contains(self, x: &Tensor) -> bool {
        let v = x.to_vec_f64();
        match self {
            Domain::NonNegative => v.iter().all(|&a| a >= 0.0),
            Domain::UnitCube => v.iter().all(|&a| (0.0..=1.0).contains(&a)),
        }
    }
}

/// The weight h(x) of each coordinate: it must vanish on the domain's boundary, which is what
/// makes the integration by parts behind the loss valid there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BoundaryWeight {
    /// The distance to the boundary to first order: h = x on [0, ∞), h = x(1 − x) on [0, 1].
    Linear,
    /// Its square: h = x² (Hyvärinen 2007) on [0, ∞), h = x²(1 − x)² on [0, 1].
    Square,
    /// The distance to the boundary capped at c: h = min(x, c) on [0, ∞) and
    /// min(x, 1 − x, c) on [0, 1] (Yu, Drton & Shojaie 2019, whose truncation keeps large
    /// values from dominating the loss).
    Truncated {
        /// The cap c > 0.
        c: f64,
    },
}

impl BoundaryWeight {
    /// (h(x), h′(x)) element-wise on `x` in `domain`.
    fn weights(self, domain: Domain, x: &Tensor) -> (Tensor, Tensor) {
        let v = x.to_vec_f64();
        let (h, dh): (Vec<f64>, Vec<f64>) = v
            .iter()
            .map(|&a| match (domain, self) {
                (Domain::NonNegative, BoundaryWeight::Linear) => (a, 1.0),
                (Domain::NonNegative, BoundaryWeight::Square) => (a * a, 2.0 * a),
                (Domain::NonNegative, BoundaryWeight::Truncated { c }) => {
                    if a < c {
                        (a, 1.0)
                    } else {
                        (c, 0.0)
                    }
                }
                (Domain::UnitCube, BoundaryWeight::Linear) => (a * (1.0 - a), 1.0 - 2.0 * a),
                (Domain::UnitCube, BoundaryWeight::Square) => {
                    let u = a * (1.0 - a);
                    (u * u, 2.0 * u * (1.0 - 2.0 * a))
                }
                (Domain::UnitCube, BoundaryWeight::Truncated { c }) => {
                    let m = a.min(1.0 - a);
                    if m >= c {
                        (c, 0.0)
                    } else if a <= 1.0 - a {
                        (a, 1.0)
                    } else {
                        (1.0 - a, -1.0)
                    }
                }
            })
            .unzip();
        let shape = x.shape();
        (
            Tensor::from_f64s(&h, shape, x.dtype()),
            Tensor::from_f64s(&dh, shape, x.dtype()),
        )
    }
}

/// Generalised score matching (Hyvärinen 2007, "Some extensions of score matching", §3; Yu,
/// Drton & Shojaie 2019, "Generalized score matching for non-negative data").
///
/// Score matching's integration by parts assumes p vanishes at infinity; on a bounded domain
/// the boundary term survives and plain SM is biased (e.g. on a Gaussian truncated to
/// [0, ∞)). Weighting each coordinate's squared score error by h_j(x_j), zero on the
/// boundary, ½E Σ_j h_j (∂_j log p_θ − ∂_j log p)² integrates by parts cleanly to
///
/// J(θ) = mean_b Σ_j [½h(x_bj)(∂_jE)² − h′(x_bj) ∂_jE − h(x_bj) ∂²_jE],
///
/// minimised by the true parameters whenever the family holds them. The weights are
/// constants of the data; the second derivatives are the exact Hessian diagonal (d backward
/// passes, as [`crate::ExactScoreMatching`]).
#[derive(Clone, Debug, PartialEq)]
pub struct GeneralizedScoreMatching {
    /// The data's domain (default [0, ∞)ᵈ).
    pub domain: Domain,
    /// The boundary weight (default [`BoundaryWeight::Linear`]).
    pub weight: BoundaryWeight,
}

impl Default for GeneralizedScoreMatching {
    fn default() -> Self {
        GeneralizedScoreMatching {
            domain: Domain::NonNegative,
            weight: BoundaryWeight::Linear,
        }
    }
}

impl Objective for GeneralizedScoreMatching {
    fn name(&self) -> &'static str {
        names::GSM
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
            self.domain.contains(x),
            "generalised score matching: the batch has entries outside {:?}",
            self.domain
        );
        let (h, dh) = self.weight.weights(self.domain, x);
        let xv = tape.var(x.clone());
        let e = model.energy_var(&xv, p);
        let g = grad_with(&e.sum_all(), &[&xv], GradOpts::create_graph()).remove(0);
        let hd = hessian_diag_from_grad(&g, &xv, GradOpts::create_graph());
        g.square()
            .mul_const(&h.mul_scalar(0.5))
            .sub(&g.mul_const(&dh))
            .sub(&hd.mul_const(&h))
            .sum(&[1], false)
            .mean_all()
    }
}
