//! The GEMM lowering against direct loops, in f64, over random geometries; the adjoint
//! identities that tie the three ops together; pooling and upsampling by hand.

use super::*;
use crate::{DType, Rng};
use proptest::prelude::*;

/// A random geometry: (x shape, w shape, spec).
fn geometry() -> impl Strategy<Value = ([usize; 4], [usize; 4], Conv2dSpec)> {
    (
        1usize..4,
        1usize..4,
        1usize..4,
        1usize..3,
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (0usize..3, 0usize..3),
        (1usize..3, 1usize..3),
        (3usize..9, 3usize..9),
    )
        .prop_filter_map(
            "kernel does not fit",
            |(n, g, cg, og, (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w))| {
                let spec = Conv2dSpec {
                    stride: [sh, sw],
                    padding: [ph, pw],
                    dilation: [dh, dw],
                    groups: g,
                };
                spec.out_len(0, h, kh)?;
                spec.out_len(1, w, kw)?;
                Some(([n, g * cg, h, w], [g * og, cg, kh, kw], spec))
            },
        )
}

/// Direct loops: calls `f(y index, x index, w index)` for every product term of x ⋆ w.
fn each_term(g: &ConvGeom, mut f: impl FnMut(usize, usize, usize)) {
    let s = g.spec;
    for n in 0..g.n {
        for o in 0..g.o {
            let gi = o / g.og();
            for i in 0..g.ho {
                for j in 0..g.wo {
                    let y = ((n * g.o + o) * g.ho + i) * g.wo + j;
                    for c in 0..g.cg() {
                        for p in 0..g.kh {
                            for q in 0..g.kw {
                                let hi = (i * s.stride[0] + p * s.dilation[0]) as isize
                                    - s.padding[0] as isize;
                                let wi = (j * s.stride[1] + q * s.dilation[1]) as isize
                                    - s.padding[1] as isize;
                                if hi < 0 || wi < 0 || hi >= g.h as isize || wi >= g.w as isize {
                                    continue;
                                }
                                let cc = gi * g.cg() + c;
                                let x = ((n * g.c + cc) * g.h + hi as usize) * g.w + wi as usize;
                                let w = ((o * g.cg() + c) * g.kh + p) * g.kw + q;
                                f(y, x, w);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn close(got: &Tensor, want: &[f64], what: &str) {
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let err = got
        .to_vec_f64()
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-12 * scale, "{what}: max error {err:e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn gemm_lowering_equals_direct_loops((xs, ws, spec) in geometry(), seed in 0u64..1000) {
        let mut rng = Rng::new(seed);
        let x = rng.normal(&xs, DType::F64);
        let w = rng.normal(&ws, DType::F64);
        let g = ConvGeom::of(&xs, &ws, spec).unwrap();
        let gy = rng.normal(&g.output_shape(), DType::F64);
        let (xv, wv, gyv) = (x.to_vec_f64(), w.to_vec_f64(), gy.to_vec_f64());
        let (mut y, mut gx, mut gw) = (
            vec![0.0; g.n * g.o * g.l()],
            vec![0.0; xv.len()],
            vec![0.0; wv.len()],
        );
        each_term(&g, |yi, xi, wi| {
            y[yi] += xv[xi] * wv[wi];
            gx[xi] += gyv[yi] * wv[wi];
            gw[wi] += gyv[yi] * xv[xi];
        });
        close(&x.conv2d(&w, spec), &y, "forward");
        let op = [0, 1].map(|a| spec.output_padding_for(a, xs[2 + a], ws[2 + a], g.output_shape()[2 + a]).unwrap());
        close(&gy.conv_transpose2d(&w, spec, op), &gx, "input gradient");
        close(&x.conv2d_weight(&gy, spec, [ws[2], ws[3]]), &gw, "weight gradient");
        // f32 takes the same path
        let y32 = x.cast(DType::F32).conv2d(&w.cast(DType::F32), spec);
        let scale = y.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        prop_assert!(y32.to_vec_f64().iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-4 * scale));
    }
}

#[test]
fn pooling_and_upsampling_by_hand() {
    let x = Tensor::arange(16, DType::F64).reshape(&[1, 1, 4, 4]);
    assert_eq!(
        x.avg_pool2d([2, 2], [2, 2], [0, 0]).to_vec_f64(),
        vec![2.5, 4.5, 10.5, 12.5]
    );
    // count_include_pad: the corner window [0 0; 0 x00] averages to 0/4
    let p = x.avg_pool2d([2, 2], [2, 2], [1, 1]);
    assert_eq!(p.shape(), &[1, 1, 3, 3]);
    assert_eq!(p.to_vec_f64()[0], 0.0);
    assert_eq!(p.to_vec_f64()[4], (5.0 + 6.0 + 9.0 + 10.0) / 4.0);
    let small = Tensor::from_vec(
        vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        &[1, 2, 2, 2],
    );
    let up = small.upsample_nearest2d([2, 3]);
    assert_eq!(up.shape(), &[1, 2, 4, 6]);
    let v = up.to_vec_f64();
    assert_eq!(&v[..6], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    assert_eq!(&v[18..24], &[3.0, 3.0, 3.0, 4.0, 4.0, 4.0]);
    assert_eq!(v[24], 5.0);
}

#[test]
fn transposed_output_sizes_follow_pytorch() {
    // torch: conv_transpose2d of [1, 2, 3, 3] with a [2, 1, 3, 3] weight, stride 2, padding 1,
    // output_padding 1 is [1, 1, 6, 6]
    let u = Tensor::ones(&[1, 2, 3, 3], DType::F64);
    let w = Tensor::ones(&[2, 1, 3, 3], DType::F64);
    let spec = Conv2dSpec::new().stride(2).padding(1);
    assert_eq!(u.conv_transpose2d(&w, spec, [1, 1]).shape(), &[1, 1, 6, 6]);
    assert_eq!(u.conv_transpose2d(&w, spec, [0, 0]).shape(), &[1, 1, 5, 5]);
    assert_eq!(spec.output_padding_for(0, 6, 3, 3), Some(1));
    assert_eq!(spec.output_padding_for(0, 8, 3, 3), None);
}

#[test]
fn same_bits_on_any_thread_count() {
    let mut rng = Rng::new(3);
    let x = rng.normal(&[37, 6, 9, 9], DType::F32);
    let w = rng.normal(&[8, 3, 3, 3], DType::F32);
    let spec = Conv2dSpec::new().padding(1).groups(2);
    let gy = rng.normal(&[37, 8, 9, 9], DType::F32);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            (
                x.conv2d(&w, spec).to_vec_f64(),
                gy.conv_transpose2d(&w, spec, [0, 0]).to_vec_f64(),
                x.conv2d_weight(&gy, spec, [3, 3]).to_vec_f64(),
            )
        })
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
}

#[test]
#[should_panic(expected = "conv2d: input [2, 3, 5, 5] and weight [4, 2, 3, 3] do not fit")]
fn channel_mismatch_names_both_shapes() {
    let x = Tensor::zeros(&[2, 3, 5, 5], DType::F64);
    let _ = x.conv2d(&Tensor::zeros(&[4, 2, 3, 3], DType::F64), Conv2dSpec::new());
}

#[test]
#[should_panic(expected = "conv2d: input [1, 1, 2, 2] and weight [1, 1, 3, 3] do not fit")]
fn kernel_larger_than_padded_input_panics() {
    let x = Tensor::zeros(&[1, 1, 2, 2], DType::F64);
    let _ = x.conv2d(&Tensor::zeros(&[1, 1, 3, 3], DType::F64), Conv2dSpec::new());
}
