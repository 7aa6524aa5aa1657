//! Seeded counter-based randomness (Philox4x32-10, Salmon et al. 2011, "Parallel random
//! numbers: as easy as 1, 2, 3").
//!
//! Element `i` of a draw depends only on (seed, stream, counter + i/2) (counter + i/4 for f32
//! normals, four to a block), never on how the work is split across threads, so results are
//! identical on 1 or N threads and on any device that implements the same function. The whole state is three integers: checkpoints store it.
//!
//! `Rng` implements `rand_core`'s `Rng` (formerly `RngCore`) and `SeedableRng` on the same
//! stream, so every `rand_distr` distribution samples from it reproducibly.

use crate::dtype::DType;
use crate::shape::numel;
use crate::tensor::Tensor;

pub use ebm_philox::philox4x32_10;
use ebm_philox::{box_muller, box_muller_f32, open_unit, philox_lanes, LANES};

/// A seeded, splittable, counter-based generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    seed: u64,
    stream: u64,
    counter: u64,
}

impl Rng {
    /// A generator for `seed`, stream 0, at the start of its sequence.
    pub fn new(seed: u64) -> Rng {
        Rng {
            seed,
            stream: 0,
            counter: 0,
        }
    }

    /// Rebuilds a generator from [`Rng::state`].
    pub fn from_state(state: [u64; 3]) -> Rng {
        Rng {
            seed: state[0],
            stream: state[1],
            counter: state[2],
        }
    }

    /// (seed, stream, counter): everything needed to resume the sequence exactly.
    pub fn state(&self) -> [u64; 3] {
        [self.seed, self.stream, self.counter]
    }

    /// An independent generator for sub-stream `id` of this one (same seed, different stream);
    /// does not advance `self`.
    pub fn stream(&self, id: u64) -> Rng {
        let b = self.block_at(u64::MAX);
        let mix = ((b[0] as u64) << 32 | b[1] as u64) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng {
            seed: self.seed,
            stream: mix,
            counter: 0,
        }
    }

    /// A fresh independent generator, advancing `self` by one block.
    pub fn fork(&mut self) -> Rng {
        let b = self.next_block();
        Rng {
            seed: ((b[0] as u64) << 32) | b[1] as u64,
            stream: ((b[2] as u64) << 32) | b[3] as u64,
            counter: 0,
        }
    }

    fn key(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }

    fn block_at(&self, counter: u64) -> [u32; 4] {
        let ctr = [
            counter as u32,
            (counter >> 32) as u32,
            self.stream as u32,
            (self.stream >> 32) as u32,
        ];
        philox4x32_10(ctr, self.key())
    }

    /// The next 128 random bits.
    pub fn next_block(&mut self) -> [u32; 4] {
        let b = self.block_at(self.counter);
        self.counter = self.counter.wrapping_add(1);
        b
    }

