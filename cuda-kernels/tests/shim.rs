//! Kernel logic on the CPU: g++ compiles the very same `.cu` sources against shim/cuda_shim.h
//! (one OS thread per CUDA thread, `__syncthreads` a barrier, blocks in sequence), and the
//! results are compared with the Rust references — ebm-core's Rng and tensor ops, ebm-samplers'
//! ULA update, ebm-nn's MLP gradient. Where the kernel computes in the reference's order the
//! comparison is bit for bit. Launches use a few small blocks so that grid-stride loops, block
//! boundaries and partial tiles are all exercised while the tests stay fast.
//!
//! Needs g++ (C++20). Without it the tests print a skip line, except under CI=true (or
//! EBM_REQUIRE_CUDA_TOOLS=1), where they fail.

use ebm_core::{BinaryOp, DType, Rng, Tensor, UnaryOp};
use ebm_cuda::mlp;
use ebm_cuda::PhiloxState;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A built driver and the directory it exchanges files through.
struct Driver {
    bin: PathBuf,
    dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Compiles shim/drivers/`name`.cpp; `None` (after a skip line) when there is no C++ compiler.
fn build(name: &str) -> Option<Driver> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ebm-cuda-shim-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // every header NVRTC gets, including the op tables ebm-optable generates (not files)
    let include = dir.join("include");
    std::fs::create_dir_all(&include).unwrap();
    for (name, text) in ebm_cuda::kernels::HEADERS {
        std::fs::write(include.join(name), text).unwrap();
    }
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let bin = dir.join(name);
    let root = crate_dir();
    let out = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O2",
            "-pthread",
            "-Wall",
            "-Wno-unused-variable",
        ])
        .arg("-I")
        .arg(root.join("shim"))
        .arg("-I")
        .arg(root.join("kernels"))
        .arg("-I")
        .arg(&include)
        .arg(root.join("shim/drivers").join(format!("{name}.cpp")))
        .arg("-o")
        .arg(&bin)
        .output();
    match out {
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            if tools_required() {
                panic!("CI=true (or EBM_REQUIRE_CUDA_TOOLS=1) but the C++ compiler `{cxx}` could not run: {e}");
            }
            eprintln!("SKIP shim test {name}: no C++ compiler `{cxx}` ({e})");
            None
        }
        Ok(o) => {
            assert!(
                o.status.success(),
                "g++ failed on shim/drivers/{name}.cpp:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(Driver { bin, dir })
        }
    }
}

impl Driver {
    fn run(&self) {
        let o = Command::new(&self.bin).arg(&self.dir).output().unwrap();
        assert!(
            o.status.success(),
            "shim driver {} failed ({}):\n{}",
            self.bin.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn write<T: Le>(&self, name: &str, v: &[T]) {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.le()).collect();
        std::fs::write(self.dir.join(name), bytes).unwrap();
    }

    fn write_bytes(&self, name: &str, b: &[u8]) {
        std::fs::write(self.dir.join(name), b).unwrap();
    }

    fn read<T: Le>(&self, name: &str) -> Vec<T> {
        read_le(&self.dir.join(name))
    }
}

trait Le: Sized + Copy {
    const N: usize;
    fn le(self) -> Vec<u8>;
    fn from_le(b: &[u8]) -> Self;
}
macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const N: usize = std::mem::size_of::<$t>();
            fn le(self) -> Vec<u8> { self.to_le_bytes().to_vec() }
            fn from_le(b: &[u8]) -> Self { <$t>::from_le_bytes(b.try_into().unwrap()) }
        }
    )*};
}
le!(f32, f64, u32, u64);

