//! Image layers on NCHW `Var`s: [`Conv2d`] (optionally spectrally normalised), [`GroupNorm`]
//! and [`LayerNorm`], with PyTorch's parameter names and layouts (`weight` `[O, C/g, kh, kw]`,
//! `bias` `[O]`; norms' `weight`/`bias` `[C]`), so checkpoints load into the PyTorch modules
//! of the same names.

use crate::linear::Init;
use crate::params::Params;
use ebm_autodiff::Var;
use ebm_core::{Conv2dSpec, DType, Rng, Tensor};

/// A 2-d convolution layer `y = x ⋆ W + b` (PyTorch's `nn.Conv2d`).
///
/// With spectral normalisation (Miyato et al. 2018, as IGEBM uses) the weight is divided by an
/// estimate of the largest singular value of W viewed as `[O, C/g·kh·kw]`: `iters` power
/// iterations on the current weight from a fixed start, σ = uᵀWv with u and v held
/// constant, so the gradient flows through σ as in PyTorch. Unlike PyTorch's persistent `u`
/// buffer, the start is the same every call: the energy stays a pure function of its
/// parameters (gradient checks and repeated evaluations agree).
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Kernel size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride, padding, dilation, groups.
    pub spec: Conv2dSpec,
    weight: usize,
    bias: Option<usize>,
    spectral: Option<(Tensor, usize)>,
}

impl Conv2d {
    /// Registers `{name}.weight` `[out, in/groups, k, k]` and `{name}.bias` `[out]` (when
    /// `bias`), drawn by `init` with fan-in (in/groups)·k² (PyTorch's default for
    /// [`Init::TorchDefault`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        spec: Conv2dSpec,
        bias: bool,
        init: Init,
        rng: &mut Rng,
        dtype: DType,
    ) -> Conv2d {
        assert!(
            spec.groups > 0
                && in_channels.is_multiple_of(spec.groups)
                && out_channels.is_multiple_of(spec.groups),
            "Conv2d {name}: {in_channels} → {out_channels} channels do not split into {} groups",
            spec.groups
        );
        let fan_in = in_channels / spec.groups * kernel * kernel;
        let w = init.weight(rng, out_channels, fan_in, dtype).reshape(&[
            out_channels,
            in_channels / spec.groups,
            kernel,
            kernel,
        ]);
        let weight = params.push(format!("{name}.weight"), w);
        let bias = bias.then(|| {
            let b = init.bias(rng, out_channels, fan_in, dtype);
            params.push(format!("{name}.bias"), b)
        });
        Conv2d {
            in_channels,
            out_channels,
            kernel: [kernel, kernel],
            spec,
            weight,
            bias,
            spectral: None,
        }
    }

    /// Turns on spectral normalisation with `iters` power iterations per call. The start
    /// vector comes from a fixed seed, so the energy is a function of the weights alone and a
    /// restored checkpoint gives the same values.
    pub fn spectral_norm(mut self, iters: usize) -> Conv2d {
        let u = Rng::new(0x5eed_5eed).normal(&[self.out_channels, 1], DType::F64);
        self.spectral = Some((u, iters.max(1)));
        self
    }

    /// Index of the weight in the model's parameters.
    pub fn weight_index(&self) -> usize {
        self.weight
    }

    /// The weight as used: W, or W/σ(W) with spectral normalisation.
    pub fn effective_weight(&self, p: &[Var]) -> Var {
        let w = &p[self.weight];
        let Some((u0, iters)) = &self.spectral else {
            return w.clone();
        };
        let o = self.out_channels;
        let mat = w.value().cast(DType::F64).reshape(&[o, usize::MAX]);
        let unit = |t: Tensor| {
            let n = t.square().sum_all().item().sqrt().max(1e-12);
            t.mul_scalar(1.0 / n)
        };
        let mut u = unit(u0.clone());
        let mut v = unit(mat.matmul_t(&u, true, false));
        for _ in 1..*iters {
            u = unit(mat.matmul(&v));
            v = unit(mat.matmul_t(&u, true, false));
        }
        u = unit(mat.matmul(&v));
        let dt = w.dtype();
        let sigma = w
            .reshape(&[o, usize::MAX])
            .matmul(&w.constant(v.cast(dt)))
            .mul_const(&u.cast(dt))
            .sum_all();
        w.div(&sigma)
    }

    /// The layer on `x` `[N, C, H, W]`, with `p` the model's bound parameters.
    pub fn forward(&self, x: &Var, p: &[Var]) -> Var {
        assert!(
            x.rank() == 4 && x.shape()[1] == self.in_channels,
            "Conv2d: input {:?} does not match [N, {}, H, W]",
            x.shape(),
            self.in_channels
        );
        let w = self.effective_weight(p);
        match self.bias {
            Some(b) => x.conv2d_bias(&w, &p[b], self.spec),
            None => x.conv2d(&w, self.spec),
        }
    }
}

