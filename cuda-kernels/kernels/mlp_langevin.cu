// The fused MLP-energy Langevin sampler: K steps of
//   x ← x − η ∇E(x) + σ z,   E(x) = W_{L-1} silu(… silu(W_0 x + b_0) …) + b_{L-1}
// per launch, for the SiLU MLPs of ebm-nn (weights [out, in], one output). A block owns C
// chains for all K steps: the weights sit in shared memory (rows padded to an odd pitch, so
// both the forward W·a and the backward Wᵀ·δ read them without bank conflicts), each chain's
// coordinates stay in registers (MLP_XREG per thread), and the forward pre-activations of the
// block's chains stay in shared memory for the analytic backward to the input:
//   δ_{L-2} = w_{L-1} ⊙ silu′(z_{L-2}),  g_{i} = δ_i W_i,  δ_{i-1} = g_i ⊙ silu′(z_{i-1}),  ∇E = g_0.
// Layer products are block-cooperative: each thread computes 4 chains × 4 units in registers.
// The noise of step s is element (chain·D + d) of a normal draw of n_chains·D values starting
// at counter + s·ceil(n_chains·D / 4) (f32, four per block): the CPU's
// `rng.normal(&[n_chains, D], F32)` once per step.
// The update is rounded like the CPU ULA update (see langevin.cu).
#include "philox.cuh"

#define MLP_MAX_LAYERS 8
#define MLP_TILE 4
#define MLP_XREG 4

// Mirrors `MlpDesc` in src/mlp.rs; all offsets are in floats.
struct MlpDesc {
    u32 n_layers;                     // L linear layers; widths[L] == 1
    u32 widths[MLP_MAX_LAYERS + 1];   // widths[0] is the input dimension D
    u32 g_w_off[MLP_MAX_LAYERS];      // layer i's weight [out, in] in the packed global params
    u32 g_b_off[MLP_MAX_LAYERS];      // layer i's bias [out] there
    u32 w_off[MLP_MAX_LAYERS];        // layer i's weight where the kernel reads it
    u32 b_off[MLP_MAX_LAYERS];        //   (shared memory when weights_in_smem, else global)
    u32 pitch[MLP_MAX_LAYERS];        // row pitch of layer i's weight there
    u32 z_off[MLP_MAX_LAYERS];        // pre-activations [C, widths[i+1]] of hidden layer i
    u32 x_off;                        // the block's chain coordinates [C, D]
    u32 ag_off;                       // activations (forward) / input gradients (backward)
    u32 chains_per_block;             // C
    u32 weights_in_smem;
};

// out[c·ldo + u] = bias[u] + Σ_k in[c·ldi + k] · W[u·wsu + k·wsk] for c < C, u < H.
// Thread t computes chains cq + tc·i and units uq + tu·j (i, j < 4): neighbouring threads take
// neighbouring units (distinct banks) and share chains (broadcast reads).
__device__ __forceinline__ void mlp_block_gemm(const float* in, u32 ldi, const float* W, u32 wsu, u32 wsk,
                                               const float* bias, float* out, u32 ldo, u32 C, u32 H, u32 K) {
    const u32 tc = (C + MLP_TILE - 1) / MLP_TILE, tu = (H + MLP_TILE - 1) / MLP_TILE;
    for (u32 t = threadIdx.x; t < tc * tu; t += blockDim.x) {
        const u32 cq = t / tu, uq = t % tu;
        float acc[MLP_TILE][MLP_TILE];
        for (int j = 0; j < MLP_TILE; ++j) {
            const u32 u = uq + tu * j;
            const float b0 = (bias != nullptr && u < H) ? bias[u] : 0.0f;
            for (int i = 0; i < MLP_TILE; ++i) acc[i][j] = b0;
        }
        for (u32 k = 0; k < K; ++k) {
            float a[MLP_TILE], w[MLP_TILE];
            for (int i = 0; i < MLP_TILE; ++i) {
                const u32 c = cq + tc * i;
                a[i] = c < C ? in[c * ldi + k] : 0.0f;
            }
            for (int j = 0; j < MLP_TILE; ++j) {
                const u32 u = uq + tu * j;
                w[j] = u < H ? W[u * wsu + k * wsk] : 0.0f;
            }
            for (int i = 0; i < MLP_TILE; ++i)
                for (int j = 0; j < MLP_TILE; ++j) acc[i][j] += a[i] * w[j];
        }
        for (int i = 0; i < MLP_TILE; ++i) {
            const u32 c = cq + tc * i;
            if (c >= C) continue;
            for (int j = 0; j < MLP_TILE; ++j) {
                const u32 u = uq + tu * j;
                if (u < H) out[c * ldo + u] = acc[i][j];
            }
        }
    }
}

