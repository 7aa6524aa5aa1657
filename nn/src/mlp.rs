//! Multi-layer perceptrons of any widths; with one output they are energy models.

use crate::activation::Activation;
use crate::linear::{Init, Linear};
use crate::model::{tagged_config, EnergyModel, Module};
use crate::params::Params;
use ebm_autodiff::{Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use serde::{Deserialize, Serialize};

/// Architecture of an [`Mlp`]: layer widths from input to output, e.g. `[2, 128, 128, 1]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Input width, hidden widths, output width (at least two entries).
    pub widths: Vec<usize>,
    /// Nonlinearity after every layer but the last.
    #[serde(default)]
    pub activation: Activation,
    /// Initialisation of every layer.
    #[serde(default)]
    pub init: Init,
    /// Zero the last layer's weight and bias (the model starts at E ≡ 0 / output 0).
    #[serde(default)]
    pub zero_last: bool,
}

impl MlpConfig {
    /// SiLU, PyTorch default init, no zero-init.
    pub fn new(widths: &[usize]) -> MlpConfig {
        MlpConfig {
            widths: widths.to_vec(),
            activation: Activation::default(),
            init: Init::default(),
            zero_last: false,
        }
    }

    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    pub fn zero_last(mut self, on: bool) -> Self {
        self.zero_last = on;
        self
    }

    /// Parses a config written by [`Module::config`] (the `"kind"` field must be `"mlp"`).
    pub fn from_json(v: &serde_json::Value) -> Result<MlpConfig, String> {
        let mut v = v.clone();
        let map = v
            .as_object_mut()
            .ok_or("an MLP config must be a JSON object")?;
        match map.remove("kind") {
            Some(serde_json::Value::String(k)) if k == "mlp" => {}
            other => return Err(format!("expected kind \"mlp\", found {other:?}")),
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}

/// A multi-layer perceptron `l0 → act → l1 → act → … → l{n-1}` with parameters
/// `l{i}.weight [out, in]` and `l{i}.bias [out]`, like PyTorch's `nn.Sequential` of
/// `nn.Linear`s. With output width 1 it is an [`EnergyModel`]: E(x) = mlp(x) per row.
#[derive(Clone, Debug)]
pub struct Mlp {
    config: MlpConfig,
    params: Params,
    layers: Vec<Linear>,
}

impl Mlp {
    /// A new f32 network drawn from `rng` (per layer: weight, then bias).
    pub fn new(config: MlpConfig, rng: &mut Rng) -> Mlp {
        Mlp::with_dtype(config, rng, DType::F32)
    }

    /// A new network in `dtype` (f64 for gradient checks). The draws do not depend on
    /// `dtype`: an f64 network is the exact upcast of the f32 one from the same seed, up to
    /// the f32 rounding of the latter.
    pub fn with_dtype(config: MlpConfig, rng: &mut Rng, dtype: DType) -> Mlp {
        assert!(
            config.widths.len() >= 2 && config.widths.iter().all(|&w| w > 0),
            "Mlp: widths {:?} need an input and an output width, all positive",
            config.widths
        );
        let mut params = Params::new();
        let layers: Vec<Linear> = config
            .widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Linear::new(
                    &mut params,
                    &format!("l{i}"),
                    w[0],
                    w[1],
                    true,
                    config.init,
                    rng,
                    dtype,
                )
            })
            .collect();
        if config.zero_last {
            layers.last().expect("at least one layer").zero(&mut params);
        }
        Mlp {
            config,
            params,
            layers,
        }
    }

    /// The architecture.
    pub fn mlp_config(&self) -> &MlpConfig {
        &self.config
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// `[B, in] → [B, out]` on the tape.
    pub fn forward(&self, x: &Var, p: &[Var]) -> Var {
        let mut h = x.clone();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h, p);
            if i + 1 < n {
                h = self.config.activation.apply(&h);
            }
        }
        h
    }

    /// `[B, in] → [B, out]` as a plain tensor.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        let tape = Tape::new();
        let p = self.params.constants(&tape);
        self.forward(&tape.constant(x.clone()), &p).value().clone()
    }
}

impl Module for Mlp {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        tagged_config("mlp", &self.config)
    }
}

impl EnergyModel for Mlp {
    /// E(x) = mlp(x) reshaped to [B]; panics unless the output width is 1.
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        let out = *self.config.widths.last().expect("widths checked in new");
        assert_eq!(
            out, 1,
            "Mlp as an energy needs output width 1, this one has widths {:?}",
            self.config.widths
        );
        self.forward(x, p).reshape(&[x.shape()[0]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_pytorch_sequential() {
        let m = Mlp::new(MlpConfig::new(&[2, 128, 128, 1]), &mut Rng::new(0));
        let shapes: Vec<(&str, &[usize])> =
            m.params().iter().map(|(n, t)| (n, t.shape())).collect();
        assert_eq!(
            shapes,
            vec![
                ("l0.weight", &[128usize, 2][..]),
                ("l0.bias", &[128][..]),
                ("l1.weight", &[128, 128][..]),
                ("l1.bias", &[128][..]),
                ("l2.weight", &[1, 128][..]),
                ("l2.bias", &[1][..]),
            ]
        );
        let e = m.energy(&Tensor::zeros(&[5, 2], DType::F32));
        assert_eq!(e.shape(), &[5]);
    }

    #[test]
    fn config_round_trips_and_zero_last_zeroes() {
        let c = MlpConfig::new(&[3, 8, 1])
            .activation(Activation::Softplus)
            .init(Init::XavierUniform)
            .zero_last(true);
        let m = Mlp::new(c.clone(), &mut Rng::new(3));
        let json = m.config();
        assert_eq!(json["kind"], "mlp");
        assert_eq!(MlpConfig::from_json(&json).unwrap(), c);
        assert!(MlpConfig::from_json(&serde_json::json!({"kind": "quadratic"})).is_err());
        assert_eq!(m.params().by_name("l1.weight").unwrap().max_abs(), 0.0);
        assert_eq!(m.energy(&Tensor::ones(&[2, 3], DType::F32)).max_abs(), 0.0);
    }

    #[test]
    fn f64_network_is_the_upcast_draw() {
        let a = Mlp::new(MlpConfig::new(&[2, 4, 1]), &mut Rng::new(9));
        let b = Mlp::with_dtype(MlpConfig::new(&[2, 4, 1]), &mut Rng::new(9), DType::F64);
        for (x, y) in a.params().tensors().iter().zip(b.params().tensors()) {
            assert!(x.cast(DType::F64).max_abs_diff(y) < 1e-7);
        }
    }
}
