//! ebm's side of the benchmark suite (issue 8): the same workloads as bench/python, one JSON
//! line per (workload, model) in the format of bench/python/common.py.
//!
//! `cargo run --release -p ebm-bench -- --workload dsm --model M2 --threads 1 --steps 30`
//!
//! Workloads (f32, Adam lr 1e-3, one timed step = batch + noise + loss + gradient + update):
//! dsm (σ = 0.1), esm (exact Hessian diagonal), ssm (one Gaussian projection), nce (noise
//! N(0, 4I) for M2, N(0, I) for M64, ν = 1, learnable log Z), pcd (20 Langevin steps of
//! ε = 0.01 on persistent chains, 0.1 energy regulariser), langevin (M2 only: 100 Langevin
//! steps of 10,000 chains per timed step). Models: M2 = MLP 2-128-128-1 SiLU, batch 1024,
//! 8-Gaussians; M64 = MLP 64-256-256-1 SiLU, batch 256, digits / 16; C8 and R28 = conv energies
//! (bench/src/spec.rs).
//!
//! `--write-check PATH --model C8` writes the f64 reference batch of bench/python/conv_check.py
//! (bench/src/conv.rs) instead of benchmarking.

use ebm_core::{cpu_model, fma_peak_gflops, gemm_path, profile, DType, OpKind, Rng, Tensor};
use ebm_data::{Digits, Toy};
use ebm_nn::Optimizer;
use ebm_objectives::{
    train_step, ChainInit, DenoisingScoreMatching, ExactScoreMatching, MaximumLikelihood,
    ModelTarget, Nce, NoiseDistribution, Objective, SlicedScoreMatching, TrainStep,
};
use ebm_samplers::replay::{Init, ReplayBuffer};
use ebm_samplers::ula::{Step, Ula};
use ebm_samplers::DoubleWell;
use std::time::Instant;

mod conv;
mod spec;
use spec::{spec, Data};

const WORKLOADS: [&str; 6] = ["dsm", "esm", "ssm", "nce", "pcd", "langevin"];
/// The models of `--model all` (any spec of `spec::spec` is accepted too).
const MODELS: [&str; 2] = ["M2", "M64"];

struct Args {
    workloads: Vec<String>,
    models: Vec<String>,
    threads: usize,
    steps: usize,
    warmup: usize,
    seed: u64,
    profile: bool,
    write_check: Option<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!("ebm-bench: {msg}");
    eprintln!(
        "usage: ebm-bench [--workload dsm|esm|ssm|nce|pcd|langevin|all] [--model M2|M64|all|SPEC] \
         [--threads N] [--steps N>=30] [--warmup N] [--seed N] [--profile] [--write-check PATH]\n\
         SPEC: d<D>w<W>b<B>[p<P>][k<K>][c<C>][s<S>] (bench/src/spec.rs)"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        workloads: vec!["all".into()],
        models: vec!["all".into()],
        threads: 1,
        steps: 30,
        warmup: 3,
        seed: 0,
        profile: false,
        write_check: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let num = |v: String, f: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{f} takes a whole number, got `{v}`")))
        };
        match flag.as_str() {
            "--workload" => a.workloads = vec![value()],
            "--model" => a.models = vec![value()],
            "--threads" => a.threads = num(value(), "--threads") as usize,
            "--steps" => a.steps = num(value(), "--steps") as usize,
            "--warmup" => a.warmup = num(value(), "--warmup") as usize,
            "--seed" => a.seed = num(value(), "--seed"),
            "--profile" => a.profile = true,
            "--write-check" => a.write_check = Some(value()),
            "-h" | "--help" => usage("the ebm side of bench/run.sh"),
            other => usage(&format!("unknown flag `{other}`")),
        }
    }
    if a.workloads == ["all"] {
        a.workloads = WORKLOADS.iter().map(|s| s.to_string()).collect();
    }
    if a.models == ["all"] {
        a.models = MODELS.iter().map(|s| s.to_string()).collect();
    }
    for w in &a.workloads {
        if !WORKLOADS.contains(&w.as_str()) {
            usage(&format!("unknown workload `{w}`"));
        }
    }
    for m in &a.models {
        if let Err(e) = spec(m) {
            usage(&e);
        }
    }
    if a.steps < 30 {
        usage("--steps must be at least 30");
    }
    if a.threads == 0 {
        usage("--threads must be at least 1");
    }
    a
}

/// The built-in digits (data/README.md) as pixels / 16, [1797, 64] f32: the benchmark trains
/// on the raw pixels (no dequantisation, unlike `ebm train`).
fn load_digits() -> Tensor {
    Digits::load()
        .unwrap_or_else(|e| usage(&e.to_string()))
        .scaled(DType::F32)
}

