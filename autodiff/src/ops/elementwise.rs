//! Element-wise primitives and their derivative rules (each rule one line, in `Var` ops).

use crate::tape::Var;
use ebm_core::{BinaryOp, Tensor, UnaryOp};

impl Var {
    fn unary_op(&self, op: UnaryOp, rule: impl Fn(&Var, &Var, &Var) -> Var + 'static) -> Var {
        let out = self.value.unary(op);
        self.tape.record(out, &[self], move |g, ins, out, _| {
            vec![Some(rule(g, &ins[0], out))]
        })
    }

    /// −x.
    pub fn neg(&self) -> Var {
        self.unary_op(UnaryOp::Neg, |g, _, _| g.neg())
    }

    /// eˣ; d/dx = eˣ.
    pub fn exp(&self) -> Var {
        self.unary_op(UnaryOp::Exp, |g, _, out| g.mul(out))
    }

    /// eˣ − 1; d/dx = eˣ = out + 1.
    pub fn expm1(&self) -> Var {
        self.unary_op(UnaryOp::Expm1, |g, _, out| g.mul(&out.add_scalar(1.0)))
    }

    /// ln x; d/dx = 1/x.
    pub fn log(&self) -> Var {
        self.unary_op(UnaryOp::Log, |g, x, _| g.div(x))
    }

    /// ln(1 + x); d/dx = 1/(1 + x).
    pub fn log1p(&self) -> Var {
        self.unary_op(UnaryOp::Log1p, |g, x, _| g.div(&x.add_scalar(1.0)))
    }

    /// √x; d/dx = 1/(2√x).
    pub fn sqrt(&self) -> Var {
        self.unary_op(UnaryOp::Sqrt, |g, _, out| g.div(out).mul_scalar(0.5))
    }

    /// xᵖ for a constant p; d/dx = p·xᵖ⁻¹.
    pub fn powf(&self, p: f64) -> Var {
        self.unary_op(UnaryOp::Powf(p), move |g, x, _| {
            if p == 2.0 {
                g.mul(x).mul_scalar(2.0)
            } else {
                g.mul(&x.powf(p - 1.0)).mul_scalar(p)
            }
        })
    }

    /// x²; d/dx = 2x.
    pub fn square(&self) -> Var {
        self.unary_op(UnaryOp::Square, |g, x, _| g.mul(x).mul_scalar(2.0))
    }

    /// 1/x; d/dx = −1/x².
    pub fn recip(&self) -> Var {
        self.unary_op(UnaryOp::Recip, |g, _, out| g.mul(&out.square()).neg())
    }

    /// tanh x; d/dx = 1 − tanh²x.
    pub fn tanh(&self) -> Var {
        self.unary_op(UnaryOp::Tanh, |g, _, out| {
            g.mul(&out.square().neg().add_scalar(1.0))
        })
    }

    /// σ(x) = 1/(1+e⁻ˣ), stable for either sign; d/dx = σ(1−σ).
    pub fn sigmoid(&self) -> Var {
        self.unary_op(UnaryOp::Sigmoid, |g, _, out| {
            g.mul(&out.mul(&out.neg().add_scalar(1.0)))
        })
    }

    /// softplus(x) = log(1+eˣ), stable; d/dx = σ(x).
    pub fn softplus(&self) -> Var {
        self.unary_op(UnaryOp::Softplus, |g, x, _| g.mul(&x.sigmoid()))
    }

    /// SiLU / swish: x·σ(x); d/dx = silu′(x) = σ(x)·(1 + x·(1−σ(x))).
    ///
    /// A fused primitive, and so is its derivative chain (`mul_silu_d1`, `mul_silu_d2`): the
    /// score and the DSM double-backward of a SiLU network each cost one pass per layer.
    pub fn silu(&self) -> Var {
        self.unary_op(UnaryOp::Silu, |g, x, _| g.mul_silu_d1(x))
    }

