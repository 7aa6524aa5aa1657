//! conv2d against the GEMM of its im2col shape (issue 14 item 5): for the main 3×3 conv of each
//! conv bench model, ebm's `conv2d` forward, and its backward (input gradient by
//! `conv_transpose2d` plus weight gradient by `conv2d_weight`), timed beside ebm's own `matmul`
//! of the same M×K×N (M = N·Ho·Wo output pixels, K = C·kh·kw, N = O channels): the forward
//! product [M, K]·[K, N], and the backward products [M, N]·[K, N]ᵀ (input side) and
//! [M, K]ᵀ·[M, N] (weight side). The GEMM is the limit an im2col conv can reach: the ratio
//! conv / GEMM says what the conv's own layout work costs (goal ≤ 1.3).
//!
//! `cargo run --release -p ebm-bench --bin convgemm -- [--shape C8|R28|R28s1|all] [--threads N]
//! [--reps N]` prints one JSON line per shape (and a summary line per shape on stderr). Pin it
//! as bench/run.sh does: `taskset -c 0` for 1 thread, `taskset -c 0-1` for 2.

use ebm_core::{cpu_model, gemm_path, Conv2dSpec, DType, Rng, Tensor};
use std::time::Instant;

/// A named conv shape: input [n, c, h, w], o output channels, k×k kernel, padding k/2.
struct Shape {
    name: &'static str,
    what: &'static str,
    x: [usize; 4],
    o: usize,
    k: usize,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "C8",
        what: "C8's stage-0 conv 32→32 at 8×8, batch 128",
        x: [128, 32, 8, 8],
        o: 32,
        k: 3,
    },
    Shape {
        name: "R28",
        what: "R28's stage-0 block conv 16→16 at 28×28, batch 64",
        x: [64, 16, 28, 28],
        o: 16,
        k: 3,
    },
    Shape {
        name: "R28s1",
        what: "R28's stage-1 block conv 32→32 at 14×14, batch 64",
        x: [64, 32, 14, 14],
        o: 32,
        k: 3,
    },
];

fn usage(msg: &str) -> ! {
    eprintln!("convgemm: {msg}");
    eprintln!("usage: convgemm [--shape C8|R28|R28s1|all] [--threads N] [--reps N>=5]");
    std::process::exit(2)
}

/// Median seconds of `reps` calls of `f` after 3 untimed ones.
fn time(reps: usize, mut f: impl FnMut() -> Tensor) -> f64 {
    for _ in 0..3 {
        std::hint::black_box(f());
    }
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(f());
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

fn run(s: &Shape, threads: usize, reps: usize) -> serde_json::Value {
    let mut rng = Rng::new(0);
    let [n, c, h, w] = s.x;
    let spec = Conv2dSpec::new().padding(s.k / 2);
    let x = rng.normal(&s.x, DType::F32);
    let wt = rng.normal(&[s.o, c, s.k, s.k], DType::F32);
    let gy = rng.normal(&[n, s.o, h, w], DType::F32);
    let (m, k, nn) = (n * h * w, c * s.k * s.k, s.o);
    // the im2col operands: patches [M, K], weight [K, N], output gradient [M, N]
    let cols = rng.normal(&[m, k], DType::F32);
    let wm = rng.normal(&[k, nn], DType::F32);
    let gm = rng.normal(&[m, nn], DType::F32);
    assert_eq!(x.conv2d(&wt, spec).shape(), gy.shape());
    let conv_fwd = time(reps, || x.conv2d(&wt, spec));
    let conv_dx = time(reps, || gy.conv_transpose2d(&wt, spec, [0, 0]));
    let conv_dw = time(reps, || x.conv2d_weight(&gy, spec, [s.k, s.k]));
    let gemm_fwd = time(reps, || cols.matmul(&wm));
    let gemm_dx = time(reps, || gm.matmul_t(&wm, false, true));
    let gemm_dw = time(reps, || cols.matmul_t(&gm, true, false));
    let gflop = 2.0 * (m * k * nn) as f64 * 1e-9;
    let (conv_bwd, gemm_bwd) = (conv_dx + conv_dw, gemm_dx + gemm_dw);
    eprintln!(
        "{:6} M×K×N = {m}×{k}×{nn}, {threads} thread(s): conv/GEMM forward {:.2} ({:.2} / {:.2} ms), \
         input grad {:.2}, weight grad {:.2}, forward+backward {:.2}",
        s.name,
        conv_fwd / gemm_fwd,
        conv_fwd * 1e3,
        gemm_fwd * 1e3,
        conv_dx / gemm_dx,
        conv_dw / gemm_dw,
        (conv_fwd + conv_bwd) / (gemm_fwd + gemm_bwd)
    );
    serde_json::json!({
        "bench": "conv_gemm",
        "shape": s.name,
        "what": s.what,
        "threads": threads,
        "cpu": cpu_model(),
        "isa": gemm_path().name(),
        "m": m, "k": k, "n": nn,
        "gflop_per_product": gflop,
        "conv_fwd_s": conv_fwd, "gemm_fwd_s": gemm_fwd, "fwd_ratio": conv_fwd / gemm_fwd,
        "conv_dx_s": conv_dx, "gemm_dx_s": gemm_dx, "dx_ratio": conv_dx / gemm_dx,
        "conv_dw_s": conv_dw, "gemm_dw_s": gemm_dw, "dw_ratio": conv_dw / gemm_dw,
        "bwd_ratio": conv_bwd / gemm_bwd,
        "fwd_bwd_ratio": (conv_fwd + conv_bwd) / (gemm_fwd + gemm_bwd),
        "conv_fwd_gflops": gflop / conv_fwd,
        "gemm_fwd_gflops": gflop / gemm_fwd,
    })
}

ebm_core::use_mimalloc!();

fn main() {
    let (mut shape, mut threads, mut reps) = ("all".to_string(), 1usize, 50usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let mut num = |f: &str| -> usize {
            let v = value();
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{f} takes a whole number, got `{v}`")))
        };
        match flag.as_str() {
            "--threads" => threads = num("--threads"),
            "--reps" => reps = num("--reps"),
            "--shape" => shape = value(),
            other => usage(&format!("unknown flag `{other}`")),
        }
    }
    if threads == 0 || reps < 5 {
        usage("--threads must be ≥ 1 and --reps ≥ 5");
    }
    let picked: Vec<&Shape> = SHAPES
        .iter()
        .filter(|s| shape == "all" || s.name == shape)
        .collect();
    if picked.is_empty() {
        usage(&format!("unknown shape `{shape}`"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap_or_else(|e| usage(&format!("cannot start {threads} threads: {e}")));
    // on a pool thread, as ebm-bench runs its steps: a split product's first block runs there
    pool.install(|| {
        for s in picked {
            println!("{}", run(s, threads, reps));
        }
    });
}
