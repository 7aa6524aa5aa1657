//! The UCI handwritten digits (Alpaydin & Kaynak 1998) as shipped with scikit-learn, built
//! into the crate (`data/digits.csv`; source, licence and checksum in `data/README.md`).
//!
//! Row layout, kept by every form below: a row is one 8×8 image in row-major order, pixel
//! (i, j) (row i from the top, column j from the left) at column 8i + j. A row therefore
//! reshapes to an image of shape [`IMAGE_SHAPE`] = `[1, 8, 8]` (channels, height, width)
//! without moving any value, and a batch `[B, 64]` to `[B, 1, 8, 8]`.

use crate::csv::parse_csv;
use crate::error::DataError as Error;
use ebm_core::{DType, Rng, Tensor};

/// The file, as text: a header `p0,…,p63,label`, then 1,797 rows of 64 pixels and a label.
pub const DIGITS_CSV: &str = include_str!("../digits.csv");
/// How errors name the built-in file.
pub const SOURCE: &str = "data/digits.csv (built in)";
/// Pixels per image (columns of a row).
pub const PIXELS: usize = 64;
/// One image as (channels, height, width).
pub const IMAGE_SHAPE: [usize; 3] = [1, 8, 8];
/// The largest pixel value: each pixel counts the "on" pixels of a 4×4 block, 0..=16.
pub const MAX_PIXEL: f64 = 16.0;

/// The digits: integer pixels 0..=16 and labels 0..=9.
#[derive(Clone, Debug)]
pub struct Digits {
    pixels: Vec<f64>,
    labels: Vec<u8>,
}

impl Digits {
    /// Parses the built-in file (an error only if it was damaged).
    pub fn load() -> Result<Digits, Error> {
        let table = parse_csv(DIGITS_CSV, SOURCE)?;
        if table.cols != PIXELS + 1 {
            return Err(Error::data(format!(
                "built-in digits: expected 65 columns, found {}",
                table.cols
            )));
        }
        let mut pixels = Vec::with_capacity(table.rows * PIXELS);
        let mut labels = Vec::with_capacity(table.rows);
        for row in table.values.chunks(PIXELS + 1) {
            let bad = |v: f64, max: f64| v.fract() != 0.0 || !(0.0..=max).contains(&v);
            if row[..PIXELS].iter().any(|&p| bad(p, MAX_PIXEL)) || bad(row[PIXELS], 9.0) {
                return Err(Error::data(format!(
                    "{SOURCE}: row {} is not 64 pixels in 0..=16 and a label in 0..=9",
                    labels.len() + 1
                )));
            }
            pixels.extend(&row[..PIXELS]);
            labels.push(row[PIXELS] as u8);
        }
        Ok(Digits { pixels, labels })
    }

    /// Images (rows).
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The pixels, `rows() × 64` values 0..=16 in the row layout of the module docs.
    pub fn pixels(&self) -> &[f64] {
        &self.pixels
    }

    /// The label (the digit drawn) of each image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// `[rows, 64]` pixels / 16, in [0, 1]: the discrete values, as the benchmark uses them.
    pub fn scaled(&self, dtype: DType) -> Tensor {
        let v: Vec<f64> = self.pixels.iter().map(|p| p / MAX_PIXEL).collect();
        Tensor::from_f64s(&v, &[self.rows(), PIXELS], dtype)
    }

    /// `[rows, 64]` uniformly dequantised pixels (p + u)/17 ∈ (0, 1), u ~ U(0, 1) drawn from
    /// `rng` once per pixel in row order: a continuous density whose likelihood bounds the
    /// discrete one (Theis et al. 2016).
    pub fn dequantized(&self, rng: &mut Rng, dtype: DType) -> Tensor {
        let u = rng.uniform_vec(self.pixels.len());
        let v: Vec<f64> = self
            .pixels
            .iter()
            .zip(&u)
            .map(|(p, u)| (p + u) / (MAX_PIXEL + 1.0))
            .collect();
        Tensor::from_f64s(&v, &[self.rows(), PIXELS], dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_digits_are_1797_labelled_images() {
        let d = Digits::load().unwrap();
        assert_eq!(d.rows(), 1797);
        assert_eq!(d.pixels().len(), 1797 * 64);
        // every digit is present, in roughly equal numbers (scikit-learn's copy: 174 to 183)
        for k in 0..10u8 {
            let n = d.labels().iter().filter(|&&l| l == k).count();
            assert!((170..=185).contains(&n), "digit {k}: {n} images");
        }
        let s = d.scaled(DType::F64).to_vec_f64();
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(s.contains(&1.0) && s.contains(&0.0));
        let q = d.dequantized(&mut Rng::new(0), DType::F64).to_vec_f64();
        assert!(q.iter().all(|v| *v > 0.0 && *v < 1.0));
        // dequantising keeps each pixel's level: ⌊17·q⌋ is the pixel
        let levels: Vec<f64> = q.iter().map(|v| (v * 17.0).floor()).collect();
        assert_eq!(levels, d.pixels());
    }

    #[test]
    fn a_row_is_an_image_in_row_major_order() {
        // the first image of scikit-learn's copy is a 0: in its middle rows (i = 3, 4) the
        // stroke is at columns 2 and 5 and the hole at columns 3 and 4
        let d = Digits::load().unwrap();
        assert_eq!(d.labels()[0], 0);
        let img = &d.pixels()[..64];
        for i in 3..5 {
            assert!(img[8 * i + 2] > 0.0 && img[8 * i + 5] > 0.0, "row {i}");
            assert_eq!((img[8 * i + 3], img[8 * i + 4]), (0.0, 0.0), "row {i}");
        }
        let x = d.scaled(DType::F32);
        let as_images = x.reshape(&[d.rows(), IMAGE_SHAPE[0], IMAGE_SHAPE[1], IMAGE_SHAPE[2]]);
        assert_eq!(as_images.shape(), &[1797, 1, 8, 8]);
    }
}
