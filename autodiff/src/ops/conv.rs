//! Convolutions, pooling and upsampling on NCHW `Var`s.
//!
//! The three core ops (`conv2d`, `conv_transpose2d`, `conv2d_weight`) are bilinear, and the
//! partial derivatives of each are the other two (the adjoints of x ↦ x ⋆ w and w ↦ x ⋆ w):
//!
//! | op                       | ∂ first input                   | ∂ second input                |
//! |--------------------------|---------------------------------|-------------------------------|
//! | y = conv2d(x, w)         | ∂x = conv_transpose2d(g, w)     | ∂w = conv2d_weight(x, g)      |
//! | x = conv_transpose2d(u, w) | ∂u = conv2d(g, w)             | ∂w = conv2d_weight(g, u)      |
//! | w = conv2d_weight(x, u)  | ∂x = conv_transpose2d(u, g)     | ∂u = conv2d(x, g)             |
//!
//! Each rule is a `Var` op, so derivatives of any order (Hessian-vector products for sliced
//! score matching, parameter gradients of DSM losses) come out exact.

use crate::tape::Var;
use ebm_core::ops::conv::pool_spec;
use ebm_core::Conv2dSpec;

/// The `output_padding` with which `conv_transpose2d` of an `[.., ho, wo]` tensor gives back
/// `[.., h, w]` under `spec` and a `k` kernel.
fn output_padding(spec: Conv2dSpec, hw: [usize; 2], k: [usize; 2], out: [usize; 2]) -> [usize; 2] {
    [0, 1].map(|a| {
        spec.output_padding_for(a, hw[a], k[a], out[a])
            .expect("a forward conv's input size is always reachable")
    })
}

fn hw(v: &Var) -> [usize; 2] {
    [v.shape()[2], v.shape()[3]]
}

impl Var {
    /// 2-d cross-correlation of `self` `[N, C, H, W]` with `w` `[O, C/groups, kh, kw]`
    /// (PyTorch's `conv2d` without bias).
    pub fn conv2d(&self, w: &Var, spec: Conv2dSpec) -> Var {
        let out = self.value.conv2d(&w.value, spec);
        let (xhw, k, yhw) = (hw(self), hw(w), [out.shape()[2], out.shape()[3]]);
        let op = output_padding(spec, xhw, k, yhw);
        self.tape.record(out, &[self, w], move |g, ins, _, need| {
            vec![
                need[0].then(|| g.conv_transpose2d(&ins[1], spec, op)),
                need[1].then(|| ins[0].conv2d_weight(g, spec, k)),
            ]
        })
    }

    /// `conv2d` plus a per-channel bias `b` `[O]`.
    pub fn conv2d_bias(&self, w: &Var, b: &Var, spec: Conv2dSpec) -> Var {
        let o = b.numel();
        self.conv2d(w, spec).add(&b.reshape(&[1, o, 1, 1]))
    }

    /// The transposed convolution of `self` `[N, Cin, H, W]` with `w` `[Cin, Cout/groups, kh,
    /// kw]` (PyTorch's `conv_transpose2d` without bias).
    pub fn conv_transpose2d(&self, w: &Var, spec: Conv2dSpec, output_padding: [usize; 2]) -> Var {
        let out = self.value.conv_transpose2d(&w.value, spec, output_padding);
        let k = hw(w);
        self.tape.record(out, &[self, w], move |g, ins, _, need| {
            vec![
                need[0].then(|| g.conv2d(&ins[1], spec)),
                need[1].then(|| g.conv2d_weight(&ins[0], spec, k)),
            ]
        })
    }

    /// ∂⟨x ⋆ w, gy⟩/∂w for x = `self` and gy `[N, O, Ho, Wo]`: `[O, C/groups, kernel…]`.
    pub fn conv2d_weight(&self, gy: &Var, spec: Conv2dSpec, kernel: [usize; 2]) -> Var {
        let out = self.value.conv2d_weight(&gy.value, spec, kernel);
        let op = output_padding(spec, hw(self), kernel, hw(gy));
        self.tape.record(out, &[self, gy], move |g, ins, _, need| {
            vec![
                need[0].then(|| ins[1].conv_transpose2d(g, spec, op)),
                need[1].then(|| ins[0].conv2d(g, spec)),
            ]
        })
    }

    /// Average pooling over `kernel` windows, padded zeros counted (PyTorch's `avg_pool2d`
    /// with `count_include_pad=True`).
    pub fn avg_pool2d(&self, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Var {
        let spec = pool_spec(&self.value, stride, padding);
        let w = self
            .value
            .box_kernel(kernel, 1.0 / (kernel[0] * kernel[1]).max(1) as f64);
        self.conv2d(&self.constant(w), spec)
    }

    /// Nearest-neighbour upsampling by integer factors (PyTorch's `interpolate(mode="nearest")`
    /// with an integer `scale_factor`).
    pub fn upsample_nearest2d(&self, factor: [usize; 2]) -> Var {
        let spec = pool_spec(&self.value, factor, [0, 0]);
        let w = self.value.box_kernel(factor, 1.0);
        self.conv_transpose2d(&self.constant(w), spec, [0, 0])
    }

    /// Group normalisation without affine parameters (Wu & He 2018): `self` `[N, C, …]` with
    /// its channels split into `groups`, each (sample, group) normalised to mean 0 and
    /// variance 1 (biased variance, as PyTorch), x̂ = (x − μ)/√(σ² + eps).
    pub fn group_norm(&self, groups: usize, eps: f64) -> Var {
        let s = self.shape().to_vec();
        assert!(
            s.len() >= 2 && groups > 0 && s[1].is_multiple_of(groups),
            "group_norm: input {s:?} does not split into {groups} groups"
        );
        let z = self.reshape(&[s[0], groups, usize::MAX]);
        z.standardize_last(eps).reshape(&s)
    }

    /// Layer normalisation without affine parameters over the last `dims` axes (Ba et al.
    /// 2016), x̂ = (x − μ)/√(σ² + eps) with the biased variance, as PyTorch's `layer_norm`.
    pub fn layer_norm(&self, dims: usize, eps: f64) -> Var {
        let s = self.shape().to_vec();
        assert!(
            dims >= 1 && dims <= s.len(),
            "layer_norm: cannot normalise the last {dims} axes of {s:?}"
        );
        let lead: usize = s[..s.len() - dims].iter().product();
        self.reshape(&[lead, usize::MAX])
            .standardize_last(eps)
            .reshape(&s)
    }

    /// Each row of the last axis shifted to mean 0 and scaled by 1/√(biased variance + eps).
    fn standardize_last(&self, eps: f64) -> Var {
        let r = self.rank() - 1;
        let centred = self.sub(&self.mean(&[r], true));
        let var = centred.square().mean(&[r], true);
        centred.mul(&var.add_scalar(eps).powf(-0.5))
    }
}
