//! Objectives by name: the one table ([`OBJECTIVES`]) from which the `ebm` command, its
//! configuration files and library users (a Python package, say) build an objective from its
//! name and named options. Adding an objective is one row of the table.
//!
//! ```
//! use ebm_core::{DType, Rng};
//! use ebm_objectives::factory::{build, DataFacts, ObjectiveOptions};
//! use ebm_objectives::ModelKind;
//!
//! let x = Rng::new(0).normal(&[256, 2], DType::F32);
//! let mut options = ObjectiveOptions::default();
//! options.set("sigma", 0.05).unwrap();
//! let facts = DataFacts::of(&x);
//! let dsm = build("dsm", &options, &facts, &mut Rng::new(1)).unwrap();
//! assert_eq!((dsm.name(), dsm.model_kind()), ("dsm", ModelKind::Energy));
//! assert!(build("dsm", &ObjectiveOptions { sigma: -1.0, ..options }, &facts, &mut Rng::new(1)).is_err());
//! ```

mod checks;
mod options;
mod table;

pub use options::ObjectiveOptions;
pub use table::{NAMES, OBJECTIVES};

use crate::{names, ModelKind, NoiseSchedule, Objective};
use ebm_core::{DType, Rng, Tensor};
use ebm_samplers::Init;
use std::fmt;

/// What an objective is built for: the facts of the data it will train on that some
/// objectives need.
#[derive(Clone, Debug)]
pub struct DataFacts<'a> {
    /// Features per row.
    pub dim: usize,
    /// Rows NCE fits its Gaussian noise to (mean and covariance).
    pub fit_rows: &'a Tensor,
    /// Where PCD's chains start and restart.
    pub chain_init: Init,
    /// The dtype of the objective's own parameters and buffers.
    pub dtype: DType,
}

impl DataFacts<'_> {
    /// The facts of data rows `x` `[n, d]`: noise fitted to them, chains started uniformly in
    /// the box of their smallest and largest value, f32.
    pub fn of(x: &Tensor) -> DataFacts<'_> {
        let v = x.to_vec_f64();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        DataFacts {
            dim: x.shape()[1..].iter().product(),
            fit_rows: x,
            chain_init: Init::Uniform { lo, hi },
            dtype: DType::F32,
        }
    }
}

/// One objective of the table: its name, what it trains, the options it reads and how it
/// is built.
pub struct ObjectiveInfo {
    /// The name ([`Objective::name`] of what [`ObjectiveInfo::build`] returns).
    pub name: &'static str,
    /// One line for a command's help.
    pub about: &'static str,
    /// The kind of model it trains ([`Objective::model_kind`] of what it builds; known here
    /// before anything is built, to size a network or read a checkpoint).
    pub model_kind: ModelKind,
    /// Whether the loss differentiates the energy twice (a gradient in θ of ∇ₓE): it then
    /// needs a smooth activation.
    pub second_order: bool,
    /// Whether the loss draws its negatives by MCMC (its value on held-out rows then needs
    /// fresh chains).
    pub mcmc: bool,
    /// The options it reads (fields of [`ObjectiveOptions`]).
    pub options: &'static [&'static str],
    /// Adam's learning rate for the objective's own parameters ([`Objective::params`]: NCE's
    /// log Z, FCE's flow, LSD's critic), as the `ebm` command and the tests train them.
    pub params_lr: f64,
    check: fn(&ObjectiveOptions, &Spell) -> Result<(), String>,
    check_data: fn(&DataFacts) -> Result<(), String>,
    build: fn(&ObjectiveOptions, &DataFacts, &mut Rng) -> Box<dyn Objective>,
}

/// How an option is spelled in messages (`--sigma-min` on a command line).
pub type Spell = dyn Fn(&str) -> String;

impl ObjectiveInfo {
    /// Checks the options this objective reads; the message spells option names with
    /// `spell`.
    pub fn check(&self, options: &ObjectiveOptions, spell: &Spell) -> Result<(), String> {
        (self.check)(options, spell)
    }

    /// Checks what the objective requires of the data (generalised SM: non-negative values;
    /// ratio matching: binary ones), from the rows in [`DataFacts::fit_rows`].
    pub fn check_data(&self, data: &DataFacts) -> Result<(), String> {
        (self.check_data)(data)
    }

    /// The objective, for options that passed [`ObjectiveInfo::check`] and data that passed
    /// [`ObjectiveInfo::check_data`]; `rng` draws its initial state (PCD's chains, FCE's flow,
    /// LSD's critic).
    pub fn build(
        &self,
        options: &ObjectiveOptions,
        data: &DataFacts,
        rng: &mut Rng,
    ) -> Box<dyn Objective> {
        (self.build)(options, data, rng)
    }
}

impl fmt::Debug for ObjectiveInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectiveInfo")
            .field("name", &self.name)
            .field("model_kind", &self.model_kind)
            .finish_non_exhaustive()
    }
}

