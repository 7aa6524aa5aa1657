//! Differentiable ops on `Var`: one module per family, each op's forward and derivative rule
//! side by side.

pub mod composite;
pub mod conv;
pub mod elementwise;
pub mod layout;
pub mod matmul;
pub mod reduce;
