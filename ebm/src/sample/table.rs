//! The table of samplers: one row per `--sampler` name, with what it is and the options it
//! reads. Adding a sampler is one row here and one arm in [`super::draw`].

use super::SampleOptions;
use crate::error::Error;
use crate::limits;

/// A sampler, by its command-line name (the order of [`SAMPLERS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerKind {
    /// The model's natural sampler: MALA for an energy, annealed Langevin for NCSN, the
    /// predictor–corrector reverse SDE for VE/VP.
    Auto,
    /// Unadjusted Langevin dynamics.
    Ula,
    /// Metropolis-adjusted Langevin, step size adapted.
    Mala,
    /// Hamiltonian Monte Carlo, step size adapted.
    Hmc,
    /// The No-U-Turn Sampler, step size and mass matrix adapted.
    Nuts,
    /// ChEES-HMC: all chains in lock-step, step size and trajectory length adapted.
    Chees,
    /// Parallel tempering over a ladder of temperatures.
    Pt,
    /// Annealed Langevin dynamics over the NCSN levels.
    Annealed,
    /// Reverse-time SDE, Euler–Maruyama.
    Sde,
    /// Reverse-time SDE, predictor–corrector.
    Pc,
    /// Probability-flow ODE (Heun).
    Ode,
}

/// An option of `ebm sample` that only some samplers read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerOption {
    /// `--steps`
    Steps,
    /// `--step-size`
    StepSize,
    /// `--warmup`
    Warmup,
    /// `--target-accept`
    TargetAccept,
    /// `--max-depth`
    MaxDepth,
    /// `--metric`
    Metric,
    /// `--leapfrog`
    Leapfrog,
    /// `--replicas`
    Replicas,
    /// `--beta-min`
    BetaMin,
    /// `--kernel`
    Kernel,
    /// `--adaptive-ladder`
    AdaptiveLadder,
}

impl SamplerOption {
    /// The flag, as the command line spells it.
    pub fn flag(self) -> &'static str {
        match self {
            SamplerOption::Steps => "--steps",
            SamplerOption::StepSize => "--step-size",
            SamplerOption::Warmup => "--warmup",
            SamplerOption::TargetAccept => "--target-accept",
            SamplerOption::MaxDepth => "--max-depth",
            SamplerOption::Metric => "--metric",
            SamplerOption::Leapfrog => "--leapfrog",
            SamplerOption::Replicas => "--replicas",
            SamplerOption::BetaMin => "--beta-min",
            SamplerOption::Kernel => "--kernel",
            SamplerOption::AdaptiveLadder => "--adaptive-ladder",
        }
    }
}

/// One sampler of the table.
#[derive(Clone, Copy, Debug)]
pub struct SamplerInfo {
    /// Which sampler.
    pub kind: SamplerKind,
    /// The `--sampler` name.
    pub name: &'static str,
    /// One line on what it is.
    pub about: &'static str,
    /// The options it reads.
    pub options: &'static [SamplerOption],
    /// Whether it is a Markov chain at equilibrium, whose draws ESS and split-R̂ describe.
    pub mcmc: bool,
}

use SamplerOption as O;
const LANGEVIN: &[SamplerOption] = &[O::Steps, O::StepSize];
const ADAPTED: &[SamplerOption] = &[O::Steps, O::StepSize, O::Warmup, O::TargetAccept];
const HMC: &[SamplerOption] = &[
    O::Steps,
    O::StepSize,
    O::Warmup,
    O::TargetAccept,
    O::Leapfrog,
];
const NUTS: &[SamplerOption] = &[
    O::Steps,
    O::StepSize,
    O::Warmup,
    O::TargetAccept,
    O::MaxDepth,
    O::Metric,
];
const PT: &[SamplerOption] = &[
    O::Steps,
    O::StepSize,
    O::Warmup,
    O::Replicas,
    O::BetaMin,
    O::Kernel,
    O::Leapfrog,
    O::AdaptiveLadder,
];
const STEPS: &[SamplerOption] = &[O::Steps];

