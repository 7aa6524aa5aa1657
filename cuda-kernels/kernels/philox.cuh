// Philox4x32-10 (Salmon et al. 2011) and the element → (counter, half) mapping of
// ebm_core::Rng (core/src/rng.rs), so that a draw on the GPU gives the CPU's numbers.
//
// A generator state is (seed, stream, counter). Element i of a draw that starts at `counter`
// uses the 128-bit block Philox(ctr = [lo(counter + i/2), hi(counter + i/2), lo(stream),
// hi(stream)], key = [lo(seed), hi(seed)]) and half i % 2 of it:
//   uniform: 53 bits (b[2h] << 21 | b[2h+1] >> 11) → (bits + 0.5) / 2^53, open interval (0, 1)
//   normal:  Box–Muller on the block's two uniforms u1 = (b0, b1), u2 = (b2, b3):
//            r = sqrt(-2 ln u1), θ = 2π u2; half 0 → r cos θ, half 1 → r sin θ (in f64),
//            with ln, sin and cos computed by the very operations of ebm-philox's
//            `ln_unit` and `sin_cos_0_tau` (every step rounded on its own: the _rn intrinsics
//            keep the compiler from contracting a·b + c into an FMA), so normals are
//            bit-identical to the CPU's f64 draw.
//   f32 normal: four per block, element i from block counter + i/4: ebm-philox's
//            `box_muller_f32`, two Box–Muller pairs computed in f32, (b0, b1) → elements 0, 1
//            and (b2, b3) → 2, 3: u = ((float)radius + 1)·2^-32, r = sqrtf(-2 ln u),
//            θ = 2π(angle + ½)/2^32 reduced exactly in integers; every f32 operation rounded
//            on its own (_rn intrinsics), so f32 normals are bit-identical to the CPU's.
// A draw of n elements advances the counter by ceil(n / 2), an f32 normal draw by ceil(n / 4).
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

__device__ __forceinline__ double ebm_sub_rn(double a, double b) { return __dadd_rn(a, -b); }

