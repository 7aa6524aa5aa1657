//! The host side of the in-kernel generator: the state a draw starts from, and a Rust copy of
//! kernels/philox.cuh (the CPU reference for tests, identical to `ebm_core::Rng`'s mapping).

/// (seed, stream, counter) of a Philox4x32-10 generator, as `ebm_core::Rng::state()` gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PhiloxState {
    pub seed: u64,
    pub stream: u64,
    pub counter: u64,
}

impl PhiloxState {
    pub fn new(seed: u64, stream: u64, counter: u64) -> PhiloxState {
        PhiloxState {
            seed,
            stream,
            counter,
        }
    }

    /// The state after a draw of `n` elements (⌈n/2⌉ blocks).
    pub fn advanced(self, n: usize) -> PhiloxState {
        PhiloxState {
            counter: self.counter.wrapping_add(n.div_ceil(2) as u64),
            ..self
        }
    }

    /// The 128 bits of block `ctr`.
    pub fn block(&self, ctr: u64) -> [u32; 4] {
        philox4x32_10(
            [
                ctr as u32,
                (ctr >> 32) as u32,
                self.stream as u32,
                (self.stream >> 32) as u32,
            ],
            [self.seed as u32, (self.seed >> 32) as u32],
        )
    }

    /// Element `i` of a uniform draw in (0, 1) starting at this state.
    pub fn uniform_at(&self, i: u64) -> f64 {
        let b = self.block(self.counter.wrapping_add(i / 2));
        let h = (i % 2) as usize;
        open_unit(b[2 * h], b[2 * h + 1])
    }

    /// Element `i` of a standard normal draw starting at this state.
    pub fn normal_at(&self, i: u64) -> f64 {
        let b = self.block(self.counter.wrapping_add(i / 2));
        let u1 = open_unit(b[0], b[1]);
        let u2 = open_unit(b[2], b[3]);
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        if i.is_multiple_of(2) {
            r * th.cos()
        } else {
            r * th.sin()
        }
    }
}

/// The Philox4x32 bijection with 10 rounds.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = M0 * c[0] as u64;
        let p1 = M1 * c[2] as u64;
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [
            k[0].wrapping_add(0x9E37_79B9),
            k[1].wrapping_add(0xBB67_AE85),
        ];
    }
    c
}

fn open_unit(hi: u32, lo: u32) -> f64 {
    let bits = ((hi as u64) << 21) | ((lo as u64) >> 11);
    (bits as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
    }
}
