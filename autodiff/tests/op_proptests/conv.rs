//! Convolutions, pooling, upsampling and normalisation over random NCHW shapes, strides,
//! paddings, dilations and groups. The three conv ops are bilinear and the pools/upsampling
//! linear, so they take the [`exact`] tolerances; the normalisations are smooth.

use super::*;
use ebm_core::Conv2dSpec;

/// A random conv geometry: x shape `[N, C, H, W]`, w shape `[O, C/g, kh, kw]` and the spec,
/// with a kernel that fits the padded input.
fn geometry() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Conv2dSpec)> {
    (
        (1usize..=2, 1usize..=3, 1usize..=2, 1usize..=2),
        (1usize..=3, 1usize..=3),
        (1usize..=2, 1usize..=2),
        (0usize..=2, 0usize..=2),
        (1usize..=2, 1usize..=2),
        (2usize..=6, 2usize..=6),
    )
        .prop_filter_map(
            "kernel does not fit",
            |((n, g, cg, og), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w))| {
                let spec = Conv2dSpec {
                    stride: [sh, sw],
                    padding: [ph, pw],
                    dilation: [dh, dw],
                    groups: g,
                };
                spec.out_len(0, h, kh)?;
                spec.out_len(1, w, kw)?;
                Some((vec![n, g * cg, h, w], vec![g * og, cg, kh, kw], spec))
            },
        )
}

/// The forward output shape of a geometry.
fn out_shape(xs: &[usize], ws: &[usize], spec: &Conv2dSpec) -> Vec<usize> {
    vec![
        xs[0],
        ws[0],
        spec.out_len(0, xs[2], ws[2]).unwrap(),
        spec.out_len(1, xs[3], ws[3]).unwrap(),
    ]
}

/// Inputs of `conv_transpose2d`: u `[N, Cin, H, W]`, w `[Cin, Cout/g, kh, kw]`, spec and an
/// output padding below the stride.
fn transposed() -> impl Strategy<Value = (Tensor, Tensor, Conv2dSpec, [usize; 2])> {
    (geometry(), 0usize..=1, 0usize..=1).prop_flat_map(|((xs, ws, spec), a, b)| {
        let lim = |i: usize| spec.stride[i] - 1;
        let op = [a.min(lim(0)), b.min(lim(1))];
        let us = out_shape(&xs, &ws, &spec);
        (values(us, REAL), values(ws, REAL), Just(spec), Just(op))
    })
}

/// An NCHW tensor with 1–3 channels and sides 1–6, and a pooling window that fits it.
fn pool_input() -> impl Strategy<Value = (Tensor, [usize; 2], [usize; 2], [usize; 2])> {
    (
        (1usize..=2, 1usize..=3, 1usize..=6, 1usize..=6),
        (1usize..=3, 1usize..=3),
        (1usize..=3, 1usize..=3),
        (0usize..=1, 0usize..=1),
    )
        .prop_filter_map(
            "window does not fit",
            |((n, c, h, w), (kh, kw), (sh, sw), (ph, pw))| {
                // PyTorch allows padding up to half the window
                (2 * ph <= kh && 2 * pw <= kw && h + 2 * ph >= kh && w + 2 * pw >= kw).then_some((
                    [n, c, h, w],
                    [kh, kw],
                    [sh, sw],
                    [ph, pw],
                ))
            },
        )
        .prop_flat_map(|(s, k, st, p)| (values(s.to_vec(), REAL), Just(k), Just(st), Just(p)))
}

