//! The row blocks of a training step: their losses and gradients, on several threads when the
//! objective can lend a worker for each ([`Objective::block_worker`]).
//!
//! Blocks of an objective with workers draw from their own random streams (the caller's
//! generator forked once, block i on stream i), are computed alone, and are combined in block
//! order: the step is bit-for-bit the same on any number of threads.

use crate::Objective;
use ebm_autodiff::Tape;
use ebm_core::{Rng, Tensor};
use ebm_nn::{param_grads, Model};

/// A batch of at least this many rows is split in two blocks even when it fits in one
/// (`block_rows`), so that a step of an objective with workers has two blocks to run at once
/// on two threads. The layout depends on the batch only, never on the thread count.
pub const MIN_SPLIT_ROWS: usize = 128;

/// The loss of one step and the gradients of the model's and the objective's parameters.
pub(crate) struct StepGrads {
    pub(crate) loss: f64,
    pub(crate) model: Vec<Tensor>,
    pub(crate) objective: Vec<Tensor>,
}

/// (start, rows) of each block of a batch of `b` rows: blocks of `block_rows`, or two halves
/// of a batch of `2·MIN_SPLIT_ROWS ..= block_rows` rows when `halves`; one block when the
/// objective does not allow blocks.
pub(crate) fn layout(
    b: usize,
    block_rows: usize,
    allowed: bool,
    halves: bool,
) -> Vec<(usize, usize)> {
    let rows = block_rows.max(1);
    if !allowed || b <= 1 {
        return vec![(0, b)];
    }
    let rows = if b <= rows && halves && b >= 2 * MIN_SPLIT_ROWS {
        b.div_ceil(2)
    } else {
        rows
    };
    (0..b).step_by(rows).map(|s| (s, rows.min(b - s))).collect()
}

/// A block's worker, its index and its (start, rows).
type Job = (Box<dyn Objective + Send>, usize, (usize, usize));

/// The loss (weighted by rows/B when there are several blocks) and its gradients on one block.
pub(crate) fn block(
    objective: &mut dyn Objective,
    model: &dyn Model,
    xb: &Tensor,
    weight: Option<f64>,
    rng: &mut Rng,
) -> StepGrads {
    let tape = Tape::new();
    let p = model.params().bind(&tape);
    let q = objective
        .params()
        .map(|q| q.bind(&tape))
        .unwrap_or_default();
    let mut l = objective.loss(&tape, model, &p, &q, xb, rng);
    if let Some(w) = weight {
        l = l.mul_scalar(w);
    }
    StepGrads {
        loss: l.item(),
        objective: if q.is_empty() {
            Vec::new()
        } else {
            param_grads(&l, &q)
        },
        model: param_grads(&l, &p),
    }
}

/// The loss and gradients of `objective` on the batch `x`, by row blocks when the objective
/// allows them ([`Objective::row_blocks_allowed`]): blocks of `block_rows` rows taken in order
/// on the caller's stream, or, for an objective with workers, blocks on their own streams
/// (halves of a batch too small to split otherwise) in parallel on the rayon pool.
pub(crate) fn step_grads(
    objective: &mut dyn Objective,
    model: &dyn Model,
    x: &Tensor,
    block_rows: usize,
    rng: &mut Rng,
) -> StepGrads {
    let b = x.shape().first().copied().unwrap_or(0);
    let workers = objective.block_worker().is_some();
    let blocks = layout(b, block_rows, objective.row_blocks_allowed(), workers);
    if blocks.len() == 1 {
        return block(objective, model, x, None, rng);
    }
    let parts: Vec<StepGrads> = if workers {
        let streams = rng.fork();
        let all: Vec<_> = blocks.into_iter().enumerate().collect();
        worker_blocks(objective, model, x, 0, b, &all, &streams)
    } else {
        let weight = |rows: usize| Some(rows as f64 / b as f64);
        blocks
            .iter()
            .map(|&(start, rows)| {
                block(
                    objective,
                    model,
                    &x.narrow(0, start, rows),
                    weight(rows),
                    rng,
                )
            })
            .collect()
    };
    sum_parts(parts).expect("at least two blocks")
}

/// The blocks `blocks` ((index, (start, rows)) of a batch of `b` rows, in order) computed by
/// workers of `objective`, block i on stream i of `streams`, weighted by rows/b, in parallel
/// on the rayon pool. `x` holds the batch's rows from `offset` on.
pub(crate) fn worker_blocks(
    objective: &dyn Objective,
    model: &dyn Model,
    x: &Tensor,
    offset: usize,
    b: usize,
    blocks: &[(usize, (usize, usize))],
    streams: &Rng,
) -> Vec<StepGrads> {
    let one = |(mut obj, i, (start, rows)): Job| {
        let mut r = streams.stream(i as u64);
        let xb = x.narrow(0, start - offset, rows);
        block(
            obj.as_mut(),
            model,
            &xb,
            Some(rows as f64 / b as f64),
            &mut r,
        )
    };
    let jobs: Vec<Job> = blocks
        .iter()
        .map(|&(i, blk)| (objective.block_worker().expect("workers"), i, blk))
        .collect();
    if rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        jobs.into_par_iter().map(one).collect()
    } else {
        jobs.into_iter().map(one).collect()
    }
}

/// The sum of `parts` in order (None when there are none).
pub(crate) fn sum_parts(parts: Vec<StepGrads>) -> Option<StepGrads> {
    let mut parts = parts.into_iter();
    let mut total = parts.next()?;
    for part in parts {
        total.loss += part.loss;
        add_into(&mut total.model, part.model);
        add_into(&mut total.objective, part.objective);
    }
    Some(total)
}

