//! The kernels on a real GPU against the CPU references (ebm-core's ops and Rng, ebm-samplers'
//! ULA, the fused sampler's host reference). Without a driver every test prints a SKIP line
//! and passes; `no_driver_is_an_error_not_a_panic` checks that path itself.
//!
//! Tolerances: f32 results may differ from the CPU in the last bits (FMA contraction, CUDA's
//! math functions), so they are compared at 1e-5 relative; f64 at 1e-12.

use ebm_core::{DType, Rng, Tensor};
use ebm_cuda::kernels::MODULES;
use ebm_cuda::{
    mlp, BinaryOp, DeviceBuffer, Gpu, MatmulEngine, PhiloxState, Random, Reduce, UnaryOp,
};
use std::sync::Arc;

fn gpu_or_skip(what: &str) -> Option<Arc<Gpu>> {
    match ebm_cuda::default_gpu() {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("{}", ebm_cuda::skip_message(what, &e));
            None
        }
    }
}

fn up(g: &Arc<Gpu>, t: &Tensor) -> DeviceBuffer {
    match t.dtype() {
        DType::F32 => DeviceBuffer::from_host(g, t.as_slice::<f32>()).unwrap(),
        DType::F64 => DeviceBuffer::from_host(g, t.as_slice::<f64>()).unwrap(),
    }
}

fn down(b: &DeviceBuffer) -> Vec<f64> {
    match b.dtype() {
        ebm_cuda::DType::F32 => b
            .to_host::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        ebm_cuda::DType::F64 => b.to_host::<f64>().unwrap(),
    }
}

fn close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= rel * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()) || g == w;
        assert!(ok, "{what}[{i}]: GPU {g} vs CPU {w}");
    }
}

#[test]
fn no_driver_is_an_error_not_a_panic() {
    match ebm_cuda::default_gpu() {
        Ok(g) => eprintln!("GPU present: {g:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                matches!(
                    e,
                    ebm_cuda::CudaError::NoDriver(_) | ebm_cuda::CudaError::NoDevice { .. }
                ),
                "{msg}"
            );
            assert!(msg.starts_with("no CUDA"), "{msg}");
            // asking again is answered from the cache, still without a panic
            assert!(ebm_cuda::default_gpu().is_err());
            assert!(ebm_cuda::device_count().map_or(true, |n| n == 0));
        }
    }
}

#[test]
fn every_kernel_name_loads() {
    let Some(g) = gpu_or_skip("every_kernel_name_loads") else {
        return;
    };
    for m in MODULES {
        for k in m.kernels {
            g.func(k).unwrap_or_else(|e| panic!("{}: {k}: {e}", m.name));
        }
    }
}

#[test]
fn elementwise_ops_match_core() {
    let Some(g) = gpu_or_skip("elementwise_ops_match_core") else {
        return;
    };
    let mut rng = Rng::new(1);
    for dtype in [DType::F32, DType::F64] {
        let rel = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        let a = rng.normal(&[5, 3, 70], dtype).mul_scalar(2.0);
        let b = rng.normal(&[3, 1], dtype);
        let (da, db) = (up(&g, &a), up(&g, &b));
        // every op of the tables, unary ones on both signs and on positive inputs (log, sqrt
        // and fractional powers are NaN below 0 on both devices)
        let pos = a.abs().add_scalar(0.1);
        for op in UnaryOp::EXAMPLES {
            for x in [&a, &pos] {
                close(
                    &format!("{op:?}"),
                    &down(&up(&g, x).unary(*op).unwrap()),
                    &x.unary(*op).to_vec_f64(),
                    rel,
                );
            }
        }
        for &op in BinaryOp::ALL {
            let want = a.binary(&b, op).to_vec_f64();
            let got = da.binary(a.shape(), &db, b.shape(), a.shape(), op).unwrap();
            close(&format!("{op:?} broadcast"), &down(&got), &want, rel);
            let same = da.binary(a.shape(), &da, a.shape(), a.shape(), op).unwrap();
            close(
                &format!("{op:?}"),
                &down(&same),
                &a.binary(&a, op).to_vec_f64(),
                rel,
            );
        }
        let c = a.gt(&Tensor::zeros(&[70], dtype));
        let w = DeviceBuffer::where_(
            (&up(&g, &c), c.shape()),
            (&da, a.shape()),
            (&db, b.shape()),
            a.shape(),
        )
        .unwrap();
        close(
            "where",
            &down(&w),
            &Tensor::where_(&c, &a, &b).to_vec_f64(),
            0.0,
        );
        close(
            "cast",
            &down(&da.cast(ebm_cuda::DType::F64).unwrap()),
            &a.to_vec_f64(),
            0.0,
        );
        close(
            "fill",
            &down(&DeviceBuffer::full(&g, da.dtype(), 7, 0.25).unwrap()),
            &[0.25; 7],
            0.0,
        );
    }
}

