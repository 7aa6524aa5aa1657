// One fused Langevin step for any target that provides ∇E as a buffer:
//   x ← x − η ∇E(x) + σ z,   z ~ N(0, I) from Philox (philox.cuh), η = ε²/2, σ = ε (tied step).
// Rounded exactly like the CPU ULA update `x += η·s + σ·z` with s = −∇E (no FMA contraction),
// so with the same noise the GPU step equals the CPU step bit for bit. The draw covers the n
// elements of x in order and advances the generator by ceil(n / 2) blocks in f64, ceil(n / 4)
// in f32, like `rng.normal(x.shape())` on the CPU.
#include "philox.cuh"

template <typename T>
__device__ __forceinline__ void langevin_step_kernel(T* x, const T* grad, u32 n, double eta, double sigma, u64 seed,
                                                     u64 stream, u64 counter) {
    const T a = (T)eta, b = (T)sigma;
    for (u32 i = ebm_global_id(); i < n; i += ebm_grid_stride()) {
        const T z = ebm_normal_as<T>(seed, stream, counter, i);
        const T s = -grad[i];
        x[i] = ebm_add_rn(x[i], ebm_add_rn(ebm_mul_rn(a, s), ebm_mul_rn(b, z)));
    }
}

extern "C" __global__ void langevin_step_f32(float* x, const float* grad, u32 n, double eta, double sigma, u64 seed,
                                             u64 stream, u64 counter) {
    langevin_step_kernel(x, grad, n, eta, sigma, seed, stream, counter);
}
extern "C" __global__ void langevin_step_f64(double* x, const double* grad, u32 n, double eta, double sigma,
                                             u64 seed, u64 stream, u64 counter) {
    langevin_step_kernel(x, grad, n, eta, sigma, seed, stream, counter);
}
