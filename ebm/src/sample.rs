//! Drawing samples from a trained model with any sampler of `ebm-samplers`.

use crate::error::Error;
use crate::model::{Density, Net, Noise};
use ebm_core::{DType, Rng, Tensor};
use ebm_samplers::{AnnealedLangevin, Hmc, Mala, OdeSolver, PfOde, ReverseSde, Sde, Step, Ula};

/// A sampler, by its command-line name.
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
    /// Annealed Langevin dynamics over the NCSN levels.
    Annealed,
    /// Reverse-time SDE, Euler–Maruyama.
    Sde,
    /// Reverse-time SDE, predictor–corrector.
    Pc,
    /// Probability-flow ODE (Heun).
    Ode,
}

impl SamplerKind {
    /// Every sampler's name, as `--sampler` takes it.
    pub const NAMES: [&'static str; 8] =
        ["auto", "ula", "mala", "hmc", "annealed", "sde", "pc", "ode"];

    /// The sampler named `s`.
    pub fn parse(s: &str) -> Result<SamplerKind, Error> {
        Ok(match s {
            "auto" => SamplerKind::Auto,
            "ula" => SamplerKind::Ula,
            "mala" => SamplerKind::Mala,
            "hmc" => SamplerKind::Hmc,
            "annealed" => SamplerKind::Annealed,
            "sde" => SamplerKind::Sde,
            "pc" => SamplerKind::Pc,
            "ode" => SamplerKind::Ode,
            _ => {
                return Err(Error::usage(format!(
                    "unknown sampler `{s}`: expected one of {}",
                    Self::NAMES.join(", ")
                )))
            }
        })
    }

    /// The sampler's name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Sampler settings (None: the sampler's default).
#[derive(Clone, Debug, Default)]
pub struct SampleOptions {
    /// The sampler (None: auto).
    pub sampler: Option<SamplerKind>,
    /// Sampling steps (per noise level for annealed Langevin).
    pub steps: Option<usize>,
    /// Step size (ε of ULA/MALA/HMC, ε at the last level of annealed Langevin).
    pub step_size: Option<f64>,
}

/// What a sampling run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SampleInfo {
    /// The sampler's name.
    pub sampler: String,
    /// Steps taken (per noise level for annealed Langevin).
    pub steps: usize,
    /// The step size (after adaptation).
    pub step_size: Option<f64>,
    /// The mean acceptance rate (MALA, HMC).
    pub accept_rate: Option<f64>,
}

/// `n` points `[n, d]` uniform over the box `bounds` (d = its length).
pub fn uniform_in(bounds: &[(f64, f64)], n: usize, rng: &mut Rng) -> Tensor {
    let d = bounds.len();
    let u = rng.uniform_vec(n * d);
    let v: Vec<f64> = u
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let (lo, hi) = bounds[i % d];
            lo + (hi - lo) * u
        })
        .collect();
    Tensor::from_f64s(&v, &[n, d], DType::F32)
}

