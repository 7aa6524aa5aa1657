//! The table of objectives: one row per objective, with what it trains, the options it
//! reads, how they are checked and how it is built.

use super::checks::*;
use super::{DataFacts, ObjectiveInfo, ObjectiveOptions, OBJECTIVE_PARAMS_LR};
use crate::drl::DrlOptions;
use crate::{
    names, ChainInit, ConditionalNce, DenoisingScoreMatching, DiffusionRecoveryLikelihood, Domain,
    EnergyDiscrepancy, ExactScoreMatching, FceOptions, FlowContrastive, GeneralizedScoreMatching,
    KernelSteinDiscrepancy, LearnedStein, LsdOptions, MaximumLikelihood, MinimumProbabilityFlow,
    MinimumVelocity, ModelKind, MultiScaleDsm, Nce, NoiseDistribution, Objective, Projection,
    RatioMatching, SlicedScoreMatching, SteinKernel,
};
use ebm_core::Rng;
use ebm_nn::Conditioning;
use ebm_samplers::{ReplayBuffer, Step, Ula};

fn ssm(o: &ObjectiveOptions, variance_reduced: bool) -> Box<dyn Objective> {
    Box::new(SlicedScoreMatching {
        projection: if variance_reduced {
            Projection::Rademacher
        } else {
            Projection::Gaussian
        },
        n_projections: o.projections,
        variance_reduced,
    })
}

fn langevin(o: &ObjectiveOptions) -> Ula {
    let step = if o.langevin_noise > 0.0 {
        Step::Decoupled {
            step: o.langevin_eps,
            noise: o.langevin_noise,
        }
    } else {
        Step::Tied {
            eps: o.langevin_eps,
        }
    };
    Ula::new(step, o.langevin_steps)
}

fn pcd(o: &ObjectiveOptions, d: &DataFacts, rng: &mut Rng) -> Box<dyn Objective> {
    let buffer = ReplayBuffer::new(o.buffer_size, &[d.dim], d.chain_init, d.dtype, rng)
        .with_reinit(o.reinit);
    Box::new(MaximumLikelihood::new(
        langevin(o),
        ChainInit::Persistent(buffer),
        o.alpha,
    ))
}

fn multiscale(name: &str, o: &ObjectiveOptions) -> Box<dyn Objective> {
    let schedule = super::noise_schedule(name, o).expect("a multi-scale objective");
    Box::new(MultiScaleDsm { schedule })
}

const SM: &[&str] = &["sigma"];
const MCMC: &[&str] = &["langevin_steps", "langevin_eps", "langevin_noise", "alpha"];
const PCD: &[&str] = &[
    "langevin_steps",
    "langevin_eps",
    "langevin_noise",
    "alpha",
    "buffer_size",
    "reinit",
];
const NCSN: &[&str] = &["sigma_min", "sigma_max", "levels"];
const VE: &[&str] = &["sigma_min", "sigma_max", "t_min"];
const VP: &[&str] = &["beta_min", "beta_max", "t_min"];
const ENERGY: ModelKind = ModelKind::Energy;

