// Shared by every kernel module. NVRTC sees it through the crate's textual include expansion
// (no include paths at run time); g++ sees it through shim/cuda_shim.h and `-I kernels`.
//
// Kernels use only what both compilers understand: no warp shuffles, no atomics, no standard
// headers. Everything numerically delicate goes through the ebm_* helpers below so that the
// f32/f64 overloads are picked by type.
#ifndef EBM_COMMON_CUH
#define EBM_COMMON_CUH

typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef EBM_SHIM
// Dynamic shared memory of type T (the launch passes its size).
#define EBM_DYN_SMEM(T, name)                                                                  \
    extern __shared__ __align__(16) unsigned char ebm_dyn_smem_raw[];                          \
    T* name = reinterpret_cast<T*>(ebm_dyn_smem_raw)
#endif

#define EBM_MAX_RANK 8

// Shape of an output and the element strides of up to three operands read as broadcast to it
// (stride 0 along broadcast axes). Mirrors `Strided3` in src/layout.rs.
struct Strided3 {
    u32 rank;
    u32 shape[EBM_MAX_RANK];
    u32 s0[EBM_MAX_RANK];
    u32 s1[EBM_MAX_RANK];
    u32 s2[EBM_MAX_RANK];
};

// Operand offsets of output element i.
__device__ __forceinline__ void ebm_offsets(const Strided3& L, u32 i, u32& o0, u32& o1, u32& o2) {
    o0 = 0;
    o1 = 0;
    o2 = 0;
    for (int d = (int)L.rank - 1; d >= 0; --d) {
        u32 n = L.shape[d];
        u32 c = i % n;
        i /= n;
        o0 += c * L.s0[d];
        o1 += c * L.s1[d];
        o2 += c * L.s2[d];
    }
}

__device__ __forceinline__ u32 ebm_minu(u32 a, u32 b) { return a < b ? a : b; }
__device__ __forceinline__ u32 ebm_global_id() { return blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ u32 ebm_grid_stride() { return blockDim.x * gridDim.x; }

// Type-generic math: one overload per element type.
__device__ __forceinline__ float ebm_exp(float x) { return expf(x); }
__device__ __forceinline__ double ebm_exp(double x) { return exp(x); }
__device__ __forceinline__ float ebm_log(float x) { return logf(x); }
__device__ __forceinline__ double ebm_log(double x) { return log(x); }
__device__ __forceinline__ float ebm_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double ebm_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float ebm_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double ebm_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float ebm_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double ebm_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float ebm_sin(float x) { return sinf(x); }
__device__ __forceinline__ double ebm_sin(double x) { return sin(x); }
__device__ __forceinline__ float ebm_cos(float x) { return cosf(x); }
__device__ __forceinline__ double ebm_cos(double x) { return cos(x); }
__device__ __forceinline__ float ebm_pow(float x, float p) { return powf(x, p); }
__device__ __forceinline__ double ebm_pow(double x, double p) { return pow(x, p); }
__device__ __forceinline__ float ebm_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double ebm_abs(double x) { return fabs(x); }
// max/min ignore a NaN operand, like Rust's f32::max / f32::min.
__device__ __forceinline__ float ebm_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double ebm_max(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float ebm_min(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ double ebm_min(double a, double b) { return fmin(a, b); }
// Products and sums that the compiler may not fuse into an FMA: where the CPU code rounds
// after every operation and the result must match it bit for bit.
__device__ __forceinline__ float ebm_mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double ebm_mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float ebm_add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double ebm_add_rn(double a, double b) { return __dadd_rn(a, b); }

template <typename T> __device__ __forceinline__ T ebm_neg_inf();
template <> __device__ __forceinline__ float ebm_neg_inf<float>() { return __int_as_float(0xff800000u); }
template <> __device__ __forceinline__ double ebm_neg_inf<double>() {
    return __longlong_as_double((long long)0xfff0000000000000ull);
}

// x^n by repeated squaring, the same sequence of roundings as Rust's powi (compiler-rt's
// __powisf2 / __powidf2).
template <typename T> __device__ __forceinline__ T ebm_powi(T a, int b) {
    const bool recip = b < 0;
    T r = T(1);
    while (true) {
        if (b & 1) r *= a;
        b /= 2;
        if (b == 0) break;
        a *= a;
    }
    return recip ? T(1) / r : r;
}

// σ(x) = 1/(1 + e^{-x}); for x ≪ 0, e^{-x} = inf gives exactly 0.
template <typename T> __device__ __forceinline__ T ebm_sigmoid(T x) { return T(1) / (T(1) + ebm_exp(-x)); }
// silu′(x) = σ(x)(1 + x(1 − σ(x)))
template <typename T> __device__ __forceinline__ T ebm_silu_d1(T x) {
    T s = ebm_sigmoid(x);
    return s * (T(1) + x * (T(1) - s));
}
// silu″(x) = σ(1 − σ)(2 + x(1 − 2σ))
template <typename T> __device__ __forceinline__ T ebm_silu_d2(T x) {
    T s = ebm_sigmoid(x);
    return s * (T(1) - s) * (T(2) + x * (T(1) - T(2) * s));
}
// silu‴(x) = p(q(3 + xq) − 2xp) with p = σ(1 − σ), q = 1 − 2σ
template <typename T> __device__ __forceinline__ T ebm_silu_d3(T x) {
    T s = ebm_sigmoid(x);
    T p = s * (T(1) - s);
    T q = T(1) - T(2) * s;
    return p * (q * (T(3) + x * q) - T(2) * x * p);
}

#endif // EBM_COMMON_CUH