    /// g ⊙ silu′(x) in one pass (`self` is g): SiLU's backward.
    /// ∂/∂g = silu′(x), ∂/∂x = g ⊙ silu″(x).
    pub fn mul_silu_d1(&self, x: &Var) -> Var {
        let out = self.value.binary(&x.value, BinaryOp::MulSiluD1);
        let (sg, sx) = (self.shape().to_vec(), x.shape().to_vec());
        self.tape.record(out, &[self, x], move |g2, ins, _, need| {
            let (g, x) = (&ins[0], &ins[1]);
            if let Some([dg, _, dx]) =
                fused_silu_grads(g2, g, None, x, 1, [need[0], false, need[1]])
            {
                return vec![dg, dx];
            }
            vec![
                need[0].then(|| g2.mul_silu_d1(x).sum_to(&sg)),
                need[1].then(|| g2.mul2_silu_d(g, x, 2).sum_to(&sx)),
            ]
        })
    }

    /// g ⊙ silu″(x) in one pass. ∂/∂g = silu″(x), ∂/∂x = g ⊙ silu‴(x).
    pub fn mul_silu_d2(&self, x: &Var) -> Var {
        let out = self.value.binary(&x.value, BinaryOp::MulSiluD2);
        let (sg, sx) = (self.shape().to_vec(), x.shape().to_vec());
        self.tape.record(out, &[self, x], move |g2, ins, _, need| {
            let (g, x) = (&ins[0], &ins[1]);
            vec![
                need[0].then(|| g2.mul_silu_d2(x).sum_to(&sg)),
                need[1].then(|| g2.mul2_silu_d(g, x, 3).sum_to(&sx)),
            ]
        })
    }

    /// g ⊙ silu‴(x) in one pass (exact score matching and sliced SM differentiate SiLU three
    /// times). ∂/∂g = silu‴(x), ∂/∂x = g ⊙ silu⁗(x), where with s = σ(x), p = s(1−s),
    /// q = 1−2s, A = q(3 + xq) − 2xp: silu‴ = pA and silu⁗ = p(qA + q² − 8p − 6xpq),
    /// composed of primitives so every higher order follows.
    pub fn mul_silu_d3(&self, x: &Var) -> Var {
        let out = self.value.binary(&x.value, BinaryOp::MulSiluD3);
        let (sg, sx) = (self.shape().to_vec(), x.shape().to_vec());
        self.tape.record(out, &[self, x], move |g2, ins, _, need| {
            let (g, x) = (&ins[0], &ins[1]);
            vec![
                need[0].then(|| g2.mul_silu_d3(x).sum_to(&sg)),
                need[1].then(|| g2.mul(g).mul(&silu_d4(x)).sum_to(&sx)),
            ]
        })
    }

    /// a ⊙ b ⊙ silu⁽ᵏ⁾(x) for k ∈ {1, 2, 3} (`self` is a), broadcasting, in one pass: the
    /// input cotangent of `mul_silu_d{k−1}`, so second- and third-order SiLU rules cost one
    /// pass instead of a multiply and then a fused pass.
    /// ∂/∂a = b ⊙ silu⁽ᵏ⁾(x), ∂/∂b = a ⊙ silu⁽ᵏ⁾(x), ∂/∂x = a ⊙ b ⊙ silu⁽ᵏ⁺¹⁾(x).
    pub fn mul2_silu_d(&self, b: &Var, x: &Var, k: u8) -> Var {
        let out = self.value.mul2_silu_d(&b.value, &x.value, k);
        let (sa, sb, sx) = (
            self.shape().to_vec(),
            b.shape().to_vec(),
            x.shape().to_vec(),
        );
        self.tape
            .record(out, &[self, b, x], move |c, ins, _, need| {
                let (a, b, x) = (&ins[0], &ins[1], &ins[2]);
                if let Some(g) = fused_silu_grads(c, a, Some(b), x, k, [need[0], need[1], need[2]])
                {
                    return g.to_vec();
                }
                vec![
                    need[0].then(|| c.mul2_silu_d(b, x, k).sum_to(&sa)),
                    need[1].then(|| c.mul2_silu_d(a, x, k).sum_to(&sb)),
                    need[2].then(|| {
                        let ca = c.mul(a);
                        if k < 3 {
                            ca.mul2_silu_d(b, x, k + 1).sum_to(&sx)
                        } else {
                            ca.mul(b).mul(&silu_d4(x)).sum_to(&sx)
                        }
                    }),
                ]
            })
    }

