//! Held-out monitoring: a validation figure measured during training, the best checkpoint
//! kept beside the last, a warning when the figure worsens while the training loss falls,
//! and an optional early stop.
//!
//! The figure is the validation NLL where it is cheap (grid quadrature, d ≤ 2; nats per row
//! in the data file's units, the same units as the final test NLL), else the objective's own
//! loss on the validation rows under a fixed generator (comparable from one measurement to
//! the next). CD/PCD above 2-D have neither (their loss needs fresh MCMC chains), so they
//! are not monitored. Score matching on a small finite set can drive its loss to −∞ by
//! collapsing the density onto the training rows; the validation figure is what shows it.
//!
//! The monitor's state is stored in every checkpoint, so a resumed or rolled-back run goes
//! on exactly as an uninterrupted one would.

use crate::data::Dataset;
use crate::model::Noise;
use crate::train::Trainer;
use crate::verify::{hex_f64, unhex_f64};
use ebm_autodiff::Tape;
use ebm_core::{DType, Rng};
use ebm_objectives::factory::ObjectiveInfo;

/// The checkpoint of the best validation figure, beside `checkpoint.safetensors`.
pub const BEST: &str = "best.safetensors";
/// Checkpoint metadata key of the monitor's state.
pub const EXTRA_HELDOUT: &str = "heldout";
/// Validation rows used per measurement (the first ones).
pub const VAL_ROWS: usize = 5_000;
/// Rows of the validation loss (the objective's graph is built over them).
const VAL_LOSS_ROWS: usize = 1024;
const VAL_STREAM: u64 = 0x7A1;
/// Consecutive measurements worse than the best before the warning.
const WORSE_STREAK: u32 = 2;

/// What the validation figure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// Validation NLL by grid quadrature (d ≤ 2), nats per row in the data's units.
    Nll,
    /// The objective's loss on the validation rows (in the units the model sees).
    Loss,
}

impl Figure {
    /// Which figure `data` and `objective` allow, if any.
    pub fn of(data: &Dataset, objective: &ObjectiveInfo) -> Option<Figure> {
        if data.val.shape()[0] == 0 {
            None
        } else if data.dim <= 2 {
            Some(Figure::Nll)
        } else if objective.mcmc {
            None
        } else {
            Some(Figure::Loss)
        }
    }

    /// The key on metrics lines and in eval.json.
    pub fn key(self) -> &'static str {
        match self {
            Figure::Nll => "val_nll",
            Figure::Loss => "val_loss",
        }
    }

    /// How the figure is named in messages.
    pub fn label(self) -> &'static str {
        match self {
            Figure::Nll => "validation NLL",
            Figure::Loss => "validation loss",
        }
    }

    /// The smallest rise that counts as worse than the best: 0.2 nats for the NLL (twice the
    /// wobble of a converged toy run's quick estimate), 5% of the best for a loss (whose
    /// scale is the objective's).
    fn margin(self, best: f64) -> f64 {
        match self {
            Figure::Nll => 0.2,
            Figure::Loss => 0.05 * best.abs().max(1e-3),
        }
    }
}

/// Whether the training loss fell from `before` to `now` by more than its noise: 5% of
/// |before| (a window mean of a converged run moves by about 1%).
fn fell(before: f64, now: f64) -> bool {
    now < before - 0.05 * before.abs().max(1e-3)
}

/// The figure under the weights the run evaluates (the EMA's when kept).
pub fn measure(t: &mut Trainer, figure: Figure) -> Option<f64> {
    let mut net = t.net.clone();
    if let Some(e) = &t.train_step.ema {
        e.copy_to(net.params_mut());
    }
    let n = t.data.val.shape()[0];
    let v = match figure {
        Figure::Nll => {
            let rows = t
                .data
                .val
                .index_select(&(0..n.min(VAL_ROWS)).collect::<Vec<_>>());
            let d = net.density(Noise::of(&t.config));
            let cells = if t.data.dim == 1 { 1000 } else { 100 };
            let g = ebm_objectives::eval::grid_log_z(&d, &t.data.bounds(), cells, 1e-3, DType::F32);
            ebm_objectives::eval::nll(&d, &rows, g.log_z) + t.data.nll_offset(&rows)
        }
        Figure::Loss => {
            let rows = t
                .data
                .val
                .index_select(&(0..n.min(VAL_LOSS_ROWS)).collect::<Vec<_>>());
            let mut rng = Rng::new(t.config.seed).stream(VAL_STREAM);
            let tape = Tape::new();
            let p = net.params().bind(&tape);
            let o = t.objective.as_mut();
            let q = o.params().map(|q| q.constants(&tape)).unwrap_or_default();
            o.loss(&tape, &net, &p, &q, &rows, &mut rng).item()
        }
    };
    v.is_finite().then_some(v)
}

/// The start line's account of held-out rows, of the figure and of units.
pub fn describe_split(t: &Trainer, figure: Option<Figure>) -> String {
    let mut s = match (t.data.train_rows(), figure) {
        (Some(n), _) => format!(
            "\n  {n} training, {} validation, {} test rows",
            t.data.val.shape()[0],
            t.data.test.shape()[0]
        ),
        (None, _) => String::new(),
    };
    s += &match figure {
        Some(Figure::Nll) => "; validation NLL in nats per row, in the data's units".to_string(),
        Some(Figure::Loss) => "; validation loss of the objective".to_string(),
        None if t.data.val.shape()[0] == 0 => {
            "; no held-out monitoring (no validation rows)".into()
        }
        None => {
            "; no held-out monitoring (cd/pcd above 2-D have no cheap validation figure)".into()
        }
    };
    if t.data.standardization.is_some() {
        s += "; the loss is in standardised units";
    }
    s
}

