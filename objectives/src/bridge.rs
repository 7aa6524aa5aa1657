//! The one bridge from a model to the samplers: [`ModelTarget`] reads an energy model, or a
//! noise-conditional model at a fixed condition, as a sampler [`Target`], and a
//! noise-conditional model at any σ or t as a [`NoiseScore`] / [`TimeScore`] (annealed
//! Langevin, reverse SDE, probability-flow ODE). PCD's chains, AIS, `ebm sample` and `ebm
//! eval` all go through it.

use ebm_autodiff::{GradOpts, Tape};
use ebm_core::Tensor;
use ebm_nn::{score_from_energy, Model, ModelRef, NoiseConditionalModel};
use ebm_samplers::target::{NoiseScore, Target, TimeScore};

/// Rows per block when a sampler evaluates a model on a large batch.
pub const CHUNK_ROWS: usize = 512;

/// A model seen by a sampler: plain tensors in, energies and scores out, a fresh tape per
/// call (DESIGN.md decision 2).
///
/// Chains are independent rows, so large batches are evaluated in blocks of [`CHUNK_ROWS`]
/// rows, in parallel on the rayon pool when it has several threads (each block is computed
/// alone either way, so the bits do not depend on the thread count). A block's activations
/// (512 × 256 f32 = 0.5 MB) stay in cache across the forward and backward passes, where a
/// 10 000-chain batch (5 MB per activation) streams from memory on every element-wise pass.
///
/// An energy model ignores σ and t; a noise-conditional model is a density only at a fixed
/// condition ([`ModelTarget::at`]), which the plain [`Target`] methods use.
#[derive(Clone, Copy)]
pub struct ModelTarget<'a> {
    model: ModelRef<'a>,
    cond: Option<f64>,
}

impl<'a> ModelTarget<'a> {
    /// The bridge for `model` (a noise-conditional one needs [`ModelTarget::at`] before its
    /// energy or plain score can be asked for).
    pub fn new(model: &'a dyn Model) -> ModelTarget<'a> {
        ModelTarget::of(model.view())
    }

    /// The bridge for a model already viewed as its kind.
    pub fn of(model: ModelRef<'a>) -> ModelTarget<'a> {
        ModelTarget { model, cond: None }
    }

    /// Reads a noise-conditional model as the density at condition `cond` (σ or t); an
    /// energy model is unaffected.
    pub fn at(self, cond: f64) -> ModelTarget<'a> {
        ModelTarget {
            cond: Some(cond),
            ..self
        }
    }

    /// The model behind the bridge.
    pub fn model(&self) -> ModelRef<'a> {
        self.model
    }

    /// The fixed condition of [`ModelTarget::at`], if set.
    pub fn cond(&self) -> Option<f64> {
        self.cond
    }

    fn fixed_cond(&self) -> f64 {
        self.cond.expect(
            "ModelTarget: a noise-conditional model is a density only at a fixed condition; \
             set one with ModelTarget::at",
        )
    }

    /// The score at condition `c` (ignored by an energy model).
    fn score_at(&self, x: &Tensor, c: f64) -> Tensor {
        let [s] = match self.model {
            ModelRef::Energy(m) => by_rows(x, |b| [m.score(b)]),
            ModelRef::NoiseConditional(m) => by_rows(x, |b| [m.score(b, &cond_column(b, c))]),
        };
        s
    }
}

/// The condition `c` for every row of `x`, [B].
fn cond_column(x: &Tensor, c: f64) -> Tensor {
    Tensor::full(&[x.shape()[0]], c, x.dtype())
}

const NO_ENERGY: &str = "ModelTarget: this noise-conditional model outputs a score, not an \
                         energy; samplers that need energies (MALA, HMC, AIS) cannot use it";

