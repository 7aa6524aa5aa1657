//! SiLU's derivative rules take a fused one-pass kernel in reverse mode's last pass (nothing
//! recorded, inputs large enough to keep σ). They must give the bits the composable rules give
//! when the same pass is recorded (`create_graph`).
use ebm_autodiff::{grad_with, GradOpts, Tape};
use ebm_core::{DType, Rng};

#[test]
fn fused_last_pass_equals_recorded_pass() {
    let mut rng = Rng::new(17);
    for dtype in [DType::F32, DType::F64] {
        let tape = Tape::new();
        // large enough (≥ 4096 elements) for SiLU to keep σ
        let x = tape.var(rng.normal(&[64, 128], dtype).mul_scalar(2.0));
        let w = tape.var(rng.normal(&[64, 128], dtype));
        let v = tape.var(rng.normal(&[64, 128], dtype));
        // second- and third-order SiLU terms, as a score-matching loss makes them
        let h = x.silu();
        let g1 = w.mul_silu_d1(&x); // w ⊙ silu′(x)
        let g2 = w.mul2_silu_d(&v, &x, 2); // w ⊙ v ⊙ silu″(x)
        let loss = h.mul(&g1).add(&g2.square()).sum_all();
        let wrt = [&x, &w, &v];
        let plain = grad_with(&loss, &wrt, GradOpts::default());
        let recorded = grad_with(&loss, &wrt, GradOpts::create_graph());
        for (p, r) in plain.iter().zip(&recorded) {
            assert_eq!(p.value().to_vec_f64(), r.value().to_vec_f64(), "{dtype}");
        }
    }
}
