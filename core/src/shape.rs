//! Shape arithmetic: element counts, strides, NumPy broadcasting.

/// Number of elements of a shape (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major (C-order) strides in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// The NumPy broadcast of two shapes, or `None` when they are incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            return None;
        };
    }
    Some(out)
}

/// Strides (in elements) that read a contiguous tensor of `shape` as if broadcast to `out`:
/// broadcast dimensions get stride 0.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                own[i - off]
            }
        })
        .collect()
}

/// `shape` with the axes in `axes` removed: the shape of a reduction without `keepdim`.
pub fn reduced_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect()
}

/// Whether `shape` can be broadcast to `target` (NumPy rules, one-directional).
pub fn can_broadcast_to(shape: &[usize], target: &[usize]) -> bool {
    shape.len() <= target.len()
        && shape
            .iter()
            .rev()
            .zip(target.iter().rev())
            .all(|(&s, &t)| s == t || s == 1)
}

/// Calls `f(out_offset, [offsets of each operand])` for every row (all axes but the last) of
/// `out_shape`, where each operand is read with the given strides. The last axis is left to
/// the caller, who gets its length and each operand's last-axis stride, so inner loops can be
/// specialised (contiguous, broadcast scalar) and vectorised.
///
/// Always inlined, with `f` called from one place, so that `f` is compiled inside the
/// caller's feature-specific copy (`fastmath::dispatch`): an out-of-line copy has no FMA,
/// and `f32::mul_add` there became a software call (6× slower broadcasting ops).
#[inline(always)]
pub fn for_each_row<const N: usize>(
    out_shape: &[usize],
    strides: [&[usize]; N],
    mut f: impl FnMut(usize, [usize; N]),
) {
    // a scalar is one row of one element
    let (inner, outer_dims) = match out_shape.split_last() {
        Some((&inner, outer)) => (inner, outer),
        None => (1, &[][..]),
    };
    let rows = numel(outer_dims);
    if rows == 0 || inner == 0 {
        return;
    }
    let mut idx = vec![0usize; outer_dims.len()];
    let mut offs = [0usize; N];
    for row in 0..rows {
        f(row * inner, offs);
        // odometer increment over the outer axes, keeping operand offsets in step
        for ax in (0..outer_dims.len()).rev() {
            idx[ax] += 1;
            for k in 0..N {
                offs[k] += strides[k][ax];
            }
            if idx[ax] < outer_dims[ax] {
                break;
            }
            for k in 0..N {
                offs[k] -= strides[k][ax] * outer_dims[ax];
            }
            idx[ax] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[4, 1, 3], &[5, 1]), Some(vec![4, 5, 3]));
        assert_eq!(broadcast_shapes(&[], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[2, 3], &[3, 2]), None);
        assert_eq!(broadcast_strides(&[3], &[2, 3]), vec![0, 1]);
        assert_eq!(broadcast_strides(&[2, 1], &[2, 3]), vec![1, 0]);
        assert!(can_broadcast_to(&[1, 3], &[4, 3]));
        assert!(!can_broadcast_to(&[2, 3], &[3]));
    }

    #[test]
    fn rows_visit_every_offset_once() {
        let shape = [2, 3, 4];
        let s = contiguous_strides(&shape);
        let mut seen = vec![];
        for_each_row(&shape, [&s], |o, [a]| {
            assert_eq!(o, a);
            seen.push(o)
        });
        assert_eq!(seen, vec![0, 4, 8, 12, 16, 20]);
    }
}
