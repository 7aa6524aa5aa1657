//! Training data: the FFJORD toy sets (drawn afresh every step), the UCI digits (dequantised),
//! and user files (CSV or `.npy`, rows = samples), with standardisation, a seeded train/test
//! split and seeded minibatches.
//!
//! Minibatches are a pure function of (seed, step): batch k of a finite set comes from the
//! permutation of epoch ⌊kB/N⌋, drawn from its own generator stream, and a toy batch from
//! stream k. Resuming at step k therefore needs no sampler state.

use crate::error::Error;
use crate::toy::Toy;
use ebm_core::{DType, Rng, Tensor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The UCI handwritten digits as shipped with scikit-learn (see `data/README.md`).
const DIGITS_CSV: &str = include_str!("../../data/digits.csv");

/// Test rows drawn from a toy distribution (fixed, from its own seed).
pub const TOY_TEST_ROWS: usize = 20_000;
/// The seed of a toy set's test draws (the objectives crate's tests use the same).
pub const TOY_TEST_SEED: u64 = 12_345;
/// Validation rows drawn from a toy distribution (fixed, from their own seed).
pub const TOY_VAL_ROWS: usize = 5_000;
/// The seed of a toy set's validation draws.
pub const TOY_VAL_SEED: u64 = 54_321;
/// Stream of the minibatch generators (kept apart from the training generator's draws).
const BATCH_STREAM: u64 = 0xBA7C;
/// Stream of the train/test split.
const SPLIT_STREAM: u64 = 0x5917;

/// Where the data come from, as written in configs: a toy name, `digits`, or a file path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    Toy { name: String },
    Digits,
    File { path: PathBuf },
}

impl DataSpec {
    /// Parses the `--data` argument: a toy name, `digits`, or an existing `.csv`/`.npy` path.
    pub fn parse(s: &str) -> Result<DataSpec, Error> {
        if Toy::from_name(s).is_some() {
            return Ok(DataSpec::Toy { name: s.into() });
        }
        if s == "digits" {
            return Ok(DataSpec::Digits);
        }
        let p = PathBuf::from(s);
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
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
            "unknown data `{s}`: expected one of {}, digits, or a path to a .csv or .npy file",
            names.join(", ")
        )))
    }

    /// A short label for file names and titles.
    pub fn label(&self) -> String {
        match self {
            DataSpec::Toy { name } => name.clone(),
            DataSpec::Digits => "digits".into(),
            DataSpec::File { path } => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into()),
        }
    }
}

/// How the data were loaded and transformed (stored with the model, so that samples can be
/// mapped back and evaluations use the same transform).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataOptions {
    /// Share of rows of a finite set held out for testing.
    pub test_frac: f64,
    /// Share of the remaining rows held out for validation during training (runs written
    /// before validation existed read as 0: no validation rows, the same training rows).
    #[serde(default)]
    pub val_frac: f64,
    /// Standardise user files to zero mean and unit variance per column (train statistics).
    pub standardize: bool,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            test_frac: 0.2,
            val_frac: 0.1,
            standardize: true,
        }
    }
}

/// Per-column affine map x ↦ (x − mean)/std applied to a file's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardization {
    /// Σ log std: add to an NLL in standardised units to get nats in the file's units.
    pub fn log_det(&self) -> f64 {
        self.std.iter().map(|s| s.ln()).sum()
    }

    /// Maps standardised rows back to the file's units.
    pub fn invert(&self, x: &Tensor) -> Tensor {
        let d = self.mean.len();
        let m = Tensor::from_f64s(&self.mean, &[1, d], x.dtype());
        let s = Tensor::from_f64s(&self.std, &[1, d], x.dtype());
        x.mul(&s).add(&m)
    }
}

/// A loaded dataset: training rows (or a generator), test rows, and how they were made.
#[derive(Clone, Debug)]
pub struct Dataset {
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
    /// Digits: rows are dequantised 8×8 images in [0, 1].
    pub images: Option<(usize, usize)>,
    seed: u64,
}

