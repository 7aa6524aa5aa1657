//! The trained network: an MLP energy, or a noise-conditional energy for the multi-scale
//! objectives; views of it as a sampler target; loading from a run directory.

use crate::config::{Arch, TrainConfig};
use crate::error::Error;
use ebm_core::Rng;
use ebm_nn::{
    Checkpoint, Conditioning, ConvEnergy, ConvEnergyConfig, Mlp, MlpConfig, Model, ModelRef,
    Module, NoiseConditionalConfig, NoiseConditionalNet, Params, UNet, UNetConfig,
};
use ebm_objectives::factory::noise_schedule;
use ebm_objectives::{ModelKind, ModelTarget, NoiseSchedule};
use ebm_samplers::{VeSde, VpSde};
use std::path::{Path, PathBuf};

/// The energy network of a run.
#[derive(Clone, Debug)]
pub enum Net {
    /// E(x) = mlp(x), widths d → hidden… → 1.
    Mlp(Mlp),
    /// E(x, c) for a noise level c (σ for NCSN, t for the VE/VP SDEs).
    Cond(NoiseConditionalNet),
    /// An IGEBM-style conv energy on square images of 1 or 3 channels (`--arch conv`).
    Conv(Box<ConvEnergy>),
    /// A noise-conditional U-Net score network on square images (`--arch conv`).
    UNet(Box<UNet>),
}

impl Net {
    /// A freshly initialised network for `config` on `dim`-dimensional data, of the kind
    /// its objective trains.
    pub fn new(config: &TrainConfig, dim: usize, rng: &mut Rng) -> Net {
        if config.arch == Arch::Conv {
            return Net::conv(config, dim, rng);
        }
        match config.objective_info().model_kind {
            ModelKind::NoiseConditional(cond) => {
                let c = NoiseConditionalConfig::new(dim, &config.hidden)
                    .activation(config.activation)
                    .conditioning(cond);
                Net::Cond(NoiseConditionalNet::new(c, rng))
            }
            ModelKind::Energy => {
                let mut widths = vec![dim];
                widths.extend(&config.hidden);
                widths.push(1);
                Net::Mlp(Mlp::new(
                    MlpConfig::new(&widths).activation(config.activation),
                    rng,
                ))
            }
        }
    }

    /// The conv network of `--arch conv` on rows of `dim` pixels (a square, checked by
    /// `limits::check_with_dim`).
    fn conv(config: &TrainConfig, dim: usize, rng: &mut Rng) -> Net {
        let image = Arch::square_image(dim).expect("--arch conv on square images (checked)");
        match config.objective_info().model_kind {
            ModelKind::NoiseConditional(cond) => {
                Net::UNet(Box::new(UNet::new(unet_config(config, image, cond), rng)))
            }
            ModelKind::Energy => Net::Conv(Box::new(ConvEnergy::new(
                ConvEnergyConfig::new(image, &config.hidden)
                    .activation(config.activation)
                    .head(config.conv_head),
                rng,
            ))),
        }
    }

