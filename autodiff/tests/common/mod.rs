//! Helpers shared by the fixture tests: loading the reference values under `tests/data/`.

use ebm_core::Tensor;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;

/// Every tensor of a safetensors file under `tests/data/`, as f32 or f64 `Tensor`s.
pub fn load(file: &str) -> HashMap<String, Tensor> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("parsing {path}: {e}"));
    st.iter()
        .map(|(name, view)| {
            let data = view.data();
            let t = match view.dtype() {
                Dtype::F32 => Tensor::from_vec(
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect::<Vec<_>>(),
                    view.shape(),
                ),
                Dtype::F64 => Tensor::from_vec(
                    data.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect::<Vec<_>>(),
                    view.shape(),
                ),
                other => panic!("{path}: tensor {name} has unsupported dtype {other:?}"),
            };
            (name.to_string(), t)
        })
        .collect()
}