/// A measurement's record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    /// The step measured at.
    pub step: u64,
    /// The validation figure.
    pub value: f64,
    /// The mean training loss of the window ending at `step`.
    pub train_loss: f64,
}

/// The monitor's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Monitor {
    /// The best measurement so far.
    pub best: Option<Mark>,
    /// Consecutive measurements worse than the best by more than the margin.
    pub worse: u32,
    /// Measurements since the best.
    pub since_best: u32,
    /// Whether the overfitting warning was given.
    pub warned: bool,
}

/// What one measurement means for the run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// A new best: write the best checkpoint.
    pub improved: bool,
    /// The warning, the first time the figure worsens while the training loss falls.
    pub warning: Option<String>,
    /// `--early-stop` patience is used up.
    pub stop: bool,
}

impl Monitor {
    /// Records `now`; `patience` is `--early-stop` (measurements without improvement).
    pub fn observe(&mut self, figure: Figure, now: Mark, patience: Option<u64>) -> Verdict {
        let mut v = Verdict::default();
        let Some(best) = self.best else {
            self.best = Some(now);
            v.improved = true;
            return v;
        };
        if now.value < best.value {
            self.best = Some(now);
            self.worse = 0;
            self.since_best = 0;
            v.improved = true;
            return v;
        }
        self.since_best += 1;
        if now.value > best.value + figure.margin(best.value) {
            self.worse += 1;
        } else {
            self.worse = 0;
        }
        if !self.warned && self.worse >= WORSE_STREAK && fell(best.train_loss, now.train_loss) {
            self.warned = true;
            v.warning = Some(format!(
                "the {} rose from {:.4} at step {} to {:.4} at step {} while the training loss fell from {:.4} to {:.4}",
                figure.label(),
                best.value,
                best.step,
                now.value,
                now.step,
                best.train_loss,
                now.train_loss
            ));
        }
        v.stop = patience.is_some_and(|p| u64::from(self.since_best) >= p);
        v
    }

    /// The state as a checkpoint string (floats as exact hex).
    pub fn to_extra(&self) -> String {
        let best = self.best.map_or("-".to_string(), |b| {
            format!("{} {} {}", b.step, hex_f64(b.value), hex_f64(b.train_loss))
        });
        format!(
            "{best} {} {} {}",
            self.worse,
            self.since_best,
            u8::from(self.warned)
        )
    }

    /// Parses [`Monitor::to_extra`]; None when malformed or not finite.
    pub fn from_extra(s: &str) -> Option<Monitor> {
        let f: Vec<&str> = s.split(' ').collect();
        let (best, rest) = match f.as_slice() {
            ["-", rest @ ..] => (None, rest),
            [step, value, loss, rest @ ..] => {
                let m = Mark {
                    step: step.parse().ok()?,
                    value: unhex_f64(value).filter(|v| v.is_finite())?,
                    train_loss: unhex_f64(loss).filter(|v| v.is_finite())?,
                };
                (Some(m), rest)
            }
            _ => return None,
        };
        match rest {
            [worse, since, warned] => Some(Monitor {
                best,
                worse: worse.parse().ok()?,
                since_best: since.parse().ok()?,
                warned: match *warned {
                    "0" => false,
                    "1" => true,
                    _ => return None,
                },
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(step: u64, value: f64, train_loss: f64) -> Mark {
        Mark {
            step,
            value,
            train_loss,
        }
    }

    #[test]
    fn warns_once_when_validation_worsens_while_training_improves() {
        let mut m = Monitor::default();
        assert!(m.observe(Figure::Nll, mark(10, 4.0, 1.0), None).improved);
        assert!(m.observe(Figure::Nll, mark(20, 3.5, 0.5), None).improved);
        // within the margin: not worse
        let v = m.observe(Figure::Nll, mark(30, 3.65, 0.1), None);
        assert!(!v.improved && v.warning.is_none());
        // worse once: no warning yet
        assert!(m
            .observe(Figure::Nll, mark(40, 4.0, -5.0), None)
            .warning
            .is_none());
        let w = m.observe(Figure::Nll, mark(50, 9.0, -50.0), None).warning;
        let w = w.expect("a warning after two worse measurements");
        assert!(
            w.contains("rose from 3.5000 at step 20 to 9.0000 at step 50"),
            "{w}"
        );
        assert!(m
            .observe(Figure::Nll, mark(60, 19.0, -90.0), None)
            .warning
            .is_none());
        assert_eq!(m.best.unwrap().step, 20);
    }

    #[test]
    fn no_warning_when_the_training_loss_does_not_fall_and_early_stop_counts() {
        let mut m = Monitor::default();
        m.observe(Figure::Loss, mark(10, 1.0, 93.0), None);
        // a rising loss, then one inside its noise (1%)
        for (s, v, l) in [(20, 2.0, 95.0), (30, 3.0, 92.1)] {
            let v = m.observe(Figure::Loss, mark(s, v, l), Some(3));
            assert!(v.warning.is_none() && !v.stop);
        }
        assert!(m.observe(Figure::Loss, mark(40, 1.02, 2.0), Some(3)).stop);
    }

    #[test]
    fn the_state_round_trips_exactly() {
        let mut m = Monitor::default();
        assert_eq!(Monitor::from_extra(&m.to_extra()), Some(m.clone()));
        m.best = Some(mark(7, 0.1 + 0.2, -1e-300));
        m.worse = 3;
        m.since_best = 4;
        m.warned = true;
        assert_eq!(Monitor::from_extra(&m.to_extra()), Some(m));
        for bad in [
            "",
            "- 1 2",
            "x 0 0 0",
            "- 1 2 7",
            "1 7ff8000000000000 0 0 0 0",
        ] {
            assert_eq!(Monitor::from_extra(bad), None, "{bad}");
        }
    }
}
