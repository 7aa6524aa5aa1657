//! # ebm-data: the data energy-based models are trained on
//!
//! Below the objectives and above the tensors (it depends on `ebm-core` alone, plus `npyz`
//! for `.npy` files behind the default `npy` feature), so that the objectives' tests, the examples, the benchmark and the `ebm`
//! command all draw the same toy sets and read files through the same hardened readers:
//!
//! - [`toy`]: FFJORD's eight 2-D toy distributions ([`Toy`]), drawn from a seeded
//!   [`ebm_core::Rng`]; the parameters of 8-Gaussians in one place ([`EIGHT_GAUSSIANS`]).
//! - [`digits`]: the UCI handwritten digits, built in, as raw pixels, scaled or dequantised,
//!   in a documented row layout that reshapes to `[1, 8, 8]` images.
//! - [`csv`], [`npy`], [`table`]: readers of numeric tables whose every failure is one
//!   [`DataError`] naming the file and the line, column or header field: ragged rows,
//!   non-finite values or values beyond float32, declared shapes larger than the file,
//!   devices and pipes, more than [`MAX_DIM`] columns ([`values`]).
//! - [`idx`]: IDX image files (MNIST's format), plain or gzip, and Fashion-MNIST where
//!   Debian's `dataset-fashion-mnist` installs it, dequantised to [0, 1].
//! - [`images`]: folders of PNGs and `.npy` image arrays (NCHW or NHWC), dequantised to
//!   [0, 1], and the logit transform ([`Logit`]).
//! - [`standardize`], [`split`], [`dataset`]: per-column standardisation, seeded
//!   train/validation/test splits, and [`Dataset`], whose minibatches are a pure function of
//!   (seed, step).
//!
//! ```
//! use ebm_core::Rng;
//! use ebm_data::{DataOptions, DataSpec, Dataset, Toy};
//!
//! let x = Toy::Checkerboard.sample(256, &mut Rng::new(0));
//! assert_eq!(x.shape(), &[256, 2]);
//! let digits = Dataset::load(&DataSpec::Digits, &DataOptions::default(), 0).unwrap();
//! assert_eq!(digits.batch(3, 32).shape(), &[32, 64]);
//! ```

pub mod csv;
pub mod dataset;
pub mod digits;
pub mod error;
pub mod idx;
pub mod images;
#[cfg(feature = "npy")]
pub mod npy;
pub mod split;
pub mod standardize;
pub mod table;
pub mod toy;
pub mod values;

pub use dataset::{DataSpec, Dataset, TOY_TEST_ROWS, TOY_TEST_SEED, TOY_VAL_ROWS, TOY_VAL_SEED};
pub use digits::Digits;
pub use error::DataError;
pub use idx::{fashion_mnist_files, read_idx, Idx};
pub use images::{ImageLayout, Images, Logit};
pub use split::DataOptions;
pub use standardize::Standardization;
pub use table::{read_file, Table};
pub use toy::{Ring, Toy, EIGHT_GAUSSIANS};
pub use values::MAX_DIM;
