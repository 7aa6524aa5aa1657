//! The options of every objective, by field and by name.

use super::BuildError;
use serde::{Deserialize, Serialize};

/// Every option of every objective, each read by the objectives that name it in
/// [`super::ObjectiveInfo::options`]; the defaults are the `ebm` command's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// an option missing from a configuration written before it existed takes its default
#[serde(default)]
pub struct ObjectiveOptions {
    /// Noise scale σ of DSM and DSM-CV.
    pub sigma: f64,
    /// Largest noise of NCSN and the VE SDE.
    pub sigma_max: f64,
    /// Smallest noise of NCSN and the VE SDE.
    pub sigma_min: f64,
    /// NCSN noise levels.
    pub levels: usize,
    /// VP SDE β at t = 0.
    pub beta_min: f64,
    /// VP SDE β at t = 1.
    pub beta_max: f64,
    /// Smallest diffusion time of VE/VP training (and the time the density is read at).
    pub t_min: f64,
    /// Langevin steps per CD/PCD update.
    pub langevin_steps: usize,
    /// The tied Langevin step ε of CD/PCD (x ← x + ε²/2·s + ε·z); with `langevin_noise` > 0
    /// the drift step η of SGLD instead.
    pub langevin_eps: f64,
    /// CD/PCD: 0 for the tied step; σ > 0 for SGLD with decoupled drift and noise,
    /// x ← x + η·s + σ·z with η = `langevin_eps` (IGEBM: η = 10, σ = 0.005; JEM: η = 1,
    /// σ = 0.01), which samples exp(−E/T) at T = σ²/(2η).
    pub langevin_noise: f64,
    /// PCD replay buffer rows.
    pub buffer_size: usize,
    /// The share of PCD chains restarted from noise each batch.
    pub reinit: f64,
    /// CD/PCD energy-magnitude regulariser α(E₊² + E₋²).
    pub alpha: f64,
    /// NCE noise samples per data sample (ν).
    pub nce_ratio: f64,
    /// Inflation of the Gaussian fitted to the data that NCE uses as noise.
    pub nce_inflate: f64,
    /// SSM projections per sample.
    pub projections: usize,
    /// CNCE's noise scale ε (noise x ± εz around each data point).
    pub epsilon: f64,
    /// Affine couplings of FCE's RealNVP noise flow.
    pub flow_couplings: usize,
    /// Standard deviation of MPF's Gaussian neighbours.
    pub mpf_sigma: f64,
    /// MPF's neighbours per data point (even: they come in antithetic pairs).
    pub neighbours: usize,
    /// MVL's Langevin step η.
    pub mvl_step: f64,
    /// KSD's Gaussian-kernel bandwidth h (0: the median pairwise distance of each batch).
    pub ksd_bandwidth: f64,
    /// LSD's critic penalty λ (E‖f‖² weight).
    pub lsd_lambda: f64,
    /// Energy discrepancy's perturbation variance t.
    pub ed_t: f64,
    /// Energy discrepancy's contrasts per data point M.
    pub contrasts: usize,
    /// DRL's noise σ of the noisy copy x̃ = x + σz.
    pub drl_sigma: f64,
    /// DRL's Langevin steps on p(x | x̃) per batch.
    pub drl_steps: usize,
}

impl Default for ObjectiveOptions {
    fn default() -> Self {
        ObjectiveOptions {
            sigma: 0.1,
            sigma_max: 2.0,
            sigma_min: 0.1,
            levels: 10,
            beta_min: 0.1,
            beta_max: 20.0,
            t_min: 1e-3,
            langevin_steps: 20,
            langevin_eps: 0.3,
            langevin_noise: 0.0,
            buffer_size: 10_000,
            reinit: 0.05,
            alpha: 0.1,
            nce_ratio: 1.0,
            nce_inflate: 1.2,
            projections: 1,
            epsilon: 0.1,
            flow_couplings: 6,
            mpf_sigma: 0.1,
            neighbours: 4,
            mvl_step: 1e-3,
            // a local kernel: the median bandwidth (≈ 4 on the toy sets) and the heavy-tailed
            // IMQ couple every pair of 8-Gaussians' modes and stall 0.3–0.5 nats short
            ksd_bandwidth: 0.5,
            lsd_lambda: 0.5,
            ed_t: 0.25,
            contrasts: 32,
            drl_sigma: 0.5,
            drl_steps: 30,
        }
    }
}

/// The option fields by name: (name, is a whole number, get, set).
type Field = (
    &'static str,
    bool,
    fn(&ObjectiveOptions) -> f64,
    fn(&mut ObjectiveOptions, f64),
);

macro_rules! fields {
    ($($name:ident: $kind:ident),* $(,)?) => {
        /// Every option, by name.
        const FIELDS: &[Field] = &[$((
            stringify!($name),
            fields!(@whole $kind),
            |o| o.$name as f64,
            |o, v| o.$name = v as $kind,
        )),*];
    };
    (@whole f64) => { false };
    (@whole usize) => { true };
}

fields!(
    sigma: f64, sigma_max: f64, sigma_min: f64, levels: usize, beta_min: f64,
    beta_max: f64, t_min: f64, langevin_steps: usize, langevin_eps: f64,
    langevin_noise: f64, buffer_size: usize, reinit: f64, alpha: f64, nce_ratio: f64, nce_inflate: f64,
    projections: usize, epsilon: f64, flow_couplings: usize, mpf_sigma: f64, neighbours: usize,
    mvl_step: f64, ksd_bandwidth: f64, lsd_lambda: f64, ed_t: f64, contrasts: usize,
    drl_sigma: f64, drl_steps: usize,
);

impl ObjectiveOptions {
    /// Every option's name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().map(|f| f.0)
    }

    /// The value of option `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        FIELDS.iter().find(|f| f.0 == name).map(|f| (f.2)(self))
    }

    /// Sets option `name` (a count must be a whole number ≥ 0).
    pub fn set(&mut self, name: &str, value: f64) -> Result<(), BuildError> {
        let Some(&(_, whole, _, set)) = FIELDS.iter().find(|f| f.0 == name) else {
            return Err(BuildError::UnknownOption(name.to_string()));
        };
        if whole && !(value >= 0.0 && value.fract() == 0.0 && value <= u32::MAX as f64) {
            return Err(BuildError::BadOption(format!(
                "{name} must be a whole number ≥ 0, got {value}"
            )));
        }
        set(self, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options round-trip through JSON under their field names (configuration files).
    #[test]
    fn options_serialise_by_field_name() {
        let o = ObjectiveOptions::default();
        let v = serde_json::to_value(&o).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut names: Vec<&str> = ObjectiveOptions::names().collect();
        names.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, names);
        assert_eq!(serde_json::from_value::<ObjectiveOptions>(v).unwrap(), o);
    }
}
