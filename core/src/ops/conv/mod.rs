//! 2-d convolutions on NCHW tensors, with PyTorch's layouts and meanings.
//!
//! Three bilinear ops close under differentiation, so every derivative of a conv net is again
//! made of them (ebm-autodiff writes the rules; this crate runs them):
//!
//! - [`Tensor::conv2d`]: y = x ⋆ w, x `[N, C, H, W]`, w `[O, C/g, kh, kw]`, y `[N, O, Ho, Wo]`;
//! - [`Tensor::conv_transpose2d`]: the adjoint of `x ↦ x ⋆ w` (PyTorch's `conv_transpose2d`,
//!   whose weight `[Cin, Cout/g, kh, kw]` is exactly a forward conv's `[O, C/g, kh, kw]`);
//! - [`Tensor::conv2d_weight`]: the adjoint of `w ↦ x ⋆ w`, i.e. ∂⟨x ⋆ w, g⟩/∂w.
//!
//! With Ho = ⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1:
//! y[n, o, i, j] = Σ_{c ∈ group(o), p, q} w[o, c mod C/g, p, q] · x[n, c, i·s − pad + p·d, j·s − pad + q·d],
//! zero outside the image. Pooling and nearest upsampling are these ops with constant weights
//! (see [`Tensor::avg_pool2d`], [`Tensor::upsample_nearest2d`]).
//!
//! The CPU kernels (`cpu.rs`) lower each op to the project's GEMM over im2col columns of a
//! block of samples; the GPU arm is in `crate::cuda`.

mod cpu;

use crate::profile::{timed_op_flops, OpKind};
use crate::tensor::Tensor;
use crate::with_slices2;

/// Stride, zero padding and dilation (each as `[height, width]`) and groups of a 2-d
/// convolution, meaning what they mean in PyTorch's `nn.functional.conv2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dSpec {
    /// Step between output positions.
    pub stride: [usize; 2],
    /// Zeros added on each side of the input.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels split into this many independent convs.
    pub groups: usize,
}

impl Default for Conv2dSpec {
    fn default() -> Self {
        Conv2dSpec {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2dSpec {
    /// Stride 1, no padding, no dilation, one group.
    pub fn new() -> Self {
        Self::default()
    }
    /// The same stride along both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    /// The same padding along both axes.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }
    /// The same dilation along both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    /// The number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Output length along axis `a` (0 = height) of an input of length `len` and a kernel of
    /// `k` taps; `None` when the dilated kernel does not fit in the padded input.
    pub fn out_len(&self, a: usize, len: usize, k: usize) -> Option<usize> {
        let span = self.dilation[a] * (k.max(1) - 1) + 1;
        let padded = len + 2 * self.padding[a];
        (k > 0 && padded >= span).then(|| (padded - span) / self.stride[a] + 1)
    }

    /// The `output_padding` with which `conv_transpose2d` of an `out_len`-long axis gives
    /// back `len` (the input length of the forward conv), or `None` if no valid one does.
    pub fn output_padding_for(
        &self,
        a: usize,
        len: usize,
        k: usize,
        out_len: usize,
    ) -> Option<usize> {
        let base = (out_len.checked_sub(1)? * self.stride[a] + self.dilation[a] * (k - 1) + 1)
            .checked_sub(2 * self.padding[a])?;
        let op = len.checked_sub(base)?;
        (op < self.stride[a]).then_some(op)
    }

    fn valid(&self) -> bool {
        self.groups > 0 && self.stride.iter().chain(&self.dilation).all(|&v| v > 0)
    }
}

/// Every size of one forward convolution: input `[n, c, h, w]`, weight `[o, c/groups, kh, kw]`,
/// output `[n, o, ho, wo]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
    pub(crate) spec: Conv2dSpec,
}

impl ConvGeom {
    /// Input channels per group.
    pub(crate) fn cg(&self) -> usize {
        self.c / self.spec.groups
    }
    /// Output channels per group.
    pub(crate) fn og(&self) -> usize {
        self.o / self.spec.groups
    }
    /// Rows of the im2col matrix of one group: (c/g)·kh·kw.
    pub(crate) fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Output positions per sample.
    pub(crate) fn l(&self) -> usize {
        self.ho * self.wo
    }
    /// 2·N·O·Ho·Wo·(C/g)·kh·kw: the multiply-adds of each of the three ops.
    fn flops(&self) -> u64 {
        2 * (self.n * self.o * self.l() * self.k()) as u64
    }
    fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    fn weight_shape(&self) -> [usize; 4] {
        [self.o, self.cg(), self.kh, self.kw]
    }
    fn output_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.ho, self.wo]
    }

