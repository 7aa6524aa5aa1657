//! Closed-form derivatives of an SiLU MLP energy: the chain rule written out for the score
//! (what samplers call in their inner loop), for the parameter gradient of a function of the
//! score (what denoising score matching trains with) and for the parameter gradient of the
//! energy itself (NCE, PCD and every energy-difference objective), and (in [`jvp`]) for the
//! score with its directional derivatives ∇ₓs·v and their parameter gradient (sliced score
//! matching), with every σ-derived factor formed once in the forward pass and no recorded
//! graph.
//!
//! Notation: layers 0..=L, a₁ = xW₀ᵀ + b₀, aₗ₊₁ = hₗWₗᵀ + bₗ with hₗ = silu(aₗ), and
//! E = h_L w_Lᵀ + b_L (w_L one row); dₗ = silu′(aₗ), eₗ = silu″(aₗ).
//!
//! Score (reverse mode written out): g_L = −w_L ⊙ d_L; uₗ = gₗ₊₁Wₗ and gₗ = uₗ ⊙ dₗ for
//! l = L−1, …, 1; s(x) = −∇ₓE = g₁W₀.
//!
//! Parameter VJP of the score for a cotangent r = ∂ℓ/∂s (the score's computation above,
//! reversed once more; x is a constant, so no input derivative):
//! - ḡ₁ = rW₀ᵀ and W̄₀ ∋ g₁ᵀr;
//! - for l = 1, …, L−1: ūₗ = ḡₗ ⊙ dₗ, āₗ ∋ ḡₗ ⊙ uₗ ⊙ eₗ, W̄ₗ ∋ gₗ₊₁ᵀūₗ, ḡₗ₊₁ = ūₗWₗᵀ;
//! - at the top: w̄_L = −Σ_rows ḡ_L ⊙ d_L and ā_L = −ḡ_L ⊙ w_L ⊙ e_L (b_L has no effect);
//! - then down the forward pass, l = L, …, 1: b̄ₗ₋₁ = Σ_rows āₗ, W̄ₗ₋₁ ∋ āₗᵀhₗ₋₁ (h₀ = x),
//!   and āₗ₋₁ ∋ (āₗWₗ₋₁) ⊙ dₗ₋₁.
//!
//! Every term is a product the tape forms for the same graph, so the two agree to rounding
//! (`tests.rs`: f64, to 1e-12 relative, Hessian products included); the saving is in the
//! element-wise passes (fewer, each writing every factor later ones need, σ once per unit)
//! and the tape's bookkeeping.

use crate::activation::Activation;
use crate::linear::Linear;
use crate::mlp::forward_layers;
use crate::model::score_from_energy;
use ebm_autodiff::{vjp, GradOpts, Tape, Var};
use ebm_core::{BinaryOp, Device, Tensor};

/// Whether the closed forms apply to an MLP of `layers` with parameters `p` at `x`: at least
/// one hidden layer, one output, `x` [B, in] and every parameter of `x`'s dtype on the CPU
/// (the caller checks that the activation is SiLU).
pub(crate) fn applies(layers: &[Linear], p: &[&Tensor], x: &Tensor) -> bool {
    layers.len() >= 2
        && layers.last().is_some_and(|l| l.out_features == 1)
        && x.rank() == 2
        && x.shape()[1] == layers[0].in_features
        && x.device() == Device::Cpu
        && p.iter()
            .all(|t| t.dtype() == x.dtype() && t.device() == Device::Cpu)
}

/// x·Wᵀ + b for one layer, the bias added by the GEMM.
fn affine(h: &Tensor, l: &Linear, p: &[&Tensor]) -> Tensor {
    match l.bias_index() {
        Some(b) => h.matmul_t_add(p[l.weight_index()], false, true, p[b]),
        None => h.matmul_t(p[l.weight_index()], false, true),
    }
}