fn read_le<T: Le>(p: &Path) -> Vec<T> {
    std::fs::read(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .chunks_exact(T::N)
        .map(T::from_le)
        .collect()
}

/// Equal, both NaN, or within `rel` of 1 + |want|.
fn same_or_close(got: f64, want: f64, rel: f64) -> bool {
    got == want || (got.is_nan() && want.is_nan()) || (got - want).abs() <= rel * (1.0 + want.abs())
}

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A target with a fixed score, to drive ebm-samplers' ULA update with a given gradient.
struct FixedScore(Tensor);

impl ebm_samplers::Target for FixedScore {
    fn energy(&self, x: &Tensor) -> Tensor {
        Tensor::zeros(&[x.shape()[0]], x.dtype())
    }
    fn score(&self, _: &Tensor) -> Tensor {
        self.0.clone()
    }
}

#[test]
fn langevin_step_and_rng_match_core_bit_for_bit() {
    let Some(drv) = build("langevin_rng") else {
        return;
    };
    // 301 elements: the last block only partly used (one of its two f64 normals, one of its four
    // f32 ones), several grid-stride rounds
    let n = 301;
    let mut data = Rng::new(3);
    let x32 = data.normal(&[n, 1], DType::F32).mul_scalar(2.0);
    let g32 = data.normal(&[n, 1], DType::F32);
    let x64 = data.normal(&[n, 1], DType::F64);
    let g64 = data.normal(&[n, 1], DType::F64);
    // a generator mid-sequence on a derived stream, so seed, stream and counter all matter
    let mut rng = Rng::new(0xDEAD_BEEF_1234).stream(7);
    rng.normal_vec(9);
    let [seed, stream, counter] = rng.state();
    let (eta, sigma, lo, hi) = (0.5 * 0.1 * 0.1, 0.1, -2.5, 4.0);
    drv.write("x.f32", x32.as_slice::<f32>());
    drv.write("g.f32", g32.as_slice::<f32>());
    drv.write("x.f64", x64.as_slice::<f64>());
    drv.write("g.f64", g64.as_slice::<f64>());
    drv.write("coef.f64", &[eta, sigma, lo, hi]);
    drv.write("state.u64", &[seed, stream, counter]);
    drv.run();

    // the random fills are core's draws from the same state
    let want = rng.clone().normal(&[n], DType::F32);
    assert_eq!(
        bits32(&drv.read::<f32>("normal.f32")),
        bits32(want.as_slice::<f32>())
    );
    assert_eq!(
        bits64(&drv.read::<f64>("normal.f64")),
        bits64(&rng.clone().normal_vec(n))
    );
    let want = rng.clone().uniform(&[n], lo, hi, DType::F32);
    assert_eq!(
        bits32(&drv.read::<f32>("uniform.f32")),
        bits32(want.as_slice::<f32>())
    );
    let want = rng.clone().uniform(&[n], lo, hi, DType::F64);
    assert_eq!(
        bits64(&drv.read::<f64>("uniform.f64")),
        bits64(want.as_slice::<f64>())
    );
    let want = rng.clone().rademacher(&[n], DType::F64);
    assert_eq!(drv.read::<f64>("sign.f64"), want.to_vec_f64());
    // ebm-cuda's own host copy of the mapping agrees too
    let st = PhiloxState::new(seed, stream, counter);
    let host: Vec<f64> = (0..n as u64).map(|i| st.normal_at(i)).collect();
    assert_eq!(bits64(&host), bits64(&rng.clone().normal_vec(n)));
    let host: Vec<f32> = (0..n as u64).map(|i| st.normal_f32_at(i)).collect();
    let want = rng.clone().normal(&[n], DType::F32);
    assert_eq!(bits32(&host), bits32(want.as_slice::<f32>()));

    // the fused step is ebm-samplers' ULA update x += η·s + σ·z with s = −∇E, bit for bit
    let ula = ebm_samplers::Ula::new(
        ebm_samplers::Step::Decoupled {
            step: eta,
            noise: sigma,
        },
        1,
    );
    for (x, g, got) in [
        (
            &x32,
            &g32,
            drv.read::<f32>("step.f32")
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
        ),
        (&x64, &g64, drv.read::<f64>("step.f64")),
    ] {
        let want = ula.step(&FixedScore(g.neg()), x.clone(), &mut rng.clone());
        assert_eq!(bits64(&got), bits64(&want.to_vec_f64()), "{}", x.dtype());
    }
    // and its state advance is the CPU's: four f32 normals to a block, two f64 ones
    let mut r = rng.clone();
    r.normal(&[n], DType::F32);
    assert_eq!(st.advanced_f32_normal(n).counter, r.state()[2]);
    let mut r = rng.clone();
    r.normal(&[n], DType::F64);
    assert_eq!(st.advanced(n).counter, r.state()[2]);
}

#[test]
fn block_reduction_matches_cpu() {
    let Some(drv) = build("reduce") else {
        return;
    };
    // reduce_rows: 3 rows of 1000, in 2 chunks per row (6 blocks of 256 threads)
    let (rows, n, chunk) = (3usize, 1000usize, 500usize);
    let chunks = n.div_ceil(chunk);
    // integers: every summation order gives the exact sum
    let mut rng = Rng::new(5);
    let x: Vec<f32> = (0..rows * n)
        .map(|_| (rng.below(201) as f32) - 100.0)
        .collect();
    // reduce_cols over the same data viewed as [outer 2, n2 30, inner 50]
    let (outer, n2, inner) = (2usize, 30usize, 50usize);
    assert_eq!(outer * n2 * inner, rows * n);
    drv.write("x.f32", &x);
    drv.write(
        "dims.u32",
        &[rows, n, chunk, chunks, outer, n2, inner].map(|v| v as u32),
    );
    drv.run();
    // the two-pass column reduction (chunks of 7 rows, then the chunks) on integers: exact
    assert_eq!(
        drv.read::<f32>("cols2_sum.f32"),
        Tensor::from_slice(&x, &[outer, n2, inner])
            .sum_axes(&[1], false)
            .to_vec::<f32>()
    );
    let t = Tensor::from_slice(&x, &[rows, chunks, chunk]);
    assert_eq!(
        drv.read::<f32>("rows_sum.f32"),
        t.sum_axes(&[2], false).to_vec::<f32>()
    );
    assert_eq!(
        drv.read::<f32>("rows_max.f32"),
        t.max_axes(&[2], false).to_vec::<f32>()
    );
    // one chunk per column: the CPU's order (row by row from 0), so bit-equal for any data
    let t = Tensor::from_slice(&x, &[outer, n2, inner]).mul_scalar(0.013_7);
    drv.write("x.f32", t.as_slice::<f32>());
    drv.run();
    assert_eq!(
        bits32(&drv.read::<f32>("cols_sum.f32")),
        bits32(&t.sum_axes(&[1], false).to_vec::<f32>())
    );
    assert_eq!(
        drv.read::<f32>("cols_max.f32"),
        t.max_axes(&[1], false).to_vec::<f32>()
    );
    // and the tree order on non-integer data stays within f32 rounding of the exact sum
    let t = Tensor::from_slice(&x, &[rows, chunks, chunk]).mul_scalar(0.013_7);
    drv.write("x.f32", t.as_slice::<f32>());
    drv.run();
    let exact = t.cast(DType::F64).sum_axes(&[2], false).to_vec_f64();
    let abs = t.cast(DType::F64).abs().sum_axes(&[2], false).to_vec_f64();
    for ((g, e), a) in drv.read::<f32>("rows_sum.f32").iter().zip(&exact).zip(&abs) {
        // a sum of k terms is within (k−1)·ε·Σ|x|; the tree makes it ~log₂(k)·ε·Σ|x|
        assert!(
            (*g as f64 - e).abs() <= 16.0 * f32::EPSILON as f64 * a,
            "{g} vs {e}"
        );
    }
}

#[test]
fn tiled_matmul_matches_reference() {
    let Some(drv) = build("matmul") else {
        return;
    };
    let mut rng = Rng::new(9);
    // partial 64×64 tiles, K not a multiple of 16, every transpose combination, batch
    // broadcasting on either side, and a skinny product
    let cases: &[(&[usize], bool, &[usize], bool)] = &[
        (&[70, 37], false, &[37, 65], false),
        (&[37, 70], true, &[37, 65], false),
        (&[70, 37], false, &[65, 37], true),
        (&[37, 70], true, &[65, 37], true),
        (&[3, 20, 17], false, &[17, 9], false),
        (&[20, 17], false, &[2, 9, 17], true),
        (&[2, 5, 33], true, &[2, 5, 3], false),
        (&[130, 8], false, &[8, 1], false),
    ];
    for &(sa, ta, sb, tb) in cases {
        let a = rng.normal(sa, DType::F32);
        let b = rng.normal(sb, DType::F32);
        let op = |s: &[usize], t: bool| {
            let r = s.len();
            let (rows, cols) = if t {
                (s[r - 1], s[r - 2])
            } else {
                (s[r - 2], s[r - 1])
            };
            (if r == 3 { s[0] } else { 1 }, rows, cols)
        };
        let ((ba, m, k), (bb, _, n)) = (op(sa, ta), op(sb, tb));
        let batch = ba.max(bb);
        drv.write("a.f32", a.as_slice::<f32>());
        drv.write("b.f32", b.as_slice::<f32>());
        drv.write(
            "dims.u32",
            &[
                batch,
                m,
                n,
                k,
                ta as usize,
                tb as usize,
                (ba > 1) as usize,
                (bb > 1) as usize,
            ]
            .map(|v| v as u32),
        );
        drv.run();
        let got = drv.read::<f32>("c.f32");
        // bit for bit against the same summation order …
        let want =
            ebm_cuda::matmul::reference(a.as_slice::<f32>(), sa, ta, b.as_slice::<f32>(), sb, tb);
        assert_eq!(bits32(&got), bits32(&want), "{sa:?}{ta} · {sb:?}{tb}");
        // … and close to ebm-core's matmul (another order)
        let core = a.matmul_t(&b, ta, tb).to_vec::<f32>();
        let scale = (k as f32).sqrt();
        for (g, c) in got.iter().zip(&core) {
            assert!(
                (g - c).abs() <= 1e-5 * scale * (1.0 + c.abs()),
                "{g} vs {c}"
            );
        }
    }
}

#[test]
fn elementwise_and_layout_kernels_match_core() {
    let Some(drv) = build("layout") else {
        return;
    };
    let mut rng = Rng::new(21);
    let a = rng.normal(&[2, 3, 4], DType::F64).mul_scalar(1.5);
    let b = rng.normal(&[3, 1], DType::F64);
    let c = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 2.0], &[4]);
    let idx = [5usize, 0, 5, 2, 5];
    let (dest, offs, srcs) = ebm_cuda::ops::group_by_destination(&idx);
    let mut sc = vec![dest.len() as u32];
    sc.extend(&dest);
    sc.extend(&offs);
    sc.extend(&srcs);
    drv.write("a.f64", a.as_slice::<f64>());
    drv.write("b.f64", b.as_slice::<f64>());
    drv.write("c.f64", c.as_slice::<f64>());
    let u = Tensor::concat(&[a.reshape(&[24]), a.abs().reshape(&[24])], 0);
    drv.write("u.f64", u.as_slice::<f64>());
    let unary_ops: Vec<f64> = UnaryOp::EXAMPLES
        .iter()
        .flat_map(|op| {
            let (code, p, q) = op.lowered().kernel_args();
            [code as f64, p, q]
        })
        .collect();
    drv.write("unary_ops.f64", &unary_ops);
    let binary_ops: Vec<u32> = BinaryOp::ALL.iter().map(|op| op.code() as u32).collect();
    drv.write("binary_ops.u32", &binary_ops);
    drv.write("idx.u32", &idx.map(|i| i as u32));
    drv.write("scatter.u32", &sc);
    drv.run();

    // every op of the tables: unary ones on a and |a| (so log, sqrt and powers see both
    // signs), binary ones on a and b broadcast
    for (k, op) in UnaryOp::EXAMPLES.iter().enumerate() {
        let want = u.unary(*op).to_vec_f64();
        let got = drv.read::<f64>(&format!("unary_{k}.f64"));
        assert_eq!(got.len(), want.len(), "{op:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                same_or_close(*g, w, 1e-15),
                "{op:?} (code {}): {g} vs {w}",
                op.code()
            );
        }
    }
    for (k, op) in BinaryOp::ALL.iter().enumerate() {
        let want = a.binary(&b, *op).to_vec_f64();
        for (g, w) in drv.read::<f64>(&format!("binary_{k}.f64")).iter().zip(want) {
            assert!(same_or_close(*g, w, 1e-15), "{op:?}: {g} vs {w}");
        }
    }
    assert_eq!(
        drv.read::<f64>("where.f64"),
        Tensor::where_(&c, &a, &b).to_vec_f64()
    );
    assert_eq!(
        drv.read::<f64>("permute.f64"),
        a.permute(&[2, 0, 1]).to_vec_f64()
    );
    let nar = a.narrow(1, 1, 2);
    assert_eq!(drv.read::<f64>("narrow.f64"), nar.to_vec_f64());
    assert_eq!(
        drv.read::<f64>("block.f64"),
        a.narrow_assign(1, 0, &nar).to_vec_f64()
    );
    let rows = a.reshape(&[6, 4]);
    let sel = rows.index_select(&idx);
    assert_eq!(drv.read::<f64>("select.f64"), sel.to_vec_f64());
    let zeros = Tensor::zeros(&[6, 4], DType::F64);
    // repeats accumulate in order (bit-equal) / the last one wins
    assert_eq!(
        bits64(&drv.read::<f64>("add.f64")),
        bits64(&zeros.index_add(&idx, &sel).to_vec_f64())
    );
    assert_eq!(
        drv.read::<f64>("put.f64"),
        zeros.index_put(&idx, &sel).to_vec_f64()
    );
}

