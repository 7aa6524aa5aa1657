//! Upper bounds on every size a flag or a checkpoint can set.
//!
//! Without them `--batch 1000000000000` aborts in the allocator, `--langevin-steps 10¹²` runs
//! for ever, and a checkpoint whose stored configuration says `hidden = [2⁶²]` asks for
//! exabytes. Each bound is far above any run this tool is meant for (a 1 GiB network, a
//! million-row minibatch) and below what would take the machine down; crossing one is one
//! error line naming the flag and the bound.

use crate::config::TrainConfig;
use crate::error::Error;
use ebm_nn::NoiseConditionalConfig;
use ebm_objectives::{names, ModelKind};

/// Columns of a data set (the data crate's readers hold every file to it).
pub use ebm_data::MAX_DIM;

/// Rows in one minibatch.
pub const MAX_BATCH: usize = 1 << 20;
/// Units in one hidden layer.
pub const MAX_WIDTH: usize = 1 << 14;
/// Hidden layers.
pub const MAX_LAYERS: usize = 64;
/// Parameters of a network (1 GiB in f32).
pub const MAX_PARAMS: u64 = 1 << 28;
/// Floats in one activation, buffer or sample set (rows × width; 1 GiB in f32).
pub const MAX_ELEMENTS: u64 = 1 << 28;
/// Langevin steps of one CD/PCD update.
pub const MAX_LANGEVIN_STEPS: usize = 10_000;
/// NCSN noise levels.
pub const MAX_LEVELS: usize = 10_000;
/// Rows of the PCD replay buffer.
pub const MAX_BUFFER_ROWS: usize = 1 << 24;
/// SSM projections per sample.
pub const MAX_PROJECTIONS: usize = 1024;
/// NCE noise samples per data sample.
pub const MAX_NCE_RATIO: f64 = 1024.0;
/// Samples drawn by `ebm sample` / `ebm eval` / the final report.
pub const MAX_SAMPLES: usize = 10_000_000;
/// Steps of a sampler (per noise level for annealed Langevin).
pub const MAX_SAMPLER_STEPS: usize = 1_000_000;
/// AIS temperatures.
pub const MAX_AIS_TEMPS: usize = 100_000;
/// Test rows of MMD and KSD (both cost rows² kernel evaluations).
pub const MAX_DISCREPANCY_ROWS: usize = 20_000;

/// `value` must be at most `max`; the error names the flag.
pub fn at_most(flag: &str, value: usize, max: usize) -> Result<(), Error> {
    if value > max {
        return Err(Error::usage(format!(
            "{flag} {value} is above the limit of {max}"
        )));
    }
    Ok(())
}

/// The size checks of a configuration that do not depend on the data.
pub fn check_config(c: &TrainConfig) -> Result<(), Error> {
    at_most("--batch", c.batch, MAX_BATCH)?;
    at_most("--hidden: the number of layers", c.hidden.len(), MAX_LAYERS)?;
    if let Some(&w) = c.hidden.iter().find(|&&w| w > MAX_WIDTH) {
        return Err(Error::usage(format!(
            "--hidden width {w} is above the limit of {MAX_WIDTH}"
        )));
    }
    let widest = c.hidden.iter().copied().max().unwrap_or(1) as u64;
    if (c.batch as u64).saturating_mul(widest) > MAX_ELEMENTS {
        return Err(Error::usage(format!(
            "--batch {} × the widest layer {widest} is above the limit of {MAX_ELEMENTS} activations",
            c.batch
        )));
    }
    let p = &c.params;
    at_most("--langevin-steps", p.langevin_steps, MAX_LANGEVIN_STEPS)?;
    at_most("--levels", p.levels, MAX_LEVELS)?;
    at_most("--buffer-size", p.buffer_size, MAX_BUFFER_ROWS)?;
    at_most("--projections", p.projections, MAX_PROJECTIONS)?;
    if p.nce_ratio > MAX_NCE_RATIO {
        return Err(Error::usage(format!(
            "--nce-ratio {} is above the limit of {MAX_NCE_RATIO}",
            p.nce_ratio
        )));
    }
    Ok(())
}