/// The score s(x) (and E(x) when `with_energy`) by the closed form above; `applies` must hold.
/// silu′ of each hidden layer comes out of the forward pass with silu itself (one σ per unit,
/// [`Tensor::silu_and_d1`]), where reverse mode on a tape evaluates σ again in its backward
/// pass; the output layer is evaluated only when `with_energy`.
pub(crate) fn score(
    layers: &[Linear],
    p: &[&Tensor],
    x: &Tensor,
    with_energy: bool,
) -> (Option<Tensor>, Tensor) {
    let w: Vec<usize> = std::iter::once(layers[0].in_features)
        .chain(layers.iter().map(|l| l.out_features))
        .collect();
    let (hidden, out) = layers.split_at(layers.len() - 1);
    let mut h = x.clone();
    let mut d1 = Vec::with_capacity(hidden.len());
    for (i, l) in hidden.iter().enumerate() {
        let a = affine(&h, l, p);
        if i + 1 < hidden.len() || with_energy {
            let (y, d) = a.silu_and_d1();
            h = y;
            d1.push(d);
        } else {
            d1.push(a);
        }
    }
    let energy = with_energy.then(|| affine(&h, &out[0], p).reshape(&[x.shape()[0]]));
    // −w_L as a row, broadcast over the batch
    let neg_w = p[out[0].weight_index()].neg();
    let last = d1.pop().expect("at least one hidden layer");
    let mut g = if with_energy {
        last.mul(&neg_w)
    } else {
        neg_w.binary(&last, BinaryOp::MulSiluD1)
    };
    // gₗ₋₁ = (gₗWₗ) ⊙ silu′(aₗ₋₁): the ⊙ is formed in registers, by the next product where
    // that one is skinny (the input layer of low-dimensional data: it waits as `pending`),
    // else in the stores of this one
    let mut pending: Option<&Tensor> = None;
    let times_w = |g: &Tensor, pending: Option<&Tensor>, l: &Linear| match pending {
        Some(d) => g.mul_matmul_t(d, p[l.weight_index()], false),
        None => g.matmul_t(p[l.weight_index()], false, false),
    };
    for (i, (l, d)) in hidden[1..].iter().zip(d1.iter()).enumerate().rev() {
        // the next product is by layer i's weight, w[i] columns wide
        if w[i] <= 4 {
            g = times_w(&g, pending, l);
            pending = Some(d);
        } else {
            g = match pending.take() {
                Some(pd) => g.mul_matmul_t(pd, p[l.weight_index()], false).mul(d),
                None => g.matmul_t_mul(p[l.weight_index()], false, false, d),
            };
        }
    }
    (energy, times_w(&g, pending, &hidden[0]))
}

/// What the score's forward pass keeps for its parameter VJP (index l − 1 for layer l's
/// hidden units, l = 1..=L).
struct Kept {
    /// hₗ₋₁: the input of each hidden layer's affine map (h₀ = x).
    inputs: Vec<Tensor>,
    /// dₗ for every hidden layer.
    d1: Vec<Tensor>,
    /// eₗ for the hidden layers below the top one.
    d2: Vec<Tensor>,
    /// −w_L ⊙ e_L.
    top_q: Tensor,
    /// uₗ for l < L.
    u: Vec<Tensor>,
    /// gₗ where the forward pass formed it (all but g₁ when the input layer is skinny).
    g: Vec<Option<Tensor>>,
}

/// The forward pass of the score, keeping every factor of its parameter VJP.
fn score_keeping(layers: &[Linear], p: &[&Tensor], x: &Tensor) -> (Tensor, Kept) {
    let n_hidden = layers.len() - 1;
    let neg_w = p[layers[n_hidden].weight_index()].neg();
    let mut kept = Kept {
        inputs: vec![x.clone()],
        d1: Vec::with_capacity(n_hidden),
        d2: Vec::with_capacity(n_hidden),
        top_q: Tensor::scalar(0.0, x.dtype()),
        u: Vec::new(),
        g: vec![None; n_hidden],
    };
    for (i, l) in layers[..n_hidden].iter().enumerate() {
        let a = affine(&kept.inputs[i], l, p);
        if i + 1 < n_hidden {
            let [h, d1, d2] = a.silu_d012();
            kept.inputs.push(h);
            kept.d1.push(d1);
            kept.d2.push(d2);
        } else {
            let [g, d1, q] = a.row_scaled_silu_d12(&neg_w);
            kept.d1.push(d1);
            kept.top_q = q;
            kept.g[i] = Some(g);
        }
    }
    // u and g from the top down; g₁ is left unformed when the input layer is skinny (it is
    // formed in the registers of the last product, and by the VJP's first pass if needed)
    let skinny_input = layers[0].in_features <= 4;
    let mut u_rev = Vec::with_capacity(n_hidden - 1);
    for l in (1..n_hidden).rev() {
        let above = kept.g[l].as_ref().expect("formed on the way down");
        let u = above.matmul_t(p[layers[l].weight_index()], false, false);
        if l > 1 || !skinny_input {
            kept.g[l - 1] = Some(u.mul(&kept.d1[l - 1]));
        }
        u_rev.push(u);
    }
    u_rev.reverse();
    kept.u = u_rev;
    let w0 = p[layers[0].weight_index()];
    let s = match &kept.g[0] {
        Some(g1) => g1.matmul_t(w0, false, false),
        None => kept.u[0].mul_matmul_t(&kept.d1[0], w0, false),
    };
    (s, kept)
}