/// Adds `new` to the gradients in `acc`, in order (in place where `acc`'s buffer is its own).
fn add_into(acc: &mut [Tensor], new: Vec<Tensor>) {
    for (a, n) in acc.iter_mut().zip(new) {
        a.add_assign(&n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        train_step, DenoisingScoreMatching, ExactScoreMatching, Nce, NoiseDistribution,
        SlicedScoreMatching, TrainStep,
    };
    use ebm_core::DType;
    use ebm_nn::{Mlp, MlpConfig, Module, Optimizer};

    type Make = Box<dyn Fn() -> Box<dyn Objective> + Sync>;

    fn objectives(dtype: DType) -> Vec<Make> {
        vec![
            Box::new(|| Box::new(DenoisingScoreMatching::new(0.3))),
            Box::new(|| Box::new(DenoisingScoreMatching::with_control_variate(0.3))),
            Box::new(|| Box::new(ExactScoreMatching)),
            Box::new(|| Box::new(SlicedScoreMatching::default())),
            Box::new(|| {
                Box::new(SlicedScoreMatching {
                    n_projections: 3,
                    ..SlicedScoreMatching::default()
                })
            }),
            Box::new(move || {
                Box::new(Nce::new(
                    NoiseDistribution::isotropic(2, 2.0),
                    1.0,
                    0.0,
                    dtype,
                ))
            }),
        ]
    }

    /// A blocked step is the sum of its blocks, each computed alone by hand on stream i of
    /// the caller's generator forked once, weighted by rows/B: batches of 2·512 + 37 rows
    /// (blocks of 512) and of 300 (two halves).
    #[test]
    fn blocks_are_computed_alone_on_their_own_streams() {
        const ROWS: usize = 512;
        let mut init = Rng::new(3);
        let model = Mlp::with_dtype(MlpConfig::new(&[2, 16, 16, 1]), &mut init, DType::F64);
        for b in [2 * ROWS + 37, 300] {
            let x = init.normal(&[b, 2], DType::F64);
            for make in objectives(DType::F64) {
                let name = make().name();
                assert!(make().row_blocks_allowed() && make().block_worker().is_some());
                let got = step_grads(make().as_mut(), &model, &x, ROWS, &mut Rng::new(9));
                let mut rng = Rng::new(9);
                let streams = rng.fork();
                let starts: Vec<usize> = if b == 300 {
                    vec![0, 150, 300]
                } else {
                    vec![0, 512, 1024, b]
                };
                let (mut loss, mut g) = (0.0, Vec::<Tensor>::new());
                for (i, w) in starts.windows(2).enumerate() {
                    let mut obj = make();
                    let tape = Tape::new();
                    let p = model.params().bind(&tape);
                    let q = obj.params().map(|q| q.bind(&tape)).unwrap_or_default();
                    let xb = x.narrow(0, w[0], w[1] - w[0]);
                    let l = obj.loss(&tape, &model, &p, &q, &xb, &mut streams.stream(i as u64));
                    let l = l.mul_scalar((w[1] - w[0]) as f64 / b as f64);
                    loss += l.item();
                    let gi = param_grads(&l, &p);
                    if g.is_empty() {
                        g = gi
                    } else {
                        add_into(&mut g, gi)
                    }
                }
                assert_eq!(got.loss, loss, "{name} b={b}");
                for (a, c) in got.model.iter().zip(&g) {
                    assert_eq!(a.max_abs_diff(c), 0.0, "{name} b={b}");
                }
                // step_grads moved the caller's generator by the one fork, as here
                let mut moved = Rng::new(9);
                step_grads(make().as_mut(), &model, &x, ROWS, &mut moved);
                assert_eq!(moved.state(), rng.state(), "{name}: one fork drawn");
            }
        }
    }

    /// The same step, bit for bit, on 1, 2 and 3 threads (f32, as the benchmark runs).
    #[test]
    fn a_step_is_the_same_on_any_thread_count() {
        let mut init = Rng::new(5);
        let model = Mlp::new(MlpConfig::new(&[2, 32, 32, 1]), &mut init);
        for b in [1100, 256] {
            let x = init.normal(&[b, 2], DType::F32);
            for make in objectives(DType::F32) {
                let on = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    pool.install(|| {
                        let mut obj = make();
                        let mut m = model.clone();
                        let mut step = TrainStep::new(Optimizer::adam(1e-3, m.params()));
                        let mut rng = Rng::new(7);
                        let losses: Vec<u64> = (0..2)
                            .map(|_| {
                                train_step(obj.as_mut(), &mut m, &mut step, &x, &mut rng).to_bits()
                            })
                            .collect();
                        let params: Vec<Vec<f64>> =
                            m.params().iter().map(|(_, t)| t.to_vec_f64()).collect();
                        (losses, params, rng.state())
                    })
                };
                let one = on(1);
                assert_eq!(one, on(2), "{} b={b}: 2 threads", make().name());
                assert_eq!(one, on(3), "{} b={b}: 3 threads", make().name());
            }
        }
    }

    #[test]
    fn layouts() {
        assert_eq!(
            layout(1061, 512, true, false),
            [(0, 512), (512, 512), (1024, 37)]
        );
        assert_eq!(layout(1061, 512, false, true), [(0, 1061)]);
        assert_eq!(layout(256, 512, true, false), [(0, 256)]);
        assert_eq!(layout(256, 512, true, true), [(0, 128), (128, 128)]);
        assert_eq!(layout(255, 512, true, true), [(0, 255)]);
        assert_eq!(layout(301, 512, true, true), [(0, 151), (151, 150)]);
        assert_eq!(layout(1024, 512, true, true), [(0, 512), (512, 512)]);
        assert_eq!(layout(0, 512, true, true), [(0, 0)]);
    }
}
