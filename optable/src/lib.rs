//! # ebm-optable: element-wise ops, declared once
//!
//! Every element-wise op is one row of a table: [`unary_ops!`] (one input, at most two constant
//! parameters) or [`binary_ops!`] (two inputs, broadcast). A row reads
//!
//! ```text
//! /// Doc line: becomes the doc of the enum variant and of the tensor method.
//! Variant(param: type = example, …) = code, method: |x| cpu form, "CUDA expression";
//! ```
//!
//! and everything else about the op is generated from it:
//! - here: the [`UnaryOp`] / [`BinaryOp`] enums, used as they are by ebm-core and by ebm-cuda (one
//!   enum per family, so there is no CPU↔GPU mapping to keep in sync), each op's kernel code
//!   and arguments, an instance of every op for tests ([`UnaryOp::EXAMPLES`], [`BinaryOp::ALL`]),
//!   and [`CUDA_HEADERS`]: the C enums and `switch`es that NVRTC and the g++ shim compile;
//! - in ebm-core, which expands the tables with a generator of its own: the CPU loop of every op
//!   and its `Tensor` method.
//!
//! Adding an op takes a row here, its derivative rule in ebm-autodiff, and a proptest row.
//!
//! Why a `macro_rules!` table and not a build script writing the `.cu` header: the CPU forms are
//! Rust expressions that must compile inside ebm-core's loops (inlined, vectorised), and a
//! macro hands them over as tokens; a build script would need a second table format for them.
//! The C text is assembled by `concat!` at compile time, so no generated file exists on disk:
//! ebm-cuda embeds [`CUDA_HEADERS`] like its other headers, and the shim tests write them out
//! for g++.
//!
//! ## The two forms of a row
//! - **CPU**: a closure over `T: ebm_core::Elem` (f32 or f64), compiled in ebm-core. It may use
//!   `Elem` / `num_traits::Float` methods (`exp_fast`, `ln_1p`, …), `T::zero()` / `T::one()` and
//!   the scalar helpers of ebm-core's `ops/scalar.rs` (`sigmoid`, `silu_d1`, …). An f64
//!   parameter arrives converted to `T`, an i32 one unchanged.
//! - **CUDA**: a C++ expression for `T` = `float` or `double`, compiled by NVRTC and by g++. It
//!   sees `x` (or `a`, `b`) and the row's parameters under their Rust names (as `T` for f64, `int`
//!   for i32; so no parameter may be called `x`, `arg0` or `arg1`). It may call the `ebm_*`
//!   helpers of kernels/common.cuh or the C math functions, which both compilers overload by type
//!   (`expm1(x)` with a `float` x is `expm1f`: the f32 kernel stays in f32).

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

/// The one-input element-wise ops: expands to `$generate! { rows }`, one row per op (see the
/// crate docs for the row format). Kernel codes are unique (checked at compile time).
#[macro_export]
macro_rules! unary_ops {
    ($generate:ident) => {
        $generate! {
            /// −x.
            Neg = 0, neg: |x| -x, "-x";
            /// eˣ.
            Exp = 1, exp: |x| x.exp_fast(), "ebm_exp(x)";
            /// ln x.
            Log = 2, log: |x| x.ln(), "ebm_log(x)";
            /// √x.
            Sqrt = 3, sqrt: |x| x.sqrt(), "ebm_sqrt(x)";
            /// tanh x.
            Tanh = 4, tanh: |x| x.tanh(), "ebm_tanh(x)";
            /// σ(x) = 1/(1 + e⁻ˣ), without overflow for either sign.
            Sigmoid = 5, sigmoid: |x| sigmoid(x), "ebm_sigmoid(x)";
            /// softplus(x) = log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|}).
            Softplus = 6, softplus: |x| softplus(x),
                "ebm_max(x, T(0)) + ebm_log1p(ebm_exp(-ebm_abs(x)))";
            /// SiLU (swish): x·σ(x).
            Silu = 7, silu: |x| x * sigmoid(x), "x * ebm_sigmoid(x)";
            /// silu′(x) = σ(x)(1 + x(1 − σ(x))).
            SiluD1 = 8, silu_d1: |x| silu_d1(x), "ebm_silu_d1(x)";
            /// silu″(x) = σ(1 − σ)(2 + x(1 − 2σ)).
            SiluD2 = 9, silu_d2: |x| silu_d2(x), "ebm_silu_d2(x)";
            /// max(x, 0).
            Relu = 10, relu: |x| x.max(T::zero()), "ebm_max(x, T(0))";
            /// |x|.
            Abs = 11, abs: |x| x.abs(), "ebm_abs(x)";
            /// −1, 0 or 1 (0 for NaN).
            Sign = 12, sign: |x| sign(x), "x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0))";
            /// 1 where x > 0, else 0 (the derivative of relu).
            Step = 13, step: |x| if x > T::zero() { T::one() } else { T::zero() },
                "x > T(0) ? T(1) : T(0)";
            /// sin x.
            Sin = 14, sin: |x| x.sin(), "ebm_sin(x)";
            /// cos x.
            Cos = 15, cos: |x| x.cos(), "ebm_cos(x)";
            /// 1/x.
            Recip = 16, recip: |x| T::one() / x, "T(1) / x";
            /// x².
            Square = 17, square: |x| x * x, "x * x";
            /// xᵖ for a constant p (p = 2, 1, ½ and small integers take exact routes on every
            /// device: [`UnaryOp::lowered`]).
            Powf(p: f64 = 1.7) = 18, powf: |x| x.powf(p), "ebm_pow(x, p)";
            /// xⁿ by repeated squaring (the rounding sequence of Rust's `powi`).
            PowInt(n: i32 = -3) = 19, powi: |x| powi(x, n), "ebm_powi(x, n)";
            /// x + c for a constant c.
            AddScalar(c: f64 = 0.37) = 20, add_scalar: |x| x + c, "ebm_add_rn(x, c)";
            /// c·x for a constant c.
            MulScalar(c: f64 = -1.7) = 21, mul_scalar: |x| x * c, "ebm_mul_rn(x, c)";
            /// a·x + b for constants a, b (rounded after the product: no fused multiply-add).
            Affine(a: f64 = 0.37, b: f64 = -1.25) = 22, affine: |x| a * x + b,
                "ebm_add_rn(ebm_mul_rn(a, x), b)";
            /// ln(1 + x), accurate for small x.
            Log1p = 23, log1p: |x| x.ln_1p(), "log1p(x)";
            /// eˣ − 1, accurate for small x.
            Expm1 = 24, expm1: |x| x.exp_m1(), "expm1(x)";
        }
    };
}