/// `n` samples `[n, d]` from the density of `net`, chains started uniformly on `bounds`
/// (the Langevin samplers) or from the SDE prior (reverse SDE, PF-ODE).
pub fn draw(
    net: &Net,
    noise: Noise,
    bounds: &[(f64, f64)],
    n: usize,
    opts: &SampleOptions,
    rng: &mut Rng,
) -> Result<(Tensor, SampleInfo), Error> {
    let d = bounds.len();
    let kind = match opts.sampler.unwrap_or(SamplerKind::Auto) {
        SamplerKind::Auto => match noise {
            Noise::None => SamplerKind::Mala,
            Noise::Levels { .. } => SamplerKind::Annealed,
            Noise::Ve(..) | Noise::Vp(..) => SamplerKind::Pc,
        },
        k => k,
    };
    let density = net.density(noise);
    let uniform = |rng: &mut Rng| uniform_in(bounds, n, rng);
    if let Some(s) = opts.step_size {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::usage(format!(
                "--step-size must be positive, got {s}"
            )));
        }
    }
    if opts.steps == Some(0) {
        return Err(Error::usage("--steps must be at least 1"));
    }
    let mismatch = |what: &str| {
        Err(Error::usage(format!(
            "sampler `{}` needs {what}; this model was trained with another objective (try --sampler auto)",
            kind.name()
        )))
    };
    let info = |steps, step_size, accept_rate| SampleInfo {
        sampler: kind.name().into(),
        steps,
        step_size,
        accept_rate,
    };
    let out = match kind {
        SamplerKind::Ula => {
            let (eps, steps) = (opts.step_size.unwrap_or(0.05), opts.steps.unwrap_or(1000));
            let x0 = uniform(rng);
            let s = Ula::new(Step::Tied { eps }, steps).run(&density, x0, rng);
            (s.x, info(steps, Some(eps), None))
        }
        SamplerKind::Mala => {
            let (eps, steps) = (opts.step_size.unwrap_or(0.1), opts.steps.unwrap_or(500));
            let x0 = uniform(rng);
            let mut m = Mala::new(eps, steps / 2, steps);
            m.adapt = opts.step_size.is_none();
            let s = m.run(&density, x0, rng);
            (
                s.x,
                info(steps, s.stats.step_size.or(Some(eps)), s.stats.accept_rate),
            )
        }
        SamplerKind::Hmc => {
            let (eps, steps) = (opts.step_size.unwrap_or(0.1), opts.steps.unwrap_or(200));
            let x0 = uniform(rng);
            let mut h = Hmc::new(eps, 10, steps / 2, steps);
            h.adapt = opts.step_size.is_none();
            let s = h.run(&density, x0, rng);
            (
                s.x,
                info(steps, s.stats.step_size.or(Some(eps)), s.stats.accept_rate),
            )
        }
        SamplerKind::Annealed => {
            let Noise::Levels {
                sigma_max,
                sigma_min,
                levels,
            } = noise
            else {
                return mismatch("an NCSN model (--objective ncsn)");
            };
            let (eps, steps) = (opts.step_size.unwrap_or(5e-3), opts.steps.unwrap_or(100));
            let x0 = uniform(rng);
            let a = AnnealedLangevin::geometric(sigma_max, sigma_min, levels, eps, steps)
                .with_denoise(true);
            let s = a.run(&density, x0, rng);
            (s.x, info(steps * levels, Some(eps), None))
        }
        SamplerKind::Sde | SamplerKind::Pc | SamplerKind::Ode => {
            let steps = opts.steps.unwrap_or(500);
            let run = |sde: &dyn SdeRun, t_min: f64, rng: &mut Rng| {
                sde.run(kind, &density, n, d, steps, t_min, rng)
            };
            let x = match noise {
                Noise::Ve(sde, t) => run(&sde, t, rng),
                Noise::Vp(sde, t) => run(&sde, t, rng),
                _ => return mismatch("a diffusion model (--objective ve or vp)"),
            };
            (x, info(steps, None, None))
        }
        SamplerKind::Auto => unreachable!("resolved above"),
    };
    Ok(out)
}

/// The reverse-time samplers over either SDE.
trait SdeRun {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        kind: SamplerKind,
        density: &Density,
        n: usize,
        d: usize,
        steps: usize,
        t_min: f64,
        rng: &mut Rng,
    ) -> Tensor;
}

impl<S: Sde> SdeRun for S {
    fn run(
        &self,
        kind: SamplerKind,
        density: &Density,
        n: usize,
        d: usize,
        steps: usize,
        t_min: f64,
        rng: &mut Rng,
    ) -> Tensor {
        match kind {
            SamplerKind::Sde => {
                ReverseSde::euler_maruyama(steps, t_min)
                    .sample(self, density, n, &[d], DType::F32, rng)
                    .x
            }
            SamplerKind::Pc => {
                ReverseSde::predictor_corrector(steps, t_min, 0.16)
                    .sample(self, density, n, &[d], DType::F32, rng)
                    .x
            }
            _ => {
                PfOde::new(
                    OdeSolver::Heun {
                        n_steps: steps.min(1000),
                    },
                    t_min,
                )
                .sample(self, density, n, &[d], DType::F32, rng)
                .x
            }
        }
    }
}
