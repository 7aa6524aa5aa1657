// Element-wise maps, broadcasting binary ops, `where`, casts and fills.
//
// The ops themselves (`unary_apply`, `binary_apply` and their code enums) are generated from
// ebm-optable's tables, the same rows that define ebm_core's UnaryOp / BinaryOp and their CPU
// loops; the two headers exist only in memory (NVRTC gets them by textual expansion, the shim
// tests write them out for g++).
#include "common.cuh"
#include "unary_ops.cuh"
#include "binary_ops.cuh"

template <typename T>
__device__ __forceinline__ void unary_kernel(const T* x, T* y, u32 n, int op, double p, double q) {
    const T pt = (T)p, qt = (T)q;
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) y[i] = unary_apply(op, x[i], pt, qt);
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