const fn row(
    kind: SamplerKind,
    name: &'static str,
    about: &'static str,
    options: &'static [SamplerOption],
    mcmc: bool,
) -> SamplerInfo {
    SamplerInfo {
        kind,
        name,
        about,
        options,
        mcmc,
    }
}

/// Every sampler, in the order `--sampler` lists them.
pub const SAMPLERS: [SamplerInfo; 11] = [
    row(
        SamplerKind::Auto,
        "auto",
        "MALA for an energy, annealed Langevin for ncsn, predictor–corrector for ve/vp",
        &[],
        false,
    ),
    row(
        SamplerKind::Ula,
        "ula",
        "unadjusted Langevin",
        LANGEVIN,
        true,
    ),
    row(
        SamplerKind::Mala,
        "mala",
        "Metropolis-adjusted Langevin, step size adapted",
        ADAPTED,
        true,
    ),
    row(
        SamplerKind::Hmc,
        "hmc",
        "Hamiltonian Monte Carlo, step size adapted",
        HMC,
        true,
    ),
    row(
        SamplerKind::Nuts,
        "nuts",
        "No-U-Turn Sampler, Stan's warm-up (step size, mass matrix)",
        NUTS,
        true,
    ),
    row(
        SamplerKind::Chees,
        "chees",
        "ChEES-HMC, chains in lock-step, trajectory length adapted",
        ADAPTED,
        true,
    ),
    row(
        SamplerKind::Pt,
        "pt",
        "parallel tempering (replica exchange), MALA or HMC inside",
        PT,
        true,
    ),
    row(
        SamplerKind::Annealed,
        "annealed",
        "annealed Langevin over the NCSN levels",
        LANGEVIN,
        false,
    ),
    row(
        SamplerKind::Sde,
        "sde",
        "reverse-time SDE, Euler–Maruyama",
        STEPS,
        false,
    ),
    row(
        SamplerKind::Pc,
        "pc",
        "reverse-time SDE, predictor–corrector",
        STEPS,
        false,
    ),
    row(
        SamplerKind::Ode,
        "ode",
        "probability-flow ODE (Heun)",
        STEPS,
        false,
    ),
];

impl SamplerKind {
    /// Every sampler's name, as `--sampler` takes it.
    pub const NAMES: [&'static str; SAMPLERS.len()] = {
        let mut names = [""; SAMPLERS.len()];
        let mut i = 0;
        while i < SAMPLERS.len() {
            names[i] = SAMPLERS[i].name;
            i += 1;
        }
        names
    };

    /// The sampler named `s`.
    pub fn parse(s: &str) -> Result<SamplerKind, Error> {
        SAMPLERS
            .iter()
            .find(|r| r.name == s)
            .map(|r| r.kind)
            .ok_or_else(|| {
                Error::usage(format!(
                    "unknown sampler `{s}`: expected one of {}",
                    Self::NAMES.join(", ")
                ))
            })
    }

    /// The sampler's row of [`SAMPLERS`].
    pub fn info(self) -> &'static SamplerInfo {
        &SAMPLERS[self as usize]
    }

    /// The sampler's name.
    pub fn name(self) -> &'static str {
        self.info().name
    }
}

/// The deepest NUTS tree `--max-depth` may ask for (2²⁰ − 1 leapfrog steps per iteration).
pub const MAX_TREE_DEPTH: u32 = 20;
/// Replicas of parallel tempering.
pub const MAX_REPLICAS: usize = 1024;
/// Leapfrog steps per HMC trajectory.
pub const MAX_LEAPFROG: usize = 10_000;

fn in_unit_interval(flag: &str, v: f64) -> Result<(), Error> {
    if !(v > 0.0 && v < 1.0) {
        return Err(Error::usage(format!("{flag} must be in (0, 1), got {v}")));
    }
    Ok(())
}

