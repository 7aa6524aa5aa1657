//! A normalising flow with an exact log-density and exact sampling: RealNVP's affine
//! couplings (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP") after
//! an elementwise affine standardisation (ActNorm's data-dependent start, Kingma & Dhariwal
//! 2018), on a standard normal base.

use crate::activation::Activation;
use crate::linear::Init;
use crate::mlp::{Mlp, MlpConfig};
use crate::model::{tagged_config, EnergyModel, Module};
use crate::params::Params;
use ebm_autodiff::{Tape, Var};
use ebm_core::{DType, Rng, Tensor};
use serde::{Deserialize, Serialize};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Architecture of a [`RealNvp`] flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Data dimension d.
    pub dim: usize,
    /// Number of affine coupling layers (the masks alternate, so every coordinate is
    /// transformed from two layers on).
    pub couplings: usize,
    /// Hidden widths of each coupling's conditioner network.
    pub hidden: Vec<usize>,
    /// The conditioners' nonlinearity.
    #[serde(default)]
    pub activation: Activation,
    /// Log-scales are soft-clamped to (−b, b) by s = b·tanh(s̃/b), so no coupling can
    /// blow a coordinate up by more than eᵇ (a common RealNVP stabiliser).
    pub scale_bound: f64,
}

impl FlowConfig {
    /// `couplings` layers of conditioners with hidden widths `hidden`, SiLU, scale bound 3.
    pub fn new(dim: usize, couplings: usize, hidden: &[usize]) -> FlowConfig {
        FlowConfig {
            dim,
            couplings,
            hidden: hidden.to_vec(),
            activation: Activation::Silu,
            scale_bound: 3.0,
        }
    }

