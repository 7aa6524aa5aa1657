//! Element types: f32 for training, f64 for gradient checks.

use std::fmt::Debug;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float: training.
    F32,
    /// 64-bit IEEE float: gradient checks and references.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// Lower-case name as used by NumPy and safetensors ("f32", "f64").
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A floating-point element stored in a CPU tensor.
pub trait Elem:
    num_traits::Float
    + num_traits::FloatConst
    + Default
    + Debug
    + Send
    + Sync
    + std::iter::Sum
    + 'static
{
    /// The matching runtime tag.
    const DTYPE: DType;
    /// Lossy conversion from f64 (rounding for f32).
    fn of(v: f64) -> Self;
    /// Exact widening to f64.
    fn f64(self) -> f64;
    /// eˣ by the fastest accurate route: a vectorisable polynomial for f32 (≤ 2 ulp), libm
    /// for f64 (gradient checks want the last bit).
    fn exp_fast(self) -> Self;
    /// 1 + e^(−x), the denominator of the sigmoid 1/(1 + e^(−x)): f32 by a shorter polynomial
    /// that saturates at the ends (`fastmath::logistic_denominator_f32`, σ within 2 ulp), f64
    /// by libm.
    fn logistic_denominator(self) -> Self;
    /// ln(1 + t) for t in [0, 1] (softplus's log1p(e^(−|x|))): f32 by a vectorisable
    /// polynomial (`fastmath::ln_1p_unit_f32`, within 2 ulp), f64 by libm.
    fn ln_1p_unit(self) -> Self;
}

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        crate::ops::fastmath::exp_f32(self)
    }
    #[inline(always)]
    fn logistic_denominator(self) -> Self {
        crate::ops::fastmath::logistic_denominator_f32(self)
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        crate::ops::fastmath::ln_1p_unit_f32(self)
    }
}

impl Elem for f64 {
    const DTYPE: DType = DType::F64;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn logistic_denominator(self) -> Self {
        1.0 + (-self).exp()
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        self.ln_1p()
    }
}
