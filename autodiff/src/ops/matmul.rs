//! Matrix products. With C = op(A)·op(B):  ∂A = g·op(B)ᵀ (transposed back if A was),
//! ∂B = op(A)ᵀ·g (likewise). Transposes are strides, never copies.

use crate::tape::Var;

impl Var {
    /// op(self)·op(rhs), op = transpose of the last two axes when its flag is set.
    /// 2-d or batched 3-d; a 2-d operand is shared across the batch.
    pub fn matmul_t(&self, rhs: &Var, ta: bool, tb: bool) -> Var {
        let out = self.value.matmul_t(&rhs.value, ta, tb);
        let (sa, sb) = (self.shape().to_vec(), rhs.shape().to_vec());
        self.tape.record(out, &[self, rhs], move |g, ins, _, need| {
            let (a, b) = (&ins[0], &ins[1]);
            let ga = need[0].then(|| {
                let r = if ta {
                    b.matmul_t(g, tb, true)
                } else {
                    g.matmul_t(b, false, !tb)
                };
                r.sum_to(&sa)
            });
            let gb = need[1].then(|| {
                if sa.len() == 3 && sb.len() == 2 && !ta {
                    // A is [B, m, k] shared against a 2-d B: fold the batch into rows, one GEMM.
                    let a2 = a.reshape(&[sa[0] * sa[1], sa[2]]);
                    let g2 = g.reshape(&[sa[0] * sa[1], g.shape()[2]]);
                    if tb {
                        g2.matmul_t(&a2, true, false)
                    } else {
                        a2.matmul_t(&g2, true, false)
                    }
                } else {
                    let r = if tb {
                        g.matmul_t(a, true, ta)
                    } else {
                        a.matmul_t(g, !ta, false)
                    };
                    r.sum_to(&sb)
                }
            });
            vec![ga, gb]
        })
    }

    /// A linear layer y = x·Wᵀ + b for x [B, in], W [out, in] (PyTorch's `nn.Linear` layout)
    /// and b broadcastable to [B, out], the bias added by the GEMM itself.
    /// ∂x = g·W, ∂W = gᵀ·x, ∂b = g summed to b's shape.
    pub fn linear(&self, w: &Var, b: &Var) -> Var {
        assert!(
            self.rank() == 2 && w.rank() == 2,
            "linear: x {:?} and W {:?} must be [B, in] and [out, in]",
            self.shape(),
            w.shape()
        );
        let out = self.value.matmul_t_add(&w.value, false, true, &b.value);
        let bshape = b.shape().to_vec();
        self.tape
            .record(out, &[self, w, b], move |g, ins, _, need| {
                vec![
                    need[0].then(|| g.matmul_t(&ins[1], false, false)),
                    need[1].then(|| g.matmul_t(&ins[0], true, false)),
                    need[2].then(|| g.sum_to(&bshape)),
                ]
            })
    }

    /// Matrix product (2-d or batched 3-d).
    pub fn matmul(&self, rhs: &Var) -> Var {
        self.matmul_t(rhs, false, false)
    }
}
