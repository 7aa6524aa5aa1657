//! conv2d's three ops against the raw GEMM of their im2col shapes, as the best of many
//! interleaved runs (robust on a shared machine): prints one ratio per op and layer.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p ebm-core --example conv_ratio`

use ebm_core::{Conv2dSpec, DType, Rng, Tensor};
use std::time::Instant;

/// Best wall time of `f` over `reps` runs, in ms.
fn best(reps: usize, mut f: impl FnMut() -> Tensor) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let cells: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
        ("8x8 c32 k3 N128", 128, 32, 8, 32, 3, 1),
        ("28x28 c32 k3 N64", 64, 32, 28, 32, 3, 1),
        ("14x14 c64 k1 N64", 64, 64, 14, 64, 1, 0),
        ("28x28 c1→32 k3 N64", 64, 1, 28, 32, 3, 1),
    ];
    println!("threads {}", rayon::current_num_threads());
    for &(name, n, ch, hw, o, k, p) in cells {
        let mut rng = Rng::new(0);
        let spec = Conv2dSpec::new().padding(p);
        let x = rng.normal(&[n, ch, hw, hw], DType::F32);
        let w = rng.normal(&[o, ch, k, k], DType::F32);
        let y = x.conv2d(&w, spec);
        let gy = rng.normal(y.shape(), DType::F32);
        let (kk, l) = (ch * k * k, n * y.shape()[2] * y.shape()[3]);
        let wm = rng.normal(&[o, kk], DType::F32);
        let cols = rng.normal(&[kk, l], DType::F32);
        let ym = rng.normal(&[o, l], DType::F32);
        let reps = 15;
        let (mut f, mut fg, mut i, mut ig, mut wg, mut wgg) = (
            f64::INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            f64::INFINITY,
        );
        for _ in 0..3 {
            f = f.min(best(reps, || x.conv2d(&w, spec)));
            fg = fg.min(best(reps, || wm.matmul(&cols)));
            i = i.min(best(reps, || gy.conv_transpose2d(&w, spec, [0, 0])));
            ig = ig.min(best(reps, || wm.matmul_t(&ym, true, false)));
            wg = wg.min(best(reps, || x.conv2d_weight(&gy, spec, [k, k])));
            wgg = wgg.min(best(reps, || ym.matmul_t(&cols, false, true)));
        }
        println!(
            "{name:<20} forward {f:7.2} ms / gemm {fg:7.2} = {:.2}x | input grad {i:7.2} / {ig:7.2} = {:.2}x | weight grad {wg:7.2} / {wgg:7.2} = {:.2}x",
            f / fg,
            i / ig,
            wg / wgg
        );
    }
}