/// Why [`build`] or [`ObjectiveOptions::set`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// No objective has this name.
    UnknownObjective(String),
    /// No option has this name.
    UnknownOption(String),
    /// An option's value is out of its range.
    BadOption(String),
    /// The data are outside what the objective can train on.
    BadData(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::UnknownObjective(s) => write!(
                f,
                "unknown objective `{s}`: expected one of {}",
                NAMES.join(", ")
            ),
            BuildError::UnknownOption(s) => write!(
                f,
                "unknown option `{s}`: expected one of {}",
                ObjectiveOptions::names().collect::<Vec<_>>().join(", ")
            ),
            BuildError::BadOption(s) | BuildError::BadData(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for BuildError {}

/// The objective named `name` with `options`, for data `data`; `rng` draws its initial
/// state. Option names in errors are spelled as fields.
pub fn build(
    name: &str,
    options: &ObjectiveOptions,
    data: &DataFacts,
    rng: &mut Rng,
) -> Result<Box<dyn Objective>, BuildError> {
    let info = find(name).ok_or_else(|| BuildError::UnknownObjective(name.to_string()))?;
    info.check(options, &|n| n.to_string())
        .map_err(BuildError::BadOption)?;
    info.check_data(data).map_err(BuildError::BadData)?;
    Ok(info.build(options, data, rng))
}

/// The row of the objective named `name`.
pub fn find(name: &str) -> Option<&'static ObjectiveInfo> {
    OBJECTIVES.iter().find(|o| o.name == name)
}

/// The learning rate of Adam on most objectives' own parameters ([`ObjectiveInfo::params_lr`]:
/// NCE's log Z, one scalar that must keep up with the energy's drift; LSD's critic).
pub const OBJECTIVE_PARAMS_LR: f64 = 1e-2;

/// The multi-scale objectives' noise schedule, from the options (None for the others).
pub fn noise_schedule(name: &str, o: &ObjectiveOptions) -> Option<NoiseSchedule> {
    match name {
        names::NCSN => Some(NoiseSchedule::Geometric {
            sigma_max: o.sigma_max,
            sigma_min: o.sigma_min,
            levels: o.levels,
        }),
        names::VE => Some(NoiseSchedule::Ve {
            sigma_min: o.sigma_min,
            sigma_max: o.sigma_max,
            t_min: o.t_min,
        }),
        names::VP => Some(NoiseSchedule::Vp {
            beta_min: o.beta_min,
            beta_max: o.beta_max,
            t_min: o.t_min,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(x: &Tensor) -> DataFacts<'_> {
        DataFacts::of(x)
    }

    /// Every row builds an objective of its name and model kind, reads only options that
    /// exist, and refuses a bad value of each option it reads; the objectives with a data
    /// domain refuse signed data and build on binary data.
    #[test]
    fn every_row_builds_what_it_says() {
        let signed = Rng::new(0).normal(&[64, 3], DType::F32);
        let binary = signed.gt(&Tensor::zeros(&[1], DType::F32));
        let defaults = ObjectiveOptions::default();
        let mut domain_rows = Vec::new();
        for info in &OBJECTIVES {
            let x = match build(info.name, &defaults, &facts(&signed), &mut Rng::new(1)) {
                Ok(_) => &signed,
                Err(BuildError::BadData(e)) => {
                    assert!(e.starts_with(info.name), "{e}");
                    domain_rows.push(info.name);
                    &binary
                }
                Err(e) => panic!("{}: {e}", info.name),
            };
            let o = build(info.name, &defaults, &facts(x), &mut Rng::new(1)).unwrap();
            assert_eq!(o.name(), info.name);
            assert_eq!(o.model_kind(), info.model_kind, "{}", info.name);
            for &opt in info.options {
                let mut bad = defaults.clone();
                let v = bad.get(opt).unwrap_or_else(|| panic!("{opt} is an option"));
                // a count of 0, or a negative number, is out of every option's range
                let whole = [
                    "levels",
                    "langevin_steps",
                    "buffer_size",
                    "projections",
                    "flow_couplings",
                    "neighbours",
                    "contrasts",
                    "drl_steps",
                ];
                let worst = if whole.contains(&opt) {
                    0.0
                } else {
                    -1.0 - v.abs()
                };
                bad.set(opt, worst).unwrap();
                let e = build(info.name, &bad, &facts(x), &mut Rng::new(1))
                    .err()
                    .unwrap_or_else(|| panic!("{}: {opt} = {worst} accepted", info.name));
                assert!(e.to_string().contains(opt), "{}: {e}", info.name);
            }
        }
        assert_eq!(NAMES.len(), 21);
        assert_eq!(domain_rows, ["gsm", "ratio-matching"]);
    }

    #[test]
    fn messages_spell_options_as_asked_and_unknown_names_list_the_choices() {
        let o = ObjectiveOptions {
            sigma_min: 3.0,
            ..ObjectiveOptions::default()
        };
        let flag = |n: &str| format!("--{}", n.replace('_', "-"));
        let e = find("ncsn").unwrap().check(&o, &flag).unwrap_err();
        assert_eq!(e, "--sigma-min (3) must be below --sigma-max (2)");
        let e = build(
            "dsn",
            &o,
            &facts(&Tensor::zeros(&[2, 2], DType::F32)),
            &mut Rng::new(0),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with("unknown objective `dsn`: expected one of dsm, dsm-cv"),
            "{e}"
        );
        let mut o = ObjectiveOptions::default();
        assert!(o.set("levels", 2.5).is_err());
        assert!(o
            .set("lr", 1.0)
            .unwrap_err()
            .to_string()
            .contains("unknown option `lr`"));
        o.set("levels", 4.0).unwrap();
        assert_eq!(o.levels, 4);
    }
}
