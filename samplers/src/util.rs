//! Row-wise helpers: a batch is `[B, …]` with one chain per row.

use ebm_core::ops::fastmath::dispatch;
use ebm_core::{DType, Rng, Tensor};

/// Number of rows (chains) of a batch; panics on a 0-d tensor.
pub(crate) fn batch(x: &Tensor) -> usize {
    assert!(
        x.rank() >= 1,
        "samplers: a batch needs a leading chain axis, got shape {:?}",
        x.shape()
    );
    x.shape()[0]
}

/// Elements per row.
pub(crate) fn row_len(x: &Tensor) -> usize {
    x.shape()[1..].iter().product()
}

/// Σ over every axis but the first: `[B, …] → [B]`.
pub(crate) fn row_sum(x: &Tensor) -> Tensor {
    let b = batch(x);
    x.reshape(&[b, row_len(x)]).sum_axes(&[1], false)
}

/// A `[B]` tensor reshaped to `[B, 1, …, 1]` so that it broadcasts against `like`.
pub(crate) fn per_row(v: &Tensor, like: &Tensor) -> Tensor {
    let mut shape = vec![1; like.rank()];
    shape[0] = batch(like);
    v.reshape(&shape)
}

/// `[B]` f64 values as a tensor of `dtype`.
pub(crate) fn row_values(v: &[f64], dtype: DType) -> Tensor {
    Tensor::from_f64s(v, &[v.len()], dtype)
}

/// Rows of `a` where `take[b]`, rows of `b` elsewhere.
pub(crate) fn select_rows(take: &[bool], a: &Tensor, b: &Tensor) -> Tensor {
    let mask: Vec<f64> = take.iter().map(|&t| if t { 1.0 } else { 0.0 }).collect();
    let m = per_row(&row_values(&mask, a.dtype()), a);
    Tensor::where_(&m, a, b)
}

/// `x + a·u + b·v`, in place when `x` owns its buffer (the hot update of every Langevin-type
/// step: one pass over memory instead of four temporaries), compiled for the widest vector
/// unit (`dispatch`); the roundings are the same on every path (no FMA contraction).
pub(crate) fn axpby(mut x: Tensor, a: f64, u: &Tensor, b: f64, v: &Tensor) -> Tensor {
    assert!(
        x.shape() == u.shape() && x.shape() == v.shape(),
        "axpby: shapes {:?}, {:?}, {:?} differ",
        x.shape(),
        u.shape(),
        v.shape()
    );
    match x.dtype() {
        DType::F32 => {
            let (a, b) = (a as f32, b as f32);
            let (u, v) = (u.as_slice::<f32>(), v.as_slice::<f32>());
            let xs = x.data_mut::<f32>();
            dispatch(
                #[inline(always)]
                || {
                    for ((xi, &ui), &vi) in xs.iter_mut().zip(u).zip(v) {
                        *xi += a * ui + b * vi;
                    }
                },
            );
        }
        DType::F64 => {
            let (u, v) = (u.as_slice::<f64>(), v.as_slice::<f64>());
            let xs = x.data_mut::<f64>();
            dispatch(
                #[inline(always)]
                || {
                    for ((xi, &ui), &vi) in xs.iter_mut().zip(u).zip(v) {
                        *xi += a * ui + b * vi;
                    }
                },
            );
        }
    }
    x
}

/// `x + a·u`, in place when `x` owns its buffer.
pub(crate) fn axpy(mut x: Tensor, a: f64, u: &Tensor) -> Tensor {
    assert_eq!(
        x.shape(),
        u.shape(),
        "axpy: shapes {:?} and {:?} differ",
        x.shape(),
        u.shape()
    );
    match x.dtype() {
        DType::F32 => {
            let a = a as f32;
            for (xi, &ui) in x.data_mut::<f32>().iter_mut().zip(u.as_slice::<f32>()) {
                *xi += a * ui;
            }
        }
        DType::F64 => {
            for (xi, &ui) in x.data_mut::<f64>().iter_mut().zip(u.as_slice::<f64>()) {
                *xi += a * ui;
            }
        }
    }
    x
}

/// Standard normal noise shaped like `x`.
pub(crate) fn noise_like(x: &Tensor, rng: &mut Rng) -> Tensor {
    rng.normal(x.shape(), x.dtype())
}

/// Euclidean norm of every row, in f64.
pub(crate) fn row_norms(x: &Tensor) -> Vec<f64> {
    row_sum(&x.square())
        .to_vec_f64()
        .into_iter()
        .map(f64::sqrt)
        .collect()
}

/// `k` distinct indices drawn uniformly from `0..n`, in uniformly random order (a partial
/// Fisher–Yates shuffle over a sparse map: O(k) time and memory, whatever `n` is).
pub fn sample_without_replacement(n: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    assert!(k <= n, "sample_without_replacement: {k} rows from {n}");
    let mut swapped = std::collections::HashMap::<usize, usize>::with_capacity(2 * k);
    (0..k)
        .map(|i| {
            let j = i + rng.below(n - i);
            let vj = *swapped.get(&j).unwrap_or(&j);
            let vi = *swapped.get(&i).unwrap_or(&i);
            swapped.insert(j, vi);
            vj
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_replacement_is_distinct_and_uniform() {
        let mut rng = Rng::new(5);
        let mut counts = [0usize; 10];
        let reps = 20_000;
        for _ in 0..reps {
            let s = sample_without_replacement(10, 3, &mut rng);
            let mut t = s.clone();
            t.sort_unstable();
            t.dedup();
            assert_eq!(t.len(), 3, "repeated index in {s:?}");
            counts[s[0]] += 1; // the first position alone must be uniform over 0..10
        }
        // each count ~ Binomial(20000, 0.1): sd = sqrt(20000·0.1·0.9) = 42.4
        for c in counts {
            assert!((c as f64 - 2000.0).abs() < 4.0 * 42.4, "counts {counts:?}");
        }
    }

    #[test]
    fn axpby_updates_in_place_and_copies_when_shared() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]);
        let keep = x.clone();
        let u = Tensor::from_vec(vec![1.0f32, 1.0], &[1, 2]);
        let y = axpby(x, 2.0, &u, -1.0, &u);
        assert_eq!(y.to_vec_f64(), vec![2.0, 3.0]);
        assert_eq!(
            keep.to_vec_f64(),
            vec![1.0, 2.0],
            "a shared buffer was written"
        );
    }
}
