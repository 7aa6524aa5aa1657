//! A small noise-conditional U-Net for images in the NCSN / score-SDE style (Song & Ermon 2019;
//! Song et al. 2021), small enough to train on a CPU: it outputs the score s(x, c) directly.
//!
//! `temb = temb.1(act(temb.0(fourier(c))))`; `h = conv_in(x)`; down level l: a conditional
//! residual block to `base·mult[l]` channels (its output kept as a skip), then 2×2 average
//! pooling except at the last level; `mid` block; up level l (reversed): nearest 2× upsampling
//! except at the last level, concatenation with skip l, a block back to `base·mult[l]`; then
//! `conv_out(act(norm_out(h)))`, divided by σ with `scale_by_sigma` (NCSNv2).
//!
//! A conditional block: `r = conv1(act(norm1(h))) + proj(act(temb))` per channel,
//! `r = conv2(act(norm2(r)))`, out = shortcut(h) + r. Names follow a PyTorch module tree
//! (`down.0.block.conv1.weight`, `temb.0.weight`, `conv_out.bias`).

use crate::activation::Activation;
use crate::conv::{Conv2d, GroupNorm};
use crate::linear::{Init, Linear};
use crate::model::{
    as_leaf, score_from_energy, tagged_config, Model, ModelRef, Module, NoiseConditionalModel,
};
use crate::ncsn::{fourier_embedding, Conditioning};
use crate::params::Params;
use ebm_autodiff::{GradOpts, Var};
use ebm_core::{Conv2dSpec, DType, Rng, Tensor};
use serde::{Deserialize, Serialize};

/// Architecture of a [`UNet`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNetConfig {
    /// Image shape `[C, H, W]`; H and W divisible by 2^(levels − 1).
    pub image: [usize; 3],
    /// Channels of the first level.
    pub base: usize,
    /// Channel multiplier of each level (at least one).
    pub mults: Vec<usize>,
    /// GroupNorm groups (must divide every width); 0 for no normalisation.
    pub norm_groups: usize,
    /// What the condition means (σ or t).
    pub conditioning: Conditioning,
    /// Fourier frequencies of the condition embedding.
    pub frequencies: usize,
    /// Largest Fourier frequency.
    pub max_frequency: f64,
    /// s(x, σ) = net(x, σ)/σ (needs σ conditioning).
    pub scale_by_sigma: bool,
    /// The activation (SiLU by default).
    pub activation: Activation,
    /// Energy parameterisation (Salimans & Ho 2021): E(x, c) = ½‖x − f(x, c)‖²/s² with f the
    /// network and s = σ under σ conditioning (else 1), score −∇ₓE; `false`: the score is f
    /// itself (divided by σ with `scale_by_sigma`).
    #[serde(default)]
    pub energy: bool,
}

impl UNetConfig {
    /// Two levels (×1, ×2), GroupNorm with 4 groups, σ conditioning with 8 frequencies up to
    /// 16, output scaled by 1/σ, SiLU.
    pub fn new(image: [usize; 3], base: usize) -> UNetConfig {
        UNetConfig {
            image,
            base,
            mults: vec![1, 2],
            norm_groups: 4,
            conditioning: Conditioning::LogSigma,
            frequencies: 8,
            max_frequency: 16.0,
            scale_by_sigma: true,
            activation: Activation::Silu,
            energy: false,
        }
    }

    /// The number of parameter values [`UNet::new`] makes for this config, counted without
    /// building it (so a checkpoint's size can be checked before anything is allocated);
    /// None on overflow.
    pub fn param_count(&self) -> Option<u64> {
        let u = |v: usize| v as u64;
        let linear = |i: u64, o: u64| i.checked_mul(o)?.checked_add(o);
        let conv = |i: u64, o: u64, k: u64| i.checked_mul(o)?.checked_mul(k * k)?.checked_add(o);
        let norm = |ch: u64| {
            if self.norm_groups > 0 {
                ch.checked_mul(2)
            } else {
                Some(0)
            }
        };
        let temb_dim = u(self.base).checked_mul(4)?;
        let block = |i: u64, o: u64| -> Option<u64> {
            let shortcut = if i != o { conv(i, o, 1)? } else { 0 };
            [
                norm(i)?,
                conv(i, o, 3)?,
                linear(temb_dim, o)?,
                norm(o)?,
                conv(o, o, 3)?,
                shortcut,
            ]
            .into_iter()
            .try_fold(0u64, u64::checked_add)
        };
        let embed = u(self.frequencies).checked_mul(2)?.checked_add(1)?;
        let mut total = [
            linear(embed, temb_dim)?,
            linear(temb_dim, temb_dim)?,
            conv(u(self.image[0]), u(self.base), 3)?,
        ]
        .into_iter()
        .try_fold(0u64, u64::checked_add)?;
        let widths: Vec<u64> = self
            .mults
            .iter()
            .map(|&m| u(m).checked_mul(u(self.base)))
            .collect::<Option<_>>()?;
        let mut width = u(self.base);
        for &w in &widths {
            total = total.checked_add(block(width, w)?)?;
            width = w;
        }
        total = total.checked_add(block(width, width)?)?;
        for &w in widths.iter().rev() {
            total = total.checked_add(block(width.checked_add(w)?, w)?)?;
            width = w;
        }
        total
            .checked_add(norm(width)?)?
            .checked_add(conv(width, u(self.image[0]), 3)?)
    }