    /// max(x, 0); d/dx = 1 for x > 0 else 0. Its second derivative is 0 almost everywhere,
    /// which makes it unsuitable for exact score matching.
    pub fn relu(&self) -> Var {
        self.unary_op(UnaryOp::Relu, |g, x, _| {
            g.mul_const(&x.value.unary(UnaryOp::Step))
        })
    }

    /// |x|; d/dx = sign(x).
    pub fn abs(&self) -> Var {
        self.unary_op(UnaryOp::Abs, |g, x, _| g.mul_const(&x.value.sign()))
    }

    /// sin x; d/dx = cos x.
    pub fn sin(&self) -> Var {
        self.unary_op(UnaryOp::Sin, |g, x, _| g.mul(&x.cos()))
    }

    /// cos x; d/dx = −sin x.
    pub fn cos(&self) -> Var {
        self.unary_op(UnaryOp::Cos, |g, x, _| g.mul(&x.sin()).neg())
    }

    /// x + c for a constant c.
    pub fn add_scalar(&self, c: f64) -> Var {
        self.unary_op(UnaryOp::AddScalar(c), |g, _, _| g.clone())
    }

    /// c·x for a constant c.
    pub fn mul_scalar(&self, c: f64) -> Var {
        self.unary_op(UnaryOp::MulScalar(c), move |g, _, _| g.mul_scalar(c))
    }

    /// a·x + b for constants a, b.
    pub fn affine(&self, a: f64, b: f64) -> Var {
        self.unary_op(UnaryOp::Affine(a, b), move |g, _, _| g.mul_scalar(a))
    }

    /// x · c for a constant tensor c (broadcast); d/dx = c.
    pub fn mul_const(&self, c: &Tensor) -> Var {
        let c2 = c.clone();
        let shape = self.shape().to_vec();
        self.tape
            .record(self.value.mul(c), &[self], move |g, _, _, _| {
                vec![Some(g.mul_const(&c2).sum_to(&shape))]
            })
    }

    /// x + c for a constant tensor c (broadcast).
    pub fn add_const(&self, c: &Tensor) -> Var {
        let shape = self.shape().to_vec();
        self.tape
            .record(self.value.add(c), &[self], move |g, _, _, _| {
                vec![Some(g.sum_to(&shape))]
            })
    }

    fn binary_op(
        &self,
        rhs: &Var,
        op: BinaryOp,
        rule: impl Fn(&Var, &Var, &Var, &Var, [bool; 2]) -> (Option<Var>, Option<Var>) + 'static,
    ) -> Var {
        let out = self.value.binary(&rhs.value, op);
        let (sa, sb) = (self.shape().to_vec(), rhs.shape().to_vec());
        self.tape
            .record(out, &[self, rhs], move |g, ins, out, need| {
                let (ga, gb) = rule(g, &ins[0], &ins[1], out, [need[0], need[1]]);
                vec![ga.map(|v| v.sum_to(&sa)), gb.map(|v| v.sum_to(&sb))]
            })
    }

    /// a + b (broadcast); cotangents are summed back to each input's shape.
    pub fn add(&self, rhs: &Var) -> Var {
        self.binary_op(rhs, BinaryOp::Add, |g, _, _, _, n| {
            (n[0].then(|| g.clone()), n[1].then(|| g.clone()))
        })
    }

    /// a − b (broadcast).
    pub fn sub(&self, rhs: &Var) -> Var {
        self.binary_op(rhs, BinaryOp::Sub, |g, _, _, _, n| {
            (n[0].then(|| g.clone()), n[1].then(|| g.neg()))
        })
    }

    /// a · b (broadcast); ∂/∂a = b, ∂/∂b = a.
    pub fn mul(&self, rhs: &Var) -> Var {
        self.binary_op(rhs, BinaryOp::Mul, |g, a, b, _, n| {
            (n[0].then(|| g.mul(b)), n[1].then(|| g.mul(a)))
        })
    }

    /// a / b (broadcast); ∂/∂a = 1/b, ∂/∂b = −a/b² = −out/b.
    pub fn div(&self, rhs: &Var) -> Var {
        self.binary_op(rhs, BinaryOp::Div, |g, _, b, out, n| {
            let ga = g.div(b);
            let gb = n[1].then(|| ga.mul(out).neg());
            (n[0].then_some(ga), gb)
        })
    }