    /// The geometry of `x ⋆ w`, or `None` if the shapes do not fit.
    fn of(x: &[usize], w: &[usize], spec: Conv2dSpec) -> Option<ConvGeom> {
        if x.len() != 4 || w.len() != 4 || !spec.valid() {
            return None;
        }
        let g = spec.groups;
        let (c, o) = (x[1], w[0]);
        if !c.is_multiple_of(g) || !o.is_multiple_of(g) || w[1] * g != c {
            return None;
        }
        Some(ConvGeom {
            n: x[0],
            c,
            h: x[2],
            w: x[3],
            o,
            kh: w[2],
            kw: w[3],
            ho: spec.out_len(0, x[2], w[2])?,
            wo: spec.out_len(1, x[3], w[3])?,
            spec,
        })
    }
}

fn label(op: &str, a: &Tensor, b: &Tensor, spec: &Conv2dSpec) -> String {
    format!(
        "{op} {:?}⋆{:?} s{:?} p{:?} d{:?} g{}",
        a.shape(),
        b.shape(),
        spec.stride,
        spec.padding,
        spec.dilation,
        spec.groups
    )
}

impl Tensor {
    /// 2-d cross-correlation of `self` `[N, C, H, W]` with `w` `[O, C/groups, kh, kw]`:
    /// `[N, O, Ho, Wo]` (PyTorch's `conv2d` without bias). Panics naming both shapes when
    /// they do not fit.
    pub fn conv2d(&self, w: &Tensor, spec: Conv2dSpec) -> Tensor {
        let g = ConvGeom::of(self.shape(), w.shape(), spec).unwrap_or_else(|| {
            panic!(
                "conv2d: input {:?} and weight {:?} do not fit {spec:?}",
                self.shape(),
                w.shape()
            )
        });
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::conv(self, w, &g, crate::cuda::ConvOp::Forward) {
            return t;
        }
        timed_op_flops(
            OpKind::Matmul,
            || label("conv2d", self, w, &spec),
            g.flops(),
            || {
                with_slices2!("conv2d", self, w, |x, wv| {
                    Tensor::from_vec(cpu::forward(&g, x, wv), &g.output_shape())
                })
            },
        )
    }

    /// The transposed convolution of `self` `[N, Cin, H, W]` with `w` `[Cin, Cout/groups, kh,
    /// kw]` (PyTorch's `conv_transpose2d` without bias): the adjoint of `conv2d` in its input,
    /// of output `[N, Cout, (H−1)s − 2p + d(k−1) + output_padding + 1, …]`. `output_padding`
    /// must be below the stride (PyTorch also allows it below the dilation; the op is then no
    /// longer the adjoint of a conv2d, and is not offered).
    pub fn conv_transpose2d(
        &self,
        w: &Tensor,
        spec: Conv2dSpec,
        output_padding: [usize; 2],
    ) -> Tensor {
        let bad = || {
            panic!(
                "conv_transpose2d: input {:?} and weight {:?} do not fit {spec:?} with \
                 output_padding {output_padding:?}",
                self.shape(),
                w.shape()
            )
        };
        let (u, ws) = (self.shape(), w.shape());
        if u.len() != 4 || ws.len() != 4 || !spec.valid() {
            bad();
        }
        let full = |a: usize| {
            let base = (u[2 + a].checked_sub(1)? * spec.stride[a]
                + spec.dilation[a] * ws[2 + a].checked_sub(1)?
                + output_padding[a]
                + 1)
            .checked_sub(2 * spec.padding[a])?;
            (output_padding[a] < spec.stride[a]).then_some(base)
        };
        let (Some(h), Some(wd)) = (full(0), full(1)) else {
            bad()
        };
        let x = [u[0], ws[1] * spec.groups, h, wd];
        let g = ConvGeom::of(&x, ws, spec)
            .filter(|g| g.o == u[1] && g.ho == u[2] && g.wo == u[3])
            .unwrap_or_else(|| bad());
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::conv(self, w, &g, crate::cuda::ConvOp::InputGrad) {
            return t;
        }
        timed_op_flops(
            OpKind::Matmul,
            || label("conv_transpose2d", self, w, &spec),
            g.flops(),
            || {
                with_slices2!("conv_transpose2d", self, w, |gy, wv| {
                    Tensor::from_vec(cpu::input_grad(&g, gy, wv), &g.input_shape())
                })
            },
        )
    }

