// 2-d convolutions on NCHW buffers, as direct gathers (one thread per output element, no
// atomics): the forward conv, its input gradient (= conv_transpose2d) and its weight gradient.
// x [n, c, h, w], weight [o, c/g, kh, kw], y [n, o, ho, wo]; see src/ops/conv.rs.
#include "common.cuh"

// Every size of one forward convolution. Mirrors `ConvGeom` in src/ops/conv.rs.
struct ConvGeom {
    u32 n, c, h, w, o, kh, kw, ho, wo;
    u32 sh, sw, ph, pw, dh, dw, groups;
};

// y[n, o, i, j] = Σ_{c', p, q} wt[o, c', p, q] · x[n, g·cg + c', i·sh − ph + p·dh, j·sw − pw + q·dw].
template <typename T> __device__ __forceinline__ void conv_fwd_kernel(const T* x, const T* wt, T* y, ConvGeom G) {
    const u32 cg = G.c / G.groups, og = G.o / G.groups;
    const u32 total = G.n * G.o * G.ho * G.wo;
    for (u32 e = ebm_global_id(); e < total; e += ebm_grid_stride()) {
        const u32 j = e % G.wo, i = (e / G.wo) % G.ho, o = (e / (G.wo * G.ho)) % G.o, n = e / (G.wo * G.ho * G.o);
        const u32 c0 = (o / og) * cg;
        T acc = 0;
        for (u32 cc = 0; cc < cg; ++cc) {
            for (u32 p = 0; p < G.kh; ++p) {
                const int hi = (int)(i * G.sh + p * G.dh) - (int)G.ph;
                if (hi < 0 || hi >= (int)G.h) continue;
                for (u32 q = 0; q < G.kw; ++q) {
                    const int wi = (int)(j * G.sw + q * G.dw) - (int)G.pw;
                    if (wi < 0 || wi >= (int)G.w) continue;
                    acc += wt[((o * cg + cc) * G.kh + p) * G.kw + q] *
                           x[(((u64)n * G.c + c0 + cc) * G.h + hi) * G.w + wi];
                }
            }
        }
        y[e] = acc;
    }
}

// gx[n, c, h, w] = Σ_{o ∈ group(c), p, q : h = i·sh − ph + p·dh, w = j·sw − pw + q·dw} wt[o, c', p, q] · gy[n, o, i, j]
template <typename T> __device__ __forceinline__ void conv_dx_kernel(const T* gy, const T* wt, T* gx, ConvGeom G) {
    const u32 cg = G.c / G.groups, og = G.o / G.groups;
    const u32 total = G.n * G.c * G.h * G.w;
    for (u32 e = ebm_global_id(); e < total; e += ebm_grid_stride()) {
        const u32 wi = e % G.w, hi = (e / G.w) % G.h, c = (e / (G.w * G.h)) % G.c, n = e / (G.w * G.h * G.c);
        const u32 gi = c / cg, cc = c % cg;
        T acc = 0;
        for (u32 p = 0; p < G.kh; ++p) {
            const int ti = (int)(hi + G.ph) - (int)(p * G.dh);
            if (ti < 0 || ti % (int)G.sh != 0 || ti / (int)G.sh >= (int)G.ho) continue;
            const u32 i = (u32)ti / G.sh;
            for (u32 q = 0; q < G.kw; ++q) {
                const int tj = (int)(wi + G.pw) - (int)(q * G.dw);
                if (tj < 0 || tj % (int)G.sw != 0 || tj / (int)G.sw >= (int)G.wo) continue;
                const u32 j = (u32)tj / G.sw;
                for (u32 oo = 0; oo < og; ++oo) {
                    const u32 o = gi * og + oo;
                    acc += wt[((o * cg + cc) * G.kh + p) * G.kw + q] *
                           gy[(((u64)n * G.o + o) * G.ho + i) * G.wo + j];
                }
            }
        }
        gx[e] = acc;
    }
}

// gw[o, c', p, q] = Σ_{n, i, j} gy[n, o, i, j] · x[n, g·cg + c', i·sh − ph + p·dh, j·sw − pw + q·dw]
template <typename T> __device__ __forceinline__ void conv_dw_kernel(const T* x, const T* gy, T* gw, ConvGeom G) {
    const u32 cg = G.c / G.groups, og = G.o / G.groups;
    const u32 total = G.o * cg * G.kh * G.kw;
    for (u32 e = ebm_global_id(); e < total; e += ebm_grid_stride()) {
        const u32 q = e % G.kw, p = (e / G.kw) % G.kh, cc = (e / (G.kw * G.kh)) % cg, o = e / (G.kw * G.kh * cg);
        const u32 c = (o / og) * cg + cc;
        T acc = 0;
        for (u32 n = 0; n < G.n; ++n) {
            for (u32 i = 0; i < G.ho; ++i) {
                const int hi = (int)(i * G.sh + p * G.dh) - (int)G.ph;
                if (hi < 0 || hi >= (int)G.h) continue;
                for (u32 j = 0; j < G.wo; ++j) {
                    const int wi = (int)(j * G.sw + q * G.dw) - (int)G.pw;
                    if (wi < 0 || wi >= (int)G.w) continue;
                    acc += gy[(((u64)n * G.o + o) * G.ho + i) * G.wo + j] *
                           x[(((u64)n * G.c + c) * G.h + hi) * G.w + wi];
                }
            }
        }
        gw[e] = acc;
    }
}

extern "C" __global__ void conv_fwd_f32(const float* x, const float* wt, float* y, ConvGeom G) {
    conv_fwd_kernel(x, wt, y, G);
}
extern "C" __global__ void conv_fwd_f64(const double* x, const double* wt, double* y, ConvGeom G) {
    conv_fwd_kernel(x, wt, y, G);
}
extern "C" __global__ void conv_dx_f32(const float* gy, const float* wt, float* gx, ConvGeom G) {
    conv_dx_kernel(gy, wt, gx, G);
}
extern "C" __global__ void conv_dx_f64(const double* gy, const double* wt, double* gx, ConvGeom G) {
    conv_dx_kernel(gy, wt, gx, G);
}
extern "C" __global__ void conv_dw_f32(const float* x, const float* gy, float* gw, ConvGeom G) {
    conv_dw_kernel(x, gy, gw, G);
}
extern "C" __global__ void conv_dw_f64(const double* x, const double* gy, double* gw, ConvGeom G) {
    conv_dw_kernel(x, gy, gw, G);
}
