//! log Z by midpoint quadrature on a grid, for energies in one or two dimensions.

use ebm_core::{DType, Tensor};
use ebm_samplers::target::Target;

/// A grid estimate of log Z = log ∫ exp(−E(x)) dx.
#[derive(Clone, Debug, PartialEq)]
pub struct GridLogZ {
    /// The estimate of log Z.
    pub log_z: f64,
    /// |log Ẑ(n) − log Ẑ(n/2)|: how much halving the resolution moves the estimate (the
    /// midpoint rule's error is O(h²), so the true error is about a third of this).
    pub grid_error: f64,
    /// Share of the mass in the outermost ring of cells: small means the box holds the density.
    pub edge_mass: f64,
    /// The box, per dimension (lo, hi).
    pub bounds: Vec<(f64, f64)>,
    /// Cells per dimension.
    pub cells: usize,
}

/// log Σ exp(−E) h^d over an n^d midpoint grid on `bounds`, and the share of mass on the edge.
fn grid_sum(target: &impl Target, bounds: &[(f64, f64)], n: usize, dtype: DType) -> (f64, f64) {
    let d = bounds.len();
    let h: Vec<f64> = bounds.iter().map(|(lo, hi)| (hi - lo) / n as f64).collect();
    let cells = n.pow(d as u32);
    let mut pts = Vec::with_capacity(cells * d);
    let mut edge = Vec::with_capacity(cells);
    for c in 0..cells {
        let mut rem = c;
        let mut on_edge = false;
        let mut p = vec![0.0; d];
        for k in (0..d).rev() {
            let i = rem % n;
            rem /= n;
            on_edge |= i == 0 || i == n - 1;
            p[k] = bounds[k].0 + (i as f64 + 0.5) * h[k];
        }
        pts.extend(p);
        edge.push(on_edge);
    }
    // evaluate in chunks to bound memory for fine grids
    let mut neg_e = Vec::with_capacity(cells);
    for chunk in pts.chunks(65_536 * d) {
        let x = Tensor::from_f64s(chunk, &[chunk.len() / d, d], dtype);
        neg_e.extend(target.energy(&x).to_vec_f64().into_iter().map(|e| -e));
    }
    let m = neg_e.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (mut total, mut rim) = (0.0, 0.0);
    for (v, &e) in neg_e.iter().zip(&edge) {
        let w = (v - m).exp();
        total += w;
        if e {
            rim += w;
        }
    }
    let log_cell: f64 = h.iter().map(|x| x.ln()).sum();
    (m + total.ln() + log_cell, rim / total)
}

/// log Z of a 1-d or 2-d energy by midpoint quadrature with `n` cells per dimension, starting
/// from `bounds` and doubling the box about its centre until at most `edge_tol` of the mass lies
/// in the outer cells (at most 6 doublings). The grid error is estimated from a half-resolution
/// grid on the final box.
pub fn grid_log_z(
    target: &impl Target,
    bounds: &[(f64, f64)],
    n: usize,
    edge_tol: f64,
    dtype: DType,
) -> GridLogZ {
    assert!(
        bounds.len() == 1 || bounds.len() == 2,
        "grid_log_z: quadrature is for d ≤ 2 (got d = {}); use ais_log_z above",
        bounds.len()
    );
    assert!(n >= 4, "grid_log_z: need at least 4 cells per dimension");
    let mut b = bounds.to_vec();
    let (mut log_z, mut edge_mass) = grid_sum(target, &b, n, dtype);
    for _ in 0..6 {
        if edge_mass <= edge_tol {
            break;
        }
        b = b
            .iter()
            .map(|&(lo, hi)| {
                let (c, r) = (0.5 * (lo + hi), hi - lo);
                (c - r, c + r)
            })
            .collect();
        (log_z, edge_mass) = grid_sum(target, &b, n, dtype);
    }
    let (coarse, _) = grid_sum(target, &b, n / 2, dtype);
    GridLogZ {
        log_z,
        grid_error: (log_z - coarse).abs(),
        edge_mass,
        bounds: b,
        cells: n,
    }
}