// ln x for the uniforms of ebm_open_unit: ebm-philox's `ln_unit` (the fdlibm e_log.c scheme).
__device__ __forceinline__ double ebm_ln_unit(double x) {
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const u64 bits = (u64)__double_as_longlong(x);
    const long long e0 = (long long)((bits >> 52) & 0x7ff) - 1023;
    const double m0 = __longlong_as_double((long long)((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull));
    const bool big = m0 > 1.4142135623730951;
    const double m = big ? __dmul_rn(0.5, m0) : m0;
    const double e = (double)(big ? e0 + 1 : e0);
    const double f = ebm_sub_rn(m, 1.0);
    const double s = f / __dadd_rn(2.0, f);
    const double z = __dmul_rn(s, s);
    const double w = __dmul_rn(z, z);
    const double t1 = __dmul_rn(w, __dadd_rn(Lg2, __dmul_rn(w, __dadd_rn(Lg4, __dmul_rn(w, Lg6)))));
    const double t2 = __dmul_rn(z, __dadd_rn(Lg1, __dmul_rn(w, __dadd_rn(Lg3, __dmul_rn(w, __dadd_rn(Lg5, __dmul_rn(w, Lg7)))))));
    const double r = __dadd_rn(t2, t1);
    const double hfsq = __dmul_rn(__dmul_rn(0.5, f), f);
    const double inner = __dadd_rn(__dmul_rn(s, __dadd_rn(hfsq, r)), __dmul_rn(e, ln2_lo));
    return ebm_sub_rn(__dmul_rn(e, ln2_hi), ebm_sub_rn(ebm_sub_rn(hfsq, inner), f));
}

// (sin θ, cos θ) for θ in [0, 2π]: ebm-philox's `sin_cos_0_tau` (Cody–Waite by π/2, fdlibm's
// kernel polynomials, quadrant by selects).
__device__ __forceinline__ void ebm_sin_cos_0_tau(double th, double* sin_out, double* cos_out) {
    const double pio2_1 = 1.57079632673412561417e+00, pio2_1t = 6.07710050650619224932e-11;
    const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
                 S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
                 S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
    const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
                 C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
                 C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
    const double q = round(__dmul_rn(th, 0.63661977236758134308));
    const double x = ebm_sub_rn(ebm_sub_rn(th, __dmul_rn(q, pio2_1)), __dmul_rn(q, pio2_1t));
    const double z = __dmul_rn(x, x);
    const double sr = __dadd_rn(S2, __dmul_rn(z, __dadd_rn(S3, __dmul_rn(z, __dadd_rn(S4, __dmul_rn(z, __dadd_rn(S5, __dmul_rn(z, S6))))))));
    const double sin_x = __dadd_rn(x, __dmul_rn(__dmul_rn(z, x), __dadd_rn(S1, __dmul_rn(z, sr))));
    const double cr = __dmul_rn(z, __dadd_rn(C1, __dmul_rn(z, __dadd_rn(C2, __dmul_rn(z, __dadd_rn(C3, __dmul_rn(z, __dadd_rn(C4, __dmul_rn(z, __dadd_rn(C5, __dmul_rn(z, C6)))))))))));
    const double hz = __dmul_rn(0.5, z);
    const double w = ebm_sub_rn(1.0, hz);
    const double cos_x = __dadd_rn(w, __dadd_rn(ebm_sub_rn(ebm_sub_rn(1.0, w), hz), __dmul_rn(z, cr)));
    const long long quadrant = ((long long)q) & 3;
    double s = sin_x, c = cos_x;
    if (quadrant & 1) {
        s = cos_x;
        c = -sin_x;
    }
    if (quadrant & 2) {
        s = -s;
        c = -c;
    }
    *sin_out = s;
    *cos_out = c;
}

// Element i of a standard normal draw starting at `counter` (f64, bit-identical to the CPU's).
__device__ __forceinline__ double ebm_normal_at(u64 seed, u64 stream, u64 counter, u64 i) {
    u32 b[4];
    ebm_block(seed, stream, counter + (i >> 1), b);
    double u1 = ebm_open_unit(b[0], b[1]);
    double u2 = ebm_open_unit(b[2], b[3]);
    double r = sqrt(__dmul_rn(-2.0, ebm_ln_unit(u1)));
    double s, c;
    ebm_sin_cos_0_tau(__dmul_rn(6.283185307179586, u2), &s, &c);
    return (i & 1) ? __dmul_rn(r, s) : __dmul_rn(r, c);
}

__device__ __forceinline__ float ebm_sub_rn(float a, float b) { return __fadd_rn(a, -b); }

// 2^-32 in f32.
#define EBM_TWO_M32_F32 2.3283064365386963e-10f

// ebm-philox's `radius_unit_f32`: (b + 1)·2^-32 with b rounded to f32 first, in (0, 1].
__device__ __forceinline__ float ebm_radius_unit_f32(u32 b) {
    return __fmul_rn(__fadd_rn((float)b, 1.0f), EBM_TWO_M32_F32);
}

// ebm-philox's `ln_unit_f32`: `ebm_ln_unit`'s scheme with FreeBSD e_logf.c's Lg1..Lg4.
__device__ __forceinline__ float ebm_ln_unit_f32(float x) {
    const float Lg1 = 6.66666627e-01f, Lg2 = 4.00009722e-01f, Lg3 = 2.84987867e-01f, Lg4 = 2.42790788e-01f;
    const float ln2_hi = 6.93138123e-01f, ln2_lo = 9.05800061e-06f;
    const u32 bits = __float_as_uint(x);
    const int e0 = (int)((bits >> 23) & 0xffu) - 127;
    const float m0 = __uint_as_float((bits & 0x007fffffu) | 0x3f800000u);
    const bool big = m0 > 1.41421356f;
    const float m = big ? __fmul_rn(0.5f, m0) : m0;
    const float e = (float)(big ? e0 + 1 : e0);
    const float f = ebm_sub_rn(m, 1.0f);
    const float s = __fdiv_rn(f, __fadd_rn(2.0f, f));
    const float z = __fmul_rn(s, s);
    const float w = __fmul_rn(z, z);
    const float t1 = __fmul_rn(w, __fadd_rn(Lg2, __fmul_rn(w, Lg4)));
    const float t2 = __fmul_rn(z, __fadd_rn(Lg1, __fmul_rn(w, Lg3)));
    const float r = __fadd_rn(t2, t1);
    const float hfsq = __fmul_rn(__fmul_rn(0.5f, f), f);
    const float inner = __fadd_rn(__fmul_rn(s, __fadd_rn(hfsq, r)), __fmul_rn(e, ln2_lo));
    return ebm_sub_rn(__fmul_rn(e, ln2_hi), ebm_sub_rn(ebm_sub_rn(hfsq, inner), f));
}

// ebm-philox's `sin_cos_turn_f32`: θ = 2π(b + ½)/2^32, quadrant and rest from integers, Cephes'
// sinf/cosf polynomials on |x| < π/4.
__device__ __forceinline__ void ebm_sin_cos_turn_f32(u32 b, float* sin_out, float* cos_out) {
    const float S1 = -1.66666546e-01f, S2 = 8.33216087e-03f, S3 = -1.95152959e-04f;
    const float C1 = 4.16666457e-02f, C2 = -1.38873163e-03f, C3 = 2.44331571e-05f;
    const u32 w = b + (1u << 29);
    const u32 quadrant = w >> 30;
    const int t2 = (((int)(w & 0x3fffffffu) - (1 << 29)) * 2) | 1;
    const float x = __fmul_rn(__fmul_rn((float)t2, 3.14159265f), EBM_TWO_M32_F32);
    const float z = __fmul_rn(x, x);
    const float sin_x = __fadd_rn(x, __fmul_rn(__fmul_rn(z, x), __fadd_rn(S1, __fmul_rn(z, __fadd_rn(S2, __fmul_rn(z, S3))))));
    const float pc = __fadd_rn(C1, __fmul_rn(z, __fadd_rn(C2, __fmul_rn(z, C3))));
    const float cos_x = __fadd_rn(ebm_sub_rn(__fmul_rn(__fmul_rn(z, z), pc), __fmul_rn(0.5f, z)), 1.0f);
    float s = sin_x, c = cos_x;
    if (quadrant & 1u) {
        s = cos_x;
        c = -sin_x;
    }
    if (quadrant & 2u) {
        s = -s;
        c = -c;
    }
    *sin_out = s;
    *cos_out = c;
}

// Element i of an f32 standard normal draw starting at `counter` (bit-identical to the CPU's).
__device__ __forceinline__ float ebm_normal_f32_at(u64 seed, u64 stream, u64 counter, u64 i) {
    u32 b[4];
    ebm_block(seed, stream, counter + (i >> 2), b);
    const u32 h = (u32)(i >> 1) & 1u;
    const float r = __fsqrt_rn(__fmul_rn(-2.0f, ebm_ln_unit_f32(ebm_radius_unit_f32(b[2 * h]))));
    float s, c;
    ebm_sin_cos_turn_f32(b[2 * h + 1], &s, &c);
    return (i & 1) ? __fmul_rn(r, s) : __fmul_rn(r, c);
}

// Element i of a standard normal draw in T (f32: four per block; f64: two).
template <typename T> __device__ __forceinline__ T ebm_normal_as(u64 seed, u64 stream, u64 counter, u64 i);
template <> __device__ __forceinline__ float ebm_normal_as<float>(u64 seed, u64 stream, u64 counter, u64 i) {
    return ebm_normal_f32_at(seed, stream, counter, i);
}
template <> __device__ __forceinline__ double ebm_normal_as<double>(u64 seed, u64 stream, u64 counter, u64 i) {
    return ebm_normal_at(seed, stream, counter, i);
}

#endif // EBM_PHILOX_CUH
