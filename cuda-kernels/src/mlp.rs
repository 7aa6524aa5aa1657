//! The fused MLP-energy Langevin sampler (kernels/mlp_langevin.cu): K steps of
//! x ← x − η∇E(x) + σz per launch for a SiLU MLP with one output, weights `[out, in]` as in
//! ebm-nn (`l{i}.weight`, `l{i}.bias`). This module lays out the kernel's shared memory,
//! uploads the weights, launches, and holds the CPU reference the kernel is tested against.

use crate::buffer::{DType, DeviceBuffer};
use crate::device::{launch, Gpu};
use crate::error::CudaError;
use crate::layout::check_len;
use crate::philox::PhiloxState;
use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig};
use std::sync::Arc;

/// Most linear layers the kernel takes.
pub const MAX_LAYERS: usize = 8;
/// Chain coordinates each thread keeps in registers (`MLP_XREG` in the kernel).
pub const XREG: usize = 4;

/// The kernel's view of the network and its shared memory. Mirrors `struct MlpDesc` in
/// kernels/mlp_langevin.cu; offsets are in floats.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MlpDesc {
    /// Number of linear layers.
    pub n_layers: u32,
    /// Layer widths, input first (`n_layers + 1` used).
    pub widths: [u32; MAX_LAYERS + 1],
    /// Offset of each layer's weight in the packed global parameters.
    pub g_w_off: [u32; MAX_LAYERS],
    /// Offset of each layer's bias in the packed global parameters.
    pub g_b_off: [u32; MAX_LAYERS],
    /// Offset of each layer's weight where the kernel reads it (shared memory when
    /// `weights_in_smem`, else global).
    pub w_off: [u32; MAX_LAYERS],
    /// Offset of each layer's bias where the kernel reads it.
    pub b_off: [u32; MAX_LAYERS],
    /// Row pitch of each layer's weight there.
    pub pitch: [u32; MAX_LAYERS],
    /// Offset of each hidden layer's pre-activations in shared memory.
    pub z_off: [u32; MAX_LAYERS],
    /// Offset of the block's chain coordinates in shared memory.
    pub x_off: u32,
    /// Offset of the activations (forward) / input gradients (backward) in shared memory.
    pub ag_off: u32,
    /// Chains each block advances.
    pub chains_per_block: u32,
    /// 1 when the weights are copied to shared memory, 0 when read from global memory.
    pub weights_in_smem: u32,
}

// SAFETY: plain-old-data with the C layout of the CUDA struct.
unsafe impl DeviceRepr for MlpDesc {}