#[test]
fn reductions_match_core() {
    let Some(g) = gpu_or_skip("reductions_match_core") else {
        return;
    };
    let mut rng = Rng::new(2);
    // shapes exercising each path: rows (inner 1), columns, chunked rows, chunked columns
    for shape in [
        [3usize, 1000, 1],
        [2, 5, 7],
        [1, 300_000, 1],
        [4, 20_000, 3],
        [65_536, 2, 1],
        [1, 65_536, 128],
    ] {
        for dtype in [DType::F32, DType::F64] {
            let x = rng.normal(&shape, dtype);
            let dx = up(&g, &x);
            let sum = x.sum_axes(&[1], false).to_vec_f64();
            let abs = x.abs().sum_axes(&[1], false).to_vec_f64();
            let got = down(
                &dx.reduce(shape[0], shape[1], shape[2], Reduce::Sum)
                    .unwrap(),
            );
            let eps = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
            for ((g, w), a) in got.iter().zip(&sum).zip(&abs) {
                assert!(
                    (g - w).abs() <= eps * (1.0 + a),
                    "sum {shape:?}: {g} vs {w}"
                );
            }
            let got = down(
                &dx.reduce(shape[0], shape[1], shape[2], Reduce::Max)
                    .unwrap(),
            );
            close("max", &got, &x.max_axes(&[1], false).to_vec_f64(), 0.0);
        }
    }
}

#[test]
fn matmul_tiled_and_cublas_match_core() {
    let Some(g) = gpu_or_skip("matmul_tiled_and_cublas_match_core") else {
        return;
    };
    let mut rng = Rng::new(3);
    let cases: &[(&[usize], bool, &[usize], bool)] = &[
        (&[70, 37], false, &[37, 65], false),
        (&[37, 70], true, &[65, 37], true),
        (&[1000, 128], false, &[128, 128], true),
        (&[9, 20, 17], false, &[17, 9], false),
        (&[20, 17], false, &[9, 9, 17], true),
        (&[4, 5, 33], true, &[4, 5, 3], false),
        (&[4096, 2], false, &[128, 2], true),
    ];
    for &(sa, ta, sb, tb) in cases {
        for dtype in [DType::F32, DType::F64] {
            let (a, b) = (rng.normal(sa, dtype), rng.normal(sb, dtype));
            let want = a.matmul_t(&b, ta, tb);
            let k = if ta {
                sa[sa.len() - 2]
            } else {
                sa[sa.len() - 1]
            } as f64;
            let rel = if dtype == DType::F32 {
                1e-5 * k.sqrt()
            } else {
                1e-12 * k.sqrt()
            };
            for engine in [
                MatmulEngine::Tiled,
                MatmulEngine::Cublas,
                MatmulEngine::Auto,
            ] {
                match up(&g, &a).matmul(sa, ta, &up(&g, &b), sb, tb, engine) {
                    Ok((c, shape)) => {
                        assert_eq!(shape, want.shape());
                        close(
                            &format!("{engine:?} {sa:?}·{sb:?}"),
                            &down(&c),
                            &want.to_vec_f64(),
                            rel,
                        )
                    }
                    Err(e) if engine == MatmulEngine::Cublas => eprintln!("SKIP cuBLAS: {e}"),
                    Err(e) => panic!("{engine:?}: {e}"),
                }
            }
        }
    }
}

