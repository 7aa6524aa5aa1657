//! The checkpoint loader never panics and never returns a silently different model:
//! truncations and byte flips give an error or the original content (property tests), and
//! each kind of mismatch gives a typed error that names the tensor or key.

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::checkpoint::FORMAT;
use ebm_nn::{
    load_weights_from_bytes, read_tensors_from_bytes, tensors_to_bytes, Activation, Checkpoint,
    CheckpointError, Ema, Mlp, MlpConfig, Module, Optimizer, Params, Quadratic,
};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A small checkpoint with every section: 2-4-4-1 MLP after two Adam steps, EMA, RNG, extra.
fn sample_checkpoint() -> &'static (Checkpoint, Vec<u8>) {
    static CELL: OnceLock<(Checkpoint, Vec<u8>)> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut rng = Rng::new(1);
        let mut m = Mlp::new(MlpConfig::new(&[2, 4, 4, 1]), &mut rng);
        let mut opt = Optimizer::adam(1e-2, m.params());
        let mut ema = Ema::new(m.params(), 0.9);
        for _ in 0..2 {
            let g: Vec<Tensor> = m
                .params()
                .tensors()
                .iter()
                .map(|t| rng.normal(t.shape(), DType::F32))
                .collect();
            opt.step(m.params_mut(), &g);
            ema.update(m.params());
        }
        let c = Checkpoint::new(&m)
            .with_optimizer(&opt)
            .with_ema(&ema)
            .with_step(2)
            .with_rng(&rng)
            .with_extra("note", "loader test");
        let bytes = c.to_bytes().unwrap();
        (c, bytes)
    })
}

fn header_len(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Loading `bytes` either fails or gives back exactly the original checkpoint; the lenient
/// readers must not panic either.
fn error_or_original(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (orig, _) = sample_checkpoint();
    if let Ok(c) = Checkpoint::from_bytes(bytes) {
        prop_assert!(
            c.bit_eq(orig),
            "a corrupted file loaded as a different checkpoint"
        );
    }
    let _ = read_tensors_from_bytes(bytes);
    let mut m = Mlp::new(MlpConfig::new(&[2, 4, 4, 1]), &mut Rng::new(0));
    let _ = load_weights_from_bytes(bytes, &mut m);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn truncations_are_errors(cut in any::<prop::sample::Index>()) {
        let (_, bytes) = sample_checkpoint();
        let cut = cut.index(bytes.len());
        let r = Checkpoint::from_bytes(&bytes[..cut]);
        prop_assert!(r.is_err());
        error_or_original(&bytes[..cut])?;
    }

    #[test]
    fn byte_flips_anywhere_give_error_or_original(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..=4)
    ) {
        let (_, bytes) = sample_checkpoint();
        let mut b = bytes.clone();
        for (at, x) in flips {
            let i = at.index(b.len());
            b[i] ^= x;
        }
        error_or_original(&b)?;
    }

    #[test]
    fn byte_flips_in_the_header_give_error_or_original(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..=3)
    ) {
        let (_, bytes) = sample_checkpoint();
        let mut b = bytes.clone();
        let h = header_len(&b);
        for (at, x) in flips {
            let i = at.index(h);
            b[i] ^= x;
        }
        error_or_original(&b)?;
    }
}

#[test]
fn the_sample_round_trips() {
    let (c, bytes) = sample_checkpoint();
    let back = Checkpoint::from_bytes(bytes).unwrap();
    assert!(back.bit_eq(c));
    assert_eq!(back.extra["note"], "loader test");
    assert_eq!(back.rng().unwrap().state(), c.rng.unwrap());
}

