//! Denoising score matching steps per second on the GPU: the 2-128-128-1 SiLU MLP energy,
//! σ = 0.1, Adam (lr 1e-3) written in tensor ops, batches of 1024 and 65,536 drawn on the GPU
//! from a 2-d mixture of 8 Gaussians. The loss is a gradient of the energy (create_graph),
//! differentiated again for the parameter gradient: grad-of-grad on GPU tensors.
//! Prints one JSON line per batch size.
//!
//! `cargo run --release -p ebm-cuda-bench --features cuda --bin train [-- --batch 1024,65536 --steps 100]`

use ebm_autodiff::Tape;
use ebm_core::{DType, Device, Rng, Tensor};
use ebm_cuda_bench::{arg_list, arg_one, device_json, gpu_or_exit, time_per_call};
use ebm_nn::{param_grads, Mlp, MlpConfig, Module};
use ebm_objectives::DenoisingScoreMatching;

/// Adam in tensor ops (runs wherever the parameters live).
struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl Adam {
    fn step(&mut self, net: &mut Mlp, grads: &[Tensor], lr: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (i, g) in grads.iter().enumerate() {
            self.m[i] = self.m[i].mul_scalar(b1).add(&g.mul_scalar(1.0 - b1));
            self.v[i] = self.v[i]
                .mul_scalar(b2)
                .add(&g.square().mul_scalar(1.0 - b2));
            let denom = self.v[i].mul_scalar(1.0 / c2).sqrt().add_scalar(eps);
            let upd = self.m[i].mul_scalar(lr / c1).div(&denom);
            let p = net.params().get(i).sub(&upd);
            net.params_mut().set(i, p);
        }
    }
}

fn main() {
    let g = gpu_or_exit("train");
    let batches = arg_list("--batch", &[1024, 65_536]);
    let steps = arg_one("--steps", 50);
    let dev = Device::Cuda(g.ordinal());
    // the data set: 8 Gaussians (radius 2, sd 0.1), 2^18 points, resident on the GPU
    let mut rng = Rng::new(0);
    let n_data = 1 << 18;
    let k = rng.indices(n_data, 8);
    let angles: Vec<f64> = k
        .iter()
        .map(|&i| i as f64 * std::f64::consts::TAU / 8.0)
        .collect();
    let centers: Vec<f64> = angles
        .iter()
        .flat_map(|a| [2.0 * a.cos(), 2.0 * a.sin()])
        .collect();
    let data = Tensor::from_f64s(&centers, &[n_data, 2], DType::F32)
        .add(&rng.normal(&[n_data, 2], DType::F32).mul_scalar(0.1))
        .to_device(dev);
    let dsm = DenoisingScoreMatching::new(0.1);
    for &b in &batches {
        let mut net = Mlp::new(MlpConfig::new(&[2, 128, 128, 1]), &mut Rng::new(1));
        net.params_mut().update(|_, t| t.to_device(dev));
        let mut adam = Adam {
            m: net
                .params()
                .tensors()
                .iter()
                .map(Tensor::zeros_like)
                .collect(),
            v: net
                .params()
                .tensors()
                .iter()
                .map(Tensor::zeros_like)
                .collect(),
            t: 0,
        };
        let mut loss = 0.0;
        let mut step = |net: &mut Mlp, adam: &mut Adam, rng: &mut Rng, read: bool| {
            let idx = rng.indices(b, n_data);
            let x = data.index_select(&idx);
            let z = rng.normal_on(&[b, 2], DType::F32, dev);
            let tape = Tape::new();
            let p = net.params().bind(&tape);
            let l = dsm.loss_with_noise(&tape, net, &p, &x, &z);
            let grads = param_grads(&l, &p);
            adam.step(net, &grads, 1e-3);
            if read {
                loss = l.item();
            }
        };
        let secs = time_per_call(&g, 1.0, steps, || {
            step(&mut net, &mut adam, &mut rng, false)
        });
        step(&mut net, &mut adam, &mut rng, true);
        println!(
            "{}",
            serde_json::json!({
                "bench": "train", "objective": "dsm", "sigma": 0.1, "model": "mlp-2-128-128-1",
                "optimizer": "adam(tensor ops)", "batch": b, "seconds_per_step": secs,
                "steps_per_s": 1.0 / secs, "final_loss": loss, "device": device_json(&g),
            })
        );
    }
}
