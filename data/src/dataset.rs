//! A training data set as the tools use it: where it comes from ([`DataSpec`]), its
//! train/validation/test rows or generator, and seeded minibatches.
//!
//! Minibatches are a pure function of (seed, step): batch k of a finite set comes from the
//! permutation of epoch ⌊kB/N⌋, drawn from its own generator stream, and a toy batch from
//! stream k. Resuming at step k therefore needs no sampler state.

use crate::digits::{self, Digits};
use crate::error::DataError as Error;
use crate::images::{ImageLayout, Images, Logit};
use crate::split::{split, DataOptions};
use crate::standardize::Standardization;
use crate::toy::Toy;
use ebm_core::{DType, Rng, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Test rows drawn from a toy distribution (fixed, from their own seed).
pub const TOY_TEST_ROWS: usize = 20_000;
/// The seed of a toy set's test draws (the objectives crate's tests use the same).
pub const TOY_TEST_SEED: u64 = 12_345;
/// Validation rows drawn from a toy distribution (fixed, from their own seed).
pub const TOY_VAL_ROWS: usize = 5_000;
/// The seed of a toy set's validation draws.
pub const TOY_VAL_SEED: u64 = 54_321;
/// Stream of the minibatch generators (kept apart from the training generator's draws).
const BATCH_STREAM: u64 = 0xBA7C;
/// Stream of the digits' dequantisation noise.
const DEQUANTIZE_STREAM: u64 = 0xDE0;
/// Stream of [`Dataset::train_sample`]'s toy draws.
const SAMPLE_STREAM: u64 = 0x71A;

/// Where the data come from, as written in configs: a toy name, `digits`, or a file path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    /// One of the toy sets, by [`Toy::name`].
    Toy {
        /// The toy set's name.
        name: String,
    },
    /// The built-in UCI digits, dequantised.
    Digits,
    /// Fashion-MNIST's 28×28 images (60,000 train, 10,000 test), dequantised to [0, 1]: from
    /// `dir`, or from where Debian's `dataset-fashion-mnist` installs them.
    FashionMnist {
        /// A folder holding the IDX files (absolute), or `None` for the Debian location.
        dir: Option<PathBuf>,
    },
    /// Images: a folder of PNGs, or a `.npy` array of them (`[n, H, W]`, NCHW or NHWC),
    /// dequantised to [0, 1] and split like a file of rows.
    Images {
        /// The folder or `.npy` file (absolute).
        path: PathBuf,
        /// The layout of a 4-D array, or `None` to infer it from the channel axis.
        layout: Option<ImageLayout>,
    },
    /// A CSV or `.npy` file of rows (an absolute path).
    File {
        /// The file.
        path: PathBuf,
    },
}

impl DataSpec {
    /// Parses the `--data` argument: a toy name, `digits`, `fashion-mnist[=FOLDER]`, a folder
    /// of PNGs, `nchw:FILE.npy` / `nhwc:FILE.npy`, or an existing `.csv`/`.npy` path (a
    /// `.npy` array of rank 3 or 4 is read as images).
    pub fn parse(s: &str) -> Result<DataSpec, Error> {
        if Toy::from_name(s).is_some() {
            return Ok(DataSpec::Toy { name: s.into() });
        }
        if s == "digits" {
            return Ok(DataSpec::Digits);
        }
        if s == "fashion-mnist" {
            return Ok(DataSpec::FashionMnist { dir: None });
        }
        if let Some(dir) = s.strip_prefix("fashion-mnist=") {
            let dir = std::path::absolute(dir)
                .map_err(|e| Error::usage(format!("cannot resolve folder {dir}: {e}")))?;
            return Ok(DataSpec::FashionMnist { dir: Some(dir) });
        }
        let absolute = |p: &std::path::Path| {
            if !p.exists() {
                return Err(Error::usage(format!(
                    "data file {} does not exist",
                    p.display()
                )));
            }
            std::path::absolute(p)
                .map_err(|e| Error::usage(format!("cannot resolve {}: {e}", p.display())))
        };
        for (prefix, layout) in [("nchw:", ImageLayout::Nchw), ("nhwc:", ImageLayout::Nhwc)] {
            if let Some(f) = s.strip_prefix(prefix) {
                return Ok(DataSpec::Images {
                    path: absolute(f.as_ref())?,
                    layout: Some(layout),
                });
            }
        }
        let p = PathBuf::from(s);
        if p.is_dir() {
            return Ok(DataSpec::Images {
                path: absolute(&p)?,
                layout: None,
            });
        }
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "npy" && npy_rank(&p).is_some_and(|r| r >= 3) {
            return Ok(DataSpec::Images {
                path: absolute(&p)?,
                layout: None,
            });
        }
        if ext == "csv" || ext == "npy" {
            if !p.exists() {
                return Err(Error::usage(format!(
                    "data file {} does not exist",
                    p.display()
                )));
            }
            // stored absolute, so the run can be evaluated and resumed from any directory
            let path = std::path::absolute(&p).map_err(|e| {
                Error::usage(format!("cannot resolve data file {}: {e}", p.display()))
            })?;
            return Ok(DataSpec::File { path });
        }
        let names: Vec<&str> = Toy::ALL.iter().map(|t| t.name()).collect();
        Err(Error::usage(format!(
            "unknown data `{s}`: expected one of {}, digits, fashion-mnist (or fashion-mnist=FOLDER), a folder of PNGs, or a path to a .csv or .npy file (nchw:FILE.npy / nhwc:FILE.npy for images)",
            names.join(", ")
        )))
    }