    /// `n` values, elements Kj..Kj+K computed together by `f(block j)` from block
    /// `counter + j`; advances by ⌈n/K⌉ blocks. One Philox call serves K elements (two f64
    /// uniforms or normals, four f32 normals).
    ///
    /// Blocks are made [`LANES`] at a time with the rounds written over arrays, and `f` is
    /// inlined into an AVX-512/AVX2 copy of the loop, so Philox and `f` both vectorise.
    #[inline(always)]
    fn draw_into<T: Copy + Default, const K: usize>(
        &mut self,
        out: &mut [T],
        f: impl Fn([u32; 4]) -> [T; K] + Copy,
    ) {
        let n = out.len();
        let base = self.counter;
        let blocks = n.div_ceil(K);
        let (key, stream) = (self.key(), self.stream);
        crate::ops::fastmath::dispatch(
            #[inline(always)]
            || {
                for (chunk, start) in (0..blocks).step_by(LANES).enumerate() {
                    let b = philox_lanes(base.wrapping_add(start as u64), stream, key);
                    let dst = &mut out[K * LANES * chunk..(K * LANES * (chunk + 1)).min(n)];
                    // a whole chunk of four values per block (f32 normals): block l's values
                    // straight into elements 4l..4l+4, through a fixed-size array so the lane
                    // loop vectorises; the lane-wise arrays below cost a quarter of an f32
                    // draw in their element-by-element interleave (f64, two per block, was
                    // 7% slower this way)
                    if K == 4 {
                        if let Ok(whole) = <&mut [[T; K]; LANES]>::try_from(dst.as_chunks_mut().0) {
                            for (l, d) in whole.iter_mut().enumerate() {
                                *d = f([b[0][l], b[1][l], b[2][l], b[3][l]]);
                            }
                            continue;
                        }
                    }
                    // value h of lane l's block at v[h][l]: K arrays of LANES, which the
                    // vectorised `f` fills lane-wise
                    let mut v = [[T::default(); LANES]; K];
                    for l in 0..LANES {
                        let z = f([b[0][l], b[1][l], b[2][l], b[3][l]]);
                        for (vh, zh) in v.iter_mut().zip(z) {
                            vh[l] = zh;
                        }
                    }
                    if dst.len() == K * LANES {
                        for l in 0..LANES {
                            for (h, vh) in v.iter().enumerate() {
                                dst[K * l + h] = vh[l];
                            }
                        }
                    } else {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = v[i % K][i / K];
                        }
                    }
                }
            },
        );
        self.counter = base.wrapping_add(blocks as u64);
    }

    fn draw(&mut self, n: usize, f: impl Fn([u32; 4]) -> [f64; 2] + Copy) -> Vec<f64> {
        let mut out = vec![0.0; n];
        self.draw_into(&mut out, f);
        out
    }

    /// Uniform draws in (0, 1) as f64.
    pub fn uniform_vec(&mut self, n: usize) -> Vec<f64> {
        self.draw(n, |b| [open_unit(b[0], b[1]), open_unit(b[2], b[3])])
    }

    /// Standard normal draws as f64 (Box–Muller on each block's two uniforms).
    pub fn normal_vec(&mut self, n: usize) -> Vec<f64> {
        self.draw(n, |b| box_muller(b).into())
    }

    /// Uniform on [lo, hi).
    pub fn uniform(&mut self, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
        let v: Vec<f64> = self
            .uniform_vec(numel(shape))
            .into_iter()
            .map(|u| lo + (hi - lo) * u)
            .collect();
        Tensor::from_f64s(&v, shape, dtype)
    }

    /// Standard normal: in f64 by [`box_muller`] (two per block, as [`Rng::normal_vec`]), in
    /// f32 by [`box_muller_f32`] (four per block, computed in f32).
    pub fn normal(&mut self, shape: &[usize], dtype: DType) -> Tensor {
        let n = numel(shape);
        match dtype {
            DType::F32 => {
                let mut v = crate::pool::take::<f32>(n);
                self.draw_into(&mut v, box_muller_f32);
                Tensor::from_vec(v, shape)
            }
            DType::F64 => {
                let mut v = crate::pool::take::<f64>(n);
                self.draw_into(&mut v, |b| box_muller(b).into());
                Tensor::from_vec(v, shape)
            }
        }
    }

    /// ±1 with equal probability.
    pub fn rademacher(&mut self, shape: &[usize], dtype: DType) -> Tensor {
        let v: Vec<f64> = self
            .uniform_vec(numel(shape))
            .into_iter()
            .map(|u| if u < 0.5 { -1.0 } else { 1.0 })
            .collect();
        Tensor::from_f64s(&v, shape, dtype)
    }

    /// One uniform in (0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let b = self.next_block();
        open_unit(b[0], b[1])
    }

    /// A uniform integer in 0..n (Lemire's multiply-shift on 64 bits; bias < n/2⁶⁴).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below: empty range");
        let b = self.next_block();
        let x = ((b[0] as u64) << 32) | b[1] as u64;
        ((x as u128 * n as u128) >> 64) as usize
    }

    /// `k` indices drawn uniformly from 0..n with replacement.
    pub fn indices(&mut self, k: usize, n: usize) -> Vec<usize> {
        (0..k).map(|_| self.below(n)).collect()
    }

    /// A uniformly random permutation of 0..n (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }
}