/// The size checks that need the data's dimension: the network's parameter count, the
/// replay buffer and the model's input.
pub fn check_with_dim(c: &TrainConfig, dim: usize) -> Result<(), Error> {
    if dim == 0 || dim > MAX_DIM {
        return Err(Error::data(format!(
            "data with {dim} columns: need between 1 and {MAX_DIM}"
        )));
    }
    if c.arch == crate::config::Arch::Conv {
        let Some([_, side, _]) = crate::config::Arch::square_image(dim) else {
            return Err(Error::usage(format!(
                "--arch conv reads rows as square images of 1 or 3 channels (digits: 64 = 8×8, \
                 Fashion-MNIST: 784 = 28×28, RGB: 3·s²), but the data have {dim} columns"
            )));
        };
        let stages = c.hidden.len();
        if stages > 1 && side >> (stages - 1) == 0 {
            return Err(Error::usage(format!(
                "--arch conv with {stages} stages (--hidden {:?}) halves {side}×{side} images \
                 below one pixel; give fewer widths",
                c.hidden
            )));
        }
    }
    if param_count(c, dim).is_none_or(|n| n > MAX_PARAMS) {
        return Err(Error::usage(format!(
            "the network ({dim} inputs, hidden {:?}) would have more than {MAX_PARAMS} parameters",
            c.hidden
        )));
    }
    if c.objective == names::PCD
        && (c.params.buffer_size as u64).saturating_mul(dim as u64) > MAX_ELEMENTS
    {
        return Err(Error::usage(format!(
            "--buffer-size {} × {dim} columns is above the limit of {MAX_ELEMENTS} values",
            c.params.buffer_size
        )));
    }
    let input = (c.batch as u64)
        .saturating_mul(dim as u64)
        .saturating_mul(c.params.projections.max(1) as u64);
    if input > MAX_ELEMENTS {
        return Err(Error::usage(format!(
            "--batch {} × {dim} columns is above the limit of {MAX_ELEMENTS} values",
            c.batch
        )));
    }
    Ok(())
}

/// The parameter count of the network [`crate::model::Net::new`] builds for `c` on
/// `dim`-dimensional data, without building it; None on overflow.
///
/// MLP widths d → h₁ … → 1: Σ (wᵢ·wᵢ₊₁ + wᵢ₊₁). Noise-conditional net: each hidden layer i
/// adds wᵢ·hᵢ + hᵢ (data path) + e·hᵢ (the embedding's projection, no bias), then the output
/// layer w·1 + 1. (A unit test holds this to the networks' real counts.)
pub fn param_count(c: &TrainConfig, dim: usize) -> Option<u64> {
    if c.arch == crate::config::Arch::Conv {
        if let ModelKind::NoiseConditional(cond) =
            ebm_objectives::factory::find(&c.objective).map_or(ModelKind::Energy, |o| o.model_kind)
        {
            let image = crate::config::Arch::square_image(dim)?;
            return crate::model::unet_config(c, image, cond).param_count();
        }
        // a flattening head weighs each channel of the last map at each position (≤ dim)
        let head = match c.conv_head {
            ebm_nn::ConvHead::SumPool => 0,
            ebm_nn::ConvHead::Flatten => (*c.hidden.last()? as u64).checked_mul(dim as u64)?,
        };
        return conv_param_bound(c)?.checked_add(head);
    }
    let mut total = 0u64;
    let mut width = dim as u64;
    let conditional = ebm_objectives::factory::find(&c.objective)
        .is_some_and(|o| o.model_kind != ModelKind::Energy);
    let embed = if conditional {
        NoiseConditionalConfig::new(dim, &c.hidden).embed_dim() as u64
    } else {
        0
    };
    for &h in c.hidden.iter().chain(std::iter::once(&1)) {
        let h = h as u64;
        let layer = width.checked_mul(h)?.checked_add(h)?;
        total = total.checked_add(layer)?;
        width = h;
    }
    let cond: u64 = c.hidden.iter().try_fold(0u64, |acc, &h| {
        acc.checked_add(embed.checked_mul(h as u64)?)
    })?;
    total.checked_add(cond)
}

