//! # ebm-objectives: every training method of the EBM literature, as plain functions
//!
//! Each objective turns (model, bound parameters, data batch, rng) into one scalar loss `Var`
//! on the caller's tape (DESIGN.md decision 3), so one training loop drives them all and a
//! researcher switches method with one argument. Conventions: the score is s = −∇ₓE; means are
//! over the batch; ‖·‖² sums over features. Each objective documents its formula and paper.
//!
//! | objective | what it fits | paper |
//! | --- | --- | --- |
//! | [`MaximumLikelihood`] (CD-k, PCD) | E by MCMC negatives | Hinton 2002; Tieleman 2008; Du & Mordatch 2019 |
//! | [`ExactScoreMatching`] | ½‖∇E‖² − tr ∇²E | Hyvärinen 2005 |
//! | [`SlicedScoreMatching`] (+ VR) | random projections of the above | Song et al. 2019 |
//! | [`DenoisingScoreMatching`] | ½‖s(x+σz) + z/σ‖² | Vincent 2011 |
//! | [`DsmControlVariate`] | DSM minus a zero-mean control variate | Wang et al. 2020 |
//! | [`MultiScaleDsm`] (NCSN, VE, VP) | noise-conditional DSM over σ or t | Song & Ermon 2019; Song et al. 2021 |
//! | [`Nce`] | logistic regression data vs noise, learnable log Z | Gutmann & Hyvärinen 2010 |

pub mod eval;
pub mod mle;
pub mod multiscale;
pub mod nce;
pub mod score_matching;
pub mod train;

pub use mle::{ChainInit, MaximumLikelihood, ModelTarget, CHUNK_ROWS};
pub use multiscale::{MultiScaleDsm, NoiseSchedule};
pub use nce::{Nce, NoiseDistribution};
pub use score_matching::{
    DenoisingScoreMatching, DsmControlVariate, ExactScoreMatching, Projection, SlicedScoreMatching,
};
pub use train::{train_step, TRAIN_BLOCK_ROWS};

use ebm_autodiff::{Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Params};

/// A training objective for an energy model: one scalar loss per batch.
pub trait Objective {
    /// Short name, as the CLI spells it ("dsm", "esm", …).
    fn name(&self) -> &'static str;

    /// Learnable parameters that belong to the objective rather than the model (NCE's log Z).
    fn params(&self) -> Option<&Params> {
        None
    }

    /// Mutable access to [`Objective::params`], for the optimizer.
    fn params_mut(&mut self) -> Option<&mut Params> {
        None
    }

    /// Whether the loss is a mean over rows of terms that each depend on their own row only
    /// (and the randomness drawn for it). [`train_step`] then evaluates a large batch in
    /// blocks of [`TRAIN_BLOCK_ROWS`] rows and adds the block gradients, weighted by block
    /// size: the same gradient, with every intermediate small enough to stay in cache and a
    /// fraction of the memory. Default `false` (NCE and maximum likelihood couple their data
    /// rows to noise or chain batches).
    fn rows_independent(&self) -> bool {
        false
    }

    /// The loss on `tape`. `p` are the model's parameters bound on that tape (in
    /// `model.params()` order), `q` the objective's own ([`Objective::params`]) bound likewise
    /// (empty when it has none). `x` is the data batch `[B, d]`.
    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var;
}

/// ½·mean_b ‖r_b‖² for a residual `r` [B, d]: the shape of every score-matching loss.
pub(crate) fn half_mean_sq(r: &Var) -> Var {
    r.square().sum(&[1], false).mean_all().mul_scalar(0.5)
}