impl Dataset {
    /// Loads `spec`; `seed` fixes the split and the minibatch order.
    pub fn load(spec: &DataSpec, opts: &DataOptions, seed: u64) -> Result<Dataset, Error> {
        check_fractions(opts)?;
        match spec {
            DataSpec::Toy { name } => {
                let toy = Toy::from_name(name)
                    .ok_or_else(|| Error::usage(format!("unknown toy data set `{name}`")))?;
                Ok(Dataset {
                    spec: spec.clone(),
                    toy: Some(toy),
                    train: Tensor::zeros(&[0, 2], DType::F32),
                    test: toy.sample(TOY_TEST_ROWS, &mut Rng::new(TOY_TEST_SEED)),
                    val: if opts.val_frac > 0.0 {
                        toy.sample(TOY_VAL_ROWS, &mut Rng::new(TOY_VAL_SEED))
                    } else {
                        Tensor::zeros(&[0, 2], DType::F32)
                    },
                    dim: 2,
                    standardization: None,
                    images: None,
                    seed,
                })
            }
            DataSpec::Digits => {
                let table = parse_csv(DIGITS_CSV, "data/digits.csv (built in)")?;
                if table.cols != 65 {
                    return Err(Error::data(format!(
                        "built-in digits: expected 65 columns, found {}",
                        table.cols
                    )));
                }
                // pixels 0..=16 → (pixel + u)/17 ∈ (0, 1): uniform dequantisation, one fixed
                // draw per pixel so the data are a fixed continuous set
                let mut rng = Rng::new(seed).stream(0xDE0);
                let u = rng.uniform_vec(table.rows * 64);
                let mut v = Vec::with_capacity(table.rows * 64);
                for r in 0..table.rows {
                    for c in 0..64 {
                        v.push((table.values[r * 65 + c] + u[r * 64 + c]) / 17.0);
                    }
                }
                let x = Tensor::from_f64s(&v, &[table.rows, 64], DType::F32);
                let (train, val, test) = split(&x, opts, seed, "data/digits.csv (built in)")?;
                Ok(Dataset {
                    spec: spec.clone(),
                    toy: None,
                    train,
                    test,
                    val,
                    dim: 64,
                    standardization: None,
                    images: Some((8, 8)),
                    seed,
                })
            }
            DataSpec::File { path } => {
                let (x, n, d) = read_file(path)?;
                let x = Tensor::from_f64s(&x, &[n, d], DType::F32);
                let (train, val, test) = split(&x, opts, seed, &path.display().to_string())?;
                let (train, val, test, standardization) = if opts.standardize {
                    let s = column_stats(&train);
                    let apply = |t: &Tensor| {
                        let m = Tensor::from_f64s(&s.mean, &[1, d], DType::F32);
                        let sd = Tensor::from_f64s(&s.std, &[1, d], DType::F32);
                        t.sub(&m).div(&sd)
                    };
                    (apply(&train), apply(&val), apply(&test), Some(s))
                } else {
                    crate::values::check_unstandardized(&x, path)?;
                    (train, val, test, None)
                };
                Ok(Dataset {
                    spec: spec.clone(),
                    toy: None,
                    train,
                    test,
                    val,
                    dim: d,
                    standardization,
                    images: None,
                    seed,
                })
            }
        }
    }

