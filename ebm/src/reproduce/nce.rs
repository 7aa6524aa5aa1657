//! Experiment 6: NCE needs noise close to the data.
//!
//! NCE (Gutmann & Hyvärinen 2010) is logistic regression of data against noise q, with log Z a
//! learned parameter. It is consistent for any q that covers the data, but its variance
//! explodes when q is far from p: noise much wider than the data rarely lands where the model
//! must be pinned down, much narrower noise says nothing about the tails, and noise shifted
//! away from the data makes the classification easy, so its gradient vanishes before the model
//! is right (Gutmann & Hyvärinen 2012; Rhodes et al. 2020's "density chasm").
//!
//! A diagonal-Gaussian energy is fitted by NCE (ν = 1) to draws of N(μ, diag v), with q the
//! Gaussian of the data's mean and covariance scaled by a width factor r, or shifted by δ data
//! standard deviations in every coordinate. Over independent replicates the experiment
//! measures the test NLL's excess over the data entropy and the error of NCE's log Z against
//! the model's log Z by grid quadrature (a by-product NCE gets for free).

use super::common::{diagonal_gaussian, fast_adam, fit, mean_se};
use super::figure::{Chart, Figure, Legend, Panel, Scale, Series};
use super::{Budget, Measured};
use ebm_core::{DType, Rng, Tensor};
use ebm_objectives::eval::{grid_log_z, nll};
use ebm_objectives::{ModelTarget, Nce, NoiseDistribution};
use serde::Serialize;

/// The data's mean and standard deviations.
const MU: [f64; 2] = [1.0, -0.5];
const SD: [f64; 2] = [0.5, 1.0];

/// The data entropy ½Σⱼ log 2πe vⱼ.
fn entropy() -> f64 {
    SD.iter()
        .map(|s| 0.5 * (std::f64::consts::TAU * std::f64::consts::E * s * s).ln())
        .sum()
}

/// One noise setting: its width factor r and shift δ, and what the replicates measured.
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    /// The noise's width factor r (its covariance is r² times the data's).
    pub width: f64,
    /// The noise mean's shift δ, in data standard deviations per coordinate.
    pub shift: f64,
    /// Test NLL − entropy (nats), mean ± SE over replicates.
    pub excess_nll: f64,
    /// Its standard error over replicates.
    pub excess_nll_se: f64,
    /// |log Z_NCE − log Z_grid|, mean ± SE over replicates.
    pub log_z_error: f64,
    /// Its standard error over replicates.
    pub log_z_error_se: f64,
    /// NCE's log Z and the grid's, per replicate.
    pub nce_log_z: Vec<f64>,
    /// The model's log Z by quadrature, per replicate.
    pub grid_log_z: Vec<f64>,
}

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct Numbers {
    /// Settings with δ = 0, by width; then settings with width 1, by shift.
    pub by_width: Vec<Setting>,
    /// Settings with width 1, by shift (the first: δ = 0).
    pub by_shift: Vec<Setting>,
    /// The data entropy (nats).
    pub entropy: f64,
    /// Independent replicates per setting.
    pub replicates: usize,
    /// Training rows per replicate.
    pub train_rows: usize,
    /// Adam steps per fit.
    pub steps: u64,
}

/// Fits NCE with noise (width r, shift δ) over `reps` replicates.
fn setting(width: f64, shift: f64, budget: Budget, reps: usize, rng: &mut Rng) -> Setting {
    let (rows, steps) = budget.pick((1000, 400), (500, 200));
    let mu = Tensor::from_vec(MU.to_vec(), &[2]);
    let sd = Tensor::from_vec(SD.to_vec(), &[2]);
    let draw = |k: usize, rng: &mut Rng| rng.normal(&[k, 2], DType::F64).mul(&sd).add(&mu);
    let (mut excess, mut err, mut nce_z, mut grid_z) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        let train = draw(rows, rng);
        let test = draw(5000, rng);
        // the data's Gaussian, scaled by r and moved by δ standard deviations
        let noise = NoiseDistribution::fitted(&train.add(&sd.mul_scalar(shift)), width);
        let mut nce = Nce::new(noise, 1.0, 0.0, DType::F64);
        let mut model = diagonal_gaussian(2);
        fit(
            &mut nce,
            &mut model,
            steps,
            fast_adam(0.05),
            |_| train.clone(),
            rng,
        );
        let target = ModelTarget::new(&model);
        let z = grid_log_z(&target, &[(-6.0, 8.0), (-8.0, 7.0)], 160, 1e-6, DType::F64).log_z;
        excess.push(nll(&target, &test, z) - entropy());
        err.push((nce.log_z() - z).abs());
        nce_z.push(nce.log_z());
        grid_z.push(z);
    }
    let (e, e_se) = mean_se(&excess);
    let (z, z_se) = mean_se(&err);
    Setting {
        width,
        shift,
        excess_nll: e,
        excess_nll_se: e_se,
        log_z_error: z,
        log_z_error_se: z_se,
        nce_log_z: nce_z,
        grid_log_z: grid_z,
    }
}

