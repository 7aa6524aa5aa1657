// Sum / max over the middle axis of a tensor viewed as [outer, n, inner], in chunks of `chunk`
// along n (a second pass combines the chunks when there is more than one).
//
// reduce_rows: inner == 1, one block per (row, chunk), a tree reduction in shared memory.
// reduce_cols: one thread per (outer, chunk, inner) output, summing its chunk in order; with
//              one chunk this is exactly the CPU's order (row by row from 0).
#include "common.cuh"

#define REDUCE_THREADS 256

template <typename T> __device__ __forceinline__ T red_init(int kind) {
    return kind == 0 ? T(0) : ebm_neg_inf<T>();
}
template <typename T> __device__ __forceinline__ T red_op(int kind, T a, T b) {
    return kind == 0 ? a + b : ebm_max(a, b);
}

// blockDim.x must be REDUCE_THREADS (a power of two). out[row * chunks + c].
template <typename T>
__device__ __forceinline__ void reduce_rows_kernel(const T* x, T* out, u32 n, u32 chunk, u32 chunks, int kind) {
    __shared__ T buf[REDUCE_THREADS];
    const u32 row = blockIdx.x / chunks, c = blockIdx.x % chunks;
    const u32 lo = c * chunk;
    const u32 hi = ebm_minu(n, lo + chunk);
    const T* src = x + (u64)row * n;
    T acc = red_init<T>(kind);
    for (u32 j = lo + threadIdx.x; j < hi; j += blockDim.x) acc = red_op(kind, acc, src[j]);
    buf[threadIdx.x] = acc;
    __syncthreads();
    for (u32 s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] = red_op(kind, buf[threadIdx.x], buf[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

// out[(o * chunks + c) * inner + i] = reduction of x[o, c*chunk .. min(n, (c+1)*chunk), i].
template <typename T>
__device__ __forceinline__ void reduce_cols_kernel(const T* x, T* out, u32 outer, u32 n, u32 inner, u32 chunk,
                                                   u32 chunks, int kind) {
    const u32 total = outer * chunks * inner;
    for (u32 t = ebm_global_id(); t < total; t += ebm_grid_stride()) {
        const u32 i = t % inner;
        const u32 oc = t / inner;
        const u32 c = oc % chunks, o = oc / chunks;
        const u32 lo = c * chunk;
        const u32 hi = ebm_minu(n, lo + chunk);
        const T* src = x + (u64)o * n * inner + i;
        T acc = red_init<T>(kind);
        for (u32 j = lo; j < hi; ++j) acc = red_op(kind, acc, src[(u64)j * inner]);
        out[t] = acc;
    }
}

extern "C" __global__ void reduce_rows_f32(const float* x, float* out, u32 n, u32 chunk, u32 chunks, int kind) {
    reduce_rows_kernel(x, out, n, chunk, chunks, kind);
}
extern "C" __global__ void reduce_rows_f64(const double* x, double* out, u32 n, u32 chunk, u32 chunks, int kind) {
    reduce_rows_kernel(x, out, n, chunk, chunks, kind);
}
extern "C" __global__ void reduce_cols_f32(const float* x, float* out, u32 outer, u32 n, u32 inner, u32 chunk,
                                           u32 chunks, int kind) {
    reduce_cols_kernel(x, out, outer, n, inner, chunk, chunks, kind);
}
extern "C" __global__ void reduce_cols_f64(const double* x, double* out, u32 outer, u32 n, u32 inner, u32 chunk,
                                           u32 chunks, int kind) {
    reduce_cols_kernel(x, out, outer, n, inner, chunk, chunks, kind);
}
