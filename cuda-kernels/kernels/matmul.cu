// Batched matrix product C[b] = op(A[b]) · op(B[b]) with transpose flags, tiled in shared
// memory: a 64×64 output tile per block of 256 threads, each thread holding a 4×4 register
// tile, K in slices of 16. Written for the small per-chain matrices where cuBLAS's launch and
// heuristics overhead dominates; large products go to cuBLAS (src/matmul.rs decides).
//
// A is stored [M, K] (or [K, M] when ta), B [K, N] (or [N, K] when tb), row-major; the batch
// strides sa / sb are 0 for an operand shared by every batch element; C is [batch, M, N].
// Thread (ty, tx) of the 16×16 grid owns rows ty + 16 i and columns tx + 16 j of the tile, so
// a warp reads 16 consecutive B values and 2 broadcast A values from shared memory.
#include "common.cuh"

#define MM_BM 64
#define MM_BN 64
#define MM_BK 16
#define MM_THREADS 256

template <typename T>
__device__ __forceinline__ void matmul_tiled_kernel(const T* A, const T* B, T* C, u32 M, u32 N, u32 K, u32 ta,
                                                    u32 tb, u64 sa, u64 sb, u32 tiles_m, u32 tiles_n) {
    __shared__ T As[MM_BK][MM_BM + 1];
    __shared__ T Bs[MM_BK][MM_BN + 1];
    const u32 tiles = tiles_m * tiles_n;
    const u32 bz = blockIdx.x / tiles;
    const u32 tile = blockIdx.x % tiles;
    const u32 m0 = (tile / tiles_n) * MM_BM, n0 = (tile % tiles_n) * MM_BN;
    A += bz * sa;
    B += bz * sb;
    C += (u64)bz * M * N;
    const u32 tid = threadIdx.x;
    const u32 tx = tid % 16, ty = tid / 16;
    T acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
    for (u32 k0 = 0; k0 < K; k0 += MM_BK) {
        // Consecutive threads read consecutive addresses of the stored layout (coalesced).
        for (u32 e = tid; e < MM_BM * MM_BK; e += MM_THREADS) {
            u32 mm, kk;
            if (ta) {
                mm = e % MM_BM;
                kk = e / MM_BM;
            } else {
                kk = e % MM_BK;
                mm = e / MM_BK;
            }
            const u32 gm = m0 + mm, gk = k0 + kk;
            T v = T(0);
            if (gm < M && gk < K) v = ta ? A[(u64)gk * M + gm] : A[(u64)gm * K + gk];
            As[kk][mm] = v;
        }
        for (u32 e = tid; e < MM_BN * MM_BK; e += MM_THREADS) {
            u32 nn, kk;
            if (tb) {
                kk = e % MM_BK;
                nn = e / MM_BK;
            } else {
                nn = e % MM_BN;
                kk = e / MM_BN;
            }
            const u32 gn = n0 + nn, gk = k0 + kk;
            T v = T(0);
            if (gn < N && gk < K) v = tb ? B[(u64)gn * K + gk] : B[(u64)gk * N + gn];
            Bs[kk][nn] = v;
        }
        __syncthreads();
        for (u32 kk = 0; kk < MM_BK; ++kk) {
            T a[4], b[4];
            for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i) {
        const u32 gm = m0 + ty + 16 * i;
        if (gm >= M) continue;
        for (int j = 0; j < 4; ++j) {
            const u32 gn = n0 + tx + 16 * j;
            if (gn < N) C[(u64)gm * N + gn] = acc[i][j];
        }
    }
}

// Grid: batch · tiles_m · tiles_n blocks of MM_THREADS threads.
extern "C" __global__ void matmul_tiled_f32(const float* A, const float* B, float* C, u32 M, u32 N, u32 K, u32 ta,
                                            u32 tb, u64 sa, u64 sb, u32 tiles_m, u32 tiles_n) {
    matmul_tiled_kernel(A, B, C, M, N, K, ta, tb, sa, sb, tiles_m, tiles_n);
}
extern "C" __global__ void matmul_tiled_f64(const double* A, const double* B, double* C, u32 M, u32 N, u32 K,
                                            u32 ta, u32 tb, u64 sa, u64 sb, u32 tiles_m, u32 tiles_n) {
    matmul_tiled_kernel(A, B, C, M, N, K, ta, tb, sa, sb, tiles_m, tiles_n);
}
