//! Seeded train/validation/test splits of a finite set.

use crate::error::DataError as Error;
use ebm_core::{Rng, Tensor};
use serde::{Deserialize, Serialize};

/// Stream of the train/test split (kept apart from every other draw of the seed).
const SPLIT_STREAM: u64 = 0x5917;

/// How a finite set is split and transformed (stored with the model, so that evaluations
/// use the same rows and transform).
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
    /// The logit transform's λ for image sets, y = logit(λ + (1 − 2λ)x) (`--logit`; runs
    /// written before it existed read as None).
    #[serde(default)]
    pub logit: Option<f64>,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            test_frac: 0.2,
            val_frac: 0.1,
            standardize: true,
            logit: None,
        }
    }
}

impl DataOptions {
    /// `--test-frac` in (0, 1) and `--val-frac` in [0, 1).
    pub fn check(&self) -> Result<(), Error> {
        if !(self.test_frac > 0.0 && self.test_frac < 1.0) {
            return Err(Error::usage(format!(
                "--test-frac must be in (0, 1), got {} (the final evaluation needs held-out rows)",
                self.test_frac
            )));
        }
        if !(self.val_frac >= 0.0 && self.val_frac < 1.0) {
            return Err(Error::usage(format!(
                "--val-frac must be in [0, 1), got {}",
                self.val_frac
            )));
        }
        Ok(())
    }
}

/// A seeded permutation of the rows of `x` split into (train, validation, test): the last
/// ⌊test_frac·N⌋ rows of the shuffle are the test set, the ⌊val_frac·(N − test)⌋ before them
/// the validation set. A fraction that holds out no test row, or leaves fewer than 2
/// training rows, is an error naming the counts; `what` names the source.
pub fn split(
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

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::DType;

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
            let e = o.check().unwrap_err().to_string();
            assert!(e.contains("--test-frac must be in (0, 1)"), "{e}");
        }
    }
}
