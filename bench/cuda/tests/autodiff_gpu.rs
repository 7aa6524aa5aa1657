//! Autodiff on GPU tensors, end to end: the same energies, scores, Hessian diagonals
//! (grad-of-grad) and DSM parameter gradients as on the CPU, with no GPU-specific derivative
//! code. Needs the `cuda` feature and a GPU; without a driver each test prints a SKIP line.
#![cfg(feature = "cuda")]

use ebm_autodiff::{grad_with, hessian_diag, GradOpts, Tape};
use ebm_core::{DType, Device, Rng, Tensor};
use ebm_nn::{param_grads, EnergyModel, Mlp, MlpConfig, Module};
use ebm_objectives::DenoisingScoreMatching;

fn gpu_or_skip(what: &str) -> Option<Device> {
    match ebm_core::cuda::available(0) {
        Ok(()) => Some(Device::Cuda(0)),
        Err(e) => {
            eprintln!("SKIP {what}: {e}");
            None
        }
    }
}

fn assert_close(what: &str, gpu: &Tensor, cpu: &Tensor, rel: f64) {
    assert!(!gpu.is_cpu(), "{what}: the result should stay on the GPU");
    assert_eq!(gpu.shape(), cpu.shape(), "{what}");
    let (g, c) = (gpu.to_vec_f64(), cpu.to_vec_f64());
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        assert!(
            (a - b).abs() <= rel * (1.0 + b.abs()),
            "{what}[{i}]: GPU {a} vs CPU {b}"
        );
    }
}

#[test]
fn moving_tensors_round_trips() {
    let Some(dev) = gpu_or_skip("moving_tensors_round_trips") else {
        return;
    };
    let t = Rng::new(1).normal(&[3, 4], DType::F64);
    let d = t.to_device(dev);
    assert_eq!(d.device(), dev);
    assert_eq!(d.to_cpu().to_vec_f64(), t.to_vec_f64());
    assert_eq!(d.zeros_like().device(), dev);
    assert_eq!(d.sum_all().item(), t.sum_all().item());
    let (mut a, mut b) = (Rng::new(9), Rng::new(9));
    let u = a.uniform_on(&[1001], -1.0, 2.0, DType::F64, dev);
    assert_eq!(
        u.to_vec_f64(),
        b.uniform(&[1001], -1.0, 2.0, DType::F64).to_vec_f64()
    );
    assert_eq!(a.state(), b.state());
}

#[test]
fn mlp_score_and_hessian_diagonal_match_cpu() {
    let Some(dev) = gpu_or_skip("mlp_score_and_hessian_diagonal_match_cpu") else {
        return;
    };
    for (dtype, rel) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
        let cpu = Mlp::with_dtype(MlpConfig::new(&[2, 32, 32, 1]), &mut Rng::new(3), dtype);
        let mut gpu = cpu.clone();
        gpu.params_mut().update(|_, t| t.to_device(dev));
        let x = Rng::new(4).normal(&[64, 2], dtype);
        let xg = x.to_device(dev);
        assert_close("energy", &gpu.energy(&xg), &cpu.energy(&x), rel);
        assert_close("score", &gpu.score(&xg), &cpu.score(&x), rel);
        // grad of grad: the Hessian diagonal, by differentiating the recorded score
        let hd = |net: &Mlp, x: &Tensor| {
            let tape = Tape::new();
            let xv = tape.var(x.clone());
            let p = net.params().constants(&tape);
            let e = net.energy_var(&xv, &p);
            hessian_diag(&e, &xv, GradOpts::default()).value().clone()
        };
        assert_close("hessian diagonal", &hd(&gpu, &xg), &hd(&cpu, &x), rel);
        let third = |net: &Mlp, x: &Tensor| {
            let tape = Tape::new();
            let xv = tape.var(x.clone());
            let p = net.params().constants(&tape);
            let e = net.energy_var(&xv, &p).sum_all();
            let g = grad_with(&e, &[&xv], GradOpts::create_graph()).remove(0);
            let g2 = grad_with(&g.square().sum_all(), &[&xv], GradOpts::create_graph()).remove(0);
            grad_with(&g2.sum_all(), &[&xv], GradOpts::default())
                .remove(0)
                .value()
                .clone()
        };
        assert_close(
            "third order",
            &third(&gpu, &xg),
            &third(&cpu, &x),
            rel * 10.0,
        );
    }
}

#[test]
fn dsm_parameter_gradients_match_cpu() {
    let Some(dev) = gpu_or_skip("dsm_parameter_gradients_match_cpu") else {
        return;
    };
    let cpu = Mlp::with_dtype(
        MlpConfig::new(&[2, 16, 16, 1]),
        &mut Rng::new(5),
        DType::F64,
    );
    let mut gpu = cpu.clone();
    gpu.params_mut().update(|_, t| t.to_device(dev));
    let mut rng = Rng::new(6);
    let x = rng.normal(&[128, 2], DType::F64);
    let z = rng.normal(&[128, 2], DType::F64);
    let dsm = DenoisingScoreMatching::new(0.1);
    let run = |net: &Mlp, x: &Tensor, z: &Tensor| {
        let tape = Tape::new();
        let p = net.params().bind(&tape);
        let l = dsm.loss_with_noise(&tape, net, &p, x, z);
        (l.value().clone(), param_grads(&l, &p))
    };
    let (lc, gc) = run(&cpu, &x, &z);
    let (lg, gg) = run(&gpu, &x.to_device(dev), &z.to_device(dev));
    assert_close("dsm loss", &lg, &lc, 1e-10);
    for (i, (a, b)) in gg.iter().zip(&gc).enumerate() {
        assert_close(&format!("dsm grad {}", cpu.params().name(i)), a, b, 1e-9);
    }
}
