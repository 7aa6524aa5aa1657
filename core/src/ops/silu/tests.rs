//! Tests of a ⊙ silu⁽ᵏ⁾ (one and two factors, chunked rows), SiLU's kept σ and its gradients,
//! each against the separate ops (bit for bit where a pass promises the same bits).

use crate::{BinaryOp, Tensor, UnaryOp};

/// a ⊙ silu⁽ᵏ⁾(x) for k = 1, 2, 3.
const MUL_SILU_D: [BinaryOp; 3] = [
    BinaryOp::MulSiluD1,
    BinaryOp::MulSiluD2,
    BinaryOp::MulSiluD3,
];

#[test]
fn mul2_silu_d_is_one_pass_of_the_composition() {
    let mut rng = crate::Rng::new(5);
    for dtype in [crate::DType::F32, crate::DType::F64] {
        let (a, b, x) = (
            rng.normal(&[7, 33], dtype),
            rng.normal(&[7, 33], dtype),
            rng.normal(&[7, 33], dtype).mul_scalar(3.0),
        );
        for (k, op) in MUL_SILU_D.into_iter().enumerate() {
            let want = a.mul(&b).binary(&x, op);
            let got = a.mul2_silu_d(&b, &x, k as u8 + 1);
            let tol = if dtype == crate::DType::F32 {
                1e-6
            } else {
                1e-15
            };
            assert!(
                got.max_abs_diff(&want) <= tol * (1.0 + want.max_abs()),
                "k = {}",
                k + 1
            );
            // broadcast operands take the composed path
            let row = b.narrow(0, 0, 1);
            let want = a.mul(&row).binary(&x, op);
            assert_eq!(
                a.mul2_silu_d(&row, &x, k as u8 + 1).to_vec_f64(),
                want.to_vec_f64()
            );
        }
    }
}

/// a ⊙ silu⁽ᵏ⁾(x) element by element from the scalar forms, as f64 bits of the dtype.
fn mul_silu_d_by_element(a: &[f64], x: &[f64], k: usize, f32: bool) -> Vec<f64> {
    use crate::ops::scalar::{silu_d1, silu_d2, silu_d3};
    let w = a.len();
    let d64 = [silu_d1::<f64>, silu_d2::<f64>, silu_d3::<f64>][k];
    let d32 = [silu_d1::<f32>, silu_d2::<f32>, silu_d3::<f32>][k];
    (0..x.len())
        .map(|i| match f32 {
            true => (a[i % w] as f32 * d32(x[i] as f32)) as f64,
            false => a[i % w] * d64(x[i]),
        })
        .collect()
}

#[test]
fn chunked_mul_silu_d_is_the_scalar_op_bit_for_bit() {
    let mut rng = crate::Rng::new(21);
    for dtype in [crate::DType::F32, crate::DType::F64] {
        // rows across a chunk's edge (300 = 256 + 44), a whole chunk, several chunks in one
        // same-shape pass, and a row too narrow for the chunked loop (the ordinary one)
        for (rows, w) in [(5, 300), (3, 256), (2, 1000), (37, 19), (4, 64), (0, 128)] {
            let x = rng.normal(&[rows, w], dtype).mul_scalar(6.0);
            let a = rng.normal(&[rows, w], dtype);
            let row = rng.normal(&[1, w], dtype);
            assert_eq!(
                row.mul_silu_d(&x, BinaryOp::MulSiluD1).is_some(),
                w >= super::MIN_CHUNKED_ROW
            );
            let xv = x.to_vec_f64();
            let is_f32 = dtype == crate::DType::F32;
            for (k, op) in MUL_SILU_D.into_iter().enumerate() {
                assert!(a.mul_silu_d(&x, op).is_some());
                for f in [&a, &row] {
                    let want = mul_silu_d_by_element(&f.to_vec_f64(), &xv, k, is_f32);
                    let got = f.binary(&x, op).to_vec_f64();
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(g, w)| g.to_bits() == w.to_bits());
                    assert!(same, "{op:?} {dtype:?} {:?} on [{rows}, {w}]", f.shape());
                }
            }
        }
    }
}