/// The two-input element-wise ops, broadcast NumPy-style: expands to `$generate! { rows }`, one
/// row per op (see the crate docs for the row format). Kernel codes are unique (checked at
/// compile time).
#[macro_export]
macro_rules! binary_ops {
    ($generate:ident) => {
        $generate! {
            /// a + b.
            Add = 0, add: |a, b| a + b, "a + b";
            /// a − b.
            Sub = 1, sub: |a, b| a - b, "a - b";
            /// a · b.
            Mul = 2, mul: |a, b| a * b, "a * b";
            /// a / b.
            Div = 3, div: |a, b| a / b, "a / b";
            /// max(a, b), ignoring a NaN operand (as `f32::max`).
            Maximum = 4, maximum: |a, b| a.max(b), "ebm_max(a, b)";
            /// min(a, b), ignoring a NaN operand (as `f32::min`).
            Minimum = 5, minimum: |a, b| a.min(b), "ebm_min(a, b)";
            /// 1 where a > b, else 0 (in the inputs' dtype).
            Gt = 6, gt: |a, b| flag(a > b), "a > b ? T(1) : T(0)";
            /// 1 where a ≥ b, else 0.
            Ge = 7, ge: |a, b| flag(a >= b), "a >= b ? T(1) : T(0)";
            /// 1 where a < b, else 0.
            Lt = 8, lt: |a, b| flag(a < b), "a < b ? T(1) : T(0)";
            /// 1 where a ≤ b, else 0.
            Le = 9, le: |a, b| flag(a <= b), "a <= b ? T(1) : T(0)";
            /// 1 where a = b, else 0.
            Eq = 10, eq_mask: |a, b| flag(a == b), "a == b ? T(1) : T(0)";
            /// a · silu′(b): SiLU's backward in one pass.
            MulSiluD1 = 11, mul_silu_d1: |a, b| a * silu_d1(b), "a * ebm_silu_d1(b)";
            /// a · silu″(b).
            MulSiluD2 = 12, mul_silu_d2: |a, b| a * silu_d2(b), "a * ebm_silu_d2(b)";
            /// a · silu‴(b).
            MulSiluD3 = 13, mul_silu_d3: |a, b| a * silu_d3(b), "a * ebm_silu_d3(b)";
        }
    };
}

/// A kernel argument: every parameter travels to the unary kernel as an f64.
trait KernelArg {
    fn kernel_arg(self) -> f64;
}

impl KernelArg for f64 {
    fn kernel_arg(self) -> f64 {
        self
    }
}

impl KernelArg for i32 {
    fn kernel_arg(self) -> f64 {
        self.into()
    }
}

