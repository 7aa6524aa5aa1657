//! Names, shapes and derivatives of the conv energy.

use super::*;
use crate::check_energy;
use crate::Checkpoint;
use ebm_autodiff::CheckOpts;
use ebm_core::Tensor;

fn small(blocks: usize, norm: usize, sn: bool) -> ConvEnergy {
    let mut cfg = ConvEnergyConfig::new([1, 6, 6], &[4, 6])
        .blocks(blocks)
        .norm_groups(norm);
    if sn {
        cfg = cfg.spectral_norm(3);
    }
    ConvEnergy::with_dtype(cfg, &mut Rng::new(3), DType::F64)
}

#[test]
fn names_follow_a_pytorch_module_tree() {
    let m = small(1, 2, false);
    let names = m.params().names();
    for want in [
        "conv_in.weight",
        "conv_in.bias",
        "stages.0.blocks.0.norm1.weight",
        "stages.0.blocks.0.conv1.weight",
        "stages.0.blocks.0.conv2.bias",
        "stages.1.blocks.0.shortcut.weight",
        "head.weight",
        "head.bias",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert_eq!(
        m.params()
            .by_name("stages.1.blocks.0.conv1.weight")
            .unwrap()
            .shape(),
        &[6, 4, 3, 3]
    );
    let plain = small(0, 0, false);
    assert_eq!(
        plain.params().names(),
        [
            "conv_in.weight",
            "conv_in.bias",
            "stages.0.conv.weight",
            "stages.0.conv.bias",
            "stages.1.conv.weight",
            "stages.1.conv.bias",
            "head.weight",
            "head.bias"
        ]
    );
}

#[test]
fn energy_per_row_from_flat_or_image_rows() {
    let m = small(1, 2, true);
    let x = Rng::new(4).normal(&[5, 36], DType::F64);
    let e = m.energy(&x);
    assert_eq!(e.shape(), &[5]);
    assert_eq!(
        e.to_vec_f64(),
        m.energy(&x.reshape(&[5, 1, 6, 6])).to_vec_f64()
    );
    // rows are independent: the energy of row 2 alone is the same
    let one = m.energy(&x.narrow(0, 2, 1));
    assert!((one.item() - e.to_vec_f64()[2]).abs() < 1e-13);
    assert_eq!(m.score(&x).shape(), &[5, 36]);
}

#[test]
fn first_and_second_derivatives_in_input_and_parameters() {
    // plain and residual with GroupNorm: every op on the path, in x and θ jointly
    for m in [small(0, 0, false), small(1, 2, false)] {
        let x = Rng::new(5).normal(&[2, 36], DType::F64);
        check_energy(&m, &x, &CheckOpts::default()).unwrap();
    }
}

#[test]
fn config_round_trips_and_checkpoints_restore() {
    let m = small(1, 2, true);
    let cfg = ConvEnergyConfig::from_json(&m.config()).unwrap();
    assert_eq!(&cfg, m.net_config());
    assert!(ConvEnergyConfig::from_json(&serde_json::json!({"kind": "mlp"})).is_err());
    let dir = std::env::temp_dir().join(format!("ebm-conv-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    Checkpoint::new(&m).save(&path).unwrap();
    let mut other = ConvEnergy::with_dtype(cfg, &mut Rng::new(99), DType::F64);
    Checkpoint::load(&path)
        .unwrap()
        .restore(&mut other, None, None)
        .unwrap();
    let x = Tensor::ones(&[1, 36], DType::F64);
    assert_eq!(other.energy(&x).to_vec_f64(), m.energy(&x).to_vec_f64());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_flatten_head_weighs_each_position_and_has_exact_derivatives() {
    let cfg = ConvEnergyConfig::new([1, 6, 6], &[4, 6]).head(ConvHead::Flatten);
    assert_eq!(cfg.last_map(), [3, 3]);
    let m = ConvEnergy::with_dtype(cfg.clone(), &mut Rng::new(3), DType::F64);
    assert_eq!(m.params().by_name("head.weight").unwrap().shape(), &[1, 54]);
    let x = Rng::new(5).normal(&[2, 36], DType::F64);
    check_energy(&m, &x, &CheckOpts::default()).unwrap();
    // with the head's weights equal at every position it is the sum-pooled energy
    let pooled = ConvEnergy::with_dtype(
        ConvEnergyConfig::new([1, 6, 6], &[4, 6]),
        &mut Rng::new(3),
        DType::F64,
    );
    let mut flat = m.clone();
    let w = pooled.params().by_name("head.weight").unwrap().to_vec_f64();
    let tiled: Vec<f64> = w.iter().flat_map(|&v| [v; 9]).collect();
    flat.params_mut().update(|name, _| {
        if name == "head.weight" {
            Tensor::from_f64s(&tiled, &[1, 54], DType::F64)
        } else {
            pooled.params().by_name(name).unwrap().clone()
        }
    });
    let (a, b) = (flat.energy(&x).to_vec_f64(), pooled.energy(&x).to_vec_f64());
    for (a, b) in a.iter().zip(&b) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert_eq!(ConvEnergyConfig::from_json(&m.config()).unwrap(), cfg);
    // sum pooling is left out of written configs: those of earlier runs still compare equal
    assert!(pooled.config().get("head").is_none());
    assert_eq!(m.config()["head"], "flatten");
}
