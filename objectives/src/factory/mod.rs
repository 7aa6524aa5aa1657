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

pub use options::ObjectiveOptions;

use crate::{
    names, ChainInit, DenoisingScoreMatching, ExactScoreMatching, MaximumLikelihood, ModelKind,
    MultiScaleDsm, Nce, NoiseDistribution, NoiseSchedule, Objective, Projection,
    SlicedScoreMatching,
};
use checks::*;
use ebm_core::{DType, Rng, Tensor};
use ebm_nn::Conditioning;
use ebm_samplers::{Init, ReplayBuffer, Step, Ula};
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
    check: fn(&ObjectiveOptions, &Spell) -> Result<(), String>,
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

    /// The objective, for options that passed [`ObjectiveInfo::check`]; `rng` draws its
    /// initial state (PCD's chains).
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
            BuildError::BadOption(s) => f.write_str(s),
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
    Ok(info.build(options, data, rng))
}

/// The row of the objective named `name`.
pub fn find(name: &str) -> Option<&'static ObjectiveInfo> {
    OBJECTIVES.iter().find(|o| o.name == name)
}

/// The learning rate of Adam on an objective's own parameters as the `ebm` command and the
/// tests train them (NCE's log Z: one scalar that must keep up with the energy's drift).
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

// ---------------------------------------------------------------------------------------------
// Builders

fn ssm(o: &ObjectiveOptions, variance_reduced: bool) -> Box<dyn Objective> {
    Box::new(SlicedScoreMatching {
        projection: if variance_reduced {
            Projection::Rademacher
        } else {
            Projection::Gaussian
        },
        n_projections: o.projections,
        variance_reduced,
    })
}

fn langevin(o: &ObjectiveOptions) -> Ula {
    Ula::new(
        Step::Tied {
            eps: o.langevin_eps,
        },
        o.langevin_steps,
    )
}

fn pcd(o: &ObjectiveOptions, d: &DataFacts, rng: &mut Rng) -> Box<dyn Objective> {
    let buffer = ReplayBuffer::new(o.buffer_size, &[d.dim], d.chain_init, d.dtype, rng)
        .with_reinit(o.reinit);
    Box::new(MaximumLikelihood::new(
        langevin(o),
        ChainInit::Persistent(buffer),
        o.alpha,
    ))
}

fn multiscale(name: &str, o: &ObjectiveOptions) -> Box<dyn Objective> {
    let schedule = noise_schedule(name, o).expect("a multi-scale objective");
    Box::new(MultiScaleDsm { schedule })
}

const SM: &[&str] = &["sigma"];
const MCMC: &[&str] = &["langevin_steps", "langevin_eps", "alpha"];
const PCD: &[&str] = &[
    "langevin_steps",
    "langevin_eps",
    "alpha",
    "buffer_size",
    "reinit",
];
const NCSN: &[&str] = &["sigma_min", "sigma_max", "levels"];
const VE: &[&str] = &["sigma_min", "sigma_max", "t_min"];
const VP: &[&str] = &["beta_min", "beta_max", "t_min"];
const ENERGY: ModelKind = ModelKind::Energy;

