// Shim driver: the fused MLP-energy sampler.
//   in:  x.f32 [n, D], params.f32 (packed), desc.bin (MlpDesc bytes), run.u64 = [steps, seed,
//        stream, counter, threads, smem_bytes], coef.f64 = [eta, sigma]
//   out: out.f32
#include "cuda_shim.h"
#include "mlp_langevin.cu"
#include <string>

int main(int argc, char** argv) {
    const std::string d = argv[1];
    auto p = [&](const char* f) { return d + "/" + f; };
    auto x = shim_read<float>(p("x.f32").c_str());
    auto params = shim_read<float>(p("params.f32").c_str());
    auto desc_bytes = shim_read<unsigned char>(p("desc.bin").c_str());
    auto run = shim_read<u64>(p("run.u64").c_str());
    auto coef = shim_read<double>(p("coef.f64").c_str());
    MlpDesc desc;
    if (desc_bytes.size() != sizeof(MlpDesc)) {
        std::fprintf(stderr, "MlpDesc is %zu bytes in C++, %zu from Rust\n", sizeof(MlpDesc), desc_bytes.size());
        return 5;
    }
    std::memcpy(&desc, desc_bytes.data(), sizeof(MlpDesc));
    const u32 D = desc.widths[0], C = desc.chains_per_block;
    const u32 n = (u32)(x.size() / D);
    shim_launch(dim3((n + C - 1) / C), dim3((u32)run[4]), (size_t)run[5],
                desc.weights_in_smem ? mlp_langevin_f32 : mlp_langevin_gw_f32, x.data(), n,
                (const float*)params.data(), desc, (u32)run[0], coef[0], coef[1], run[1], run[2], run[3]);
    shim_write(p("out.f32").c_str(), x);
    return 0;
}