/// An NCHW-like tensor whose channels split into `groups`.
fn grouped_input() -> impl Strategy<Value = (Tensor, usize)> {
    (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=3, 1usize..=3)
        .prop_flat_map(|(n, g, per, h, w)| (values(vec![n, g * per, h, w], REAL), Just(g)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv2d((xs, ws, spec) in geometry(), seed in any::<u64>()) {
        let (x, w) = (Rng::new(seed).normal(&xs, DType::F64), Rng::new(!seed).normal(&ws, DType::F64));
        check("conv2d", |v| v[0].conv2d(&v[1], spec), &[x, w], exact(seed))?;
    }

    #[test]
    fn conv2d_bias((xs, ws, spec) in geometry(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (x, w, b) = (rng.normal(&xs, DType::F64), rng.normal(&ws, DType::F64), rng.normal(&[ws[0]], DType::F64));
        check("conv2d_bias", |v| v[0].conv2d_bias(&v[1], &v[2], spec), &[x, w, b], exact(seed))?;
    }

    #[test]
    fn conv_transpose2d((u, w, spec, op) in transposed(), seed in any::<u64>()) {
        check("conv_transpose2d", |v| v[0].conv_transpose2d(&v[1], spec, op), &[u, w], exact(seed))?;
    }

    #[test]
    fn conv2d_weight((xs, ws, spec) in geometry(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.normal(&xs, DType::F64);
        let gy = rng.normal(&out_shape(&xs, &ws, &spec), DType::F64);
        let k = [ws[2], ws[3]];
        check("conv2d_weight", |v| v[0].conv2d_weight(&v[1], spec, k), &[x, gy], exact(seed))?;
    }

    /// Two convs with a SiLU between: the second derivatives are no longer only cross terms.
    #[test]
    fn conv_silu_conv((xs, ws, spec) in geometry(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (x, w) = (rng.normal(&xs, DType::F64), rng.normal(&ws, DType::F64).mul_scalar(0.5));
        let ys = out_shape(&xs, &ws, &spec);
        let w2 = rng.normal(&[2, ys[1], 1, 1], DType::F64);
        let f = |v: &[Var]| v[0].conv2d(&v[1], spec).silu().conv2d(&v[2], Conv2dSpec::new());
        check("conv_silu_conv", f, &[x, w, w2], smooth(seed))?;
    }

    #[test]
    fn avg_pool2d((x, k, s, p) in pool_input(), seed in any::<u64>()) {
        check("avg_pool2d", |v| v[0].avg_pool2d(k, s, p), &[x], exact(seed))?;
    }

    #[test]
    fn upsample_nearest2d(x in tensor(4..=4, REAL), fh in 1usize..=3, fw in 1usize..=3, seed in any::<u64>()) {
        check("upsample_nearest2d", |v| v[0].upsample_nearest2d([fh, fw]), &[x], exact(seed))?;
    }

    #[test]
    fn group_norm((x, g) in grouped_input(), seed in any::<u64>()) {
        check("group_norm", |v| v[0].group_norm(g, 1e-5), &[x], smooth(seed))?;
    }

    #[test]
    fn layer_norm(x in tensor(2..=3, REAL), dims in 1usize..=2, seed in any::<u64>()) {
        let dims = dims.min(x.rank() - 1);
        check("layer_norm", |v| v[0].layer_norm(dims, 1e-5), &[x], smooth(seed))?;
    }
}

/// A conv rule that drops the weight's contribution to the input gradient's own derivative
/// (it detaches w inside the rule) passes gradcheck and fails gradgradcheck: the conv checks
/// can see second-order mistakes.
#[test]
fn detached_conv_rule_fails_gradgradcheck() {
    let spec = Conv2dSpec::new().padding(1);
    let f = |v: &[Var]| {
        let out = v[0].value().conv2d(v[1].value(), spec);
        v[0].tape()
            .record(out, &[&v[0], &v[1]], move |g, ins, _, _| {
                vec![
                    Some(g.conv_transpose2d(&ins[1].detach(), spec, [0, 0])),
                    Some(ins[0].conv2d_weight(g, spec, [3, 3])),
                ]
            })
    };
    let mut rng = Rng::new(2);
    let x = rng.normal(&[2, 2, 4, 4], DType::F64);
    let w = rng.normal(&[3, 2, 3, 3], DType::F64);
    assert!(gradcheck(f, &[x.clone(), w.clone()], &exact(1)).is_ok());
    let err = gradgradcheck(f, &[x, w], &exact(1)).unwrap_err();
    assert_eq!(err.order, 2);
}
