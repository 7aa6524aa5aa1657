//! Named, ordered parameters stored as plain tensors and bound to a fresh tape per step.

use ebm_autodiff::{grad, Tape, Var};
use ebm_core::{DType, Tensor};
use std::ops::Index;

/// Name prefixes that checkpoints reserve for optimizer state, EMA weights and the
/// objective's tensors.
pub const RESERVED_PREFIXES: [&str; 4] = ["optim.", "ema.", "objective.", "__"];

/// An ordered list of named parameter tensors (dotted names such as `l0.weight`).
///
/// Parameters are plain [`Tensor`]s between steps. A training step binds them to a new
/// [`Tape`] with [`Params::bind`] (leaves that gradients can be taken for) and a sampler step
/// with [`Params::constants`] (never tracked), so no tape outlives its step.
#[derive(Clone, Debug, Default)]
pub struct Params {
    names: Vec<String>,
    tensors: Vec<Tensor>,
}

impl Params {
    /// An empty list.
    pub fn new() -> Params {
        Params::default()
    }

    /// Appends a parameter and returns its index; panics on an empty, duplicate or reserved
    /// name (`optim.…`, `ema.…`, `objective.…`, `__…` belong to checkpoints).
    pub fn push(&mut self, name: impl Into<String>, value: Tensor) -> usize {
        let name = name.into();
        if let Err(e) = self.check_name(&name) {
            panic!("Params::push: {e}");
        }
        self.names.push(name);
        self.tensors.push(value);
        self.tensors.len() - 1
    }

    /// Why `name` cannot be added, if it cannot.
    pub(crate) fn check_name(&self, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("a parameter name is empty".into());
        }
        if let Some(p) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            return Err(format!(
                "parameter name `{name}` starts with the reserved prefix `{p}`"
            ));
        }
        if self.names.iter().any(|n| n == name) {
            return Err(format!("parameter name `{name}` appears twice"));
        }
        Ok(())
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The values, in order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// Name of parameter `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Value of parameter `i`.
    pub fn get(&self, i: usize) -> &Tensor {
        &self.tensors[i]
    }

    /// Index of the parameter called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Value of the parameter called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Tensor> {
        self.index_of(name).map(|i| &self.tensors[i])
    }

    /// (name, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }

    /// Replaces parameter `i`; panics unless shape and dtype are unchanged.
    pub fn set(&mut self, i: usize, value: Tensor) {
        let old = &self.tensors[i];
        assert!(
            old.shape() == value.shape() && old.dtype() == value.dtype(),
            "Params::set: `{}` is {} {:?}, the new value is {} {:?}",
            self.names[i],
            old.dtype(),
            old.shape(),
            value.dtype(),
            value.shape()
        );
        self.tensors[i] = value;
    }

    /// Replaces every parameter by `f(name, value)`; panics if a shape or dtype changes.
    pub fn update(&mut self, mut f: impl FnMut(&str, &Tensor) -> Tensor) {
        for i in 0..self.len() {
            let v = f(&self.names[i], &self.tensors[i]);
            self.set(i, v);
        }
    }

    /// Mutable access for in-place updates (optimizers, EMA); callers keep shape and dtype.
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Tensor {
        &mut self.tensors[i]
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(Tensor::numel).sum()
    }

    /// The element type of the first parameter (`None` when empty).
    pub fn dtype(&self) -> Option<DType> {
        self.tensors.first().map(Tensor::dtype)
    }

    /// Converts every parameter to `dtype` (exact for f32 → f64).
    pub fn cast(&mut self, dtype: DType) {
        for t in &mut self.tensors {
            *t = t.cast(dtype);
        }
    }

    /// A copy with every name prefixed by `prefix` and a dot (for composing modules).
    pub fn prefixed(&self, prefix: &str) -> Params {
        let mut out = Params::new();
        for (n, t) in self.iter() {
            out.push(format!("{prefix}.{n}"), t.clone());
        }
        out
    }

    /// Same names and shapes, all zeros.
    pub fn zeros_like(&self) -> Params {
        Params {
            names: self.names.clone(),
            tensors: self.tensors.iter().map(Tensor::zeros_like).collect(),
        }
    }

    /// The parameters as differentiable leaves of `tape`, in order.
    pub fn bind(&self, tape: &Tape) -> Vec<Var> {
        self.tensors.iter().map(|t| tape.var(t.clone())).collect()
    }

    /// Bound parameters `vars` (from [`Params::bind`] or [`Params::constants`], or the slice
    /// an [`EnergyModel`](crate::EnergyModel) method receives) addressable by these names.
    pub fn named<'a>(&'a self, vars: &'a [Var]) -> ParamVars<'a> {
        ParamVars::new(&self.names, vars)
    }

    /// The parameters as constants of `tape` (no gradient, nothing recorded for them).
    pub fn constants(&self, tape: &Tape) -> Vec<Var> {
        self.tensors
            .iter()
            .map(|t| tape.constant(t.clone()))
            .collect()
    }

    /// Whether names, shapes, dtypes and every bit of every value agree.
    pub fn bit_eq(&self, other: &Params) -> bool {
        self.names == other.names
            && self.tensors.len() == other.tensors.len()
            && self
                .tensors
                .iter()
                .zip(&other.tensors)
                .all(|(a, b)| tensor_bit_eq(a, b))
    }
}

/// `params["name"]`: the value of a parameter by name; panics, listing the names, when there
/// is none.
impl Index<&str> for Params {
    type Output = Tensor;
    fn index(&self, name: &str) -> &Tensor {
        match self.by_name(name) {
            Some(t) => t,
            None => panic!("no parameter `{name}`; the parameters are {:?}", self.names),
        }
    }
}