/// The `rand` ecosystem's view of the same stream (rand_core 0.10, as `rand` 0.10 uses: its
/// `Rng`, formerly `RngCore`, comes from this impl), so any `rand_distr` distribution samples
/// from an `ebm_core::Rng`. Every call takes the next Philox block, like [`Rng::next_f64`] and
/// [`Rng::below`], and keeps no buffer: [`Rng::state`] still resumes the stream exactly, and
/// trait draws interleave with tensor draws on one counter. `next_u64` is the 64 bits `below`
/// uses (words 0 and 1 of the block), `next_u32` word 0, and `fill_bytes` the blocks' words in
/// order, little-endian, 16 bytes per block.
impl rand_core::TryRng for Rng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next_block()[0])
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let b = self.next_block();
        Ok(((b[0] as u64) << 32) | b[1] as u64)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(16) {
            for (bytes, w) in chunk.chunks_mut(4).zip(self.next_block()) {
                bytes.copy_from_slice(&w.to_le_bytes()[..bytes.len()]);
            }
        }
        Ok(())
    }
}

/// Seeding through `rand_core`: 16 bytes are (seed, stream) little-endian, at the start of
/// the sequence; `seed_from_u64(s)` is [`Rng::new`]`(s)`, the same stream ebm seeds everywhere.
impl rand_core::SeedableRng for Rng {
    type Seed = [u8; 16];

    fn from_seed(seed: [u8; 16]) -> Rng {
        let (s, t) = seed.split_at(8);
        Rng {
            seed: u64::from_le_bytes(s.try_into().expect("8 bytes")),
            stream: u64::from_le_bytes(t.try_into().expect("8 bytes")),
            counter: 0,
        }
    }