/// Per-channel affine parameters `{name}.weight` (ones) and `{name}.bias` (zeros) `[C]`.
fn affine(params: &mut Params, name: &str, c: usize, dtype: DType) -> (usize, usize) {
    (
        params.push(format!("{name}.weight"), Tensor::ones(&[c], dtype)),
        params.push(format!("{name}.bias"), Tensor::zeros(&[c], dtype)),
    )
}

/// Group normalisation with a per-channel affine map (Wu & He 2018; PyTorch's
/// `nn.GroupNorm`): y = x̂·γ + β, x̂ normalised over each (sample, group of channels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNorm {
    /// Channel groups.
    pub groups: usize,
    /// Channels C.
    pub channels: usize,
    /// Added to the variance.
    pub eps: f64,
    weight: usize,
    bias: usize,
}

impl GroupNorm {
    /// Registers `{name}.weight` (ones) and `{name}.bias` (zeros), `[channels]` each.
    pub fn new(
        params: &mut Params,
        name: &str,
        groups: usize,
        channels: usize,
        dtype: DType,
    ) -> GroupNorm {
        assert!(
            groups > 0 && channels.is_multiple_of(groups),
            "GroupNorm {name}: {channels} channels do not split into {groups} groups"
        );
        let (weight, bias) = affine(params, name, channels, dtype);
        GroupNorm {
            groups,
            channels,
            eps: 1e-5,
            weight,
            bias,
        }
    }

    /// The layer on `x` `[N, C, …]`.
    pub fn forward(&self, x: &Var, p: &[Var]) -> Var {
        let mut s = vec![1; x.rank()];
        s[1] = self.channels;
        x.group_norm(self.groups, self.eps)
            .mul(&p[self.weight].reshape(&s))
            .add(&p[self.bias].reshape(&s))
    }
}

/// Layer normalisation over the last axis with an affine map (Ba et al. 2016; PyTorch's
/// `nn.LayerNorm(features)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    /// Size of the normalised (last) axis.
    pub features: usize,
    /// Added to the variance.
    pub eps: f64,
    weight: usize,
    bias: usize,
}

impl LayerNorm {
    /// Registers `{name}.weight` (ones) and `{name}.bias` (zeros), `[features]` each.
    pub fn new(params: &mut Params, name: &str, features: usize, dtype: DType) -> LayerNorm {
        let (weight, bias) = affine(params, name, features, dtype);
        LayerNorm {
            features,
            eps: 1e-5,
            weight,
            bias,
        }
    }

