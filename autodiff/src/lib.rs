//! # ebm-autodiff: reverse mode to any order
//!
//! A [`Tape`] records every op on [`Var`]s with a derivative rule written in `Var` ops. A
//! backward sweep with [`GradOpts::create_graph`] is itself recorded, so its results can be
//! differentiated again: Hessian diagonals for exact score matching, Hessian-vector products
//! for sliced score matching, and parameter gradients of losses built from input gradients
//! (denoising score matching) all come from the same rules.
//!
//! ```
//! use ebm_autodiff::{grad, grad_with, hessian_diag, GradOpts, Tape};
//! use ebm_core::Tensor;
//!
//! let tape = Tape::new();
//! let x = tape.var(Tensor::from_vec(vec![0.5f64, -1.0, 2.0, 0.1], &[2, 2]));
//! // E(x) = Σᵢ log cosh-like energy: softplus(x)² per row
//! let energy = x.softplus().square().sum(&[1], false);           // [2]
//! let g = grad_with(&energy.sum_all(), &[&x], GradOpts::create_graph()).remove(0);
//! let d2 = grad(&g.sum_all(), &[&x]).remove(0);                  // Σⱼ ∂²E/∂xᵢ∂xⱼ
//! let h = hessian_diag(&energy, &x, GradOpts::default());        // ∂²E/∂xᵢ²
//! assert_eq!(h.shape(), &[2, 2]);
//! assert!((d2.value().to_vec_f64()[0] - h.value().to_vec_f64()[0]).abs() < 1e-12);
//! ```
//!
//! Unrelated inputs cost nothing: a sweep only visits nodes that depend on the requested
//! inputs, and rules skip cotangents nobody asked for. [`Tape::no_grad`] and [`Var::detach`]
//! stop recording. [`gradcheck`] and [`gradgradcheck`] check a researcher's own energy.

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod check;
pub mod grad;
pub mod ops;
pub mod tape;

pub use check::{gradcheck, gradgradcheck, CheckError, CheckOpts};
pub use grad::{grad, grad_with, hessian_diag, hessian_diag_from_grad, hvp, jvp, vjp, GradOpts};
pub use tape::{BackwardFn, Tape, Var};
