//! Gradient-norm clipping over all parameters at once.

use ebm_core::{DType, Tensor};

/// The L2 norm of all gradients taken together, accumulated in f64.
pub fn global_norm(grads: &[Tensor]) -> f64 {
    grads
        .iter()
        .map(|g| match g.dtype() {
            DType::F32 => g
                .as_slice::<f32>()
                .iter()
                .map(|&v| (v as f64) * (v as f64))
                .sum::<f64>(),
            DType::F64 => g.as_slice::<f64>().iter().map(|&v| v * v).sum::<f64>(),
        })
        .sum::<f64>()
        .sqrt()
}

/// Scales `grads` so that their global L2 norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_`: the factor is `max_norm / (norm + 1e-6)` when that is below 1.
/// Returns the norm before clipping. A non-finite norm is returned with the gradients left
/// as they are, so the caller can see it and skip the step.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> f64 {
    assert!(
        max_norm >= 0.0,
        "clip_grad_norm: max_norm {max_norm} must be ≥ 0"
    );
    let norm = global_norm(grads);
    if !norm.is_finite() {
        return norm;
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            *g = g.mul_scalar(coef);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_the_global_norm_and_returns_the_old_one() {
        // ‖(3, 4)‖ = 5 together with ‖(0)‖: clip to 1 scales by 1/(5 + 1e-6)
        let mut g = vec![
            Tensor::from_vec(vec![3.0f64, 0.0], &[2]),
            Tensor::from_vec(vec![4.0f64], &[1]),
        ];
        let n = clip_grad_norm(&mut g, 1.0);
        assert_eq!(n, 5.0);
        let c = 1.0 / (5.0 + 1e-6);
        assert_eq!(g[0].to_vec_f64(), vec![3.0 * c, 0.0]);
        assert_eq!(g[1].to_vec_f64(), vec![4.0 * c]);
        // already small: untouched
        let before = g[0].clone();
        let n2 = clip_grad_norm(&mut g, 10.0);
        assert!((n2 - 1.0).abs() < 1e-6);
        assert!(g[0].same_buffer(&before));
    }

    #[test]
    fn non_finite_norm_leaves_gradients() {
        let mut g = vec![Tensor::from_vec(vec![f32::INFINITY, 1.0], &[2])];
        assert!(clip_grad_norm(&mut g, 1.0).is_infinite());
        assert_eq!(g[0].to_vec_f64()[1], 1.0);
    }
}
