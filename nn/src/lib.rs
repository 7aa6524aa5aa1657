//! # ebm-nn: neural energies, optimizers and checkpoints
//!
//! Parameters are named ([`Params`]: dotted names such as `l0.weight`, in order) and stored
//! as plain tensors. Each training step binds them to a fresh [`ebm_autodiff::Tape`] with
//! [`Params::bind`], builds a loss from the model's `*_var` methods, takes parameter
//! gradients ([`param_grads`]) and hands them to an [`Optimizer`]. Samplers call the
//! plain-tensor [`EnergyModel::energy`] / [`EnergyModel::score`], which use a fresh tape per
//! call, so long chains never grow a tape.
//!
//! - Layers: [`Linear`] (`[out, in]` weights like PyTorch, `y = x·Wᵀ + b`), [`Mlp`] of any
//!   widths, [`NoiseConditionalNet`] (σ or t conditioning through a Fourier embedding, energy or
//!   score output, optional NCSNv2 `s/σ` scaling); [`Activation`]s SiLU, softplus, ELU, tanh,
//!   GELU and ReLU (not for exact score matching); seeded [`Init`]s.
//! - Your own energy: [`CustomEnergy`] turns named parameters and a closure `|x, p| -> Var`
//!   (parameters by name, `p["a"]`, or position) into a model like the others;
//!   [`check_energy`] checks its first and second derivatives.
//! - Images (NCHW, rows flattened): [`Conv2d`] (optionally spectrally normalised),
//!   [`GroupNorm`], [`LayerNorm`]; [`ConvEnergy`], an IGEBM-style ResNet energy; [`UNet`], a
//!   small noise-conditional score network in the NCSN / score-SDE style.
//! - A normalising flow: [`RealNvp`] (affine couplings), exact log-density and sampling,
//!   usable as a normalised energy or as a learned noise distribution.
//! - An analytic energy: [`Quadratic`] ½(x−μ)ᵀLLᵀ(x−μ), with a closed-form score,
//!   log-density and exact sampler.
//! - [`Model`]: either kind of model ([`ModelRef`]), as objectives and training steps take it.
//! - Optimization: [`Optimizer`] (SGD with momentum/Nesterov/weight decay, Adam, AdamW, with
//!   PyTorch's formulas; it can own a learning-rate [`Schedule`]), [`clip_grad_norm`], [`Ema`].
//! - Persistence: [`Checkpoint`] in safetensors (parameters at the top level, `optim.*` and
//!   `ema.*` state, config/step/RNG in metadata, checksummed, written atomically),
//!   [`load_weights`] for plain files from PyTorch or NumPy.
//!
//! ```
//! use ebm_autodiff::{GradOpts, Tape};
//! use ebm_core::{DType, Rng};
//! use ebm_nn::{param_grads, EnergyModel, Mlp, MlpConfig, Module, Optimizer};
//!
//! let mut rng = Rng::new(0);
//! let mut model = Mlp::new(MlpConfig::new(&[2, 32, 32, 1]), &mut rng);
//! let mut opt = Optimizer::adam(1e-3, model.params());
//! for _ in 0..3 {
//!     // denoising score matching at σ = 0.1 on N(0, I) data
//!     let (sigma, x) = (0.1, rng.normal(&[64, 2], DType::F32));
//!     let z = rng.normal(&[64, 2], DType::F32);
//!     let grads = {
//!         let tape = Tape::new();
//!         let p = model.params().bind(&tape);
//!         let xt = tape.var(x.add(&z.mul_scalar(sigma)));
//!         let s = model.score_var(&xt, &p, GradOpts::create_graph());
//!         let loss = s.add_const(&z.mul_scalar(1.0 / sigma)).sum_squares(&[1], false).mean_all();
//!         param_grads(&loss, &p)
//!     }; // the tape is gone: the update below happens in place
//!     opt.step(model.params_mut(), &grads);
//! }
//! let s = model.score(&rng.normal(&[5, 2], DType::F32)); // for samplers: no tape kept
//! assert_eq!(s.shape(), &[5, 2]);
//! ```

pub mod activation;
pub mod analytic;
pub mod checkpoint;
pub mod clip;
pub mod conv;
pub mod custom;
pub mod ema;
pub mod flow;
pub mod linear;
pub mod mlp;
pub mod model;
pub mod ncsn;
pub mod optim;
pub mod params;
pub mod resnet;
pub mod schedule;
pub mod silu_mlp;
pub mod unet;

pub use activation::Activation;
pub use analytic::Quadratic;
pub use checkpoint::{
    load_weights, load_weights_from_bytes, read_tensors, read_tensors_from_bytes, tensors_to_bytes,
    write_atomic, write_tensors, Checkpoint, CheckpointError,
};
pub use clip::{clip_grad_norm, global_norm};
pub use conv::{Conv2d, GroupNorm, LayerNorm};
pub use custom::{check_energy, CustomEnergy};
pub use ema::{Ema, EmaConfig};
pub use flow::{FlowConfig, RealNvp};
pub use linear::{Init, Linear};
pub use mlp::{Mlp, MlpConfig};
pub use model::{
    as_leaf, energy_and_score_on_tape, score_and_jvps_on_tape, score_from_energy, score_on_tape,
    EnergyModel, Model, ModelRef, Module, NoiseConditionalModel,
};
pub use ncsn::{
    fourier_embedding, Conditioning, NetOutput, NoiseConditionalConfig, NoiseConditionalNet,
};
pub use optim::{AdamConfig, Optimizer, OptimizerConfig, SgdConfig};
pub use params::{param_grads, tensor_bit_eq, ParamVars, Params};
pub use resnet::{ConvEnergy, ConvEnergyConfig, ConvHead};
pub use schedule::Schedule;
pub use unet::{UNet, UNetConfig};
