// Shim driver: the block tree reduction (reduce_rows) and the column reduction (reduce_cols).
//   in:  x.f32 [rows, n] and dims.u32 = [rows, n, chunk, chunks, outer, n2, inner]
//   out: rows_sum.f32 rows_max.f32 [rows·chunks], cols_sum.f32 cols_max.f32 [outer, inner],
//        cols2_sum.f32 [outer, inner] (in chunks of 7 rows, then a second pass over the chunks)
#include "cuda_shim.h"
#include "reduce.cu"
#include <string>

int main(int argc, char** argv) {
    const std::string d = argv[1];
    auto p = [&](const char* f) { return d + "/" + f; };
    auto x = shim_read<float>(p("x.f32").c_str());
    auto dims = shim_read<u32>(p("dims.u32").c_str());
    const u32 rows = dims[0], n = dims[1], chunk = dims[2], chunks = dims[3];
    std::vector<float> out(rows * chunks);
    shim_launch(dim3(rows * chunks), dim3(REDUCE_THREADS), 0, reduce_rows_f32, x.data(), out.data(), n, chunk, chunks, 0);
    shim_write(p("rows_sum.f32").c_str(), out);
    shim_launch(dim3(rows * chunks), dim3(REDUCE_THREADS), 0, reduce_rows_f32, x.data(), out.data(), n, chunk, chunks, 1);
    shim_write(p("rows_max.f32").c_str(), out);
    const u32 outer = dims[4], n2 = dims[5], inner = dims[6];
    std::vector<float> cols(outer * inner);
    shim_launch(dim3(2), dim3(32), 0, reduce_cols_f32, x.data(), cols.data(), outer, n2, inner, n2, 1u, 0);
    shim_write(p("cols_sum.f32").c_str(), cols);
    shim_launch(dim3(2), dim3(32), 0, reduce_cols_f32, x.data(), cols.data(), outer, n2, inner, n2, 1u, 1);
    shim_write(p("cols_max.f32").c_str(), cols);
    const u32 chunk2 = 7, chunks2 = (n2 + chunk2 - 1) / chunk2;
    std::vector<float> part(outer * chunks2 * inner);
    shim_launch(dim3(3), dim3(32), 0, reduce_cols_f32, x.data(), part.data(), outer, n2, inner, chunk2, chunks2, 0);
    shim_launch(dim3(2), dim3(32), 0, reduce_cols_f32, (const float*)part.data(), cols.data(), outer, chunks2, inner,
                chunks2, 1u, 0);
    shim_write(p("cols2_sum.f32").c_str(), cols);
    return 0;
}