#[test]
fn silu_keeps_sigmoid_and_derivatives_read_it_bit_for_bit() {
    let mut rng = crate::Rng::new(8);
    for dtype in [crate::DType::F32, crate::DType::F64] {
        let x = rng.normal(&[64, 128], dtype).mul_scalar(4.0);
        let (g, h) = (rng.normal(&[64, 128], dtype), rng.normal(&[64, 128], dtype));
        let fresh = x.mul_scalar(1.0); // same values, a buffer with no σ kept
        assert!(x.sigmoid_cache().is_none());
        let y = x.silu();
        assert_eq!(y.to_vec_f64(), fresh.unary(UnaryOp::Silu).to_vec_f64());
        let s = x.sigmoid_cache().expect("SiLU keeps σ of a large input");
        assert_eq!(s.to_vec_f64(), fresh.sigmoid().to_vec_f64());
        for (k, op) in MUL_SILU_D.into_iter().enumerate() {
            assert_eq!(
                g.binary(&x, op).to_vec_f64(),
                g.binary(&fresh, op).to_vec_f64()
            );
            let k = k as u8 + 1;
            assert_eq!(
                g.mul2_silu_d(&h, &x, k).to_vec_f64(),
                g.mul2_silu_d(&h, &fresh, k).to_vec_f64()
            );
        }
        // writing through data_mut drops the cache: derivatives see the new values
        let mut x = x;
        drop(y);
        match dtype {
            crate::DType::F32 => x.data_mut::<f32>()[0] = 1.5,
            crate::DType::F64 => x.data_mut::<f64>()[0] = 1.5,
        }
        assert!(x.sigmoid_cache().is_none());
        let want = g.binary(&x.mul_scalar(1.0), BinaryOp::MulSiluD1);
        assert_eq!(
            g.binary(&x, BinaryOp::MulSiluD1).to_vec_f64(),
            want.to_vec_f64()
        );
    }
    // small tensors are not worth a cache
    let t = Tensor::ones(&[3, 4], crate::DType::F32);
    let _ = t.silu();
    assert!(t.sigmoid_cache().is_none());
}

#[test]
fn silu_chain_grads_are_the_separate_ops() {
    let mut rng = crate::Rng::new(13);
    for dtype in [crate::DType::F32, crate::DType::F64] {
        let t = |r: &mut crate::Rng| r.normal(&[40, 128], dtype);
        let (c, a, b, x) = (
            t(&mut rng),
            t(&mut rng),
            t(&mut rng),
            t(&mut rng).mul_scalar(3.0),
        );
        assert!(
            Tensor::silu_chain_grads(&c, &a, None, &x, 1, [true, false, true]).is_none(),
            "without a kept σ the separate ops run"
        );
        let _ = x.silu(); // keeps σ
        let ops = MUL_SILU_D;
        for k in 1..=2u8 {
            // out = a ⊙ silu⁽ᵏ⁾(x)
            let [g0, g1, g2] =
                Tensor::silu_chain_grads(&c, &a, None, &x, k, [true, false, true]).unwrap();
            assert!(g1.is_none());
            let bits = |t: &Tensor| t.to_vec_f64();
            assert_eq!(bits(&g0.unwrap()), bits(&c.binary(&x, ops[k as usize - 1])));
            assert_eq!(
                bits(&g2.unwrap()),
                bits(&c.mul(&a).binary(&x, ops[k as usize]))
            );
            // out = a ⊙ b ⊙ silu⁽ᵏ⁾(x)
            let [g0, g1, g2] =
                Tensor::silu_chain_grads(&c, &a, Some(&b), &x, k, [true; 3]).unwrap();
            assert_eq!(bits(&g0.unwrap()), bits(&c.mul2_silu_d(&b, &x, k)));
            assert_eq!(bits(&g1.unwrap()), bits(&c.mul2_silu_d(&a, &x, k)));
            assert_eq!(
                bits(&g2.unwrap()),
                bits(&c.mul(&a).mul2_silu_d(&b, &x, k + 1))
            );
        }
        // a partial need or a third order goes to the separate ops
        assert!(Tensor::silu_chain_grads(&c, &a, Some(&b), &x, 1, [true, false, true]).is_none());
        assert!(Tensor::silu_chain_grads(&c, &a, None, &x, 3, [true, false, true]).is_none());
    }
}
