// Shim driver: the three convolution kernels (f64).
//   in:  x.f64 [n, c, h, w], w.f64 [o, c/g, kh, kw], gy.f64 [n, o, ho, wo],
//        geom.u32 = [n, c, h, w, o, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw, groups]
//   out: y.f64 (forward), gx.f64 (input gradient), gw.f64 (weight gradient)
#include "cuda_shim.h"
#include "conv.cu"
#include <string>

int main(int argc, char** argv) {
    const std::string d = argv[1];
    auto p = [&](const char* f) { return d + "/" + f; };
    auto x = shim_read<double>(p("x.f64").c_str());
    auto w = shim_read<double>(p("w.f64").c_str());
    auto gy = shim_read<double>(p("gy.f64").c_str());
    auto g = shim_read<u32>(p("geom.u32").c_str());
    ConvGeom G{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]};
    std::vector<double> y(gy.size()), gx(x.size()), gw(w.size());
    // few small blocks: the grid-stride loops wrap several times
    shim_launch(dim3(3), dim3(32), 0, conv_fwd_f64, x.data(), w.data(), y.data(), G);
    shim_launch(dim3(3), dim3(32), 0, conv_dx_f64, gy.data(), w.data(), gx.data(), G);
    shim_launch(dim3(2), dim3(16), 0, conv_dw_f64, x.data(), gy.data(), gw.data(), G);
    shim_write(p("y.f64").c_str(), y);
    shim_write(p("gx.f64").c_str(), gx);
    shim_write(p("gw.f64").c_str(), gw);
    return 0;
}