impl SampleOptions {
    /// The options that were set.
    pub fn given(&self) -> Vec<SamplerOption> {
        let mut v = Vec::new();
        let mut add = |on: bool, o| {
            if on {
                v.push(o)
            }
        };
        add(self.steps.is_some(), O::Steps);
        add(self.step_size.is_some(), O::StepSize);
        add(self.warmup.is_some(), O::Warmup);
        add(self.target_accept.is_some(), O::TargetAccept);
        add(self.max_depth.is_some(), O::MaxDepth);
        add(self.metric.is_some(), O::Metric);
        add(self.leapfrog.is_some(), O::Leapfrog);
        add(self.replicas.is_some(), O::Replicas);
        add(self.beta_min.is_some(), O::BetaMin);
        add(self.kernel.is_some(), O::Kernel);
        add(self.adaptive_ladder, O::AdaptiveLadder);
        v
    }

    /// Checks every option before a sampler's builder sees it (the builders panic on bad
    /// values): each one given must be read by `kind`, and in range. `n` chains of `dim`
    /// columns.
    pub fn check(&self, kind: SamplerKind, n: usize, dim: usize) -> Result<(), Error> {
        let info = kind.info();
        if let Some(o) = self.given().into_iter().find(|o| !info.options.contains(o)) {
            let reads: Vec<&str> = info.options.iter().map(|o| o.flag()).collect();
            return Err(Error::usage(format!(
                "sampler {} does not read {}{}",
                info.name,
                o.flag(),
                if reads.is_empty() {
                    String::new()
                } else {
                    format!(" (it reads {})", reads.join(", "))
                }
            )));
        }
        if let Some(s) = self.step_size {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::usage(format!(
                    "--step-size must be positive, got {s}"
                )));
            }
        }
        if self.steps == Some(0) {
            return Err(Error::usage("--steps must be at least 1"));
        }
        if let Some(s) = self.steps {
            limits::at_most("--steps", s, limits::MAX_SAMPLER_STEPS)?;
        }
        if let Some(w) = self.warmup {
            limits::at_most("--warmup", w, limits::MAX_SAMPLER_STEPS)?;
        }
        if let Some(t) = self.target_accept {
            in_unit_interval("--target-accept", t)?;
        }
        if let Some(m) = self.max_depth {
            if !(1..=MAX_TREE_DEPTH).contains(&m) {
                return Err(Error::usage(format!(
                    "--max-depth must be between 1 and {MAX_TREE_DEPTH}, got {m}"
                )));
            }
        }
        if let Some(l) = self.leapfrog {
            if l == 0 {
                return Err(Error::usage("--leapfrog must be at least 1"));
            }
            limits::at_most("--leapfrog", l, MAX_LEAPFROG)?;
        }
        if self.leapfrog.is_some() && kind == SamplerKind::Pt && self.kernel != Some(PtKernel::Hmc)
        {
            return Err(Error::usage("--leapfrog needs --kernel hmc"));
        }
        if let Some(r) = self.replicas {
            if r < 2 {
                return Err(Error::usage(format!(
                    "--replicas must be at least 2, got {r}"
                )));
            }
            limits::at_most("--replicas", r, MAX_REPLICAS)?;
        }
        if kind == SamplerKind::Pt {
            let rows = (n as u64).saturating_mul(self.replicas.unwrap_or(PT_REPLICAS) as u64);
            if rows.saturating_mul(dim as u64) > limits::MAX_ELEMENTS {
                return Err(Error::usage(format!(
                    "{n} chains × {} replicas × {dim} columns is above the limit of {} values",
                    self.replicas.unwrap_or(PT_REPLICAS),
                    limits::MAX_ELEMENTS
                )));
            }
        }
        if let Some(b) = self.beta_min {
            in_unit_interval("--beta-min", b)?;
        }
        Ok(())
    }
}

/// Parallel tempering's default number of replicas.
pub const PT_REPLICAS: usize = 8;

