// Layout ops: strided gather (permute, broadcast_to, narrow), block copies (narrow_assign,
// concat), row gather (index_select) and row scatter (index_add / index_put).
#include "common.cuh"

// y[i] = x[offset + Σ_d coord_d(i) · s0[d]] over the output shape of L.
template <typename T> __device__ __forceinline__ void gather_kernel(const T* x, T* y, u32 n, u32 offset, Strided3 L) {
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) {
        u32 o, u0, u1;
        ebm_offsets(L, i, o, u0, u1);
        y[i] = x[offset + o];
    }
}

// Writes src, viewed as [outer, len, inner], into dst viewed as [outer, n_dst, inner] at
// position `start` of the middle axis.
template <typename T>
__device__ __forceinline__ void copy_block_kernel(const T* src, T* dst, u32 outer, u32 n_dst, u32 len, u32 inner,
                                                  u32 start) {
    const u32 block = len * inner;
    const u32 n = outer * block;
    for (u32 e = ebm_global_id(); e < n; e += ebm_grid_stride()) {
        const u32 o = e / block, r = e % block;
        dst[((u64)o * n_dst + start) * inner + r] = src[e];
    }
}

// y[r, :] = x[idx[r], :] for rows of `row` elements.
template <typename T>
__device__ __forceinline__ void index_select_kernel(const T* x, const u32* idx, T* y, u32 rows, u32 row) {
    const u32 n = rows * row;
    for (u32 e = ebm_global_id(); e < n; e += ebm_grid_stride()) {
        const u32 r = e / row, j = e % row;
        y[e] = x[(u64)idx[r] * row + j];
    }
}

// For each destination row dest[u], combines the source rows srcs[offsets[u] .. offsets[u+1]]
// (in the caller's order) into out: added one after another (accumulate), or the last one
// written (put). Grouping the repeats by destination on the host makes this deterministic
// and equal to the CPU's sequential loop, without atomics.
template <typename T>
__device__ __forceinline__ void scatter_rows_kernel(T* out, const T* src, const u32* dest, const u32* offsets,
                                                    const u32* srcs, u32 ndest, u32 row, int accumulate) {
    const u32 n = ndest * row;
    for (u32 e = ebm_global_id(); e < n; e += ebm_grid_stride()) {
        const u32 u = e / row, j = e % row;
        const u64 at = (u64)dest[u] * row + j;
        T acc = out[at];
        for (u32 s = offsets[u]; s < offsets[u + 1]; ++s) {
            const T v = src[(u64)srcs[s] * row + j];
            acc = accumulate ? acc + v : v;
        }
        out[at] = acc;
    }
}

extern "C" __global__ void gather_f32(const float* x, float* y, u32 n, u32 offset, Strided3 L) {
    gather_kernel(x, y, n, offset, L);
}
extern "C" __global__ void gather_f64(const double* x, double* y, u32 n, u32 offset, Strided3 L) {
    gather_kernel(x, y, n, offset, L);
}
extern "C" __global__ void copy_block_f32(const float* src, float* dst, u32 outer, u32 n_dst, u32 len, u32 inner,
                                          u32 start) {
    copy_block_kernel(src, dst, outer, n_dst, len, inner, start);
}
extern "C" __global__ void copy_block_f64(const double* src, double* dst, u32 outer, u32 n_dst, u32 len, u32 inner,
                                          u32 start) {
    copy_block_kernel(src, dst, outer, n_dst, len, inner, start);
}
extern "C" __global__ void index_select_f32(const float* x, const u32* idx, float* y, u32 rows, u32 row) {
    index_select_kernel(x, idx, y, rows, row);
}
extern "C" __global__ void index_select_f64(const double* x, const u32* idx, double* y, u32 rows, u32 row) {
    index_select_kernel(x, idx, y, rows, row);
}
extern "C" __global__ void scatter_rows_f32(float* out, const float* src, const u32* dest, const u32* offsets,
                                            const u32* srcs, u32 ndest, u32 row, int accumulate) {
    scatter_rows_kernel(out, src, dest, offsets, srcs, ndest, row, accumulate);
}
extern "C" __global__ void scatter_rows_f64(double* out, const double* src, const u32* dest, const u32* offsets,
                                            const u32* srcs, u32 ndest, u32 row, int accumulate) {
    scatter_rows_kernel(out, src, dest, offsets, srcs, ndest, row, accumulate);
}