    /// A short label for file names and titles.
    pub fn label(&self) -> String {
        match self {
            DataSpec::Toy { name } => name.clone(),
            DataSpec::Digits => "digits".into(),
            DataSpec::FashionMnist { .. } => "fashion-mnist".into(),
            DataSpec::File { path } | DataSpec::Images { path, .. } => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into()),
        }
    }
}

/// The images of a PNG folder or an image `.npy` file.
fn read_images(path: &std::path::Path, layout: Option<ImageLayout>) -> Result<Images, Error> {
    if path.is_dir() {
        return crate::images::read_png_folder(path);
    }
    let bytes = crate::values::read_regular_file(path)?;
    #[cfg(feature = "npy")]
    return crate::images::read_npy_images(&bytes, layout, &path.display().to_string());
    #[cfg(not(feature = "npy"))]
    {
        let _ = (bytes, layout);
        Err(Error::usage(format!(
            "{}: reading .npy files needs ebm-data's `npy` feature",
            path.display()
        )))
    }
}

/// The rank a `.npy` file's header declares: unknown without the `npy` feature.
#[cfg(not(feature = "npy"))]
fn npy_rank(_path: &std::path::Path) -> Option<usize> {
    None
}

/// The rank a `.npy` file's header declares (its first 64 KiB read), if readable.
#[cfg(feature = "npy")]
fn npy_rank(path: &std::path::Path) -> Option<usize> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 16)
        .read_to_end(&mut head)
        .ok()?;
    crate::npy::declared_dims(&head).map(|d| d.len())
}

/// A loaded dataset: training rows (or a generator), test rows, and how they were made.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Where the data came from.
    pub spec: DataSpec,
    /// The toy distribution, for fresh draws every step.
    pub toy: Option<Toy>,
    /// Training rows `[N, d]` of a finite set (empty for toy sets).
    pub train: Tensor,
    /// Test rows `[M, d]`.
    pub test: Tensor,
    /// Validation rows `[V, d]` held out from training (V = 0: none).
    pub val: Tensor,
    /// Features per row.
    pub dim: usize,
    /// The transform applied to a user file.
    pub standardization: Option<Standardization>,
    /// Image sets (digits, Fashion-MNIST, PNG folders, `.npy` images): rows are dequantised
    /// images of `[channels, height, width]`, pixel (c, i, j) at column c·H·W + W·i + j.
    pub images: Option<[usize; 3]>,
    /// The logit transform applied to an image set's pixels (`--logit`).
    pub logit: Option<Logit>,
    /// The number of pixel levels an image set was dequantised from (17 for the digits, whose
    /// pixels are 0..=16; 256 for 8-bit images): pixels in [0, 1] are (p + u)/levels.
    pub levels: Option<usize>,
    seed: u64,
}

impl Dataset {
    /// Loads `spec`; `seed` fixes the split, the dequantisation and the minibatch order.
    /// An image set is then put through the logit transform when `opts.logit` asks for it.
    pub fn load(spec: &DataSpec, opts: &DataOptions, seed: u64) -> Result<Dataset, Error> {
        let mut ds = Dataset::load_untransformed(spec, opts, seed)?;
        if let Some(lambda) = opts.logit {
            let logit = Logit { lambda };
            logit.check()?;
            if ds.images.is_none() {
                return Err(Error::usage(format!(
                    "--logit transforms pixels in [0, 1]; {} is not an image set",
                    spec.label()
                )));
            }
            ds.train = logit.apply(&ds.train);
            ds.val = logit.apply(&ds.val);
            ds.test = logit.apply(&ds.test);
            ds.logit = Some(logit);
        }
        Ok(ds)
    }

