//! PNG figures with plotters' bitmap backend and an embedded DejaVu Sans, so they render on a
//! machine without any fonts: density beside data, samples over the density, the loss curve,
//! digit grids, and the side-by-side densities of `ebm compare`.

use crate::canvas::range;
use crate::error::Error;
use ebm_core::{DType, Tensor};
use ebm_samplers::Target;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::path::Path;
use std::sync::Once;

pub(crate) const FONT: &str = "sans-serif";

/// Registers the embedded font once per process.
pub(crate) fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ] {
            if plotters::style::register_font(FONT, style, bytes).is_err() {
                panic!("the embedded DejaVu font does not parse");
            }
        }
    });
}

/// exp(−E)/Z at grid cells of volume `cell` from their energies: Z is the cells' sum (a
/// non-finite energy counts as zero density).
pub(crate) fn normalised(e: &[f64], cell: f64) -> Vec<f64> {
    let m = e
        .iter()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, |a, &b| a.min(b));
    let w: Vec<f64> = e
        .iter()
        .map(|v| if v.is_finite() { (m - v).exp() } else { 0.0 })
        .collect();
    let z = w.iter().sum::<f64>() * cell;
    w.iter().map(|v| v / z.max(1e-300)).collect()
}

/// The normalised density exp(−E)/Z on an n×n grid over `bounds` (row-major, y outer).
#[derive(Clone, Debug)]
pub struct Grid {
    /// Cells per side.
    pub n: usize,
    /// The box: (x range, y range).
    pub bounds: [(f64, f64); 2],
    /// The density at each cell's centre.
    pub p: Vec<f64>,
}

impl Grid {
    /// Evaluates the energy of `target` on the grid and normalises by the grid sum.
    pub fn of(target: &impl Target, bounds: &[(f64, f64)], n: usize) -> Grid {
        let b = [bounds[0], bounds[1]];
        let hx = (b[0].1 - b[0].0) / n as f64;
        let hy = (b[1].1 - b[1].0) / n as f64;
        let mut pts = Vec::with_capacity(2 * n * n);
        for i in 0..n {
            for j in 0..n {
                pts.push(b[0].0 + (j as f64 + 0.5) * hx);
                pts.push(b[1].0 + (i as f64 + 0.5) * hy);
            }
        }
        let e = target
            .energy(&Tensor::from_f64s(&pts, &[n * n, 2], DType::F32))
            .to_vec_f64();
        Grid {
            n,
            bounds: b,
            p: normalised(&e, hx * hy),
        }
    }

    /// A 2-D histogram of points, normalised the same way.
    pub fn histogram(x: &Tensor, bounds: &[(f64, f64)], n: usize) -> Grid {
        let b = [bounds[0], bounds[1]];
        let mut c = vec![0.0; n * n];
        let v = x.to_vec_f64();
        let hx = (b[0].1 - b[0].0) / n as f64;
        let hy = (b[1].1 - b[1].0) / n as f64;
        for p in v.chunks(2) {
            let j = ((p[0] - b[0].0) / hx).floor();
            let i = ((p[1] - b[1].0) / hy).floor();
            if j >= 0.0 && i >= 0.0 && (j as usize) < n && (i as usize) < n {
                c[i as usize * n + j as usize] += 1.0;
            }
        }
        let z = (v.len() / 2).max(1) as f64 * hx * hy;
        Grid {
            n,
            bounds: b,
            p: c.iter().map(|v| v / z).collect(),
        }
    }
}