/// E(x, c) and −∇ₓE(x, c) from one forward pass (an energy-parameterised model's score is
/// −∇ₓE by [`NoiseConditionalModel`]'s contract).
fn cond_energy_and_score(m: &dyn NoiseConditionalModel, x: &Tensor, c: f64) -> [Tensor; 2] {
    let tape = Tape::new();
    let p = m.params().constants(&tape);
    let xv = tape.var(x.clone());
    let e = m.energy_var(&xv, &cond_column(x, c), &p).expect(NO_ENERGY);
    let s = score_from_energy(&e, &xv, GradOpts::default());
    [e.value().clone(), s.value().clone()]
}

/// `f` applied to blocks of at most [`CHUNK_ROWS`] rows of `x` (two halves of a batch of
/// 2·[`crate::MIN_SPLIT_ROWS`] to [`CHUNK_ROWS`] rows, so that two threads have two blocks),
/// results joined along axis 0. Blocks are independent: with several rayon threads they run
/// in parallel (the same values: each block is computed alone either way, and the layout
/// does not depend on the thread count).
fn by_rows<const N: usize>(x: &Tensor, f: impl Fn(&Tensor) -> [Tensor; N] + Sync) -> [Tensor; N] {
    use rayon::prelude::*;
    let b = x.shape()[0];
    let rows = if b > CHUNK_ROWS {
        CHUNK_ROWS
    } else if b >= 2 * crate::MIN_SPLIT_ROWS {
        b.div_ceil(2)
    } else {
        return f(x);
    };
    let starts: Vec<usize> = (0..b).step_by(rows).collect();
    let block = |&start: &usize| f(&x.narrow(0, start, rows.min(b - start)));
    let parts: Vec<[Tensor; N]> = if rayon::current_num_threads() > 1 {
        starts.par_iter().map(block).collect()
    } else {
        starts.iter().map(block).collect()
    };
    std::array::from_fn(|k| {
        let col: Vec<Tensor> = parts.iter().map(|p| p[k].clone()).collect();
        Tensor::concat(&col, 0)
    })
}

impl Target for ModelTarget<'_> {
    fn energy(&self, x: &Tensor) -> Tensor {
        let [e] = match self.model {
            ModelRef::Energy(m) => by_rows(x, |b| [m.energy(b)]),
            ModelRef::NoiseConditional(m) => {
                let c = self.fixed_cond();
                by_rows(x, |b| [m.energy(b, &cond_column(b, c)).expect(NO_ENERGY)])
            }
        };
        e
    }

    fn score(&self, x: &Tensor) -> Tensor {
        match self.model {
            ModelRef::Energy(_) => self.score_at(x, 0.0),
            ModelRef::NoiseConditional(_) => self.score_at(x, self.fixed_cond()),
        }
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let [e, s] = match self.model {
            ModelRef::Energy(m) => by_rows(x, |b| {
                let (e, s) = m.energy_and_score(b);
                [e, s]
            }),
            ModelRef::NoiseConditional(m) => {
                let c = self.fixed_cond();
                by_rows(x, |b| cond_energy_and_score(m, b, c))
            }
        };
        (e, s)
    }
}

impl NoiseScore for ModelTarget<'_> {
    fn score_sigma(&self, x: &Tensor, sigma: f64) -> Tensor {
        self.score_at(x, sigma)
    }
}

