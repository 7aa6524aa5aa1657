//! SGD (momentum, Nesterov, weight decay), Adam and AdamW with PyTorch's update formulas,
//! their state as named tensors for checkpoints, and optionally their own learning-rate
//! [`Schedule`].

use crate::checkpoint::CheckpointError;
use crate::params::Params;
use crate::schedule::Schedule;
use ebm_core::{DType, HostVec, Tensor};
use serde::{Deserialize, Serialize};

/// Hyperparameters of [`OptimizerConfig::Sgd`] (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    /// The learning rate.
    pub lr: f64,
    /// Momentum μ (0: none): b ← μb + (1 − dampening)g.
    pub momentum: f64,
    /// Dampening of the momentum's new gradient.
    pub dampening: f64,
    /// Nesterov momentum: step along g + μb.
    pub nesterov: bool,
    /// L2 penalty added to the gradient: g ← g + λθ.
    pub weight_decay: f64,
}

impl SgdConfig {
    /// Plain SGD at `lr`.
    pub fn new(lr: f64) -> SgdConfig {
        SgdConfig {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// Hyperparameters of Adam and AdamW (PyTorch's defaults: lr 1e-3, betas (0.9, 0.999),
/// eps 1e-8; weight decay 0 for Adam, 1e-2 for AdamW).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// The learning rate.
    pub lr: f64,
    /// Decay β₁ of the first-moment average.
    pub beta1: f64,
    /// Decay β₂ of the second-moment average.
    pub beta2: f64,
    /// ε added to √v̂ in the denominator.
    pub eps: f64,
    /// Adam: L2 penalty in the gradient (g ← g + λθ). AdamW: decoupled decay θ ← θ(1 − lr·λ).
    pub weight_decay: f64,
}

impl AdamConfig {
    /// PyTorch's defaults with learning rate `lr` and no weight decay.
    pub fn new(lr: f64) -> AdamConfig {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Which optimizer and its hyperparameters; serialised (with `"kind"`) into checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// SGD with momentum, Nesterov and weight decay.
    Sgd(SgdConfig),
    /// Adam (Kingma & Ba 2015).
    Adam(AdamConfig),
    /// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).
    #[serde(rename = "adamw")]
    AdamW(AdamConfig),
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => c.lr,
        }
    }

    /// Names of the per-parameter state tensors (PyTorch's state-dict keys).
    pub fn slots(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Sgd(c) if c.momentum != 0.0 => &["momentum_buffer"],
            OptimizerConfig::Sgd(_) => &[],
            OptimizerConfig::Adam(_) | OptimizerConfig::AdamW(_) => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// PyTorch's argument checks (finite, non-negative, betas in [0, 1), Nesterov needs
    /// momentum and no dampening).
    pub fn validate(&self) -> Result<(), String> {
        let nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be finite and ≥ 0, got {v}"))
            }
        };
        match self {
            OptimizerConfig::Sgd(c) => {
                nonneg("lr", c.lr)?;
                nonneg("momentum", c.momentum)?;
                nonneg("dampening", c.dampening)?;
                nonneg("weight_decay", c.weight_decay)?;
                if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
                    return Err("Nesterov momentum requires a momentum and zero dampening".into());
                }
            }
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => {
                nonneg("lr", c.lr)?;
                nonneg("eps", c.eps)?;
                nonneg("weight_decay", c.weight_decay)?;
                for (name, b) in [("beta1", c.beta1), ("beta2", c.beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(format!("{name} must be in [0, 1), got {b}"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// An optimizer bound to a model's parameter list: its hyperparameters, current learning
/// rate, step count, per-parameter state tensors, and optionally a learning-rate schedule
/// ([`Optimizer::with_schedule`]).
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    lr: f64,
    step: u64,
    /// When set, the rate of update t (counted from 0) is `config.lr() · factor(t)`.
    schedule: Option<Schedule>,
    names: Vec<String>,
    /// `slots[s][i]`: state `config.slots()[s]` of parameter `i`.
    slots: Vec<Vec<Tensor>>,
}

impl Optimizer {
    /// An optimizer for `params` with zero state; panics on invalid hyperparameters (check
    /// user input with [`OptimizerConfig::validate`] first).
    pub fn new(config: OptimizerConfig, params: &Params) -> Optimizer {
        if let Err(e) = config.validate() {
            panic!("Optimizer::new: {e}");
        }
        let slots = config
            .slots()
            .iter()
            .map(|_| params.tensors().iter().map(Tensor::zeros_like).collect())
            .collect();
        Optimizer {
            lr: config.lr(),
            config,
            step: 0,
            schedule: None,
            names: params.names().to_vec(),
            slots,
        }
    }

    /// The same optimizer driven by `schedule`: each [`Optimizer::step`] then uses the base
    /// rate (the config's `lr`) times `schedule.factor(steps taken)`, and checkpoints keep the
    /// schedule with the optimizer. Panics on an invalid schedule ([`Schedule::validate`]).
    ///
    /// ```
    /// # use ebm_nn::{Optimizer, Params, Schedule};
    /// # let params = Params::new();
    /// let opt = Optimizer::adam(1e-2, &params).with_schedule(Schedule::warmup_cosine(10, 1000, 0.01));
    /// assert!((opt.lr() - 1e-3).abs() < 1e-15); // the first update: 1/10 of the warm-up
    /// ```
    pub fn with_schedule(mut self, schedule: Schedule) -> Optimizer {
        if let Err(e) = schedule.validate() {
            panic!("Optimizer::with_schedule: {e}");
        }
        self.lr = schedule.lr(self.config.lr(), self.step);
        self.schedule = Some(schedule);
        self
    }

    /// The schedule this optimizer applies, if any.
    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    /// SGD with momentum (0 for none).
    pub fn sgd(lr: f64, momentum: f64, params: &Params) -> Optimizer {
        let c = SgdConfig {
            momentum,
            ..SgdConfig::new(lr)
        };
        Optimizer::new(OptimizerConfig::Sgd(c), params)
    }

    /// Adam with PyTorch's defaults.
    pub fn adam(lr: f64, params: &Params) -> Optimizer {
        Optimizer::new(OptimizerConfig::Adam(AdamConfig::new(lr)), params)
    }

    /// AdamW with PyTorch's defaults and decoupled weight decay `weight_decay`.
    pub fn adamw(lr: f64, weight_decay: f64, params: &Params) -> Optimizer {
        let c = AdamConfig {
            weight_decay,
            ..AdamConfig::new(lr)
        };
        Optimizer::new(OptimizerConfig::AdamW(c), params)
    }

    /// The hyperparameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate of the next steps (a schedule the caller keeps calls this before
    /// each step). Panics when the optimizer owns a schedule ([`Optimizer::with_schedule`]),
    /// which would overwrite the rate at the next step.
    pub fn set_lr(&mut self, lr: f64) {
        assert!(
            self.schedule.is_none(),
            "Optimizer::set_lr: this optimizer owns a schedule (with_schedule), which sets its rate"
        );
        assert!(
            lr.is_finite() && lr >= 0.0,
            "Optimizer::set_lr: {lr} must be finite and ≥ 0"
        );
        self.lr = lr;
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Names of the parameters this optimizer was built for, in order.
    pub fn param_names(&self) -> &[String] {
        &self.names
    }

    /// One update of `params` with `grads` (same order, shapes and dtypes).
    ///
    /// Parameters and state are updated in place when nothing else holds their buffers (drop
    /// the step's tape and `Var`s first); otherwise they are copied, with the same result.
    pub fn step(&mut self, params: &mut Params, grads: &[Tensor]) {
        assert!(
            params.names() == self.names.as_slice() && grads.len() == params.len(),
            "Optimizer::step: built for {:?}, given parameters {:?} and {} gradients",
            self.names,
            params.names(),
            grads.len()
        );
        if let Some(s) = &self.schedule {
            self.lr = s.lr(self.config.lr(), self.step);
        }
        self.step += 1;
        let t = self.step;
        for (i, g) in grads.iter().enumerate() {
            let p = params.get_mut(i);
            assert!(
                p.shape() == g.shape() && p.dtype() == g.dtype(),
                "Optimizer::step: `{}` is {} {:?} but its gradient is {} {:?}",
                self.names[i],
                p.dtype(),
                p.shape(),
                g.dtype(),
                g.shape()
            );
            match p.dtype() {
                DType::F32 => self.update_one::<f32>(i, p, g, t),
                DType::F64 => self.update_one::<f64>(i, p, g, t),
            }
        }
        if let Some(s) = &self.schedule {
            self.lr = s.lr(self.config.lr(), self.step);
        }
    }

    fn update_one<T: HostVec>(&mut self, i: usize, p: &mut Tensor, g: &Tensor, t: u64) {
        let lr = self.lr;
        let g = g.as_slice::<T>();
        match self.config {
            OptimizerConfig::Sgd(c) => {
                let p = p.data_mut::<T>();
                let buf = self.slots.first_mut().map(|s| s[i].data_mut::<T>());
                sgd_update(p, g, buf, t == 1, &c, lr);
            }
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => {
                let decoupled = matches!(self.config, OptimizerConfig::AdamW(_));
                let (m_slot, v_slot) = self.slots.split_at_mut(1);
                let m = m_slot[0][i].data_mut::<T>();
                let v = v_slot[0][i].data_mut::<T>();
                adam_update(p.data_mut::<T>(), g, m, v, &c, decoupled, lr, t);
            }
        }
    }

    /// The state as named tensors, `<slot>.<param>` (e.g. `exp_avg.l0.weight`), in order.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (s, slot) in self.config.slots().iter().zip(&self.slots) {
            for (name, t) in self.names.iter().zip(slot) {
                out.push((format!("{s}.{name}"), t.clone()));
            }
        }
        out
    }

    /// Hyperparameters, current learning rate and step count as JSON (checkpoint metadata),
    /// and the schedule under `"schedule"` when the optimizer owns one.
    pub fn hyper_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "config": self.config, "lr": self.lr, "step": self.step });
        if let Some(s) = &self.schedule {
            v["schedule"] = serde_json::json!(s);
        }
        v
    }

    /// Rebuilds an optimizer for parameters `names` from [`Optimizer::hyper_json`] and the
    /// state tensor of each (slot, parameter index), as read from a checkpoint.
    pub(crate) fn from_parts(
        hyper: &serde_json::Value,
        names: &[String],
        mut tensor: impl FnMut(&str, usize) -> Result<Tensor, CheckpointError>,
    ) -> Result<Optimizer, CheckpointError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Hyper {
            config: OptimizerConfig,
            lr: f64,
            step: u64,
            #[serde(default)]
            schedule: Option<Schedule>,
        }
        let bad = |detail: String| CheckpointError::BadMetadata {
            key: "optimizer".into(),
            detail,
        };
        let h: Hyper = serde_json::from_value(hyper.clone()).map_err(|e| bad(e.to_string()))?;
        h.config.validate().map_err(bad)?;
        if !(h.lr.is_finite() && h.lr >= 0.0) {
            return Err(bad(format!("lr {} must be finite and ≥ 0", h.lr)));
        }
        if let Some(s) = &h.schedule {
            s.validate().map_err(bad)?;
        }
        let mut slots = Vec::new();
        for s in h.config.slots() {
            slots.push(
                (0..names.len())
                    .map(|i| tensor(s, i))
                    .collect::<Result<Vec<Tensor>, CheckpointError>>()?,
            );
        }
        Ok(Optimizer {
            config: h.config,
            lr: h.lr,
            step: h.step,
            schedule: h.schedule,
            names: names.to_vec(),
            slots,
        })
    }

    /// The same optimizer with its parameters reordered to `order` (indices into the
    /// current order).
    pub(crate) fn permuted(&self, order: &[usize]) -> Optimizer {
        Optimizer {
            config: self.config,
            lr: self.lr,
            step: self.step,
            schedule: self.schedule.clone(),
            names: order.iter().map(|&i| self.names[i].clone()).collect(),
            slots: self
                .slots
                .iter()
                .map(|s| order.iter().map(|&i| s[i].clone()).collect())
                .collect(),
        }
    }

    /// Whether config, lr, step, schedule, names and every state bit agree.
    pub fn bit_eq(&self, other: &Optimizer) -> bool {
        self.config == other.config
            && self.lr.to_bits() == other.lr.to_bits()
            && self.step == other.step
            && self.schedule == other.schedule
            && self.names == other.names
            && self.slots.len() == other.slots.len()
            && self.slots.iter().zip(&other.slots).all(|(a, b)| {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| crate::params::tensor_bit_eq(x, y))
            })
    }
}