impl MlpDesc {
    /// The struct's bytes (for the g++ shim tests, which read it from a file).
    pub fn to_bytes(&self) -> Vec<u8> {
        let words: Vec<u32> = std::iter::once(self.n_layers)
            .chain(self.widths)
            .chain(self.g_w_off)
            .chain(self.g_b_off)
            .chain(self.w_off)
            .chain(self.b_off)
            .chain(self.pitch)
            .chain(self.z_off)
            .chain([
                self.x_off,
                self.ag_off,
                self.chains_per_block,
                self.weights_in_smem,
            ])
            .collect();
        assert_eq!(words.len() * 4, std::mem::size_of::<MlpDesc>());
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// A launch plan: the descriptor, dynamic shared memory and block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpPlan {
    /// The kernel's descriptor.
    pub desc: MlpDesc,
    /// Dynamic shared memory per block.
    pub smem_bytes: usize,
    /// Threads per block.
    pub threads: u32,
}

fn check_widths(widths: &[usize]) -> Result<(), CudaError> {
    let ok = widths.len() >= 2
        && widths.len() <= MAX_LAYERS + 1
        && widths.iter().all(|&w| w > 0)
        && widths[widths.len() - 1] == 1;
    if ok {
        Ok(())
    } else {
        Err(CudaError::Unsupported(format!(
            "fused MLP sampler: widths {widths:?} (need 1 to {MAX_LAYERS} layers ending in one output)"
        )))
    }
}

/// Packs `[(weight [out·in], bias [out])]` per layer into one parameter vector (the kernel's
/// global layout: weight then bias, layer after layer).
pub fn pack_params(widths: &[usize], layers: &[(&[f32], &[f32])]) -> Result<Vec<f32>, CudaError> {
    check_widths(widths)?;
    assert_eq!(
        layers.len(),
        widths.len() - 1,
        "pack_params: {} layers for widths {widths:?}",
        layers.len()
    );
    let mut out = Vec::new();
    for (i, (w, b)) in layers.iter().enumerate() {
        let (inp, outp) = (widths[i], widths[i + 1]);
        assert!(
            w.len() == inp * outp && b.len() == outp,
            "pack_params: layer {i} has a weight of {} and a bias of {} elements, expected [{outp}, {inp}] and [{outp}]",
            w.len(),
            b.len()
        );
        out.extend_from_slice(w);
        out.extend_from_slice(b);
    }
    Ok(out)
}

/// Lays out shared memory for `widths` with `chains_per_block` chains and `threads` threads per
/// block. The weights go to shared memory when everything fits in `smem_limit` bytes (rows
/// padded to an odd pitch); otherwise they are read from global memory.
pub fn plan(
    widths: &[usize],
    chains_per_block: usize,
    threads: u32,
    smem_limit: usize,
) -> Result<MlpPlan, CudaError> {
    check_widths(widths)?;
    let l = widths.len() - 1;
    let (d, c) = (widths[0], chains_per_block);
    if c == 0 || c * d > XREG * threads as usize {
        return Err(CudaError::Unsupported(format!(
            "fused MLP sampler: {c} chains of dimension {d} need more than {XREG} coordinates per thread of {threads}"
        )));
    }
    let mut desc = MlpDesc {
        n_layers: l as u32,
        chains_per_block: c as u32,
        ..Default::default()
    };
    for (i, &w) in widths.iter().enumerate() {
        desc.widths[i] = w as u32;
    }
    // global layout
    let mut g = 0usize;
    for i in 0..l {
        desc.g_w_off[i] = check_len(g)?;
        g += widths[i] * widths[i + 1];
        desc.g_b_off[i] = check_len(g)?;
        g += widths[i + 1];
    }
    // activations: X [C, D], Z_i [C, widths[i+1]] for hidden layers, AG [C, max width < L]
    let acts = |base: usize, desc: &mut MlpDesc| -> usize {
        let mut o = base;
        desc.x_off = o as u32;
        o += c * d;
        for i in 0..l.saturating_sub(1) {
            desc.z_off[i] = o as u32;
            o += c * widths[i + 1];
        }
        desc.ag_off = o as u32;
        o += c * widths[..l].iter().copied().max().unwrap_or(d);
        o
    };
    // weights in shared memory, odd pitch
    let mut s = 0usize;
    let mut in_smem = desc;
    for (i, &inp) in widths.iter().enumerate().take(l) {
        let pitch = if inp % 2 == 1 { inp } else { inp + 1 };
        in_smem.pitch[i] = pitch as u32;
        in_smem.w_off[i] = check_len(s)?;
        s += widths[i + 1] * pitch;
        in_smem.b_off[i] = check_len(s)?;
        s += widths[i + 1];
    }
    in_smem.weights_in_smem = 1;
    let total = acts(s, &mut in_smem);
    if total * 4 <= smem_limit {
        return Ok(MlpPlan {
            desc: in_smem,
            smem_bytes: total * 4,
            threads,
        });
    }
    // weights in global memory
    for (i, &inp) in widths.iter().enumerate().take(l) {
        desc.pitch[i] = inp as u32;
        desc.w_off[i] = desc.g_w_off[i];
        desc.b_off[i] = desc.g_b_off[i];
    }
    let total = acts(0, &mut desc);
    if total * 4 > smem_limit {
        return Err(CudaError::Unsupported(format!(
            "fused MLP sampler: activations of {c} chains for widths {widths:?} need {} bytes of shared memory, the limit is {smem_limit}",
            total * 4
        )));
    }
    Ok(MlpPlan {
        desc,
        smem_bytes: total * 4,
        threads,
    })
}

/// An MLP energy uploaded for the fused sampler.
pub struct FusedMlpSampler {
    gpu: Arc<Gpu>,
    widths: Vec<usize>,
    params: CudaSlice<f32>,
    plan: MlpPlan,
}

impl FusedMlpSampler {
    /// Uploads the layers `[(weight [out, in] row-major, bias [out])]` of the SiLU MLP with
    /// `widths` (e.g. `[2, 128, 128, 1]`) and plans the launch: 32 chains per block of 256
    /// threads with the weights in shared memory where they fit, fewer chains otherwise.
    pub fn new(
        gpu: &Arc<Gpu>,
        widths: &[usize],
        layers: &[(&[f32], &[f32])],
    ) -> Result<FusedMlpSampler, CudaError> {
        let packed = pack_params(widths, layers)?;
        let params = gpu.stream().clone_htod(&packed)?;
        let limit = gpu.smem_optin() as usize;
        let mut chosen = None;
        for c in [32usize, 16, 8, 4, 2, 1] {
            if let Ok(p) = plan(widths, c, 256, limit) {
                if p.desc.weights_in_smem == 1 || c == 1 {
                    chosen = Some(p);
                    break;
                }
                chosen.get_or_insert(p);
            }
        }
        let plan = chosen.ok_or_else(|| {
            CudaError::Unsupported(format!("fused MLP sampler: widths {widths:?} do not fit"))
        })?;
        Ok(FusedMlpSampler {
            gpu: gpu.clone(),
            widths: widths.to_vec(),
            params,
            plan,
        })
    }