// The sampler body; W_SMEM (d.weights_in_smem) is a template parameter so that with the
// weights in shared memory every weight load is known to be a shared-memory load.
template <bool W_SMEM>
__device__ __forceinline__ void mlp_langevin_body(float* x, u32 n_chains, const float* params, const MlpDesc& d,
                                                  u32 steps, double eta, double sigma, u64 seed, u64 stream,
                                                  u64 counter) {
    EBM_DYN_SMEM(float, sm);
    const u32 L = d.n_layers, D = d.widths[0], C = d.chains_per_block;
    const u32 tid = threadIdx.x, nt = blockDim.x;
    const u64 c0 = (u64)blockIdx.x * C;
    const u64 total = (u64)n_chains * D;

    const float* P = params;
    if (W_SMEM) {
        for (u32 i = 0; i < L; ++i) {
            const u32 in = d.widths[i], out = d.widths[i + 1];
            for (u32 e = tid; e < out * in; e += nt) sm[d.w_off[i] + (e / in) * d.pitch[i] + e % in] = params[d.g_w_off[i] + e];
            for (u32 e = tid; e < out; e += nt) sm[d.b_off[i] + e] = params[d.g_b_off[i] + e];
        }
        P = sm;
    }
    float* X = sm + d.x_off;
    float* AG = sm + d.ag_off;

    // Coordinate e = tid + r·nt of the block's C×D values lives in xr[r].
    float xr[MLP_XREG];
    for (int r = 0; r < MLP_XREG; ++r) {
        const u32 e = tid + r * nt;
        const u64 gi = c0 * D + e;
        xr[r] = (e < C * D && gi < total) ? x[gi] : 0.0f;
    }
    const float a = (float)eta, b = (float)sigma;
    const u64 per_step = (total + 3) / 4;

    for (u32 s = 0; s < steps; ++s) {
        for (int r = 0; r < MLP_XREG; ++r) {
            const u32 e = tid + r * nt;
            if (e < C * D) X[e] = xr[r];
        }
        __syncthreads();

        // Forward through the hidden layers: z_i = W_i a_i + b_i, a_{i+1} = silu(z_i).
        const float* in = X;
        u32 ldi = D;
        for (u32 i = 0; i + 1 < L; ++i) {
            const u32 K = d.widths[i], H = d.widths[i + 1];
            float* Z = sm + d.z_off[i];
            mlp_block_gemm(in, ldi, P + d.w_off[i], d.pitch[i], 1, P + d.b_off[i], Z, H, C, H, K);
            __syncthreads();
            if (i + 2 < L) {
                for (u32 e = tid; e < C * H; e += nt) {
                    const float z = Z[e];
                    AG[e] = z * ebm_sigmoid(z);
                }
                __syncthreads();
                in = AG;
                ldi = H;
            }
        }

        // Backward to the input. The output layer has one unit, so δ_{L-2} needs no product.
        if (L >= 2) {
            const u32 H = d.widths[L - 1];
            float* Z = sm + d.z_off[L - 2];
            const float* wl = P + d.w_off[L - 1];
            for (u32 e = tid; e < C * H; e += nt) Z[e] = wl[e % H] * ebm_silu_d1(Z[e]);
            __syncthreads();
            for (int i = (int)L - 2; i >= 0; --i) {
                const u32 K = d.widths[i + 1], Hin = d.widths[i];
                mlp_block_gemm(sm + d.z_off[i], K, P + d.w_off[i], 1, d.pitch[i], nullptr, AG, Hin, C, Hin, K);
                __syncthreads();
                if (i > 0) {
                    float* Zp = sm + d.z_off[i - 1];
                    for (u32 e = tid; e < C * Hin; e += nt) Zp[e] = AG[e] * ebm_silu_d1(Zp[e]);
                    __syncthreads();
                }
            }
        }

        // x ← x + (η·(−∇E) + σ·z), rounded like the CPU update.
        const u64 ctr = counter + (u64)s * per_step;
        for (int r = 0; r < MLP_XREG; ++r) {
            const u32 e = tid + r * nt;
            const u64 gi = c0 * D + e;
            if (e < C * D && gi < total) {
                const float g = L >= 2 ? AG[e] : P[d.w_off[0] + e % D];
                const float z = ebm_normal_f32_at(seed, stream, ctr, gi);
                xr[r] = __fadd_rn(xr[r], __fadd_rn(__fmul_rn(a, -g), __fmul_rn(b, z)));
            }
        }
        __syncthreads();
    }

    for (int r = 0; r < MLP_XREG; ++r) {
        const u32 e = tid + r * nt;
        const u64 gi = c0 * D + e;
        if (e < C * D && gi < total) x[gi] = xr[r];
    }
}

// Grid: ceil(n_chains / C) blocks; dynamic shared memory as computed by src/mlp.rs.
// Weights copied to shared memory (d.weights_in_smem == 1).
extern "C" __global__ void mlp_langevin_f32(float* x, u32 n_chains, const float* params, MlpDesc d, u32 steps,
                                            double eta, double sigma, u64 seed, u64 stream, u64 counter) {
    mlp_langevin_body<true>(x, n_chains, params, d, steps, eta, sigma, seed, stream, counter);
}
// Weights read from global memory (d.weights_in_smem == 0: they do not fit).
extern "C" __global__ void mlp_langevin_gw_f32(float* x, u32 n_chains, const float* params, MlpDesc d, u32 steps,
                                               double eta, double sigma, u64 seed, u64 stream, u64 counter) {
    mlp_langevin_body<false>(x, n_chains, params, d, steps, eta, sigma, seed, stream, counter);
}
