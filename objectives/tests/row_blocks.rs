//! Every new objective that allows row blocks ([`Objective::row_blocks_allowed`]) keeps the
//! promise: the blocked training step is the whole-batch step (same loss, same update of the
//! model and of the objective's own parameters, same randomness drawn); those that do not
//! allow them say so.

use ebm_autodiff::Tape;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{param_grads, Mlp, MlpConfig, Module, Optimizer};
use ebm_objectives::{
    train_step, ConditionalNce, DiffusionRecoveryLikelihood, EnergyDiscrepancy, FceOptions,
    FlowContrastive, GeneralizedScoreMatching, KernelSteinDiscrepancy, LearnedStein, LsdOptions,
    MinimumProbabilityFlow, MinimumVelocity, Objective, RatioMatching, TrainStep, TRAIN_BLOCK_ROWS,
};

type Make = Box<dyn Fn() -> Box<dyn Objective>>;

#[test]
fn blocked_steps_are_whole_batch_steps() {
    let b = 2 * TRAIN_BLOCK_ROWS + 37;
    let mut init = Rng::new(3);
    let normal = init.normal(&[b, 2], DType::F64);
    let positive = normal.abs();
    let binary = normal.gt(&Tensor::zeros(&[b, 2], DType::F64));
    let cases: Vec<(Make, &Tensor)> = vec![
        (
            Box::new(|| Box::new(MinimumProbabilityFlow::default())),
            &normal,
        ),
        (Box::new(|| Box::new(MinimumVelocity::default())), &normal),
        (Box::new(|| Box::new(ConditionalNce::default())), &normal),
        (Box::new(|| Box::new(EnergyDiscrepancy::default())), &normal),
        (
            Box::new(|| {
                Box::new(LearnedStein::new(
                    2,
                    LsdOptions {
                        critic_hidden: vec![8],
                        ..LsdOptions::default()
                    },
                    &mut Rng::new(1),
                    DType::F64,
                ))
            }),
            &normal,
        ),
        (
            Box::new(|| Box::new(GeneralizedScoreMatching::default())),
            &positive,
        ),
        (Box::new(|| Box::new(RatioMatching)), &binary),
    ];
    let model = Mlp::with_dtype(MlpConfig::new(&[2, 16, 16, 1]), &mut init, DType::F64);
    for (make, x) in cases {
        let name = make().name();
        assert!(make().row_blocks_allowed(), "{name}");
        // blocked, through train_step
        let mut o1 = make();
        let mut m1 = model.clone();
        let mut s1 = TrainStep::new(Optimizer::sgd(0.1, 0.0, model.params()));
        let mut r1 = Rng::new(9);
        let l1 = train_step(o1.as_mut(), &mut m1, &mut s1, x, &mut r1);
        // one tape over the whole batch
        let mut o2 = make();
        let (mut m2, mut opt) = (model.clone(), Optimizer::sgd(0.1, 0.0, model.params()));
        let mut r2 = Rng::new(9);
        let (l2, g, gq) = {
            let tape = Tape::new();
            let p = m2.params().bind(&tape);
            let q = o2.params().map(|q| q.bind(&tape)).unwrap_or_default();
            let l = o2.loss(&tape, &m2, &p, &q, x, &mut r2);
            (l.item(), param_grads(&l, &p), param_grads(&l, &q))
        };
        opt.step(m2.params_mut(), &g);
        if let Some(q) = o2.params_mut() {
            Optimizer::sgd(0.1, 0.0, q).step(q, &gq);
        }
        assert!(
            (l1 - l2).abs() <= 1e-12 * (1.0 + l2.abs()),
            "{name}: loss {l1} vs {l2}"
        );
        let pairs =
            m1.params()
                .iter()
                .zip(m2.params().iter())
                .chain(match (o1.params(), o2.params()) {
                    (Some(a), Some(c)) => a.iter().zip(c.iter()).collect::<Vec<_>>(),
                    _ => Vec::new(),
                });
        for ((n, a), (_, c)) in pairs {
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
    // pairwise, global or chained objectives keep whole batches
    let flow = FlowContrastive::new(2, &FceOptions::default(), &mut Rng::new(0), DType::F32);
    assert!(!flow.row_blocks_allowed());
    assert!(!KernelSteinDiscrepancy::default().row_blocks_allowed());
    assert!(!DiffusionRecoveryLikelihood::default().row_blocks_allowed());
}
