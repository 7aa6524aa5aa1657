//! A noise-conditional network for multi-scale score matching (NCSN, VE/VP SDEs).

use crate::activation::Activation;
use crate::linear::{Init, Linear};
use crate::model::{
    as_leaf, score_from_energy, tagged_config, Model, ModelRef, Module, NoiseConditionalModel,
};
use crate::params::Params;
use ebm_autodiff::{GradOpts, Var};
use ebm_core::{DType, Rng, Tensor};
use serde::{Deserialize, Serialize};

/// What the per-row condition `c` means and how it is embedded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conditioning {
    /// `c` is the noise standard deviation σ > 0; the embedding sees log σ (NCSN).
    LogSigma,
    /// `c` is the diffusion time t (score SDEs); the embedding sees t.
    Time,
}

/// Whether the network outputs an energy (score = −∇ₓE) or the score itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetOutput {
    /// One scalar per row; the score is its negative input gradient.
    Energy,
    /// `dim` outputs per row: the score directly (cheaper, not conservative).
    Score,
}

/// Architecture of a [`NoiseConditionalNet`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseConditionalConfig {
    /// Data dimension d.
    pub dim: usize,
    /// Hidden widths (at least one).
    pub hidden: Vec<usize>,
    /// The activation between layers.
    pub activation: Activation,
    /// What the condition c is (log σ or time t).
    pub conditioning: Conditioning,
    /// Number of Fourier frequencies k: the embedding of c is
    /// `[c, sin(ω₀c), …, sin(ω_{k−1}c), cos(ω₀c), …, cos(ω_{k−1}c)]`, 2k + 1 features.
    pub frequencies: usize,
    /// ω ranges geometrically from 1 to `max_frequency`.
    pub max_frequency: f64,
    /// Whether the net outputs an energy or a score.
    pub output: NetOutput,
    /// NCSNv2's output scaling s(x, σ) = s_θ(x, σ)/σ (for an energy: E_θ/σ). Needs
    /// [`Conditioning::LogSigma`]; for SDE time conditioning, divide by the marginal standard
    /// deviation in the objective instead.
    pub scale_by_sigma: bool,
    /// How weights are initialised.
    pub init: Init,
    /// Zero the output layer (the model starts at s ≡ 0).
    pub zero_last: bool,
}

impl NoiseConditionalConfig {
    /// Energy output, log σ conditioning with 8 frequencies up to 16, SiLU, no output
    /// scaling, PyTorch default init.
    pub fn new(dim: usize, hidden: &[usize]) -> NoiseConditionalConfig {
        NoiseConditionalConfig {
            dim,
            hidden: hidden.to_vec(),
            activation: Activation::Silu,
            conditioning: Conditioning::LogSigma,
            frequencies: 8,
            max_frequency: 16.0,
            output: NetOutput::Energy,
            scale_by_sigma: false,
            init: Init::TorchDefault,
            zero_last: false,
        }
    }

    /// With activation `a`.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// With conditioning `c`.
    pub fn conditioning(mut self, c: Conditioning) -> Self {
        self.conditioning = c;
        self
    }

    /// With output `o`.
    pub fn output(mut self, o: NetOutput) -> Self {
        self.output = o;
        self
    }

    /// With NCSNv2's 1/σ output scaling when `on`.
    pub fn scale_by_sigma(mut self, on: bool) -> Self {
        self.scale_by_sigma = on;
        self
    }

    /// With `frequencies` Fourier features up to `max_frequency`.
    pub fn fourier(mut self, frequencies: usize, max_frequency: f64) -> Self {
        self.frequencies = frequencies;
        self.max_frequency = max_frequency;
        self
    }

    /// With weights initialised by `init`.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// With the output layer zeroed when `on`.
    pub fn zero_last(mut self, on: bool) -> Self {
        self.zero_last = on;
        self
    }

    /// Width of the condition embedding: 2k + 1.
    pub fn embed_dim(&self) -> usize {
        2 * self.frequencies + 1
    }