    /// ∂⟨x ⋆ w, gy⟩/∂w for x = `self` `[N, C, H, W]` and gy `[N, O, Ho, Wo]`: the weight
    /// gradient of `conv2d`, `[O, C/groups, kernel[0], kernel[1]]`.
    pub fn conv2d_weight(&self, gy: &Tensor, spec: Conv2dSpec, kernel: [usize; 2]) -> Tensor {
        let ws = [
            gy.shape().get(1).copied().unwrap_or(0),
            self.shape().get(1).copied().unwrap_or(0) / spec.groups.max(1),
            kernel[0],
            kernel[1],
        ];
        let g = ConvGeom::of(self.shape(), &ws, spec)
            .filter(|g| gy.shape() == g.output_shape())
            .unwrap_or_else(|| {
                panic!(
                    "conv2d_weight: input {:?} and output gradient {:?} do not fit a \
                     {kernel:?} kernel with {spec:?}",
                    self.shape(),
                    gy.shape()
                )
            });
        #[cfg(feature = "cuda")]
        if let Some(t) = crate::cuda::conv(self, gy, &g, crate::cuda::ConvOp::WeightGrad) {
            return t;
        }
        timed_op_flops(
            OpKind::Matmul,
            || label("conv2d_weight", self, gy, &spec),
            g.flops(),
            || {
                with_slices2!("conv2d_weight", self, gy, |x, gyv| {
                    Tensor::from_vec(cpu::weight_grad(&g, x, gyv), &g.weight_shape())
                })
            },
        )
    }

    /// The `[C, 1, k, k]` weight of `k×k` means (or sums, `scale` = 1) over each channel.
    pub fn box_kernel(&self, k: [usize; 2], scale: f64) -> Tensor {
        let c = self.shape().get(1).copied().unwrap_or(0);
        Tensor::full(&[c, 1, k[0], k[1]], scale, self.dtype()).to_device(self.device())
    }

    /// Average pooling of `self` `[N, C, H, W]` over `kernel` windows, counting padded zeros
    /// (PyTorch's `avg_pool2d` with `count_include_pad=True`): a grouped conv with a constant
    /// weight 1/(kh·kw).
    pub fn avg_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Tensor {
        let spec = pool_spec(self, stride, padding);
        let w = self.box_kernel(kernel, 1.0 / (kernel[0] * kernel[1]).max(1) as f64);
        self.conv2d(&w, spec)
    }

    /// Nearest-neighbour upsampling of `self` `[N, C, H, W]` by integer factors to
    /// `[N, C, fh·H, fw·W]`: a grouped transposed conv with a constant `fh×fw` weight of ones.
    pub fn upsample_nearest2d(&self, factor: [usize; 2]) -> Tensor {
        let spec = pool_spec(self, factor, [0, 0]);
        self.conv_transpose2d(&self.box_kernel(factor, 1.0), spec, [0, 0])
    }
}

/// The depthwise spec (one group per channel) of a pooling or upsampling of `x`.
pub fn pool_spec(x: &Tensor, stride: [usize; 2], padding: [usize; 2]) -> Conv2dSpec {
    assert!(
        x.rank() == 4,
        "pooling: input {:?} is not [N, C, H, W]",
        x.shape()
    );
    Conv2dSpec {
        stride,
        padding,
        dilation: [1, 1],
        groups: x.shape()[1].max(1),
    }
}

#[cfg(test)]
mod tests;
