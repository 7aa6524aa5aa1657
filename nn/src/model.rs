//! The traits every model implements: parameters and a config ([`Module`]), one energy per
//! row ([`EnergyModel`]), and a score conditioned on a noise level ([`NoiseConditionalModel`]);
//! [`Model`] and [`ModelRef`] let objectives, training steps and sampler bridges take either.

use crate::params::Params;
use ebm_autodiff::{grad_with, GradOpts, Tape, Var};
use ebm_core::Tensor;

/// Anything with named parameters and a serialisable configuration.
pub trait Module {
    /// The parameters, in the order `*_var` methods expect them bound.
    fn params(&self) -> &Params;

    /// Mutable parameters (optimizers, checkpoint restore); shapes must not change.
    fn params_mut(&mut self) -> &mut Params;

    /// The configuration as JSON with a `"kind"` field: enough to rebuild the model, and
    /// compared on checkpoint restore so a file never loads into a different architecture.
    fn config(&self) -> serde_json::Value;
}

/// −∇ₓ ΣE for a batched energy `energy` [B] of the input `x` [B, d]: rows are independent,
/// so the gradient of the sum is every row's gradient.
///
/// With `opts.create_graph` the result stays differentiable (w.r.t. parameters for DSM, or
/// w.r.t. `x` again for Hessian terms).
pub fn score_from_energy(energy: &Var, x: &Var, opts: GradOpts) -> Var {
    grad_with(&energy.sum_all(), &[x], opts).remove(0).neg()
}

/// `x` itself when it is tracked, else the same value as a new leaf of its tape, so that an
/// input gradient can be taken (of a constant it would silently be zero).
pub fn as_leaf(x: &Var) -> Var {
    if x.is_tracked() {
        x.clone()
    } else {
        x.tape().var(x.value().clone())
    }
}

/// A model that gives one energy per row: E: [B, d] → [B].
///
/// On the tape (`*_var`), parameters come in bound by the caller ([`Params::bind`] for
/// training, [`Params::constants`] for evaluation), so objectives can take `create_graph`
/// input gradients and then parameter gradients. The plain-tensor functions build a fresh
/// tape per call with the parameters as constants: samplers call them in long loops and no
/// tape ever grows across calls.
pub trait EnergyModel: Module + Sync {
    /// E(x) per row, `x` [B, d] → [B], with `p` the parameters bound in [`Module::params`]
    /// order.
    fn energy_var(&self, x: &Var, p: &[Var]) -> Var;

    /// The score s(x) = −∇ₓE(x) [B, d] on the tape. A constant `x` is first made a leaf
    /// ([`as_leaf`]).
    fn score_var(&self, x: &Var, p: &[Var], opts: GradOpts) -> Var {
        let x = as_leaf(x);
        score_from_energy(&self.energy_var(&x, p), &x, opts)
    }

    /// The score s(x) at a constant `x` [B, d…] and, for each tangent vₘ (x's shape), the
    /// directional derivative ∇ₓs(x)·vₘ, both on `tape` with their parameter derivatives:
    /// sliced score matching's Hessian-vector products. The default is
    /// [`score_and_jvps_on_tape`]; a model may give a closed form.
    fn score_and_jvps(&self, tape: &Tape, x: &Tensor, p: &[Var], v: &[Tensor]) -> (Var, Vec<Var>) {
        score_and_jvps_on_tape(self, tape, x, p, v)
    }

    /// E(x) per row as a plain tensor.
    fn energy(&self, x: &Tensor) -> Tensor {
        let tape = Tape::new();
        let p = self.params().constants(&tape);
        self.energy_var(&tape.constant(x.clone()), &p)
            .value()
            .clone()
    }

    /// s(x) = −∇ₓE(x) as a plain tensor (a fresh tape, parameters constant).
    fn score(&self, x: &Tensor) -> Tensor {
        score_on_tape(self, x)
    }

    /// E(x) and s(x) from one forward pass.
    fn energy_and_score(&self, x: &Tensor) -> (Tensor, Tensor) {
        energy_and_score_on_tape(self, x)
    }
}

/// [`EnergyModel::score`]'s default: −∇ₓE by reverse mode on a fresh tape. Models that
/// override `score` with a closed form fall back to this where the closed form does not apply.
pub fn score_on_tape<M: EnergyModel + ?Sized>(model: &M, x: &Tensor) -> Tensor {
    let tape = Tape::new();
    let p = model.params().constants(&tape);
    model
        .score_var(&tape.var(x.clone()), &p, GradOpts::default())
        .value()
        .clone()
}