/// Every objective, in the order the `ebm` command lists them.
pub const OBJECTIVES: [ObjectiveInfo; 11] = [
    ObjectiveInfo {
        name: names::DSM,
        about: "denoising score matching (Vincent 2011)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: SM,
        check: check_sigma,
        build: |o, _, _| Box::new(DenoisingScoreMatching::new(o.sigma)),
    },
    ObjectiveInfo {
        name: names::DSM_CV,
        about: "DSM with a control variate (Wang et al. 2020)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: SM,
        check: check_sigma,
        build: |o, _, _| Box::new(DenoisingScoreMatching::with_control_variate(o.sigma)),
    },
    ObjectiveInfo {
        name: names::ESM,
        about: "exact score matching (Hyvärinen 2005)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &[],
        check: check_none,
        build: |_, _, _| Box::new(ExactScoreMatching),
    },
    ObjectiveInfo {
        name: names::SSM,
        about: "sliced score matching (Song et al. 2019)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &["projections"],
        check: check_ssm,
        build: |o, _, _| ssm(o, false),
    },
    ObjectiveInfo {
        name: names::SSM_VR,
        about: "sliced score matching, variance reduced",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &["projections"],
        check: check_ssm,
        build: |o, _, _| ssm(o, true),
    },
    ObjectiveInfo {
        name: names::NCE,
        about: "noise contrastive estimation with a learnable log Z (Gutmann & Hyvärinen 2010)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: false,
        options: &["nce_ratio", "nce_inflate"],
        check: check_nce,
        build: |o, d, _| {
            let noise = NoiseDistribution::fitted(d.fit_rows, o.nce_inflate);
            Box::new(Nce::new(noise, o.nce_ratio, 0.0, d.dtype))
        },
    },
    ObjectiveInfo {
        name: names::PCD,
        about: "persistent contrastive divergence with a replay buffer (Tieleman 2008; Du & Mordatch 2019)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: true,
        options: PCD,
        check: check_pcd,
        build: pcd,
    },
    ObjectiveInfo {
        name: names::CD,
        about: "contrastive divergence, chains started at the data (Hinton 2002)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: true,
        options: MCMC,
        check: check_mcmc,
        build: |o, _, _| {
            Box::new(MaximumLikelihood::new(
                langevin(o),
                ChainInit::Data,
                o.alpha,
            ))
        },
    },
    ObjectiveInfo {
        name: names::NCSN,
        about: "multi-scale DSM over geometric σ levels (Song & Ermon 2019)",
        model_kind: ModelKind::NoiseConditional(Conditioning::LogSigma),
        second_order: true,
        mcmc: false,
        options: NCSN,
        check: check_ncsn,
        build: |o, _, _| multiscale(names::NCSN, o),
    },
    ObjectiveInfo {
        name: names::VE,
        about: "multi-scale DSM on the variance-exploding SDE (Song et al. 2021)",
        model_kind: ModelKind::NoiseConditional(Conditioning::Time),
        second_order: true,
        mcmc: false,
        options: VE,
        check: check_ve,
        build: |o, _, _| multiscale(names::VE, o),
    },
    ObjectiveInfo {
        name: names::VP,
        about: "multi-scale DSM on the variance-preserving SDE (Song et al. 2021)",
        model_kind: ModelKind::NoiseConditional(Conditioning::Time),
        second_order: true,
        mcmc: false,
        options: VP,
        check: check_vp,
        build: |o, _, _| multiscale(names::VP, o),
    },
];

/// Every objective's name, in the order of [`OBJECTIVES`].
pub const NAMES: [&str; OBJECTIVES.len()] = {
    let mut out = [""; OBJECTIVES.len()];
    let mut i = 0;
    while i < OBJECTIVES.len() {
        out[i] = OBJECTIVES[i].name;
        i += 1;
    }
    out
};

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(x: &Tensor) -> DataFacts<'_> {
        DataFacts::of(x)
    }

    /// Every row builds an objective of its name and model kind, reads only options that
    /// exist, and refuses a bad value of each option it reads.
    #[test]
    fn every_row_builds_what_it_says() {
        let x = Rng::new(0).normal(&[64, 3], DType::F32);
        let defaults = ObjectiveOptions::default();
        for info in &OBJECTIVES {
            let o = build(info.name, &defaults, &facts(&x), &mut Rng::new(1)).unwrap();
            assert_eq!(o.name(), info.name);
            assert_eq!(o.model_kind(), info.model_kind, "{}", info.name);
            for &opt in info.options {
                let mut bad = defaults.clone();
                let v = bad.get(opt).unwrap_or_else(|| panic!("{opt} is an option"));
                // a count of 0, or a negative number, is out of every option's range
                let whole = ["levels", "langevin_steps", "buffer_size", "projections"];
                let worst = if whole.contains(&opt) {
                    0.0
                } else {
                    -1.0 - v.abs()
                };
                bad.set(opt, worst).unwrap();
                let e = build(info.name, &bad, &facts(&x), &mut Rng::new(1))
                    .err()
                    .unwrap_or_else(|| panic!("{}: {opt} = {worst} accepted", info.name));
                assert!(e.to_string().contains(opt), "{}: {e}", info.name);
            }
        }
        assert_eq!(NAMES.len(), 11);
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