/// ebm-nn's MLP as a sampler target (score by autodiff).
struct MlpTarget<'a>(&'a ebm_nn::Mlp);

impl ebm_samplers::Target for MlpTarget<'_> {
    fn energy(&self, x: &Tensor) -> Tensor {
        use ebm_nn::EnergyModel;
        self.0.energy(x)
    }
    fn score(&self, x: &Tensor) -> Tensor {
        use ebm_nn::EnergyModel;
        self.0.score(x)
    }
}

#[test]
fn fused_mlp_sampler_matches_reference_and_ula() {
    let Some(drv) = build("mlp_langevin") else {
        return;
    };
    use ebm_nn::{Mlp, MlpConfig, Module};
    // 2-24-20-1 (odd and even widths: both pitches), 21 chains in blocks of 8 (a partial last
    // block), 64 threads (several register tiles per thread in the wide layers), 6 steps
    let widths = [2usize, 24, 20, 1];
    let net = Mlp::new(MlpConfig::new(&widths), &mut Rng::new(4));
    let p = net.params();
    let layers: Vec<(Vec<f32>, Vec<f32>)> = (0..3)
        .map(|i| {
            (
                p.by_name(&format!("l{i}.weight")).unwrap().to_vec::<f32>(),
                p.by_name(&format!("l{i}.bias")).unwrap().to_vec::<f32>(),
            )
        })
        .collect();
    let refs: Vec<(&[f32], &[f32])> = layers.iter().map(|(w, b)| (&w[..], &b[..])).collect();
    let params = mlp::pack_params(&widths, &refs).unwrap();
    let (n, steps, eta, sigma) = (21usize, 6usize, 0.5 * 0.05f64.powi(2), 0.05);
    let x0 = Rng::new(8).normal(&[n, 2], DType::F32);
    let mut rng = Rng::new(77).stream(1);
    rng.normal_vec(3);
    let [seed, stream, counter] = rng.state();
    let state = PhiloxState::new(seed, stream, counter);

    for weights_in_smem in [true, false] {
        // a limit that forces the global-weights layout in the second round
        let limit = if weights_in_smem { 1 << 20 } else { 2_500 };
        let plan = mlp::plan(&widths, 8, 64, limit).unwrap();
        assert_eq!(plan.desc.weights_in_smem == 1, weights_in_smem);
        drv.write("x.f32", x0.as_slice::<f32>());
        drv.write("params.f32", &params);
        drv.write_bytes("desc.bin", &plan.desc.to_bytes());
        drv.write(
            "run.u64",
            &[
                steps as u64,
                seed,
                stream,
                counter,
                plan.threads as u64,
                plan.smem_bytes as u64,
            ],
        );
        drv.write("coef.f64", &[eta, sigma]);
        drv.run();
        let got = drv.read::<f32>("out.f32");

        // bit for bit against the host reference in the kernel's summation order
        let mut want = x0.to_vec::<f32>();
        let after = mlp::reference_run(&widths, &params, &mut want, steps, eta, sigma, state);
        assert_eq!(
            bits32(&got),
            bits32(&want),
            "weights in smem: {weights_in_smem}"
        );

        // and close to ebm-samplers' ULA on ebm-nn's MLP with autodiff gradients, same noise
        let ula = ebm_samplers::Ula::new(
            ebm_samplers::Step::Decoupled {
                step: eta,
                noise: sigma,
            },
            1,
        );
        let mut r = rng.clone();
        let mut x = x0.clone();
        for _ in 0..steps {
            x = ula.step(&MlpTarget(&net), x, &mut r);
        }
        assert_eq!(
            after.counter,
            r.state()[2],
            "the generator advances as the CPU's"
        );
        let diff = Tensor::from_slice(&got, &[n, 2]).max_abs_diff(&x);
        assert!(
            diff < 1e-5,
            "fused sampler vs ULA on the ebm-nn MLP: max |Δx| = {diff}"
        );
        // the chains did move
        assert!(x.max_abs_diff(&x0) > 1e-3);
    }
}

