//! The affine layer `y = x·Wᵀ + b` with PyTorch's `[out, in]` weight layout, and its
//! seeded initialisations.

use crate::params::Params;
use ebm_autodiff::Var;
use ebm_core::{DType, Rng, Tensor};
use serde::{Deserialize, Serialize};

/// How a layer's weights and biases are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// PyTorch's `nn.Linear` default: W and b ~ U(−1/√fan_in, 1/√fan_in)
    /// (`kaiming_uniform_(a=√5)` for W).
    #[default]
    TorchDefault,
    /// He uniform for ReLU-like nets: W ~ U(±√(6/fan_in)), b = 0.
    KaimingUniform,
    /// He normal: W ~ N(0, 2/fan_in), b = 0.
    KaimingNormal,
    /// Glorot uniform: W ~ U(±√(6/(fan_in + fan_out))), b = 0.
    XavierUniform,
    /// Glorot normal: W ~ N(0, 2/(fan_in + fan_out)), b = 0.
    XavierNormal,
    /// W = 0, b = 0.
    Zeros,
}

impl Init {
    /// A `[fan_out, fan_in]` weight.
    pub fn weight(self, rng: &mut Rng, fan_out: usize, fan_in: usize, dtype: DType) -> Tensor {
        let shape = [fan_out, fan_in];
        let (i, o) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        match self {
            Init::TorchDefault => {
                let b = 1.0 / i.sqrt();
                rng.uniform(&shape, -b, b, dtype)
            }
            Init::KaimingUniform => {
                let b = (6.0 / i).sqrt();
                rng.uniform(&shape, -b, b, dtype)
            }
            Init::KaimingNormal => rng.normal(&shape, dtype).mul_scalar((2.0 / i).sqrt()),
            Init::XavierUniform => {
                let b = (6.0 / (i + o)).sqrt();
                rng.uniform(&shape, -b, b, dtype)
            }
            Init::XavierNormal => rng.normal(&shape, dtype).mul_scalar((2.0 / (i + o)).sqrt()),
            Init::Zeros => Tensor::zeros(&shape, dtype),
        }
    }

    /// A `[fan_out]` bias (zero except for [`Init::TorchDefault`]).
    pub fn bias(self, rng: &mut Rng, fan_out: usize, fan_in: usize, dtype: DType) -> Tensor {
        match self {
            Init::TorchDefault => {
                let b = 1.0 / (fan_in.max(1) as f64).sqrt();
                rng.uniform(&[fan_out], -b, b, dtype)
            }
            _ => Tensor::zeros(&[fan_out], dtype),
        }
    }
}

/// An affine layer `y = x·Wᵀ + b`; W is `[out, in]` like PyTorch's `nn.Linear`.
///
/// The layer holds the indices of its parameters in the model's [`Params`]; `forward` reads
/// them from the bound `Var`s of the current step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    weight: usize,
    bias: Option<usize>,
}

impl Linear {
    /// Registers `{name}.weight` (and `{name}.bias` when `bias`) in `params`, drawn by
    /// `init` from `rng` (weight first, then bias).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        rng: &mut Rng,
        dtype: DType,
    ) -> Linear {
        let w = init.weight(rng, out_features, in_features, dtype);
        let weight = params.push(format!("{name}.weight"), w);
        let bias = bias.then(|| {
            let b = init.bias(rng, out_features, in_features, dtype);
            params.push(format!("{name}.bias"), b)
        });
        Linear {
            in_features,
            out_features,
            weight,
            bias,
        }
    }

    /// Index of the weight in the model's parameters.
    pub fn weight_index(&self) -> usize {
        self.weight
    }

    /// Index of the bias, if the layer has one.
    pub fn bias_index(&self) -> Option<usize> {
        self.bias
    }

    /// `x·Wᵀ + b` for `x` of shape `[B, in]`, with `p` the model's bound parameters.
    pub fn forward(&self, x: &Var, p: &[Var]) -> Var {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.in_features,
            "Linear: input {:?} does not match [B, {}]",
            x.shape(),
            self.in_features
        );
        match self.bias {
            // the bias rides in the GEMM's accumulator: no extra pass over the output
            Some(b) => x.linear(&p[self.weight], &p[b]),
            None => x.matmul_t(&p[self.weight], false, true),
        }
    }

    /// Sets the layer's weight and bias to zero (e.g. zero-init of a last layer).
    pub fn zero(&self, params: &mut Params) {
        params.update_one(self.weight, |t| t.zeros_like());
        if let Some(b) = self.bias {
            params.update_one(b, |t| t.zeros_like());
        }
    }
}

impl Params {
    /// Replaces parameter `i` by `f(value)` (same shape and dtype).
    pub(crate) fn update_one(&mut self, i: usize, f: impl FnOnce(&Tensor) -> Tensor) {
        let v = f(self.get(i));
        self.set(i, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_autodiff::Tape;

    #[test]
    fn forward_is_x_wt_plus_b() {
        let mut p = Params::new();
        let mut rng = Rng::new(0);
        let l = Linear::new(
            &mut p,
            "l0",
            2,
            3,
            true,
            Init::TorchDefault,
            &mut rng,
            DType::F64,
        );
        assert_eq!(p.names(), ["l0.weight", "l0.bias"]);
        assert_eq!(p.get(0).shape(), &[3, 2]);
        p.set(
            0,
            Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]),
        );
        p.set(1, Tensor::from_vec(vec![0.5f64, -0.5, 1.0], &[3]));
        let tape = Tape::new();
        let v = p.bind(&tape);
        let x = tape.constant(Tensor::from_vec(vec![1.0f64, -1.0], &[1, 2]));
        // [1,-1]·Wᵀ = [1−2, 3−4, 5−6] = [−1, −1, −1]; + b = [−0.5, −1.5, 0]
        assert_eq!(
            l.forward(&x, &v).value().to_vec_f64(),
            vec![-0.5, -1.5, 0.0]
        );
    }

    #[test]
    fn inits_have_their_scales() {
        let mut rng = Rng::new(1);
        let (o, i) = (200, 100);
        let std = |t: &Tensor| (t.square().mean_all().item()).sqrt();
        let w = Init::TorchDefault.weight(&mut rng, o, i, DType::F64);
        // U(−b, b) has standard deviation b/√3 with b = 1/√100 = 0.1
        assert!((std(&w) - 0.1 / 3f64.sqrt()).abs() < 0.002);
        assert!(w.max_abs() <= 0.1);
        let w = Init::KaimingNormal.weight(&mut rng, o, i, DType::F64);
        assert!((std(&w) - (2.0f64 / 100.0).sqrt()).abs() < 0.003);
        let w = Init::XavierUniform.weight(&mut rng, o, i, DType::F64);
        assert!(w.max_abs() <= (6.0f64 / 300.0).sqrt());
        let w = Init::XavierNormal.weight(&mut rng, o, i, DType::F64);
        assert!((std(&w) - (2.0f64 / 300.0).sqrt()).abs() < 0.002);
        assert_eq!(
            Init::KaimingUniform
                .bias(&mut rng, 3, 4, DType::F32)
                .max_abs(),
            0.0
        );
        assert_eq!(
            Init::Zeros.weight(&mut rng, 3, 4, DType::F32).max_abs(),
            0.0
        );
    }
}
