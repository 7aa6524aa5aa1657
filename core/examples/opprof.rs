use ebm_core::{DType, Rng};
use std::time::Instant;
fn t(name: &str, f: impl Fn()) {
    for _ in 0..3 {
        f();
    }
    let n = 50;
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name}: {:.1} us",
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
fn main() {
    let mut r = Rng::new(0);
    let x = r.normal(&[1024, 128], DType::F32);
    let x2 = r.normal(&[1024, 2], DType::F32);
    let w0 = r.normal(&[128, 2], DType::F32);
    let w1 = r.normal(&[128, 128], DType::F32);
    let w2 = r.normal(&[1, 128], DType::F32);
    let b = r.normal(&[128], DType::F32);
    t("silu", || {
        x.silu();
    });
    t("exp", || {
        x.exp();
    });
    t("mul", || {
        x.mul(&x);
    });
    t("add_bias", || {
        x.add(&b);
    });
    t("silu_d1 unary", || {
        x.unary(ebm_core::UnaryOp::SiluD1);
    });
    t("mul_silu_d1", || {
        x.binary(&x, ebm_core::BinaryOp::MulSiluD1);
    });
    t("mm K=2 x@w0^T", || {
        x2.matmul_t(&w0, false, true);
    });
    t("mm 128 x@w1^T", || {
        x.matmul_t(&w1, false, true);
    });
    t("mm N=1 x@w2^T", || {
        x.matmul_t(&w2, false, true);
    });
    t("mm g@w2 [1024,1]@[1,128]", || {
        let g = r.clone().normal(&[1024, 1], DType::F32);
        g.matmul(&w2);
    });
    t("mm gT@x [128,1024]@[1024,128]", || {
        x.matmul_t(&x, true, false);
    });
    t("mm gT@x2 [128,1024]@[1024,2]", || {
        x.matmul_t(&x2, true, false);
    });
    t("sum axis0", || {
        x.sum_axes(&[0], false);
    });
}