    /// `cond ? a : b` with a constant condition (nonzero = true), all broadcast together.
    pub fn where_(cond: &Tensor, a: &Var, b: &Var) -> Var {
        let out = Tensor::where_(cond, &a.value, &b.value);
        let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
        let c = cond.clone();
        a.tape.record(out, &[a, b], move |g, _, _, need| {
            let zero = g.constant(g.value.zeros_like());
            vec![
                need[0].then(|| Var::where_(&c, g, &zero).sum_to(&sa)),
                need[1].then(|| Var::where_(&c, &zero, g).sum_to(&sb)),
            ]
        })
    }

    /// Element-wise maximum (at ties the gradient goes to `self`).
    pub fn maximum(&self, rhs: &Var) -> Var {
        Var::where_(&self.value.ge(&rhs.value), self, rhs)
    }

    /// Element-wise minimum (at ties the gradient goes to `self`).
    pub fn minimum(&self, rhs: &Var) -> Var {
        Var::where_(&self.value.le(&rhs.value), self, rhs)
    }
}

macro_rules! impl_binop {
    ($trait:ident, $m:ident, $f:ident) => {
        impl std::ops::$trait<&Var> for &Var {
            type Output = Var;
            fn $m(self, rhs: &Var) -> Var {
                Var::$f(self, rhs)
            }
        }
        impl std::ops::$trait<Var> for Var {
            type Output = Var;
            fn $m(self, rhs: Var) -> Var {
                Var::$f(&self, &rhs)
            }
        }
        impl std::ops::$trait<&Var> for Var {
            type Output = Var;
            fn $m(self, rhs: &Var) -> Var {
                Var::$f(&self, rhs)
            }
        }
        impl std::ops::$trait<f64> for &Var {
            type Output = Var;
            fn $m(self, rhs: f64) -> Var {
                let c = self.constant(Tensor::scalar(rhs, self.dtype()));
                Var::$f(self, &c)
            }
        }
        impl std::ops::$trait<f64> for Var {
            type Output = Var;
            fn $m(self, rhs: f64) -> Var {
                std::ops::$trait::$m(&self, rhs)
            }
        }
    };
}

impl_binop!(Add, add, add);
impl_binop!(Sub, sub, sub);
impl_binop!(Mul, mul, mul);
impl_binop!(Div, div, div);

impl std::ops::Neg for &Var {
    type Output = Var;
    fn neg(self) -> Var {
        Var::neg(self)
    }
}

impl std::ops::Neg for Var {
    type Output = Var;
    fn neg(self) -> Var {
        Var::neg(&self)
    }
}

/// silu⁗(x) = p(qA + q² − 8p − 6xpq) with s = σ(x), p = s(1−s), q = 1−2s,
/// A = q(3 + xq) − 2xp, composed of primitives so every higher order follows.
fn silu_d4(x: &Var) -> Var {
    let s = x.sigmoid();
    let p = s.mul(&s.neg().add_scalar(1.0));
    let q = s.mul_scalar(-2.0).add_scalar(1.0);
    let xp = x.mul(&p);
    let a = q.mul(&x.mul(&q).add_scalar(3.0)).sub(&xp.mul_scalar(2.0));
    p.mul(
        &q.mul(&a)
            .add(&q.square())
            .sub(&p.mul_scalar(8.0))
            .sub(&xp.mul(&q).mul_scalar(6.0)),
    )
}

/// SiLU-chain cotangents from one fused pass ([`Tensor::silu_chain_grads`]) when nothing is
/// being recorded (reverse mode's last pass, whose results are plain values) and the shapes
/// allow it; `None` sends the rule to its composable form.
fn fused_silu_grads(
    c: &Var,
    a: &Var,
    b: Option<&Var>,
    x: &Var,
    k: u8,
    need: [bool; 3],
) -> Option<[Option<Var>; 3]> {
    if c.tape().grad_enabled() {
        return None;
    }
    let grads = Tensor::silu_chain_grads(
        c.value(),
        a.value(),
        b.map(|b| b.value()),
        x.value(),
        k,
        need,
    )?;
    Some(grads.map(|t| t.map(|t| c.constant(t))))
}