    /// The minibatch of step `step` (0-based): a pure function of (seed, step, batch).
    pub fn batch(&self, step: u64, batch: usize) -> Tensor {
        let root = Rng::new(self.seed).stream(BATCH_STREAM);
        if let Some(toy) = self.toy {
            return toy.sample(batch, &mut root.stream(step));
        }
        let n = self.train.shape()[0];
        // rows step·B … step·B + B − 1 of the concatenated epoch permutations
        let start = step as u128 * batch as u128;
        let mut idx = Vec::with_capacity(batch);
        let mut epoch = (start / n as u128) as u64;
        let mut pos = (start % n as u128) as usize;
        let mut perm = root.stream(epoch).permutation(n);
        while idx.len() < batch {
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
            Some(toy) => toy.sample(n, &mut Rng::new(self.seed).stream(0x71A)),
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

/// `--test-frac` in (0, 1) and `--val-frac` in [0, 1).
fn check_fractions(opts: &DataOptions) -> Result<(), Error> {
    if !(opts.test_frac > 0.0 && opts.test_frac < 1.0) {
        return Err(Error::usage(format!(
            "--test-frac must be in (0, 1), got {} (the final evaluation needs held-out rows)",
            opts.test_frac
        )));
    }
    if !(opts.val_frac >= 0.0 && opts.val_frac < 1.0) {
        return Err(Error::usage(format!(
            "--val-frac must be in [0, 1), got {}",
            opts.val_frac
        )));
    }
    Ok(())
}

/// A seeded permutation split into (train, validation, test): the last ⌊test_frac·N⌋ rows
/// of a shuffle are the test set, the ⌊val_frac·(N − test)⌋ before them the validation set.
/// A fraction that holds out no row of the test set, or leaves fewer than 2 training rows,
/// is an error naming the counts.
fn split(
    x: &Tensor,
    opts: &DataOptions,
    seed: u64,
    what: &str,
) -> Result<(Tensor, Tensor, Tensor), Error> {
    let n = x.shape()[0];
    let n_test = (opts.test_frac * n as f64).floor() as usize;
    if n_test == 0 {
        return Err(Error::data(format!(
            "{what}: --test-frac {} of {n} rows holds out no test row; raise it to at least {:.3}",
            opts.test_frac,
            1.0 / n as f64
        )));
    }
    let n_val = (opts.val_frac * (n - n_test) as f64).floor() as usize;
    let n_train = n - n_test - n_val;
    if n_train < 2 {
        return Err(Error::data(format!(
            "{what}: {n} rows leave {n_train} for training after {n_test} test and {n_val} validation rows; need at least 2"
        )));
    }
    let perm = Rng::new(seed).stream(SPLIT_STREAM).permutation(n);
    let (tr, rest) = perm.split_at(n_train);
    let (va, te) = rest.split_at(n_val);
    Ok((x.index_select(tr), x.index_select(va), x.index_select(te)))
}

fn column_stats(x: &Tensor) -> Standardization {
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let v = x.to_vec_f64();
    let mut mean = vec![0.0; d];
    for row in v.chunks(d) {
        for j in 0..d {
            mean[j] += row[j] / n as f64;
        }
    }
    let mut var = vec![0.0; d];
    for row in v.chunks(d) {
        for j in 0..d {
            var[j] += (row[j] - mean[j]).powi(2) / (n as f64 - 1.0).max(1.0);
        }
    }
    // a constant column keeps its scale (dividing by 0 would make it NaN)
    let std = var
        .iter()
        .map(|v| if *v > 1e-24 { v.sqrt() } else { 1.0 })
        .collect();
    Standardization { mean, std }
}

/// A parsed numeric table.
struct Table {
    rows: usize,
    cols: usize,
    values: Vec<f64>,
}

/// Parses CSV text: comma-separated numbers, an optional header line (a first line with a
/// field that is not a number), blank lines ignored. Errors name the line and column
/// (1-based, as an editor shows them).
fn parse_csv(text: &str, what: &str) -> Result<Table, Error> {
    let mut values = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    let mut header = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if rows == 0 && header.is_none() && fields.iter().any(|f| looks_like_name(f)) {
            header = Some(fields.len());
            cols = Some(fields.len());
            continue;
        }
        crate::values::check_columns(fields.len(), what)?;
        let want = *cols.get_or_insert(fields.len());
        if fields.len() != want {
            return Err(Error::data(format!(
                "{what}: line {line_no} has {} column{}, but {} {want} (ragged CSV)",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                if header.is_some() {
                    "the header has"
                } else {
                    "the first row has"
                }
            )));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: f64 = f.parse().map_err(|_| {
                Error::data(format!(
                    "{what}: line {line_no}, column {}: `{f}` is not a number",
                    j + 1
                ))
            })?;
            if let Some(why) = crate::values::value_problem(v) {
                return Err(Error::data(format!(
                    "{what}: line {line_no}, column {}: value `{f}` {why}",
                    j + 1
                )));
            }
            values.push(v);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::data(format!(
            "{what}: no data rows (the file is empty)"
        )));
    }
    Ok(Table {
        rows,
        cols: cols.unwrap_or(0),
        values,
    })
}

/// A header field: not parseable as a number and not a spelling of NaN/Inf.
fn looks_like_name(f: &str) -> bool {
    let l = f.to_ascii_lowercase();
    f.parse::<f64>().is_err() && !["nan", "inf", "-inf", "+inf", "infinity"].contains(&l.as_str())
}

/// Reads a CSV or `.npy` file of rows; returns (row-major values, rows, columns).
pub fn read_file(path: &Path) -> Result<(Vec<f64>, usize, usize), Error> {
    let what = path.display().to_string();
    let bytes = crate::values::read_regular_file(path)?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => read_npy(&bytes, &what),
        _ => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| Error::data(format!("{what}: not a text (UTF-8) CSV file")))?;
            let t = parse_csv(text, &what)?;
            Ok((t.values, t.rows, t.cols))
        }
    }
}

