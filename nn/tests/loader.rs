//! The checkpoint loader never panics and never returns a silently different model:
//! truncations and byte flips give an error or the original content (property tests), and
//! each kind of mismatch gives a typed error that names the tensor or key.

use ebm_core::{DType, Rng, Tensor};
use ebm_nn::checkpoint::{edit_header, resign, FORMAT};
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
    let mut named = named(&m);
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
    let named = named(&m);
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

// ---------------------------------------------------------------------------------------------
// Files that pass the checksum but hold impossible contents (re-signed after editing)

/// The header JSON of safetensors bytes.
fn header_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(&bytes[8..header_len(bytes)]).unwrap()
}

/// `bytes` with `edit` applied to the header, not re-signed.
fn unsigned(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    edit_header(bytes, edit).unwrap()
}

/// The sample checkpoint with `edit` applied to its header, re-signed (None when the edit
/// broke the safetensors structure itself, which the loader must also reject).
fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Option<Vec<u8>> {
    let (_, bytes) = sample_checkpoint();
    resign(&unsigned(bytes, edit)).ok()
}

/// The sample checkpoint with the first value of tensor `name` set to `value`, re-signed.
fn poked(name: &str, value: f32) -> Vec<u8> {
    let (_, bytes) = sample_checkpoint();
    let at =
        header_len(bytes) + header_of(bytes)[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut b = bytes.clone();
    b[at..at + 4].copy_from_slice(&value.to_le_bytes());
    resign(&b).unwrap()
}

/// A model's parameters as named tensors.
fn named(m: &impl Module) -> Vec<(String, Tensor)> {
    m.params()
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn set_meta(header: &mut serde_json::Value, key: &str, value: &str) {
    header["__metadata__"][key] = serde_json::Value::String(value.into());
}

#[test]
fn resigning_an_unedited_file_gives_the_same_checkpoint() {
    let (c, bytes) = sample_checkpoint();
    let again = resign(bytes).unwrap();
    assert!(Checkpoint::from_bytes(&again).unwrap().bit_eq(c));
    // an edit without re-signing is caught; with it, the edit is what the loader judges
    let edit = unsigned(bytes, |h| set_meta(h, "step", "7"));
    assert!(matches!(
        Checkpoint::from_bytes(&edit).unwrap_err(),
        CheckpointError::ChecksumMismatch { .. }
    ));
    assert_eq!(
        Checkpoint::from_bytes(&resign(&edit).unwrap())
            .unwrap()
            .step,
        7
    );
}

#[test]
fn non_finite_values_are_refused_naming_the_tensor() {
    // a NaN in a parameter, an ∞ in the optimizer state, a NaN in the EMA weights
    for (name, value) in [
        ("l0.weight", f32::NAN),
        ("optim.exp_avg_sq.l1.bias", f32::INFINITY),
        ("ema.l2.weight", f32::NEG_INFINITY),
    ] {
        let b = poked(name, value);
        let err = Checkpoint::from_bytes(&b).unwrap_err();
        assert!(
            matches!(err, CheckpointError::NonFinite { name: ref n, index: 0, .. } if n == name),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
        let mut m = Mlp::new(MlpConfig::new(&[2, 4, 4, 1]), &mut Rng::new(0));
        assert!(load_weights_from_bytes(&b, &mut m).is_err());
    }
    // a plain file (no checksum) with a NaN weight: refused by load_weights, naming it
    let m = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0));
    let mut named = named(&m);
    named[1].1 = Tensor::full(named[1].1.shape(), f64::NAN, DType::F32);
    let mut target = m.clone();
    let err =
        load_weights_from_bytes(&tensors_to_bytes(&named, None).unwrap(), &mut target).unwrap_err();
    assert!(
        matches!(err, CheckpointError::NonFinite { ref name, .. } if *name == named[1].0),
        "{err}"
    );
    assert!(target.params().bit_eq(m.params()), "nothing was changed");
}

#[test]
fn the_writer_refuses_non_finite_state() {
    let mut m = Mlp::new(MlpConfig::new(&[2, 3, 1]), &mut Rng::new(0));
    let mut opt = Optimizer::adam(1e-2, m.params());
    let g: Vec<Tensor> = m
        .params()
        .tensors()
        .iter()
        .map(|t| t.full_like(f64::INFINITY))
        .collect();
    opt.step(m.params_mut(), &g);
    let err = Checkpoint::new(&m)
        .with_optimizer(&opt)
        .to_bytes()
        .unwrap_err();
    assert!(matches!(err, CheckpointError::NonFinite { .. }), "{err}");
    let dir = std::env::temp_dir().join(format!("ebm-nn-nonfinite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.safetensors");
    assert!(Checkpoint::new(&m).with_optimizer(&opt).save(&p).is_err());
    assert!(!p.exists(), "nothing was written");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no temp file left"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn huge_declared_shapes_are_errors_not_allocations() {
    for shape in [
        serde_json::json!([1u64 << 40, 1u64 << 40]),
        serde_json::json!([u64::MAX, 2]),
        serde_json::json!([0, 4]),
        serde_json::json!([1u64 << 62]),
    ] {
        let b = edited(|h| h["l0.weight"]["shape"] = shape.clone());
        if let Some(b) = b {
            let err = Checkpoint::from_bytes(&b).unwrap_err();
            assert!(
                !matches!(err, CheckpointError::ChecksumMismatch { .. }),
                "{shape}: {err}"
            );
        }
        // unsigned, as a corrupted file would be
        let (_, bytes) = sample_checkpoint();
        let raw = unsigned(bytes, |h| h["l0.weight"]["shape"] = shape.clone());
        assert!(Checkpoint::from_bytes(&raw).is_err());
        assert!(read_tensors_from_bytes(&raw).is_err());
    }
}

#[test]
fn checksummed_metadata_edits_give_named_errors() {
    for (key, value, want) in [
        ("step", "-1", "step"),
        ("step", "1e3", "step"),
        ("rng", "[1,2]", "rng"),
        ("params", "[\"l0.weight\",\"l0.weight\"]", "params"),
        ("params", "[\"optim.x\"]", "params"),
        ("model", "[]", "model"),
        ("model", "{", "model"),
        ("extra", "{\"a\": 1}", "extra"),
        ("format", "ebm-checkpoint/2", "format"),
        ("surprise", "1", "surprise"),
        (
            "optimizer",
            "{\"config\":{\"kind\":\"adam\",\"lr\":1e999},\"lr\":0.1,\"step\":1}",
            "optimizer",
        ),
        (
            "optimizer",
            "{\"config\":{\"kind\":\"sgd\",\"lr\":0.1,\"momentum\":-3,\"weight_decay\":0,\"nesterov\":false,\"dampening\":0},\"lr\":0.1,\"step\":1}",
            "optimizer",
        ),
        (
            "ema",
            "{\"config\":{\"decay\":2.0,\"warmup\":false},\"updates\":1}",
            "ema",
        ),
        ("ema", "{\"config\":{\"decay\":0.5}}", "ema"),
    ] {
        let b = edited(|h| set_meta(h, key, value)).unwrap();
        let err = Checkpoint::from_bytes(&b).unwrap_err();
        assert!(
            matches!(err, CheckpointError::BadMetadata { key: ref k, .. } if k == want),
            "{key} = {value}: {err}"
        );
    }
    // a tensor the parameter list does not name, and one it names that is absent
    let b = edited(|h| set_meta(h, "params", "[\"l0.weight\"]")).unwrap();
    assert!(matches!(
        Checkpoint::from_bytes(&b).unwrap_err(),
        CheckpointError::UnexpectedTensor { .. }
    ));
    let b = edited(|h| set_meta(h, "params", "[\"l9.weight\"]")).unwrap();
    assert!(matches!(
        Checkpoint::from_bytes(&b).unwrap_err(),
        CheckpointError::MissingTensor { ref name } if name == "l9.weight"
    ));
}

/// A header edit: a metadata value or a tensor entry replaced by something plausible.
fn header_edit() -> impl Strategy<Value = (usize, serde_json::Value)> {
    let values = prop_oneof![
        Just(serde_json::json!("NaN")),
        Just(serde_json::json!("-1")),
        Just(serde_json::json!("18446744073709551616")),
        Just(serde_json::json!("[]")),
        Just(serde_json::json!("{}")),
        Just(serde_json::json!("")),
        Just(serde_json::json!([0])),
        Just(serde_json::json!([1u64 << 40, 1u64 << 40])),
        Just(serde_json::json!("F16")),
        Just(serde_json::json!("I64")),
        any::<u32>().prop_map(|v| serde_json::json!(v.to_string())),
        any::<f64>().prop_map(|v| serde_json::json!(v.to_string())),
        "[a-z0-9.\\[\\]{}\":,]{0,24}".prop_map(|s| serde_json::json!(s)),
    ];
    (any::<usize>(), values)
}

/// Every (object, key) path of the header: metadata values and tensor fields.
fn header_paths(h: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in h.as_object().unwrap() {
        for f in v.as_object().unwrap().keys() {
            out.push((k.clone(), f.clone()));
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Re-signed header edits: the loader gives an error or a checkpoint whose every tensor
    /// is finite and as long as its shape says; it never panics.
    #[test]
    fn resigned_header_edits_never_panic(edits in prop::collection::vec(header_edit(), 1..=3)) {
        let (_, bytes) = sample_checkpoint();
        let raw = unsigned(bytes, |header| {
            let paths = header_paths(header);
            for (at, value) in edits {
                let (obj, field) = &paths[at % paths.len()];
                header[obj][field] = value;
            }
        });
        let b = resign(&raw).unwrap_or(raw);
        if let Ok(c) = Checkpoint::from_bytes(&b) {
            for (n, t) in c.params.iter() {
                prop_assert_eq!(t.numel(), t.shape().iter().product::<usize>(), "{}", n);
                prop_assert!(t.to_vec_f64().iter().all(|v| v.is_finite()), "{}", n);
            }
        }
        let _ = read_tensors_from_bytes(&b);
        let mut m = Mlp::new(MlpConfig::new(&[2, 4, 4, 1]), &mut Rng::new(0));
        let _ = load_weights_from_bytes(&b, &mut m);
    }
}