impl TimeScore for ModelTarget<'_> {
    fn score_t(&self, x: &Tensor, t: f64) -> Tensor {
        self.score_at(x, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::{DType, Rng};
    use ebm_nn::{
        Conditioning, EnergyModel, Mlp, MlpConfig, NetOutput, NoiseConditionalConfig,
        NoiseConditionalNet,
    };

    /// `f` on a rayon pool of `threads` threads.
    fn on<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        let d = a.max_abs_diff(b);
        assert!(d <= 1e-6 * (1.0 + b.max_abs()), "{what}: differs by {d}");
    }

    /// Several blocks, the last one short.
    fn batch(rng: &mut Rng, d: usize) -> Tensor {
        rng.normal(&[2 * CHUNK_ROWS + 37, d], DType::F32)
    }

    #[test]
    fn energy_model_blocks_equal_the_direct_calls_on_any_thread_count() {
        let mut rng = Rng::new(0);
        let model = Mlp::new(MlpConfig::new(&[2, 16, 16, 1]), &mut rng);
        let x = batch(&mut rng, 2);
        let t = ModelTarget::new(&model);
        let (e, s) = t.energy_and_score(&x);
        close(&e, &model.energy(&x), "energy");
        close(&s, &model.score(&x), "score");
        assert_eq!(t.score(&x).max_abs_diff(&s), 0.0);
        assert_eq!(t.energy(&x).max_abs_diff(&e), 0.0);
        // an energy model ignores σ and t
        assert_eq!(t.score_sigma(&x, 0.3).max_abs_diff(&s), 0.0);
        assert_eq!(t.score_t(&x, 0.7).max_abs_diff(&s), 0.0);
        let all = || {
            let (e, s) = t.energy_and_score(&x);
            [e, s, t.energy(&x), t.score(&x)].map(|v| v.to_vec_f64())
        };
        assert_eq!(on(1, all), on(2, all), "same bits on 1 and 2 threads");
        // a batch of 300 rows: two halves of 150
        let x = rng.normal(&[300, 2], DType::F32);
        let (e, s) = t.energy_and_score(&x);
        close(&e, &model.energy(&x), "energy, halves");
        close(&s, &model.score(&x), "score, halves");
        let halves = || {
            let (e, s) = t.energy_and_score(&x);
            [e.to_vec_f64(), s.to_vec_f64()]
        };
        assert_eq!(
            on(1, halves),
            on(2, halves),
            "halves: same bits on 1 and 2 threads"
        );
    }

    #[test]
    fn noise_conditional_blocks_equal_the_direct_calls_on_any_thread_count() {
        let mut rng = Rng::new(1);
        let cfg = NoiseConditionalConfig::new(2, &[16, 16]).fourier(4, 8.0);
        let energy_net = NoiseConditionalNet::new(cfg.clone(), &mut rng);
        let score_net = NoiseConditionalNet::new(
            cfg.output(NetOutput::Score)
                .conditioning(Conditioning::Time),
            &mut rng,
        );
        let x = batch(&mut rng, 2);
        let col = |c: f64| Tensor::full(&[x.shape()[0]], c, DType::F32);
        // energy output, read at σ = 0.2
        let t = ModelTarget::new(&energy_net).at(0.2);
        let (e, s) = t.energy_and_score(&x);
        close(&e, &energy_net.energy(&x, &col(0.2)).unwrap(), "energy");
        close(&s, &energy_net.score(&x, &col(0.2)), "score");
        close(&t.energy(&x), &e, "energy alone");
        close(&t.score(&x), &s, "score alone");
        close(
            &t.score_sigma(&x, 0.5),
            &energy_net.score(&x, &col(0.5)),
            "score at σ",
        );
        // score output, at any t
        let u = ModelTarget::new(&score_net);
        close(
            &u.score_t(&x, 0.3),
            &score_net.score(&x, &col(0.3)),
            "score at t",
        );
        let all = || {
            let (e, s) = t.energy_and_score(&x);
            [
                e,
                s,
                t.energy(&x),
                t.score_sigma(&x, 0.5),
                u.score_t(&x, 0.3),
            ]
            .map(|v| v.to_vec_f64())
        };
        assert_eq!(on(1, all), on(2, all), "same bits on 1 and 2 threads");
    }

    #[test]
    #[should_panic(expected = "fixed condition")]
    fn a_noise_conditional_density_needs_its_condition() {
        let net = NoiseConditionalNet::new(NoiseConditionalConfig::new(2, &[4]), &mut Rng::new(0));
        ModelTarget::new(&net).energy(&Tensor::zeros(&[3, 2], DType::F32));
    }

    #[test]
    #[should_panic(expected = "outputs a score, not an energy")]
    fn a_score_network_has_no_energy() {
        let cfg = NoiseConditionalConfig::new(2, &[4]).output(NetOutput::Score);
        let net = NoiseConditionalNet::new(cfg, &mut Rng::new(0));
        ModelTarget::new(&net)
            .at(0.1)
            .energy(&Tensor::zeros(&[3, 2], DType::F32));
    }
}