    /// What to add to a model's NLL of transformed rows `rows` (mean over them) to have the
    /// NLL of the data as read: Σ log sⱼ of a standardisation, −log|dy/dx| of the logit
    /// transform ([`Logit::log_det`]), 0 otherwise.
    pub fn nll_offset(&self, rows: &Tensor) -> f64 {
        if let Some(s) = &self.standardization {
            return s.log_det();
        }
        match self.logit {
            Some(l) if rows.shape()[0] > 0 => {
                let ld = l.log_det(&l.invert(rows));
                -ld.iter().sum::<f64>() / ld.len() as f64
            }
            _ => 0.0,
        }
    }

    /// Rows as pixels in [0, 1] for pictures: the logit transform undone when there is one.
    pub fn to_pixels(&self, rows: &Tensor) -> Tensor {
        match self.logit {
            Some(l) => l.invert(rows),
            None => rows.clone(),
        }
    }

    fn load_untransformed(
        spec: &DataSpec,
        opts: &DataOptions,
        seed: u64,
    ) -> Result<Dataset, Error> {
        opts.check()?;
        let empty = || Tensor::zeros(&[0, 2], DType::F32);
        let finite = |train, val, test, dim, standardization, images| Dataset {
            spec: spec.clone(),
            toy: None,
            train,
            test,
            val,
            dim,
            standardization,
            images,
            logit: None,
            levels: images.map(|_| 256),
            seed,
        };
        match spec {
            DataSpec::Toy { name } => {
                let toy = Toy::from_name(name)
                    .ok_or_else(|| Error::usage(format!("unknown toy data set `{name}`")))?;
                Ok(Dataset {
                    toy: Some(toy),
                    test: toy.sample(TOY_TEST_ROWS, &mut Rng::new(TOY_TEST_SEED)),
                    val: if opts.val_frac > 0.0 {
                        toy.sample(TOY_VAL_ROWS, &mut Rng::new(TOY_VAL_SEED))
                    } else {
                        empty()
                    },
                    ..finite(empty(), empty(), empty(), 2, None, None)
                })
            }
            DataSpec::Digits => {
                // one fixed dequantisation draw per pixel: the data are a fixed continuous set
                let mut rng = Rng::new(seed).stream(DEQUANTIZE_STREAM);
                let x = Digits::load()?.dequantized(&mut rng, DType::F32);
                let (train, val, test) = split(&x, opts, seed, digits::SOURCE)?;
                let image = Some(digits::IMAGE_SHAPE);
                Ok(Dataset {
                    levels: Some(digits::MAX_PIXEL as usize + 1),
                    ..finite(train, val, test, digits::PIXELS, None, image)
                })
            }
            DataSpec::FashionMnist { dir } => {
                let (train_file, test_file) = crate::idx::fashion_mnist_files(dir.as_deref())?;
                let mut rng = Rng::new(seed).stream(DEQUANTIZE_STREAM);
                let load = |f: &std::path::Path, rng: &mut Rng| {
                    let idx = crate::idx::read_idx(f)?;
                    match idx.dims[..] {
                        [_, 28, 28] => idx.dequantized_images(rng, DType::F32),
                        _ => Err(Error::data(format!(
                            "{}: Fashion-MNIST images are [n, 28, 28], found {:?}",
                            f.display(),
                            idx.dims
                        ))),
                    }
                };
                let pool = load(&train_file, &mut rng)?;
                let test = load(&test_file, &mut rng)?;
                // the official test set stays the test set; validation rows come from train
                let n = pool.shape()[0];
                let n_val = (opts.val_frac * n as f64).floor() as usize;
                let perm = Rng::new(seed).stream(DEQUANTIZE_STREAM + 1).permutation(n);
                let (tr, va) = perm.split_at(n - n_val);
                let (train, val) = (pool.index_select(tr), pool.index_select(va));
                Ok(finite(train, val, test, 784, None, Some([1, 28, 28])))
            }
            DataSpec::Images { path, layout } => {
                let images = read_images(path, *layout)?;
                let mut rng = Rng::new(seed).stream(DEQUANTIZE_STREAM);
                let x = images.dequantized(&mut rng, DType::F32);
                let (train, val, test) = split(&x, opts, seed, &path.display().to_string())?;
                let d = x.shape()[1];
                Ok(finite(train, val, test, d, None, Some(images.shape)))
            }
            DataSpec::File { path } => {
                let x = crate::table::read_file(path)?.to_tensor(DType::F32);
                let d = x.shape()[1];
                let (train, val, test) = split(&x, opts, seed, &path.display().to_string())?;
                if opts.standardize {
                    let s = Standardization::fit(&train);
                    let (train, val, test) = (s.apply(&train), s.apply(&val), s.apply(&test));
                    Ok(finite(train, val, test, d, Some(s), None))
                } else {
                    crate::values::check_unstandardized(&x, path)?;
                    Ok(finite(train, val, test, d, None, None))
                }
            }
        }
    }