/// Fails compilation when two ops of a family share a kernel code.
const fn assert_unique(codes: &[i32]) {
    let mut i = 0;
    while i < codes.len() {
        let mut j = i + 1;
        while j < codes.len() {
            assert!(
                codes[i] != codes[j],
                "two ops of one table share a kernel code"
            );
            j += 1;
        }
        i += 1;
    }
}

/// The C declarations binding a row's parameters to the kernel's `arg0` and `arg1`.
macro_rules! c_bind {
    () => { "" };
    ($a:ident: $at:ident) => { c_bind!(@ $a $at arg0) };
    ($a:ident: $at:ident, $b:ident: $bt:ident) => {
        concat!(c_bind!(@ $a $at arg0), c_bind!(@ $b $bt arg1))
    };
    (@ $a:ident f64 $v:ident) => {
        concat!("const T ", stringify!($a), " = ", stringify!($v), "; ")
    };
    (@ $a:ident i32 $v:ident) => {
        concat!("const int ", stringify!($a), " = (int)", stringify!($v), "; ")
    };
}

/// Generates [`UnaryOp`], its kernel codes and the unary half of [`CUDA_HEADERS`].
macro_rules! define_unary {
    ($(
        $(#[$doc:meta])*
        $op:ident $(($($p:ident: $pt:ident = $ex:expr),*))? = $code:literal, $method:ident:
            |$x:ident| $cpu:expr, $cuda:literal;
    )*) => {
        /// A one-input element-wise function: one row of [`unary_ops!`].
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum UnaryOp {
            $($(#[$doc])* $op $(($($pt),*))?,)*
        }

        impl UnaryOp {
            /// Every op once, with each row's example parameters, in table order.
            pub const EXAMPLES: &'static [UnaryOp] = &[$(UnaryOp::$op $(($($ex),*))?),*];

            /// The op's name in the table.
            pub fn name(self) -> &'static str {
                match self {
                    $(UnaryOp::$op { .. } => stringify!($op),)*
                }
            }

            /// The `Tensor` method that applies it.
            pub fn method(self) -> &'static str {
                match self {
                    $(UnaryOp::$op { .. } => stringify!($method),)*
                }
            }

            /// The op's code in the CUDA switch.
            pub fn code(self) -> i32 {
                match self {
                    $(UnaryOp::$op { .. } => $code,)*
                }
            }

            /// (code, p, q) as the unary kernel takes them: the parameters in order, as f64.
            pub fn kernel_args(self) -> (i32, f64, f64) {
                match self {
                    $(UnaryOp::$op $(($($p),*))? => {
                        let args = [$($(KernelArg::kernel_arg($p),)*)? 0.0, 0.0];
                        ($code, args[0], args[1])
                    })*
                }
            }
        }

        const _: () = assert_unique(&[$($code),*]);

        const UNARY_CUH: &str = concat!(
            "// The unary op table of ebm-optable (optable/src/lib.rs), generated: do not edit.\n",
            "#ifndef EBM_UNARY_OPS_CUH\n#define EBM_UNARY_OPS_CUH\n\n",
            "enum UnaryCode {\n",
            $("    U_", stringify!($op), " = ", $code, ",\n",)*
            "};\n\n",
            "template <typename T> __device__ __forceinline__ T unary_apply(int op, T x, T arg0, T arg1) {\n",
            "    switch (op) {\n",
            $(
                "    case U_", stringify!($op), ": { ", c_bind!($($($p: $pt),*)?),
                "return ", $cuda, "; }\n",
            )*
            "    default: return x; // unreachable: every code of the table has its case\n",
            "    }\n}\n\n#endif\n"
        );
    };
}

/// Generates [`BinaryOp`], its kernel codes and the binary half of [`CUDA_HEADERS`].
macro_rules! define_binary {
    ($(
        $(#[$doc:meta])*
        $op:ident = $code:literal, $method:ident: |$a:ident, $b:ident| $cpu:expr, $cuda:literal;
    )*) => {
        /// A two-input element-wise function, broadcast NumPy-style: one row of [`binary_ops!`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum BinaryOp {
            $($(#[$doc])* $op,)*
        }

        impl BinaryOp {
            /// Every op, in table order.
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$op),*];

            /// The op's name in the table.
            pub fn name(self) -> &'static str {
                match self {
                    $(BinaryOp::$op => stringify!($op),)*
                }
            }

            /// The `Tensor` method that applies it.
            pub fn method(self) -> &'static str {
                match self {
                    $(BinaryOp::$op => stringify!($method),)*
                }
            }

            /// The op's code in the CUDA switch.
            pub fn code(self) -> i32 {
                match self {
                    $(BinaryOp::$op => $code,)*
                }
            }
        }

        const _: () = assert_unique(&[$($code),*]);

        const BINARY_CUH: &str = concat!(
            "// The binary op table of ebm-optable (optable/src/lib.rs), generated: do not edit.\n",
            "#ifndef EBM_BINARY_OPS_CUH\n#define EBM_BINARY_OPS_CUH\n\n",
            "enum BinaryCode {\n",
            $("    B_", stringify!($op), " = ", $code, ",\n",)*
            "};\n\n",
            "template <typename T> __device__ __forceinline__ T binary_apply(int op, T a, T b) {\n",
            "    switch (op) {\n",
            $("    case B_", stringify!($op), ": return ", $cuda, ";\n",)*
            "    default: return a; // unreachable: every code of the table has its case\n",
            "    }\n}\n\n#endif\n"
        );
    };
}

