//! Samplers call the plain-tensor `energy` / `score` in long loops: after warm-up calls,
//! repeated calls leave no tensor buffer alive (no tape survives a call). Warm-up is two
//! calls: on x86 a weight keeps its packed GEMM panels from its second product on (one set
//! per weight, counted with its buffer), and some weights here are read once per call.
//!
//! This file holds a single test on purpose: `live_tensor_bytes()` / `live_tensor_buffers()`
//! are process-wide counters, and tests of one binary run on parallel threads.

use ebm_core::{live_tensor_buffers, live_tensor_bytes, DType, Rng, Tensor};
use ebm_nn::{
    EnergyModel, Mlp, MlpConfig, NoiseConditionalConfig, NoiseConditionalModel, NoiseConditionalNet,
};

#[test]
fn plain_energy_and_score_keep_nothing_alive() {
    let m = Mlp::new(MlpConfig::new(&[2, 32, 32, 1]), &mut Rng::new(0));
    let net = NoiseConditionalNet::new(NoiseConditionalConfig::new(2, &[32]), &mut Rng::new(1));
    let x = Rng::new(2).normal(&[64, 2], DType::F32);
    let sigma = Tensor::full(&[64], 0.5, DType::F32);
    let run = || {
        let _ = m.score(&x);
        let _ = m.energy(&x);
        let _ = m.energy_and_score(&x);
        let _ = net.score(&x, &sigma);
    };
    run();
    run();
    let (bytes, buffers) = (live_tensor_bytes(), live_tensor_buffers());
    for _ in 0..200 {
        run();
    }
    assert_eq!(live_tensor_bytes(), bytes);
    assert_eq!(live_tensor_buffers(), buffers);
}