    /// Parses a config written by [`Module::config`] (`"kind"` must be
    /// `"noise_conditional"`).
    pub fn from_json(v: &serde_json::Value) -> Result<NoiseConditionalConfig, String> {
        let mut v = v.clone();
        let map = v
            .as_object_mut()
            .ok_or("a noise-conditional config must be a JSON object")?;
        match map.remove("kind") {
            Some(serde_json::Value::String(k)) if k == "noise_conditional" => {}
            other => {
                return Err(format!(
                    "expected kind \"noise_conditional\", found {other:?}"
                ))
            }
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}

/// The Fourier embedding [B, 2k+1] of per-row conditions `cond` [B]:
/// `[u, sin(ω₀u), …, sin(ω_{k−1}u), cos(ω₀u), …, cos(ω_{k−1}u)]` with u = log σ
/// ([`Conditioning::LogSigma`]) or t ([`Conditioning::Time`]) and ω geometric from 1 to
/// `max_frequency`.
pub fn fourier_embedding(
    cond: &Tensor,
    conditioning: Conditioning,
    k: usize,
    max_frequency: f64,
    dtype: DType,
) -> Tensor {
    assert_eq!(
        cond.rank(),
        1,
        "fourier_embedding: cond must be [B], got {:?}",
        cond.shape()
    );
    let omegas: Vec<f64> = (0..k)
        .map(|j| {
            if k == 1 {
                1.0
            } else {
                max_frequency.powf(j as f64 / (k - 1) as f64)
            }
        })
        .collect();
    let mut out = Vec::with_capacity(cond.numel() * (2 * k + 1));
    for c in cond.to_vec_f64() {
        let u = match conditioning {
            Conditioning::LogSigma => {
                assert!(c > 0.0, "fourier_embedding: σ must be positive, got {c}");
                c.ln()
            }
            Conditioning::Time => c,
        };
        out.push(u);
        out.extend(omegas.iter().map(|w| (w * u).sin()));
        out.extend(omegas.iter().map(|w| (w * u).cos()));
    }
    Tensor::from_f64s(&out, &[cond.numel(), 2 * k + 1], dtype)
}

/// An MLP on x whose hidden layers are shifted by a learned projection of a Fourier
/// embedding of the noise level: `h ← act(l_i(h) + c_i(emb(c)))`, then the output layer.
///
/// Parameters: `l{i}.weight/bias` for the data path (the last `l` is the output layer) and
/// `c{i}.weight` (no bias) projecting the embedding into hidden layer i.
#[derive(Clone, Debug)]
pub struct NoiseConditionalNet {
    config: NoiseConditionalConfig,
    params: Params,
    layers: Vec<Linear>,
    cond_layers: Vec<Linear>,
}

impl NoiseConditionalNet {
    /// A new f32 network drawn from `rng`.
    pub fn new(config: NoiseConditionalConfig, rng: &mut Rng) -> NoiseConditionalNet {
        NoiseConditionalNet::with_dtype(config, rng, DType::F32)
    }

    /// A new network in `dtype`.
    pub fn with_dtype(
        config: NoiseConditionalConfig,
        rng: &mut Rng,
        dtype: DType,
    ) -> NoiseConditionalNet {
        assert!(
            config.dim > 0 && !config.hidden.is_empty() && config.hidden.iter().all(|&h| h > 0),
            "NoiseConditionalNet: dim {} and hidden widths {:?} must be positive, with at least one hidden layer",
            config.dim,
            config.hidden
        );
        assert!(
            !config.scale_by_sigma || config.conditioning == Conditioning::LogSigma,
            "NoiseConditionalNet: scale_by_sigma needs σ conditioning (LogSigma); with time \
             conditioning divide by the marginal std in the objective"
        );
        assert!(
            config.max_frequency.is_finite() && config.max_frequency >= 1.0,
            "NoiseConditionalNet: max_frequency {} must be ≥ 1",
            config.max_frequency
        );
        let mut params = Params::new();
        let mut layers = Vec::new();
        let mut cond_layers = Vec::new();
        let mut width = config.dim;
        for (i, &h) in config.hidden.iter().enumerate() {
            layers.push(Linear::new(
                &mut params,
                &format!("l{i}"),
                width,
                h,
                true,
                config.init,
                rng,
                dtype,
            ));
            cond_layers.push(Linear::new(
                &mut params,
                &format!("c{i}"),
                config.embed_dim(),
                h,
                false,
                config.init,
                rng,
                dtype,
            ));
            width = h;
        }
        let out = match config.output {
            NetOutput::Energy => 1,
            NetOutput::Score => config.dim,
        };
        let last = Linear::new(
            &mut params,
            &format!("l{}", config.hidden.len()),
            width,
            out,
            true,
            config.init,
            rng,
            dtype,
        );
        if config.zero_last {
            last.zero(&mut params);
        }
        layers.push(last);
        NoiseConditionalNet {
            config,
            params,
            layers,
            cond_layers,
        }
    }

    /// The architecture.
    pub fn net_config(&self) -> &NoiseConditionalConfig {
        &self.config
    }

    /// The embedding [B, 2k+1] of the conditions `cond` [B], in `dtype`.
    pub fn embed(&self, cond: &Tensor, dtype: DType) -> Tensor {
        let c = &self.config;
        fourier_embedding(cond, c.conditioning, c.frequencies, c.max_frequency, dtype)
    }

    /// The raw network output [B, 1] or [B, d], before σ scaling.
    fn raw(&self, x: &Var, cond: &Tensor, p: &[Var]) -> Var {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.config.dim && cond.shape() == [x.shape()[0]],
            "NoiseConditionalNet: x {:?} must be [B, {}] and cond {:?} must be [B]",
            x.shape(),
            self.config.dim,
            cond.shape()
        );
        let emb = x.constant(self.embed(cond, x.dtype()));
        let mut h = x.clone();
        for (l, c) in self.layers.iter().zip(&self.cond_layers) {
            h = self
                .config
                .activation
                .apply(&l.forward(&h, p).add(&c.forward(&emb, p)));
        }
        self.layers.last().expect("output layer").forward(&h, p)
    }

    /// 1/σ per row as a [B, 1] tensor in `dtype`.
    fn inv_sigma(cond: &Tensor, dtype: DType) -> Tensor {
        let b = cond.numel();
        cond.cast(dtype).recip().reshape(&[b, 1])
    }
}

impl Module for NoiseConditionalNet {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        tagged_config("noise_conditional", &self.config)
    }
}

