//! IDX files (LeCun's MNIST format; Fashion-MNIST uses it too), plain or gzip-compressed,
//! and Fashion-MNIST as Debian's `dataset-fashion-mnist` package installs it.
//!
//! Layout: two zero bytes, a type byte (only `0x08`, unsigned bytes, is read here), the number
//! of dimensions, each dimension as a big-endian u32, then the values row-major. Images are
//! `[n, h, w]`; a row of the result is one image, pixel (i, j) at column `w·i + j`, mapped to
//! [0, 1] by (p + u)/256 with u ~ U[0, 1) (uniform dequantisation, one fixed draw per pixel).
//!
//! Every failure is one [`DataError`] naming the file: unreadable, not gzip, wrong magic,
//! unsupported type, a declared size past [`MAX_IDX_BYTES`] (checked before allocating) or
//! different from the bytes present.

use crate::error::DataError as Error;
use crate::images::Images;
use ebm_core::{DType, Rng, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest decoded IDX payload read (a declared size above it is refused before allocating).
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// Where Debian's `dataset-fashion-mnist` puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// An IDX array of unsigned bytes: its dimensions and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions, as declared.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<u8>,
}

/// Reads an IDX file, decompressing it first when it starts with the gzip magic.
pub fn read_idx(path: &Path) -> Result<Idx, Error> {
    let name = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::usage(format!("cannot read IDX file {name}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::usage(format!("{name} is not a regular file")));
    }
    let raw = std::fs::read(path).map_err(|e| Error::data(format!("reading {name}: {e}")))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_IDX_BYTES + 4096)
            .read_to_end(&mut out)
            .map_err(|e| Error::data(format!("{name}: not a valid gzip stream ({e})")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, &name.to_string())
}

/// Parses the bytes of an IDX file; `source` names it in errors.
pub fn parse_idx(bytes: &[u8], source: &str) -> Result<Idx, Error> {
    let bad = |what: String| Error::data(format!("{source}: {what}"));
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            "not an IDX file (it must start with two zero bytes)".into()
        ));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "IDX type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || bytes.len() < 4 + 4 * ndim {
        return Err(bad(format!(
            "truncated header ({ndim} dimensions declared)"
        )));
    }
    let dims: Vec<usize> = bytes[4..4 + 4 * ndim]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let declared = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            bad(format!(
                "declared shape {dims:?} is larger than {MAX_IDX_BYTES} bytes"
            ))
        })?;
    let body = &bytes[4 + 4 * ndim..];
    if body.len() as u64 != declared {
        return Err(bad(format!(
            "declared shape {dims:?} needs {declared} bytes, the file holds {}",
            body.len()
        )));
    }
    Ok(Idx {
        dims,
        values: body.to_vec(),
    })
}

impl Idx {
    /// The images `[n, h, w]` as one-channel [`Images`].
    pub fn images(&self) -> Result<Images, Error> {
        let [_, h, w] = self.dims[..] else {
            return Err(Error::data(format!(
                "IDX images must have 3 dimensions [n, h, w], found {:?}",
                self.dims
            )));
        };
        Ok(Images {
            shape: [1, h, w],
            pixels: self.values.clone(),
        })
    }

    /// The images `[n, h, w]` as rows of h·w pixels in [0, 1], dequantised: (p + u)/256.
    pub fn dequantized_images(&self, rng: &mut Rng, dtype: DType) -> Result<Tensor, Error> {
        Ok(self.images()?.dequantized(rng, dtype))
    }
}

/// The train and test image files of Fashion-MNIST in `dir`, or in
/// [`FASHION_MNIST_DIR`]; the error says how to install them.
pub fn fashion_mnist_files(dir: Option<&Path>) -> Result<(PathBuf, PathBuf), Error> {
    let dir = dir.map_or_else(|| PathBuf::from(FASHION_MNIST_DIR), Path::to_path_buf);
    let find = |stem: &str| {
        [format!("{stem}.gz"), stem.to_string()]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
    };
    match (find("train-images-idx3-ubyte"), find("t10k-images-idx3-ubyte")) {
        (Some(train), Some(test)) => Ok((train, test)),
        _ => Err(Error::usage(format!(
            "Fashion-MNIST not found in {}: install it with `apt-get install dataset-fashion-mnist` \
             (Debian/Ubuntu), or pass a folder holding train-images-idx3-ubyte(.gz) and \
             t10k-images-idx3-ubyte(.gz)",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests;