#[test]
fn wrong_shape_error_names_the_tensor() {
    let big = Mlp::new(MlpConfig::new(&[2, 128, 128, 1]), &mut Rng::new(0));
    let bytes = Checkpoint::new(&big).to_bytes().unwrap();
    let mut small = Mlp::new(MlpConfig::new(&[2, 128, 64, 1]), &mut Rng::new(0));
    let before = small.params().clone();
    let err = load_weights_from_bytes(&bytes, &mut small).unwrap_err();
    assert!(matches!(err, CheckpointError::WrongShape { ref name, .. } if name == "l1.weight"));
    assert_eq!(
        err.to_string(),
        "checkpoint tensor `l1.weight` has shape [128, 128], but the model expects [64, 128]"
    );
    // nothing was changed
    assert!(small.params().bit_eq(&before));
}

#[test]
fn wrong_dtype_error_names_the_tensor() {
    let mut m = Mlp::with_dtype(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0), DType::F64);
    let bytes = Checkpoint::new(&m).to_bytes().unwrap();
    m.params_mut().cast(DType::F32);
    let err = load_weights_from_bytes(&bytes, &mut m).unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint tensor `l0.weight` has dtype F64, but the model expects F32"
    );
    // a non-float tensor in a plain file
    let mut raw = tensors_to_bytes(
        &[("l0.weight".into(), Tensor::zeros(&[3, 2], DType::F32))],
        None,
    )
    .unwrap();
    let h = header_len(&raw);
    let header = String::from_utf8(raw[8..h].to_vec())
        .unwrap()
        .replace("F32", "I32");
    raw[8..h].copy_from_slice(header.as_bytes());
    let err = read_tensors_from_bytes(&raw).unwrap_err();
    assert!(
        matches!(err, CheckpointError::WrongDtype { ref name, ref found, .. } if name == "l0.weight" && found == "I32"),
        "{err}"
    );
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let m = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0));
    let mut named: Vec<(String, Tensor)> = m
        .params()
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let last = named.pop().unwrap();
    let mut target = m.clone();
    let err =
        load_weights_from_bytes(&tensors_to_bytes(&named, None).unwrap(), &mut target).unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint has no tensor `l1.bias`, which the model needs"
    );
    named.push(last);
    named.push(("head.weight".into(), Tensor::zeros(&[1], DType::F32)));
    let err =
        load_weights_from_bytes(&tensors_to_bytes(&named, None).unwrap(), &mut target).unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint holds tensor `head.weight`, which the model does not have"
    );
    // a checkpoint of another kind of model
    let q = Quadratic::standard(2, DType::F32);
    let mut m = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0));
    let err = Checkpoint::from_bytes(&Checkpoint::new(&q).to_bytes().unwrap())
        .unwrap()
        .restore(&mut m, None, None)
        .unwrap_err();
    assert!(matches!(err, CheckpointError::MissingTensor { ref name } if name == "l0.weight"));
}

#[test]
fn same_shapes_different_config_is_refused() {
    let a = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0));
    let mut b = Mlp::new(
        MlpConfig::new(&[2, 3, 1]).activation(Activation::Tanh),
        &mut Rng::new(0),
    );
    let err =
        load_weights_from_bytes(&Checkpoint::new(&a).to_bytes().unwrap(), &mut b).unwrap_err();
    assert!(
        matches!(err, CheckpointError::ConfigMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("\"activation\":\"silu\""), "{err}");
}

#[test]
fn truncation_names_the_cut_tensor() {
    let m = Mlp::new(MlpConfig::new(&[2, 4, 1]), &mut Rng::new(0));
    let bytes = Checkpoint::new(&m).to_bytes().unwrap();
    // f32 tensors are stored in name order: l0.bias, l0.weight, l1.bias, l1.weight (last)
    let err = Checkpoint::from_bytes(&bytes[..bytes.len() - 2]).unwrap_err();
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("tensor `l1.weight`"), "{err}");
    let err = Checkpoint::from_bytes(&bytes[..20]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("checkpoint is truncated: the header announces"),
        "{err}"
    );
    let err = Checkpoint::from_bytes(&bytes[..5]).unwrap_err();
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err}");
}