    /// Parses a config written by [`Module::config`] (the `"kind"` field must be `"realnvp"`).
    pub fn from_json(v: &serde_json::Value) -> Result<FlowConfig, String> {
        let mut v = v.clone();
        let map = v
            .as_object_mut()
            .ok_or("a flow config must be a JSON object")?;
        match map.remove("kind") {
            Some(serde_json::Value::String(k)) if k == "realnvp" => {}
            other => return Err(format!("expected kind \"realnvp\", found {other:?}")),
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// Coupling k transforms the coordinates i with (i + k) odd, conditioned on the rest.
    fn mask(&self, k: usize, dtype: DType) -> Tensor {
        let m: Vec<f64> = (0..self.dim)
            .map(|i| if (i + k).is_multiple_of(2) { 1.0 } else { 0.0 })
            .collect();
        Tensor::from_f64s(&m, &[1, self.dim], dtype)
    }
}

/// A RealNVP flow f: data x → latent z with z ~ N(0, I):
///
/// z = c_K ∘ … ∘ c_1 ∘ a(x), a(x) = (x − μ) ⊙ e^{−ℓ} (parameters `shift` μ, `log_scale` ℓ),
/// and coupling c_k(u) = u ⊙ m_k + (1 − m_k) ⊙ (u ⊙ e^{s_k(u ⊙ m_k)} + t_k(u ⊙ m_k)), where
/// m_k is a binary mask and (s_k, t_k) come from the conditioner MLP `c{k}`. Each layer's
/// Jacobian is triangular, so log p(x) = log N(f(x); 0, I) − Σℓ + Σ_k Σ_i (1 − m_k)ᵢ s_{k,i},
/// and the inverse of a coupling is u = (v − t) ⊙ e^{−s} with (s, t) read from v ⊙ m = u ⊙ m:
/// both the density and sampling are exact and cost one pass.
///
/// The conditioners' last layers start at zero and μ = 0, ℓ = 0, so a new flow is the
/// identity and its density the standard normal; [`RealNvp::standardize`] moves μ and ℓ to
/// a data set's mean and standard deviation. As an [`EnergyModel`] the flow is
/// E(x) = −log p(x), normalised (log Z = 0).
#[derive(Clone, Debug)]
pub struct RealNvp {
    config: FlowConfig,
    params: Params,
    conditioners: Vec<Mlp>,
}

/// Parameters before the first conditioner's: `shift`, `log_scale`.
const AFFINE_PARAMS: usize = 2;

impl RealNvp {
    /// A new flow in `dtype`, conditioners drawn from `rng` in layer order.
    pub fn new(config: FlowConfig, rng: &mut Rng, dtype: DType) -> RealNvp {
        assert!(
            config.dim > 0 && config.couplings > 0 && config.scale_bound > 0.0,
            "RealNvp: needs d > 0, at least one coupling and a positive scale bound, got {config:?}"
        );
        let d = config.dim;
        let mut params = Params::new();
        params.push("shift", Tensor::zeros(&[d], dtype));
        params.push("log_scale", Tensor::zeros(&[d], dtype));
        let mut conditioners = Vec::with_capacity(config.couplings);
        for k in 0..config.couplings {
            let mut widths = vec![d];
            widths.extend(&config.hidden);
            widths.push(2 * d);
            let mlp_config = MlpConfig::new(&widths)
                .activation(config.activation)
                .init(Init::TorchDefault)
                .zero_last(true);
            let mlp = Mlp::with_dtype(mlp_config, rng, dtype);
            for (name, t) in mlp.params().iter() {
                params.push(format!("c{k}.{name}"), t.clone());
            }
            conditioners.push(mlp);
        }
        RealNvp {
            config,
            params,
            conditioners,
        }
    }

    /// The flow of `config` with the parameter values of `params` (same names, order and
    /// shapes as [`RealNvp::new`] makes, e.g. read back from a checkpoint).
    pub fn from_params(config: FlowConfig, params: &Params) -> Result<RealNvp, String> {
        let dtype = params.dtype().unwrap_or(DType::F32);
        let mut flow = RealNvp::new(config, &mut Rng::new(0), dtype);
        if flow.params.names() != params.names() {
            return Err(format!(
                "flow parameters {:?} do not match the config's {:?}",
                params.names(),
                flow.params.names()
            ));
        }
        for (i, t) in params.tensors().iter().enumerate() {
            let want = flow.params.get(i);
            if want.shape() != t.shape() || want.dtype() != t.dtype() {
                return Err(format!(
                    "flow parameter `{}` is {} {:?}, expected {} {:?}",
                    params.name(i),
                    t.dtype(),
                    t.shape(),
                    want.dtype(),
                    want.shape()
                ));
            }
            flow.params.set(i, t.clone());
        }
        Ok(flow)
    }

    /// The architecture.
    pub fn flow_config(&self) -> &FlowConfig {
        &self.config
    }

    /// Data dimension d.
    pub fn dim(&self) -> usize {
        self.config.dim
    }

    /// Sets μ and ℓ to the per-coordinate mean and log standard deviation of `x` [n, d], so
    /// the flow starts as the diagonal Gaussian fitted to the data.
    pub fn standardize(&mut self, x: &Tensor) {
        let dtype = self.params.get(0).dtype();
        let x = x.cast(DType::F64);
        let mean = x.mean_axes(&[0], false);
        let var = x.sub(&mean).square().mean_axes(&[0], false);
        let log_std = var.add_scalar(1e-12).log().mul_scalar(0.5);
        self.params.set(0, mean.cast(dtype));
        self.params.set(1, log_std.cast(dtype));
    }

    /// The bound parameters of coupling k's conditioner.
    fn conditioner_params<'a>(&self, k: usize, p: &'a [Var]) -> &'a [Var] {
        let n = self.conditioners[k].params().len();
        let start = AFFINE_PARAMS + k * n;
        &p[start..start + n]
    }

    /// (s, t) of coupling k from the conditioning part `kept` = u ⊙ m_k, both zero on the
    /// kept coordinates.
    fn scale_shift(&self, k: usize, kept: &Var, p: &[Var]) -> (Var, Var) {
        let d = self.config.dim;
        let free = self.config.mask(k, kept.dtype()).neg().add_scalar(1.0);
        let h = self.conditioners[k].forward(kept, self.conditioner_params(k, p));
        let b = self.config.scale_bound;
        let s = h
            .narrow(1, 0, d)
            .mul_scalar(1.0 / b)
            .tanh()
            .mul_scalar(b)
            .mul_const(&free);
        let t = h.narrow(1, d, d).mul_const(&free);
        (s, t)
    }