#[test]
fn reference_gradient_is_ebm_nn_gradient() {
    use ebm_nn::{EnergyModel, Mlp, MlpConfig, Module};
    for widths in [vec![3usize, 1], vec![2, 7, 1], vec![4, 9, 6, 5, 1]] {
        let net = Mlp::with_dtype(MlpConfig::new(&widths), &mut Rng::new(1), DType::F32);
        let p = net.params();
        let layers: Vec<(Vec<f32>, Vec<f32>)> = (0..widths.len() - 1)
            .map(|i| {
                (
                    p.by_name(&format!("l{i}.weight")).unwrap().to_vec::<f32>(),
                    p.by_name(&format!("l{i}.bias")).unwrap().to_vec::<f32>(),
                )
            })
            .collect();
        let refs: Vec<(&[f32], &[f32])> = layers.iter().map(|(w, b)| (&w[..], &b[..])).collect();
        let params = mlp::pack_params(&widths, &refs).unwrap();
        let x = Rng::new(2).normal(&[5, widths[0]], DType::F32);
        let want = net.score(&x).neg().to_vec::<f32>();
        let got: Vec<f32> = x
            .to_vec::<f32>()
            .chunks(widths[0])
            .flat_map(|row| mlp::reference_grad(&widths, &params, row))
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-5 * (1.0 + w.abs()),
                "{widths:?}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn conv_kernels_match_core() {
    let Some(drv) = build("conv") else {
        return;
    };
    // stride, padding, dilation and groups all away from 1/0, on odd sizes
    let spec = ebm_core::Conv2dSpec {
        stride: [2, 1],
        padding: [1, 2],
        dilation: [1, 2],
        groups: 2,
    };
    let (n, c, h, w, o, kh, kw) = (2usize, 4, 7, 6, 6, 3, 2);
    let mut rng = Rng::new(8);
    let x = rng.normal(&[n, c, h, w], DType::F64);
    let wt = rng.normal(&[o, c / 2, kh, kw], DType::F64);
    let y = x.conv2d(&wt, spec);
    let (ho, wo) = (y.shape()[2], y.shape()[3]);
    let gy = rng.normal(y.shape(), DType::F64);
    drv.write("x.f64", x.as_slice::<f64>());
    drv.write("w.f64", wt.as_slice::<f64>());
    drv.write("gy.f64", gy.as_slice::<f64>());
    let geom = [n, c, h, w, o, kh, kw, ho, wo, 2, 1, 1, 2, 1, 2, 2].map(|v| v as u32);
    drv.write("geom.u32", &geom);
    drv.run();
    let op = [0, 1].map(|a| {
        spec.output_padding_for(a, [h, w][a], [kh, kw][a], [ho, wo][a])
            .unwrap()
    });
    for (file, want) in [
        ("y.f64", y),
        ("gx.f64", gy.conv_transpose2d(&wt, spec, op)),
        ("gw.f64", x.conv2d_weight(&gy, spec, [kh, kw])),
    ] {
        let got = drv.read::<f64>(file);
        let want = want.to_vec_f64();
        assert_eq!(got.len(), want.len(), "{file}");
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "{file}: {a} vs {b}"
            );
        }
    }
}

/// Under CI (CI=true, or EBM_REQUIRE_CUDA_TOOLS=1 as .ci/run sets) a missing tool is a failure.
fn tools_required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("EBM_REQUIRE_CUDA_TOOLS").as_deref() == Ok("1")
}