/// The parameter VJP of the score for the cotangent `r` (the formulas of the module doc),
/// one entry per parameter (`None` for the output bias, on which the score does not depend).
fn score_param_vjp(
    layers: &[Linear],
    p: &[&Tensor],
    kept: Kept,
    r: &Tensor,
) -> Vec<Option<Tensor>> {
    let n_hidden = layers.len() - 1;
    let Kept {
        inputs,
        d1,
        d2,
        top_q,
        u,
        mut g,
    } = kept;
    let mut grads: Vec<Option<Tensor>> = vec![None; p.len()];
    let weight = |l: usize| p[layers[l].weight_index()];
    // the score's own computation reversed: W̄ₗ's first terms and the āₗ terms tₗ
    let mut gbar = r.matmul_t(weight(0), false, true);
    let mut t = Vec::with_capacity(n_hidden - 1);
    let mut w_score: Vec<Option<Tensor>> = vec![None; n_hidden];
    for l in 1..n_hidden {
        let (ubar, tl, g_formed) =
            gbar.silu_score_backward_terms(&u[l - 1], &d1[l - 1], &d2[l - 1], g[l - 1].is_none());
        if let Some(gl) = g_formed {
            g[l - 1] = Some(gl);
        }
        t.push(tl);
        let above = g[l].as_ref().expect("formed in the forward pass");
        w_score[l] = Some(above.matmul_t(&ubar, true, false));
        gbar = ubar.matmul_t(weight(l), false, true);
    }
    let g1 = g[0].as_ref().expect("formed in the forward pass or above");
    w_score[0] = Some(g1.matmul_t(r, true, false));
    // the top layer: w̄_L and ā_L
    let top = layers[n_hidden];
    let [abar, sum_gd, sum_a] = gbar.silu_top_backward(&d1[n_hidden - 1], &top_q);
    grads[top.weight_index()] = Some(sum_gd.neg().reshape(p[top.weight_index()].shape()));
    let top = TopCotangents {
        abar,
        bias: sum_a,
        weights: w_score,
        pre_activations: t,
    };
    down_the_layers(layers, p, &inputs, &d1, top, &mut grads);
    grads
}

/// What reverse mode carries into the forward pass's layers from above: the top hidden
/// layer's pre-activation cotangent ā_L and its bias's Σ_rows ā_L, and (the score's VJP)
/// terms its own reversal already gave: weight cotangents by layer and each lower hidden
/// layer's āₗ term.
struct TopCotangents {
    abar: Tensor,
    bias: Tensor,
    weights: Vec<Option<Tensor>>,
    pre_activations: Vec<Tensor>,
}