    /// The minibatch of step `step` (0-based): a pure function of (seed, step, batch).
    pub fn batch(&self, step: u64, batch: usize) -> Tensor {
        self.batch_rows(step, batch, 0..batch)
    }

    /// Rows `rows` of [`Dataset::batch`]`(step, batch)`, the share of one rank of a
    /// data-parallel run: the same rows, drawing only these from a finite set (a toy set's
    /// draws come in sequence: the whole batch is drawn and narrowed).
    pub fn batch_rows(&self, step: u64, batch: usize, rows: std::ops::Range<usize>) -> Tensor {
        assert!(
            rows.end <= batch,
            "batch_rows: rows {rows:?} of a batch of {batch}"
        );
        let root = Rng::new(self.seed).stream(BATCH_STREAM);
        if let Some(toy) = self.toy {
            let x = toy.sample(batch, &mut root.stream(step));
            return if rows.len() == batch {
                x
            } else {
                x.narrow(0, rows.start, rows.len())
            };
        }
        let n = self.train.shape()[0];
        // rows step·B + rows.start … of the concatenated epoch permutations
        let start = step as u128 * batch as u128 + rows.start as u128;
        let mut idx = Vec::with_capacity(rows.len());
        let mut epoch = (start / n as u128) as u64;
        let mut pos = (start % n as u128) as usize;
        let mut perm = root.stream(epoch).permutation(n);
        while idx.len() < rows.len() {
            if pos == n {
                epoch += 1;
                pos = 0;
                perm = root.stream(epoch).permutation(n);
            }
            idx.push(perm[pos]);
            pos += 1;
        }
        self.train.index_select(&idx)
    }

    /// Up to `n` training rows (fresh draws for a toy set), for pictures and chain starts.
    pub fn train_sample(&self, n: usize) -> Tensor {
        match self.toy {
            Some(toy) => toy.sample(n, &mut Rng::new(self.seed).stream(SAMPLE_STREAM)),
            None => {
                let m = self.train.shape()[0].min(n);
                self.train.index_select(&(0..m).collect::<Vec<_>>())
            }
        }
    }

    /// The known entropy of the data distribution (toy sets with a closed form).
    pub fn entropy(&self) -> Option<f64> {
        self.toy.and_then(Toy::entropy)
    }

    /// The box to integrate and draw the density on: FFJORD's [−4.5, 4.5]² for toy sets, else
    /// the test and train range padded by a quarter on each side.
    pub fn bounds(&self) -> Vec<(f64, f64)> {
        if self.toy.is_some() {
            return vec![(-4.5, 4.5); 2];
        }
        let mut b = vec![(f64::INFINITY, f64::NEG_INFINITY); self.dim];
        for t in [&self.train, &self.test] {
            let v = t.to_vec_f64();
            for row in v.chunks(self.dim) {
                for (j, x) in row.iter().enumerate() {
                    b[j] = (b[j].0.min(*x), b[j].1.max(*x));
                }
            }
        }
        b.into_iter()
            .map(|(lo, hi)| {
                let pad = 0.25 * (hi - lo).max(1e-3);
                (lo - pad, hi + pad)
            })
            .collect()
    }

