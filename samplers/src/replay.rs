//! Short-run SGLD with a replay buffer: the persistent chains of maximum-likelihood (PCD)
//! training of EBMs (Tieleman 2008; Du & Mordatch 2019, "Implicit Generation and Modeling with
//! Energy-Based Models").
//!
//! The buffer holds N samples. Each batch takes B distinct buffer rows, replaces a fixed
//! fraction of them (default 5%) by fresh noise, runs K Langevin steps and writes all B rows
//! back to the rows they came from. Long-run, the buffer holds chains of many K-step segments,
//! so a short K per training step still gives well-mixed negatives; the reinitialised share
//! keeps the buffer from collapsing onto a few modes.

use crate::target::Target;
use crate::ula::Ula;
use crate::util::sample_without_replacement;
use crate::Samples;
use ebm_core::{DType, Rng, Tensor};

/// The noise a chain (re)starts from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(lo, hi) per element (Du & Mordatch start image chains from U(0, 1)).
    Uniform {
        /// The lower end.
        lo: f64,
        /// The upper end.
        hi: f64,
    },
    /// N(mean, std²) per element.
    Normal {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        std: f64,
    },
}

impl Init {
    /// A draw of `shape`.
    pub fn sample(&self, shape: &[usize], rng: &mut Rng, dtype: DType) -> Tensor {
        match *self {
            Init::Uniform { lo, hi } => rng.uniform(shape, lo, hi, dtype),
            Init::Normal { mean, std } => rng.normal(shape, dtype).mul_scalar(std).add_scalar(mean),
        }
    }
}

/// A buffer of persistent chain states, `[N, …]`.
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    data: Tensor,
    init: Init,
    reinit: f64,
}

/// A batch drawn from a [`ReplayBuffer`].
#[derive(Clone, Debug)]
pub struct Draw {
    /// Start states `[B, …]`: buffer rows, the first `n_reinit` of them replaced by noise.
    pub x: Tensor,
    /// The distinct buffer rows the batch came from (and will be written back to).
    pub indices: Vec<usize>,
    /// How many leading rows of `x` are fresh noise: round(reinit · B).
    pub n_reinit: usize,
}

impl ReplayBuffer {
    /// A buffer of `capacity` rows of `row_shape` filled from `init`, reinit fraction 5%.
    pub fn new(
        capacity: usize,
        row_shape: &[usize],
        init: Init,
        dtype: DType,
        rng: &mut Rng,
    ) -> ReplayBuffer {
        let mut shape = vec![capacity];
        shape.extend_from_slice(row_shape);
        ReplayBuffer::from_tensor(init.sample(&shape, rng, dtype), init)
    }

    /// A buffer holding `data` (`[N, …]`), reinit fraction 5%.
    pub fn from_tensor(data: Tensor, init: Init) -> ReplayBuffer {
        assert!(
            data.rank() >= 1 && data.shape()[0] > 0,
            "ReplayBuffer: needs at least one row, got shape {:?}",
            data.shape()
        );
        ReplayBuffer {
            data,
            init,
            reinit: 0.05,
        }
    }

    /// Sets the share of each batch restarted from noise.
    pub fn with_reinit(mut self, fraction: f64) -> ReplayBuffer {
        assert!(
            (0.0..=1.0).contains(&fraction),
            "ReplayBuffer: reinit fraction {fraction} is not in [0, 1]"
        );
        self.reinit = fraction;
        self
    }

    /// The share of chains restarted from `init` per draw.
    pub fn reinit_fraction(&self) -> f64 {
        self.reinit
    }

    /// The buffer, `[N, …]`.
    pub fn data(&self) -> &Tensor {
        &self.data
    }

    /// Replaces the chain states (a restored checkpoint), keeping the start noise and the
    /// reinit fraction; `data` must have the buffer's shape and dtype.
    pub fn set_data(&mut self, data: Tensor) {
        assert!(
            data.shape() == self.data.shape() && data.dtype() == self.data.dtype(),
            "ReplayBuffer::set_data: {} {:?} for a buffer of {} {:?}",
            data.dtype(),
            data.shape(),
            self.data.dtype(),
            self.data.shape()
        );
        self.data = data;
    }

    /// Rows (chains) held.
    pub fn len(&self) -> usize {
        self.data.shape()[0]
    }

    /// Whether the buffer holds no chain.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `batch` distinct rows drawn uniformly; the first round(reinit · batch) restarted from
    /// noise (the rows themselves are a uniform random subset, so which are restarted is too).
    pub fn draw(&self, batch: usize, rng: &mut Rng) -> Draw {
        let indices = sample_without_replacement(self.len(), batch, rng);
        let n_reinit = (self.reinit * batch as f64).round() as usize;
        let kept = self.data.index_select(&indices[n_reinit..]);
        let x = if n_reinit == 0 {
            kept
        } else {
            let mut shape = self.data.shape().to_vec();
            shape[0] = n_reinit;
            let fresh = self.init.sample(&shape, rng, self.data.dtype());
            Tensor::concat(&[fresh, kept], 0)
        };
        Draw {
            x,
            indices,
            n_reinit,
        }
    }

    /// Writes `x`'s rows back to buffer rows `indices`.
    pub fn write_back(&mut self, indices: &[usize], x: &Tensor) {
        self.data = self.data.index_put(indices, x);
    }
}

/// The result of one short-run batch.
#[derive(Clone, Debug)]
pub struct ShortRun {
    /// The K-step samples `[B, …]` (the negatives of a PCD step) and the chains' diagnostics.
    pub samples: Samples,
    /// The buffer rows they were written back to.
    pub indices: Vec<usize>,
    /// How many leading rows started from noise.
    pub n_reinit: usize,
}

/// Short-run SGLD: K Langevin steps (the [`Ula`]'s `n_steps`, usually the decoupled step)
/// from buffer states.
#[derive(Clone, Debug)]
pub struct ShortRunSgld {
    /// The Langevin dynamics run on the drawn chains.
    pub langevin: Ula,
}

impl ShortRunSgld {
    /// Short-run SGLD with `langevin`.
    pub fn new(langevin: Ula) -> ShortRunSgld {
        ShortRunSgld { langevin }
    }

    /// Draws `batch` chains from `buffer`, runs K steps and writes them back.
    pub fn sample(
        &self,
        target: &impl Target,
        buffer: &mut ReplayBuffer,
        batch: usize,
        rng: &mut Rng,
    ) -> ShortRun {
        let draw = buffer.draw(batch, rng);
        let samples = self.langevin.run(target, draw.x, rng);
        buffer.write_back(&draw.indices, &samples.x);
        ShortRun {
            samples,
            indices: draw.indices,
            n_reinit: draw.n_reinit,
        }
    }
}
