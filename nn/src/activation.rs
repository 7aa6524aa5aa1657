//! Activation functions, chosen by name in configs.

use ebm_autodiff::Var;
use serde::{Deserialize, Serialize};

/// An element-wise nonlinearity between layers.
///
/// Score matching differentiates the network with respect to its input and then again with
/// respect to the parameters (DSM), or takes second input derivatives (exact and sliced SM),
/// so the activation should be smooth: SiLU, softplus, ELU (C¹, with a jump in the second
/// derivative at 0), tanh and GELU are. **ReLU is unsuitable for exact and sliced score
/// matching**: its second derivative is zero almost everywhere, so the Hessian trace term of
/// the loss vanishes and the objective is silently wrong; it also makes the score piecewise
/// constant. It is offered for regression and classifier-style uses only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// x·σ(x) (swish); the default.
    #[default]
    Silu,
    /// log(1 + eˣ).
    Softplus,
    /// x for x > 0, eˣ − 1 otherwise.
    Elu,
    /// tanh x.
    Tanh,
    /// GELU, tanh approximation (PyTorch's `approximate="tanh"`).
    Gelu,
    /// max(x, 0): not for score matching (see the type's docs).
    Relu,
}

impl Activation {
    /// Every activation, in declaration order.
    pub const ALL: [Activation; 6] = [
        Activation::Silu,
        Activation::Softplus,
        Activation::Elu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Relu,
    ];

    /// Applies the activation on the tape.
    pub fn apply(self, x: &Var) -> Var {
        match self {
            Activation::Silu => x.silu(),
            Activation::Softplus => x.softplus(),
            Activation::Elu => x.elu(),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => x.gelu(),
            Activation::Relu => x.relu(),
        }
    }

    /// Whether second input derivatives are meaningful (false only for ReLU).
    pub fn is_smooth(self) -> bool {
        self != Activation::Relu
    }

    /// The lower-case name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Elu => "elu",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Relu => "relu",
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Activation {
    type Err = String;

    /// Parses a name as written by [`Activation::name`] (`swish` is accepted for SiLU).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        if s == "swish" {
            return Ok(Activation::Silu);
        }
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown activation `{s}` (expected silu, softplus, elu, tanh, gelu or relu)"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_autodiff::Tape;
    use ebm_core::Tensor;

    #[test]
    fn values_at_known_points() {
        // At x = 1: silu = σ(1) = 0.7310585786, softplus = ln(1+e) = 1.3132616875,
        // elu = 1, tanh = 0.7615941560, relu = 1; at x = −1: elu = e⁻¹ − 1 = −0.6321205588.
        let tape = Tape::new();
        let x = tape.constant(Tensor::from_vec(vec![1.0f64, -1.0], &[2]));
        let at = |a: Activation| a.apply(&x).value().to_vec_f64();
        assert!((at(Activation::Silu)[0] - 0.7310585786300049).abs() < 1e-15);
        assert!((at(Activation::Softplus)[0] - 1.3132616875182228).abs() < 1e-15);
        assert!((at(Activation::Elu)[1] + 0.6321205588285577).abs() < 1e-15);
        assert!((at(Activation::Tanh)[0] - 0.7615941559557649).abs() < 1e-15);
        assert_eq!(at(Activation::Relu), vec![1.0, 0.0]);
        // gelu_tanh(1) = ½(1 + tanh(√(2/π)·1.044715)) = 0.8411919906
        assert!((at(Activation::Gelu)[0] - 0.8411919906082768).abs() < 1e-12);
    }

    #[test]
    fn names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
        }
        assert_eq!("Swish".parse::<Activation>().unwrap(), Activation::Silu);
        assert!("sigmoidish".parse::<Activation>().is_err());
        assert!(!Activation::Relu.is_smooth());
    }
}