    /// f(x) and log|det ∂f/∂x| per row, for `x` [B, d] and bound parameters `p`.
    pub fn forward_var(&self, x: &Var, p: &[Var]) -> (Var, Var) {
        self.check_input(x);
        let b = x.shape()[0];
        let mut u = x.sub(&p[0]).mul(&p[1].neg().exp());
        let mut log_det = p[1].sum_all().neg().broadcast_to(&[b]);
        for k in 0..self.config.couplings {
            let kept = u.mul_const(&self.config.mask(k, x.dtype()));
            let (s, t) = self.scale_shift(k, &kept, p);
            u = u.mul(&s.exp()).add(&t);
            log_det = log_det.add(&s.sum(&[1], false));
        }
        (u, log_det)
    }

    /// f⁻¹(z) and log|det ∂f⁻¹/∂z| per row, for `z` [B, d] and bound parameters `p`.
    pub fn inverse_var(&self, z: &Var, p: &[Var]) -> (Var, Var) {
        self.check_input(z);
        let b = z.shape()[0];
        let mut v = z.clone();
        let mut log_det: Option<Var> = None;
        for k in (0..self.config.couplings).rev() {
            let kept = v.mul_const(&self.config.mask(k, z.dtype()));
            let (s, t) = self.scale_shift(k, &kept, p);
            v = v.sub(&t).mul(&s.neg().exp());
            let ld = s.sum(&[1], false).neg();
            log_det = Some(match log_det {
                Some(l) => l.add(&ld),
                None => ld,
            });
        }
        let x = v.mul(&p[1].exp()).add(&p[0]);
        let affine = p[1].sum_all().broadcast_to(&[b]);
        let log_det = match log_det {
            Some(l) => l.add(&affine),
            None => affine,
        };
        (x, log_det)
    }

    /// log p(x) per row on the tape: log N(f(x)) + log|det ∂f/∂x|.
    pub fn log_prob_var(&self, x: &Var, p: &[Var]) -> Var {
        let (z, log_det) = self.forward_var(x, p);
        standard_normal_log_prob(&z).add(&log_det)
    }

    /// Reparameterised draws x = f⁻¹(z) for given base draws `z` [B, d] and their
    /// log-density log p(x) = log N(z) − log|det ∂f⁻¹/∂z|, both on the tape (differentiable
    /// in the parameters).
    pub fn sample_var(&self, z: &Var, p: &[Var]) -> (Var, Var) {
        let (x, log_det) = self.inverse_var(z, p);
        let log_p = standard_normal_log_prob(z).sub(&log_det);
        (x, log_p)
    }

    /// log p(x) per row as a plain tensor.
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        let tape = Tape::new();
        let p = self.params.constants(&tape);
        self.log_prob_var(&tape.constant(x.clone()), &p)
            .value()
            .clone()
    }

    /// `n` exact draws and their log-densities, in the parameters' dtype.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> (Tensor, Tensor) {
        let dtype = self.params.get(0).dtype();
        let tape = Tape::new();
        let p = self.params.constants(&tape);
        let z = tape.constant(rng.normal(&[n, self.config.dim], dtype));
        let (x, log_p) = self.sample_var(&z, &p);
        (x.value().clone(), log_p.value().clone())
    }

    fn check_input(&self, x: &Var) {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.config.dim,
            "RealNvp: input {:?} must be [B, {}]",
            x.shape(),
            self.config.dim
        );
    }
}

/// log N(z; 0, I) per row of `z` [B, d].
fn standard_normal_log_prob(z: &Var) -> Var {
    let d = z.shape()[1] as f64;
    z.sum_squares(&[1], false)
        .mul_scalar(-0.5)
        .add_scalar(-0.5 * d * LN_2PI)
}

