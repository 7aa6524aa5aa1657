//! Multi-layer perceptrons of any widths; with one output they are energy models.

use crate::activation::Activation;
use crate::linear::{Init, Linear};
use crate::model::{
    as_leaf, energy_and_score_on_tape, score_and_jvps_on_tape, score_from_energy, score_on_tape,
    tagged_config, EnergyModel, Module,
};
use crate::params::Params;
use crate::silu_mlp;
use ebm_autodiff::{GradOpts, Tape, Var};
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

    /// With activation `a` between layers.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// With weights initialised by `init`.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// With the output layer zeroed (E ≡ 0 at the start) when `on`.
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

/// `layers` with `activation` after every one but the last, on the tape: an MLP's forward pass.
pub(crate) fn forward_layers(layers: &[Linear], activation: Activation, x: &Var, p: &[Var]) -> Var {
    let mut h = x.clone();
    for (i, l) in layers.iter().enumerate() {
        h = l.forward(&h, p);
        if i + 1 < layers.len() {
            h = activation.apply(&h);
        }
    }
    h
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
        forward_layers(&self.layers, self.config.activation, x, p)
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
    /// E(x) = mlp(x) reshaped to [B]; panics unless the output width is 1. For an SiLU network
    /// on the CPU at a constant `x` with tracked parameters, one node whose parameter VJP is
    /// written out ([`crate::silu_mlp`]).
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        let out = *self.config.widths.last().expect("widths checked in new");
        assert_eq!(
            out, 1,
            "Mlp as an energy needs output width 1, this one has widths {:?}",
            self.config.widths
        );
        let values: Vec<&Tensor> = p.iter().map(|v| v.value()).collect();
        if !x.is_tracked()
            && p.iter().any(|v| v.is_tracked())
            && self.closed_form_applies(&values, x.value())
        {
            // nothing will differentiate in x: one node with the parameter VJP written out
            return silu_mlp::energy_node(&self.layers, x, p);
        }
        self.forward(x, p).reshape(&[x.shape()[0]])
    }

    /// For an SiLU network on the CPU at a constant `x` (nothing will differentiate in x), the
    /// closed form of [`crate::silu_mlp`]: one node whose parameter VJP is written out (with
    /// `create_graph`, as denoising score matching asks), or a constant (without). Otherwise
    /// −∇ₓE on the tape.
    fn score_var(&self, x: &Var, p: &[Var], opts: GradOpts) -> Var {
        let values: Vec<&Tensor> = p.iter().map(|v| v.value()).collect();
        if (!x.is_tracked() || !opts.create_graph) && self.closed_form_applies(&values, x.value()) {
            if opts.create_graph {
                return silu_mlp::score_node(&self.layers, x, p);
            }
            return x.constant(silu_mlp::score(&self.layers, &values, x.value(), false).1);
        }
        let x = as_leaf(x);
        score_from_energy(&self.energy_var(&x, p), &x, opts)
    }

    /// For an SiLU network on the CPU, one node [s; ∇ₓs·v₁; …] whose parameter VJP is written
    /// out ([`crate::silu_mlp`]'s `jvp`); otherwise the tape's.
    fn score_and_jvps(&self, tape: &Tape, x: &Tensor, p: &[Var], v: &[Tensor]) -> (Var, Vec<Var>) {
        let values: Vec<&Tensor> = p.iter().map(|v| v.value()).collect();
        if v.is_empty()
            || v.iter().any(|v| v.shape() != x.shape())
            || !self.closed_form_applies(&values, x)
        {
            return score_and_jvps_on_tape(self, tape, x, p, v);
        }
        let rows = x.shape()[0];
        let both = silu_mlp::score_jvp_node(&self.layers, &tape.constant(x.clone()), v, p);
        let block = |m: usize| both.narrow(0, m * rows, rows);
        (block(0), (1..=v.len()).map(block).collect())
    }

    /// s(x) = −∇ₓE(x); for an SiLU network on the CPU by [`Mlp::silu_score`], else on a tape.
    fn score(&self, x: &Tensor) -> Tensor {
        match self.silu_score(x, false) {
            Some((_, s)) => s,
            None => score_on_tape(self, x),
        }
    }

    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        match self.silu_score(x, true) {
            Some((Some(e), s)) => (e, s),
            _ => energy_and_score_on_tape(self, x),
        }
    }
}

impl Mlp {
    /// The score of an SiLU energy network in closed form, the chain rule written out with no
    /// tape ([`crate::silu_mlp`]); with `with_energy`, E(x) too. Samplers call this in their
    /// inner loop (ULA, PCD). Returns `None` (the caller uses the tape) unless the activation
    /// is SiLU and `x` and the parameters are one dtype on the CPU.
    pub fn silu_score(&self, x: &Tensor, with_energy: bool) -> Option<(Option<Tensor>, Tensor)> {
        let p: Vec<&Tensor> = self.params.tensors().iter().collect();
        self.closed_form_applies(&p, x)
            .then(|| silu_mlp::score(&self.layers, &p, x, with_energy))
    }

    fn closed_form_applies(&self, p: &[&Tensor], x: &Tensor) -> bool {
        self.config.activation == Activation::Silu && silu_mlp::applies(&self.layers, p, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_silu_score_is_the_tape_score() {
        let mut rng = Rng::new(21);
        for widths in [&[2usize, 128, 128, 1][..], &[3, 5, 1], &[4, 7, 6, 5, 1]] {
            for dtype in [DType::F64, DType::F32] {
                let m = Mlp::with_dtype(MlpConfig::new(widths), &mut rng, dtype);
                let x = rng.normal(&[37, widths[0]], dtype).mul_scalar(2.0);
                let want_s = score_on_tape(&m, &x);
                let (want_e, _) = energy_and_score_on_tape(&m, &x);
                let (none, s) = m.silu_score(&x, false).expect("SiLU on the CPU");
                assert!(none.is_none());
                let (e, s2) = m.silu_score(&x, true).unwrap();
                let tol = if dtype == DType::F64 { 1e-13 } else { 1e-5 };
                for (got, want, what) in [
                    (&s, &want_s, "score"),
                    (&s2, &want_s, "score with energy"),
                    (e.as_ref().unwrap(), &want_e, "energy"),
                ] {
                    assert_eq!(got.shape(), want.shape());
                    assert!(
                        got.max_abs_diff(want) <= tol * (1.0 + want.max_abs()),
                        "{what} of {widths:?} {dtype}: off by {}",
                        got.max_abs_diff(want)
                    );
                }
                // the trait methods take the closed form
                assert_eq!(m.score(&x).to_vec_f64(), s.to_vec_f64());
                assert_eq!(
                    m.energy_and_score(&x).0.to_vec_f64(),
                    e.unwrap().to_vec_f64()
                );
            }
        }
        // other activations, a linear energy, and mixed dtypes go to the tape
        let tanh = Mlp::new(
            MlpConfig::new(&[2, 8, 1]).activation(Activation::Tanh),
            &mut rng,
        );
        let x = rng.normal(&[5, 2], DType::F32);
        assert!(tanh.silu_score(&x, false).is_none());
        assert_eq!(
            tanh.score(&x).to_vec_f64(),
            score_on_tape(&tanh, &x).to_vec_f64()
        );
        let linear = Mlp::new(MlpConfig::new(&[2, 1]), &mut rng);
        assert!(linear.silu_score(&x, false).is_none());
        let silu = Mlp::new(MlpConfig::new(&[2, 8, 1]), &mut rng);
        assert!(silu.silu_score(&x.cast(DType::F64), false).is_none());
    }

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
