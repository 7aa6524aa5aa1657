//! Times normal draws at a PCD step's size (20 Langevin steps of 256 chains × 64 dims).
use ebm_core::{DType, Rng};
fn main() {
    let mut r = Rng::new(0);
    let n = 256 * 64;
    let reps = 2000;
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        drop(r.normal(&[n], DType::F32));
    }
    let per = t0.elapsed().as_secs_f64() * 1e9 / (reps * n) as f64;
    println!("f32 normals: {per:.2} ns each");
}
