//! A 10⁵-step chain keeps memory flat: 1,000 short-run SGLD rounds of K = 100 steps (10⁵
//! Langevin steps per chain) on an MLP energy written in autodiff ops, with a replay buffer
//! written back every round. Every score call builds and drops its own tape.
//!
//! This file holds a single test on purpose: `live_tensor_bytes()` / `live_tensor_buffers()`
//! are process-wide counters, and tests of one binary run on parallel threads.

use ebm_autodiff::Var;
use ebm_core::{live_tensor_buffers, live_tensor_bytes, DType, Rng};
use ebm_samplers::{Init, ReplayBuffer, ShortRunSgld, Step, Ula, VarEnergy};

#[test]
fn long_chains_keep_memory_flat() {
    const ROUNDS: usize = 1000;
    const K: usize = 100;
    let mut rng = Rng::new(77);
    // a small 2-32-32-1 SiLU MLP with random weights: the chain length is what is under test
    let mut weights = Vec::new();
    for w in [2usize, 32, 32, 1].windows(2) {
        let b = 1.0 / (w[0] as f64).sqrt();
        weights.push(rng.uniform(&[w[1], w[0]], -b, b, DType::F32));
        weights.push(rng.uniform(&[w[1]], -b, b, DType::F32));
    }
    let target = VarEnergy::new(move |x: &Var| {
        let p: Vec<Var> = weights.iter().map(|w| x.constant(w.clone())).collect();
        let lin = |h: &Var, l: usize| h.matmul_t(&p[2 * l], false, true).add(&p[2 * l + 1]);
        let h = lin(&lin(x, 0).silu(), 1).silu();
        // a confining term keeps chains bounded whatever the random weights do
        lin(&h, 2)
            .reshape(&[x.shape()[0]])
            .add(&x.square().sum(&[1], false).mul_scalar(0.5))
    });
    let mut buffer = ReplayBuffer::new(
        500,
        &[2],
        Init::Uniform { lo: -2.0, hi: 2.0 },
        DType::F32,
        &mut rng,
    );
    let sgld = ShortRunSgld::new(Ula::new(
        Step::Decoupled {
            step: 0.01,
            noise: 0.1,
        },
        K,
    ));
    let before = (live_tensor_bytes(), live_tensor_buffers());
    let mut at_10 = None;
    for round in 1..=ROUNDS {
        let run = sgld.sample(&target, &mut buffer, 32, &mut rng);
        drop(run);
        if round == 10 {
            at_10 = Some((live_tensor_bytes(), live_tensor_buffers()));
        }
    }
    let at_end = (live_tensor_bytes(), live_tensor_buffers());
    let at_10 = at_10.unwrap();
    eprintln!(
        "memory: live (bytes, buffers) before {before:?}, after round 10 {at_10:?}, after round \
         {ROUNDS} ({} Langevin steps per chain) {at_end:?}; tolerance: equal",
        ROUNDS * K
    );
    assert_eq!(at_10, at_end, "live tensor memory grew over the chain");
    assert!(buffer.data().to_vec_f64().iter().all(|v| v.is_finite()));
}