/// On-CPU nanoseconds of all this process's threads so far (Linux: /proc/self/task/*/schedstat;
/// None elsewhere).
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Runs one cell; returns its JSON line.
fn run_cell(workload: &str, model_name: &str, args: &Args) -> serde_json::Value {
    let sp = spec(model_name).unwrap_or_else(|e| usage(&e));
    let d = sp.widths[0];
    let mut rng = Rng::new(args.seed);
    let double_well = sp.double_well.map(|h| DoubleWell::new(d, h));
    if double_well.is_some() && workload != "langevin" {
        usage(&format!(
            "model {model_name} is the analytic double well: only the langevin workload samples it"
        ));
    }
    // no network for the analytic double well
    let mut model = double_well
        .is_none()
        .then(|| conv::build_model(&sp, &mut rng, DType::F32));
    let digits = (sp.data == Data::Digits).then(load_digits);
    let batch = |rng: &mut Rng, n: usize| match (&digits, sp.data) {
        (Some(x), _) => x.index_select(&rng.indices(n, x.shape()[0])),
        (None, Data::Normal) => rng.normal(&[n, d], DType::F32),
        (None, Data::Uniform) => rng.uniform(&[n, d], 0.0, 1.0, DType::F32),
        (None, _) => Toy::EightGaussians.sample(n, rng),
    };
    let langevin = Ula::new(Step::Tied { eps: 0.01 }, sp.pcd_steps);
    let mut objective: Option<Box<dyn Objective>> = match workload {
        "dsm" => Some(Box::new(DenoisingScoreMatching::new(0.1))),
        "esm" => Some(Box::new(ExactScoreMatching)),
        "ssm" => Some(Box::new(SlicedScoreMatching {
            n_projections: sp.projections,
            ..SlicedScoreMatching::default()
        })),
        "nce" => Some(Box::new(Nce::new(
            NoiseDistribution::isotropic(d, sp.nce_std),
            1.0,
            0.0,
            DType::F32,
        ))),
        "pcd" => Some(Box::new(MaximumLikelihood::new(
            langevin,
            ChainInit::Persistent(
                ReplayBuffer::new(
                    sp.batch,
                    &[d],
                    Init::Normal {
                        mean: 0.0,
                        std: 1.0,
                    },
                    DType::F32,
                    &mut rng,
                )
                .with_reinit(0.0),
            ),
            0.1,
        ))),
        _ => None,
    };
    let mut train = model.as_ref().map(|m| {
        let train = TrainStep::new(Optimizer::adam(1e-3, m.params()));
        match objective.as_ref().and_then(|o| o.params()) {
            Some(q) => train.with_objective_optimizer(Optimizer::adam(1e-3, q)),
            None => train,
        }
    });
    let chains = sp.chains;
    let mut x_chain = rng.normal(&[chains, d], DType::F32);
    let sampler = Ula::new(Step::Tied { eps: 0.01 }, sp.langevin_steps);
    let mut step = |rng: &mut Rng| -> Option<f64> {
        match objective.as_mut() {
            Some(obj) => {
                let x = batch(rng, sp.batch);
                let (model, train) = model
                    .as_mut()
                    .zip(train.as_mut())
                    .expect("objectives train a network (the double well is refused above)");
                Some(train_step(obj.as_mut(), model.as_mut(), train, &x, rng))
            }
            None => {
                let x = std::mem::replace(&mut x_chain, Tensor::zeros(&[0, d], DType::F32));
                x_chain = match (&double_well, &model) {
                    (Some(target), _) => sampler.run(target, x, rng).x,
                    (None, Some(m)) => sampler.run(&ModelTarget::new(m.as_ref()), x, rng).x,
                    (None, None) => unreachable!("a network is built unless the double well"),
                };
                None
            }
        }
    };
    let t_first = Instant::now();
    let mut last = None;
    for _ in 0..args.warmup.max(1) {
        last = step(&mut rng);
    }
    let first_step_s = t_first.elapsed().as_secs_f64() / args.warmup.max(1) as f64;
    let mut times = Vec::with_capacity(args.steps);
    let cpu0 = cpu_ns();
    let mut prof = None;
    for k in 0..args.steps {
        let t0 = Instant::now();
        // the middle step is always profiled (a clock read per op): its GEMM rate goes into
        // the result line
        if k == args.steps / 2 {
            let (l, p) = profile(|| step(&mut rng));
            last = l;
            prof = Some(p);
        } else {
            last = step(&mut rng);
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    let cpu = cpu0
        .zip(cpu_ns())
        .map(|(a, b)| (b - a) as f64 * 1e-9 / args.steps as f64);
    let med = median(&mut times);
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let mut out = serde_json::json!({
        "framework": "ebm",
        "workload": workload,
        "model": model_name,
        "threads": args.threads,
        "median_step_s": med,
        "steps_per_s": 1.0 / med,
    });
    if workload == "langevin" {
        out["chain_steps_per_s"] = serde_json::json!((chains * sp.langevin_steps) as f64 / med);
    }
    out["timed_steps"] = serde_json::json!(args.steps);
    // the least disturbed step, as bench/python/common.py reports it: on a busy shared machine
    // the median measures the scheduler as much as the step
    out["min_step_s"] = serde_json::json!(min);
    // on-CPU time of all threads per timed step, as common.py's cpu_s_per_step
    out["cpu_s_per_step"] = serde_json::json!(cpu);
    out["first_step_s"] = serde_json::json!(first_step_s);
    if let Some(l) = last {
        out["final_loss"] = serde_json::json!(l);
    }
    out["cpu"] = serde_json::json!(cpu_model());
    out["isa"] = serde_json::json!(gemm_path().name());
    out["allocator"] = serde_json::json!(ebm_core::host_alloc::allocator_name());
    out["huge_page_bytes"] = serde_json::json!(ebm_core::host_alloc::huge_page_bytes());
    let peak = fma_peak_gflops();
    out["fma_peak_gflops"] = serde_json::json!(peak);
    if let Some(p) = &prof {
        // the GEMM rate of this thread's products in the profiled step (on 2 threads the other
        // thread's blocks are not seen, but the rate of those seen is the same kernel's)
        let mm_s = p.time(OpKind::Matmul).as_secs_f64();
        let rate = (mm_s > 0.0).then(|| p.matmul_flops() as f64 * 1e-9 / mm_s);
        out["gemm_gflops"] = serde_json::json!(rate);
        out["gemm_fraction_of_peak"] = serde_json::json!(rate.zip(peak).map(|(r, p)| r / p));
        out["matmul_share"] = serde_json::json!(mm_s / p.wall.as_secs_f64());
        // this thread's GEMM work in the step (all of it on 1 thread): the steps/s bound of a
        // step that were nothing but products at the FMA peak
        out["matmul_gflop_per_step"] = serde_json::json!(p.matmul_flops() as f64 * 1e-9);
    }
    if let Some(p) = prof.filter(|_| args.profile) {
        out["profile"] = serde_json::json!({
            "wall_s": p.wall.as_secs_f64(),
            "matmul_share": p.time(OpKind::Matmul).as_secs_f64() / p.wall.as_secs_f64(),
            "elementwise_share": p.time(OpKind::Elementwise).as_secs_f64() / p.wall.as_secs_f64(),
            "reduce_share": p.time(OpKind::Reduce).as_secs_f64() / p.wall.as_secs_f64(),
            "layout_share": p.time(OpKind::Layout).as_secs_f64() / p.wall.as_secs_f64(),
            "matmul_calls": p.calls(OpKind::Matmul),
            // GEMM work of one step, and the rate it implies at the median step time: the
            // FLOP-count-based figure to set against the machine's f32 FMA peak
            "matmul_gflop_per_step": p.matmul_flops() as f64 * 1e-9,
            "matmul_gflops_at_median": p.matmul_flops() as f64 * 1e-9 / med,
            "elementwise_calls": p.calls(OpKind::Elementwise),
            // the ops of the profiled step, most time first: what a workload is made of
            "top_ops": p.ops.iter().take(15).map(|o| serde_json::json!({
                "op": o.label,
                "calls": o.calls,
                "us": o.nanos as f64 * 1e-3,
            })).collect::<Vec<_>>(),
        });
    }
    out
}

ebm_core::use_mimalloc!();

fn main() {
    let args = parse_args();
    if let Some(path) = &args.write_check {
        let sp = spec(&args.models[0]).unwrap_or_else(|e| usage(&e));
        if let Err(e) = conv::write_check(&sp, args.seed, path) {
            usage(&format!("--write-check {path}: {e}"));
        }
        return;
    }
    // `--threads` sizes the rayon pool that ebm-core's GEMM splits large products over (row
    // blocks); element-wise kernels run on the calling thread. The driver also pins the
    // process (taskset) to that many CPUs.
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
    {
        usage(&format!("cannot start {} threads: {e}", args.threads));
    }
    // the steps run on a pool thread, so a split product's first block runs right here
    rayon::scope(|_| {
        for m in &args.models {
            for w in &args.workloads {
                if w == "langevin" && m == "M64" {
                    continue;
                }
                println!("{}", run_cell(w, m, &args));
            }
        }
    });
}