#[test]
fn layout_ops_match_core() {
    let Some(g) = gpu_or_skip("layout_ops_match_core") else {
        return;
    };
    let a = Rng::new(4).normal(&[4, 3, 5], DType::F64);
    let da = up(&g, &a);
    close(
        "permute",
        &down(&da.permute(a.shape(), &[2, 0, 1]).unwrap()),
        &a.permute(&[2, 0, 1]).to_vec_f64(),
        0.0,
    );
    let row = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0], &[5]);
    let b = up(&g, &row).broadcast_to(&[5], &[4, 3, 5]).unwrap();
    close(
        "broadcast_to",
        &down(&b),
        &row.broadcast_to(&[4, 3, 5]).to_vec_f64(),
        0.0,
    );
    let n = a.narrow(1, 1, 2);
    close(
        "narrow",
        &down(&da.narrow(a.shape(), 1, 1, 2).unwrap()),
        &n.to_vec_f64(),
        0.0,
    );
    let z = a.zeros_like();
    let got = up(&g, &z)
        .narrow_assign(a.shape(), 1, 1, &up(&g, &n))
        .unwrap();
    close(
        "narrow_assign",
        &down(&got),
        &z.narrow_assign(1, 1, &n).to_vec_f64(),
        0.0,
    );
    let parts = [a.narrow(2, 0, 2), a.narrow(2, 2, 3)];
    let dparts: Vec<DeviceBuffer> = parts.iter().map(|p| up(&g, p)).collect();
    let args: Vec<(&DeviceBuffer, &[usize])> = dparts
        .iter()
        .zip(&parts)
        .map(|(d, p)| (d, p.shape()))
        .collect();
    close(
        "concat",
        &down(&DeviceBuffer::concat(&args, 2).unwrap()),
        &a.to_vec_f64(),
        0.0,
    );
    let idx = [3usize, 0, 3, 1, 3];
    let sel = a.index_select(&idx);
    close(
        "index_select",
        &down(&da.index_select(15, &idx).unwrap()),
        &sel.to_vec_f64(),
        0.0,
    );
    let dz = up(&g, &z);
    close(
        "index_add",
        &down(&dz.scatter_rows(15, &idx, &up(&g, &sel), true).unwrap()),
        &z.index_add(&idx, &sel).to_vec_f64(),
        0.0,
    );
    close(
        "index_put",
        &down(&dz.scatter_rows(15, &idx, &up(&g, &sel), false).unwrap()),
        &z.index_put(&idx, &sel).to_vec_f64(),
        0.0,
    );
}

#[test]
fn random_fills_are_core_draws() {
    let Some(g) = gpu_or_skip("random_fills_are_core_draws") else {
        return;
    };
    let mut rng = Rng::new(0xABCD).stream(3);
    rng.normal_vec(5);
    let [seed, stream, counter] = rng.state();
    let st = PhiloxState::new(seed, stream, counter);
    let n = 100_001;
    let (u, after) = DeviceBuffer::random(
        &g,
        ebm_cuda::DType::F64,
        n,
        Random::Uniform { lo: -1.0, hi: 3.0 },
        st,
    )
    .unwrap();
    // uniforms: integer arithmetic and exact f64 steps, bit-identical
    assert_eq!(
        down(&u),
        rng.clone()
            .uniform(&[n], -1.0, 3.0, DType::F64)
            .to_vec_f64()
    );
    assert_eq!(after, st.advanced(n));
    // normals too, in f64 and f32 (philox.cuh): the same operations, each rounded alone
    let (z, _) = DeviceBuffer::random(&g, ebm_cuda::DType::F64, n, Random::Normal, st).unwrap();
    assert_eq!(bits(&down(&z)), bits(&rng.clone().normal_vec(n)));
    let (z, _) = DeviceBuffer::random(&g, ebm_cuda::DType::F32, n, Random::Normal, st).unwrap();
    let want = rng.clone().normal(&[n], DType::F32).to_vec_f64();
    assert_eq!(bits(&down(&z)), bits(&want));
}

