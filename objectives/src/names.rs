//! The objectives' names, as [`crate::Objective::name`] returns them and the table of
//! [`crate::factory::OBJECTIVES`] lists them (the CLI's `--objective`, configuration files).

/// Denoising score matching.
pub const DSM: &str = "dsm";
/// Denoising score matching with the control variate of Wang et al. (2020).
pub const DSM_CV: &str = "dsm-cv";
/// Exact score matching.
pub const ESM: &str = "esm";
/// Sliced score matching.
pub const SSM: &str = "ssm";
/// Sliced score matching, variance-reduced.
pub const SSM_VR: &str = "ssm-vr";
/// Noise contrastive estimation.
pub const NCE: &str = "nce";
/// Maximum likelihood with persistent chains.
pub const PCD: &str = "pcd";
/// Maximum likelihood with chains started at the data (contrastive divergence).
pub const CD: &str = "cd";
/// Multi-scale DSM over NCSN's geometric noise levels.
pub const NCSN: &str = "ncsn";
/// Multi-scale DSM over the variance-exploding SDE.
pub const VE: &str = "ve";
/// Multi-scale DSM over the variance-preserving SDE.
pub const VP: &str = "vp";

/// Conditional noise contrastive estimation.
pub const CNCE: &str = "cnce";
/// Flow contrastive estimation (NCE against an adversarial RealNVP noise).
pub const FCE: &str = "fce";
/// Minimum probability flow with Gaussian neighbours.
pub const MPF: &str = "mpf";
/// Minimum velocity learning.
pub const MVL: &str = "mvl";
/// Kernel Stein discrepancy.
pub const KSD: &str = "ksd";
/// Learned Stein discrepancy (a critic network).
pub const LSD: &str = "lsd";
/// Generalised score matching on [0, ∞)ᵈ or [0, 1]ᵈ.
pub const GSM: &str = "gsm";
/// Ratio matching for binary data.
pub const RATIO_MATCHING: &str = "ratio-matching";
/// Energy discrepancy.
pub const ED: &str = "ed";
/// Diffusion recovery likelihood.
pub const DRL: &str = "drl";
