//! Chain-steps per second of Langevin sampling on the 2-128-128-1 SiLU MLP energy: the fused
//! kernel (K steps per launch) against the per-op GPU path (ebm-nn's MLP score by autodiff on
//! GPU tensors, then the update in tensor ops with in-kernel noise), for 10⁴–10⁶ chains.
//! Prints one JSON line per (path, chains).
//!
//! `cargo run --release -p ebm-cuda-bench --features cuda --bin langevin [-- --chains 10000,1000000 --steps 100]`

use ebm_core::{DType, Device, Rng, Tensor};
use ebm_cuda::{DeviceBuffer, FusedMlpSampler, PhiloxState};
use ebm_cuda_bench::{arg_list, arg_one, device_json, gpu_or_exit, time_per_call};
use ebm_nn::{EnergyModel, Mlp, MlpConfig, Module};

fn main() {
    let g = gpu_or_exit("langevin");
    let chains = arg_list("--chains", &[10_000, 100_000, 1_000_000]);
    let steps = arg_one("--steps", 100);
    let per_op_steps = arg_one("--per-op-steps", 10);
    let widths = [2usize, 128, 128, 1];
    let (eps, dev) = (0.01f64, Device::Cuda(g.ordinal()));
    let (eta, sigma) = (0.5 * eps * eps, eps);
    let mut net = Mlp::new(MlpConfig::new(&widths), &mut Rng::new(0));
    let layers: Vec<(Vec<f32>, Vec<f32>)> = (0..widths.len() - 1)
        .map(|i| {
            let p = net.params();
            let w = p
                .by_name(&format!("l{i}.weight"))
                .expect("weight")
                .to_vec::<f32>();
            let b = p
                .by_name(&format!("l{i}.bias"))
                .expect("bias")
                .to_vec::<f32>();
            (w, b)
        })
        .collect();
    let refs: Vec<(&[f32], &[f32])> = layers.iter().map(|(w, b)| (&w[..], &b[..])).collect();
    let fused = FusedMlpSampler::new(&g, &widths, &refs).expect("fused sampler");
    net.params_mut().update(|_, t| t.to_device(dev));

    for &n in &chains {
        let x0 = Rng::new(1).normal(&[n, 2], DType::F32);
        // fused: one launch runs `steps` steps of every chain
        let mut x = DeviceBuffer::from_host(&g, x0.as_slice::<f32>()).expect("upload");
        let mut st = PhiloxState::new(2, 0, 0);
        let secs = time_per_call(&g, 1.0, 3, || {
            st = fused.run(&mut x, steps, eta, sigma, st).expect("fused run");
        });
        report(
            "fused",
            n,
            steps,
            secs,
            &g,
            &fused.plan().desc.chains_per_block,
        );

        // per-op: what any autodiff energy gets (score on a fresh tape, then the update)
        let mut xt = x0.to_device(dev);
        let mut rng = Rng::new(2);
        let secs = time_per_call(&g, 1.0, 1, || {
            for _ in 0..per_op_steps {
                let s = net.score(&xt);
                let z = rng.normal_on(&[n, 2], DType::F32, dev);
                xt = xt.add(&s.mul_scalar(eta)).add(&z.mul_scalar(sigma));
            }
        });
        report("per_op", n, per_op_steps, secs, &g, &0);
        let _: &Tensor = &xt;
    }
}

fn report(path: &str, chains: usize, steps: usize, secs: f64, g: &ebm_cuda::Gpu, cpb: &u32) {
    println!(
        "{}",
        serde_json::json!({
            "bench": "langevin", "path": path, "model": "mlp-2-128-128-1", "chains": chains,
            "steps_per_call": steps, "seconds_per_call": secs,
            "chain_steps_per_s": (chains * steps) as f64 / secs,
            "chains_per_block": cpb, "device": device_json(g),
        })
    );
}
