//! A conv energy is an MLP whose weight matrices are structured: unrolling every conv (and the
//! pooling after it) into its dense matrix gives an [`Mlp`] with the same energy. The DSM, SSM
//! and exact-SM losses of the two, in f64 on the same batch, noise and projections, must agree
//! to 1e-10 relative: the conv ops, their derivative rules of every order and the objectives'
//! handling of image-shaped models are then as right as the dense path's.

use ebm_autodiff::Tape;
use ebm_core::{Conv2dSpec, DType, Rng, Tensor};
use ebm_nn::{ConvEnergy, ConvEnergyConfig, EnergyModel, Mlp, MlpConfig, Module};
use ebm_objectives::{DenoisingScoreMatching, ExactScoreMatching, Objective, SlicedScoreMatching};

/// The dense `[out, in]` weight and `[out]` bias of an affine map on rows of `d_in` numbers.
fn unroll(d_in: usize, f: impl Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
    let b = f(&Tensor::zeros(&[1, d_in], DType::F64));
    let mut eye = vec![0.0; d_in * d_in];
    (0..d_in).for_each(|i| eye[i * d_in + i] = 1.0);
    let cols = f(&Tensor::from_vec(eye, &[d_in, d_in])).sub(&b); // row i = A·eᵢ
    (cols.t(), b.reshape(&[usize::MAX]))
}

/// The MLP whose layers are the conv energy's affine maps, unrolled.
fn dense_twin(m: &ConvEnergy) -> Mlp {
    let p = |n: &str| m.params().by_name(n).unwrap().clone();
    let same = Conv2dSpec::new().padding(1);
    let conv = |z: &Tensor, shape: [usize; 3], w: &str, b: &str| {
        let n = z.shape()[0];
        let c = p(b).numel();
        z.reshape(&[n, shape[0], shape[1], shape[2]])
            .conv2d(&p(w), same)
            .add(&p(b).reshape(&[1, c, 1, 1]))
    };
    let flat = |t: Tensor| t.reshape(&[t.shape()[0], usize::MAX]);
    let layers = [
        unroll(25, |z| {
            flat(conv(z, [1, 5, 5], "conv_in.weight", "conv_in.bias"))
        }),
        unroll(75, |z| {
            let h = conv(z, [3, 5, 5], "stages.0.conv.weight", "stages.0.conv.bias");
            flat(h.avg_pool2d([2, 2], [2, 2], [0, 0]))
        }),
        unroll(12, |z| {
            flat(conv(
                z,
                [3, 2, 2],
                "stages.1.conv.weight",
                "stages.1.conv.bias",
            ))
        }),
        unroll(8, |z| {
            let pooled = z.reshape(&[z.shape()[0], 2, 4]).sum_axes(&[2], false);
            pooled
                .matmul_t(&p("head.weight"), false, true)
                .add(&p("head.bias"))
        }),
    ];
    let mut mlp = Mlp::with_dtype(
        MlpConfig::new(&[25, 75, 12, 8, 1]),
        &mut Rng::new(0),
        DType::F64,
    );
    for (i, (w, b)) in layers.into_iter().enumerate() {
        let params = mlp.params_mut();
        let (wi, bi) = (
            params.index_of(&format!("l{i}.weight")).unwrap(),
            params.index_of(&format!("l{i}.bias")).unwrap(),
        );
        params.set(wi, w);
        params.set(bi, b);
    }
    mlp
}

#[test]
fn score_matching_losses_of_a_conv_energy_equal_its_unrolled_mlp() {
    let mut rng = Rng::new(7);
    let conv = ConvEnergy::with_dtype(
        ConvEnergyConfig::new([1, 5, 5], &[3, 2]),
        &mut rng,
        DType::F64,
    );
    let mlp = dense_twin(&conv);
    let x = rng.normal(&[6, 25], DType::F64);
    let e = (conv.energy(&x), mlp.energy(&x));
    assert!(
        e.0.max_abs_diff(&e.1) <= 1e-12 * e.1.max_abs().max(1.0),
        "energies {e:?}"
    );
    let z = rng.normal(&[6, 25], DType::F64);
    let v = rng.normal(&[6, 25], DType::F64);
    let losses = |m: &dyn EnergyModel| {
        let tape = Tape::new();
        let p = m.params().bind(&tape);
        let dsm = DenoisingScoreMatching::new(0.1).loss_with_noise(&tape, m, &p, &x, &z);
        let ssm = SlicedScoreMatching::default().loss_with_projections(
            &tape,
            m,
            &p,
            &x,
            std::slice::from_ref(&v),
        );
        [dsm.item(), ssm.item()]
    };
    let esm = |m: &dyn ebm_nn::Model| {
        let tape = Tape::new();
        let p = m.params().bind(&tape);
        ExactScoreMatching
            .loss(&tape, m, &p, &[], &x, &mut Rng::new(1))
            .item()
    };
    let (a, b) = (losses(&conv), losses(&mlp));
    let all = [
        ("dsm", a[0], b[0]),
        ("ssm", a[1], b[1]),
        ("esm", esm(&conv), esm(&mlp)),
    ];
    for (name, got, want) in all {
        let err = (got - want).abs() / want.abs();
        eprintln!(
            "{name}: conv {got:.15e}, unrolled MLP {want:.15e}, relative difference {err:.2e}"
        );
        assert!(err <= 1e-10, "{name}: {got} vs {want}");
    }
}
