//! Good IDX files load; damaged ones give one clear error, never a panic or a huge allocation.

use super::*;
use std::io::Write;

fn idx_bytes(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| b.extend(d.to_be_bytes()));
    b.extend(values);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn plain_and_gzip_files_load_and_dequantise() {
    let values: Vec<u8> = (0..2 * 3 * 4).map(|v| (v * 10) as u8).collect();
    let raw = idx_bytes(&[2, 3, 4], &values);
    for (name, bytes) in [("plain-idx3", raw.clone()), ("gz-idx3.gz", gzip(&raw))] {
        let idx = read_idx(&temp(name, &bytes)).unwrap();
        assert_eq!(idx.dims, vec![2, 3, 4]);
        assert_eq!(idx.values, values);
        let x = idx
            .dequantized_images(&mut Rng::new(0), DType::F64)
            .unwrap();
        assert_eq!(x.shape(), &[2, 12]);
        for (v, &p) in x.to_vec_f64().iter().zip(&values) {
            assert!(*v >= p as f64 / 256.0 && *v < (p as f64 + 1.0) / 256.0);
        }
    }
}

#[test]
fn damaged_files_give_one_clear_error() {
    let good = idx_bytes(&[2, 2, 2], &[1; 8]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated body",
            good[..good.len() - 3].to_vec(),
            "needs 8 bytes, the file holds 5",
        ),
        ("truncated header", good[..6].to_vec(), "truncated header"),
        (
            "wrong magic",
            [&[1u8, 0][..], &good[2..]].concat(),
            "not an IDX file",
        ),
        (
            "float type",
            [&[0u8, 0, 0x0d][..], &good[3..]].concat(),
            "type 0x0d",
        ),
        (
            "huge declared",
            idx_bytes(&[u32::MAX, u32::MAX, 2], &[0; 8]),
            "larger than",
        ),
        (
            "too long",
            idx_bytes(&[2, 2, 2], &[0; 9]),
            "the file holds 9",
        ),
        ("empty", vec![], "not an IDX file"),
    ];
    for (what, bytes, want) in cases {
        let err = parse_idx(&bytes, "f.idx").unwrap_err().to_string();
        assert!(
            err.starts_with("f.idx: ") && err.contains(want),
            "{what}: {err}"
        );
    }
    // a gzip stream cut short, and a non-image IDX
    let gz = gzip(&good);
    let err = read_idx(&temp("cut.gz", &gz[..gz.len() / 2]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid gzip stream"), "{err}");
    let labels = parse_idx(&idx_bytes(&[3], &[1, 2, 3]), "labels").unwrap();
    assert!(labels
        .dequantized_images(&mut Rng::new(0), DType::F32)
        .is_err());
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(5);
    for len in 0..200 {
        let bytes: Vec<u8> = rng
            .uniform(&[len], 0.0, 256.0, DType::F64)
            .to_vec_f64()
            .iter()
            .map(|&v| v as u8)
            .collect();
        let _ = parse_idx(&bytes, "fuzz");
        // with a valid prefix the header fields themselves are random
        let mut b = vec![0, 0, 0x08, (len % 4) as u8];
        b.extend(&bytes);
        let _ = parse_idx(&b, "fuzz");
    }
}

#[test]
fn missing_fashion_mnist_says_how_to_install() {
    let err = fashion_mnist_files(Some(Path::new("/nonexistent-ebm-dir"))).unwrap_err();
    assert!(
        err.to_string()
            .contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
}
