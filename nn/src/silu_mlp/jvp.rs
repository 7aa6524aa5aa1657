//! The score s(x) of an SiLU MLP energy with its directional derivatives ṡ = ∇ₓs(x)·v along
//! M tangents v (forward mode through the score's own computation), as one tape node over the
//! parameters with its parameter VJP written out: what sliced score matching (Song, Garg, Shi &
//! Ermon 2019) trains with, vᵀ∇ₓs v = vᵀṡ. On a tape the same quantity is reverse mode twice
//! through x (∇ₓ(vᵀs), the Jacobian of a score being symmetric) and a third sweep for the
//! parameters; here every σ-derived factor (silu′, silu″, silu‴) is formed once and no graph is
//! recorded.
//!
//! Notation of the module above (dₗ, eₗ = silu′, silu″ (aₗ)) and fₗ = silu‴(aₗ); Σₘ runs over
//! the tangents. In code a quantity and its tangents are one tensor stacked by rows,
//! [z; ż₁; …; ż_M], so each product by a weight below is one GEMM for all of them, and each
//! weight's aᵀb + ȧᵀḃ one product over the stacked rows.
//!
//! Forward: ȧ₁ = vW₀ᵀ; hₗ = silu(aₗ), ḣₗ = dₗ ⊙ ȧₗ, ȧₗ₊₁ = ḣₗWₗᵀ; the score's chain
//! g_L = −w_L ⊙ d_L, ġ_L = −w_L ⊙ e_L ⊙ ȧ_L; uₗ = gₗ₊₁Wₗ, u̇ₗ = ġₗ₊₁Wₗ, gₗ = uₗ ⊙ dₗ,
//! ġₗ = u̇ₗ ⊙ dₗ + uₗ ⊙ eₗ ⊙ ȧₗ; s = g₁W₀, ṡ = ġ₁W₀.
//!
//! Reverse, for cotangents r of s and ṙ of ṡ:
//! - ḡ₁ = rW₀ᵀ, ġ̄₁ = ṙW₀ᵀ, W̄₀ ∋ g₁ᵀr + ġ₁ᵀṙ;
//! - up the chain, l = 1, …, L−1, with A = Σₘ ġ̄ₗ ⊙ ȧₗ and C = Σₘ ġ̄ₗ ⊙ u̇ₗ: u̇̄ₗ = ġ̄ₗ ⊙ dₗ,
//!   ūₗ = ḡₗ ⊙ dₗ + eₗ ⊙ A; the pre-activation terms tₗ = (ḡₗ ⊙ uₗ + C) ⊙ eₗ + A ⊙ uₗ ⊙ fₗ
//!   and ǡₗ ∋ ġ̄ₗ ⊙ uₗ ⊙ eₗ; W̄ₗ ∋ gₗ₊₁ᵀūₗ + ġₗ₊₁ᵀu̇̄ₗ; ḡₗ₊₁ = ūₗWₗᵀ, ġ̄ₗ₊₁ = u̇̄ₗWₗᵀ;
//! - the top, A = Σₘ ġ̄_L ⊙ ȧ_L: ā_L = −w_L ⊙ (ḡ_L ⊙ e_L + A ⊙ f_L), ǡ_L = −ġ̄_L ⊙ w_L ⊙ e_L,
//!   w̄_L = −Σ_rows (ḡ_L ⊙ d_L + e_L ⊙ A) (b_L has no effect);
//! - down the layers, l = L, …, 1: b̄ₗ₋₁ = Σ_rows āₗ, W̄ₗ₋₁ ∋ āₗᵀhₗ₋₁ + ǡₗᵀḣₗ₋₁ (h₀ = x,
//!   ḣ₀ = v), and with h̄ = āₗWₗ₋₁, ḣ̄ = ǡₗWₗ₋₁: āₗ₋₁ = h̄ ⊙ d + (Σₘ ḣ̄ ⊙ ȧ) ⊙ e + tₗ₋₁,
//!   ǡₗ₋₁ = ḣ̄ ⊙ d + (its chain term).
//!
//! The element-wise passes are ebm-core's `silu_*jvp*` (one per step above); tests in `tests.rs`
//! check values and parameter gradients (and Hessian products through a recorded sweep)
//! against the tape.

use super::{record, ClosedForm, ParamGrads, Values};
use crate::activation::Activation;
use crate::linear::Linear;
use crate::mlp::forward_layers;
use crate::model::score_from_energy;
use ebm_autodiff::{grad_with, GradOpts, Tape, Var};
use ebm_core::Tensor;

/// What the forward pass keeps for the parameter VJP (index l − 1 for hidden layer l). A
/// quantity and its tangents are kept stacked by rows, [z; ż₁; …; ż_M], as the products form
/// them (one GEMM by a weight for all of them).
struct Kept {
    /// [hₗ₋₁; ḣₗ₋₁]: every hidden layer's stacked input ([x; v] for the first).
    inputs: Vec<Tensor>,
    /// dₗ, eₗ, fₗ of every hidden layer ([rows, w]).
    d: Vec<Tensor>,
    e: Vec<Tensor>,
    f: Vec<Tensor>,
    /// [aₗ − bₗ₋₁; ȧₗ]: the stacked product (its tangent rows are ȧₗ).
    a: Vec<Tensor>,
    /// [uₗ; u̇ₗ] for l < L.
    u: Vec<Tensor>,
    /// [gₗ; ġₗ] of every hidden layer.
    g: Vec<Tensor>,
    /// −w_L.
    neg_w: Tensor,
}

