//! Reverse-mode sweeps and the derivative operators built on them: gradients, VJPs,
//! Hessian-vector products, Hessian diagonals and JVPs.

use crate::tape::Var;
use ebm_core::Tensor;

/// Options of a backward sweep.
#[derive(Clone, Copy, Debug, Default)]
pub struct GradOpts {
    /// Record the backward pass on the tape so its results can be differentiated again.
    pub create_graph: bool,
}

impl GradOpts {
    /// Options that record the backward pass (for grad-of-grad).
    pub fn create_graph() -> GradOpts {
        GradOpts { create_graph: true }
    }
}

/// Vector-Jacobian product: the cotangents of `wrt` given `cotangent` for `output`
/// (same shape as `output`). `None` where an input does not influence the output; such inputs
/// cost nothing.
pub fn vjp(output: &Var, wrt: &[&Var], cotangent: &Var, opts: GradOpts) -> Vec<Option<Var>> {
    assert_eq!(
        output.shape(),
        cotangent.shape(),
        "vjp: cotangent shape {:?} differs from output shape {:?}",
        cotangent.shape(),
        output.shape()
    );
    let tape = output.tape.clone();
    for w in wrt {
        assert!(tape.same(&w.tape), "vjp: a Var of `wrt` is on another tape");
    }
    let none = || vec![None; wrt.len()];
    let Some(out_id) = output.id else {
        return none();
    };
    let Some(lo) = wrt
        .iter()
        .filter_map(|w| w.id)
        .filter(|&w| w <= out_id)
        .min()
    else {
        return none();
    };
    let span = out_id - lo + 1;
    // needed[i]: node lo+i depends on some `wrt` Var (forward reachability over the tape).
    let mut needed = vec![false; span];
    let mut is_wrt = vec![false; span];
    for id in wrt.iter().filter_map(|w| w.id).filter(|&w| w <= out_id) {
        needed[id - lo] = true;
        is_wrt[id - lo] = true;
    }
    {
        let nodes = tape.inner.nodes.borrow();
        for i in lo..=out_id {
            if !needed[i - lo] {
                needed[i - lo] = nodes[i]
                    .parents
                    .iter()
                    .any(|p| p.is_some_and(|p| p >= lo && needed[p - lo]));
            }
        }
    }
    if !needed[out_id - lo] {
        return none();
    }
    let mut grads: Vec<Option<Var>> = vec![None; span];
    let mut found: Vec<Option<Var>> = vec![None; span];
    grads[out_id - lo] = Some(cotangent.clone());
    tape.with_grad_enabled(opts.create_graph, || {
        for i in (lo..=out_id).rev() {
            if !needed[i - lo] {
                continue;
            }
            let Some(g) = grads[i - lo].take() else {
                continue;
            };
            if is_wrt[i - lo] {
                found[i - lo] = Some(g.clone());
            }
            let (rule, parents, values, value) = {
                let nodes = tape.inner.nodes.borrow();
                let n = &nodes[i];
                let Some(rule) = n.backward.clone() else {
                    continue;
                };
                (
                    rule,
                    n.parents.clone(),
                    n.parent_values.clone(),
                    n.value.clone(),
                )
            };
            let need: Vec<bool> = parents
                .iter()
                .map(|p| p.is_some_and(|p| p >= lo && needed[p - lo]))
                .collect();
            if !need.iter().any(|&n| n) {
                continue;
            }
            let ins: Vec<Var> = parents
                .iter()
                .zip(values)
                .map(|(&id, value)| Var {
                    tape: tape.clone(),
                    id,
                    value,
                })
                .collect();
            let out = Var {
                tape: tape.clone(),
                id: Some(i),
                value,
            };
            let gs = rule(&g, &ins, &out, &need);
            for (k, gk) in gs.into_iter().enumerate() {
                let (Some(gk), true) = (gk, need[k]) else {
                    continue;
                };
                let p = parents[k].expect("needed parent is tracked") - lo;
                grads[p] = Some(match grads[p].take() {
                    // nothing recorded: accumulate into the running sum's own buffer
                    Some(Var {
                        id: None,
                        mut value,
                        tape: t,
                    }) if !opts.create_graph && gk.id.is_none() => {
                        value.add_assign(&gk.value);
                        Var {
                            id: None,
                            value,
                            tape: t,
                        }
                    }
                    Some(acc) => acc.add(&gk),
                    None => gk,
                });
            }
        }
    });
    wrt.iter()
        .map(|w| {
            w.id.filter(|&id| id >= lo && id <= out_id)
                .and_then(|id| found[id - lo].clone())
        })
        .collect()
}

fn ones_cotangent(output: &Var, what: &str) -> Var {
    assert_eq!(
        output.numel(),
        1,
        "{what}: output has shape {:?}; reduce it to one element or use vjp with a cotangent",
        output.shape()
    );
    output.constant(output.value.ones_like())
}