    /// Replans with `chains` chains per block, `threads` threads, and at most `smem_limit` bytes
    /// of shared memory (the device's limit when `None`; a small limit forces the weights into
    /// global memory). For tuning and tests.
    pub fn with_launch(
        mut self,
        chains: usize,
        threads: u32,
        smem_limit: Option<usize>,
    ) -> Result<FusedMlpSampler, CudaError> {
        let limit = smem_limit.unwrap_or(self.gpu.smem_optin() as usize);
        self.plan = plan(&self.widths, chains, threads, limit)?;
        Ok(self)
    }

    /// The launch plan in use.
    pub fn plan(&self) -> &MlpPlan {
        &self.plan
    }

    /// Runs `steps` Langevin steps x ← x − η∇E(x) + σz on the chains `x` ([n_chains, D] row-major,
    /// f32) in one launch; the noise of step s is the draw `rng.normal(&[n_chains, D])` of
    /// `ebm_core::Rng` at state `state` advanced by s draws. Returns the state after all steps.
    pub fn run(
        &self,
        x: &mut DeviceBuffer,
        steps: usize,
        eta: f64,
        sigma: f64,
        state: PhiloxState,
    ) -> Result<PhiloxState, CudaError> {
        let d = self.widths[0];
        if x.dtype() != DType::F32 || !x.len().is_multiple_of(d) {
            return Err(CudaError::Unsupported(format!(
                "fused MLP sampler: chains must be f32 [n, {d}], got {:?} × {}",
                x.dtype(),
                x.len()
            )));
        }
        let n = x.len() / d;
        let n32 = check_len(n)?;
        check_len(x.len())?;
        let mut after = state;
        for _ in 0..steps {
            after = after.advanced_f32_normal(x.len());
        }
        if n == 0 || steps == 0 {
            return Ok(after);
        }
        let c = self.plan.desc.chains_per_block as usize;
        let name = if self.plan.desc.weights_in_smem == 1 {
            "mlp_langevin_f32"
        } else {
            "mlp_langevin_gw_f32"
        };
        let f = self.gpu.func(name)?;
        if self.plan.smem_bytes > 48 * 1024 {
            f.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                self.plan.smem_bytes as i32,
            )?;
        }
        let cfg = LaunchConfig {
            grid_dim: (check_len(n.div_ceil(c))?, 1, 1),
            block_dim: (self.plan.threads, 1, 1),
            shared_mem_bytes: self.plan.smem_bytes as u32,
        };
        let steps32 = check_len(steps)?;
        let desc = self.plan.desc;
        let (seed, stream, ctr) = (state.seed, state.stream, state.counter);
        let gpu = self.gpu.clone();
        let xs = x.slice_mut::<f32>();
        launch!(gpu, name, cfg;
            xs, &n32, &self.params, &desc, &steps32, &eta, &sigma, &seed, &stream, &ctr)?;
        Ok(after)
    }
}

