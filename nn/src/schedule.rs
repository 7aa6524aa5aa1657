//! Learning-rate schedules: a factor of the base learning rate as a pure function of the
//! step, so a resumed run recomputes exactly the same rates.

use serde::{Deserialize, Serialize};

/// A multiplier of the base learning rate at each step. `step` counts the updates already
/// taken: the first update uses `factor(0)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Always 1.
    Constant,
    /// Half a cosine from 1 down to `min_factor` over `steps` steps, then `min_factor`
    /// (PyTorch's `CosineAnnealingLR` with η_min = min_factor·lr):
    /// `min + (1 − min)(1 + cos(π·min(step, steps)/steps))/2`.
    Cosine {
        /// The length of the decay.
        steps: u64,
        /// The final factor.
        min_factor: f64,
    },
    /// Linear ramp `(step + 1)/steps` over `steps` steps, then 1 (the first update already
    /// moves).
    LinearWarmup {
        /// The length of the ramp.
        steps: u64,
    },
    /// Linear from 1 to `end_factor` over `steps` steps, then `end_factor`.
    LinearDecay {
        /// The length of the decay.
        steps: u64,
        /// The final factor.
        end_factor: f64,
    },
    /// `first` for the first `first_steps` steps, then `then` with its step count restarted
    /// at 0 (PyTorch's `SequentialLR`).
    Chain {
        /// The schedule of the first phase.
        first: Box<Schedule>,
        /// The first phase's length.
        first_steps: u64,
        /// The schedule after it.
        then: Box<Schedule>,
    },
}

impl Schedule {
    /// Half a cosine from 1 down to `min_factor` over `steps` steps ([`Schedule::Cosine`]).
    pub fn cosine(steps: u64, min_factor: f64) -> Schedule {
        Schedule::Cosine { steps, min_factor }
    }

    /// Linear warmup over `warmup` steps, then a cosine down to `min_factor` at `total`.
    pub fn warmup_cosine(warmup: u64, total: u64, min_factor: f64) -> Schedule {
        Schedule::Chain {
            first: Box::new(Schedule::LinearWarmup { steps: warmup }),
            first_steps: warmup,
            then: Box::new(Schedule::Cosine {
                steps: total.saturating_sub(warmup),
                min_factor,
            }),
        }
    }

    /// Why the schedule is unusable, if it is: every factor must be finite and ≥ 0.
    pub fn validate(&self) -> Result<(), String> {
        let factor = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("schedule {name} must be finite and ≥ 0, got {v}"))
            }
        };
        match self {
            Schedule::Constant | Schedule::LinearWarmup { .. } => Ok(()),
            Schedule::Cosine { min_factor, .. } => factor("min_factor", *min_factor),
            Schedule::LinearDecay { end_factor, .. } => factor("end_factor", *end_factor),
            Schedule::Chain { first, then, .. } => {
                first.validate()?;
                then.validate()
            }
        }
    }

    /// The multiplier at `step`.
    pub fn factor(&self, step: u64) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine { steps, min_factor } => {
                if *steps == 0 {
                    return *min_factor;
                }
                let t = step.min(*steps) as f64 / *steps as f64;
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::LinearWarmup { steps } => {
                if step >= *steps {
                    1.0
                } else {
                    (step + 1) as f64 / *steps as f64
                }
            }
            Schedule::LinearDecay { steps, end_factor } => {
                if *steps == 0 {
                    return *end_factor;
                }
                let t = step.min(*steps) as f64 / *steps as f64;
                1.0 + (end_factor - 1.0) * t
            }
            Schedule::Chain {
                first,
                first_steps,
                then,
            } => {
                if step < *first_steps {
                    first.factor(step)
                } else {
                    then.factor(step - first_steps)
                }
            }
        }
    }

    /// `base_lr · factor(step)`.
    pub fn lr(&self, base_lr: f64, step: u64) -> f64 {
        base_lr * self.factor(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_at_known_steps() {
        assert_eq!(Schedule::Constant.factor(123), 1.0);
        let c = Schedule::cosine(100, 0.1);
        assert_eq!(c.factor(0), 1.0);
        assert!((c.factor(50) - 0.55).abs() < 1e-15);
        assert!((c.factor(100) - 0.1).abs() < 1e-15);
        assert!((c.factor(1000) - 0.1).abs() < 1e-15);
        let w = Schedule::LinearWarmup { steps: 4 };
        let f: Vec<f64> = (0..6).map(|s| w.factor(s)).collect();
        assert_eq!(f, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        let d = Schedule::LinearDecay {
            steps: 10,
            end_factor: 0.0,
        };
        assert!((d.factor(5) - 0.5).abs() < 1e-15);
        assert_eq!(d.factor(20), 0.0);
    }

    #[test]
    fn warmup_then_cosine_composes() {
        let s = Schedule::warmup_cosine(10, 110, 0.0);
        assert!((s.factor(0) - 0.1).abs() < 1e-15);
        assert_eq!(s.factor(9), 1.0);
        assert_eq!(s.factor(10), 1.0); // cosine starts at its top
        assert!((s.factor(60) - 0.5).abs() < 1e-15);
        assert!(s.factor(110).abs() < 1e-15);
        assert!((s.lr(3e-4, 60) - 1.5e-4).abs() < 1e-18);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }

    #[test]
    fn validation_finds_unusable_factors() {
        assert!(Schedule::warmup_cosine(10, 110, 0.0).validate().is_ok());
        let nan = Schedule::Cosine {
            steps: 5,
            min_factor: f64::NAN,
        };
        assert!(nan.validate().unwrap_err().contains("min_factor"));
        let chained = Schedule::Chain {
            first: Box::new(Schedule::Constant),
            first_steps: 3,
            then: Box::new(Schedule::LinearDecay {
                steps: 4,
                end_factor: -1.0,
            }),
        };
        assert!(chained.validate().unwrap_err().contains("end_factor"));
        assert!(Schedule::warmup_cosine(0, 10, 0.1).validate().is_ok());
    }
}