    fn seed_from_u64(seed: u64) -> Rng {
        Rng::new(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_draws_equal_one_draw() {
        // Drawing 10 then 6 equals drawing 16 when the first count is even: element i only
        // depends on its block, which is what lets threads split work without changing results.
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let whole = a.normal_vec(16);
        let mut parts = b.normal_vec(10);
        parts.extend(b.normal_vec(6));
        assert_eq!(whole, parts);
    }

    #[test]
    fn moments_are_right() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let z = r.normal_vec(n);
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance
        assert!(mean.abs() < 4.0 * 0.0023, "mean {mean}");
        assert!((var - 1.0).abs() < 4.0 * 0.0032, "var {var}");
        let u = r.uniform_vec(n);
        let um = u.iter().sum::<f64>() / n as f64;
        // sd of U(0,1) is 0.2887
        assert!(
            (um - 0.5).abs() < 4.0 * 0.2887 / (n as f64).sqrt(),
            "uniform mean {um}"
        );
        let rad = r.rademacher(&[n], DType::F64).sum_all().item() / n as f64;
        assert!(rad.abs() < 4.0 / (n as f64).sqrt(), "rademacher mean {rad}");
    }

    #[test]
    fn vectorised_draws_match_scalar_definition() {
        // The definition every device shares: block j of Philox, then libm's ln/sin/cos.
        let mut r = Rng::new(0xDEAD).stream(5);
        r.uniform_vec(3);
        let n: usize = 100_003;
        let want_u: Vec<f64> = (0..n.div_ceil(2))
            .flat_map(|j| {
                let b = r.block_at(r.counter + j as u64);
                [open_unit(b[0], b[1]), open_unit(b[2], b[3])]
            })
            .take(n)
            .collect();
        let want_z: Vec<f64> = (0..n.div_ceil(2))
            .flat_map(|j| {
                let b = r.block_at(r.counter + j as u64);
                let (u1, u2) = (open_unit(b[0], b[1]), open_unit(b[2], b[3]));
                let rad = (-2.0 * u1.ln()).sqrt();
                let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
                [rad * c, rad * s]
            })
            .take(n)
            .collect();
        assert_eq!(r.clone().uniform_vec(n), want_u);
        let z = r.clone().normal_vec(n);
        let worst = z
            .iter()
            .zip(&want_z)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0.0, f64::max);
        assert!(
            worst < 4e-16,
            "normal draws differ from libm's Box–Muller by {worst:e}"
        );
        let z64 = r.clone().normal(&[n], DType::F64).to_vec_f64();
        assert_eq!(z64, z);
        let mut adv = r.clone();
        adv.normal_vec(n);
        assert_eq!(adv.state()[2], r.state()[2] + n.div_ceil(2) as u64);
        // f32 normals: four per block, the scalar `box_muller_f32` of each block in order
        let want32: Vec<f32> = (0..n.div_ceil(4))
            .flat_map(|j| box_muller_f32(r.block_at(r.counter + j as u64)))
            .take(n)
            .collect();
        let mut adv = r.clone();
        let z32 = adv.normal(&[n], DType::F32);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&z32.to_vec::<f32>()), bits(&want32));
        assert_eq!(adv.state()[2], r.state()[2] + n.div_ceil(4) as u64);
    }

    #[test]
    fn f32_normals_split_at_multiples_of_four_and_have_the_normal_law() {
        let mut a = Rng::new(9);
        let mut b = Rng::new(9);
        let whole = a.normal(&[20], DType::F32).to_vec::<f32>();
        let mut parts = b.normal(&[12], DType::F32).to_vec::<f32>();
        parts.extend(b.normal(&[8], DType::F32).to_vec::<f32>());
        assert_eq!(whole, parts);
        // moments to the fourth and the two-sided tail beyond 3, each within 4 standard errors
        let n = 400_000;
        let z = Rng::new(2).normal(&[n], DType::F32).to_vec_f64();
        let m = |k: i32| z.iter().map(|x| x.powi(k)).sum::<f64>() / n as f64;
        let se = |var: f64| 4.0 * (var / n as f64).sqrt();
        // Var(z) = 1, Var(z²) = 2, Var(z³) = 15, Var(z⁴) = 96
        assert!(m(1).abs() < se(1.0), "mean {}", m(1));
        assert!((m(2) - 1.0).abs() < se(2.0), "E z² {}", m(2));
        assert!(m(3).abs() < se(15.0), "E z³ {}", m(3));
        assert!((m(4) - 3.0).abs() < se(96.0), "E z⁴ {}", m(4));
        let p3 = 0.002_699_796; // P(|z| > 3)
        let tail = z.iter().filter(|x| x.abs() > 3.0).count() as f64 / n as f64;
        assert!((tail - p3).abs() < se(p3 * (1.0 - p3)), "P(|z| > 3) {tail}");
    }

    #[test]
    fn rand_core_words_are_the_blocks_of_the_one_stream() {
        use rand_core::{Rng as _, SeedableRng};
        let mut r = Rng::seed_from_u64(11);
        assert_eq!(r, Rng::new(11));
        r.normal_vec(3); // a tensor draw first: two blocks
        let mut blocks = r.clone();
        let b0 = blocks.next_block();
        let b1 = blocks.next_block();
        let b2 = blocks.next_block();
        assert_eq!(r.next_u64(), ((b0[0] as u64) << 32) | b0[1] as u64);
        assert_eq!(r.next_u32(), b1[0]);
        let mut bytes = [0u8; 20];
        r.fill_bytes(&mut bytes);
        let want: Vec<u8> = b2
            .iter()
            .chain(&blocks.next_block())
            .flat_map(|w| w.to_le_bytes())
            .take(20)
            .collect();
        assert_eq!(bytes.to_vec(), want);
        // one block per call, no buffer: the state resumes the stream after trait draws too
        assert_eq!(r.state(), blocks.state());
        assert_eq!(
            r.clone().below(1000),
            Rng::from_state(r.state()).below(1000)
        );
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&7u64.to_le_bytes());
        seed[8..].copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(Rng::from_seed(seed).state(), [7, 9, 0]);
    }

    #[test]
    fn state_resumes() {
        let mut r = Rng::new(3);
        r.normal_vec(5);
        let mut s = Rng::from_state(r.state());
        assert_eq!(r.normal_vec(4), s.normal_vec(4));
        assert_ne!(r.stream(1).normal_vec(2), r.stream(2).normal_vec(2));
    }
}
