//! The embedded CUDA sources: one NVRTC module per `.cu` file, and every kernel name in it.
//!
//! Kernels are looked up by name at launch time, so the names live in this one table and
//! tests check it against what NVRTC actually emits (every `.entry` of every module, no more,
//! no fewer) and, on a GPU, load every one of them.

/// Headers the sources `#include "…"`; NVRTC gets them by textual expansion (no include
/// paths at run time), g++ through `-I kernels`.
pub const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../kernels/common.cuh")),
    ("philox.cuh", include_str!("../kernels/philox.cuh")),
];

/// One compilation unit: a `.cu` file and the kernels it defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Module {
    pub name: &'static str,
    pub source: &'static str,
    pub kernels: &'static [&'static str],
}

pub const ELEMENTWISE: Module = Module {
    name: "elementwise",
    source: include_str!("../kernels/elementwise.cu"),
    kernels: &[
        "unary_f32",
        "unary_f64",
        "binary_f32",
        "binary_f64",
        "binary_strided_f32",
        "binary_strided_f64",
        "where_f32",
        "where_f64",
        "cast_f32_f64",
        "cast_f64_f32",
        "fill_f32",
        "fill_f64",
    ],
};

pub const REDUCE: Module = Module {
    name: "reduce",
    source: include_str!("../kernels/reduce.cu"),
    kernels: &[
        "reduce_rows_f32",
        "reduce_rows_f64",
        "reduce_cols_f32",
        "reduce_cols_f64",
    ],
};

pub const MATMUL: Module = Module {
    name: "matmul",
    source: include_str!("../kernels/matmul.cu"),
    kernels: &["matmul_tiled_f32", "matmul_tiled_f64"],
};

pub const LAYOUT: Module = Module {
    name: "layout",
    source: include_str!("../kernels/layout.cu"),
    kernels: &[
        "gather_f32",
        "gather_f64",
        "copy_block_f32",
        "copy_block_f64",
        "index_select_f32",
        "index_select_f64",
        "scatter_rows_f32",
        "scatter_rows_f64",
    ],
};

pub const RNG: Module = Module {
    name: "rng",
    source: include_str!("../kernels/rng.cu"),
    kernels: &["rng_f32", "rng_f64"],
};

pub const LANGEVIN: Module = Module {
    name: "langevin",
    source: include_str!("../kernels/langevin.cu"),
    kernels: &["langevin_step_f32", "langevin_step_f64"],
};

pub const MLP_LANGEVIN: Module = Module {
    name: "mlp_langevin",
    source: include_str!("../kernels/mlp_langevin.cu"),
    kernels: &["mlp_langevin_f32", "mlp_langevin_gw_f32"],
};

/// Every module of the crate.
pub const MODULES: &[Module] = &[
    ELEMENTWISE,
    REDUCE,
    MATMUL,
    LAYOUT,
    RNG,
    LANGEVIN,
    MLP_LANGEVIN,
];

/// The module that defines `kernel`.
pub fn module_of(kernel: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.kernels.contains(&kernel))
}

impl Module {
    /// The source with every `#include "header"` of [`HEADERS`] replaced by the header's text
    /// (headers carry include guards, so repeats are harmless).
    pub fn expanded_source(&self) -> String {
        expand(self.source, 0)
    }
}

fn expand(src: &str, depth: usize) -> String {
    assert!(depth < 8, "kernel headers include each other too deeply");
    let mut out = String::with_capacity(src.len() * 2);
    for line in src.lines() {
        let included = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|r| r.strip_suffix('"'))
            .map(|name| {
                HEADERS
                    .iter()
                    .find(|(h, _)| *h == name)
                    .unwrap_or_else(|| panic!("kernel source includes unknown header {name}"))
                    .1
            });
        match included {
            Some(text) => out.push_str(&expand(text, depth + 1)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sources_expand() {
        let mut all: Vec<&str> = MODULES
            .iter()
            .flat_map(|m| m.kernels.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a kernel name appears in two modules");
        for m in MODULES {
            let src = m.expanded_source();
            assert!(!src.contains("#include"), "{}: unexpanded include", m.name);
            for k in m.kernels {
                assert!(
                    src.contains(&format!("void {k}(")),
                    "{}: no kernel {k} in the source",
                    m.name
                );
            }
        }
        assert_eq!(module_of("matmul_tiled_f32"), Some(&MATMUL));
    }
}
