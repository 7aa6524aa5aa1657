//! Image sets from files: a folder of PNGs, and `.npy` arrays of images in NCHW or NHWC
//! layout, as 8-bit pixels ([`Images`]) that become rows in [0, 1] by uniform dequantisation,
//! optionally through the logit transform ([`Logit`]).
//!
//! Rows are the images flattened channel-major (C, H, W), like the IDX reader's: pixel
//! (c, i, j) at column c·H·W + W·i + j, mapped to (p + u)/256 with u ~ U[0, 1) (Theis et al.
//! 2016: the dequantised density's likelihood bounds the discrete one's). Images have 1 or 3
//! channels: a PNG's alpha is dropped, palettes and low bit depths are expanded and 16-bit
//! samples cut to their high byte; a `.npy` array holds integers in 0..=255 or floats in
//! [0, 1] (read as the 8-bit level round(255·v)).
//!
//! Every failure is one [`DataError`] naming the file: not a PNG or `.npy`, truncated,
//! images of different sizes, a declared size past [`MAX_IMAGE_BYTES`] (checked before
//! allocating), values out of range, an unknown layout.

use crate::error::DataError as Error;
use ebm_core::{DType, Rng, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest total of decoded pixel bytes read from one source (a declared size above it is
/// refused before allocating).
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// Most PNG files read from one folder.
pub const MAX_IMAGE_FILES: usize = 1 << 20;

/// A set of 8-bit images of one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// `[C, H, W]` of each image.
    pub shape: [usize; 3],
    /// The pixels, image after image, each channel-major (C, H, W).
    pub pixels: Vec<u8>,
}

impl Images {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.shape.iter().product::<usize>().max(1)
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// The images as rows `[n, C·H·W]` in [0, 1], dequantised: (p + u)/256, one draw of u per
    /// pixel from `rng`.
    pub fn dequantized(&self, rng: &mut Rng, dtype: DType) -> Tensor {
        let d = self.shape.iter().product::<usize>();
        let u = rng
            .uniform(&[self.pixels.len()], 0.0, 1.0, DType::F64)
            .to_vec_f64();
        let v: Vec<f64> = self
            .pixels
            .iter()
            .zip(&u)
            .map(|(&p, &u)| (f64::from(p) + u) / 256.0)
            .collect();
        Tensor::from_f64s(&v, &[self.len(), d], dtype)
    }
}

/// Where the channel axis of a 4-D `.npy` image array is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageLayout {
    /// `[n, C, H, W]` (PyTorch's).
    Nchw,
    /// `[n, H, W, C]` (TensorFlow's, and most image libraries').
    Nhwc,
}

impl ImageLayout {
    /// The layout of a 4-D array: `given`, or the one whose channel axis holds 1 or 3
    /// channels when only one does.
    pub fn of(shape: &[usize], given: Option<ImageLayout>, what: &str) -> Result<Self, Error> {
        if let Some(l) = given {
            return Ok(l);
        }
        let is_channels = |c: usize| c == 1 || c == 3;
        match (is_channels(shape[1]), is_channels(shape[3])) {
            (true, false) => Ok(ImageLayout::Nchw),
            (false, true) => Ok(ImageLayout::Nhwc),
            _ => Err(Error::data(format!(
                "{what}: cannot tell the layout of an array of shape {shape:?}; pass it as \
                 nchw:FILE or nhwc:FILE"
            ))),
        }
    }
}

/// Total pixel bytes of `n` images of `shape`, refused past [`MAX_IMAGE_BYTES`] (overflow
/// checked).
pub fn checked_bytes(n: usize, shape: [usize; 3], what: &str) -> Result<usize, Error> {
    shape
        .iter()
        .try_fold(n as u64, |acc, &s| acc.checked_mul(s as u64))
        .filter(|&b| b <= MAX_IMAGE_BYTES)
        .map(|b| b as usize)
        .ok_or_else(|| {
            Error::data(format!(
                "{what}: {n} images of shape {shape:?} are more than {MAX_IMAGE_BYTES} bytes"
            ))
        })
}

/// Decodes one PNG into 8-bit channel-major pixels of 1 or 3 channels; `what` names it.
#[cfg(not(feature = "png"))]
pub fn decode_png(_bytes: &[u8], what: &str) -> Result<([usize; 3], Vec<u8>), Error> {
    Err(Error::usage(format!(
        "{what}: reading PNG files needs ebm-data's `png` feature"
    )))
}

