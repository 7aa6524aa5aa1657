//! The conv cells' side of `ebm-bench` (issue 14): building a spec's network, and the reference
//! batch that bench/python/conv_check.py compares the JAX and PyTorch energies against.

use crate::spec::{Data, Spec};
use ebm_autodiff::Tape;
use ebm_core::{DType, Rng, Tensor};
use ebm_data::Digits;
use ebm_nn::{
    energy_and_score_on_tape, param_grads, write_tensors, ConvEnergy, Mlp, MlpConfig, Model,
};
use ebm_objectives::DenoisingScoreMatching;

/// The network of `sp` in `dtype`: its conv energy, or the MLP of its widths.
pub fn build_model(sp: &Spec, rng: &mut Rng, dtype: DType) -> Box<dyn Model> {
    match &sp.conv {
        Some(c) => Box::new(ConvEnergy::with_dtype(c.clone(), rng, dtype)),
        None => Box::new(Mlp::with_dtype(MlpConfig::new(&sp.widths), rng, dtype)),
    }
}

/// Rows of the check batch.
const CHECK_ROWS: usize = 8;
/// The DSM noise scale of the benchmark (σ of `dsm`).
const DSM_SIGMA: f64 = 0.1;

/// Writes to `path` (safetensors, f64) the parameters of `sp`'s network as built from `seed`
/// (`param.<name>`, names of a PyTorch module tree), a batch `x` of 8 rows of the spec's data,
/// noise `z`, and ebm's values on them: `energy` = E(x), `score_xt` = −∇ₓE at xt = x + σz,
/// `dsm_loss` = ½ mean_b ‖s(xt) + (xt − x)/σ²‖² as the `dsm` workload's objective computes it
/// (σ = 0.1, [`DenoisingScoreMatching::loss_with_noise`]) and its parameter gradients
/// (`grad.<name>`).
pub fn write_check(sp: &Spec, seed: u64, path: &str) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let model = build_model(sp, &mut rng, DType::F64);
    let d = sp.widths[0];
    let x = match sp.data {
        Data::Digits => {
            let all = Digits::load()
                .map_err(|e| e.to_string())?
                .scaled(DType::F64);
            all.index_select(&rng.indices(CHECK_ROWS, all.shape()[0]))
        }
        Data::Uniform => rng.uniform(&[CHECK_ROWS, d], 0.0, 1.0, DType::F64),
        _ => rng.normal(&[CHECK_ROWS, d], DType::F64),
    };
    let z = rng.normal(&[CHECK_ROWS, d], DType::F64);
    let xt = x.add(&z.mul_scalar(DSM_SIGMA));
    let ebm_nn::ModelRef::Energy(energy) = model.view() else {
        return Err("the check needs an energy model".into());
    };
    let (e, _) = energy_and_score_on_tape(energy, &x);
    let (_, s) = energy_and_score_on_tape(energy, &xt);
    let tape = Tape::new();
    let p = model.params().bind(&tape);
    let loss = DenoisingScoreMatching::new(DSM_SIGMA).loss_with_noise(&tape, energy, &p, &x, &z);
    let grads = param_grads(&loss, &p);
    let names = model.params().names();
    let mut out: Vec<(String, Tensor)> = model
        .params()
        .iter()
        .map(|(n, t)| (format!("param.{n}"), t.clone()))
        .chain(
            names
                .iter()
                .zip(grads)
                .map(|(n, g)| (format!("grad.{n}"), g)),
        )
        .collect();
    out.extend([
        ("x".to_string(), x),
        ("z".to_string(), z),
        ("energy".to_string(), e),
        ("score_xt".to_string(), s),
        ("dsm_loss".to_string(), loss.value().clone()),
    ]);
    write_tensors(path, &out, None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::spec;

    /// The names bench/python/conv_models.py's `layers` gives C8 and R28: a renamed parameter
    /// in ebm would stop the JAX/PyTorch weights from loading.
    #[test]
    fn conv_models_have_the_python_side_names() {
        let names = |m: &str| -> Vec<String> {
            let model = build_model(&spec(m).unwrap(), &mut Rng::new(0), DType::F32);
            model.params().names().to_vec()
        };
        let layers = |ls: &[&str]| -> Vec<String> {
            ls.iter()
                .flat_map(|l| [format!("{l}.weight"), format!("{l}.bias")])
                .collect()
        };
        let c8 = layers(&["conv_in", "stages.0.conv", "stages.1.conv", "head"]);
        assert_eq!(names("C8"), c8);
        let mut r28 = names("R28");
        r28.sort();
        let mut want = layers(&[
            "conv_in",
            "stages.0.blocks.0.norm1",
            "stages.0.blocks.0.conv1",
            "stages.0.blocks.0.norm2",
            "stages.0.blocks.0.conv2",
            "stages.1.blocks.0.norm1",
            "stages.1.blocks.0.conv1",
            "stages.1.blocks.0.norm2",
            "stages.1.blocks.0.conv2",
            "stages.1.blocks.0.shortcut",
            "head",
        ]);
        want.sort();
        assert_eq!(r28, want);
    }

    /// The check file holds every parameter and its DSM gradient, the batch and ebm's values.
    #[test]
    fn write_check_writes_parameters_gradients_and_values() {
        let dir = std::env::temp_dir().join(format!("ebm-bench-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c8.safetensors");
        write_check(&spec("C8").unwrap(), 3, path.to_str().unwrap()).unwrap();
        let got = ebm_nn::read_tensors(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let get = |n: &str| &got.iter().find(|(k, _)| k == n).unwrap().1;
        assert_eq!(got.len(), 2 * 8 + 5);
        assert_eq!(get("x").shape(), [CHECK_ROWS, 64]);
        assert_eq!(get("energy").shape(), [CHECK_ROWS]);
        assert_eq!(
            get("grad.stages.0.conv.weight").shape(),
            get("param.stages.0.conv.weight").shape()
        );
        // the score does not depend on the head's bias: its DSM gradient is exactly zero
        assert_eq!(get("grad.head.bias").to_vec_f64(), [0.0]);
        assert!(get("dsm_loss").to_vec_f64()[0].is_finite());
    }
}
