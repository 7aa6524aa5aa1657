//! Score matching: exact (Hessian trace), sliced (Hessian-vector products), and denoising
//! (optionally with a control variate).

use crate::{energy_model, names, Objective};
use ebm_autodiff::{grad_with, hessian_diag_from_grad, GradOpts, Tape, Var};
use ebm_core::{Rng, Tensor};
use ebm_nn::{EnergyModel, Model};

/// Exact score matching (Hyvärinen 2005, "Estimation of non-normalized statistical models by
/// score matching"): J(θ) = mean_b [ ½‖∇ₓE(x_b)‖² − tr ∇²ₓE(x_b) ].
///
/// Equal, up to a constant, to the Fisher divergence ½E‖s_θ − ∇log p‖² by integration by
/// parts. The trace is exact: d backward passes of the recorded score
/// ([`ebm_autodiff::hessian_diag`]), so
/// the cost grows with the dimension; prefer [`SlicedScoreMatching`] in high d.
#[derive(Clone, Debug, Default)]
pub struct ExactScoreMatching;

impl Objective for ExactScoreMatching {
    fn name(&self) -> &'static str {
        names::ESM
    }

    /// Row b's term depends on row b only, and no randomness is drawn.
    fn row_blocks_allowed(&self) -> bool {
        true
    }

    fn block_worker(&self) -> Option<Box<dyn Objective + Send>> {
        Some(Box::new(self.clone()))
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        _q: &[Var],
        x: &Tensor,
        _rng: &mut Rng,
    ) -> Var {
        let model = energy_model(model, self.name());
        let xv = tape.var(x.clone());
        let e = model.energy_var(&xv, p);
        let g = grad_with(&e.sum_all(), &[&xv], GradOpts::create_graph()).remove(0);
        let h = hessian_diag_from_grad(&g, &xv, GradOpts::create_graph());
        let b = x.shape()[0];
        let trace = h.reshape(&[b, usize::MAX]).sum(&[1], false);
        let half_sq = g
            .reshape(&[b, usize::MAX])
            .square()
            .sum(&[1], false)
            .mul_scalar(0.5);
        half_sq.sub(&trace).mean_all()
    }
}

/// The distribution of the projection vectors v of sliced score matching, all with
/// E[vvᵀ] = I so that vᵀ(∇s)v is an unbiased estimate of tr ∇s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// v ~ N(0, I).
    Gaussian,
    /// vᵢ = ±1 with equal probability (the lowest-variance choice, Hutchinson 1990).
    Rademacher,
    /// v uniform on the sphere of radius √d.
    Sphere,
}

impl Projection {
    /// `n` projection vectors shaped like `x`.
    pub fn draw(self, shape: &[usize], rng: &mut Rng, dtype: ebm_core::DType) -> Tensor {
        match self {
            Projection::Gaussian => rng.normal(shape, dtype),
            Projection::Rademacher => rng.rademacher(shape, dtype),
            Projection::Sphere => {
                let g = rng.normal(shape, dtype);
                let b = shape[0];
                let d: usize = shape[1..].iter().product();
                let g2 = g.reshape(&[b, d]);
                let norm = g2.square().sum_axes(&[1], true).sqrt();
                g2.div(&norm).mul_scalar((d as f64).sqrt()).reshape(shape)
            }
        }
    }
}

/// Sliced score matching (Song, Garg, Shi & Ermon 2019, "Sliced Score Matching"):
/// J(θ) = mean_b mean_m [ v_mᵀ∇ₓ(v_mᵀ s(x_b)) + ½(v_mᵀ s(x_b))² ], s = −∇ₓE.
///
/// The variance-reduced form SSM-VR replaces ½(vᵀs)² by its expectation ½‖s‖² (exact for
/// E[vvᵀ] = I). Each projection costs one Hessian-vector product instead of ESM's d.
#[derive(Clone, Debug)]
pub struct SlicedScoreMatching {
    /// The distribution of the projections v.
    pub projection: Projection,
    /// Projections per data point (M).
    pub n_projections: usize,
    /// Replace ½(vᵀs)² by ½‖s‖² (SSM-VR).
    pub variance_reduced: bool,
}

impl Default for SlicedScoreMatching {
    fn default() -> Self {
        SlicedScoreMatching {
            projection: Projection::Gaussian,
            n_projections: 1,
            variance_reduced: false,
        }
    }
}

impl SlicedScoreMatching {
    /// The loss with given projection vectors `v` [M, B, d…] (M projections per row), for
    /// tests and for callers that fix projections.
    pub fn loss_with_projections(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        v: &[Tensor],
    ) -> Var {
        // s and ∇ₓs·vₘ (the model's closed form where it has one, else reverse mode twice)
        let (s, hvs) = model.score_and_jvps(tape, x, p, v);
        let b = x.shape()[0];
        let flat = |t: &Var| t.reshape(&[b, usize::MAX]);
        let s2 = flat(&s);
        let mut total: Option<Var> = None;
        for (vm, hv) in v.iter().zip(&hvs) {
            let vv = vm.reshape(&[b, s2.shape()[1]]);
            let vs = s2.mul_const(&vv).sum(&[1], false);
            let vhv = flat(hv).mul_const(&vv).sum(&[1], false);
            let second = if self.variance_reduced {
                s2.square().sum(&[1], false).mul_scalar(0.5)
            } else {
                vs.square().mul_scalar(0.5)
            };
            let term = vhv.add(&second).mean_all();
            total = Some(match total {
                Some(t) => t.add(&term),
                None => term,
            });
        }
        total
            .expect("sliced score matching needs at least one projection")
            .mul_scalar(1.0 / v.len() as f64)
    }
}