    /// Parses a config written by [`Module::config`] (`"kind"` must be `"unet"`).
    pub fn from_json(v: &serde_json::Value) -> Result<UNetConfig, String> {
        let mut v = v.clone();
        let map = v
            .as_object_mut()
            .ok_or("a U-Net config must be a JSON object")?;
        match map.remove("kind") {
            Some(serde_json::Value::String(k)) if k == "unet" => {}
            other => return Err(format!("expected kind \"unet\", found {other:?}")),
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}

/// A residual block with a per-channel shift from the condition embedding.
#[derive(Clone, Debug)]
struct CondBlock {
    norm1: Option<GroupNorm>,
    conv1: Conv2d,
    proj: Linear,
    norm2: Option<GroupNorm>,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

/// The noise-conditional U-Net (see the module docs).
#[derive(Clone, Debug)]
pub struct UNet {
    config: UNetConfig,
    params: Params,
    temb: [Linear; 2],
    conv_in: Conv2d,
    down: Vec<CondBlock>,
    mid: CondBlock,
    up: Vec<CondBlock>,
    norm_out: Option<GroupNorm>,
    conv_out: Conv2d,
}

impl UNet {
    /// A new f32 network drawn from `rng`.
    pub fn new(config: UNetConfig, rng: &mut Rng) -> UNet {
        UNet::with_dtype(config, rng, DType::F32)
    }

    /// A new network in `dtype`.
    pub fn with_dtype(config: UNetConfig, rng: &mut Rng, dtype: DType) -> UNet {
        let c = &config;
        let scale = 1 << (c.mults.len().max(1) - 1);
        assert!(
            !c.mults.is_empty()
                && c.base > 0
                && c.image.iter().all(|&v| v > 0)
                && c.image[1].is_multiple_of(scale)
                && c.image[2].is_multiple_of(scale),
            "UNet: image {:?} must be positive with sides divisible by {scale} for {} levels, base {} > 0",
            c.image,
            c.mults.len(),
            c.base
        );
        assert!(
            !c.scale_by_sigma || c.conditioning == Conditioning::LogSigma,
            "UNet: scale_by_sigma needs σ conditioning"
        );
        let mut p = Params::new();
        let (init, temb_dim) = (Init::TorchDefault, 4 * c.base);
        let same = Conv2dSpec::new().padding(1);
        let embed = 2 * c.frequencies + 1;
        let temb = [
            Linear::new(&mut p, "temb.0", embed, temb_dim, true, init, rng, dtype),
            Linear::new(&mut p, "temb.1", temb_dim, temb_dim, true, init, rng, dtype),
        ];
        let conv_in = Conv2d::new(
            &mut p, "conv_in", c.image[0], c.base, 3, same, true, init, rng, dtype,
        );
        let norm = |p: &mut Params, name: String, ch: usize| {
            (c.norm_groups > 0).then(|| GroupNorm::new(p, &name, c.norm_groups, ch, dtype))
        };
        let mut block = |p: &mut Params, n: &str, i: usize, o: usize| CondBlock {
            norm1: norm(p, format!("{n}.norm1"), i),
            conv1: Conv2d::new(
                p,
                &format!("{n}.conv1"),
                i,
                o,
                3,
                same,
                true,
                init,
                rng,
                dtype,
            ),
            proj: Linear::new(p, &format!("{n}.proj"), temb_dim, o, true, init, rng, dtype),
            norm2: norm(p, format!("{n}.norm2"), o),
            conv2: Conv2d::new(
                p,
                &format!("{n}.conv2"),
                o,
                o,
                3,
                same,
                true,
                init,
                rng,
                dtype,
            ),
            shortcut: (i != o).then(|| {
                Conv2d::new(
                    p,
                    &format!("{n}.shortcut"),
                    i,
                    o,
                    1,
                    Conv2dSpec::new(),
                    true,
                    init,
                    rng,
                    dtype,
                )
            }),
        };
        let widths: Vec<usize> = c.mults.iter().map(|m| m * c.base).collect();
        let mut width = c.base;
        let mut down = Vec::new();
        for (l, &w) in widths.iter().enumerate() {
            down.push(block(&mut p, &format!("down.{l}.block"), width, w));
            width = w;
        }
        let mid = block(&mut p, "mid.block", width, width);
        let mut up = Vec::new();
        for (l, &w) in widths.iter().enumerate().rev() {
            up.push(block(&mut p, &format!("up.{l}.block"), width + w, w));
            width = w;
        }
        let norm_out = norm(&mut p, "norm_out".into(), width);
        let conv_out = Conv2d::new(
            &mut p, "conv_out", width, c.image[0], 3, same, true, init, rng, dtype,
        );
        UNet {
            config,
            params: p,
            temb,
            conv_in,
            down,
            mid,
            up,
            norm_out,
            conv_out,
        }
    }

    /// The architecture.
    pub fn net_config(&self) -> &UNetConfig {
        &self.config
    }

    fn act(&self, v: &Var) -> Var {
        self.config.activation.apply(v)
    }

    fn norm(n: &Option<GroupNorm>, v: &Var, p: &[Var]) -> Var {
        match n {
            Some(n) => n.forward(v, p),
            None => v.clone(),
        }
    }

    fn block(&self, b: &CondBlock, h: &Var, temb: &Var, p: &[Var]) -> Var {
        let r = b.conv1.forward(&self.act(&Self::norm(&b.norm1, h, p)), p);
        let shift = b.proj.forward(temb, p);
        let r = r.add(&shift.reshape(&[shift.shape()[0], shift.shape()[1], 1, 1]));
        let r = b.conv2.forward(&self.act(&Self::norm(&b.norm2, &r, p)), p);
        match &b.shortcut {
            Some(s) => s.forward(h, p).add(&r),
            None => h.add(&r),
        }
    }

    /// The network output `[B, C·H·W]` before σ scaling.
    fn raw(&self, x: &Var, cond: &Tensor, p: &[Var]) -> Var {
        let [c, hh, ww] = self.config.image;
        let b = x.shape()[0];
        assert!(
            x.numel() == b * c * hh * ww && cond.shape() == [b],
            "UNet: x {:?} must be a batch of [{c}, {hh}, {ww}] images and cond {:?} [B]",
            x.shape(),
            cond.shape()
        );
        let cfg = &self.config;
        let emb = fourier_embedding(
            cond,
            cfg.conditioning,
            cfg.frequencies,
            cfg.max_frequency,
            x.dtype(),
        );
        let temb = self.temb[1].forward(&self.act(&self.temb[0].forward(&x.constant(emb), p)), p);
        let temb = self.act(&temb);
        let mut h = self.conv_in.forward(&x.reshape(&[b, c, hh, ww]), p);
        let last = self.down.len() - 1;
        let mut skips = Vec::new();
        for (l, blk) in self.down.iter().enumerate() {
            h = self.block(blk, &h, &temb, p);
            skips.push(h.clone());
            if l < last {
                h = h.avg_pool2d([2, 2], [2, 2], [0, 0]);
            }
        }
        h = self.block(&self.mid, &h, &temb, p);
        for (i, blk) in self.up.iter().enumerate() {
            let l = last - i;
            if l < last {
                h = h.upsample_nearest2d([2, 2]);
            }
            h = self.block(blk, &Var::concat(&[h, skips[l].clone()], 1), &temb, p);
        }
        let out = self
            .conv_out
            .forward(&self.act(&Self::norm(&self.norm_out, &h, p)), p);
        out.reshape(&[b, c * hh * ww])
    }
}

impl Module for UNet {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        tagged_config("unet", &self.config)
    }
}

impl Model for UNet {
    fn view(&self) -> ModelRef<'_> {
        ModelRef::NoiseConditional(self)
    }
}

impl NoiseConditionalModel for UNet {
    fn score_var(&self, x: &Var, cond: &Tensor, p: &[Var], opts: GradOpts) -> Var {
        if self.config.energy {
            let x = as_leaf(x);
            let e = self.energy_var(&x, cond, p).expect("energy output");
            return score_from_energy(&e, &x, opts);
        }
        let s = self.raw(x, cond, p);
        if !self.config.scale_by_sigma {
            return s;
        }
        let b = cond.numel();
        s.mul_const(&cond.cast(x.dtype()).recip().reshape(&[b, 1]))
    }

