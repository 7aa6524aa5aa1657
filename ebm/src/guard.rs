//! The divergence guard's checks of a run's state, beyond its loss.
//!
//! A step can leave a finite loss and still break the run: the update itself can overflow the
//! parameters (`--lr 1e300`), the optimizer's moments can reach ∞ while the weights stay
//! finite (`--lr 1e6`), and NCE can push the energy to −10²³ away from the data while the
//! data's own energies look fine. So after every step every tensor of the state is checked
//! ([`state_problem`]), and on a schedule, and always before a checkpoint is written, the
//! energies are checked on a training batch and on fixed probe points spread over the data's
//! box ([`energy_problem`]). The training loop rolls back on either, so no checkpoint ever
//! holds a diverged state (and the checkpoint writer refuses non-finite tensors besides).

use crate::data::Dataset;
use crate::model::Noise;
use crate::train::Trainer;
use ebm_core::{DType, Rng, Tensor};
use ebm_samplers::Target;

/// A mean absolute energy above this, on data or probes, counts as divergence.
pub const ENERGY_LIMIT: f64 = 1e6;
/// Probe points drawn uniformly over the data's box.
pub const PROBES: usize = 256;
const PROBE_STREAM: u64 = 0x9B0B;

/// Whether every value of `t` is finite (read in place: this runs after every step).
fn finite(t: &Tensor) -> bool {
    match t.dtype() {
        DType::F32 => t.as_slice::<f32>().iter().all(|v| v.is_finite()),
        DType::F64 => t.as_slice::<f64>().iter().all(|v| v.is_finite()),
    }
}

fn first_non_finite<'a>(tensors: impl IntoIterator<Item = (String, &'a Tensor)>) -> Option<String> {
    tensors
        .into_iter()
        .find_map(|(name, t)| (!finite(t)).then_some(name))
}

/// The first tensor of the run's state holding NaN or ∞, described; None when all are
/// finite. Covers the parameters, the optimizer's moments, the EMA weights, and the
/// objective's own parameters, their optimizer and its state (NCE's log Z, PCD's replay
/// buffer).
pub fn state_problem(t: &Trainer) -> Option<String> {
    let named = |(n, v): (&str, &Tensor)| (n.to_string(), v.clone());
    let step = &t.train_step;
    let groups: [(&str, Vec<(String, Tensor)>); 6] = [
        ("parameter", t.net.params().iter().map(named).collect()),
        ("optimizer state", step.optimizer.state_tensors()),
        (
            "EMA weight",
            step.ema
                .iter()
                .flat_map(|e| e.params().iter().map(named))
                .collect(),
        ),
        (
            "objective parameter",
            t.objective
                .params()
                .iter()
                .flat_map(|q| q.iter().map(named))
                .collect(),
        ),
        (
            "objective optimizer state",
            step.objective_optimizer
                .iter()
                .flat_map(|o| o.state_tensors())
                .collect(),
        ),
        (
            "objective state",
            t.objective
                .state()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        ),
    ];
    for (what, tensors) in &groups {
        if let Some(n) = first_non_finite(tensors.iter().map(|(n, v)| (n.clone(), v))) {
            return Some(format!("{what} `{n}` is not finite"));
        }
    }
    if !t.window.0.is_finite() {
        return Some("the running loss is not finite".into());
    }
    None
}

/// `PROBES` fixed points uniform over the data's box (a function of the seed).
pub fn probes(data: &Dataset, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed).stream(PROBE_STREAM);
    crate::sample::uniform_in(&data.bounds(), PROBES, &mut rng)
}

fn mean_abs(v: &[f64]) -> f64 {
    v.iter().map(|e| e.abs()).sum::<f64>() / v.len().max(1) as f64
}

/// Why the energies under the current weights are unusable, if they are: NaN or ∞, or a
/// mean |E| above [`ENERGY_LIMIT`], on the rows `x`, on the probe points, or (CD/PCD) in
/// the gap between data and the last negatives.
pub fn energy_problem(t: &Trainer, x: &Tensor) -> Option<String> {
    let density = t.net.density(Noise::of(&t.config));
    let e = density.energy(x).to_vec_f64();
    if e.iter().any(|e| !e.is_finite()) {
        return Some("energy is NaN or infinite".into());
    }
    let m = mean_abs(&e);
    if m > ENERGY_LIMIT {
        return Some(format!("energy exploded (mean |E| = {m:.3e})"));
    }
    let p = density.energy(&probes(&t.data, t.config.seed)).to_vec_f64();
    if p.iter().any(|e| !e.is_finite()) {
        return Some("energy is NaN or infinite away from the data".into());
    }
    let m = mean_abs(&p);
    if m > ENERGY_LIMIT {
        return Some(format!(
            "energy exploded away from the data (mean |E| over the box = {m:.3e})"
        ));
    }
    // CD/PCD: the gap between data and negative energies is what the loss pushes on
    if let Some(neg) = t.objective.negatives() {
        let en = density.energy(neg).to_vec_f64();
        let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len().max(1) as f64;
        let gap = mean(&e) - mean(&en);
        if !gap.is_finite() || gap.abs() > ENERGY_LIMIT {
            return Some(format!(
                "energy gap between data and negatives exploded ({gap:.3e})"
            ));
        }
    }
    None
}

/// A hint for a diverged run on unstandardised data of a large scale.
pub fn scale_hint(data: &Dataset) -> String {
    if data.standardization.is_some() || data.toy.is_some() || data.images.is_some() {
        return String::new();
    }
    let m = data.train.max_abs();
    if m > 1e3 {
        format!(" (the data are not standardised and reach |x| = {m:.1e}; drop --no-standardize)")
    } else {
        String::new()
    }
}