    /// The network as a module (its parameters and configuration).
    pub fn module(&self) -> &dyn Module {
        match self {
            Net::Mlp(m) => m,
            Net::Cond(m) => m,
            Net::Conv(m) => m.as_ref(),
            Net::UNet(m) => m.as_ref(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        self.module().params()
    }

    /// The parameters, to update.
    pub fn params_mut(&mut self) -> &mut Params {
        match self {
            Net::Mlp(m) => m.params_mut(),
            Net::Cond(m) => m.params_mut(),
            Net::Conv(m) => m.params_mut(),
            Net::UNet(m) => m.params_mut(),
        }
    }

    /// The network read as a density over x for the samplers and the evaluation: the plain
    /// energy, or the noise-conditional one at `noise`'s evaluation condition (and at any σ or
    /// t for annealed Langevin, the reverse SDE and the PF-ODE).
    pub fn density(&self, noise: Noise) -> Density<'_> {
        match noise {
            Noise::None => ModelTarget::new(self),
            _ => ModelTarget::new(self).at(noise.eval_cond()),
        }
    }

    /// Restores parameters (and optimizer/EMA state) from a checkpoint, checking the
    /// architecture.
    pub fn restore(
        &mut self,
        ckpt: &Checkpoint,
        opt: Option<&mut ebm_nn::Optimizer>,
        ema: Option<&mut ebm_nn::Ema>,
    ) -> Result<(), ebm_nn::CheckpointError> {
        match self {
            Net::Mlp(m) => ckpt.restore(m, opt, ema),
            Net::Cond(m) => ckpt.restore(m, opt, ema),
            Net::Conv(m) => ckpt.restore(m.as_mut(), opt, ema),
            Net::UNet(m) => ckpt.restore(m.as_mut(), opt, ema),
        }
    }
}

/// The U-Net of `--arch conv` for a multi-scale objective: base width `--hidden`'s first, two
/// levels when the sides are even, GroupNorm with 4 groups when the width allows, energy
/// output E = ½‖x − f(x, c)‖²/σ² (so AIS and the energy samplers can read it).
pub fn unet_config(config: &TrainConfig, image: [usize; 3], cond: Conditioning) -> UNetConfig {
    let base = config.hidden[0];
    let mut c = UNetConfig::new(image, base);
    c.mults = if image[1].is_multiple_of(2) {
        vec![1, 2]
    } else {
        vec![1]
    };
    c.norm_groups = if base.is_multiple_of(4) { 4 } else { 0 };
    c.conditioning = cond;
    c.activation = config.activation;
    // an energy, as the evaluation (AIS) and the energy samplers read the model
    c.energy = true;
    c.scale_by_sigma = false;
    c
}

/// How a noise-conditional network is read as a plain density: the noise level it is
/// evaluated at, and the diffusion it was trained on.
#[derive(Clone, Copy, Debug)]
pub enum Noise {
    /// Plain energy.
    None,
    /// NCSN: levels σ_max → σ_min (geometric).
    Levels {
        /// The largest σ.
        sigma_max: f64,
        /// The smallest σ, at which the network is read as the data density.
        sigma_min: f64,
        /// The number of levels.
        levels: usize,
    },
    /// The variance-exploding SDE, read at time t_min.
    Ve(VeSde, f64),
    /// The variance-preserving SDE, read at time t_min.
    Vp(VpSde, f64),
}

impl Noise {
    /// How the network of `config` is read: from its objective's noise schedule.
    pub fn of(config: &TrainConfig) -> Noise {
        match noise_schedule(&config.objective, &config.params) {
            None => Noise::None,
            Some(NoiseSchedule::Geometric {
                sigma_max,
                sigma_min,
                levels,
            }) => Noise::Levels {
                sigma_max,
                sigma_min,
                levels,
            },
            Some(NoiseSchedule::Ve {
                sigma_min,
                sigma_max,
                t_min,
            }) => Noise::Ve(VeSde::new(sigma_min, sigma_max), t_min),
            Some(NoiseSchedule::Vp {
                beta_min,
                beta_max,
                t_min,
            }) => Noise::Vp(VpSde::new(beta_min, beta_max), t_min),
        }
    }

    /// The condition value at which the network is read as the data density.
    pub fn eval_cond(&self) -> f64 {
        match *self {
            Noise::None => 0.0,
            Noise::Levels { sigma_min, .. } => sigma_min,
            Noise::Ve(_, t) | Noise::Vp(_, t) => t,
        }
    }
}

impl Module for Net {
    fn params(&self) -> &Params {
        Net::params(self)
    }

    fn params_mut(&mut self) -> &mut Params {
        Net::params_mut(self)
    }

