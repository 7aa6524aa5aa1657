// Shim driver: the tiled batched matmul.
//   in:  a.f32 b.f32 dims.u32 = [batch, M, N, K, ta, tb, a_batched, b_batched]
//   out: c.f32 [batch, M, N]
#include "cuda_shim.h"
#include "matmul.cu"
#include <string>

int main(int argc, char** argv) {
    const std::string d = argv[1];
    auto p = [&](const char* f) { return d + "/" + f; };
    auto a = shim_read<float>(p("a.f32").c_str());
    auto b = shim_read<float>(p("b.f32").c_str());
    auto dims = shim_read<u32>(p("dims.u32").c_str());
    const u32 batch = dims[0], M = dims[1], N = dims[2], K = dims[3], ta = dims[4], tb = dims[5];
    const u64 sa = dims[6] ? (u64)M * K : 0, sb = dims[7] ? (u64)K * N : 0;
    const u32 tiles_m = (M + MM_BM - 1) / MM_BM, tiles_n = (N + MM_BN - 1) / MM_BN;
    std::vector<float> c((size_t)batch * M * N);
    shim_launch(dim3(batch * tiles_m * tiles_n), dim3(MM_THREADS), 0, matmul_tiled_f32, a.data(), b.data(), c.data(), M, N,
                K, ta, tb, sa, sb, tiles_m, tiles_n);
    shim_write(p("c.f32").c_str(), c);
    return 0;
}