/// Parameters bound on a tape, addressable by name (`p["a"]`) and by position (`p[0]`).
#[derive(Clone, Copy, Debug)]
pub struct ParamVars<'a> {
    names: &'a [String],
    vars: &'a [Var],
}

impl<'a> ParamVars<'a> {
    /// `vars` named by `names` (same length and order; panics otherwise).
    pub fn new(names: &'a [String], vars: &'a [Var]) -> ParamVars<'a> {
        assert_eq!(
            names.len(),
            vars.len(),
            "ParamVars: {} names {names:?} for {} bound parameters",
            names.len(),
            vars.len()
        );
        ParamVars { names, vars }
    }

    /// The parameter called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&'a Var> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.vars[i])
    }

    /// The names, in order.
    pub fn names(&self) -> &'a [String] {
        self.names
    }

    /// The bound parameters, in order.
    pub fn vars(&self) -> &'a [Var] {
        self.vars
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

impl Index<&str> for ParamVars<'_> {
    type Output = Var;
    fn index(&self, name: &str) -> &Var {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no parameter `{name}`; the parameters are {:?}", self.names),
        }
    }
}

impl Index<usize> for ParamVars<'_> {
    type Output = Var;
    fn index(&self, i: usize) -> &Var {
        &self.vars[i]
    }
}

/// Whether two tensors have the same dtype, shape and bits (NaN payloads included).
pub fn tensor_bit_eq(a: &Tensor, b: &Tensor) -> bool {
    if a.dtype() != b.dtype() || a.shape() != b.shape() {
        return false;
    }
    match a.dtype() {
        DType::F32 => a
            .as_slice::<f32>()
            .iter()
            .zip(b.as_slice::<f32>())
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        DType::F64 => a
            .as_slice::<f64>()
            .iter()
            .zip(b.as_slice::<f64>())
            .all(|(x, y)| x.to_bits() == y.to_bits()),
    }
}

/// Gradients of a one-element `loss` with respect to bound parameters, as plain tensors
/// (zeros for a parameter the loss does not depend on).
pub fn param_grads(loss: &Var, params: &[Var]) -> Vec<Tensor> {
    let refs: Vec<&Var> = params.iter().collect();
    grad(loss, &refs)
        .into_iter()
        .map(|g| g.value().clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ordered_and_checked() {
        let mut p = Params::new();
        p.push("l0.weight", Tensor::zeros(&[2, 3], DType::F32));
        p.push("l0.bias", Tensor::zeros(&[2], DType::F32));
        assert_eq!(p.names(), ["l0.weight", "l0.bias"]);
        assert_eq!(p.index_of("l0.bias"), Some(1));
        assert_eq!(p.numel(), 8);
        assert!(p.check_name("l0.bias").is_err());
        assert!(p.check_name("optim.x").is_err());
        assert!(p.check_name("").is_err());
        let q = p.prefixed("net");
        assert_eq!(q.names(), ["net.l0.weight", "net.l0.bias"]);
    }

    #[test]
    #[should_panic(expected = "appears twice")]
    fn duplicate_names_panic() {
        let mut p = Params::new();
        p.push("w", Tensor::zeros(&[1], DType::F32));
        p.push("w", Tensor::zeros(&[1], DType::F32));
    }

    #[test]
    #[should_panic(expected = "Params::set")]
    fn set_keeps_shape() {
        let mut p = Params::new();
        p.push("w", Tensor::zeros(&[2], DType::F32));
        p.set(0, Tensor::zeros(&[3], DType::F32));
    }

    #[test]
    fn parameters_by_name_and_position() {
        let mut p = Params::new();
        p.push("a", Tensor::scalar(2.0, DType::F64));
        p.push("b", Tensor::from_vec(vec![1.0f64, -1.0], &[2]));
        assert_eq!(p["b"].to_vec_f64(), vec![1.0, -1.0]);
        let tape = Tape::new();
        let vars = p.bind(&tape);
        let named = p.named(&vars);
        assert_eq!(named.len(), 2);
        assert_eq!(named["a"].item(), 2.0);
        assert_eq!(named[1].value().to_vec_f64(), vec![1.0, -1.0]);
        assert!(named.get("c").is_none());
        // a name reaches the same leaf as its position: the gradient lands on it
        let loss = named["a"].mul(&named["b"]).sum_all();
        let g = param_grads(&loss, named.vars());
        assert_eq!(g[0].item(), 0.0);
        assert_eq!(g[1].to_vec_f64(), vec![2.0, 2.0]);
    }

    #[test]
    #[should_panic(expected = "no parameter `c`; the parameters are [\"a\"]")]
    fn unknown_names_panic_with_the_known_ones() {
        let mut p = Params::new();
        p.push("a", Tensor::scalar(2.0, DType::F64));
        let tape = Tape::new();
        let vars = p.bind(&tape);
        let _ = &p.named(&vars)["c"];
    }

    #[test]
    fn bind_gives_leaves_and_constants_do_not_record() {
        let mut p = Params::new();
        p.push("w", Tensor::from_vec(vec![2.0f64, 3.0], &[2]));
        let tape = Tape::new();
        let v = p.bind(&tape);
        let loss = v[0].square().sum_all();
        assert_eq!(param_grads(&loss, &v)[0].to_vec_f64(), vec![4.0, 6.0]);
        let tape2 = Tape::new();
        let c = p.constants(&tape2);
        let _ = c[0].square().sum_all();
        assert!(tape2.is_empty());
    }
}