/// Decodes one PNG into 8-bit channel-major pixels of 1 or 3 channels; `what` names it.
#[cfg(feature = "png")]
pub fn decode_png(bytes: &[u8], what: &str) -> Result<([usize; 3], Vec<u8>), Error> {
    use png::{ColorType, Transformations};
    let bad = |e: png::DecodingError| Error::data(format!("{what}: not a readable PNG ({e})"));
    let mut decoder = png::Decoder::new_with_limits(
        bytes,
        png::Limits {
            bytes: MAX_IMAGE_BYTES as usize,
        },
    );
    decoder.set_transformations(Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(bad)?;
    let (w, h) = reader.info().size();
    let (color, _) = reader.output_color_type();
    let (stored, keep) = match color {
        ColorType::Grayscale => (1, 1),
        ColorType::GrayscaleAlpha => (2, 1),
        ColorType::Rgb => (3, 3),
        ColorType::Rgba => (4, 3),
        ColorType::Indexed => {
            return Err(Error::data(format!(
                "{what}: a palette PNG that did not expand"
            )))
        }
    };
    // the decoder's buffer is sized from the header: bound it before allocating
    checked_bytes(1, [stored, h as usize, w as usize], what)?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(bad)?;
    let (h, w) = (frame.height as usize, frame.width as usize);
    let line = frame.line_size;
    let mut out = vec![0u8; keep * h * w];
    for i in 0..h {
        let row = &buf[i * line..i * line + stored * w];
        for j in 0..w {
            for c in 0..keep {
                out[c * h * w + i * w + j] = row[j * stored + c];
            }
        }
    }
    Ok(([keep, h, w], out))
}

/// Reads every `*.png` in `dir` (in name order) as one image set; all must have one shape.
pub fn read_png_folder(dir: &Path) -> Result<Images, Error> {
    let name = dir.display();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::usage(format!("cannot read image folder {name}: {e}")))?;
    let mut files = Vec::new();
    for e in entries {
        let p = e
            .map_err(|e| Error::data(format!("listing {name}: {e}")))?
            .path();
        let is_png = p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case("png"));
        if is_png && p.is_file() {
            files.push(p);
            if files.len() > MAX_IMAGE_FILES {
                return Err(Error::data(format!(
                    "{name}: more than {MAX_IMAGE_FILES} PNG files"
                )));
            }
        }
    }
    if files.is_empty() {
        return Err(Error::usage(format!("{name}: no .png files in the folder")));
    }
    files.sort();
    let mut shape = None;
    let mut pixels = Vec::new();
    for f in &files {
        let what = f.display().to_string();
        let bytes = crate::values::read_regular_file(f)?;
        let (s, px) = decode_png(&bytes, &what)?;
        match shape {
            None => shape = Some(s),
            Some(first) if first != s => {
                return Err(Error::data(format!(
                    "{what}: image of shape {s:?} (channels, height, width), but {} has {first:?}; \
                     every image of a folder must have one shape",
                    files[0].display()
                )))
            }
            Some(_) => {}
        }
        if pixels.len() + px.len() > MAX_IMAGE_BYTES as usize {
            return Err(Error::data(format!(
                "{name}: the images hold more than {MAX_IMAGE_BYTES} bytes"
            )));
        }
        pixels.extend(px);
    }
    Ok(Images {
        shape: shape.expect("at least one file"),
        pixels,
    })
}

