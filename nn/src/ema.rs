//! An exponential moving average of the weights (the weights that are sampled from).

use crate::params::Params;
use ebm_core::{DType, HostVec, Tensor};
use serde::{Deserialize, Serialize};

/// Settings of an [`Ema`], stored in checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// Weight of the old average per update, in [0, 1] (e.g. 0.999).
    pub decay: f64,
    /// Use min(decay, (1 + n)/(10 + n)) at update n, so early averages are not dominated by
    /// the initial weights (TensorFlow's `num_updates` rule).
    pub warmup: bool,
}

/// Shadow weights updated as θ̄ ← θ̄ + (1 − d)(θ − θ̄) after each optimizer step.
#[derive(Clone, Debug)]
pub struct Ema {
    config: EmaConfig,
    shadow: Params,
    updates: u64,
}

impl Ema {
    /// Starts the average at the current weights.
    pub fn new(params: &Params, decay: f64) -> Ema {
        Ema::with_config(
            params,
            EmaConfig {
                decay,
                warmup: false,
            },
        )
    }

    /// Starts the average at the current weights with the given settings.
    pub fn with_config(params: &Params, config: EmaConfig) -> Ema {
        assert!(
            (0.0..=1.0).contains(&config.decay),
            "Ema: decay {} must be in [0, 1]",
            config.decay
        );
        Ema {
            config,
            shadow: params.clone(),
            updates: 0,
        }
    }

    pub(crate) fn from_parts(config: EmaConfig, shadow: Params, updates: u64) -> Ema {
        Ema {
            config,
            shadow,
            updates,
        }
    }

    /// The decay and warm-up.
    pub fn config(&self) -> EmaConfig {
        self.config
    }

    /// Number of updates so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The decay the next update will use.
    pub fn current_decay(&self) -> f64 {
        if self.config.warmup {
            let n = self.updates as f64;
            self.config.decay.min((1.0 + n) / (10.0 + n))
        } else {
            self.config.decay
        }
    }

    /// The averaged weights (same names and order as the model's).
    pub fn params(&self) -> &Params {
        &self.shadow
    }

    /// Folds the current weights into the average.
    pub fn update(&mut self, params: &Params) {
        assert!(
            params.names() == self.shadow.names(),
            "Ema::update: built for {:?}, given {:?}",
            self.shadow.names(),
            params.names()
        );
        let w = 1.0 - self.current_decay();
        for i in 0..params.len() {
            let p = params.get(i);
            let s = self.shadow.get_mut(i);
            assert!(
                p.shape() == s.shape() && p.dtype() == s.dtype(),
                "Ema::update: `{}` changed shape or dtype",
                params.name(i)
            );
            match p.dtype() {
                DType::F32 => lerp::<f32>(s, p, w),
                DType::F64 => lerp::<f64>(s, p, w),
            }
        }
        self.updates += 1;
    }

    /// Copies the averaged weights into `params` (e.g. before sampling or evaluation).
    pub fn copy_to(&self, params: &mut Params) {
        for i in 0..params.len() {
            params.set(i, self.shadow.get(i).clone());
        }
    }

    /// Whether settings, update count and every shadow bit agree.
    pub fn bit_eq(&self, other: &Ema) -> bool {
        self.config == other.config
            && self.updates == other.updates
            && self.shadow.bit_eq(&other.shadow)
    }
}

/// s ← s + w(p − s), in place.
fn lerp<T: HostVec>(s: &mut Tensor, p: &Tensor, w: f64) {
    let w = T::of(w);
    for (a, &b) in s.data_mut::<T>().iter_mut().zip(p.as_slice::<T>()) {
        *a = *a + w * (b - *a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_geometrically() {
        let mut p = Params::new();
        p.push("w", Tensor::from_vec(vec![0.0f64], &[1]));
        let mut ema = Ema::new(&p, 0.9);
        p.set(0, Tensor::from_vec(vec![1.0f64], &[1]));
        ema.update(&p);
        ema.update(&p);
        // 0 → 0.1 → 0.1 + 0.1·0.9 = 0.19
        assert!((ema.params().get(0).item() - 0.19).abs() < 1e-15);
        assert_eq!(ema.updates(), 2);
        let mut q = p.clone();
        ema.copy_to(&mut q);
        assert!((q.get(0).item() - 0.19).abs() < 1e-15);
    }

    #[test]
    fn warmup_uses_smaller_decay_early() {
        let mut p = Params::new();
        p.push("w", Tensor::from_vec(vec![0.0f32], &[1]));
        let mut ema = Ema::with_config(
            &p,
            EmaConfig {
                decay: 0.999,
                warmup: true,
            },
        );
        assert!((ema.current_decay() - 0.1).abs() < 1e-15);
        p.set(0, Tensor::from_vec(vec![1.0f32], &[1]));
        ema.update(&p);
        assert!((ema.params().get(0).item() - 0.9).abs() < 1e-6);
        assert!((ema.current_decay() - 2.0 / 11.0).abs() < 1e-15);
    }
}
