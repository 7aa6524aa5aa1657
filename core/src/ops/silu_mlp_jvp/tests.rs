//! Each pass against its formula from separate ops, with two tangents (M = 2) so the sums over
//! tangent blocks are exercised.

use crate::{BinaryOp, DType, Rng, Tensor};

fn close(a: &Tensor, b: &Tensor, dtype: DType) {
    let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
    assert!(
        a.shape() == b.shape() && a.max_abs_diff(b) <= tol * (1.0 + b.max_abs()),
        "{:?} vs {:?}: max diff {}",
        a.shape(),
        b.shape(),
        a.max_abs_diff(b)
    );
}

fn same(a: &Tensor, b: &Tensor) {
    let bits = |t: &Tensor| {
        t.to_vec_f64()
            .into_iter()
            .map(f64::to_bits)
            .collect::<Vec<_>>()
    };
    assert!(
        a.shape() == b.shape() && bits(a) == bits(b),
        "{:?} differs",
        a.shape()
    );
}

#[test]
fn passes_are_their_formulas() {
    let mut rng = Rng::new(9);
    // a row of 300 is a whole chunk of the σ passes and part of a second
    for (dtype, (rows, w)) in [DType::F32, DType::F64]
        .into_iter()
        .flat_map(|d| [(d, (7, 19)), (d, (3, 300))])
    {
        let normal = |rng: &mut Rng, r: usize| rng.normal(&[r, w], dtype);
        let stack = |parts: &[&Tensor]| {
            Tensor::concat(&parts.iter().map(|&t| t.clone()).collect::<Vec<_>>(), 0)
        };
        // a stacked quantity's primal rows and its two tangent blocks
        let parts = |t: &Tensor| [0, 1, 2].map(|k| t.narrow(0, k * rows, rows));
        let tangents = |t: &Tensor| t.narrow(0, rows, 2 * rows);
        let rep = |t: &Tensor| stack(&[t, t]);
        let sum_m = |t: &Tensor| t.narrow(0, 0, rows).add(&t.narrow(0, rows, rows));

        let z = normal(&mut rng, 3 * rows).mul_scalar(4.0);
        let bias = rng.normal(&[w], dtype);
        let a = parts(&z)[0].add(&bias.reshape(&[1, w]));
        let at = tangents(&z);
        let ones = a.ones_like();
        let d = ones.binary(&a, BinaryOp::MulSiluD1);
        let e = ones.binary(&a, BinaryOp::MulSiluD2);
        let f = ones.binary(&a, BinaryOp::MulSiluD3);

        let [h_st, d_, e_, f_] = z.silu_jvp_forward(Some(&bias), rows);
        close(&h_st, &stack(&[&a.silu(), &rep(&d).mul(&at)]), dtype);
        // σ's passes do the separate ops' operations: the same bits
        same(&h_st.narrow(0, 0, rows), &a.silu());
        same(&d_, &d);
        same(&e_, &e);
        same(&f_, &f);
        // without a bias, the product is the pre-activation
        let [h0, ..] = z.silu_jvp_forward(None, rows);
        close(&h0.narrow(0, 0, rows), &parts(&z)[0].silu(), dtype);

        let v = rng.normal(&[w], dtype);
        let [g_st, d_, e_, f_] = z.silu_top_jvp(Some(&bias), &v, rows);
        same(&g_st.narrow(0, 0, rows), &d.mul(&v));
        same(&d_, &d);
        same(&e_, &e);
        same(&f_, &f);
        close(
            &g_st,
            &stack(&[&d.mul(&v), &rep(&e).mul(&v).mul(&at)]),
            dtype,
        );

        let u_st = normal(&mut rng, 3 * rows);
        let (u, ut) = (parts(&u_st)[0].clone(), tangents(&u_st));
        let g_st = u_st.silu_chain_jvp(&d, &e, &z);
        let want = stack(&[&u.mul(&d), &ut.mul(&rep(&d)).add(&rep(&u.mul(&e)).mul(&at))]);
        close(&g_st, &want, dtype);

        let gb_st = normal(&mut rng, 3 * rows);
        let (gb, gtb) = (parts(&gb_st)[0].clone(), tangents(&gb_st));
        let [ub_st, t, ats] = gb_st.silu_chain_jvp_backward(&d, &e, &f, &u_st, &z);
        let a_sum = sum_m(&gtb.mul(&at));
        let c_sum = sum_m(&gtb.mul(&ut));
        let want = stack(&[&gb.mul(&d).add(&e.mul(&a_sum)), &gtb.mul(&rep(&d))]);
        close(&ub_st, &want, dtype);
        close(&ats, &gtb.mul(&rep(&u.mul(&e))), dtype);
        let want_t = gb.mul(&u).add(&c_sum).mul(&e).add(&a_sum.mul(&u).mul(&f));
        close(&t, &want_t, dtype);

        let [ab_st, sv, sa] = gb_st.silu_top_jvp_backward(&d, &e, &f, &z, &v);
        let want_ab = gb.mul(&e).add(&a_sum.mul(&f)).mul(&v);
        close(
            &ab_st,
            &stack(&[&want_ab, &gtb.mul(&rep(&e)).mul(&v)]),
            dtype,
        );
        let want_sv = gb.mul(&d).add(&e.mul(&a_sum)).sum_axes(&[0], false);
        close(&sv, &want_sv, dtype);
        close(&sa, &want_ab.sum_axes(&[0], false), dtype);

        let hb_st = normal(&mut rng, 3 * rows);
        let (hb, htb) = (parts(&hb_st)[0].clone(), tangents(&hb_st));
        let [ab_st, sa] = hb_st.silu_layer_jvp_backward(&d, &e, &z, &t, &ats);
        let want_ab = hb.mul(&d).add(&sum_m(&htb.mul(&at)).mul(&e)).add(&t);
        close(
            &ab_st,
            &stack(&[&want_ab, &htb.mul(&rep(&d)).add(&ats)]),
            dtype,
        );
        close(&sa, &want_ab.sum_axes(&[0], false), dtype);
    }
}

#[test]
#[should_panic(expected = "stacked operands")]
fn a_stacked_operand_of_another_height_is_refused() {
    let d = Tensor::zeros(&[4, 19], DType::F32);
    let u = Tensor::zeros(&[12, 19], DType::F32);
    u.silu_chain_jvp(&d, &d, &Tensor::zeros(&[8, 19], DType::F32));
}