/// ∇ₓE for one chain on the host, summing in the kernel's order (bias first, then inputs in
/// ascending order; backward over units in ascending order), so that without FMA contraction
/// (the g++ shim) the kernel reproduces it bit for bit.
pub fn reference_grad(widths: &[usize], params: &[f32], x: &[f32]) -> Vec<f32> {
    let l = widths.len() - 1;
    let mut offs = Vec::new();
    let mut g = 0;
    for i in 0..l {
        offs.push((g, g + widths[i] * widths[i + 1]));
        g += widths[i] * widths[i + 1] + widths[i + 1];
    }
    let sigmoid = |z: f32| 1.0 / (1.0 + (-z).exp());
    let silu_d1 = |z: f32| {
        let s = sigmoid(z);
        s * (1.0 + z * (1.0 - s))
    };
    // forward: pre-activations of the hidden layers
    let mut zs: Vec<Vec<f32>> = Vec::new();
    let mut a = x.to_vec();
    for i in 0..l.saturating_sub(1) {
        let (wo, bo) = offs[i];
        let (inp, outp) = (widths[i], widths[i + 1]);
        let z: Vec<f32> = (0..outp)
            .map(|u| {
                let mut acc = params[bo + u];
                for (k, &ak) in a.iter().enumerate().take(inp) {
                    acc += ak * params[wo + u * inp + k];
                }
                acc
            })
            .collect();
        a = z.iter().map(|&v| v * sigmoid(v)).collect();
        zs.push(z);
    }
    if l == 1 {
        return params[offs[0].0..offs[0].0 + widths[0]].to_vec();
    }
    // backward
    let (wl, _) = offs[l - 1];
    let mut delta: Vec<f32> = zs[l - 2]
        .iter()
        .enumerate()
        .map(|(k, &z)| params[wl + k] * silu_d1(z))
        .collect();
    for i in (0..l - 1).rev() {
        let (wo, _) = offs[i];
        let (inp, outp) = (widths[i], widths[i + 1]);
        let gvec: Vec<f32> = (0..inp)
            .map(|k| {
                let mut acc = 0.0f32;
                for (u, &du) in delta.iter().enumerate().take(outp) {
                    acc += du * params[wo + u * inp + k];
                }
                acc
            })
            .collect();
        if i == 0 {
            return gvec;
        }
        delta = gvec
            .iter()
            .zip(&zs[i - 1])
            .map(|(&gk, &z)| gk * silu_d1(z))
            .collect();
    }
    unreachable!("the loop returns at layer 0")
}

/// The sampler on the host: `steps` steps of x ← x + (η·(−∇E) + σ·z) in f32 with the kernel's
/// (and ebm-samplers' ULA) rounding and noise; returns the state after all steps.
pub fn reference_run(
    widths: &[usize],
    params: &[f32],
    x: &mut [f32],
    steps: usize,
    eta: f64,
    sigma: f64,
    state: PhiloxState,
) -> PhiloxState {
    let d = widths[0];
    let (a, b) = (eta as f32, sigma as f32);
    let mut st = state;
    for _ in 0..steps {
        let grads: Vec<f32> = x
            .chunks(d)
            .flat_map(|row| reference_grad(widths, params, row))
            .collect();
        for (i, (xi, g)) in x.iter_mut().zip(grads).enumerate() {
            let z = st.normal_f32_at(i as u64);
            *xi += a * -g + b * z;
        }
        st = st.advanced_f32_normal(x.len());
    }
    st
}