/// An upper bound on the parameters of `--arch conv`'s networks: 3×3 convs between
/// consecutive widths (the conv energy), with room for the U-Net's up path, shortcuts,
/// embedding projections and norms (×8); None on overflow.
fn conv_param_bound(c: &TrainConfig) -> Option<u64> {
    let mut total = 0u64;
    let mut width = 1u64;
    for &h in c.hidden.iter().chain(c.hidden.first()) {
        let h = (h as u64).checked_mul(2)?; // U-Net levels double the width
        total = total.checked_add(width.checked_mul(h)?.checked_mul(9)?.checked_add(h)?)?;
        width = h;
    }
    total
        .checked_mul(8)?
        .checked_add(width.checked_mul(width)?.checked_mul(8)?)
}

/// The sizes of `ebm sample` and `ebm eval`: samples `n` of `dim` columns, sampler steps,
/// discrepancy rows, AIS temperatures.
pub fn check_sampling(
    n: usize,
    dim: usize,
    steps: Option<usize>,
    rows: Option<usize>,
    ais_temps: Option<usize>,
) -> Result<(), Error> {
    at_most("--n / --samples", n, MAX_SAMPLES)?;
    if (n as u64).saturating_mul(dim as u64) > MAX_ELEMENTS {
        return Err(Error::usage(format!(
            "{n} samples × {dim} columns is above the limit of {MAX_ELEMENTS} values"
        )));
    }
    if let Some(s) = steps {
        at_most("--steps", s, MAX_SAMPLER_STEPS)?;
    }
    if let Some(r) = rows {
        at_most("--rows", r, MAX_DISCREPANCY_ROWS)?;
    }
    if let Some(t) = ais_temps {
        at_most("--ais-temps", t, MAX_AIS_TEMPS)?;
    }
    Ok(())
}

/// The AIS settings of `ebm eval` and of `ebm train`'s report: at least one temperature and
/// two chains, at most the limits.
pub fn check_ais(temps: usize, chains: usize) -> Result<(), Error> {
    at_most("--ais-temps", temps, MAX_AIS_TEMPS)?;
    at_most("--ais-chains", chains, MAX_SAMPLES)?;
    if temps < 1 || chains < 2 {
        return Err(Error::usage(
            "AIS needs --ais-temps of at least 1 and --ais-chains of at least 2",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Net;
    use ebm_core::Rng;

    #[test]
    fn the_count_formula_matches_the_built_networks() {
        for objective in [names::DSM, names::NCSN, names::VP] {
            for (dim, hidden) in [(1, vec![3]), (2, vec![5, 7]), (9, vec![4, 1, 6])] {
                let c = TrainConfig {
                    objective: objective.into(),
                    hidden: hidden.clone(),
                    ..TrainConfig::default()
                };
                let net = Net::new(&c, dim, &mut Rng::new(0));
                assert_eq!(
                    param_count(&c, dim),
                    Some(net.params().numel() as u64),
                    "{objective:?} {dim} {hidden:?}"
                );
            }
        }
        let huge = TrainConfig {
            hidden: vec![1 << 62, 1 << 62],
            ..TrainConfig::default()
        };
        assert_eq!(param_count(&huge, 2), None);
    }

    #[test]
    fn bounds_name_the_flag() {
        let c = TrainConfig {
            batch: 1_000_000_000_000,
            ..TrainConfig::default()
        };
        let e = check_config(&c).unwrap_err().to_string();
        assert!(
            e.contains("--batch 1000000000000 is above the limit"),
            "{e}"
        );
        let mut c = TrainConfig::default();
        c.params.langevin_steps = 1_000_000_000_000;
        let e = check_config(&c).unwrap_err().to_string();
        assert!(e.contains("--langevin-steps"), "{e}");
        let c = TrainConfig {
            hidden: vec![MAX_WIDTH, MAX_WIDTH, MAX_WIDTH],
            batch: 16,
            ..TrainConfig::default()
        };
        assert!(check_config(&c).is_ok());
        let e = check_with_dim(&c, 2).unwrap_err().to_string();
        assert!(e.contains("parameters"), "{e}");
        assert!(check_with_dim(&TrainConfig::default(), 0).is_err());
        assert!(check_sampling(10, 2, Some(10), Some(10), Some(10)).is_ok());
        assert!(check_sampling(MAX_SAMPLES + 1, 1, None, None, None).is_err());
    }
}
