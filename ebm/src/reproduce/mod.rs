//! `ebm reproduce`: the claims of Song & Kingma (2021), "How to Train Your Energy-Based
//! Models", each as an experiment on toy data that measures the claim and draws it.
//!
//! An experiment is a function of a [`Budget`] and a seeded [`Rng`] that returns its numbers
//! (written as `<name>.json`), a verdict on the claim with the measured figure behind it, and a
//! [`figure::Figure`] (written as `<name>.png`). The full budget is what `ebm reproduce` runs;
//! the quick one is what the test suite runs (each module's tests assert the claim's direction
//! on it, with tolerances from standard errors) and what `--quick` runs.

pub mod cnce;
mod common;
pub mod cost;
pub mod dsm;
pub mod figure;
pub mod langevin;
pub mod mle;
pub mod nce;
pub mod ncsn;
pub mod weights;

use crate::console::{err as say_err, out as say};
use crate::error::Error;
use ebm_core::Rng;
use figure::Figure;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How much work an experiment does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// The budgets of `ebm reproduce`: seconds to about a minute each, release build.
    Full,
    /// The test suite's: seconds each in the test profile, the same code and the same claims.
    Quick,
}

impl Budget {
    /// `full` under the full budget, `quick` under the quick one.
    pub fn pick<T>(self, full: T, quick: T) -> T {
        match self {
            Budget::Full => full,
            Budget::Quick => quick,
        }
    }
}

/// What an experiment measured.
pub struct Outcome {
    /// Every number behind the figure and the verdict.
    pub numbers: serde_json::Value,
    /// Whether the measurements bear the claim out, by the criterion `summary` states.
    pub holds: bool,
    /// The measured figures behind the verdict, in a sentence.
    pub summary: String,
    /// The figure of the measurements.
    pub figure: Figure,
}

impl Outcome {
    /// The outcome of an experiment's measurements.
    pub fn of(n: &impl Measured) -> Outcome {
        Outcome {
            numbers: serde_json::to_value(n).expect("numbers serialise"),
            holds: n.holds(),
            summary: n.summary(),
            figure: n.figure(),
        }
    }
}

/// What an experiment measures: numbers that serialise (its JSON), a verdict, a sentence and a
/// figure.
pub trait Measured: serde::Serialize {
    /// Whether the measurements bear the claim out, by the criterion the doc comment states.
    fn holds(&self) -> bool;
    /// The measured figures behind the verdict, in a sentence.
    fn summary(&self) -> String;
    /// The figure of the measurements.
    fn figure(&self) -> Figure;
}

/// One claim of the review and the experiment that measures it.
pub struct Experiment {
    /// The name on the command line and of the output files.
    pub name: &'static str,
    /// The claim, as the review makes it.
    pub claim: &'static str,
    /// Runs the experiment.
    pub run: fn(Budget, &mut Rng) -> Outcome,
}

/// Every experiment, in the order of the review.
pub const EXPERIMENTS: [Experiment; 8] = [
    Experiment {
        name: "langevin",
        claim: "Unadjusted Langevin dynamics is biased at any finite step, by O(ε²) in the tied step ε; MALA's Metropolis correction removes the bias.",
        run: |budget, rng| Outcome::of(&langevin::measure(budget, rng)),
    },
    Experiment {
        name: "mle",
        claim: "Maximum likelihood with short-run MCMC: CD-k's negatives see only what k Langevin steps from the data reach, so short runs bias the fit (here the weights of two modes); longer chains reach a better likelihood, and persistent chains (PCD) are the alternative to long runs.",
        run: |budget, rng| Outcome::of(&mle::measure(budget, rng)),
    },
    Experiment {
        name: "cost",
        claim: "Exact score matching needs d backward passes per step, a cost quadratic in the data dimension; sliced and denoising score matching are linear.",
        run: |budget, rng| Outcome::of(&cost::measure(budget, rng)),
    },
    Experiment {
        name: "dsm",
        claim: "Denoising score matching fits the noised data q_σ, not p_data (test NLL above the entropy by a closed-form amount as σ grows); as σ shrinks its gradient variance explodes as σ⁻², and the control variate of Wang et al. (2020) keeps it flat.",
        run: |budget, rng| Outcome::of(&dsm::measure(budget, rng)),
    },
    Experiment {
        name: "weights",
        claim: "Score matching is blind to the weights of separated modes: Langevin sampling on even the exact score gets them wrong; annealed Langevin over multi-scale noise gets them right.",
        run: |budget, rng| Outcome::of(&weights::measure(budget, rng)),
    },
    Experiment {
        name: "nce",
        claim: "NCE needs noise close to the data: too wide or shifted noise costs test likelihood and log Z accuracy; log Z comes as a by-product, checked against quadrature.",
        run: |budget, rng| Outcome::of(&nce::measure(budget, rng)),
    },
    Experiment {
        name: "cnce",
        claim: "Conditional NCE becomes score matching as its perturbation shrinks: (4/ε²)·∇J_CNCE → ∇J_SM with an O(ε²) error.",
        run: |budget, rng| Outcome::of(&cnce::measure(budget, rng)),
    },
    Experiment {
        name: "ncsn",
        claim: "A multi-scale score model samples the data by annealed Langevin, the reverse SDE and the probability-flow ODE alike, and the PF-ODE gives its likelihood.",
        run: |budget, rng| Outcome::of(&ncsn::measure(budget, rng)),
    },
];

