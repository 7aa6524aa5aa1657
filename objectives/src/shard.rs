//! Data-parallel training steps: each of N ranks computes the gradient of its share of the
//! global batch, one all-reduce adds them, and every rank takes the same update.
//!
//! The share of a rank is keyed so that N ranks make the same random draws as one process
//! ([`shard_rows`]). For an objective with block workers ([`Objective::block_worker`]) the
//! global batch of B rows is laid out in row blocks exactly as one process lays it out
//! (blocks of `block_rows`, or two halves), block i draws from stream i of the generator
//! forked once, and each block is weighted by rows/B: rank r owns blocks
//! ⌊r·K/N⌋ .. ⌊(r+1)·K/N⌋ of the K blocks. The sum over the ranks is then the one-process
//! step's sum of blocks, regrouped: equal up to the rounding of the regrouping, and bit for
//! bit for two ranks with two blocks. Ranks beyond the block count compute nothing.
//!
//! Any other objective (PCD, whose replay buffer is each rank's own; KSD's pair statistic)
//! gets an even split of the rows, each rank on its own stream of the generator forked once
//! (stream r), its loss weighted by its rows/B: the data-parallel step of PyTorch DDP or
//! Horovod, equal to the one-process step in distribution rather than draw for draw. On one
//! rank every objective takes exactly the one-process step ([`crate::train_step`]).

use crate::blocks::{layout, step_grads, sum_parts, worker_blocks, StepGrads};
use crate::Objective;
use ebm_comm::{owned_range, CommError, Communicator};
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::Model;
use std::ops::Range;

/// The rows of a global batch of `b` rows that rank `rank` of `ranks` computes (see the
/// module's doc): whole row blocks of the one-process layout for an objective with block
/// workers, an even split otherwise. The ranks' ranges tile 0..b in rank order.
pub fn shard_rows(
    objective: &dyn Objective,
    block_rows: usize,
    b: usize,
    rank: usize,
    ranks: usize,
) -> Range<usize> {
    if ranks == 1 {
        return 0..b;
    }
    if objective.block_worker().is_some() {
        let blocks = layout(b, block_rows, objective.row_blocks_allowed(), true);
        let own = owned_range(blocks.len(), rank, ranks);
        let at = |i: usize| blocks.get(i).map_or(b, |blk| blk.0);
        at(own.start)..at(own.end)
    } else {
        owned_range(b, rank, ranks)
    }
}

/// The number of row blocks a global batch of `b` rows is laid out in for `objective`: the
/// most ranks that can share its work (an objective without block workers splits by rows).
pub fn shard_capacity(objective: &dyn Objective, block_rows: usize, b: usize) -> usize {
    if objective.block_worker().is_some() {
        layout(b, block_rows, objective.row_blocks_allowed(), true).len()
    } else {
        b
    }
}

/// This rank's part of the data-parallel step's loss and gradients (before the all-reduce):
/// `x` holds rows [`shard_rows`] of the global batch of `b` rows.
pub(crate) fn shard_grads(
    objective: &mut dyn Objective,
    model: &dyn Model,
    x: &Tensor,
    b: usize,
    block_rows: usize,
    rng: &mut Rng,
    (rank, ranks): (usize, usize),
) -> StepGrads {
    let rows = shard_rows(objective, block_rows, b, rank, ranks);
    let got = x.shape().first().copied().unwrap_or(0);
    assert_eq!(
        got,
        rows.len(),
        "train_step_shard: rank {rank} of {ranks} owns rows {rows:?} of a batch of {b}, got {got} rows"
    );
    if ranks == 1 {
        return step_grads(objective, model, x, block_rows, rng);
    }
    let streams = rng.fork();
    let part = if objective.block_worker().is_some() {
        let blocks = layout(b, block_rows, objective.row_blocks_allowed(), true);
        let own: Vec<_> = owned_range(blocks.len(), rank, ranks)
            .map(|i| (i, blocks[i]))
            .collect();
        sum_parts(worker_blocks(
            objective, model, x, rows.start, b, &own, &streams,
        ))
    } else if rows.is_empty() {
        None
    } else {
        let mut r = streams.stream(rank as u64);
        let w = rows.len() as f64 / b as f64;
        let mut g = step_grads(objective, model, x, block_rows, &mut r);
        g.loss *= w;
        for t in g.model.iter_mut().chain(g.objective.iter_mut()) {
            *t = t.mul_scalar(w);
        }
        Some(g)
    };
    part.unwrap_or_else(|| StepGrads {
        loss: 0.0,
        model: model.params().iter().map(|(_, t)| t.zeros_like()).collect(),
        objective: objective
            .params()
            .map(|q| q.iter().map(|(_, t)| t.zeros_like()).collect())
            .unwrap_or_default(),
    })
}

