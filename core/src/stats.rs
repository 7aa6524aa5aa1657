//! Per-column statistics of a batch `[n, …]` over its rows (axis 0): mean, unbiased variance,
//! standard deviation and the standard error of the mean, as a researcher checks samples
//! against known moments. Built from `Tensor` ops, so they run wherever the tensor lives.

use crate::Tensor;

impl Tensor {
    /// The number of rows, or a panic naming `op` and the shape when there are fewer than
    /// `min` (or the tensor has no row axis).
    fn rows_at_least(&self, op: &str, min: usize) -> usize {
        assert!(
            self.rank() >= 1 && self.shape()[0] >= min,
            "{op}: needs a batch [n, …] with n ≥ {min}, got shape {:?}",
            self.shape()
        );
        self.shape()[0]
    }

    /// The mean of every column over the rows, x̄ = Σᵢ xᵢ / n: `[n, …] → […]`.
    pub fn col_mean(&self) -> Tensor {
        self.rows_at_least("col_mean", 1);
        self.mean_axes(&[0], false)
    }

    /// The unbiased sample variance of every column, Σᵢ (xᵢ − x̄)² / (n − 1), by two passes
    /// (no cancellation for data far from 0): `[n, …] → […]`.
    pub fn col_var(&self) -> Tensor {
        let n = self.rows_at_least("col_var", 2);
        self.sub(&self.mean_axes(&[0], true))
            .square()
            .sum_axes(&[0], false)
            .mul_scalar(1.0 / (n - 1) as f64)
    }

    /// The sample standard deviation of every column, √[`Tensor::col_var`].
    pub fn col_std(&self) -> Tensor {
        self.col_var().sqrt()
    }

    /// The standard error of every column's mean for independent rows, s/√n (for correlated
    /// draws such as MCMC, divide the variance by the effective sample size instead).
    pub fn col_sem(&self) -> Tensor {
        let n = self.rows_at_least("col_sem", 2);
        self.col_var().mul_scalar(1.0 / n as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Rng, Tensor};

    #[test]
    fn known_columns() {
        // columns (1, 3, 5) and (2, 6, 10): means 3 and 6, variances 4 and 16
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 6.0, 5.0, 10.0], &[3, 2]);
        assert_eq!(x.col_mean().to_vec_f64(), vec![3.0, 6.0]);
        assert_eq!(x.col_var().to_vec_f64(), vec![4.0, 16.0]);
        assert_eq!(x.col_std().to_vec_f64(), vec![2.0, 4.0]);
        let sem = x.col_sem().to_vec_f64();
        assert!((sem[0] - 2.0 / 3f64.sqrt()).abs() < 1e-15, "{sem:?}");
        assert_eq!(x.col_mean().shape(), &[2]);
        // f32, and a rank-1 batch of scalars
        let y = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4]);
        assert_eq!(y.col_mean().shape(), &[] as &[usize]);
        assert!((y.col_var().item() - 5.0 / 3.0).abs() < 1e-6);
        assert_eq!(y.col_var().dtype(), DType::F32);
    }

    #[test]
    fn shifted_data_keeps_its_variance() {
        // a two-pass variance is exact for data far from zero, where E[x²] − x̄² loses it all
        let x = Tensor::from_vec(vec![1e8 + 1.0, 1e8 + 2.0, 1e8 + 3.0], &[3, 1]);
        assert_eq!(x.col_var().to_vec_f64(), vec![1.0]);
    }

    #[test]
    fn per_column_over_any_trailing_shape() {
        let mut rng = Rng::new(5);
        let x = rng.normal(&[4000, 2, 3], DType::F64);
        let x = x.mul(&Tensor::from_vec(
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[2, 3],
        ));
        assert_eq!(x.col_std().shape(), &[2, 3]);
        // sd of a sample sd ≈ σ/√(2n): 4 of them is 4σ/89 < 0.05σ
        for (k, s) in x.col_std().to_vec_f64().into_iter().enumerate() {
            let sigma = (k + 1) as f64;
            assert!(
                (s - sigma).abs() < 0.05 * sigma,
                "column {k}: {s} vs {sigma}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "col_var: needs a batch [n, …] with n ≥ 2, got shape [1, 3]")]
    fn variance_of_one_row_panics() {
        Tensor::zeros(&[1, 3], DType::F64).col_var();
    }
}
