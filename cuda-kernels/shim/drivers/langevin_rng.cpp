// Shim driver: the fused Langevin step and the random fills, on files in argv[1].
//   in:  x.f32 g.f32 x.f64 g.f64 coef.f64 = [eta, sigma, lo, hi], state.u64 = [seed, stream, counter]
//   out: step.f32 step.f64 normal.f32 normal.f64 uniform.f32 uniform.f64 sign.f64
#include "cuda_shim.h"
#include "langevin.cu"
#include "rng.cu"
#include <string>

int main(int argc, char** argv) {
    const std::string d = argv[1];
    auto p = [&](const char* f) { return d + "/" + f; };
    auto x32 = shim_read<float>(p("x.f32").c_str());
    auto g32 = shim_read<float>(p("g.f32").c_str());
    auto x64 = shim_read<double>(p("x.f64").c_str());
    auto g64 = shim_read<double>(p("g.f64").c_str());
    auto coef = shim_read<double>(p("coef.f64").c_str());
    auto st = shim_read<u64>(p("state.u64").c_str());
    const u32 n = (u32)x32.size();
    // few small blocks: the grid-stride loops cover the rest
    shim_launch(dim3(3), dim3(32), 0, langevin_step_f32, x32.data(), g32.data(), n, coef[0], coef[1], st[0], st[1], st[2]);
    shim_launch(dim3(2), dim3(48), 0, langevin_step_f64, x64.data(), g64.data(), n, coef[0], coef[1], st[0], st[1], st[2]);
    shim_write(p("step.f32").c_str(), x32);
    shim_write(p("step.f64").c_str(), x64);
    std::vector<float> f(n);
    std::vector<double> g(n);
    shim_launch(dim3(2), dim3(64), 0, rng_f32, f.data(), n, st[0], st[1], st[2], 1, 0.0, 0.0);
    shim_write(p("normal.f32").c_str(), f);
    shim_launch(dim3(2), dim3(64), 0, rng_f64, g.data(), n, st[0], st[1], st[2], 1, 0.0, 0.0);
    shim_write(p("normal.f64").c_str(), g);
    shim_launch(dim3(2), dim3(64), 0, rng_f32, f.data(), n, st[0], st[1], st[2], 0, coef[2], coef[3]);
    shim_write(p("uniform.f32").c_str(), f);
    shim_launch(dim3(2), dim3(64), 0, rng_f64, g.data(), n, st[0], st[1], st[2], 0, coef[2], coef[3]);
    shim_write(p("uniform.f64").c_str(), g);
    shim_launch(dim3(2), dim3(64), 0, rng_f64, g.data(), n, st[0], st[1], st[2], 2, 0.0, 0.0);
    shim_write(p("sign.f64").c_str(), g);
    return 0;
}
