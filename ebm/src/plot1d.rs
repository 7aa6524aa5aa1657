//! Figures of one-dimensional data: the learned density exp(−E)/Z as a curve over a
//! histogram of the data (density.png) or of model samples (samples.png).

use crate::canvas::{range, write_png, Area};
use crate::error::Error;
use ebm_core::{DType, Tensor};
use ebm_samplers::Target;
use plotters::prelude::*;
use std::path::Path;

/// The normalised density exp(−E)/Z at `n` midpoints of [lo, hi].
pub struct Curve {
    /// The interval.
    pub bounds: (f64, f64),
    /// The midpoints.
    pub x: Vec<f64>,
    /// The density at each midpoint.
    pub p: Vec<f64>,
}

impl Curve {
    /// Evaluates the energy of `target` at the midpoints and normalises by their sum.
    pub fn of(target: &impl Target, (lo, hi): (f64, f64), n: usize) -> Curve {
        let h = (hi - lo) / n as f64;
        let x: Vec<f64> = (0..n).map(|i| lo + (i as f64 + 0.5) * h).collect();
        let e = target
            .energy(&Tensor::from_f64s(&x, &[n, 1], DType::F32))
            .to_vec_f64();
        Curve {
            bounds: (lo, hi),
            x,
            p: crate::plot::normalised(&e, h),
        }
    }
}

/// A density histogram of `values` on `bins` bins of [lo, hi]: (left edge, width, height).
fn histogram(values: &[f64], (lo, hi): (f64, f64), bins: usize) -> Vec<(f64, f64, f64)> {
    let w = (hi - lo) / bins as f64;
    let mut c = vec![0.0; bins];
    for v in values.iter().filter(|v| v.is_finite()) {
        let j = ((v - lo) / w).floor();
        if j >= 0.0 && (j as usize) < bins {
            c[j as usize] += 1.0;
        }
    }
    let total = values.len().max(1) as f64 * w;
    c.iter()
        .enumerate()
        .map(|(j, k)| (lo + j as f64 * w, w, k / total))
        .collect()
}

/// One chart: the histogram of `values` (bars) and the model's curve (line).
fn panel(
    area: &Area,
    values: &[f64],
    curve: &Curve,
    title: &str,
    what: &str,
) -> Result<(), String> {
    let bars = histogram(values, curve.bounds, 60);
    let top = bars
        .iter()
        .map(|b| b.2)
        .chain(curve.p.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-12);
    let (lo, hi) = curve.bounds;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (crate::plot::FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(range(lo, hi)?, range(0.0, 1.08 * top)?)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x")
        .y_desc("density")
        .label_style((crate::plot::FONT, 13))
        .axis_desc_style((crate::plot::FONT, 15))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(
            bars.iter().map(|&(x0, w, h)| {
                Rectangle::new([(x0, 0.0), (x0 + w, h)], BLUE.mix(0.35).filled())
            }),
        )
        .map_err(|e| e.to_string())?
        .label(what)
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.mix(0.35).filled()));
    chart
        .draw_series(LineSeries::new(
            curve.x.iter().zip(&curve.p).map(|(&x, &p)| (x, p)),
            RED.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label("model exp(−E)/Z")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font((crate::plot::FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// `density.png` of 1-D data: a histogram of the training rows under the learned density.
pub fn density_png(path: &Path, data: &[f64], model: &Curve, title: &str) -> Result<(), Error> {
    crate::plot::fonts();
    write_png(path, (900, 560), |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        panel(root, data, model, title, "data (histogram)")
    })
}

/// `samples.png` of 1-D data: a histogram of model samples under the learned density.
pub fn samples_png(path: &Path, samples: &[f64], model: &Curve, title: &str) -> Result<(), Error> {
    crate::plot::fonts();
    write_png(path, (900, 560), |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        panel(root, samples, model, title, "samples (histogram)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E(x) = x²/2: the standard normal.
    struct Half;
    impl Target for Half {
        fn energy(&self, x: &Tensor) -> Tensor {
            x.mul(x).sum_axes(&[1], false).mul_scalar(0.5)
        }
        fn score(&self, x: &Tensor) -> Tensor {
            x.neg()
        }
    }

    #[test]
    fn the_curve_is_a_normalised_density_and_the_histogram_integrates_to_one() {
        let c = Curve::of(&Half, (-6.0, 6.0), 600);
        let h = 12.0 / 600.0;
        assert!((c.p.iter().sum::<f64>() * h - 1.0).abs() < 1e-9);
        let peak = c.p.iter().cloned().fold(0.0, f64::max);
        // 1/√(2π) = 0.3989 (f32 energies)
        assert!((peak - 0.398_942).abs() < 1e-3, "{peak}");
        let v: Vec<f64> = (0..1000).map(|i| -2.0 + 4.0 * i as f64 / 1000.0).collect();
        let bars = histogram(&v, (-3.0, 3.0), 30);
        let mass: f64 = bars.iter().map(|b| b.1 * b.2).sum();
        assert!((mass - 1.0).abs() < 1e-12, "{mass}");
    }
}