impl Model for NoiseConditionalNet {
    fn view(&self) -> ModelRef<'_> {
        ModelRef::NoiseConditional(self)
    }
}

impl NoiseConditionalModel for NoiseConditionalNet {
    fn score_var(&self, x: &Var, cond: &Tensor, p: &[Var], opts: GradOpts) -> Var {
        match self.config.output {
            NetOutput::Energy => {
                let x = as_leaf(x);
                let e = self.energy_var(&x, cond, p).expect("energy output");
                score_from_energy(&e, &x, opts)
            }
            NetOutput::Score => {
                let s = self.raw(x, cond, p);
                if self.config.scale_by_sigma {
                    s.mul_const(&Self::inv_sigma(cond, x.dtype()))
                } else {
                    s
                }
            }
        }
    }

    fn energy_var(&self, x: &Var, cond: &Tensor, p: &[Var]) -> Option<Var> {
        if self.config.output != NetOutput::Energy {
            return None;
        }
        let mut e = self.raw(x, cond, p);
        if self.config.scale_by_sigma {
            e = e.mul_const(&Self::inv_sigma(cond, x.dtype()));
        }
        Some(e.reshape(&[x.shape()[0]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_names() {
        let cfg = NoiseConditionalConfig::new(2, &[16, 16]).fourier(4, 8.0);
        let net = NoiseConditionalNet::new(cfg, &mut Rng::new(0));
        assert_eq!(
            net.params().names(),
            [
                "l0.weight",
                "l0.bias",
                "c0.weight",
                "l1.weight",
                "l1.bias",
                "c1.weight",
                "l2.weight",
                "l2.bias"
            ]
        );
        assert_eq!(net.params().by_name("c0.weight").unwrap().shape(), &[16, 9]);
        let x = Tensor::zeros(&[3, 2], DType::F32);
        let sig = Tensor::from_vec(vec![0.1f32, 1.0, 10.0], &[3]);
        assert_eq!(net.energy(&x, &sig).unwrap().shape(), &[3]);
        assert_eq!(net.score(&x, &sig).shape(), &[3, 2]);
        assert_eq!(net.embed(&sig, DType::F64).shape(), &[3, 9]);
    }

    #[test]
    fn sigma_scaling_divides_the_score() {
        for output in [NetOutput::Energy, NetOutput::Score] {
            let base = NoiseConditionalConfig::new(2, &[8]).output(output);
            let plain = NoiseConditionalNet::with_dtype(base.clone(), &mut Rng::new(5), DType::F64);
            let scaled = NoiseConditionalNet::with_dtype(
                base.scale_by_sigma(true),
                &mut Rng::new(5),
                DType::F64,
            );
            let x = Rng::new(1).normal(&[4, 2], DType::F64);
            let sig = Tensor::from_vec(vec![0.5f64, 2.0, 4.0, 0.01], &[4]);
            let want = plain.score(&x, &sig).div(&sig.reshape(&[4, 1]));
            assert!(scaled.score(&x, &sig).max_abs_diff(&want) < 1e-12 * want.max_abs());
        }
    }

    #[test]
    fn score_output_has_no_energy_and_time_conditioning_works() {
        let cfg = NoiseConditionalConfig::new(3, &[8])
            .output(NetOutput::Score)
            .conditioning(Conditioning::Time);
        let net = NoiseConditionalNet::new(cfg, &mut Rng::new(0));
        let x = Tensor::zeros(&[2, 3], DType::F32);
        let t = Tensor::from_vec(vec![0.0f32, 1.0], &[2]);
        assert!(net.energy(&x, &t).is_none());
        let s = net.score(&x, &t);
        assert_eq!(s.shape(), &[2, 3]);
        // different times give different outputs at the same x
        assert!(s.narrow(0, 0, 1).max_abs_diff(&s.narrow(0, 1, 1)) > 0.0);
    }

    #[test]
    #[should_panic(expected = "scale_by_sigma needs")]
    fn scaling_needs_sigma() {
        let cfg = NoiseConditionalConfig::new(2, &[4])
            .conditioning(Conditioning::Time)
            .scale_by_sigma(true);
        NoiseConditionalNet::new(cfg, &mut Rng::new(0));
    }

    #[test]
    fn config_round_trips() {
        let cfg = NoiseConditionalConfig::new(2, &[4]).zero_last(true);
        let net = NoiseConditionalNet::new(cfg.clone(), &mut Rng::new(0));
        assert_eq!(
            NoiseConditionalConfig::from_json(&net.config()).unwrap(),
            cfg
        );
    }
}