/// Every objective, in the order the `ebm` command lists them.
pub const OBJECTIVES: [ObjectiveInfo; 21] = [
    ObjectiveInfo {
        name: names::DSM,
        about: "denoising score matching (Vincent 2011)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: SM,
        check: check_sigma,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| Box::new(DenoisingScoreMatching::new(o.sigma)),
    },
    ObjectiveInfo {
        name: names::DSM_CV,
        about: "DSM with a control variate (Wang et al. 2020)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: SM,
        check: check_sigma,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| Box::new(DenoisingScoreMatching::with_control_variate(o.sigma)),
    },
    ObjectiveInfo {
        name: names::ESM,
        about: "exact score matching (Hyvärinen 2005)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &[],
        check: check_none,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |_, _, _| Box::new(ExactScoreMatching),
    },
    ObjectiveInfo {
        name: names::SSM,
        about: "sliced score matching (Song et al. 2019)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &["projections"],
        check: check_ssm,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| ssm(o, false),
    },
    ObjectiveInfo {
        name: names::SSM_VR,
        about: "sliced score matching, variance reduced",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &["projections"],
        check: check_ssm,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| ssm(o, true),
    },
    ObjectiveInfo {
        name: names::NCE,
        about: "noise contrastive estimation with a learnable log Z (Gutmann & Hyvärinen 2010)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: false,
        options: &["nce_ratio", "nce_inflate"],
        check: check_nce,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, d, _| {
            let noise = NoiseDistribution::fitted(d.fit_rows, o.nce_inflate);
            Box::new(Nce::new(noise, o.nce_ratio, 0.0, d.dtype))
        },
    },
    ObjectiveInfo {
        name: names::PCD,
        about: "persistent contrastive divergence with a replay buffer (Tieleman 2008; Du & Mordatch 2019)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: true,
        options: PCD,
        check: check_pcd,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: pcd,
    },
    ObjectiveInfo {
        name: names::CD,
        about: "contrastive divergence, chains started at the data (Hinton 2002)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: true,
        options: MCMC,
        check: check_mcmc,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| {
            Box::new(MaximumLikelihood::new(
                langevin(o),
                ChainInit::Data,
                o.alpha,
            ))
        },
    },
    ObjectiveInfo {
        name: names::NCSN,
        about: "multi-scale DSM over geometric σ levels (Song & Ermon 2019)",
        model_kind: ModelKind::NoiseConditional(Conditioning::LogSigma),
        second_order: true,
        mcmc: false,
        options: NCSN,
        check: check_ncsn,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| multiscale(names::NCSN, o),
    },
    ObjectiveInfo {
        name: names::VE,
        about: "multi-scale DSM on the variance-exploding SDE (Song et al. 2021)",
        model_kind: ModelKind::NoiseConditional(Conditioning::Time),
        second_order: true,
        mcmc: false,
        options: VE,
        check: check_ve,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| multiscale(names::VE, o),
    },
    ObjectiveInfo {
        name: names::VP,
        about: "multi-scale DSM on the variance-preserving SDE (Song et al. 2021)",
        model_kind: ModelKind::NoiseConditional(Conditioning::Time),
        second_order: true,
        mcmc: false,
        options: VP,
        check: check_vp,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| multiscale(names::VP, o),
    },
    ObjectiveInfo {
        name: names::CNCE,
        about: "conditional NCE: data against noise drawn around it (Ceylan & Gutmann 2018)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: false,
        options: &["epsilon"],
        check: check_cnce,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| {
            Box::new(ConditionalNce {
                epsilon: o.epsilon,
                ..ConditionalNce::default()
            })
        },
    },
    ObjectiveInfo {
        name: names::FCE,
        about: "flow contrastive estimation against a RealNVP trained adversarially (Gao et al. 2020)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: false,
        options: &["nce_ratio", "flow_couplings"],
        check: check_fce,
        // the flow adapts more slowly than the energy: at 1e-2 it chases the energy's errors
        // (toy 8-Gaussians: FCE's lead over NCE shrinks from 0.2 to 0.1 nats at 1000 steps)
        params_lr: 3e-3,
        check_data: any_data,
        build: |o, d, rng| {
            let options = FceOptions {
                couplings: o.flow_couplings,
                nu: o.nce_ratio,
                ..FceOptions::default()
            };
            Box::new(FlowContrastive::new(d.dim, &options, rng, d.dtype).standardized(d.fit_rows))
        },
    },
    ObjectiveInfo {
        name: names::MPF,
        about: "minimum probability flow to Gaussian neighbours (Sohl-Dickstein et al. 2011)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: false,
        options: &["mpf_sigma", "neighbours"],
        check: check_mpf,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| {
            Box::new(MinimumProbabilityFlow {
                sigma: o.mpf_sigma,
                neighbours: o.neighbours,
                ..MinimumProbabilityFlow::default()
            })
        },
    },
    ObjectiveInfo {
        name: names::MVL,
        about: "minimum velocity learning (Movellan 2008)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &["mvl_step"],
        check: check_mvl,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| Box::new(MinimumVelocity { step: o.mvl_step }),
    },
    ObjectiveInfo {
        name: names::KSD,
        about: "kernel Stein discrepancy, Gaussian kernel (Liu, Lee & Jordan 2016)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &["ksd_bandwidth"],
        check: check_ksd,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| {
            let bandwidth = (o.ksd_bandwidth > 0.0).then_some(o.ksd_bandwidth);
            Box::new(KernelSteinDiscrepancy {
                kernel: SteinKernel::Rbf { bandwidth },
            })
        },
    },
    ObjectiveInfo {
        name: names::LSD,
        about: "learned Stein discrepancy with a critic network (Grathwohl et al. 2020)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &["lsd_lambda"],
        check: check_lsd,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, d, rng| {
            let options = LsdOptions {
                lambda: o.lsd_lambda,
                ..LsdOptions::default()
            };
            Box::new(LearnedStein::new(d.dim, options, rng, d.dtype))
        },
    },
    ObjectiveInfo {
        name: names::GSM,
        about: "generalised score matching on [0, ∞)ᵈ or [0, 1]ᵈ (Hyvärinen 2007; Yu et al. 2019)",
        model_kind: ENERGY,
        second_order: true,
        mcmc: false,
        options: &[],
        check: check_none,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: non_negative_data,
        build: |_, d, _| {
            let domain = if Domain::UnitCube.contains(d.fit_rows) {
                Domain::UnitCube
            } else {
                Domain::NonNegative
            };
            Box::new(GeneralizedScoreMatching {
                domain,
                ..GeneralizedScoreMatching::default()
            })
        },
    },
    ObjectiveInfo {
        name: names::RATIO_MATCHING,
        about: "ratio matching for binary data (Hyvärinen 2007)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: false,
        options: &[],
        check: check_none,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: binary_data,
        build: |_, _, _| Box::new(RatioMatching),
    },
    ObjectiveInfo {
        name: names::ED,
        about: "energy discrepancy: data against Gaussian-perturbed contrasts (Schröder et al. 2023)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: false,
        options: &["ed_t", "contrasts"],
        check: check_ed,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| {
            Box::new(EnergyDiscrepancy {
                t: o.ed_t,
                contrasts: o.contrasts,
                ..EnergyDiscrepancy::default()
            })
        },
    },
    ObjectiveInfo {
        name: names::DRL,
        about: "diffusion recovery likelihood at one noise level (Gao et al. 2021)",
        model_kind: ENERGY,
        second_order: false,
        mcmc: true,
        options: &["drl_sigma", "drl_steps"],
        check: check_drl,
        params_lr: OBJECTIVE_PARAMS_LR,
        check_data: any_data,
        build: |o, _, _| {
            Box::new(DiffusionRecoveryLikelihood::new(DrlOptions {
                sigma: o.drl_sigma,
                langevin_steps: o.drl_steps,
                ..DrlOptions::default()
            }))
        },
    },
];

/// Every objective's name, in the order of [`OBJECTIVES`].
pub const NAMES: [&str; OBJECTIVES.len()] = {
    let mut out = [""; OBJECTIVES.len()];
    let mut i = 0;
    while i < OBJECTIVES.len() {
        out[i] = OBJECTIVES[i].name;
        i += 1;
    }
    out
};