fn read_npy(bytes: &[u8], what: &str) -> Result<(Vec<f64>, usize, usize), Error> {
    use npyz::{DType as NpyType, TypeChar};
    crate::values::check_npy_shape(bytes, what)?;
    let file = npyz::NpyFile::new(bytes).map_err(|e| {
        Error::data(format!(
            "{what}: not a valid .npy file: {}",
            crate::values::one_line(e)
        ))
    })?;
    let item = match file.dtype() {
        NpyType::Plain(ts) => ts.size_field(),
        _ => 1,
    };
    crate::values::check_declared_size(file.shape(), item.max(1), bytes.len(), what)?;
    let shape: Vec<usize> = file.shape().iter().map(|&s| s as usize).collect();
    let (n, d) = match shape.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        other => {
            return Err(Error::data(format!(
                "{what}: array of shape {other:?}; expected rows of samples, shape [n, d] or [n]"
            )))
        }
    };
    if file.order() == npyz::Order::Fortran && d > 1 {
        return Err(Error::data(format!(
            "{what}: array is in Fortran order; save it C-contiguous (numpy.ascontiguousarray)"
        )));
    }
    if n == 0 || d == 0 {
        return Err(Error::data(format!(
            "{what}: array of shape {shape:?} is empty"
        )));
    }
    crate::values::check_columns(d, what)?;
    let dtype = file.dtype();
    let ts = match &dtype {
        NpyType::Plain(ts) => ts.clone(),
        other => {
            return Err(Error::data(format!(
                "{what}: structured dtype {}; expected float32/float64 (or integers)",
                other.descr()
            )))
        }
    };
    let bad = || {
        Error::data(format!(
            "{what}: dtype `{ts}` is not supported; expected float32 or float64 (integers are converted)"
        ))
    };
    let err = |e: std::io::Error| Error::data(format!("{what}: cannot read the array: {e}"));
    let values: Vec<f64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => file
            .into_vec::<f32>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Float, 8) => file.into_vec::<f64>().map_err(err)?,
        (TypeChar::Int, 1) => file
            .into_vec::<i8>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Int, 2) => file
            .into_vec::<i16>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Int, 4) => file
            .into_vec::<i32>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Int, 8) => file
            .into_vec::<i64>()
            .map_err(err)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        (TypeChar::Uint, 1) => file
            .into_vec::<u8>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Uint, 2) => file
            .into_vec::<u16>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Uint, 4) => file
            .into_vec::<u32>()
            .map_err(err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (TypeChar::Uint, 8) => file
            .into_vec::<u64>()
            .map_err(err)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        _ => return Err(bad()),
    };
    crate::values::check_values(&values, d, what)?;
    Ok((values, n, d))
}