    /// The layer on `x` `[…, features]`.
    pub fn forward(&self, x: &Var, p: &[Var]) -> Var {
        assert_eq!(
            x.shape().last(),
            Some(&self.features),
            "LayerNorm: input {:?} does not end in {}",
            x.shape(),
            self.features
        );
        x.layer_norm(1, self.eps)
            .mul(&p[self.weight])
            .add(&p[self.bias])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_autodiff::{gradcheck, CheckOpts, Tape};

    #[test]
    fn conv_layer_names_shapes_and_forward() {
        let (mut p, mut rng) = (Params::new(), Rng::new(0));
        let spec = Conv2dSpec::new().padding(1);
        let c = Conv2d::new(
            &mut p,
            "c",
            2,
            4,
            3,
            spec,
            true,
            Init::TorchDefault,
            &mut rng,
            DType::F64,
        );
        assert_eq!(p.names(), ["c.weight", "c.bias"]);
        assert_eq!(p.get(0).shape(), &[4, 2, 3, 3]);
        // PyTorch's default bound 1/√fan_in, fan_in = 2·3·3
        assert!(p.get(0).max_abs() <= 1.0 / 18f64.sqrt());
        let tape = Tape::new();
        let v = p.bind(&tape);
        let x = tape.constant(rng.normal(&[3, 2, 5, 5], DType::F64));
        let y = c.forward(&x, &v);
        let want = x
            .value()
            .conv2d(p.get(0), spec)
            .add(&p.get(1).reshape(&[1, 4, 1, 1]));
        assert!(y.value().max_abs_diff(&want) < 1e-14);
    }

    #[test]
    fn spectral_norm_divides_by_the_top_singular_value() {
        let (mut p, mut rng) = (Params::new(), Rng::new(1));
        let c = Conv2d::new(
            &mut p,
            "c",
            3,
            5,
            3,
            Conv2dSpec::new(),
            false,
            Init::TorchDefault,
            &mut rng,
            DType::F64,
        )
        .spectral_norm(50);
        let tape = Tape::new();
        let v = p.bind(&tape);
        let w = c.effective_weight(&v).value().reshape(&[5, 27]);
        // σ_max of the normalised weight is 1: ‖Wᵀ W‖'s top eigenvalue by power iteration
        let g = w.matmul_t(&w, false, true);
        let mut x = Tensor::ones(&[5, 1], DType::F64);
        for _ in 0..200 {
            let y = g.matmul(&x);
            x = y.mul_scalar(1.0 / y.square().sum_all().item().sqrt());
        }
        let top = g.matmul(&x).square().sum_all().item().sqrt();
        assert!((top - 1.0).abs() < 1e-8, "σ_max² = {top}");
        // the gradient flows through σ: exact at first order, where u and v (singular vectors
        // at convergence) contribute nothing. Second derivatives w.r.t. W itself leave out
        // u and v's dependence on W, as PyTorch's do; no objective needs them (DSM and SSM
        // differentiate once w.r.t. the weights).
        let f = |vs: &[Var]| c.effective_weight(vs).tanh();
        gradcheck(f, &[p.get(0).clone()], &CheckOpts::default()).unwrap();
    }

    #[test]
    fn norms_match_their_formulas() {
        let (mut p, mut rng) = (Params::new(), Rng::new(2));
        let gn = GroupNorm::new(&mut p, "gn", 2, 4, DType::F64);
        let ln = LayerNorm::new(&mut p, "ln", 6, DType::F64);
        assert_eq!(p.names(), ["gn.weight", "gn.bias", "ln.weight", "ln.bias"]);
        let tape = Tape::new();
        let v = p.bind(&tape);
        let x = tape.constant(
            rng.normal(&[3, 4, 2, 3], DType::F64)
                .mul_scalar(3.0)
                .add_scalar(1.0),
        );
        let y = gn.forward(&x, &v).value().reshape(&[3, 2, 12]);
        // every (sample, group) has mean 0 and biased variance 1/(1 + eps/var) ≈ 1
        let mean = y.mean_axes(&[2], false);
        assert!(mean.max_abs() < 1e-12);
        let var = y.square().mean_axes(&[2], false);
        assert!(var.add_scalar(-1.0).max_abs() < 1e-4);
        let z = ln.forward(&x.reshape(&[12, 6]), &v).value().clone();
        assert!(z.mean_axes(&[1], false).max_abs() < 1e-12);
    }
}
