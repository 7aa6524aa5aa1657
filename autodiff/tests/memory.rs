//! Bounded memory: 10,000 Langevin steps of the M2 MLP with a fresh tape per step neither grow
//! the tape nor leak tensor buffers.
//!
//! This file holds a single test on purpose: `live_tensor_bytes()` / `live_tensor_buffers()`
//! are process-wide counters, and tests of one binary run on parallel threads.

use ebm_autodiff::{grad, Tape, Var};
use ebm_core::{live_tensor_buffers, live_tensor_bytes, DType, Rng, Tensor};
use safetensors::{Dtype, SafeTensors};

const PARAMS: [&str; 6] = [
    "l0.weight",
    "l0.bias",
    "l1.weight",
    "l1.bias",
    "l2.weight",
    "l2.bias",
];

/// The named f32 tensors of a safetensors file under `tests/data/`.
fn load_f32(file: &str, names: &[&str]) -> Vec<Tensor> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("parsing {path}: {e}"));
    names
        .iter()
        .map(|&name| {
            let view = st
                .tensor(name)
                .unwrap_or_else(|e| panic!("{path}: {name}: {e}"));
            assert_eq!(view.dtype(), Dtype::F32, "{path}: {name} is not f32");
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Tensor::from_vec(data, view.shape())
        })
        .collect()
}

/// `E(x) = l2(silu(l1(silu(l0(x)))))` with `nn.Linear` layout (`x·Wᵀ + b`), one scalar per row.
fn energy(x: &Var, p: &[Var]) -> Var {
    let linear = |h: &Var, w: &Var, b: &Var| h.matmul_t(w, false, true).add(b);
    let h = linear(x, &p[0], &p[1]).silu();
    let h = linear(&h, &p[2], &p[3]).silu();
    linear(&h, &p[4], &p[5]).reshape(&[x.shape()[0]])
}

#[test]
fn langevin_with_a_tape_per_step_has_bounded_memory() {
    const STEPS: usize = 10_000;
    const EPS: f64 = 0.01;
    let weights = load_f32("M2_weights.safetensors", &PARAMS);
    let mut x = load_f32("M2_inputs.safetensors", &["x"]).remove(0); // [16, 2] f32
    let mut rng = Rng::new(2024);
    let before = (live_tensor_bytes(), live_tensor_buffers());

    let mut tape_len = None;
    let mut at_100 = None;
    for step in 1..=STEPS {
        {
            let tape = Tape::new();
            let p: Vec<Var> = weights.iter().map(|w| tape.constant(w.clone())).collect();
            let xv = tape.var(x.clone());
            let grad_e = grad(&energy(&xv, &p).sum_all(), &[&xv]).remove(0);
            // x' = x − ½eps²∇ₓE + eps·z, a plain tensor off the tape.
            let z = rng.normal(x.shape(), DType::F32);
            x = x
                .sub(&grad_e.value().mul_scalar(0.5 * EPS * EPS))
                .add(&z.mul_scalar(EPS));
            let len = tape.len();
            assert_eq!(
                *tape_len.get_or_insert(len),
                len,
                "tape size changed at step {step}"
            );
        } // the step's tape and every Var on it are dropped here
        if step == 100 {
            at_100 = Some((live_tensor_bytes(), live_tensor_buffers()));
        }
    }
    let at_end = (live_tensor_bytes(), live_tensor_buffers());
    let at_100 = at_100.unwrap();
    eprintln!(
        "tape len per step {}; live (bytes, buffers): before step 1 {before:?}, \
         after step 100 {at_100:?}, after step {STEPS} {at_end:?}",
        tape_len.unwrap()
    );
    assert_eq!(
        at_100, at_end,
        "live tensor (bytes, buffers) grew between step 100 and step {STEPS}"
    );
    assert!(
        x.to_vec_f64().iter().all(|v| v.is_finite()),
        "the chain diverged"
    );
}