    /// Rows in the training set (None: a generator).
    pub fn train_rows(&self) -> Option<usize> {
        self.toy.is_none().then(|| self.train.shape()[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_a_function_of_the_step_and_cover_an_epoch() {
        let x = Tensor::from_f64s(
            &(0..20).map(f64::from).collect::<Vec<_>>(),
            &[10, 2],
            DType::F32,
        );
        let ds = Dataset {
            spec: DataSpec::Digits,
            toy: None,
            train: x,
            test: Tensor::zeros(&[1, 2], DType::F32),
            val: Tensor::zeros(&[0, 2], DType::F32),
            dim: 2,
            standardization: None,
            images: None,
            logit: None,
            levels: None,
            seed: 4,
        };
        // 5 batches of 4 span two epochs; the first 10 rows (epoch 0) are a permutation
        let mut firsts = Vec::new();
        for k in 0..5 {
            let b = ds.batch(k, 4).to_vec_f64();
            assert_eq!(b, ds.batch(k, 4).to_vec_f64());
            firsts.extend(b.chunks(2).map(|r| r[0] as usize / 2));
        }
        let mut e0 = firsts[..10].to_vec();
        e0.sort();
        assert_eq!(e0, (0..10).collect::<Vec<_>>());
        // a rank's share is those rows of the whole batch, across an epoch boundary too
        for k in 0..5 {
            let whole = ds.batch(k, 7).to_vec_f64();
            for (a, b) in [(0, 3), (3, 7), (2, 2), (0, 7)] {
                let part = ds.batch_rows(k, 7, a..b).to_vec_f64();
                assert_eq!(part, whole[2 * a..2 * b], "step {k} rows {a}..{b}");
            }
        }
        let toy = Dataset::load(
            &DataSpec::parse("8gaussians").unwrap(),
            &DataOptions::default(),
            1,
        )
        .unwrap();
        let whole = toy.batch(3, 9).to_vec_f64();
        assert_eq!(toy.batch_rows(3, 9, 4..9).to_vec_f64(), whole[8..18]);
    }

    #[test]
    fn digits_are_dequantised_into_the_unit_interval() {
        let ds = Dataset::load(&DataSpec::Digits, &DataOptions::default(), 0).unwrap();
        assert_eq!(
            ds.train.shape()[0] + ds.val.shape()[0] + ds.test.shape()[0],
            1797
        );
        // ⌊0.2·1797⌋ test rows, ⌊0.1·(1797 − 359)⌋ validation rows
        assert_eq!((ds.test.shape()[0], ds.val.shape()[0]), (359, 143));
        let v = ds.train.to_vec_f64();
        assert!(v.iter().all(|x| *x > 0.0 && *x < 1.0));
        assert_eq!(
            (ds.dim, ds.images, ds.levels),
            (64, Some([1, 8, 8]), Some(17))
        );
    }

    #[test]
    fn data_names_parse_and_unknown_ones_list_the_choices() {
        assert_eq!(
            DataSpec::parse("moons").unwrap(),
            DataSpec::Toy {
                name: "moons".into()
            }
        );
        assert_eq!(DataSpec::parse("digits").unwrap(), DataSpec::Digits);
        let e = DataSpec::parse("mnist").unwrap_err().to_string();
        assert!(
            e.contains("8gaussians, checkerboard") && e.contains("digits"),
            "{e}"
        );
        let e = DataSpec::parse("/no/such/file.csv").unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
    }

    #[cfg(feature = "npy")]
    #[test]
    fn image_arrays_parse_load_and_take_the_logit_transform() {
        let dir = std::env::temp_dir().join(format!("ebm-ds-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 10 one-channel 2×2 images as [n, H, W] uint8, written with a hand-made header
        let mut h = "{'descr': '|u1', 'fortran_order': False, 'shape': (10, 2, 2), }".to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        bytes.extend((0..40u8).map(|v| v * 6));
        let f = dir.join("im.npy");
        std::fs::write(&f, &bytes).unwrap();
        let spec = DataSpec::parse(f.to_str().unwrap()).unwrap();
        assert!(
            matches!(spec, DataSpec::Images { layout: None, .. }),
            "{spec:?}"
        );
        let spec = DataSpec::parse(&format!("nchw:{}", f.display())).unwrap();
        assert!(matches!(
            spec,
            DataSpec::Images {
                layout: Some(ImageLayout::Nchw),
                ..
            }
        ));
        let opts = DataOptions {
            standardize: false,
            ..DataOptions::default()
        };
        let plain = Dataset::load(&spec, &opts, 0).unwrap();
        assert_eq!(
            (plain.dim, plain.images, plain.levels),
            (4, Some([1, 2, 2]), Some(256))
        );
        assert_eq!(plain.nll_offset(&plain.test), 0.0);
        let logit = DataOptions {
            logit: Some(0.01),
            ..opts.clone()
        };
        let ds = Dataset::load(&spec, &logit, 0).unwrap();
        // the same pixels, transformed; the offset is minus the mean log-det of the test rows
        assert!(ds.to_pixels(&ds.test).max_abs_diff(&plain.test) < 1e-5);
        let l = Logit { lambda: 0.01 };
        let ld = l.log_det(&plain.test);
        let want = -ld.iter().sum::<f64>() / ld.len() as f64;
        assert!((ds.nll_offset(&ds.test) - want).abs() < 1e-3);
        // the logit is for image sets only
        let e = Dataset::load(&DataSpec::parse("moons").unwrap(), &logit, 0).unwrap_err();
        assert!(e.to_string().contains("not an image set"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
