//! Discrepancies between a model and samples: Fisher divergence to a known score, maximum
//! mean discrepancy between two samples, and the kernel Stein discrepancy of samples under a
//! model's score.

use ebm_core::{DType, Tensor};

fn rows(x: &Tensor) -> (usize, usize, Vec<f64>) {
    let n = x.shape()[0];
    let d = x.numel() / n.max(1);
    (n, d, x.cast(DType::F64).to_vec_f64())
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Fisher divergence ½ E_x ‖s_model(x) − s_true(x)‖², estimated on samples x (both scores
/// given as [n, d] tensors evaluated at the same points).
pub fn fisher_divergence(s_model: &Tensor, s_true: &Tensor) -> f64 {
    let n = s_model.shape()[0] as f64;
    s_model
        .cast(DType::F64)
        .sub(&s_true.cast(DType::F64))
        .square()
        .sum_all()
        .item()
        * 0.5
        / n
}

/// The median of pairwise distances of the pooled sample (on at most 1000 rows): the usual
/// bandwidth of a Gaussian kernel (Gretton et al. 2012).
pub fn median_bandwidth(x: &Tensor, y: &Tensor) -> f64 {
    let (nx, d, xv) = rows(x);
    let (ny, _, yv) = rows(y);
    let pool: Vec<&[f64]> = xv
        .chunks(d)
        .take(500)
        .chain(yv.chunks(d).take(500))
        .collect();
    let _ = (nx, ny);
    let mut ds = Vec::new();
    for i in 0..pool.len() {
        for j in i + 1..pool.len() {
            ds.push(sq_dist(pool[i], pool[j]).sqrt());
        }
    }
    ds.sort_by(|a, b| a.total_cmp(b));
    ds.get(ds.len() / 2).copied().unwrap_or(1.0).max(1e-12)
}

/// Unbiased MMD² between samples x [n, d] and y [m, d] with the Gaussian kernel
/// k(a, b) = exp(−‖a − b‖²/(2h²)) (Gretton et al. 2012, eq. 3); `bandwidth` None uses the
/// median heuristic.
pub fn mmd2(x: &Tensor, y: &Tensor, bandwidth: Option<f64>) -> f64 {
    let h = bandwidth.unwrap_or_else(|| median_bandwidth(x, y));
    let (n, d, xv) = rows(x);
    let (m, d2, yv) = rows(y);
    assert_eq!(d, d2, "mmd2: x has {d} features, y has {d2}");
    assert!(
        n >= 2 && m >= 2,
        "mmd2: needs at least two samples on each side"
    );
    let k = |a: &[f64], b: &[f64]| (-sq_dist(a, b) / (2.0 * h * h)).exp();
    let (xs, ys): (Vec<&[f64]>, Vec<&[f64]>) = (xv.chunks(d).collect(), yv.chunks(d).collect());
    let mut kxx = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                kxx += k(xs[i], xs[j]);
            }
        }
    }
    let mut kyy = 0.0;
    for i in 0..m {
        for j in 0..m {
            if i != j {
                kyy += k(ys[i], ys[j]);
            }
        }
    }
    let mut kxy = 0.0;
    for a in &xs {
        for b in &ys {
            kxy += k(a, b);
        }
    }
    kxx / (n * (n - 1)) as f64 + kyy / (m * (m - 1)) as f64 - 2.0 * kxy / (n * m) as f64
}

/// Kernel Stein discrepancy² of samples x [n, d] under a model with score s(x) [n, d], with the
/// inverse multiquadric kernel k(a, b) = (c² + ‖a − b‖²)^β, β = −½, c = 1 (Gorham & Mackey
/// 2017), as the U-statistic of the Stein kernel
/// u(a, b) = s(a)ᵀs(b)k + s(a)ᵀ∇_b k + s(b)ᵀ∇_a k + tr ∇_a∇_b k (Liu, Lee & Jordan 2016).
/// Zero in expectation exactly when x is drawn from the model.
pub fn ksd(x: &Tensor, score: &Tensor) -> f64 {
    let (n, d, xv) = rows(x);
    let (_, _, sv) = rows(score);
    assert!(n >= 2, "ksd: needs at least two samples");
    let (c2, beta) = (1.0, -0.5);
    let mut total = 0.0;
    for i in 0..n {
        let (a, sa) = (&xv[i * d..(i + 1) * d], &sv[i * d..(i + 1) * d]);
        for j in 0..n {
            if i == j {
                continue;
            }
            let (b, sb) = (&xv[j * d..(j + 1) * d], &sv[j * d..(j + 1) * d]);
            let r2 = sq_dist(a, b);
            let base = c2 + r2;
            let k = base.powf(beta);
            // ∇_a k = 2β base^{β−1} (a − b);  ∇_b k = −∇_a k
            let g = 2.0 * beta * base.powf(beta - 1.0);
            let mut sa_sb = 0.0;
            let mut sa_gb = 0.0;
            let mut sb_ga = 0.0;
            for t in 0..d {
                let diff = a[t] - b[t];
                sa_sb += sa[t] * sb[t];
                sa_gb += sa[t] * (-g * diff);
                sb_ga += sb[t] * (g * diff);
            }
            // tr ∇_a∇_b k = −2βd·base^{β−1} − 4β(β−1)‖a−b‖² base^{β−2}
            let tr = -2.0 * beta * d as f64 * base.powf(beta - 1.0)
                - 4.0 * beta * (beta - 1.0) * r2 * base.powf(beta - 2.0);
            total += sa_sb * k + sa_gb + sb_ga + tr;
        }
    }
    total / (n * (n - 1)) as f64
}