/// The bit patterns, so that a mismatch prints the first differing element exactly.
fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A fixed score for ebm-samplers' ULA.
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
fn langevin_step_is_the_ula_update() {
    let Some(g) = gpu_or_skip("langevin_step_is_the_ula_update") else {
        return;
    };
    let mut data = Rng::new(5);
    for dtype in [DType::F32, DType::F64] {
        let x = data.normal(&[10_000, 2], dtype);
        let grad = data.normal(&[10_000, 2], dtype);
        let rng = Rng::new(6).stream(2);
        let [seed, stream, counter] = rng.state();
        let (eta, sigma) = (0.005, 0.1);
        let mut dx = up(&g, &x);
        let after = dx
            .langevin_step(
                &up(&g, &grad),
                eta,
                sigma,
                PhiloxState::new(seed, stream, counter),
            )
            .unwrap();
        let ula = ebm_samplers::Ula::new(
            ebm_samplers::Step::Decoupled {
                step: eta,
                noise: sigma,
            },
            1,
        );
        let mut r = rng.clone();
        let want = ula.step(&FixedScore(grad.neg()), x.clone(), &mut r);
        assert_eq!(after.counter, r.state()[2]);
        // the same noise, rounded as the CPU update rounds: bit for bit
        assert_eq!(bits(&down(&dx)), bits(&want.to_vec_f64()), "{dtype}");
    }
}

#[test]
fn fused_mlp_sampler_matches_reference() {
    let Some(g) = gpu_or_skip("fused_mlp_sampler_matches_reference") else {
        return;
    };
    let widths = [2usize, 128, 128, 1];
    let mut rng = Rng::new(7);
    let layers: Vec<(Vec<f32>, Vec<f32>)> = widths
        .windows(2)
        .map(|w| {
            let s = 1.0 / (w[0] as f64).sqrt();
            (
                rng.uniform(&[w[1], w[0]], -s, s, DType::F32)
                    .to_vec::<f32>(),
                rng.uniform(&[w[1]], -s, s, DType::F32).to_vec::<f32>(),
            )
        })
        .collect();
    let refs: Vec<(&[f32], &[f32])> = layers.iter().map(|(w, b)| (&w[..], &b[..])).collect();
    let params = mlp::pack_params(&widths, &refs).unwrap();
    let sampler = ebm_cuda::FusedMlpSampler::new(&g, &widths, &refs).unwrap();
    eprintln!("fused sampler plan: {:?}", sampler.plan());
    let n = 1000;
    let x0 = rng.normal(&[n, 2], DType::F32);
    let st = PhiloxState::new(11, 0, 0);
    let (steps, eta, sigma) = (10, 0.5 * 0.01f64 * 0.01, 0.01);
    let mut dx = up(&g, &x0);
    let after = sampler.run(&mut dx, steps, eta, sigma, st).unwrap();
    let mut want = x0.to_vec::<f32>();
    let after_ref = mlp::reference_run(&widths, &params, &mut want, steps, eta, sigma, st);
    assert_eq!(after, after_ref);
    let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    close("fused MLP sampler", &down(&dx), &want, 1e-5);
    // the global-weights layout too (a shared-memory limit that only the activations fit)
    let sampler = sampler.with_launch(16, 128, Some(40_000)).unwrap();
    assert_eq!(sampler.plan().desc.weights_in_smem, 0);
    let mut dx = up(&g, &x0);
    sampler.run(&mut dx, steps, eta, sigma, st).unwrap();
    close(
        "fused MLP sampler (16 chains/block)",
        &down(&dx),
        &want,
        1e-5,
    );
}
