// Random fills with ebm_core::Rng's numbers (see philox.cuh for the mapping).
// kind 0: uniform on [lo, hi) as lo + (hi − lo)·u in f64; 1: standard normal (in f32 for f32,
// four per block); 2: ±1.
#include "philox.cuh"

template <typename T>
__device__ __forceinline__ void rng_kernel(T* y, u32 n, u64 seed, u64 stream, u64 counter, int kind, double lo,
                                           double hi) {
    const double width = hi - lo;
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) {
        if (kind == 1) {
            y[i] = ebm_normal_as<T>(seed, stream, counter, i);
        } else {
            const double u = ebm_uniform_at(seed, stream, counter, i);
            y[i] = (T)(kind == 0 ? __dadd_rn(lo, __dmul_rn(width, u)) : (u < 0.5 ? -1.0 : 1.0));
        }
    }
}

extern "C" __global__ void rng_f32(float* y, u32 n, u64 seed, u64 stream, u64 counter, int kind, double lo,
                                   double hi) {
    rng_kernel(y, n, seed, stream, counter, kind, lo, hi);
}
extern "C" __global__ void rng_f64(double* y, u32 n, u64 seed, u64 stream, u64 counter, int kind, double lo,
                                   double hi) {
    rng_kernel(y, n, seed, stream, counter, kind, lo, hi);
}
