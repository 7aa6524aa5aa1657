//! Drawing samples from a trained model with any sampler of `ebm-samplers`: the table of
//! samplers and their options ([`table`]), the Markov chains with their diagnostics
//! ([`mcmc`]), and [`draw`], which runs the one asked for.

mod mcmc;
pub mod table;

pub use table::{PtKernel, SamplerInfo, SamplerKind, SamplerOption, SAMPLERS};

use crate::error::Error;
use crate::model::{Density, Net, Noise};
use ebm_core::{DType, Rng, Tensor};
use ebm_samplers::{AnnealedLangevin, MetricKind, OdeSolver, PfOde, ReverseSde, Sde};

/// Sampler settings (None: the sampler's default). [`SampleOptions::check`] holds them to
/// the sampler chosen.
#[derive(Clone, Debug, Default)]
pub struct SampleOptions {
    /// The sampler (None: auto).
    pub sampler: Option<SamplerKind>,
    /// Sampling steps after warm-up (per noise level for annealed Langevin).
    pub steps: Option<usize>,
    /// Step size (ε of ULA/MALA/HMC, ε at the last level of annealed Langevin; the initial
    /// one of NUTS, ChEES and parallel tempering, which adapt it).
    pub step_size: Option<f64>,
    /// Warm-up (adaptation) iterations [default: half the steps].
    pub warmup: Option<usize>,
    /// Target acceptance of the step-size adaptation (MALA, HMC, NUTS, ChEES).
    pub target_accept: Option<f64>,
    /// NUTS's maximum tree depth.
    pub max_depth: Option<u32>,
    /// NUTS's adapted mass matrix.
    pub metric: Option<MetricKind>,
    /// Leapfrog steps of HMC (and of parallel tempering's HMC kernel).
    pub leapfrog: Option<usize>,
    /// Parallel tempering's replicas.
    pub replicas: Option<usize>,
    /// Parallel tempering's hottest inverse temperature.
    pub beta_min: Option<f64>,
    /// Parallel tempering's inner kernel.
    pub kernel: Option<PtKernel>,
    /// Parallel tempering adapts its ladder during warm-up.
    pub adaptive_ladder: bool,
    /// Record the chains and measure ESS and split-R̂ ([`Diagnostics`]).
    pub diagnostics: bool,
}

/// How well a Markov chain sampler mixed, over its recorded draws (every chain).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Diagnostics {
    /// Draws per chain the figures use (every `thin`-th sampling step).
    pub draws: usize,
    /// Every how many steps a draw was kept (1 unless the run was too large to keep all).
    pub thin: usize,
    /// The smallest ESS over coordinates.
    pub min_ess: f64,
    /// The median ESS over coordinates.
    pub median_ess: f64,
    /// The largest split-R̂ over coordinates.
    pub max_rhat: f64,
    /// Gradient evaluations summed over chains, warm-up included.
    pub gradient_evals: usize,
    /// `min_ess` per gradient evaluation.
    pub ess_per_gradient: f64,
    /// `min_ess` per second of sampling (warm-up included).
    pub ess_per_second: f64,
}

/// What a sampling run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SampleInfo {
    /// The sampler's name.
    pub sampler: String,
    /// Steps taken (per noise level for annealed Langevin).
    pub steps: usize,
    /// The step size (after adaptation).
    pub step_size: Option<f64>,
    /// The mean acceptance rate (MALA, HMC, NUTS, ChEES; the cold replica's for PT).
    pub accept_rate: Option<f64>,
    /// Warm-up iterations before the steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<usize>,
    /// Seconds the sampler ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Divergent transitions after warm-up (NUTS, ChEES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergences: Option<usize>,
    /// Mean NUTS tree depth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_tree_depth: Option<f64>,
    /// NUTS iterations that stopped at the maximum depth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_depth_hits: Option<usize>,
    /// ChEES's adapted trajectory length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trajectory_length: Option<f64>,
    /// Parallel tempering's ladder of inverse temperatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub betas: Option<Vec<f64>>,
    /// Parallel tempering's swap acceptance of each neighbouring pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_rates: Option<Vec<f64>>,
    /// Parallel tempering's cold → hot → cold round trips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trips: Option<usize>,
    /// ESS, split-R̂ and efficiency (Markov chain samplers, when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
}

impl SampleInfo {
    /// The summary of the sampler's own figures, e.g. `acceptance 0.81, 0 divergences`.
    pub fn summary(&self) -> String {
        let mut v = Vec::new();
        if let Some(r) = self.accept_rate {
            v.push(format!("acceptance {r:.2}"));
        }
        if let Some(d) = self.divergences {
            v.push(format!("{d} divergences"));
        }
        if let Some(t) = self.mean_tree_depth {
            v.push(format!("tree depth {t:.1}"));
        }
        if let Some(t) = self.trajectory_length {
            v.push(format!("trajectory length {t:.2}"));
        }
        if let (Some(r), Some(t)) = (&self.swap_rates, self.round_trips) {
            let min = r.iter().copied().fold(f64::INFINITY, f64::min);
            v.push(format!("lowest swap rate {min:.2}, {t} round trips"));
        }
        v.join(", ")
    }
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
    opts.check(kind, n, d)?;
    let density = net.density(noise);
    let mismatch = |what: &str| {
        Err(Error::usage(format!(
            "sampler `{}` needs {what}; this model was trained with another objective (try --sampler auto)",
            kind.name()
        )))
    };
    let info = |steps, step_size| SampleInfo {
        sampler: kind.name().into(),
        steps,
        step_size,
        ..SampleInfo::default()
    };
    let out = match kind {
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
            let x0 = uniform_in(bounds, n, rng);
            let a = AnnealedLangevin::geometric(sigma_max, sigma_min, levels, eps, steps)
                .with_denoise(true);
            let s = a.run(&density, x0, rng);
            (s.x, info(steps * levels, Some(eps)))
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
            (x, info(steps, None))
        }
        SamplerKind::Auto => unreachable!("resolved above"),
        _ => {
            let x0 = uniform_in(bounds, n, rng);
            mcmc::run(kind, &density, x0, opts, rng)
        }
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