    fn config(&self) -> serde_json::Value {
        self.module().config()
    }
}

impl Model for Net {
    fn view(&self) -> ModelRef<'_> {
        match self {
            Net::Mlp(m) => ModelRef::Energy(m),
            Net::Cond(m) => ModelRef::NoiseConditional(m),
            Net::Conv(m) => ModelRef::Energy(m.as_ref()),
            Net::UNet(m) => ModelRef::NoiseConditional(m.as_ref()),
        }
    }
}

/// A network read as a density over x ([`Net::density`]): the one model→sampler bridge,
/// with its parallel row blocks.
pub type Density<'a> = ModelTarget<'a>;

/// A trained model loaded from a run directory or checkpoint file.
pub struct Loaded {
    /// The run's configuration.
    pub config: TrainConfig,
    /// The network (its EMA weights when the run kept an EMA).
    pub net: Net,
    /// The steps the checkpoint had taken.
    pub step: u64,
    /// Columns of the data it was trained on.
    pub dim: usize,
    /// The run directory (the checkpoint's folder).
    pub dir: PathBuf,
    /// The checkpoint file.
    pub file: PathBuf,
    /// The checkpoint itself.
    pub checkpoint: Checkpoint,
}

impl Loaded {
    /// How the network is read as a density.
    pub fn noise(&self) -> Noise {
        Noise::of(&self.config)
    }

    /// The network read as a density over x.
    pub fn density(&self) -> Density<'_> {
        self.net.density(self.noise())
    }

    /// The standardisation of the run's data file (checked when loading).
    pub fn standardization(&self) -> Option<crate::data::Standardization> {
        crate::verify::stored_standardization(&self.checkpoint, self.dim, &self.file)
            .ok()
            .flatten()
    }
}

/// The checkpoint file of a run directory, or the path itself when it is a file.
pub fn checkpoint_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(crate::train::CHECKPOINT)
    } else {
        path.to_path_buf()
    }
}

/// Loads the model of a run (directory or checkpoint file). With EMA weights present, those
/// are loaded (they are what the run evaluates and samples).
pub fn load(path: &Path) -> Result<Loaded, Error> {
    if !path.exists() {
        return Err(Error::checkpoint(format!(
            "checkpoint {} does not exist (pass a run directory written by `ebm train`, or its checkpoint.safetensors)",
            path.display()
        )));
    }
    let file = checkpoint_path(path);
    if !file.exists() {
        return Err(Error::checkpoint(format!(
            "{} holds no checkpoint.safetensors: not a run directory of `ebm train`",
            path.display()
        )));
    }
    let ckpt = Checkpoint::load(&file).map_err(|e| Error::from_checkpoint(&file, e))?;
    let config = crate::verify::stored_config(&ckpt, &file)?;
    let dim = crate::verify::stored_dim(&config, &ckpt, &file)?;
    crate::verify::tensors_fit(&config, dim, &ckpt, &file)?;
    crate::verify::stored_standardization(&ckpt, dim, &file)?;
    let mut net = Net::new(&config, dim, &mut Rng::new(0));
    net.restore(&ckpt, None, None)
        .map_err(|e| Error::from_checkpoint(&file, e))?;
    if let Some(ema) = &ckpt.ema {
        ema.copy_to(net.params_mut());
    }
    Ok(Loaded {
        config,
        net,
        step: ckpt.step,
        dim,
        dir: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        file,
        checkpoint: ckpt,
    })
}

/// Loads the run at `path` (directory or checkpoint file) and its data set, which must
/// still have the dimension the run was trained on.
pub fn load_run(path: &Path) -> Result<(Loaded, crate::data::Dataset), Error> {
    let loaded = load(path)?;
    let data = crate::data::Dataset::load(
        &loaded.config.data,
        &loaded.config.data_options,
        loaded.config.seed,
    )
    .map_err(|e| Error::checkpoint(format!("cannot load the run's data: {e}")))?;
    if data.dim != loaded.dim {
        return Err(Error::checkpoint(format!(
            "the run was trained on {}-dimensional data, but {} now has {} columns",
            loaded.dim,
            loaded.config.data.label(),
            data.dim
        )));
    }
    Ok((loaded, data))
}
