// Element-wise maps, broadcasting binary ops, `where`, casts and fills.
//
// Op codes mirror `Unary` / `Binary` in src/ops.rs (and through them ebm_core's UnaryOp /
// BinaryOp); a test there checks the two tables agree.
#include "common.cuh"

enum UnaryCode {
    U_NEG = 0, U_EXP = 1, U_LOG = 2, U_SQRT = 3, U_TANH = 4, U_SIGMOID = 5, U_SOFTPLUS = 6,
    U_SILU = 7, U_SILU_D1 = 8, U_SILU_D2 = 9, U_RELU = 10, U_ABS = 11, U_SIGN = 12, U_STEP = 13,
    U_SIN = 14, U_COS = 15, U_RECIP = 16, U_SQUARE = 17, U_POWF = 18, U_POWI = 19,
    U_ADD_SCALAR = 20, U_MUL_SCALAR = 21, U_AFFINE = 22, U_COPY = 23
};

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

template <typename T> __device__ __forceinline__ T unary_apply(int op, T x, T p, T q, int n) {
    switch (op) {
    case U_NEG: return -x;
    case U_EXP: return ebm_exp(x);
    case U_LOG: return ebm_log(x);
    case U_SQRT: return ebm_sqrt(x);
    case U_TANH: return ebm_tanh(x);
    case U_SIGMOID: return ebm_sigmoid(x);
    case U_SOFTPLUS: return ebm_max(x, T(0)) + ebm_log1p(ebm_exp(-ebm_abs(x)));
    case U_SILU: return x * ebm_sigmoid(x);
    case U_SILU_D1: return ebm_silu_d1(x);
    case U_SILU_D2: return ebm_silu_d2(x);
    case U_RELU: return ebm_max(x, T(0));
    case U_ABS: return ebm_abs(x);
    case U_SIGN: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case U_STEP: return x > T(0) ? T(1) : T(0);
    case U_SIN: return ebm_sin(x);
    case U_COS: return ebm_cos(x);
    case U_RECIP: return T(1) / x;
    case U_SQUARE: return x * x;
    case U_POWF: return ebm_pow(x, p);
    case U_POWI: return ebm_powi(x, n);
    case U_ADD_SCALAR: return ebm_add_rn(x, p);
    case U_MUL_SCALAR: return ebm_mul_rn(x, p);
    case U_AFFINE: return ebm_add_rn(ebm_mul_rn(p, x), q);
    default: return x; // U_COPY
    }
}

template <typename T>
__device__ __forceinline__ void unary_kernel(const T* x, T* y, u32 n, int op, double p, double q) {
    const T pt = (T)p, qt = (T)q;
    const int pi = (int)p;
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) y[i] = unary_apply(op, x[i], pt, qt, pi);
}

enum BinaryCode {
    B_ADD = 0, B_SUB = 1, B_MUL = 2, B_DIV = 3, B_MAXIMUM = 4, B_MINIMUM = 5, B_GT = 6, B_GE = 7,
    B_LT = 8, B_LE = 9, B_EQ = 10, B_MUL_SILU_D1 = 11, B_MUL_SILU_D2 = 12, B_MUL_SILU_D3 = 13
};

template <typename T> __device__ __forceinline__ T binary_apply(int op, T a, T b) {
    switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_MAXIMUM: return ebm_max(a, b);
    case B_MINIMUM: return ebm_min(a, b);
    case B_GT: return a > b ? T(1) : T(0);
    case B_GE: return a >= b ? T(1) : T(0);
    case B_LT: return a < b ? T(1) : T(0);
    case B_LE: return a <= b ? T(1) : T(0);
    case B_EQ: return a == b ? T(1) : T(0);
    case B_MUL_SILU_D1: return a * ebm_silu_d1(b);
    case B_MUL_SILU_D2: return a * ebm_silu_d2(b);
    default: return a * ebm_silu_d3(b); // B_MUL_SILU_D3
    }
}

// Same shapes: y[i] = a[i] op b[i].
template <typename T> __device__ __forceinline__ void binary_kernel(const T* a, const T* b, T* y, u32 n, int op) {
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) y[i] = binary_apply(op, a[i], b[i]);
}

// Broadcasting: a read with strides s0, b with s1.
template <typename T>
__device__ __forceinline__ void binary_strided_kernel(const T* a, const T* b, T* y, u32 n, int op, Strided3 L) {
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) {
        u32 oa, ob, unused;
        ebm_offsets(L, i, oa, ob, unused);
        y[i] = binary_apply(op, a[oa], b[ob]);
    }
}

// y = c != 0 ? a : b, all three broadcast (strides s0, s1, s2).
template <typename T>
__device__ __forceinline__ void where_kernel(const T* c, const T* a, const T* b, T* y, u32 n, Strided3 L) {
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) {
        u32 oc, oa, ob;
        ebm_offsets(L, i, oc, oa, ob);
        y[i] = c[oc] != T(0) ? a[oa] : b[ob];
    }
}

extern "C" __global__ void unary_f32(const float* x, float* y, u32 n, int op, double p, double q) {
    unary_kernel(x, y, n, op, p, q);
}
extern "C" __global__ void unary_f64(const double* x, double* y, u32 n, int op, double p, double q) {
    unary_kernel(x, y, n, op, p, q);
}
extern "C" __global__ void binary_f32(const float* a, const float* b, float* y, u32 n, int op) {
    binary_kernel(a, b, y, n, op);
}
extern "C" __global__ void binary_f64(const double* a, const double* b, double* y, u32 n, int op) {
    binary_kernel(a, b, y, n, op);
}
extern "C" __global__ void binary_strided_f32(const float* a, const float* b, float* y, u32 n, int op, Strided3 L) {
    binary_strided_kernel(a, b, y, n, op, L);
}
extern "C" __global__ void binary_strided_f64(const double* a, const double* b, double* y, u32 n, int op,
                                              Strided3 L) {
    binary_strided_kernel(a, b, y, n, op, L);
}
extern "C" __global__ void where_f32(const float* c, const float* a, const float* b, float* y, u32 n, Strided3 L) {
    where_kernel(c, a, b, y, n, L);
}
extern "C" __global__ void where_f64(const double* c, const double* a, const double* b, double* y, u32 n,
                                     Strided3 L) {
    where_kernel(c, a, b, y, n, L);
}
extern "C" __global__ void cast_f32_f64(const float* x, double* y, u32 n) {
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) y[i] = (double)x[i];
}
extern "C" __global__ void cast_f64_f32(const double* x, float* y, u32 n) {
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) y[i] = (float)x[i];
}
extern "C" __global__ void fill_f32(float* y, u32 n, double v) {
    const float vt = (float)v;
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) y[i] = vt;
}
extern "C" __global__ void fill_f64(double* y, u32 n, double v) {
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) y[i] = v;
}