/// The experiment called `name`.
pub fn find(name: &str) -> Option<&'static Experiment> {
    EXPERIMENTS.iter().find(|e| e.name == name)
}

/// The arguments of `ebm reproduce`.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// Experiments to run: langevin, mle, cost, dsm, weights, nce, cnce, ncsn
    #[arg(value_name = "NAME", required_unless_present_any = ["all", "list"])]
    pub names: Vec<String>,
    /// Run every experiment
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// List the experiments and their claims
    #[arg(long)]
    pub list: bool,
    /// Output directory: <NAME>.png and <NAME>.json for each experiment [default: runs/reproduce]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The small budgets of the test suite (seconds each; noisier numbers)
    #[arg(long)]
    pub quick: bool,
    /// Seed of every experiment's random numbers
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What one run of an experiment wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Written {
    /// The experiment's name.
    pub name: &'static str,
    /// Whether the claim held.
    pub holds: bool,
    /// The measured figures in a sentence.
    pub summary: String,
    /// Seconds the experiment took.
    pub seconds: f64,
    /// The figure written.
    pub png: PathBuf,
    /// The numbers written.
    pub json: PathBuf,
}

/// Runs `exp` and writes `<out>/<name>.png` and `<out>/<name>.json` atomically.
pub fn run_and_write(
    exp: &Experiment,
    budget: Budget,
    seed: u64,
    out: &Path,
) -> Result<Written, Error> {
    crate::io::create_dir(out)?;
    let index = EXPERIMENTS.iter().position(|e| e.name == exp.name);
    let mut rng = Rng::new(seed).stream(1 + index.unwrap_or(EXPERIMENTS.len()) as u64);
    let t0 = Instant::now();
    let o = (exp.run)(budget, &mut rng);
    let seconds = t0.elapsed().as_secs_f64();
    let png = out.join(format!("{}.png", exp.name));
    let json = out.join(format!("{}.json", exp.name));
    o.figure.write_png(&png)?;
    let doc = serde_json::json!({
        "experiment": exp.name,
        "claim": exp.claim,
        "holds": o.holds,
        "summary": o.summary,
        "budget": budget,
        "seed": seed,
        "seconds": seconds,
        "numbers": o.numbers,
    });
    crate::io::write_json(&json, &doc)?;
    Ok(Written {
        name: exp.name,
        holds: o.holds,
        summary: o.summary,
        seconds,
        png,
        json,
    })
}

/// `ebm reproduce`: runs the named experiments (or all) and reports each verdict.
pub fn command(a: ReproduceArgs) -> Result<i32, Error> {
    if a.list {
        for e in &EXPERIMENTS {
            say(&format!("{:<9} {}", e.name, e.claim));
        }
        return Ok(0);
    }
    let chosen: Vec<&Experiment> = if a.all {
        EXPERIMENTS.iter().collect()
    } else {
        let mut v: Vec<&Experiment> = Vec::new();
        for n in &a.names {
            let e = find(n).ok_or_else(|| {
                let names: Vec<&str> = EXPERIMENTS.iter().map(|e| e.name).collect();
                Error::usage(format!(
                    "unknown experiment `{n}`: expected one of {}",
                    names.join(", ")
                ))
            })?;
            if !v.iter().any(|x| x.name == e.name) {
                v.push(e);
            }
        }
        v
    };
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join("reproduce"));
    let budget = if a.quick { Budget::Quick } else { Budget::Full };
    let t0 = Instant::now();
    let mut all = Vec::new();
    for e in chosen {
        say(&format!("── {}: {}", e.name, e.claim));
        let w = run_and_write(e, budget, a.seed, &out)?;
        let verdict = if w.holds { "holds" } else { "DOES NOT HOLD" };
        say(&format!(
            "   {verdict}: {} ({:.1} s)\n   wrote {}, {}",
            w.summary,
            w.seconds,
            w.png.display(),
            w.json.display()
        ));
        if !w.holds {
            say_err(&format!(
                "warning: {}: the measurements do not bear the claim out",
                w.name
            ));
        }
        all.push(w);
    }
    if all.len() > 1 {
        let held = all.iter().filter(|w| w.holds).count();
        say(&format!(
            "{held} of {} claims hold; {:.1} s in all",
            all.len(),
            t0.elapsed().as_secs_f64()
        ));
    }
    Ok(0)
}