unary_ops!(define_unary);
binary_ops!(define_binary);

/// The generated C headers, (file name, text): `unary_apply` and `binary_apply`, the `switch`es
/// the element-wise kernels (kernels/elementwise.cu) call, and the code enums. They use the
/// `ebm_*` helpers of kernels/common.cuh, which must be included first.
pub const CUDA_HEADERS: [(&str, &str); 2] =
    [("unary_ops.cuh", UNARY_CUH), ("binary_ops.cuh", BINARY_CUH)];

impl UnaryOp {
    /// The op every device runs in place of this one: xᵖ with p = 2 is x·x, with p = 1 a
    /// multiplication by 1 (a copy), with p = ½ a square root, and with any other integer p up
    /// to 16 in magnitude repeated squaring; every other op is itself. Exact routes, taken the
    /// same way on every device.
    pub fn lowered(self) -> UnaryOp {
        match self {
            UnaryOp::Powf(2.0) => UnaryOp::Square,
            UnaryOp::Powf(1.0) => UnaryOp::MulScalar(1.0),
            UnaryOp::Powf(0.5) => UnaryOp::Sqrt,
            UnaryOp::Powf(p) if p.fract() == 0.0 && p.abs() <= 16.0 => UnaryOp::PowInt(p as i32),
            op => op,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated C header of a family lists every op of the Rust enum with the same code,
    /// in table order, and has exactly one `case` for each.
    fn check_header(header: &str, prefix: &str, ops: &[(&str, i32)]) {
        let entries: Vec<(String, i32)> = header
            .lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .filter_map(|l| {
                let (name, code) = l.trim_end_matches(',').split_once(" = ")?;
                Some((name.to_string(), code.parse().ok()?))
            })
            .collect();
        let want: Vec<(String, i32)> = ops.iter().map(|&(n, c)| (n.to_string(), c)).collect();
        assert_eq!(entries, want);
        for (name, _) in ops {
            let case = format!("case {prefix}{name}: ");
            assert_eq!(header.matches(&case).count(), 1, "{case}");
        }
    }

    #[test]
    fn c_enums_and_switches_agree_with_the_rust_enums() {
        let unary: Vec<(&str, i32)> = UnaryOp::EXAMPLES
            .iter()
            .map(|op| (op.name(), op.code()))
            .collect();
        check_header(UNARY_CUH, "U_", &unary);
        let binary: Vec<(&str, i32)> = BinaryOp::ALL
            .iter()
            .map(|op| (op.name(), op.code()))
            .collect();
        check_header(BINARY_CUH, "B_", &binary);
    }

    #[test]
    fn parameters_bind_by_position() {
        assert_eq!(UnaryOp::Affine(2.0, -3.0).kernel_args(), (22, 2.0, -3.0));
        assert_eq!(UnaryOp::PowInt(-3).kernel_args(), (19, -3.0, 0.0));
        assert_eq!(UnaryOp::Exp.kernel_args(), (1, 0.0, 0.0));
        assert!(UNARY_CUH.contains("case U_Affine: { const T a = arg0; const T b = arg1; return"));
        assert!(UNARY_CUH.contains("case U_PowInt: { const int n = (int)arg0; return"));
    }

    #[test]
    fn lowering_takes_the_exact_routes() {
        assert_eq!(UnaryOp::Powf(2.0).lowered(), UnaryOp::Square);
        assert_eq!(UnaryOp::Powf(1.0).lowered(), UnaryOp::MulScalar(1.0));
        assert_eq!(UnaryOp::Powf(0.5).lowered(), UnaryOp::Sqrt);
        assert_eq!(UnaryOp::Powf(-3.0).lowered(), UnaryOp::PowInt(-3));
        assert_eq!(UnaryOp::Powf(17.0).lowered(), UnaryOp::Powf(17.0));
        assert_eq!(UnaryOp::Powf(1.5).lowered(), UnaryOp::Powf(1.5));
        assert_eq!(UnaryOp::Exp.lowered(), UnaryOp::Exp);
    }
}