    fn energy_var(&self, x: &Var, cond: &Tensor, p: &[Var]) -> Option<Var> {
        if !self.config.energy {
            return None;
        }
        let b = x.shape()[0];
        let r = x.reshape(&[b, usize::MAX]).sub(&self.raw(x, cond, p));
        let half = r.square().sum(&[1], false).mul_scalar(0.5);
        Some(match self.config.conditioning {
            Conditioning::LogSigma => half.mul_const(&cond.cast(x.dtype()).square().recip()),
            Conditioning::Time => half,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_autodiff::{gradgradcheck, CheckOpts};

    fn small() -> UNet {
        let mut cfg = UNetConfig::new([1, 4, 4], 4);
        cfg.norm_groups = 2;
        UNet::with_dtype(cfg, &mut Rng::new(0), DType::F64)
    }

    #[test]
    fn param_count_is_the_built_networks() {
        for (image, base, mults, groups, freqs) in [
            ([1, 8, 8], 16, vec![1, 2], 4, 8),
            ([3, 8, 8], 8, vec![1], 0, 4),
            ([1, 12, 12], 4, vec![1, 2, 2], 2, 8),
        ] {
            let mut c = UNetConfig::new(image, base);
            (c.mults, c.norm_groups, c.frequencies) = (mults, groups, freqs);
            let built = UNet::new(c.clone(), &mut Rng::new(0)).params().numel() as u64;
            assert_eq!(c.param_count(), Some(built), "{c:?}");
        }
        let mut huge = UNetConfig::new([1, 8, 8], usize::MAX / 2);
        huge.mults = vec![1];
        assert_eq!(huge.param_count(), None);
    }

    #[test]
    fn names_shapes_and_config() {
        let net = small();
        let names = net.params().names();
        for want in [
            "temb.0.weight",
            "conv_in.weight",
            "down.1.block.shortcut.weight",
            "mid.block.proj.weight",
            "up.0.block.conv2.bias",
            "norm_out.weight",
            "conv_out.weight",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        assert_eq!(
            net.params()
                .by_name("up.0.block.conv1.weight")
                .unwrap()
                .shape(),
            &[4, 12, 3, 3]
        );
        assert_eq!(
            &UNetConfig::from_json(&net.config()).unwrap(),
            net.net_config()
        );
        let x = Rng::new(1).normal(&[3, 16], DType::F64);
        let sigma = Tensor::from_vec(vec![0.1f64, 1.0, 5.0], &[3]);
        let s = net.score(&x, &sigma);
        assert_eq!(s.shape(), &[3, 16]);
        // rows are independent (GroupNorm normalises per sample)
        let one = net.score(&x.narrow(0, 1, 1), &sigma.narrow(0, 1, 1));
        assert!(one.max_abs_diff(&s.narrow(0, 1, 1)) < 1e-13);
    }

    #[test]
    fn first_and_second_derivatives_in_input_and_parameters() {
        let net = small();
        let sigma = Tensor::from_vec(vec![0.3f64, 2.0], &[2]);
        let mut inputs = vec![Rng::new(2).normal(&[2, 16], DType::F64)];
        inputs.extend(net.params().tensors().iter().cloned());
        let f = |v: &[Var]| net.score_var(&v[0], &sigma, &v[1..], GradOpts::default());
        gradgradcheck(f, &inputs, &CheckOpts::default()).unwrap();
    }

    #[test]
    fn energy_output_is_half_the_squared_residual_over_sigma_squared() {
        let mut cfg = UNetConfig::new([1, 4, 4], 4);
        cfg.energy = true;
        let (net, raw) = (
            UNet::with_dtype(cfg.clone(), &mut Rng::new(0), DType::F64),
            {
                cfg.energy = false;
                cfg.scale_by_sigma = false;
                UNet::with_dtype(cfg, &mut Rng::new(0), DType::F64)
            },
        );
        let x = Rng::new(3).normal(&[2, 16], DType::F64);
        let sigma = Tensor::from_vec(vec![0.5f64, 2.0], &[2]);
        let f = raw.score(&x, &sigma);
        let want: Vec<f64> = (0..2)
            .map(|r| {
                let s = sigma.to_vec_f64()[r];
                let d = x.narrow(0, r, 1).sub(&f.narrow(0, r, 1));
                0.5 * d.square().sum_all().item() / (s * s)
            })
            .collect();
        let e = net.energy(&x, &sigma).unwrap().to_vec_f64();
        assert!(
            (e[0] - want[0]).abs() < 1e-12 && (e[1] - want[1]).abs() < 1e-12,
            "{e:?} vs {want:?}"
        );
        assert_eq!(net.score(&x, &sigma).shape(), &[2, 16]);
    }
}
