//! Per-column standardisation x ↦ (x − mean)/std, with the training rows' statistics.

use ebm_core::Tensor;
use serde::{Deserialize, Serialize};

/// Per-column affine map x ↦ (x − mean)/std applied to a file's data (stored with the model,
/// so that samples can be mapped back and evaluations use the same transform).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations (1 for a constant column).
    pub std: Vec<f64>,
}

impl Standardization {
    /// The mean and sample standard deviation (n − 1) of each column of `x` `[n, d]`; a
    /// constant column keeps its scale (std 1: dividing by 0 would make it NaN).
    pub fn fit(x: &Tensor) -> Standardization {
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let v = x.to_vec_f64();
        let mut mean = vec![0.0; d];
        for row in v.chunks(d) {
            for j in 0..d {
                mean[j] += row[j] / n as f64;
            }
        }
        let mut var = vec![0.0; d];
        for row in v.chunks(d) {
            for j in 0..d {
                var[j] += (row[j] - mean[j]).powi(2) / (n as f64 - 1.0).max(1.0);
            }
        }
        let std = var
            .iter()
            .map(|v| if *v > 1e-24 { v.sqrt() } else { 1.0 })
            .collect();
        Standardization { mean, std }
    }

    /// Maps rows in the file's units to standardised ones.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let (m, s) = self.tensors(x);
        x.sub(&m).div(&s)
    }

    /// Maps standardised rows back to the file's units.
    pub fn invert(&self, x: &Tensor) -> Tensor {
        let (m, s) = self.tensors(x);
        x.mul(&s).add(&m)
    }

    /// Σ log std: add to an NLL in standardised units to get nats in the file's units.
    pub fn log_det(&self) -> f64 {
        self.std.iter().map(|s| s.ln()).sum()
    }

    /// Mean and std as `[1, d]` rows of `x`'s dtype.
    fn tensors(&self, x: &Tensor) -> (Tensor, Tensor) {
        let d = self.mean.len();
        (
            Tensor::from_f64s(&self.mean, &[1, d], x.dtype()),
            Tensor::from_f64s(&self.std, &[1, d], x.dtype()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::DType;

    #[test]
    fn standardised_columns_have_zero_mean_unit_variance_and_invert() {
        let x = Tensor::from_f64s(
            &[1.0, 5.0, 3.0, 5.0, 8.0, 5.0, -2.0, 5.0],
            &[4, 2],
            DType::F64,
        );
        let s = Standardization::fit(&x);
        assert_eq!(s.mean, vec![2.5, 5.0]);
        assert_eq!(s.std[1], 1.0, "a constant column keeps its scale");
        let z = s.apply(&x).to_vec_f64();
        let col0: Vec<f64> = z.chunks(2).map(|r| r[0]).collect();
        let m = col0.iter().sum::<f64>() / 4.0;
        let v = col0.iter().map(|c| (c - m).powi(2)).sum::<f64>() / 3.0;
        assert!(m.abs() < 1e-15 && (v - 1.0).abs() < 1e-14, "{m} {v}");
        assert!(s.invert(&s.apply(&x)).max_abs_diff(&x) < 1e-14);
        assert_eq!(s.log_det(), s.std[0].ln());
    }
}
