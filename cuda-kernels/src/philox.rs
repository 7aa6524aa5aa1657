//! The host side of the in-kernel generator: the state a draw starts from, and a Rust copy of
//! kernels/philox.cuh (the CPU reference for tests), built from `ebm_philox`, the definitions
//! `ebm_core::Rng` uses too.

pub use ebm_philox::philox4x32_10;
use ebm_philox::{box_muller, box_muller_f32, open_unit};

/// (seed, stream, counter) of a Philox4x32-10 generator, as `ebm_core::Rng::state()` gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PhiloxState {
    /// The key.
    pub seed: u64,
    /// The high half of the counter: the sub-stream.
    pub stream: u64,
    /// The low half of the counter: blocks drawn so far.
    pub counter: u64,
}

impl PhiloxState {
    /// The state (seed, stream, counter).
    pub fn new(seed: u64, stream: u64, counter: u64) -> PhiloxState {
        PhiloxState {
            seed,
            stream,
            counter,
        }
    }

    /// The state after a draw of `n` elements two to a block (uniforms, signs, f64 normals):
    /// ⌈n/2⌉ blocks.
    pub fn advanced(self, n: usize) -> PhiloxState {
        PhiloxState {
            counter: self.counter.wrapping_add(n.div_ceil(2) as u64),
            ..self
        }
    }

    /// The state after an f32 normal draw of `n` elements, four to a block: ⌈n/4⌉ blocks.
    pub fn advanced_f32_normal(self, n: usize) -> PhiloxState {
        PhiloxState {
            counter: self.counter.wrapping_add(n.div_ceil(4) as u64),
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

    /// Element `i` of an f32 standard normal draw starting at this state (four to a block).
    pub fn normal_f32_at(&self, i: u64) -> f32 {
        box_muller_f32(self.block(self.counter.wrapping_add(i / 4)))[(i % 4) as usize]
    }

    /// Element `i` of an f64 standard normal draw starting at this state.
    pub fn normal_at(&self, i: u64) -> f64 {
        let b = self.block(self.counter.wrapping_add(i / 2));
        let (z0, z1) = box_muller(b);
        if i.is_multiple_of(2) {
            z0
        } else {
            z1
        }
    }
}
