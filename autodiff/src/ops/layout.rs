//! Layout ops and their adjoints: reshape, permute, narrow ↔ pad, concat, gather ↔ scatter rows.

use crate::tape::Var;
use ebm_core::Tensor;

impl Var {
    /// Same elements, new shape (one axis may be `usize::MAX` to infer it).
    pub fn reshape(&self, shape: &[usize]) -> Var {
        let out = self.value.reshape(shape);
        let from = self.shape().to_vec();
        self.tape
            .record(out, &[self], move |g, _, _, _| vec![Some(g.reshape(&from))])
    }

    /// Reorders axes: output axis i is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Var {
        let out = self.value.permute(perm);
        let mut inv = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        self.tape
            .record(out, &[self], move |g, _, _, _| vec![Some(g.permute(&inv))])
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: usize, b: usize) -> Var {
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two axes.
    pub fn t(&self) -> Var {
        let r = self.rank();
        assert!(r >= 2, "t: needs rank ≥ 2, got {:?}", self.shape());
        self.transpose(r - 2, r - 1)
    }

    /// Elements `start..start+len` along `axis`; the adjoint pads with zeros.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Var {
        let out = self.value.narrow(axis, start, len);
        let full = self.shape()[axis];
        self.tape.record(out, &[self], move |g, _, _, _| {
            vec![Some(g.pad_axis(axis, start, full))]
        })
    }

    /// Places `self` at `start` along `axis` of a zero tensor whose axis has length `full`
    /// (the adjoint of `narrow`).
    pub fn pad_axis(&self, axis: usize, start: usize, full: usize) -> Var {
        let mut shape = self.shape().to_vec();
        let len = shape[axis];
        shape[axis] = full;
        let out = Tensor::zeros(&shape, self.dtype()).narrow_assign(axis, start, &self.value);
        self.tape.record(out, &[self], move |g, _, _, _| {
            vec![Some(g.narrow(axis, start, len))]
        })
    }

    /// Joins Vars along `axis`.
    pub fn concat(parts: &[Var], axis: usize) -> Var {
        assert!(!parts.is_empty(), "concat: no Vars given");
        let values: Vec<Tensor> = parts.iter().map(|p| p.value.clone()).collect();
        let out = Tensor::concat(&values, axis);
        let lens: Vec<usize> = parts.iter().map(|p| p.shape()[axis]).collect();
        let refs: Vec<&Var> = parts.iter().collect();
        parts[0].tape.record(out, &refs, move |g, _, _, need| {
            let mut start = 0;
            lens.iter()
                .zip(need)
                .map(|(&len, &n)| {
                    let r = n.then(|| g.narrow(axis, start, len));
                    start += len;
                    r
                })
                .collect()
        })
    }

    /// Rows `indices` of axis 0; the adjoint scatter-adds into zeros.
    pub fn index_select(&self, indices: &[usize]) -> Var {
        let out = self.value.index_select(indices);
        let idx = indices.to_vec();
        let rows = self.shape()[0];
        self.tape.record(out, &[self], move |g, _, _, _| {
            vec![Some(g.scatter_rows(&idx, rows))]
        })
    }

    /// A zero tensor with `rows` rows into which `self`'s rows are added at `indices`
    /// (the adjoint of `index_select`).
    pub fn scatter_rows(&self, indices: &[usize], rows: usize) -> Var {
        let mut shape = self.shape().to_vec();
        shape[0] = rows;
        let out = Tensor::zeros(&shape, self.dtype()).index_add(indices, &self.value);
        let idx = indices.to_vec();
        self.tape.record(out, &[self], move |g, _, _, _| {
            vec![Some(g.index_select(&idx))]
        })
    }
}
