//! An IGEBM-style convolutional energy (Du & Mordatch 2019): a ResNet on the image whose
//! pooled features feed one linear output, E(x) per row.
//!
//! Forward on x `[B, C·H·W]` (or `[B, C, H, W]`):
//! `h = conv_in(x)`; per stage s: (s > 0: 2×2 average pooling), then either one plain conv
//! `h ← conv(act(h))` (`blocks = 0`) or `blocks` residual blocks
//! `h ← shortcut(h) + conv2(act(norm2(conv1(act(norm1(h))))))`; finally
//! `E = head(Σ_{H,W} act(h))` ([`ConvHead::SumPool`], IGEBM's) or `E = head(vec(act(h)))`
//! ([`ConvHead::Flatten`], position-aware). Norms are GroupNorm when `norm_groups > 0`; every conv may be
//! spectrally normalised. Parameter names follow a PyTorch module tree
//! (`stages.1.blocks.0.conv1.weight`, `head.weight`), so a checkpoint loads by name.

use crate::activation::Activation;
use crate::conv::{Conv2d, GroupNorm};
use crate::linear::{Init, Linear};
use crate::model::{tagged_config, EnergyModel, Module};
use crate::params::Params;
use ebm_autodiff::Var;
use ebm_core::{Conv2dSpec, DType, Rng};
use serde::{Deserialize, Serialize};

/// Architecture of a [`ConvEnergy`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvEnergyConfig {
    /// Image shape `[C, H, W]`; rows of the data are these images flattened.
    pub image: [usize; 3],
    /// Channels of each stage (at least one); stages after the first halve H and W.
    pub widths: Vec<usize>,
    /// Residual blocks per stage; 0 for one plain conv per stage.
    pub blocks: usize,
    /// Square kernel size (odd; padding keeps the size).
    pub kernel: usize,
    /// GroupNorm groups in the residual blocks (must divide every width); 0 for none.
    pub norm_groups: usize,
    /// Spectral normalisation of every conv (IGEBM's choice), with this many power iterations.
    pub spectral_norm: Option<usize>,
    /// The activation (SiLU by default: smooth, as score matching needs).
    pub activation: Activation,
    /// Weight initialisation.
    pub init: Init,
    /// How the last feature map becomes the energy (configs written before it existed read
    /// as IGEBM's sum pooling; it is written only when it is not, so their configs compare
    /// equal).
    #[serde(default, skip_serializing_if = "ConvHead::is_sum_pool")]
    pub head: ConvHead,
}

/// The conv energy's output layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvHead {
    /// E = w·Σ_{H,W} act(h) + b (IGEBM): translation-invariant features, summed over
    /// positions, so the energy is blind to where on the image a feature is.
    #[default]
    SumPool,
    /// E = w·vec(act(h)) + b over the whole last map: one weight per channel and position,
    /// so the energy can say where strokes belong (an MLP's first layer can; on small,
    /// centred images such as 8×8 digits that matters).
    Flatten,
}

impl ConvHead {
    /// Whether this is [`ConvHead::SumPool`] (the default, left out of written configs).
    pub fn is_sum_pool(&self) -> bool {
        *self == ConvHead::SumPool
    }
}

impl ConvEnergyConfig {
    /// 3×3 kernels, plain convs, no norm, no spectral norm, SiLU, PyTorch default init.
    pub fn new(image: [usize; 3], widths: &[usize]) -> ConvEnergyConfig {
        ConvEnergyConfig {
            image,
            widths: widths.to_vec(),
            blocks: 0,
            kernel: 3,
            norm_groups: 0,
            spectral_norm: None,
            activation: Activation::Silu,
            init: Init::TorchDefault,
            head: ConvHead::SumPool,
        }
    }

    /// The output layer.
    pub fn head(mut self, head: ConvHead) -> Self {
        self.head = head;
        self
    }

    /// Height and width of the last feature map: the image halved (floor) per stage after
    /// the first.
    pub fn last_map(&self) -> [usize; 2] {
        let halvings = self.widths.len().saturating_sub(1);
        [self.image[1] >> halvings, self.image[2] >> halvings]
    }

    /// `n` residual blocks per stage.
    pub fn blocks(mut self, n: usize) -> Self {
        self.blocks = n;
        self
    }

    /// GroupNorm with `g` groups in the residual blocks.
    pub fn norm_groups(mut self, g: usize) -> Self {
        self.norm_groups = g;
        self
    }

    /// Spectral normalisation with `iters` power iterations.
    pub fn spectral_norm(mut self, iters: usize) -> Self {
        self.spectral_norm = Some(iters);
        self
    }