/// The kernel inside each parallel-tempering replica, by its `--kernel` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtKernel {
    /// MALA.
    Mala,
    /// HMC with `--leapfrog` steps.
    Hmc,
}

impl PtKernel {
    /// The names `--kernel` takes.
    pub const NAMES: [&'static str; 2] = ["mala", "hmc"];

    /// The kernel named `s`.
    pub fn parse(s: &str) -> Result<PtKernel, Error> {
        match s {
            "mala" => Ok(PtKernel::Mala),
            "hmc" => Ok(PtKernel::Hmc),
            _ => Err(Error::usage(format!(
                "unknown --kernel `{s}`: expected mala or hmc"
            ))),
        }
    }
}

/// The `--metric` names of NUTS's mass matrices.
pub const METRIC_NAMES: [&str; 3] = ["diag", "dense", "unit"];

/// The mass matrix named `s` (`diag`, `dense`, `unit`).
pub fn parse_metric(s: &str) -> Result<ebm_samplers::MetricKind, Error> {
    use ebm_samplers::MetricKind;
    match s {
        "diag" => Ok(MetricKind::Diagonal),
        "dense" => Ok(MetricKind::Dense),
        "unit" => Ok(MetricKind::Unit),
        _ => Err(Error::usage(format!(
            "unknown --metric `{s}`: expected one of {}",
            METRIC_NAMES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_the_enum_order_and_names_are_unique() {
        for (i, r) in SAMPLERS.iter().enumerate() {
            assert_eq!(r.kind as usize, i, "{}", r.name);
            assert_eq!(SamplerKind::parse(r.name).unwrap(), r.kind);
            assert_eq!(r.kind.name(), r.name);
        }
        let mut names = SamplerKind::NAMES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SAMPLERS.len());
        assert!(SamplerKind::parse("gibbs").is_err());
    }

    #[test]
    fn options_are_checked_against_the_sampler() {
        let o = |f: fn(&mut SampleOptions)| {
            let mut o = SampleOptions::default();
            f(&mut o);
            o
        };
        let err = |opts: SampleOptions, kind| opts.check(kind, 10, 2).unwrap_err().to_string();
        let e = err(o(|o| o.max_depth = Some(5)), SamplerKind::Mala);
        assert!(e.contains("sampler mala does not read --max-depth"), "{e}");
        let e = err(o(|o| o.target_accept = Some(1.5)), SamplerKind::Nuts);
        assert!(e.contains("--target-accept must be in (0, 1)"), "{e}");
        let e = err(o(|o| o.max_depth = Some(0)), SamplerKind::Nuts);
        assert!(e.contains("--max-depth must be between 1"), "{e}");
        let e = err(o(|o| o.replicas = Some(1)), SamplerKind::Pt);
        assert!(e.contains("--replicas must be at least 2"), "{e}");
        let e = err(o(|o| o.beta_min = Some(1.0)), SamplerKind::Pt);
        assert!(e.contains("--beta-min must be in (0, 1)"), "{e}");
        let e = err(o(|o| o.leapfrog = Some(3)), SamplerKind::Pt);
        assert!(e.contains("--leapfrog needs --kernel hmc"), "{e}");
        let e = err(o(|o| o.target_accept = Some(f64::NAN)), SamplerKind::Chees);
        assert!(e.contains("--target-accept"), "{e}");
        let ok = o(|o| {
            o.replicas = Some(4);
            o.kernel = Some(PtKernel::Hmc);
            o.leapfrog = Some(5);
            o.adaptive_ladder = true;
        });
        assert!(ok.check(SamplerKind::Pt, 10, 2).is_ok());
        let e = err(ok, SamplerKind::Ode);
        assert!(e.contains("sampler ode does not read --leapfrog"), "{e}");
        assert!(parse_metric("dense").is_ok() && parse_metric("full").is_err());
        assert!(PtKernel::parse("hmc").is_ok() && PtKernel::parse("nuts").is_err());
    }
}