/// [`EnergyModel::score_and_jvps`]'s default: s with its graph, then ∇ₓ(Σ_b vₘ,bᵀs_b) by
/// reverse mode for each tangent — ∇ₓs·vₘ, the Jacobian of a score being symmetric (−∇²E),
/// and row b's only from row b as rows are independent.
pub fn score_and_jvps_on_tape<M: EnergyModel + ?Sized>(
    model: &M,
    tape: &Tape,
    x: &Tensor,
    p: &[Var],
    v: &[Tensor],
) -> (Var, Vec<Var>) {
    let xv = tape.var(x.clone());
    let s = model.score_var(&xv, p, GradOpts::create_graph());
    let jvps = v
        .iter()
        .map(|v| grad_with(&s.mul_const(v).sum_all(), &[&xv], GradOpts::create_graph()).remove(0))
        .collect();
    (s, jvps)
}

/// [`EnergyModel::energy_and_score`]'s default, on a fresh tape.
pub fn energy_and_score_on_tape<M: EnergyModel + ?Sized>(
    model: &M,
    x: &Tensor,
) -> (Tensor, Tensor) {
    let tape = Tape::new();
    let p = model.params().constants(&tape);
    let xv = tape.var(x.clone());
    let e = model.energy_var(&xv, &p);
    let s = score_from_energy(&e, &xv, GradOpts::default());
    (e.value().clone(), s.value().clone())
}

/// A model of the score at a noise level: s(x, c) for a per-row condition c (the noise
/// standard deviation σ for NCSN-style multi-scale score matching, or the time t of an SDE).
///
/// Energy-parameterised models also expose E(x, c); their score is −∇ₓE.
pub trait NoiseConditionalModel: Module + Sync {
    /// s(x, c) [B, d] for `x` [B, d] and `cond` [B]. For an energy-parameterised model
    /// `opts` says whether the input gradient is recorded (a constant `x` is made a leaf
    /// first); a model that outputs the score directly ignores `opts`.
    fn score_var(&self, x: &Var, cond: &Tensor, p: &[Var], opts: GradOpts) -> Var;

    /// E(x, c) [B] when the model is energy-parameterised, else `None`.
    fn energy_var(&self, x: &Var, cond: &Tensor, p: &[Var]) -> Option<Var>;

    /// s(x, c) as a plain tensor (a fresh tape, parameters constant).
    fn score(&self, x: &Tensor, cond: &Tensor) -> Tensor {
        let tape = Tape::new();
        let p = self.params().constants(&tape);
        self.score_var(&tape.var(x.clone()), cond, &p, GradOpts::default())
            .value()
            .clone()
    }

    /// E(x, c) as a plain tensor, when the model has an energy.
    fn energy(&self, x: &Tensor, cond: &Tensor) -> Option<Tensor> {
        let tape = Tape::new();
        let p = self.params().constants(&tape);
        self.energy_var(&tape.constant(x.clone()), cond, &p)
            .map(|e| e.value().clone())
    }
}

/// A borrowed model of either kind: what code serving both (objectives, the training step,
/// the sampler bridge) dispatches on.
#[derive(Clone, Copy)]
pub enum ModelRef<'a> {
    /// An energy E(x).
    Energy(&'a dyn EnergyModel),
    /// A score s(x, c) (and maybe an energy E(x, c)) at a per-row noise condition c.
    NoiseConditional(&'a dyn NoiseConditionalModel),
}

impl ModelRef<'_> {
    /// "an energy model" or "a noise-conditional model", for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ModelRef::Energy(_) => "an energy model E(x)",
            ModelRef::NoiseConditional(_) => "a noise-conditional model s(x, c)",
        }
    }
}

/// A trainable model of either kind: named parameters plus a view as an energy or as a
/// noise-conditional model. Every [`EnergyModel`] is one; a noise-conditional model implements
/// it with one line (`ModelRef::NoiseConditional(self)`).
pub trait Model: Module + Sync {
    /// The model as the kind it is.
    fn view(&self) -> ModelRef<'_>;
}

impl<T: EnergyModel> Model for T {
    fn view(&self) -> ModelRef<'_> {
        ModelRef::Energy(self)
    }
}

/// `value` serialised with a `"kind": kind` field added (the shape of every model config).
pub(crate) fn tagged_config(kind: &str, value: &impl serde::Serialize) -> serde_json::Value {
    let mut v = serde_json::to_value(value).expect("model configs serialise to JSON");
    match &mut v {
        serde_json::Value::Object(map) => {
            map.insert("kind".into(), serde_json::Value::String(kind.into()));
        }
        other => {
            *other = serde_json::json!({ "kind": kind, "config": other.clone() });
        }
    }
    v
}
