// Philox4x32-10 (Salmon et al. 2011) and the element → (counter, half) mapping of
// ebm_core::Rng (core/src/rng.rs), so that a draw on the GPU gives the CPU's numbers.
//
// A generator state is (seed, stream, counter). Element i of a draw that starts at `counter`
// uses the 128-bit block Philox(ctr = [lo(counter + i/2), hi(counter + i/2), lo(stream),
// hi(stream)], key = [lo(seed), hi(seed)]) and half i % 2 of it:
//   uniform: 53 bits (b[2h] << 21 | b[2h+1] >> 11) → (bits + 0.5) / 2^53, open interval (0, 1)
//   normal:  Box–Muller on the block's two uniforms u1 = (b0, b1), u2 = (b2, b3):
//            r = sqrt(-2 ln u1), θ = 2π u2; half 0 → r cos θ, half 1 → r sin θ (in f64)
// A draw of n elements advances the counter by ceil(n / 2).
#ifndef EBM_PHILOX_CUH
#define EBM_PHILOX_CUH
#include "common.cuh"

__device__ __forceinline__ void ebm_philox4x32_10(u32 c[4], u32 k0, u32 k1) {
    for (int r = 0; r < 10; ++r) {
        u64 p0 = (u64)0xD2511F53u * (u64)c[0];
        u64 p1 = (u64)0xCD9E8D57u * (u64)c[2];
        u32 hi0 = (u32)(p0 >> 32), lo0 = (u32)p0;
        u32 hi1 = (u32)(p1 >> 32), lo1 = (u32)p1;
        u32 n0 = hi1 ^ c[1] ^ k0;
        u32 n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

// The 128 random bits of block `ctr` of (seed, stream).
__device__ __forceinline__ void ebm_block(u64 seed, u64 stream, u64 ctr, u32 b[4]) {
    b[0] = (u32)ctr;
    b[1] = (u32)(ctr >> 32);
    b[2] = (u32)stream;
    b[3] = (u32)(stream >> 32);
    ebm_philox4x32_10(b, (u32)seed, (u32)(seed >> 32));
}

// 53 random bits as a uniform in the open interval (0, 1): exact in f64 on any device.
__device__ __forceinline__ double ebm_open_unit(u32 hi, u32 lo) {
    u64 bits = ((u64)hi << 21) | ((u64)lo >> 11);
    return __dmul_rn(__dadd_rn((double)bits, 0.5), 1.0 / 9007199254740992.0);
}

// Element i of a uniform draw starting at `counter`.
__device__ __forceinline__ double ebm_uniform_at(u64 seed, u64 stream, u64 counter, u64 i) {
    u32 b[4];
    ebm_block(seed, stream, counter + (i >> 1), b);
    u32 h = (u32)(i & 1);
    return ebm_open_unit(b[2 * h], b[2 * h + 1]);
}

// Element i of a standard normal draw starting at `counter` (f64, as the CPU computes it).
__device__ __forceinline__ double ebm_normal_at(u64 seed, u64 stream, u64 counter, u64 i) {
    u32 b[4];
    ebm_block(seed, stream, counter + (i >> 1), b);
    double u1 = ebm_open_unit(b[0], b[1]);
    double u2 = ebm_open_unit(b[2], b[3]);
    double r = sqrt(__dmul_rn(-2.0, log(u1)));
    double th = __dmul_rn(6.283185307179586, u2);
    return (i & 1) ? __dmul_rn(r, sin(th)) : __dmul_rn(r, cos(th));
}

#endif // EBM_PHILOX_CUH