/// Gradients of a one-element `output` with respect to `wrt` (zeros where it does not depend
/// on an input).
///
/// Panics if an entry of `wrt` is a constant ([`crate::Tape::constant`], [`Var::detach`], or
/// the result of ops on constants or under `no_grad`): it has no gradient, and zeros would
/// hide the mistake.
pub fn grad_with(output: &Var, wrt: &[&Var], opts: GradOpts) -> Vec<Var> {
    for (i, w) in wrt.iter().enumerate() {
        assert!(
            w.is_tracked(),
            "grad: wrt[{i}] (shape {:?}) is a constant, which has no gradient; \
             take gradients with respect to leaves made by Tape::var",
            w.shape()
        );
    }
    let ct = ones_cotangent(output, "grad");
    vjp(output, wrt, &ct, opts)
        .into_iter()
        .zip(wrt)
        .map(|(g, w)| g.unwrap_or_else(|| w.constant(w.value.zeros_like())))
        .collect()
}

/// First-order gradients of a one-element `output` (the backward pass is not recorded).
pub fn grad(output: &Var, wrt: &[&Var]) -> Vec<Var> {
    grad_with(output, wrt, GradOpts::default())
}

/// Hessian-vector product H·v of a one-element `output` w.r.t. `x`: ∇ₓ(∇ₓf · v).
pub fn hvp(output: &Var, x: &Var, v: &Tensor, opts: GradOpts) -> Var {
    let g = grad_with(output, &[x], GradOpts::create_graph()).remove(0);
    let gv = g.mul_const(v).sum_all();
    grad_with(&gv, &[x], opts).remove(0)
}

/// Diagonal of the Hessian of a batched energy w.r.t. its input `x` of shape [B, d…]:
/// `out[b, i] = ∂²E_b/∂x_{b,i}²`, same shape as `x`.
///
/// Rows are independent, so differentiating ΣE once per feature gives every row's diagonal at
/// once: d backward passes of the recorded score, exact (no estimator).
pub fn hessian_diag(energy: &Var, x: &Var, opts: GradOpts) -> Var {
    let g = grad_with(&energy.sum_all(), &[x], GradOpts::create_graph()).remove(0);
    hessian_diag_from_grad(&g, x, opts)
}

/// [`hessian_diag`] from an already recorded input gradient `g` = ∇ₓΣE (taken with
/// `create_graph`), for callers that need the gradient too (exact score matching): the
/// gradient is not recorded twice.
pub fn hessian_diag_from_grad(g: &Var, x: &Var, opts: GradOpts) -> Var {
    assert!(x.rank() >= 1, "hessian_diag: x must have a batch axis");
    assert_eq!(
        g.shape(),
        x.shape(),
        "hessian_diag: gradient {:?} and input {:?} differ in shape",
        g.shape(),
        x.shape()
    );
    let b = x.shape()[0];
    let d: usize = x.shape()[1..].iter().product();
    let g = g.reshape(&[b, d]);
    let cols: Vec<Var> = (0..d)
        .map(|i| {
            let gi = g.narrow(1, i, 1).sum_all();
            grad_with(&gi, &[x], opts)
                .remove(0)
                .reshape(&[b, d])
                .narrow(1, i, 1)
        })
        .collect();
    Var::concat(&cols, 1).reshape(x.shape())
}

/// Jacobian-vector product J·v of `output` w.r.t. `x` (v has x's shape), by the double-VJP
/// trick: u ↦ Jᵀu is linear in u, so J·v = ∇ᵤ⟨Jᵀu, v⟩.
pub fn jvp(output: &Var, x: &Var, v: &Tensor, opts: GradOpts) -> Var {
    let u = output.tape.var(output.value.zeros_like());
    let jtu = vjp(output, &[x], &u, GradOpts::create_graph())
        .remove(0)
        .unwrap_or_else(|| x.constant(x.value.zeros_like()));
    let s = jtu.mul_const(v).sum_all();
    vjp(&s, &[&u], &s.constant(s.value.ones_like()), opts)
        .remove(0)
        .unwrap_or_else(|| output.constant(output.value.zeros_like()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;

    #[test]
    fn unrelated_leaves_get_zeros() {
        let tape = Tape::new();
        let (x, y) = (
            tape.var(Tensor::scalar(2.0, ebm_core::DType::F64)),
            tape.var(Tensor::scalar(5.0, ebm_core::DType::F64)),
        );
        let g = grad(&x.square(), &[&x, &y]);
        assert_eq!(g[0].item(), 4.0);
        assert_eq!(g[1].item(), 0.0);
    }

    #[test]
    #[should_panic(expected = "grad: wrt[1] (shape []) is a constant")]
    fn a_constant_wrt_is_an_error_not_zeros() {
        let tape = Tape::new();
        let x = tape.var(Tensor::scalar(2.0, ebm_core::DType::F64));
        let c = x.detach();
        let _ = grad(&x.mul(&c), &[&x, &c]);
    }
}
