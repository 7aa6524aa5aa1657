use ebm_core::{DType, Rng};
fn main() {
    let mut r = Rng::new(0);
    let rows: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(512);
    let x = r.normal(&[rows, 128], DType::F32);
    let g = r.normal(&[rows, 128], DType::F32);
    let which = std::env::args().nth(1).unwrap_or_default();
    let t0 = std::time::Instant::now();
    let reps = 20000 * 512 / rows;
    for _ in 0..reps {
        match which.as_str() {
            "exp" => drop(x.exp()),
            _ => drop(g.binary(&x, ebm_core::BinaryOp::MulSiluD1)),
        }
    }
    eprintln!(
        "{:.2} ns/elem",
        t0.elapsed().as_secs_f64() * 1e9 / (reps as f64 * rows as f64 * 128.0)
    );
}
