//! The toy table: objective × {8-Gaussians, checkerboard} → test NLL, gap to the data's
//! entropy, steps, time, trained exactly as `tests/train_toy.rs` trains (the 2-128-128-1
//! SiLU MLP through the one training step, cosine-decayed Adam, test NLL by grid quadrature).
//!
//! `cargo run --release -p ebm-objectives --example toy_table -- [steps] [batch] [names…]`
//! (defaults: 2000 steps, batch 256, the objectives of issue 16). Ratio matching is for binary
//! data and has no toy row; generalised SM trains on the data shifted into [0, ∞)².

#[path = "../tests/common/mod.rs"]
mod common;

use common::train;
use ebm_data::Toy;
use ebm_objectives::names;

const NEW: [&str; 9] = [
    names::CNCE,
    names::FCE,
    names::MPF,
    names::MVL,
    names::KSD,
    names::LSD,
    names::GSM,
    names::ED,
    names::DRL,
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let chosen: Vec<String> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        NEW.iter().map(|s| s.to_string()).collect()
    };
    println!("| objective | data | test NLL (nats) | gap to entropy | steps | batch | time | grid error |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for name in &chosen {
        for data in [Toy::EightGaussians, Toy::Checkerboard] {
            let run = train(name, data, steps, batch);
            println!(
                "| {name} | {} | {:.3} | {:+.3} | {steps} | {batch} | {:.1} s | {:.1e} |",
                data.name(),
                run.nll,
                run.nll - data.entropy().expect("a known entropy"),
                run.seconds,
                run.grid_error
            );
        }
    }
}