/// Writes `x` `[n, d]` as a float32 `.npy` file, atomically.
pub fn write_npy(path: &Path, x: &Tensor) -> Result<(), Error> {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = x.shape().iter().map(|&s| s as u64).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut buf)
            .begin_nd()
            .map_err(|e| Error::io(format!("cannot encode {}: {e}", path.display())))?;
        w.extend(x.to_vec::<f32>())
            .map_err(|e| Error::io(format!("cannot encode {}: {e}", path.display())))?;
        w.finish()
            .map_err(|e| Error::io(format!("cannot encode {}: {e}", path.display())))?;
    }
    crate::io::write_atomic(path, &buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_line_and_column() {
        let e = parse_csv("a,b\n1,2\n3\n", "f.csv")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("line 3 has 1 column,") && e.contains("header has 2"),
            "{e}"
        );
        let e = parse_csv("1,2\n3,nan\n", "f.csv")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("line 2, column 2") && e.contains("not finite"),
            "{e}"
        );
        let e = parse_csv("1,2\n3,x7\n", "f.csv").err().unwrap().to_string();
        assert!(e.contains("line 2, column 2: `x7` is not a number"), "{e}");
        let e = parse_csv("x,y\n", "f.csv").err().unwrap().to_string();
        assert!(e.contains("no data rows"), "{e}");
        let t = parse_csv("x,y\n1,2\n\n3,4\n", "f.csv").unwrap();
        assert_eq!((t.rows, t.cols, t.values), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
    }

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
    }

    #[test]
    fn splits_are_disjoint_and_fractions_that_hold_out_nothing_are_errors() {
        let x = Tensor::from_f64s(
            &(0..40).map(f64::from).collect::<Vec<_>>(),
            &[20, 2],
            DType::F32,
        );
        let opts = DataOptions::default();
        let (tr, va, te) = split(&x, &opts, 3, "f").unwrap();
        assert_eq!((tr.shape()[0], va.shape()[0], te.shape()[0]), (15, 1, 4));
        let mut firsts: Vec<usize> = [tr, va, te]
            .iter()
            .flat_map(|t| {
                t.to_vec_f64()
                    .chunks(2)
                    .map(|r| r[0] as usize / 2)
                    .collect::<Vec<_>>()
            })
            .collect();
        firsts.sort();
        assert_eq!(firsts, (0..20).collect::<Vec<_>>());
        // the test rows do not depend on the validation share (old runs keep theirs)
        let no_val = DataOptions {
            val_frac: 0.0,
            ..opts.clone()
        };
        let (_, va0, te0) = split(&x, &no_val, 3, "f").unwrap();
        assert_eq!(va0.shape()[0], 0);
        assert_eq!(
            te0.to_vec_f64(),
            split(&x, &opts, 3, "f").unwrap().2.to_vec_f64()
        );
        let tiny = DataOptions {
            test_frac: 0.01,
            ..opts.clone()
        };
        let e = split(&x, &tiny, 3, "f.csv").unwrap_err().to_string();
        assert!(e.contains("holds out no test row"), "{e}");
        for bad in [0.0, 1.0, -0.1, f64::NAN] {
            let o = DataOptions {
                test_frac: bad,
                ..opts.clone()
            };
            let e = check_fractions(&o).unwrap_err().to_string();
            assert!(e.contains("--test-frac must be in (0, 1)"), "{e}");
        }
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
        assert_eq!(ds.dim, 64);
    }
}
