// A CPU stand-in for the parts of CUDA our kernels use, so g++ compiles the very same .cu
// sources and tests can compare them with the Rust reference (see ../../shared/CUDA.md).
//
// Model: a launch runs its blocks one after another; a block runs one OS thread per CUDA
// thread; __syncthreads() is a barrier over them; __shared__ variables are function statics
// (one copy, used by one block at a time); dynamic shared memory is one buffer per launch.
// Warp shuffles and atomics are not modelled (the kernels do not use them).
#pragma once
#define EBM_SHIM 1

#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3() {}
    dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

namespace ebm_shim {
inline thread_local dim3 t_thread;
inline dim3 g_block, g_block_dim, g_grid_dim;
inline std::barrier<>* g_barrier = nullptr;
inline unsigned char* g_dyn_smem = nullptr;
} // namespace ebm_shim

#define threadIdx (ebm_shim::t_thread)
#define blockIdx (ebm_shim::g_block)
#define blockDim (ebm_shim::g_block_dim)
#define gridDim (ebm_shim::g_grid_dim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) alignas(n)
#define EBM_DYN_SMEM(T, name) T* name = reinterpret_cast<T*>(ebm_shim::g_dyn_smem)

inline void __syncthreads() { ebm_shim::g_barrier->arrive_and_wait(); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __int_as_float(unsigned v) {
    float f;
    std::memcpy(&f, &v, 4);
    return f;
}
inline float __uint_as_float(unsigned v) { return __int_as_float(v); }
inline unsigned __float_as_uint(float v) {
    unsigned u;
    std::memcpy(&u, &v, 4);
    return u;
}
inline long long __double_as_longlong(double v) {
    long long f;
    std::memcpy(&f, &v, 8);
    return f;
}
inline double __longlong_as_double(long long v) {
    double f;
    std::memcpy(&f, &v, 8);
    return f;
}

// Runs kernel(args...) over grid × block with `smem` bytes of dynamic shared memory.
template <typename K, typename... A> void shim_launch(dim3 grid, dim3 block, size_t smem, K kernel, A... args) {
    const unsigned nt = block.x * block.y * block.z;
    std::vector<unsigned char> dyn(smem + 16);
    ebm_shim::g_dyn_smem = dyn.data();
    ebm_shim::g_block_dim = block;
    ebm_shim::g_grid_dim = grid;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                ebm_shim::g_block = dim3(bx, by, bz);
                std::barrier<> bar(nt);
                ebm_shim::g_barrier = &bar;
                std::vector<std::thread> threads;
                threads.reserve(nt);
                for (unsigned t = 0; t < nt; ++t)
                    threads.emplace_back([=]() {
                        ebm_shim::t_thread = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                        kernel(args...);
                    });
                for (auto& th : threads) th.join();
            }
}

// Little-endian binary files of elements, as the Rust side writes and reads them.
template <typename T> std::vector<T> shim_read(const char* path) {
    FILE* f = std::fopen(path, "rb");
    if (!f) {
        std::fprintf(stderr, "cannot open %s\n", path);
        std::exit(2);
    }
    std::fseek(f, 0, SEEK_END);
    long bytes = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    std::vector<T> v(bytes / sizeof(T));
    if (std::fread(v.data(), sizeof(T), v.size(), f) != v.size()) std::exit(3);
    std::fclose(f);
    return v;
}
template <typename T> void shim_write(const char* path, const std::vector<T>& v) {
    FILE* f = std::fopen(path, "wb");
    if (!f) std::exit(4);
    std::fwrite(v.data(), sizeof(T), v.size(), f);
    std::fclose(f);
}