/// [s; ṡ₁; …; ṡ_M] stacked by rows, keeping the factors; `consts` is [x, v₁, …, v_M].
fn keeping(layers: &[Linear], p: Values, consts: &[Tensor]) -> (Tensor, Kept) {
    let n_hidden = layers.len() - 1;
    let rows = consts[0].shape()[0];
    let weight = |l: usize| p[layers[l].weight_index()];
    let bias = |l: usize| layers[l].bias_index().map(|b| p[b]);
    let mut k = Kept {
        inputs: vec![Tensor::concat(consts, 0)],
        d: Vec::with_capacity(n_hidden),
        e: Vec::with_capacity(n_hidden),
        f: Vec::with_capacity(n_hidden),
        a: Vec::with_capacity(n_hidden),
        u: Vec::new(),
        g: Vec::new(),
        neg_w: weight(n_hidden).neg(),
    };
    let mut g_top = None;
    for i in 0..n_hidden {
        let a = k.inputs[i].matmul_t(weight(i), false, true);
        let [next, d, e, f] = if i + 1 < n_hidden {
            a.silu_jvp_forward(bias(i), rows)
        } else {
            a.silu_top_jvp(bias(i), &k.neg_w, rows)
        };
        if i + 1 < n_hidden {
            k.inputs.push(next);
        } else {
            g_top = Some(next);
        }
        k.d.push(d);
        k.e.push(e);
        k.f.push(f);
        k.a.push(a);
    }
    // the score's chain from the top down, then put in layer order
    let mut g = g_top.expect("a top layer");
    let mut chain = Vec::with_capacity(n_hidden);
    for l in (1..n_hidden).rev() {
        let u = g.matmul_t(weight(l), false, false);
        let below = u.silu_chain_jvp(&k.d[l - 1], &k.e[l - 1], &k.a[l - 1]);
        chain.push((u, std::mem::replace(&mut g, below)));
    }
    let s = g.matmul_t(weight(0), false, false);
    k.g.push(g);
    for (u, g) in chain.into_iter().rev() {
        k.u.push(u);
        k.g.push(g);
    }
    (s, k)
}

/// The parameter VJP for the cotangent `r` of [s; ṡ₁; …] (the reverse pass of the module doc),
/// every product over the stacked rows: a weight's terms aᵀb + ȧᵀḃ are one GEMM.
fn param_vjp(layers: &[Linear], p: Values, k: Kept, r: &Tensor) -> ParamGrads {
    let n_hidden = layers.len() - 1;
    let weight = |l: usize| p[layers[l].weight_index()];
    let mut grads: ParamGrads = vec![None; p.len()];
    // W̄ₗ's terms from the score's chain, by layer
    let mut from_chain = Vec::with_capacity(n_hidden);
    from_chain.push(k.g[0].matmul_t(r, true, false));
    let mut gb = r.matmul_t(weight(0), false, true);
    let mut terms = Vec::with_capacity(n_hidden - 1);
    for l in 1..n_hidden {
        let i = l - 1;
        let [ub, t, ats] = gb.silu_chain_jvp_backward(&k.d[i], &k.e[i], &k.f[i], &k.u[i], &k.a[i]);
        from_chain.push(k.g[l].matmul_t(&ub, true, false));
        gb = ub.matmul_t(weight(l), false, true);
        terms.push((t, ats));
    }
    let top = n_hidden - 1;
    let [mut ab, v_bar, mut bias] =
        gb.silu_top_jvp_backward(&k.d[top], &k.e[top], &k.f[top], &k.a[top], &k.neg_w);
    let w_top = layers[n_hidden].weight_index();
    grads[w_top] = Some(v_bar.neg().reshape(p[w_top].shape()));
    for l in (1..=n_hidden).rev() {
        let layer = layers[l - 1];
        if let Some(b) = layer.bias_index() {
            grads[b] = Some(bias.reshape(p[b].shape()));
        }
        // the layers are walked downwards: layer l − 1's chain term is the last one left
        let chain = from_chain.pop().expect("a chain term for every layer");
        grads[layer.weight_index()] = Some(ab.matmul_t_acc(&k.inputs[l - 1], true, false, chain));
        if l > 1 {
            let i = l - 2;
            let hb = ab.matmul_t(weight(l - 1), false, false);
            let (t, ats) = &terms[i];
            [ab, bias] = hb.silu_layer_jvp_backward(&k.d[i], &k.e[i], &k.a[i], t, ats);
        }
    }
    grads
}

/// The same [s; ṡ₁; …] from the layers' ops on the tape: s = −∇ₓE with its graph and
/// ∇ₓ(Σ vₘᵀs) by reverse mode again (= ∇ₓs·vₘ, the Jacobian being symmetric).
fn on_tape(layers: &[Linear], tape: &Tape, consts: &[Tensor], p: &[Var]) -> Var {
    let x = tape.var(consts[0].clone());
    let e = forward_layers(layers, Activation::Silu, &x, p).reshape(&[x.shape()[0]]);
    let s = score_from_energy(&e, &x, GradOpts::create_graph());
    let mut parts = vec![s.clone()];
    for v in &consts[1..] {
        let vs = s.mul_const(v).sum_all();
        parts.push(grad_with(&vs, &[&x], GradOpts::create_graph()).remove(0));
    }
    Var::concat(&parts, 0)
}

/// s(x) and ∇ₓs(x)·vₘ of an SiLU MLP at a constant `x` [B, d] for tangents `v` (each [B, d]),
/// recorded as one node [s; ṡ₁; …; ṡ_M] ([(1 + M)·B, d]) whose parameter VJP is the closed
/// form above; `applies` must hold.
pub(crate) fn score_jvp_node(layers: &[Linear], x: &Var, v: &[Tensor], p: &[Var]) -> Var {
    assert!(!v.is_empty(), "score_jvp_node: at least one tangent");
    let form = ClosedForm {
        keeping,
        param_vjp,
        on_tape,
    };
    record(form, layers, x, v, p)
}
