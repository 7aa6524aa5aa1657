//! Good PNG folders and `.npy` image arrays load; damaged ones give one clear error, never a
//! panic or a huge allocation.

use super::*;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-images-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PNG of `color` and `depth` with the raw (interleaved, big-endian for 16-bit) `data`.
#[cfg(feature = "png")]
fn png_bytes(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
    }
    out
}

/// A `.npy` file of `descr` values (raw little-endian bytes) and `shape`.
fn npy_bytes(descr: &str, shape: &[usize], raw: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(raw);
    out
}

#[cfg(feature = "png")]
#[test]
fn png_folders_load_in_name_order_as_channel_major_pixels() {
    use png::{BitDepth, ColorType};
    let dir = temp_dir("good");
    // b.png: gray 3×2; a.png: the same shape; names sort a before b
    let gray: Vec<u8> = (0..6).map(|v| v * 40).collect();
    std::fs::write(
        dir.join("b.png"),
        png_bytes(3, 2, ColorType::Grayscale, BitDepth::Eight, &gray),
    )
    .unwrap();
    let first: Vec<u8> = (0..6).map(|v| 250 - v).collect();
    std::fs::write(
        dir.join("a.png"),
        png_bytes(3, 2, ColorType::Grayscale, BitDepth::Eight, &first),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), b"not an image").unwrap();
    let im = read_png_folder(&dir).unwrap();
    assert_eq!((im.shape, im.len()), ([1, 2, 3], 2));
    assert_eq!(im.pixels, [first, gray].concat());
    let x = im.dequantized(&mut Rng::new(0), DType::F64);
    assert_eq!(x.shape(), &[2, 6]);
    for (v, &p) in x.to_vec_f64().iter().zip(&im.pixels) {
        assert!(*v >= f64::from(p) / 256.0 && *v < (f64::from(p) + 1.0) / 256.0);
    }

    // RGBA drops alpha and goes channel-major; 16-bit keeps the high byte
    let rgba: Vec<u8> = (0..2 * 2 * 4).map(|v| v as u8 * 7).collect();
    let (s, px) = decode_png(
        &png_bytes(2, 2, ColorType::Rgba, BitDepth::Eight, &rgba),
        "c.png",
    )
    .unwrap();
    assert_eq!(s, [3, 2, 2]);
    for c in 0..3 {
        for k in 0..4 {
            assert_eq!(px[c * 4 + k], rgba[k * 4 + c]);
        }
    }
    let wide: Vec<u8> = vec![0x12, 0x34, 0xAB, 0xCD];
    let (s, px) = decode_png(
        &png_bytes(2, 1, ColorType::Grayscale, BitDepth::Sixteen, &wide),
        "d.png",
    )
    .unwrap();
    assert_eq!((s, px), ([1, 1, 2], vec![0x12, 0xAB]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CRC-32 (IEEE), to craft PNG chunks the decoder accepts up to the point under test.
#[cfg(feature = "png")]
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(feature = "png")]
#[test]
fn damaged_pngs_give_one_clear_error() {
    use png::{BitDepth, ColorType};
    let good = png_bytes(4, 4, ColorType::Grayscale, BitDepth::Eight, &[9; 16]);
    // a valid signature and IHDR declaring 100000 × 100000 RGBA pixels, then nothing
    let mut huge = good[..8].to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    huge.extend(13u32.to_be_bytes());
    huge.extend(&ihdr);
    huge.extend(crc32(&ihdr).to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("header only", good[..20].to_vec()),
        ("wrong magic", [&b"\x88PNG"[..], &good[4..]].concat()),
        ("empty", Vec::new()),
        ("huge declared", huge),
    ];
    for (what, bytes) in cases {
        let e = decode_png(&bytes, "f.png").unwrap_err().to_string();
        assert!(e.starts_with("f.png: "), "{what}: {e}");
        assert!(!e.contains('\n'), "{what}: {e}");
    }

    // a folder with two shapes, and an empty folder
    let dir = temp_dir("shapes");
    std::fs::write(dir.join("a.png"), &good).unwrap();
    std::fs::write(
        dir.join("b.png"),
        png_bytes(5, 4, ColorType::Grayscale, BitDepth::Eight, &[1; 20]),
    )
    .unwrap();
    let e = read_png_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("every image of a folder must have one shape"),
        "{e}"
    );
    let empty = temp_dir("empty");
    let e = read_png_folder(&empty).unwrap_err().to_string();
    assert!(e.contains("no .png files"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

#[cfg(feature = "png")]
#[test]
fn corrupted_pngs_never_panic() {
    use png::{BitDepth, ColorType};
    let px: Vec<u8> = (0..8 * 8 * 3).map(|v| v as u8).collect();
    let good = png_bytes(8, 8, ColorType::Rgb, BitDepth::Eight, &px);
    let mut rng = Rng::new(7);
    let (mut ok, mut refused) = (0, 0);
    for case in 0..400 {
        let mut b = good.clone();
        let u = rng.uniform(&[8], 0.0, 1.0, DType::F64).to_vec_f64();
        match case % 3 {
            0 => b.truncate((u[0] * b.len() as f64) as usize),
            1 => {
                for k in 0..4 {
                    let at = (u[2 * k] * b.len() as f64) as usize;
                    b[at] = (u[2 * k + 1] * 256.0) as u8;
                }
            }
            _ => {
                // the header's dimensions, where a crafted size would be
                let at = 16 + (u[0] * 8.0) as usize;
                b[at] = (u[1] * 256.0) as u8;
            }
        }
        match decode_png(&b, "f.png") {
            Ok((s, p)) => {
                assert_eq!(p.len(), s.iter().product::<usize>());
                ok += 1;
            }
            Err(e) => {
                assert!(e.to_string().starts_with("f.png: "), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 100, "{ok} accepted, {refused} refused");
}

#[cfg(feature = "npy")]
#[test]
fn npy_images_load_in_either_layout() {
    // 2 images of 3 channels, 2×2: NCHW values v = 100·i + 10·c + (2y + x)
    let nchw: Vec<u8> = (0..2)
        .flat_map(|i| (0..3).flat_map(move |c| (0..4).map(move |k| (100 * i + 10 * c + k) as u8)))
        .collect();
    let mut nhwc = vec![0u8; 24];
    for i in 0..2 {
        for c in 0..3 {
            for k in 0..4 {
                nhwc[i * 12 + k * 3 + c] = nchw[i * 12 + c * 4 + k];
            }
        }
    }
    let a = read_npy_images(&npy_bytes("|u1", &[2, 3, 2, 2], &nchw), None, "a").unwrap();
    let b = read_npy_images(&npy_bytes("|u1", &[2, 2, 2, 3], &nhwc), None, "b").unwrap();
    assert_eq!(a, b);
    assert_eq!((a.shape, a.pixels.clone()), ([3, 2, 2], nchw.clone()));
    // an explicit layout wins over the inference
    let c = read_npy_images(
        &npy_bytes("|u1", &[2, 2, 2, 3], &nhwc),
        Some(ImageLayout::Nhwc),
        "c",
    )
    .unwrap();
    assert_eq!(c, a);
    // [n, H, W] is one channel; floats in [0, 1] are 8-bit levels
    let f: Vec<f32> = [0.0f32, 1.0, 128.0 / 255.0, 3.0 / 255.0].to_vec();
    let raw: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    let g = read_npy_images(&npy_bytes("<f4", &[1, 2, 2], &raw), None, "g").unwrap();
    assert_eq!((g.shape, g.pixels), ([1, 2, 2], vec![0, 255, 128, 3]));
}

#[cfg(feature = "npy")]
#[test]
fn damaged_npy_images_give_one_clear_error() {
    let good = npy_bytes("|u1", &[2, 1, 2, 2], &[7; 8]);
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let cases: Vec<(&str, Vec<u8>, Option<ImageLayout>, &str)> = vec![
        ("truncated", good[..good.len() - 3].to_vec(), None, ""),
        (
            "wrong magic",
            [&b"\x93NUMPX"[..], &good[6..]].concat(),
            None,
            "not a valid .npy",
        ),
        (
            "rank 2",
            npy_bytes("|u1", &[2, 4], &[7; 8]),
            None,
            "expected images",
        ),
        (
            "rank 5",
            npy_bytes("|u1", &[1, 1, 2, 2, 2], &[7; 8]),
            None,
            "expected images",
        ),
        (
            "ambiguous",
            npy_bytes("|u1", &[1, 3, 2, 3], &[7; 18]),
            None,
            "nchw:FILE",
        ),
        (
            "no channel axis",
            npy_bytes("|u1", &[1, 2, 2, 2], &[7; 8]),
            None,
            "cannot tell the layout",
        ),
        (
            "4 channels",
            npy_bytes("|u1", &[1, 4, 1, 1], &[7; 4]),
            Some(ImageLayout::Nchw),
            "expected 1 or 3",
        ),
        (
            "int above 255",
            npy_bytes("<i2", &[1, 1, 1], &300i16.to_le_bytes()),
            None,
            "is not a pixel",
        ),
        (
            "negative int",
            npy_bytes("<i2", &[1, 1, 1], &(-1i16).to_le_bytes()),
            None,
            "is not a pixel",
        ),
        (
            "float above 1",
            npy_bytes("<f4", &[1, 1, 2], &f32s(&[0.5, 1.5])),
            None,
            "is not a pixel",
        ),
        (
            "NaN",
            npy_bytes("<f4", &[1, 1, 1], &f32s(&[f32::NAN])),
            None,
            "is not a pixel",
        ),
        (
            "huge declared",
            npy_bytes("|u1", &[4_294_967_296, 4_294_967_296, 1, 1], &[7; 8]),
            None,
            "declares shape",
        ),
        (
            "empty",
            npy_bytes("|u1", &[0, 1, 2, 2], &[]),
            None,
            "is empty",
        ),
    ];
    for (what, bytes, layout, want) in cases {
        let e = read_npy_images(&bytes, layout, "f.npy")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.npy: ") && e.contains(want), "{what}: {e}");
        assert!(!e.contains('\n'), "{what}: {e}");
    }
}

#[test]
fn the_logit_transform_inverts_and_its_log_det_is_the_jacobian() {
    let l = Logit { lambda: 1e-3 };
    let x = Tensor::from_f64s(&[0.01, 0.5, 0.9, 0.999, 0.2, 0.3], &[2, 3], DType::F64);
    let y = l.apply(&x);
    assert!(l.invert(&y).max_abs_diff(&x) < 1e-12);
    // the log-det is Σ log dyᵢ/dxᵢ, by central differences
    let ld = l.log_det(&x);
    let h = 1e-6;
    let xs = x.to_vec_f64();
    for (r, row) in xs.chunks(3).enumerate() {
        let fd: f64 = row
            .iter()
            .map(|&v| {
                let f = |v: f64| {
                    let s = l.lambda + (1.0 - 2.0 * l.lambda) * v;
                    (s / (1.0 - s)).ln()
                };
                ((f(v + h) - f(v - h)) / (2.0 * h)).ln()
            })
            .sum();
        assert!((ld[r] - fd).abs() < 1e-6, "row {r}: {} vs {fd}", ld[r]);
    }
    assert!(Logit { lambda: 0.5 }.check().is_err());
    assert!(Logit { lambda: 0.0 }.check().is_err());
}