impl Objective for SlicedScoreMatching {
    fn name(&self) -> &'static str {
        if self.variance_reduced {
            names::SSM_VR
        } else {
            names::SSM
        }
    }

    /// Row b's term depends on row b and its own projections only (each block draws its
    /// projections from its own stream, [`Objective::block_worker`]).
    fn row_blocks_allowed(&self) -> bool {
        true
    }

    fn block_worker(&self) -> Option<Box<dyn Objective + Send>> {
        Some(Box::new(self.clone()))
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        _q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let model = energy_model(model, self.name());
        let v: Vec<Tensor> = (0..self.n_projections.max(1))
            .map(|_| self.projection.draw(x.shape(), rng, x.dtype()))
            .collect();
        self.loss_with_projections(tape, model, p, x, &v)
    }
}

/// Denoising score matching (Vincent 2011, "A connection between score matching and denoising
/// autoencoders"): J(θ) = ½ mean_b ‖s(x̃_b) + z_b/σ‖², x̃ = x + σz, z ~ N(0, I).
///
/// It matches the score of the noised data p_σ = p ∗ N(0, σ²I), not of p: on Gaussian data
/// N(μ, Σ) its minimiser is the precision (Σ + σ²I)⁻¹.
///
/// With `control_variate` (Wang, Cheng, Yueru, Liu & Zhang 2020, "Wasserstein control
/// variates for DSM"; the construction below is derived here): per sample,
/// ℓ = ‖s(x + σz) + z/σ‖². Expanding s(x + σz) = s(x) + σ∇s(x)z + O(σ²):
/// ℓ = ‖z‖²/σ² + (2/σ)zᵀs(x) + 2zᵀ∇s(x)z + ‖s(x)‖² + O(σ). The first two terms have
/// variance 2d/σ⁴ and 4‖s‖²/σ², which swamp the signal as σ → 0, and
/// c = (2/σ)zᵀs(x) + ‖z‖²/σ² − d/σ² collects them with E_z[c | x] = 0 (so E_z[∇θc] = 0 too:
/// the gradient stays unbiased). The loss is ½ mean_b (ℓ_b − c_b), whose per-sample variance
/// stays bounded as σ → 0 at the price of one extra score evaluation at the clean x.
#[derive(Clone, Debug)]
pub struct DenoisingScoreMatching {
    /// The noise scale σ.
    pub sigma: f64,
    /// Subtract the control variate c (Wang et al. 2020): the CLI's `dsm-cv`.
    pub control_variate: bool,
}

impl DenoisingScoreMatching {
    /// Plain DSM at noise scale `sigma` (`dsm`).
    pub fn new(sigma: f64) -> DenoisingScoreMatching {
        DenoisingScoreMatching {
            sigma,
            control_variate: false,
        }
    }

    /// DSM with the control variate at noise scale `sigma` (`dsm-cv`).
    pub fn with_control_variate(sigma: f64) -> DenoisingScoreMatching {
        DenoisingScoreMatching {
            sigma,
            control_variate: true,
        }
    }

    /// The loss for given noise `z` (shaped like `x`).
    pub fn loss_with_noise(
        &self,
        tape: &Tape,
        model: &dyn EnergyModel,
        p: &[Var],
        x: &Tensor,
        z: &Tensor,
    ) -> Var {
        let sigma = self.sigma;
        let b = x.shape()[0];
        let z2 = z.reshape(&[b, usize::MAX]);
        // constants: nothing differentiates in the inputs, so a model may take a closed form
        let xt = tape.constant(x.add(&z.mul_scalar(sigma)));
        let s_noisy = model
            .score_var(&xt, p, GradOpts::create_graph())
            .reshape(&[b, usize::MAX]);
        let mut l = s_noisy
            .add_const(&z2.mul_scalar(1.0 / sigma))
            .square()
            .sum(&[1], false);
        if self.control_variate {
            let d = z2.shape()[1] as f64;
            let xc = tape.constant(x.clone());
            let s_clean = model
                .score_var(&xc, p, GradOpts::create_graph())
                .reshape(&[b, usize::MAX]);
            // c = (2/σ) zᵀs(x) + ‖z‖²/σ² − d/σ²; the last two terms are constants
            let zs = s_clean
                .mul_const(&z2)
                .sum(&[1], false)
                .mul_scalar(2.0 / sigma);
            let zz = z2
                .square()
                .sum_axes(&[1], false)
                .mul_scalar(1.0 / (sigma * sigma))
                .add_scalar(-d / (sigma * sigma));
            l = l.sub(&zs.add_const(&zz));
        }
        l.mean_all().mul_scalar(0.5)
    }
}

impl Objective for DenoisingScoreMatching {
    fn name(&self) -> &'static str {
        if self.control_variate {
            names::DSM_CV
        } else {
            names::DSM
        }
    }

    /// Row b's term depends on row b and its own noise only (each block draws its noise from
    /// its own stream, [`Objective::block_worker`]).
    fn row_blocks_allowed(&self) -> bool {
        true
    }

    fn block_worker(&self) -> Option<Box<dyn Objective + Send>> {
        Some(Box::new(self.clone()))
    }

    fn loss(
        &mut self,
        tape: &Tape,
        model: &dyn Model,
        p: &[Var],
        _q: &[Var],
        x: &Tensor,
        rng: &mut Rng,
    ) -> Var {
        let model = energy_model(model, self.name());
        let z = rng.normal(x.shape(), x.dtype());
        self.loss_with_noise(tape, model, p, x, &z)
    }
}