/// Adds the ranks' losses and gradients in place with one all-reduce per element type (one
/// call for an all-f32 or all-f64 model): the loss travels with the gradients, in the type
/// of the model's first parameter.
pub(crate) fn all_reduce_grads(
    g: &mut StepGrads,
    comm: &dyn Communicator,
) -> Result<(), CommError> {
    if comm.size() == 1 {
        return Ok(());
    }
    let loss_dtype = g.model.first().map_or(DType::F64, |t| t.dtype());
    let tensors = || g.model.iter().chain(g.objective.iter());
    let mut f32s: Vec<f32> = Vec::new();
    let mut f64s: Vec<f64> = Vec::new();
    for t in tensors() {
        match t.dtype() {
            DType::F32 => f32s.extend(t.to_vec::<f32>()),
            DType::F64 => f64s.extend(t.to_vec::<f64>()),
        }
    }
    match loss_dtype {
        DType::F32 => f32s.push(g.loss as f32),
        DType::F64 => f64s.push(g.loss),
    }
    if !f32s.is_empty() {
        comm.all_reduce_sum_f32(&mut f32s)?;
    }
    if !f64s.is_empty() {
        comm.all_reduce_sum_f64(&mut f64s)?;
    }
    g.loss = match loss_dtype {
        DType::F32 => f64::from(f32s.pop().expect("the loss")),
        DType::F64 => f64s.pop().expect("the loss"),
    };
    let (mut a, mut b) = (0, 0);
    for t in g.model.iter_mut().chain(g.objective.iter_mut()) {
        let n = t.numel();
        *t = match t.dtype() {
            DType::F32 => {
                a += n;
                Tensor::from_vec(f32s[a - n..a].to_vec(), t.shape())
            }
            DType::F64 => {
                b += n;
                Tensor::from_vec(f64s[b - n..b].to_vec(), t.shape())
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        train_step, train_step_shard, DenoisingScoreMatching, ExactScoreMatching, Nce,
        NoiseDistribution, TrainStep,
    };
    use ebm_autodiff::{Tape, Var};
    use ebm_nn::{Mlp, MlpConfig, Module, Optimizer};
    use std::sync::{Arc, Barrier, Mutex};

    /// N ranks as N threads of this process, for tests: the all-reduce adds the ranks'
    /// buffers in rank order (as MPI's reduction of two ranks does).
    struct Threads {
        rank: usize,
        size: usize,
        slots: Arc<Mutex<Vec<Vec<f64>>>>,
        barrier: Arc<Barrier>,
    }

    impl Threads {
        fn group(size: usize) -> Vec<Threads> {
            let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
            let barrier = Arc::new(Barrier::new(size));
            (0..size)
                .map(|rank| Threads {
                    rank,
                    size,
                    slots: slots.clone(),
                    barrier: barrier.clone(),
                })
                .collect()
        }

        fn sum(&self, mine: Vec<f64>) -> Vec<f64> {
            self.slots.lock().unwrap()[self.rank] = mine;
            self.barrier.wait();
            let all = self.slots.lock().unwrap().clone();
            self.barrier.wait();
            let mut total = all[0].clone();
            for other in &all[1..] {
                for (t, o) in total.iter_mut().zip(other) {
                    *t += o;
                }
            }
            total
        }
    }

    impl Communicator for Threads {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn engine(&self) -> &'static str {
            "threads"
        }
        fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<(), CommError> {
            // f32 values added in f64 and rounded once: for two ranks the f32 sum
            let total = self.sum(buf.iter().map(|&v| f64::from(v)).collect());
            for (b, t) in buf.iter_mut().zip(total) {
                *b = if self.size == 2 {
                    t as f32
                } else {
                    // more ranks: add in f32, in rank order
                    unreachable!("tests use f64 models beyond two ranks")
                };
            }
            Ok(())
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<(), CommError> {
            let total = self.sum(buf.to_vec());
            buf.copy_from_slice(&total);
            Ok(())
        }
        fn broadcast_bytes(&self, _root: usize, _bytes: &mut Vec<u8>) -> Result<(), CommError> {
            unreachable!("not used by the step")
        }
        fn barrier(&self) -> Result<(), CommError> {
            self.barrier.wait();
            Ok(())
        }
    }

    /// ESM without block workers: the even row split on per-rank streams.
    struct NoWorkers(ExactScoreMatching);

    impl Objective for NoWorkers {
        fn name(&self) -> &'static str {
            "esm"
        }
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
            self.0.loss(tape, model, p, q, x, rng)
        }
    }

    #[test]
    fn shards_are_whole_blocks_that_tile_the_batch() {
        let dsm = DenoisingScoreMatching::new(0.3);
        // 1061 rows in blocks of 512: 512, 512, 37
        let rows = |ranks| -> Vec<Range<usize>> {
            (0..ranks)
                .map(|r| shard_rows(&dsm, 512, 1061, r, ranks))
                .collect()
        };
        assert_eq!(rows(1), vec![0..1061]);
        assert_eq!(rows(2), [0..512, 512..1061]);
        assert_eq!(rows(3), [0..512, 512..1024, 1024..1061]);
        assert_eq!(rows(4), [0..0, 0..512, 512..1024, 1024..1061]);
        // 256 rows: two halves
        assert_eq!(shard_rows(&dsm, 512, 256, 1, 2), 128..256);
        assert_eq!(shard_capacity(&dsm, 512, 256), 2);
        assert_eq!(shard_capacity(&dsm, 64, 256), 4);
        // without workers: an even split of the rows
        let esm = NoWorkers(ExactScoreMatching);
        assert_eq!(shard_rows(&esm, 512, 10, 0, 3), 0..3);
        assert_eq!(shard_rows(&esm, 512, 10, 2, 3), 6..10);
        assert_eq!(shard_capacity(&esm, 512, 10), 10);
    }

    /// N ranks' parts of a step, added, are the one-process step: the same blocks on the same
    /// streams (objectives with workers; DSM and NCE draw noise), or the whole-batch mean
    /// (ESM without workers, which draws nothing); every rank's generator moves as one
    /// process's does.
    #[test]
    fn the_ranks_parts_add_up_to_the_one_process_step() {
        let mut init = Rng::new(3);
        let model = Mlp::with_dtype(MlpConfig::new(&[2, 16, 1]), &mut init, DType::F64);
        let x = init.normal(&[1061, 2], DType::F64);
        type Make = fn() -> Box<dyn Objective>;
        let makes: [Make; 3] = [
            || Box::new(DenoisingScoreMatching::new(0.3)),
            || {
                Box::new(Nce::new(
                    NoiseDistribution::isotropic(2, 2.0),
                    1.0,
                    0.0,
                    DType::F64,
                ))
            },
            || Box::new(NoWorkers(ExactScoreMatching)),
        ];
        for make in makes {
            let name = make().name();
            let mut rng1 = Rng::new(9);
            let one = step_grads(make().as_mut(), &model, &x, 512, &mut rng1);
            for ranks in [2, 3, 4] {
                let mut total: Option<StepGrads> = None;
                for rank in 0..ranks {
                    let mut obj = make();
                    let rows = shard_rows(obj.as_ref(), 512, 1061, rank, ranks);
                    let xr = x.narrow(0, rows.start, rows.len());
                    let mut rng = Rng::new(9);
                    let g = shard_grads(
                        obj.as_mut(),
                        &model,
                        &xr,
                        1061,
                        512,
                        &mut rng,
                        (rank, ranks),
                    );
                    if name != "esm" {
                        assert_eq!(rng, rng1, "{name}: the generator moves by the one fork");
                    }
                    total = sum_parts(total.into_iter().chain([g]).collect());
                }
                let total = total.unwrap();
                let tol = |v: f64| 1e-12 * (1.0 + v.abs());
                assert!(
                    (total.loss - one.loss).abs() <= tol(one.loss),
                    "{name} × {ranks}: loss {} vs {}",
                    total.loss,
                    one.loss
                );
                for (a, c) in total
                    .model
                    .iter()
                    .chain(&total.objective)
                    .zip(one.model.iter().chain(&one.objective))
                {
                    assert!(a.max_abs_diff(c) <= tol(c.max_abs()), "{name} × {ranks}");
                }
            }
        }
    }

    /// Twenty data-parallel steps on two ranks (threads standing in for processes) and on
    /// one: DSM f32 bit for bit (two ranks, two blocks: the same sum), NCE f64 with its log Z
    /// to rounding; every rank holds the same parameters.
    #[test]
    fn two_ranks_train_as_one_process() {
        let mut init = Rng::new(5);
        let x = init.normal(&[20 * 256, 2], DType::F32);
        let cases: [(DType, bool); 2] = [(DType::F32, false), (DType::F64, true)];
        for (dtype, nce) in cases {
            let mlp = Mlp::with_dtype(MlpConfig::new(&[2, 16, 1]), &mut Rng::new(1), dtype);
            let make = move || -> Box<dyn Objective> {
                if nce {
                    Box::new(Nce::new(
                        NoiseDistribution::isotropic(2, 2.0),
                        1.0,
                        0.0,
                        dtype,
                    ))
                } else {
                    Box::new(DenoisingScoreMatching::new(0.3))
                }
            };
            let x = x.cast(dtype);
            let batch = |s: usize| x.narrow(0, 256 * s, 256);
            let run_one = || {
                let (mut m, mut obj) = (mlp.clone(), make());
                let mut step = TrainStep::new(Optimizer::adam(1e-2, m.params()));
                let mut rng = Rng::new(7);
                for s in 0..20 {
                    train_step(obj.as_mut(), &mut m, &mut step, &batch(s), &mut rng);
                }
                let q: Vec<f64> = obj
                    .params()
                    .map(|q| q.iter().flat_map(|(_, t)| t.to_vec_f64()).collect())
                    .unwrap_or_default();
                (m, q)
            };
            let (one, q_one) = run_one();
            let ranks: Vec<(Mlp, Vec<f64>)> = std::thread::scope(|s| {
                let handles: Vec<_> = Threads::group(2)
                    .into_iter()
                    .map(|comm| {
                        let (mlp, batch) = (&mlp, &batch);
                        s.spawn(move || {
                            let (mut m, mut obj) = (mlp.clone(), make());
                            let mut step = TrainStep::new(Optimizer::adam(1e-2, m.params()));
                            let mut rng = Rng::new(7);
                            for st in 0..20 {
                                let rows =
                                    shard_rows(obj.as_ref(), step.block_rows, 256, comm.rank(), 2);
                                let xr = batch(st).narrow(0, rows.start, rows.len());
                                train_step_shard(
                                    obj.as_mut(),
                                    &mut m,
                                    &mut step,
                                    &xr,
                                    256,
                                    &mut rng,
                                    &comm,
                                )
                                .unwrap();
                            }
                            let q: Vec<f64> = obj
                                .params()
                                .map(|q| q.iter().flat_map(|(_, t)| t.to_vec_f64()).collect())
                                .unwrap_or_default();
                            (m, q)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (m, q) in &ranks {
                for ((n, a), (_, c)) in m.params().iter().zip(one.params().iter()) {
                    let d = a.max_abs_diff(c);
                    if dtype == DType::F32 {
                        assert_eq!(d, 0.0, "DSM f32 {n}: bit for bit");
                    } else {
                        assert!(d <= 1e-12 * (1.0 + c.max_abs()), "NCE {n}: {d}");
                    }
                }
                assert_eq!(q.len(), q_one.len());
                for (a, c) in q.iter().zip(&q_one) {
                    assert!((a - c).abs() <= 1e-12 * (1.0 + c.abs()), "log Z {a} vs {c}");
                }
            }
            assert!(
                ranks[0].0.params().bit_eq(ranks[1].0.params()),
                "the ranks agree"
            );
        }
    }
}