/// Reverse mode down the layers' affine maps, l = L, …, 1: b̄ₗ₋₁ = Σ_rows āₗ,
/// W̄ₗ₋₁ = āₗᵀhₗ₋₁ (+ the carried term), āₗ₋₁ = (āₗWₗ₋₁) ⊙ dₗ₋₁ (+ the carried term).
fn down_the_layers(
    layers: &[Linear],
    p: &[&Tensor],
    inputs: &[Tensor],
    d1: &[Tensor],
    top: TopCotangents,
    grads: &mut [Option<Tensor>],
) {
    let TopCotangents {
        mut abar,
        bias,
        mut weights,
        pre_activations,
    } = top;
    let mut bias_top = Some(bias);
    for l in (1..=layers.len() - 1).rev() {
        let layer = layers[l - 1];
        if let Some(b) = layer.bias_index() {
            grads[b] = Some(match bias_top.take() {
                Some(sum) => sum,
                None => abar.sum_axes(&[0], false),
            });
        }
        // a carried term is accumulated onto by the GEMM, in its own buffer
        let wl = match weights.get_mut(l - 1).and_then(Option::take) {
            Some(w) => abar.matmul_t_acc(&inputs[l - 1], true, false, w),
            None => abar.matmul_t(&inputs[l - 1], true, false),
        };
        grads[layer.weight_index()] = Some(wl);
        if l > 1 {
            abar = abar.matmul_t_mul(p[layer.weight_index()], false, false, &d1[l - 2]);
            if let Some(t) = pre_activations.get(l - 2) {
                abar.add_assign(t);
            }
        }
    }
}

/// What the energy's forward pass keeps for its parameter VJP.
struct KeptEnergy {
    /// hₗ for l = 0..=L (h₀ = x): the input of every layer's affine map.
    inputs: Vec<Tensor>,
    /// dₗ for every hidden layer.
    d1: Vec<Tensor>,
}

/// E(x) per row [B], keeping every hidden layer's input and silu′.
fn energy_keeping(layers: &[Linear], p: &[&Tensor], x: &Tensor) -> (Tensor, KeptEnergy) {
    let n_hidden = layers.len() - 1;
    let mut kept = KeptEnergy {
        inputs: vec![x.clone()],
        d1: Vec::with_capacity(n_hidden),
    };
    for (i, l) in layers[..n_hidden].iter().enumerate() {
        let (h, d) = affine(&kept.inputs[i], l, p).silu_and_d1();
        kept.inputs.push(h);
        kept.d1.push(d);
    }
    let e = affine(&kept.inputs[n_hidden], &layers[n_hidden], p);
    (e.reshape(&[x.shape()[0]]), kept)
}

/// The parameter gradient of Σ_b c_b E(x_b) (c = `c` [B]), one entry per parameter:
/// b̄_L = Σ c, w̄_L = cᵀh_L, ā_L = c ⊗ w_L ⊙ d_L, then down the layers b̄ₗ₋₁ = Σ_rows āₗ,
/// W̄ₗ₋₁ = āₗᵀhₗ₋₁ and āₗ₋₁ = (āₗWₗ₋₁) ⊙ dₗ₋₁ — reverse mode with silu′ kept from the forward
/// pass instead of σ evaluated again.
fn energy_param_vjp(
    layers: &[Linear],
    p: &[&Tensor],
    kept: KeptEnergy,
    c: &Tensor,
) -> Vec<Option<Tensor>> {
    let n_hidden = layers.len() - 1;
    let KeptEnergy { inputs, d1 } = kept;
    let mut grads: Vec<Option<Tensor>> = vec![None; p.len()];
    let top = layers[n_hidden];
    let rows = c.numel();
    if let Some(b) = top.bias_index() {
        grads[b] = Some(c.sum_axes(&[0], false).reshape(p[b].shape()));
    }
    grads[top.weight_index()] = Some(c.reshape(&[rows, 1]).matmul_t(
        &inputs[n_hidden],
        true,
        false,
    ));
    let [abar, sum] = c.silu_energy_top_backward(p[top.weight_index()], &d1[n_hidden - 1]);
    let top = TopCotangents {
        abar,
        bias: sum,
        weights: Vec::new(),
        pre_activations: Vec::new(),
    };
    down_the_layers(layers, p, &inputs, &d1, top, &mut grads);
    grads
}