/// PyTorch's SGD for one tensor:
/// g ← g + λθ; b ← g (first step) or μb + (1−τ)g; g ← g + μb (Nesterov) or b; θ ← θ − lr·g.
fn sgd_update<T: HostVec>(
    p: &mut [T],
    g: &[T],
    mut buf: Option<&mut [T]>,
    first: bool,
    c: &SgdConfig,
    lr: f64,
) {
    let (wd, mom, damp) = (
        T::of(c.weight_decay),
        T::of(c.momentum),
        T::of(1.0 - c.dampening),
    );
    let lr = T::of(lr);
    for j in 0..p.len() {
        let mut d = g[j];
        if c.weight_decay != 0.0 {
            d = d + wd * p[j];
        }
        if let Some(b) = buf.as_deref_mut() {
            let bj = if first { d } else { mom * b[j] + damp * d };
            b[j] = bj;
            d = if c.nesterov { d + mom * bj } else { bj };
        }
        p[j] = p[j] - lr * d;
    }
}

/// PyTorch's Adam/AdamW for one tensor at step t (single-tensor path, same operation order):
/// AdamW: θ ← θ(1 − lr·λ); Adam: g ← g + λθ;
/// m ← m + (1−β₁)(g − m); v ← β₂v + (1−β₂)g²;
/// θ ← θ − (lr/(1−β₁ᵗ)) · m / (√v/√(1−β₂ᵗ) + ε).
#[allow(clippy::too_many_arguments)]
fn adam_update<T: HostVec>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    c: &AdamConfig,
    decoupled: bool,
    lr: f64,
    t: u64,
) {
    let bc1 = 1.0 - c.beta1.powf(t as f64);
    let bc2 = 1.0 - c.beta2.powf(t as f64);
    let step_size = T::of(lr / bc1);
    let bc2_sqrt = T::of(bc2.sqrt());
    let (w1, b2, w2, eps) = (
        T::of(1.0 - c.beta1),
        T::of(c.beta2),
        T::of(1.0 - c.beta2),
        T::of(c.eps),
    );
    let decay = T::of(1.0 - lr * c.weight_decay);
    let wd = T::of(c.weight_decay);
    let with_decay = c.weight_decay != 0.0;
    // compiled for the CPU's vector unit (the baseline build ran the square root and the two
    // divisions 4 lanes wide); every element's operations are the same either way
    // `move`: the constants by value (borrowed, LLVM reloaded them every element and kept
    // the loop scalar, since they might alias the slices it writes)
    ebm_core::ops::fastmath::dispatch(
        #[inline(always)]
        move || {
            let all = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
            for (((pj, &gj), mj), vj) in all {
                let mut gj = gj;
                if with_decay {
                    if decoupled {
                        *pj = *pj * decay;
                    } else {
                        gj = gj + wd * *pj;
                    }
                }
                *mj = *mj + w1 * (gj - *mj);
                *vj = *vj * b2 + w2 * (gj * gj);
                let denom = vj.sqrt() / bc2_sqrt + eps;
                *pj = *pj - step_size * (*mj / denom);
            }
        },
    );
}

#[cfg(test)]
mod tests;