/// Reads `.npy` bytes of images: `[n, H, W]` (one channel) or `[n, C, H, W]` / `[n, H, W, C]`
/// with C ∈ {1, 3} (`layout`, or inferred from which axis holds 1 or 3); integers in
/// 0..=255, or floats in [0, 1] read as the level round(255·v).
#[cfg(feature = "npy")]
pub fn read_npy_images(
    bytes: &[u8],
    layout: Option<ImageLayout>,
    what: &str,
) -> Result<Images, Error> {
    let array = crate::npy::read_npy_array(bytes, what, |shape| {
        match shape {
        [_, _, _] | [_, _, _, _] => Ok(()),
        other => Err(Error::data(format!(
            "{what}: array of shape {other:?}; expected images [n, H, W], [n, C, H, W] or [n, H, W, C]"
        ))),
    }
    })?;
    let s = &array.shape;
    let (n, [c, h, w], nhwc) = match s.len() {
        3 => (s[0], [1, s[1], s[2]], false),
        _ => match ImageLayout::of(s, layout, what)? {
            ImageLayout::Nchw => (s[0], [s[1], s[2], s[3]], false),
            ImageLayout::Nhwc => (s[0], [s[3], s[1], s[2]], true),
        },
    };
    if c != 1 && c != 3 {
        return Err(Error::data(format!(
            "{what}: images of {c} channels (shape {s:?}); expected 1 or 3"
        )));
    }
    checked_bytes(n, [c, h, w], what)?;
    let floats = array.float;
    let level = |v: f64| -> Option<u8> {
        let p = if floats { (255.0 * v).round() } else { v };
        (v.is_finite() && (0.0..=255.0).contains(&p) && (!floats || v <= 1.0)).then_some(p as u8)
    };
    let mut pixels = vec![0u8; array.values.len()];
    let d = c * h * w;
    for (k, &v) in array.values.iter().enumerate() {
        let p = level(v).ok_or_else(|| {
            Error::data(format!(
                "{what}: value {v} at flat index {k} is not a pixel (integers 0..=255, or floats in [0, 1])"
            ))
        })?;
        // NHWC element (i, y, x, ch) goes to channel-major (i, ch, y, x)
        let at = if nhwc {
            let (i, r) = (k / d, k % d);
            let (yx, ch) = (r / c, r % c);
            i * d + ch * h * w + yx
        } else {
            k
        };
        pixels[at] = p;
    }
    Ok(Images {
        shape: [c, h, w],
        pixels,
    })
}

/// The logit transform of pixels in [0, 1] (Dinh et al. 2017, RealNVP §4.1):
/// y = logit(λ + (1 − 2λ)x), which maps the unit box onto all of ℝ^d. Densities change by
/// log|dy/dx| = Σᵢ [log(1 − 2λ) − log sᵢ − log(1 − sᵢ)] with sᵢ = λ + (1 − 2λ)xᵢ, so the
/// NLL of x is the NLL of y minus that sum ([`Logit::log_det`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Logit {
    /// λ in (0, ½): keeps the logit away from ±∞ at the box's faces.
    pub lambda: f64,
}

impl Logit {
    /// y = logit(λ + (1 − 2λ)x), elementwise.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let l = self.lambda;
        let v: Vec<f64> = x
            .to_vec_f64()
            .iter()
            .map(|&x| {
                let s = l + (1.0 - 2.0 * l) * x;
                (s / (1.0 - s)).ln()
            })
            .collect();
        Tensor::from_f64s(&v, x.shape(), x.dtype())
    }

    /// x = (sigmoid(y) − λ)/(1 − 2λ), elementwise: samples back to pixels.
    pub fn invert(&self, y: &Tensor) -> Tensor {
        let l = self.lambda;
        let v: Vec<f64> = y
            .to_vec_f64()
            .iter()
            .map(|&y| (1.0 / (1.0 + (-y).exp()) - l) / (1.0 - 2.0 * l))
            .collect();
        Tensor::from_f64s(&v, y.shape(), y.dtype())
    }

    /// Per row of pixels `x` `[n, d]`: log|det dy/dx| = Σᵢ log(1 − 2λ) − log sᵢ − log(1 − sᵢ).
    pub fn log_det(&self, x: &Tensor) -> Vec<f64> {
        let l = self.lambda;
        let d = x.shape()[1];
        x.to_vec_f64()
            .chunks(d.max(1))
            .map(|row| {
                row.iter()
                    .map(|&x| {
                        let s = l + (1.0 - 2.0 * l) * x;
                        (1.0 - 2.0 * l).ln() - s.ln() - (1.0 - s).ln()
                    })
                    .sum()
            })
            .collect()
    }

    /// λ must be in (0, ½).
    pub fn check(&self) -> Result<(), Error> {
        if self.lambda > 0.0 && self.lambda < 0.5 {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "--logit λ must be in (0, 0.5), got {}",
                self.lambda
            )))
        }
    }
}

#[cfg(test)]
mod tests;
