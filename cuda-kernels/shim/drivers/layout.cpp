// Shim driver: element-wise, broadcasting, where, gather and row scatter kernels (f64).
//   in:  a.f64 [2,3,4], b.f64 [3,1], c.f64 [4] (mask), u.f64 (unary input), idx.u32,
//        scatter.u32 = [dest..., offsets..., srcs...], and the ops to run, every op of the
//        tables: unary_ops.f64 = [code, p, q]..., binary_ops.u32 = [code]...
//   out: unary_<k>.f64, binary_<k>.f64 (the k-th op listed), where.f64, permute.f64,
//        narrow.f64, block.f64, select.f64, add.f64, put.f64
#include "cuda_shim.h"
#include "elementwise.cu"
#include "layout.cu"
#include <string>

static Strided3 strided(std::vector<u32> shape, std::vector<u32> s0, std::vector<u32> s1, std::vector<u32> s2) {
    Strided3 L;
    std::memset(&L, 0, sizeof L);
    L.rank = (u32)shape.size();
    for (size_t i = 0; i < shape.size(); ++i) {
        L.shape[i] = shape[i];
        L.s0[i] = i < s0.size() ? s0[i] : 0;
        L.s1[i] = i < s1.size() ? s1[i] : 0;
        L.s2[i] = i < s2.size() ? s2[i] : 0;
    }
    return L;
}

int main(int argc, char** argv) {
    const std::string d = argv[1];
    auto p = [&](const std::string& f) { return d + "/" + f; };
    auto a = shim_read<double>(p("a.f64").c_str()); // [2, 3, 4]
    auto b = shim_read<double>(p("b.f64").c_str()); // [3, 1]
    auto c = shim_read<double>(p("c.f64").c_str()); // [4]
    auto u = shim_read<double>(p("u.f64").c_str());
    auto uops = shim_read<double>(p("unary_ops.f64").c_str());
    std::vector<double> yu(u.size());
    for (size_t k = 0; 3 * k < uops.size(); ++k) {
        shim_launch(dim3(2), dim3(16), 0, unary_f64, u.data(), yu.data(), (u32)u.size(), (int)uops[3 * k],
                    uops[3 * k + 1], uops[3 * k + 2]);
        shim_write(p("unary_" + std::to_string(k) + ".f64").c_str(), yu);
    }
    const u32 n = 24;
    std::vector<double> y(n);
    // a [2,3,4] op b [3,1] → [2,3,4]
    Strided3 L = strided({2, 3, 4}, {12, 4, 1}, {0, 1, 0}, {});
    auto bops = shim_read<u32>(p("binary_ops.u32").c_str());
    for (size_t k = 0; k < bops.size(); ++k) {
        shim_launch(dim3(2), dim3(8), 0, binary_strided_f64, a.data(), b.data(), y.data(), n, (int)bops[k], L);
        shim_write(p("binary_" + std::to_string(k) + ".f64").c_str(), y);
    }
    // where(c [4], a, b [3,1])
    Strided3 W = strided({2, 3, 4}, {0, 0, 1}, {12, 4, 1}, {0, 1, 0});
    shim_launch(dim3(2), dim3(8), 0, where_f64, c.data(), a.data(), b.data(), y.data(), n, W);
    shim_write(p("where.f64").c_str(), y);
    // permute [2,3,4] → [4,2,3] (perm [2,0,1])
    Strided3 P = strided({4, 2, 3}, {1, 12, 4}, {}, {});
    shim_launch(dim3(2), dim3(8), 0, gather_f64, a.data(), y.data(), n, 0u, P);
    shim_write(p("permute.f64").c_str(), y);
    // narrow axis 1, start 1, len 2 → [2,2,4] as [outer 2, len 2, inner 4] from n = 3
    std::vector<double> nar(16);
    Strided3 N = strided({2, 2, 4}, {12, 4, 1}, {}, {});
    shim_launch(dim3(1), dim3(8), 0, gather_f64, a.data(), nar.data(), 16u, 4u, N);
    shim_write(p("narrow.f64").c_str(), nar);
    // narrow_assign: write nar back at start 0 of axis 1 of a copy of a
    std::vector<double> blk = a;
    shim_launch(dim3(1), dim3(8), 0, copy_block_f64, nar.data(), blk.data(), 2u, 3u, 2u, 4u, 0u);
    shim_write(p("block.f64").c_str(), blk);
    // index_select rows of a viewed as [6, 4]
    auto idx = shim_read<u32>(p("idx.u32").c_str());
    std::vector<double> sel(idx.size() * 4);
    shim_launch(dim3(2), dim3(8), 0, index_select_f64, a.data(), idx.data(), sel.data(), (u32)idx.size(), 4u);
    shim_write(p("select.f64").c_str(), sel);
    // index_add / index_put of sel into zeros [6, 4] at idx, grouped on the host
    auto sc = shim_read<u32>(p("scatter.u32").c_str());
    const u32 nd = sc[0];
    const u32* dest = sc.data() + 1;
    const u32* offs = dest + nd;
    const u32* srcs = offs + nd + 1;
    std::vector<double> acc(24, 0.0), put(24, 0.0);
    shim_launch(dim3(2), dim3(8), 0, scatter_rows_f64, acc.data(), (const double*)sel.data(), dest, offs, srcs, nd, 4u, 1);
    shim_launch(dim3(2), dim3(8), 0, scatter_rows_f64, put.data(), (const double*)sel.data(), dest, offs, srcs, nd, 4u, 0);
    shim_write(p("add.f64").c_str(), acc);
    shim_write(p("put.f64").c_str(), put);
    return 0;
}
