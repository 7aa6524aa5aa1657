//! ebm's side of the sampler benchmark (issue 17): NUTS and ChEES-HMC on a correlated Gaussian
//! and on the M2 MLP energy, one JSON line per run, in the format of
//! bench/python/bench_blackjax.py (see bench/samplers.sh, which runs both interleaved).
//!
//! `cargo run --release -p ebm-bench --bin samplers -- --target gauss|mlp --sampler nuts|chees
//! [--repeats R] [--seed S] [--dump-gaussian PATH]`
//!
//! Targets: `gauss` = ebm_samplers::test_targets::IllConditioned::new(100, 100, 7) in f64
//! (`--dump-gaussian` writes its mean and covariance as JSON for the Python side); `mlp` = the
//! M2 fixture MLP (autodiff/tests/data/M2_weights.safetensors) + ‖x‖²/8 in f32. NUTS: 4 chains,
//! 500 warm-up + 500 draws, Stan's defaults otherwise; ChEES: 64 chains, 500 + 500. Time =
//! warm-up + sampling; ESS = min over coordinates of diagnostics::ess.

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::{load_weights, EnergyModel, Mlp, MlpConfig};
use ebm_samplers::diagnostics::efficiency;
use ebm_samplers::test_targets::IllConditioned;
use ebm_samplers::{Chees, Nuts, Samples, Target};
use std::time::Instant;

fn usage(msg: &str) -> ! {
    eprintln!("samplers: {msg}");
    eprintln!(
        "usage: samplers --target gauss|mlp --sampler nuts|chees [--repeats R] [--seed S] \
         [--dump-gaussian PATH]"
    );
    std::process::exit(2)
}

/// The M2 MLP energy plus a Gaussian base ‖x‖²/8 (the MLP alone grows only linearly or stays
/// flat along some rays, so exp(−E) would not be normalisable).
struct MlpTarget(Mlp);

impl Target for MlpTarget {
    fn energy(&self, x: &Tensor) -> Tensor {
        let base = x.square().sum_axes(&[1], false).mul_scalar(0.125);
        self.0.energy(x).add(&base)
    }
    /// The leapfrog steps between ChEES's end points need the score alone: no output layer.
    fn score(&self, x: &Tensor) -> Tensor {
        self.0.score(x).sub(&x.mul_scalar(0.25))
    }
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (e, s) = self.0.energy_and_score(x);
        let base = x.square().sum_axes(&[1], false).mul_scalar(0.125);
        (e.add(&base), s.sub(&x.mul_scalar(0.25)))
    }
}

fn mlp_target() -> MlpTarget {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../autodiff/tests/data/M2_weights.safetensors"
    );
    let mut m = Mlp::new(MlpConfig::new(&[2, 128, 128, 1]), &mut Rng::new(0));
    load_weights(path, &mut m).unwrap_or_else(|e| usage(&e.to_string()));
    MlpTarget(m)
}

fn run(target: &impl Target, sampler: &str, d: usize, dtype: DType, rng: &mut Rng) -> Samples {
    match sampler {
        "nuts" => {
            let x0 = rng.normal(&[4, d], dtype);
            Nuts::new(500, 500).run(target, x0, rng)
        }
        _ => {
            let x0 = rng.normal(&[64, d], dtype);
            Chees::new(500, 500).run(target, x0, rng)
        }
    }
}

ebm_core::use_mimalloc!();

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut target, mut sampler, mut repeats, mut seed, mut dump) =
        (String::new(), String::new(), 3usize, 0u64, None);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--target" => target = value(),
            "--sampler" => sampler = value(),
            "--repeats" => repeats = value().parse().unwrap_or_else(|_| usage("--repeats N")),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage("--seed N")),
            "--dump-gaussian" => dump = Some(value()),
            other => usage(&format!("unknown flag `{other}`")),
        }
    }
    let gauss = IllConditioned::new(100, 100.0, 7).gaussian;
    if let Some(path) = dump {
        let json = serde_json::json!({ "mean": gauss.mean(), "cov": gauss.cov() });
        std::fs::write(&path, json.to_string()).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
        return;
    }
    if !["nuts", "chees"].contains(&sampler.as_str()) {
        usage("--sampler nuts|chees");
    }
    let mlp = mlp_target();
    for r in 0..repeats {
        let mut rng = Rng::new(seed * 1000 + r as u64);
        let t = Instant::now();
        let out = match target.as_str() {
            "gauss" => run(&gauss, &sampler, 100, DType::F64, &mut rng),
            "mlp" => run(&mlp, &sampler, 2, DType::F32, &mut rng),
            _ => usage("--target gauss|mlp"),
        };
        let secs = t.elapsed().as_secs_f64();
        let eff = efficiency(&out, secs);
        let st = &out.stats;
        println!(
            "{}",
            serde_json::json!({
                "framework": "ebm", "target": target, "sampler": sampler, "repeat": r,
                "seconds": secs, "grad_evals": eff.gradient_evals, "min_ess": eff.min_ess,
                "median_ess": eff.median_ess, "step_size": st.step_size,
                "trajectory_length": st.trajectory_length, "ess_per_s": eff.ess_per_second,
                "ess_per_grad": eff.ess_per_gradient, "max_rhat": eff.max_rhat,
                "grads_per_s": eff.gradient_evals as f64 / secs,
                "divergences": st.divergences, "mean_tree_depth": st.mean_tree_depth,
            })
        );
    }
}
