//! Times single ops at the fixture MLP's shapes (batch 1024, width 128): a quick look at
//! where a step's time goes, next to the criterion benches.
use ebm_core::{BinaryOp, DType, Rng, Tensor, UnaryOp};
use std::time::Instant;

fn t(name: &str, f: impl Fn()) {
    for _ in 0..5 {
        f();
    }
    let mut v: Vec<f64> = (0..40)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    println!("{name}: median {:.1} us, min {:.1} us", v[20], v[0]);
}

fn main() {
    let mut r = Rng::new(0);
    let x = r.normal(&[1024, 128], DType::F32);
    let g = r.normal(&[1024, 128], DType::F32);
    let w = r.normal(&[128, 128], DType::F32);
    t("x·Wᵀ (forward)", || {
        x.matmul_t(&w, false, true);
    });
    t("g·W (input grad)", || {
        g.matmul_t(&w, false, false);
    });
    t("gᵀ·x (weight grad, strided A)", || {
        g.matmul_t(&x, true, false);
    });
    t("gᵀ·x via explicit transpose", || {
        g.t().matmul_t(&x, false, false);
    });
    t("transpose alone", || {
        g.t();
    });
    let x2 = r.normal(&[1024, 2], DType::F32);
    let w2 = r.normal(&[128, 2], DType::F32);
    t("x·W0ᵀ with 2 input features", || {
        x2.matmul_t(&w2, false, true);
    });
    t(
        "gᵀ·x with 2 input features (first layer's weight gradient)",
        || {
            g.matmul_t(&x2, true, false);
        },
    );
    t("g·W0 to 2 features (input gradient)", || {
        g.matmul_t(&w2, false, false);
    });
    t("silu", || {
        x.silu();
    });
    t("exp", || {
        x.exp();
    });
    t("mul", || {
        x.mul(&g);
    });
    t("mul_silu_d1", || {
        g.binary(&x, ebm_core::BinaryOp::MulSiluD1);
    });
    // a sample of the op tables' other rows: parametric, comparison and broadcast forms
    for op in [
        UnaryOp::MulScalar(0.37),
        UnaryOp::AddScalar(0.37),
        UnaryOp::Affine(0.5, 2.0),
        UnaryOp::Powf(3.0),
        UnaryOp::Sigmoid,
        UnaryOp::Softplus,
        UnaryOp::Tanh,
    ] {
        t(&format!("{op:?}"), || {
            x.unary(op);
        });
    }
    let row = r.normal(&[1, 128], DType::F32);
    for op in [
        BinaryOp::Add,
        BinaryOp::Div,
        BinaryOp::Gt,
        BinaryOp::Maximum,
    ] {
        t(&format!("{op:?}"), || {
            x.binary(&g, op);
        });
        t(&format!("{op:?} with a broadcast row"), || {
            x.binary(&row, op);
        });
    }
    for rows in [256usize, 512, 1024, 2048] {
        let x = r.normal(&[rows, 128], DType::F32);
        let g = r.normal(&[rows, 128], DType::F32);
        t(&format!("per 1024 rows: mul at {rows} rows x 128"), || {
            for _ in 0..1024 / rows.min(1024) {
                x.mul(&g);
            }
        });
        t(
            &format!("per 1024 rows: mul_silu_d1 at {rows} rows"),
            || {
                for _ in 0..1024 / rows.min(1024) {
                    g.binary(&x, ebm_core::BinaryOp::MulSiluD1);
                }
            },
        );
    }
    t("sum over rows (bias grad)", || {
        g.sum_axes(&[0], false);
    });
    // SiLU's fused cotangent pass against the separate ops it replaces, at [512, 128]
    let n = |r: &mut Rng| r.normal(&[512, 128], DType::F32);
    let (c, a, b, x) = (n(&mut r), n(&mut r), n(&mut r), n(&mut r));
    let _ = x.silu();
    t("silu_chain_grads d2 (a, b)", || {
        Tensor::silu_chain_grads(&c, &a, Some(&b), &x, 2, [true; 3]).unwrap();
    });
    t("silu_chain_grads d1 (a)", || {
        Tensor::silu_chain_grads(&c, &a, None, &x, 1, [true, false, true]).unwrap();
    });
    t("separate: 2× mul2_silu_d2, mul, mul2_silu_d3", || {
        c.mul2_silu_d(&b, &x, 2);
        c.mul2_silu_d(&a, &x, 2);
        c.mul(&a).mul2_silu_d(&b, &x, 3);
    });
    t("MulSiluD1 with kept σ", || {
        c.binary(&x, BinaryOp::MulSiluD1);
    });
    t("mul", || {
        c.mul(&a);
    });
}