impl Module for RealNvp {
    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn config(&self) -> serde_json::Value {
        tagged_config("realnvp", &self.config)
    }
}

impl EnergyModel for RealNvp {
    /// E(x) = −log p(x): a normalised energy.
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var {
        self.log_prob_var(x, p).neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_autodiff::grad;

    /// A flow far from the identity: every parameter moved by N(0, scale²).
    fn random_flow(d: usize, seed: u64, scale: f64) -> RealNvp {
        let mut rng = Rng::new(seed);
        let mut flow = RealNvp::new(FlowConfig::new(d, 4, &[16, 16]), &mut rng, DType::F64);
        flow.params_mut()
            .update(|_, t| t.add(&rng.normal(t.shape(), DType::F64).mul_scalar(scale)));
        flow
    }

    /// log|det M| of a d×d row-major matrix by Gaussian elimination with partial pivoting.
    fn log_abs_det(mut m: Vec<f64>, d: usize) -> f64 {
        let mut total = 0.0;
        for c in 0..d {
            let piv = (c..d)
                .max_by(|&a, &b| m[a * d + c].abs().total_cmp(&m[b * d + c].abs()))
                .unwrap();
            for j in 0..d {
                m.swap(c * d + j, piv * d + j);
            }
            let p = m[c * d + c];
            total += p.abs().ln();
            for r in c + 1..d {
                let f = m[r * d + c] / p;
                for j in c..d {
                    m[r * d + j] -= f * m[c * d + j];
                }
            }
        }
        total
    }

    #[test]
    fn log_density_is_the_change_of_variables_with_the_autodiff_jacobian() {
        let d = 3;
        let flow = random_flow(d, 1, 0.3);
        let b = 9;
        let x = Rng::new(2).normal(&[b, d], DType::F64).mul_scalar(1.5);
        let tape = Tape::new();
        let p = flow.params().constants(&tape);
        let xv = tape.var(x.clone());
        let (z, _) = flow.forward_var(&xv, &p);
        // row j of every row's Jacobian: ∇ₓ Σ_b z_bj (rows are independent)
        let mut jac = vec![vec![0.0; d * d]; b];
        for j in 0..d {
            let g = grad(&z.narrow(1, j, 1).sum_all(), &[&xv])[0]
                .value()
                .to_vec_f64();
            for (r, jr) in jac.iter_mut().enumerate() {
                jr[j * d..(j + 1) * d].copy_from_slice(&g[r * d..(r + 1) * d]);
            }
        }
        let zv = z.value().to_vec_f64();
        let got = flow.log_prob(&x).to_vec_f64();
        let mut worst: f64 = 0.0;
        for r in 0..b {
            let zr = &zv[r * d..(r + 1) * d];
            let log_n = -0.5 * zr.iter().map(|v| v * v).sum::<f64>() - 0.5 * d as f64 * LN_2PI;
            let want = log_n + log_abs_det(jac[r].clone(), d);
            worst = worst.max((got[r] - want).abs());
            assert!(
                (got[r] - want).abs() < 1e-10,
                "row {r}: log p {} vs change of variables {want}",
                got[r]
            );
        }
        eprintln!("flow log p vs change of variables: max |error| {worst:.1e} (tolerance 1e-10)");
    }

    #[test]
    fn inverse_undoes_forward_and_log_dets_cancel() {
        let d = 4;
        let flow = random_flow(d, 3, 0.3);
        let tape = Tape::new();
        let p = flow.params().constants(&tape);
        let z = tape.constant(Rng::new(4).normal(&[50, d], DType::F64));
        let (x, ld_inv) = flow.inverse_var(&z, &p);
        let (z2, ld_fwd) = flow.forward_var(&x, &p);
        assert!(z2.value().max_abs_diff(z.value()) < 1e-12);
        assert!(ld_inv.value().add(ld_fwd.value()).max_abs() < 1e-12);
        // sample_var's log-density is log_prob at the sample
        let (xs, lp) = flow.sample_var(&z, &p);
        assert!(lp.value().max_abs_diff(&flow.log_prob(xs.value())) < 1e-10);
    }

    #[test]
    fn density_integrates_to_one_and_samples_map_to_the_base() {
        let flow = random_flow(2, 5, 0.2);
        // midpoint rule on [−10, 10]²
        let (n, lo, hi) = (400usize, -10.0, 10.0);
        let h = (hi - lo) / n as f64;
        let pts: Vec<f64> = (0..n * n)
            .flat_map(|k| {
                [
                    lo + (k / n) as f64 * h + h / 2.0,
                    lo + (k % n) as f64 * h + h / 2.0,
                ]
            })
            .collect();
        let grid = Tensor::from_vec(pts, &[n * n, 2]);
        let mass = flow.log_prob(&grid).exp().sum_all().item() * h * h;
        assert!((mass - 1.0).abs() < 1e-3, "mass {mass}");
        // f(samples) ~ N(0, I): per-coordinate mean (se 1/√m) and variance (se √(2/m))
        let m = 20_000;
        let (xs, _) = flow.sample(m, &mut Rng::new(6));
        let tape = Tape::new();
        let p = flow.params().constants(&tape);
        let (z, _) = flow.forward_var(&tape.constant(xs), &p);
        let mean = z.value().mean_axes(&[0], false).to_vec_f64();
        let var = z.value().square().mean_axes(&[0], false).to_vec_f64();
        for i in 0..2 {
            assert!(mean[i].abs() < 4.0 / (m as f64).sqrt(), "mean {mean:?}");
            assert!(
                (var[i] - 1.0).abs() < 4.0 * (2.0 / m as f64).sqrt(),
                "var {var:?}"
            );
        }
    }

    #[test]
    fn a_new_flow_is_the_standard_normal_and_standardize_fits_the_moments() {
        let mut flow = RealNvp::new(FlowConfig::new(2, 2, &[8]), &mut Rng::new(0), DType::F64);
        let x = Rng::new(1).normal(&[7, 2], DType::F64);
        let want = x
            .square()
            .sum_axes(&[1], false)
            .mul_scalar(-0.5)
            .add_scalar(-LN_2PI);
        assert!(flow.log_prob(&x).max_abs_diff(&want) < 1e-14);
        assert!(flow.energy(&x).max_abs_diff(&want.neg()) < 1e-14);
        let data = Rng::new(2)
            .normal(&[1000, 2], DType::F64)
            .mul(&Tensor::from_vec(vec![2.0f64, 0.5], &[2]))
            .add_scalar(3.0);
        flow.standardize(&data);
        let mean = data.mean_axes(&[0], false);
        assert!(flow.params().get(0).max_abs_diff(&mean) < 1e-14);
        let sd = flow.params().get(1).exp().to_vec_f64();
        // standard errors of a standard deviation from 1000 draws: σ/√2000 = 0.045 and 0.011
        assert!(
            (sd[0] - 2.0).abs() < 0.18 && (sd[1] - 0.5).abs() < 0.045,
            "{sd:?}"
        );
    }

    #[test]
    fn config_and_params_round_trip() {
        let flow = random_flow(3, 7, 0.1);
        let json = flow.config();
        assert_eq!(json["kind"], "realnvp");
        let config = FlowConfig::from_json(&json).unwrap();
        assert_eq!(&config, flow.flow_config());
        let back = RealNvp::from_params(config.clone(), flow.params()).unwrap();
        assert!(back.params().bit_eq(flow.params()));
        let x = Rng::new(8).normal(&[5, 3], DType::F64);
        assert_eq!(
            back.log_prob(&x).to_vec_f64(),
            flow.log_prob(&x).to_vec_f64()
        );
        let other = RealNvp::new(
            FlowConfig::new(3, 2, &[16, 16]),
            &mut Rng::new(0),
            DType::F64,
        );
        assert!(RealNvp::from_params(config, other.params()).is_err());
        assert!(FlowConfig::from_json(&serde_json::json!({"kind": "mlp"})).is_err());
    }
}