#[test]
fn corruption_and_metadata_errors() {
    let (_, bytes) = sample_checkpoint();
    // a flipped data byte: caught by the checksum
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    let err = Checkpoint::from_bytes(&b).unwrap_err();
    assert!(
        matches!(err, CheckpointError::ChecksumMismatch { .. }),
        "{err}"
    );
    // a plain safetensors file is not a checkpoint (but loads as weights)
    let m = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0));
    let named: Vec<(String, Tensor)> = m
        .params()
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let plain = tensors_to_bytes(&named, None).unwrap();
    let err = Checkpoint::from_bytes(&plain).unwrap_err();
    assert!(matches!(err, CheckpointError::BadMetadata { ref key, .. } if key == "__metadata__"));
    let mut target = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(5));
    load_weights_from_bytes(&plain, &mut target).unwrap();
    assert!(target.params().bit_eq(m.params()));
    // another format tag
    let md: HashMap<String, String> = [("format".to_string(), "other/2".to_string())].into();
    let err = Checkpoint::from_bytes(&tensors_to_bytes(&named, Some(md)).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("checkpoint metadata `format` is bad: `other/2` is not `{FORMAT}`")
    );
    // not a safetensors file at all
    let err = Checkpoint::from_bytes(b"\x10\0\0\0\0\0\0\0{not json at all}").unwrap_err();
    assert!(
        matches!(err, CheckpointError::CorruptHeader { .. }),
        "{err}"
    );
}

#[test]
fn restoring_absent_sections_is_an_error() {
    let mut m = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0));
    let c = Checkpoint::from_bytes(&Checkpoint::new(&m).to_bytes().unwrap()).unwrap();
    let mut opt = Optimizer::adam(1e-3, m.params());
    let err = c.restore(&mut m, Some(&mut opt), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint holds no optimizer state, but it was asked to restore one"
    );
}

/// A module whose parameter order is chosen by the test.
struct Bag {
    params: Params,
}

impl Module for Bag {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn config(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "bag" })
    }
}

#[test]
fn parameters_match_by_name_not_position() {
    let (a, b) = (
        Tensor::from_vec(vec![1.0f32, 2.0], &[2]),
        Tensor::from_vec(vec![3.0f32, 4.0, 5.0], &[3]),
    );
    let mut p = Params::new();
    p.push("a", a.clone());
    p.push("b", b.clone());
    let mut src = Bag { params: p };
    let mut opt = Optimizer::sgd(0.1, 0.9, src.params());
    let g = vec![a.ones_like(), b.full_like(2.0)];
    opt.step(src.params_mut(), &g);
    let ema = Ema::new(src.params(), 0.5);
    let bytes = Checkpoint::new(&src)
        .with_optimizer(&opt)
        .with_ema(&ema)
        .to_bytes()
        .unwrap();

    let mut q = Params::new();
    q.push("b", b.zeros_like());
    q.push("a", a.zeros_like());
    let mut dst = Bag { params: q };
    let mut dst_opt = Optimizer::sgd(0.5, 0.9, dst.params());
    let mut dst_ema = Ema::new(dst.params(), 0.1);
    Checkpoint::from_bytes(&bytes)
        .unwrap()
        .restore(&mut dst, Some(&mut dst_opt), Some(&mut dst_ema))
        .unwrap();
    assert_eq!(
        dst.params().get(0).to_vec_f64(),
        src.params().get(1).to_vec_f64()
    );
    assert_eq!(
        dst.params().get(1).to_vec_f64(),
        src.params().get(0).to_vec_f64()
    );
    assert_eq!(dst_opt.param_names(), ["b", "a"]);
    let st = dst_opt.state_tensors();
    assert_eq!(st[0].0, "momentum_buffer.b");
    assert_eq!(st[0].1.to_vec_f64(), vec![2.0, 2.0, 2.0]);
    assert_eq!(dst_ema.params().names(), ["b", "a"]);
    assert_eq!(dst_opt.lr(), 0.1);
}