/// The parameters' values, in the model's order.
type Values<'a> = &'a [&'a Tensor];
/// One cotangent per parameter (`None`: no effect on the output).
type ParamGrads = Vec<Option<Tensor>>;
/// A closed form's forward pass: its value and what its VJP keeps.
type Keeping<K> = fn(&[Linear], Values, &[Tensor]) -> (Tensor, K);

/// A closed form as a tape node: the forward pass keeping its factors, the parameter VJP
/// from them, and the same value built from the layers' own ops (for recorded sweeps).
/// The forms take the node's constants: x, then (for the score's JVPs) the tangents.
struct ClosedForm<K> {
    keeping: Keeping<K>,
    param_vjp: fn(&[Linear], Values, K, &Tensor) -> ParamGrads,
    on_tape: fn(&[Linear], &Tape, &[Tensor], &[Var]) -> Var,
}

/// Records `form`'s value at the constant `x` (and `tangents`, constants too) as one node over
/// the parameters `p`. A plain sweep takes the closed-form VJP (the factors kept serve one
/// sweep; another forms them again); a sweep that records its backward pass (a second
/// parameter derivative) gets the VJP of the layers' tape graph, built for it then,
/// differentiable to any order.
fn record<K: 'static>(
    form: ClosedForm<K>,
    layers: &[Linear],
    x: &Var,
    tangents: &[Tensor],
    p: &[Var],
) -> Var {
    assert!(!x.is_tracked(), "a closed-form node takes a constant x");
    let values: Vec<&Tensor> = p.iter().map(|v| v.value()).collect();
    let consts: Vec<Tensor> = std::iter::once(x.value().clone())
        .chain(tangents.iter().cloned())
        .collect();
    let (value, kept) = (form.keeping)(layers, &values, &consts);
    let layers = layers.to_vec();
    let (tape, x) = (x.tape().clone(), consts);
    let kept = std::cell::RefCell::new(Some(kept));
    let inputs: Vec<&Var> = p.iter().collect();
    tape.record(value, &inputs, move |r, ins, _, need| {
        let tape = r.tape();
        if tape.grad_enabled() {
            let out = (form.on_tape)(&layers, tape, &x, ins);
            let wrt: Vec<&Var> = ins.iter().collect();
            return vjp(&out, &wrt, r, GradOpts::create_graph())
                .into_iter()
                .zip(need)
                .map(|(g, &n)| g.filter(|_| n))
                .collect();
        }
        let values: Vec<&Tensor> = ins.iter().map(|v| v.value()).collect();
        let kept = kept
            .borrow_mut()
            .take()
            .unwrap_or_else(|| (form.keeping)(&layers, &values, &x).1);
        (form.param_vjp)(&layers, &values, kept, r.value())
            .into_iter()
            .zip(need)
            .map(|(g, &n)| g.filter(|_| n).map(|g| r.constant(g)))
            .collect()
    })
}

/// E(x) [B] on the tape from the layers' ops, x a constant.
fn energy_on_tape(layers: &[Linear], tape: &Tape, consts: &[Tensor], p: &[Var]) -> Var {
    let x = tape.constant(consts[0].clone());
    forward_layers(layers, Activation::Silu, &x, p).reshape(&[x.shape()[0]])
}

/// s(x) on the tape from the layers' ops (−∇ₓE with its graph).
fn score_on_tape(layers: &[Linear], tape: &Tape, consts: &[Tensor], p: &[Var]) -> Var {
    let x = tape.var(consts[0].clone());
    let e = forward_layers(layers, Activation::Silu, &x, p).reshape(&[x.shape()[0]]);
    score_from_energy(&e, &x, GradOpts::create_graph())
}

/// E(x) [B] of an SiLU MLP at a constant `x`, recorded as one node whose parameter VJP is
/// [`energy_param_vjp`]; `applies` must hold for `x` and the values of `p`, and some
/// parameter must be tracked.
pub(crate) fn energy_node(layers: &[Linear], x: &Var, p: &[Var]) -> Var {
    let form = ClosedForm {
        keeping: |layers, p, consts| energy_keeping(layers, p, &consts[0]),
        param_vjp: energy_param_vjp,
        on_tape: energy_on_tape,
    };
    record(form, layers, x, &[], p)
}

/// The score s(x) = −∇ₓE(x) of an SiLU MLP at a constant `x`, recorded as one node whose
/// parameter VJP is [`score_param_vjp`]; `applies` must hold for `x` and the values of `p`.
pub(crate) fn score_node(layers: &[Linear], x: &Var, p: &[Var]) -> Var {
    let form = ClosedForm {
        keeping: |layers, p, consts| score_keeping(layers, p, &consts[0]),
        param_vjp: score_param_vjp,
        on_tape: score_on_tape,
    };
    record(form, layers, x, &[], p)
}

mod jvp;
pub(crate) use jvp::score_jvp_node;

#[cfg(test)]
mod tests;