    /// The activation.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Parses a config written by [`Module::config`] (`"kind"` must be `"conv_energy"`).
    pub fn from_json(v: &serde_json::Value) -> Result<ConvEnergyConfig, String> {
        let mut v = v.clone();
        let map = v
            .as_object_mut()
            .ok_or("a conv energy config must be a JSON object")?;
        match map.remove("kind") {
            Some(serde_json::Value::String(k)) if k == "conv_energy" => {}
            other => return Err(format!("expected kind \"conv_energy\", found {other:?}")),
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}

/// One residual block: norms (optional), two convs and a 1×1 shortcut when channels change.
#[derive(Clone, Debug)]
struct ResBlock {
    norm1: Option<GroupNorm>,
    conv1: Conv2d,
    norm2: Option<GroupNorm>,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

/// A stage: plain conv or residual blocks.
#[derive(Clone, Debug)]
enum Stage {
    Plain(Conv2d),
    Residual(Vec<ResBlock>),
}

/// The IGEBM-style conv energy (see the module docs).
#[derive(Clone, Debug)]
pub struct ConvEnergy {
    config: ConvEnergyConfig,
    params: Params,
    conv_in: Conv2d,
    stages: Vec<Stage>,
    head: Linear,
}

impl ConvEnergy {
    /// A new f32 energy drawn from `rng`.
    pub fn new(config: ConvEnergyConfig, rng: &mut Rng) -> ConvEnergy {
        ConvEnergy::with_dtype(config, rng, DType::F32)
    }

    /// A new energy in `dtype`.
    pub fn with_dtype(config: ConvEnergyConfig, rng: &mut Rng, dtype: DType) -> ConvEnergy {
        let c = &config;
        assert!(
            !c.widths.is_empty()
                && c.widths.iter().chain(&c.image).all(|&v| v > 0)
                && c.kernel % 2 == 1,
            "ConvEnergy: image {:?}, widths {:?} and kernel {} must be positive (odd kernel, ≥ 1 stage)",
            c.image,
            c.widths,
            c.kernel
        );
        let mut params = Params::new();
        let same = Conv2dSpec::new().padding(c.kernel / 2);
        let conv = |p: &mut Params, rng: &mut Rng, name: &str, i, o, k, spec| {
            let l = Conv2d::new(p, name, i, o, k, spec, true, c.init, rng, dtype);
            match c.spectral_norm {
                Some(it) => l.spectral_norm(it),
                None => l,
            }
        };
        let conv_in = conv(
            &mut params,
            rng,
            "conv_in",
            c.image[0],
            c.widths[0],
            c.kernel,
            same,
        );
        let mut width = c.widths[0];
        let mut stages = Vec::new();
        for (s, &w) in c.widths.iter().enumerate() {
            let stage = if c.blocks == 0 {
                Stage::Plain(conv(
                    &mut params,
                    rng,
                    &format!("stages.{s}.conv"),
                    width,
                    w,
                    c.kernel,
                    same,
                ))
            } else {
                let blocks = (0..c.blocks)
                    .map(|b| {
                        let n = format!("stages.{s}.blocks.{b}");
                        let (i, gn) = (if b == 0 { width } else { w }, c.norm_groups);
                        let norm = |p: &mut Params, which: &str, ch: usize| {
                            (gn > 0).then(|| {
                                GroupNorm::new(p, &format!("{n}.{which}"), gn.min(ch), ch, dtype)
                            })
                        };
                        ResBlock {
                            norm1: norm(&mut params, "norm1", i),
                            conv1: conv(
                                &mut params,
                                rng,
                                &format!("{n}.conv1"),
                                i,
                                w,
                                c.kernel,
                                same,
                            ),
                            norm2: norm(&mut params, "norm2", w),
                            conv2: conv(
                                &mut params,
                                rng,
                                &format!("{n}.conv2"),
                                w,
                                w,
                                c.kernel,
                                same,
                            ),
                            shortcut: (i != w).then(|| {
                                conv(
                                    &mut params,
                                    rng,
                                    &format!("{n}.shortcut"),
                                    i,
                                    w,
                                    1,
                                    Conv2dSpec::new(),
                                )
                            }),
                        }
                    })
                    .collect();
                Stage::Residual(blocks)
            };
            stages.push(stage);
            width = w;
        }
        let head_in = match c.head {
            ConvHead::SumPool => width,
            ConvHead::Flatten => {
                let [h, w] = c.last_map();
                assert!(
                    h * w > 0,
                    "ConvEnergy: {} stages halve a {:?} image below one pixel",
                    c.widths.len(),
                    c.image
                );
                width * h * w
            }
        };
        let head = Linear::new(&mut params, "head", head_in, 1, true, c.init, rng, dtype);
        ConvEnergy {
            config,
            params,
            conv_in,
            stages,
            head,
        }
    }

    /// The architecture.
    pub fn net_config(&self) -> &ConvEnergyConfig {
        &self.config
    }

    fn block(&self, b: &ResBlock, h: &Var, p: &[Var]) -> Var {
        let act = |v: Var| self.config.activation.apply(&v);
        let norm = |n: &Option<GroupNorm>, v: Var| match n {
            Some(n) => n.forward(&v, p),
            None => v,
        };
        let r = b.conv1.forward(&act(norm(&b.norm1, h.clone())), p);
        let r = b.conv2.forward(&act(norm(&b.norm2, r)), p);
        let skip = match &b.shortcut {
            Some(s) => s.forward(h, p),
            None => h.clone(),
        };
        skip.add(&r)
    }
}

impl Module for ConvEnergy {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        tagged_config("conv_energy", &self.config)
    }
}

impl EnergyModel for ConvEnergy {
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        let [c, hh, ww] = self.config.image;
        let b = x.shape()[0];
        assert!(
            x.numel() == b * c * hh * ww,
            "ConvEnergy: input {:?} is not a batch of [{c}, {hh}, {ww}] images",
            x.shape()
        );
        let act = |v: &Var| self.config.activation.apply(v);
        let mut h = self.conv_in.forward(&x.reshape(&[b, c, hh, ww]), p);
        for (s, stage) in self.stages.iter().enumerate() {
            if s > 0 {
                h = h.avg_pool2d([2, 2], [2, 2], [0, 0]);
            }
            h = match stage {
                Stage::Plain(conv) => conv.forward(&act(&h), p),
                Stage::Residual(blocks) => blocks.iter().fold(h, |h, bl| self.block(bl, &h, p)),
            };
        }
        let features = match self.config.head {
            ConvHead::SumPool => act(&h).sum(&[2, 3], false),
            ConvHead::Flatten => {
                let n = h.numel() / b;
                act(&h).reshape(&[b, n])
            }
        };
        self.head.forward(&features, p).reshape(&[b])
    }
}

#[cfg(test)]
mod tests;