/// One heat map of `grid` (colour by √p) with `points` drawn over it.
pub(crate) fn heat_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    grid: &Grid,
    title: &str,
    points: Option<&Tensor>,
) -> Result<(), String> {
    let [bx, by] = grid.bounds;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(36)
        .build_cartesian_2d(range(bx.0, bx.1)?, range(by.0, by.1)?)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let n = grid.n;
    let hx = (bx.1 - bx.0) / n as f64;
    let hy = (by.1 - by.0) / n as f64;
    // colour by √p so that low-density structure stays visible
    let top = grid
        .p
        .iter()
        .cloned()
        .fold(0.0, f64::max)
        .sqrt()
        .max(1e-300);
    chart
        .draw_series((0..n * n).map(|k| {
            let (i, j) = (k / n, k % n);
            let x0 = bx.0 + j as f64 * hx;
            let y0 = by.0 + i as f64 * hy;
            let c = ViridisRGB::get_color(grid.p[k].sqrt() / top);
            Rectangle::new([(x0, y0), (x0 + hx, y0 + hy)], c.filled())
        }))
        .map_err(|e| e.to_string())?;
    if let Some(x) = points {
        let v = x.to_vec_f64();
        chart
            .draw_series(
                v.chunks(2)
                    .filter(|p| p[0] > bx.0 && p[0] < bx.1 && p[1] > by.0 && p[1] < by.1)
                    .map(|p| Circle::new((p[0], p[1]), 2, RGBColor(255, 80, 40).mix(0.7).filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `density.png`: the data (2-D histogram) beside the learned density exp(−E)/Z.
pub fn density_png(path: &Path, data: &Grid, model: &Grid, title: &str) -> Result<(), Error> {
    fonts();
    crate::canvas::write_png(path, (1100, 580), |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, body) = root.split_vertically(40);
        top.titled(title, (FONT, 20)).map_err(|e| e.to_string())?;
        let panels = body.split_evenly((1, 2));
        heat_panel(&panels[0], data, "data (histogram)", None)?;
        heat_panel(&panels[1], model, "model exp(−E)/Z", None)?;
        Ok(())
    })
}

/// `samples.png`: model samples (dots) over the learned density.
pub fn samples_png(path: &Path, model: &Grid, samples: &Tensor, title: &str) -> Result<(), Error> {
    fonts();
    crate::canvas::write_png(path, (640, 640), |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        heat_panel(root, model, title, Some(samples))?;
        Ok(())
    })
}

/// A scatter of the first two coordinates of samples over data (for d > 2 without images).
pub fn scatter_png(path: &Path, data: &Tensor, samples: &Tensor, title: &str) -> Result<(), Error> {
    fonts();
    let d = data.shape()[1];
    let first2 = |t: &Tensor| -> Vec<(f64, f64)> {
        t.to_vec_f64().chunks(d).map(|r| (r[0], r[1])).collect()
    };
    let (a, b) = (first2(data), first2(samples));
    let lo_hi = |f: fn(&(f64, f64)) -> f64| {
        let v: Vec<f64> = a
            .iter()
            .chain(&b)
            .map(f)
            .filter(|v| v.is_finite())
            .collect();
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let pad = 0.05 * (hi - lo).max(1e-3);
        range(lo - pad, hi + pad)
    };
    crate::canvas::write_png(path, (640, 640), |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(lo_hi(|p| p.0)?, lo_hi(|p| p.1)?)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("x₁")
            .y_desc("x₂")
            .label_style((FONT, 13))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(a.iter().map(|&p| Circle::new(p, 2, BLUE.mix(0.4).filled())))
            .map_err(|e| e.to_string())?
            .label("data")
            .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
        chart
            .draw_series(
                b.iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .map(|&p| Circle::new(p, 2, RED.mix(0.5).filled())),
            )
            .map_err(|e| e.to_string())?
            .label("samples")
            .legend(|(x, y)| Circle::new((x, y), 4, RED.filled()));
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// `loss.png`: the training loss (window means) against the step and, below it, the
/// held-out figure where it was measured; `val_title` names it with its units.
pub fn loss_png(
    path: &Path,
    loss: &[(f64, f64)],
    nll: &[(f64, f64)],
    title: &str,
    val_title: &str,
) -> Result<(), Error> {
    fonts();
    let finite: Vec<(f64, f64)> = loss.iter().copied().filter(|p| p.1.is_finite()).collect();
    if finite.is_empty() {
        return Err(Error::io(format!(
            "cannot draw {}: no loss values",
            path.display()
        )));
    }
    let x_hi = finite.iter().map(|p| p.0).fold(1.0, f64::max);
    crate::canvas::write_png(
        path,
        (800, if nll.is_empty() { 480 } else { 720 }),
        |root| {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (top, bottom) = if nll.is_empty() {
                (root.clone(), None)
            } else {
                let (t, b) = root.split_vertically(450);
                (t, Some(b))
            };
            line_panel(&top, &finite, x_hi, title, "training loss", BLUE)?;
            if let Some(b) = bottom {
                line_panel(&b, nll, x_hi, val_title, "held-out figure", RED)?;
            }
            Ok(())
        },
    )
}

fn line_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    pts: &[(f64, f64)],
    x_hi: f64,
    title: &str,
    y_desc: &str,
    color: RGBColor,
) -> Result<(), String> {
    // robust y range: the 2nd..98th percentile, so the first steps do not flatten the curve
    let mut ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
    ys.sort_by(f64::total_cmp);
    let q = |f: f64| ys[((ys.len() - 1) as f64 * f) as usize];
    let (mut lo, mut hi) = (
        q(0.02),
        q(1.0).min(q(0.98) + 2.0 * (q(0.98) - q(0.02)).abs()),
    );
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let pad = 0.05 * (hi - lo);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(range(0.0, x_hi)?, range(lo - pad, hi + pad)?)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.3}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|&(s, l)| (s, l.clamp(lo - pad, hi + pad))),
            color.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;
    if pts.len() <= 50 {
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A 10×10 grid of `[C, H, W]` images (values in [0, 1], C = 1 as dark ink on white, C = 3
/// in colour): model samples beside data.
pub fn digits_png(
    path: &Path,
    samples: &Tensor,
    data: &Tensor,
    [c, h, w]: [usize; 3],
    title: &str,
) -> Result<(), Error> {
    fonts();
    const COLS: usize = 10;
    const ROWS: usize = 10;
    const SCALE: i32 = 5;
    let tile = (w as i32 * SCALE + 4, h as i32 * SCALE + 4);
    let panel = (COLS as i32 * tile.0, ROWS as i32 * tile.1);
    let size = ((2 * panel.0 + 60) as u32, (panel.1 + 80) as u32);
    crate::canvas::write_png(path, size, |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        root.draw(&Text::new(title, (20, 8), (FONT, 20).into_font()))
            .map_err(|e| e.to_string())?;
        for (p, (x, name)) in [(samples, "model samples"), (data, "data")]
            .iter()
            .enumerate()
        {
            let ox = 20 + p as i32 * (panel.0 + 20);
            let oy = 60;
            root.draw(&Text::new(*name, (ox, 36), (FONT, 16).into_font()))
                .map_err(|e| e.to_string())?;
            let v = x.to_vec_f64();
            let d = c * h * w;
            let level = |v: f64| (255.0 * v.clamp(0.0, 1.0)) as u8;
            for (k, img) in v.chunks(d).take(COLS * ROWS).enumerate() {
                let (tr, tc) = ((k / COLS) as i32, (k % COLS) as i32);
                for q in 0..h * w {
                    // one channel: ink dark on white; three: the colours as they are
                    let colour = if c == 3 {
                        RGBColor(
                            level(img[q]),
                            level(img[h * w + q]),
                            level(img[2 * h * w + q]),
                        )
                    } else {
                        let g = 255 - level(img[q]);
                        RGBColor(g, g, g)
                    };
                    let (r, col) = ((q / w) as i32, (q % w) as i32);
                    let x0 = ox + tc * tile.0 + 2 + col * SCALE;
                    let y0 = oy + tr * tile.1 + 2 + r * SCALE;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + SCALE, y0 + SCALE)],
                        colour.filled(),
                    ))
                    .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    })
}

/// `ebm compare`: the data and each model's density side by side, titled with its NLL.
pub fn compare_png(path: &Path, panels: &[(String, Grid)], title: &str) -> Result<(), Error> {
    fonts();
    let k = panels.len().max(1);
    crate::canvas::write_png(path, ((380 * k) as u32, 440), |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, body) = root.split_vertically(40);
        top.titled(title, (FONT, 20)).map_err(|e| e.to_string())?;
        let areas = body.split_evenly((1, k));
        for (a, (name, g)) in areas.iter().zip(panels) {
            heat_panel(a, g, name, None)?;
        }
        Ok(())
    })
}