/// Every setting.
pub fn measure(budget: Budget, rng: &mut Rng) -> Numbers {
    let reps = budget.pick(6, 3);
    let widths = budget.pick(
        vec![0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
        vec![0.25, 1.0, 4.0],
    );
    let shifts = budget.pick(vec![1.0, 2.0, 3.0, 4.0], vec![4.0]);
    let by_width: Vec<Setting> = widths
        .iter()
        .map(|&w| setting(w, 0.0, budget, reps, rng))
        .collect();
    let base = by_width
        .iter()
        .find(|s| s.width == 1.0)
        .expect("width 1 is measured")
        .clone();
    let mut by_shift = vec![base];
    by_shift.extend(shifts.iter().map(|&d| setting(1.0, d, budget, reps, rng)));
    let (rows, steps) = budget.pick((1000, 400), (500, 200));
    Numbers {
        by_width,
        by_shift,
        entropy: entropy(),
        replicates: reps,
        train_rows: rows,
        steps,
    }
}

/// Whether a is larger than b by more than 4 combined SEs.
fn worse(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 - b.0 > 4.0 * a.1.hypot(b.1)
}

impl Numbers {
    fn best(&self) -> &Setting {
        &self.by_shift[0]
    }
}

impl Measured for Numbers {
    /// Noise matched to the data (r = 1, δ = 0) gives the smallest log Z error of all widths,
    /// and the narrowest noise and the largest shift are worse than it by more than 4 SE in
    /// both the NLL excess and the log Z error.
    fn holds(&self) -> bool {
        let b = self.best();
        let z = |s: &Setting| (s.log_z_error, s.log_z_error_se);
        let nll = |s: &Setting| (s.excess_nll, s.excess_nll_se);
        let narrowest = &self.by_width[0];
        let farthest = self.by_shift.last().expect("shifts");
        let smallest = self
            .by_width
            .iter()
            .all(|s| s.width == 1.0 || s.log_z_error > b.log_z_error);
        smallest
            && worse(z(narrowest), z(b))
            && worse(nll(narrowest), nll(b))
            && worse(z(farthest), z(b))
            && worse(nll(farthest), nll(b))
    }

    /// The measured figures in a sentence.
    fn summary(&self) -> String {
        let (b, n, w, f) = (
            self.best(),
            &self.by_width[0],
            self.by_width.last().expect("widths"),
            self.by_shift.last().expect("shifts"),
        );
        let show = |s: &Setting| {
            format!(
                "NLL excess {:.4} ± {:.4}, |log Z error| {:.4} ± {:.4}",
                s.excess_nll, s.excess_nll_se, s.log_z_error, s.log_z_error_se
            )
        };
        format!(
            "noise matched to the data: {}; {}× as wide: {}; {}× as wide: {}; shifted by {} SD: {}",
            show(b),
            n.width,
            show(n),
            w.width,
            show(w),
            f.shift,
            show(f)
        )
    }

    /// Both errors against the width, and against the shift.
    fn figure(&self) -> Figure {
        let chart =
            |title: &str, x_label: &str, settings: &[Setting], x: fn(&Setting) -> f64, log_x| {
                let pts = |y: fn(&Setting) -> f64| settings.iter().map(|s| (x(s), y(s))).collect();
                let errs = |e: fn(&Setting) -> f64| settings.iter().map(e).collect();
                Chart::new(title, x_label, "nats")
                    .scales(if log_x { Scale::Log } else { Scale::Linear }, Scale::Log)
                    .legend(Legend::UpperLeft)
                    .series(
                        Series::new("test NLL − entropy (± SE)", pts(|s| s.excess_nll), 0)
                            .with_err(errs(|s| s.excess_nll_se)),
                    )
                    .series(
                        Series::new("|log Z_NCE − log Z_grid| (± SE)", pts(|s| s.log_z_error), 1)
                            .with_err(errs(|s| s.log_z_error_se)),
                    )
            };
        let width = chart(
            "noise N(mean, r²·Cov) of the data",
            "width factor r",
            &self.by_width,
            |s| s.width,
            true,
        );
        let shift = chart(
            "noise N(mean + δ·sd, Cov) of the data",
            "shift δ (data standard deviations)",
            &self.by_shift,
            |s| s.shift,
            false,
        );
        let title = format!(
            "NCE needs noise close to the data (diagonal Gaussian, {} rows, ν = 1, {} replicates)",
            self.train_rows, self.replicates
        );
        Figure::new(
            title,
            vec![Panel::Chart(width), Panel::Chart(shift)],
            2,
            (580, 440),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nce_fits_best_with_noise_like_the_data() {
        let n = measure(Budget::Quick, &mut Rng::new(4));
        // NCE's log Z is the grid's where the noise matches the data
        let b = &n.by_shift[0];
        assert!(b.log_z_error < 0.05, "log Z off by {}", b.log_z_error);
        assert!(n.holds(), "{}", n.summary());
    }
}
