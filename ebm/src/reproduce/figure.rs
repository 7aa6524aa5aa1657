//! The figures of `ebm reproduce`: panels of line charts (linear or log axes, error bars,
//! dashed reference lines), bar charts with error bars, and density heat maps with points
//! (drawn by [`crate::plot`]), laid out in a grid and written atomically as one PNG.

use crate::canvas::{range, write_png, Area};
use crate::error::Error;
use crate::plot::{fonts, Grid, FONT};
use ebm_core::Tensor;
use plotters::prelude::*;
use std::path::Path;

/// Colours of successive series: distinguishable, and readable on white.
const PALETTE: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(90, 90, 90),
];

/// How an axis maps values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Values as they are.
    Linear,
    /// log₁₀ (non-positive values are left out).
    Log,
}

/// One line of a chart: points, optional ± error bars, and how it is drawn.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend's text (empty: not in the legend).
    pub label: String,
    /// (x, y) points in order.
    pub points: Vec<(f64, f64)>,
    /// Half-widths of the error bars, one per point (empty: none).
    pub err: Vec<f64>,
    /// A dashed line without markers (a reference: theory, a closed form, a slope).
    pub dashed: bool,
    /// Palette index.
    pub color: usize,
}

impl Series {
    /// A solid line with markers in palette colour `color`.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Series {
        Series {
            label: label.into(),
            points,
            err: Vec::new(),
            dashed: false,
            color,
        }
    }

    /// A dashed reference line in palette colour `color`.
    pub fn reference(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Series {
        Series {
            dashed: true,
            ..Series::new(label, points, color)
        }
    }

    /// With ± error bars of these half-widths.
    pub fn with_err(mut self, err: Vec<f64>) -> Series {
        assert_eq!(err.len(), self.points.len(), "one error bar per point");
        self.err = err;
        self
    }
}

/// Where a chart's legend goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legend {
    /// Upper left corner.
    UpperLeft,
    /// Upper right corner.
    UpperRight,
    /// Lower left corner.
    LowerLeft,
    /// Lower right corner.
    LowerRight,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// The title above the panel.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// How the x axis maps values.
    pub x_scale: Scale,
    /// How the y axis maps values.
    pub y_scale: Scale,
    /// The lines drawn.
    pub series: Vec<Series>,
    /// Where the legend goes.
    pub legend: Legend,
}

impl Chart {
    /// An empty chart with linear axes and the legend at the upper left.
    pub fn new(title: impl Into<String>, x_label: &str, y_label: &str) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
            legend: Legend::UpperLeft,
        }
    }

    /// With these axis scales.
    pub fn scales(mut self, x: Scale, y: Scale) -> Chart {
        self.x_scale = x;
        self.y_scale = y;
        self
    }

    /// With the legend at `legend`.
    pub fn legend(mut self, legend: Legend) -> Chart {
        self.legend = legend;
        self
    }

    /// With one more series.
    pub fn series(mut self, s: Series) -> Chart {
        self.series.push(s);
        self
    }
}

/// A bar chart: one bar per label with a ± error bar, and horizontal reference lines.
#[derive(Clone, Debug)]
pub struct Bars {
    /// The title above the panel.
    pub title: String,
    /// The y axis' label.
    pub y_label: String,
    /// (label, value, error half-width, palette colour).
    pub bars: Vec<(String, f64, f64, usize)>,
    /// (label, value): dashed horizontal lines.
    pub references: Vec<(String, f64)>,
    /// The y range drawn.
    pub y_range: (f64, f64),
}

/// One panel of a figure.
pub enum Panel {
    /// A line chart.
    Chart(Chart),
    /// A bar chart.
    Bars(Bars),
    /// A density heat map (exp(−E)/Z or a histogram) with optional points drawn over it.
    Density {
        /// The title above the panel.
        title: String,
        /// The density on a grid.
        grid: Grid,
        /// Points drawn over it (the first two columns).
        points: Option<Tensor>,
    },
}

/// A titled grid of panels.
pub struct Figure {
    /// The title above the panel.
    pub title: String,
    /// The panels, row by row.
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub columns: usize,
    /// Pixels of one panel.
    pub panel_size: (u32, u32),
}

impl Figure {
    /// A figure of `panels`, `columns` to a row, each `panel_size` pixels, under `title`.
    pub fn new(
        title: String,
        panels: Vec<Panel>,
        columns: usize,
        panel_size: (u32, u32),
    ) -> Figure {
        Figure {
            title,
            panels,
            columns,
            panel_size,
        }
    }

    /// Writes the figure to `path` as a PNG, atomically.
    pub fn write_png(&self, path: &Path) -> Result<(), Error> {
        fonts();
        let cols = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        let (pw, ph) = self.panel_size;
        let size = (pw * cols as u32, ph * rows as u32 + 40);
        write_png(path, size, |root| {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (top, body) = root.split_vertically(40);
            top.titled(&self.title, (FONT, 20))
                .map_err(|e| e.to_string())?;
            let areas = body.split_evenly((rows, cols));
            for (area, panel) in areas.iter().zip(&self.panels) {
                match panel {
                    Panel::Chart(c) => draw_chart(area, c)?,
                    Panel::Bars(b) => draw_bars(area, b)?,
                    Panel::Density {
                        title,
                        grid,
                        points,
                    } => crate::plot::heat_panel(area, grid, title, points.as_ref())?,
                }
            }
            Ok(())
        })
    }
}

/// A value mapped to the axis: itself, or log₁₀ of it (None when it cannot be drawn).
fn to_axis(v: f64, scale: Scale) -> Option<f64> {
    match scale {
        Scale::Linear => v.is_finite().then_some(v),
        Scale::Log => (v.is_finite() && v > 0.0).then(|| v.log10()),
    }
}

/// The padded axis range of `values` (already mapped to the axis).
fn axis_range(values: impl Iterator<Item = f64>, scale: Scale) -> Result<(f64, f64), String> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return Err("no finite values to draw".into());
    }
    let span = (hi - lo).max(match scale {
        Scale::Linear => 1e-9 * lo.abs().max(1e-9),
        Scale::Log => 0.2,
    });
    let pad = 0.06 * span;
    let mid = 0.5 * (lo + hi);
    let half = 0.5 * span + pad;
    Ok((mid - half, mid + half))
}

/// A tick label: on a log axis 10^v, only at whole decades when the axis spans one or more.
fn tick(v: f64, scale: Scale, whole_decades: bool, span: f64) -> String {
    match scale {
        Scale::Log => {
            let r = v.round();
            if whole_decades && (v - r).abs() > 1e-6 {
                return String::new();
            }
            let x = 10f64.powf(v);
            if whole_decades && (-3.0..=4.0).contains(&r) {
                format!("{}", 10f64.powi(r as i32))
            } else if whole_decades {
                format!("1e{r}")
            } else {
                format!("{x:.2}")
            }
        }
        Scale::Linear => {
            let digits = (2.0 - span.abs().max(1e-12).log10().floor()).clamp(0.0, 6.0) as usize;
            format!("{v:.digits$}")
        }
    }
}

/// How many labels to ask plotters for: on a log axis spanning a decade or more, few enough
/// that its nice steps are whole decades.
fn label_count(scale: Scale, span: f64) -> usize {
    match scale {
        Scale::Log if span >= 1.0 => (span.ceil() as usize + 1).clamp(2, 12),
        _ => 8,
    }
}

fn draw_chart(area: &Area, c: &Chart) -> Result<(), String> {
    let map = |s: &Series| -> Vec<(f64, f64, f64, f64)> {
        // (x, y, y − err, y + err) on the axes
        s.points
            .iter()
            .enumerate()
            .filter_map(|(i, &(x, y))| {
                let e = s.err.get(i).copied().unwrap_or(0.0);
                let (ax, ay) = (to_axis(x, c.x_scale)?, to_axis(y, c.y_scale)?);
                let lo = to_axis(y - e, c.y_scale).unwrap_or(ay);
                let hi = to_axis(y + e, c.y_scale).unwrap_or(ay);
                Some((ax, ay, lo, hi))
            })
            .collect()
    };
    let mapped: Vec<Vec<(f64, f64, f64, f64)>> = c.series.iter().map(map).collect();
    let all = || mapped.iter().flatten();
    let xr = axis_range(all().map(|p| p.0), c.x_scale)?;
    let yr = axis_range(all().flat_map(|p| [p.1, p.2, p.3]), c.y_scale)?;
    let whole = |r: (f64, f64)| r.1 - r.0 >= 1.0;
    let (wx, wy) = (whole(xr), whole(yr));
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, (FONT, 17))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(62)
        .build_cartesian_2d(range(xr.0, xr.1)?, range(yr.0, yr.1)?)
        .map_err(|e| e.to_string())?;
    let (xs, ys) = (c.x_scale, c.y_scale);
    let (sx, sy) = (xr.1 - xr.0, yr.1 - yr.0);
    let x_fmt = move |v: &f64| tick(*v, xs, wx, sx);
    let y_fmt = move |v: &f64| tick(*v, ys, wy, sy);
    chart
        .configure_mesh()
        .light_line_style(RGBColor(246, 246, 246))
        .bold_line_style(RGBColor(222, 222, 222))
        .x_labels(label_count(xs, sx))
        .y_labels(label_count(ys, sy))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (s, pts) in c.series.iter().zip(&mapped) {
        let color = PALETTE[s.color % PALETTE.len()];
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
        let anno = if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(line, 8, 5, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
        } else {
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            for p in pts.iter().filter(|p| p.3 > p.2) {
                let bar = [(p.0, p.2), (p.0, p.3)];
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        bar,
                        color.stroke_width(1),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| e.to_string())?
        };
        if !s.label.is_empty() {
            anno.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    let pos = match c.legend {
        Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
        Legend::UpperRight => SeriesLabelPosition::UpperRight,
        Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
        Legend::LowerRight => SeriesLabelPosition::LowerRight,
    };
    chart
        .configure_series_labels()
        .position(pos)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(|e| e.to_string())
}

fn draw_bars(area: &Area, b: &Bars) -> Result<(), String> {
    let n = b.bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(&b.title, (FONT, 17))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(62)
        .build_cartesian_2d(range(0.0, n)?, range(b.y_range.0, b.y_range.1)?)
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = b.bars.iter().map(|r| r.0.clone()).collect();
    let x_fmt = move |v: &f64| {
        // a label under each bar's centre
        let i = (v - 0.5).round();
        if (v - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_labels(2 * b.bars.len() + 1)
        .x_label_formatter(&x_fmt)
        .y_desc(b.y_label.as_str())
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (_, v, e, c)) in b.bars.iter().enumerate() {
        let color = PALETTE[c % PALETTE.len()];
        let x0 = i as f64 + 0.2;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, b.y_range.0.max(0.0).min(*v)), (x0 + 0.6, *v)],
                color.mix(0.75).filled(),
            )))
            .map_err(|e| e.to_string())?;
        let xc = i as f64 + 0.5;
        let whisker = [
            PathElement::new(vec![(xc, v - e), (xc, v + e)], BLACK.stroke_width(2)),
            PathElement::new(
                vec![(xc - 0.1, v - e), (xc + 0.1, v - e)],
                BLACK.stroke_width(2),
            ),
            PathElement::new(
                vec![(xc - 0.1, v + e), (xc + 0.1, v + e)],
                BLACK.stroke_width(2),
            ),
        ];
        chart.draw_series(whisker).map_err(|e| e.to_string())?;
    }
    for (k, (label, v)) in b.references.iter().enumerate() {
        let color = PALETTE[(k + 1) % PALETTE.len()];
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, *v), (n, *v)],
                8,
                5,
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    if !b.references.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_label_whole_decades_and_linear_ticks_fit_the_span() {
        assert_eq!(tick(-3.0, Scale::Log, true, 3.0), "0.001");
        assert_eq!(tick(2.0, Scale::Log, true, 3.0), "100");
        assert_eq!(tick(-6.0, Scale::Log, true, 3.0), "1e-6");
        assert_eq!(tick(-2.5, Scale::Log, true, 3.0), "");
        assert_eq!(tick(0.5, Scale::Log, false, 0.5), "3.16");
        assert_eq!(tick(0.25, Scale::Linear, false, 1.0), "0.25");
        assert_eq!(tick(2.0, Scale::Linear, false, 300.0), "2");
        assert_eq!(to_axis(-1.0, Scale::Log), None);
        assert_eq!(to_axis(100.0, Scale::Log), Some(2.0));
    }

    #[test]
    fn every_panel_kind_draws_and_an_empty_chart_is_an_error() {
        let dir = std::env::temp_dir().join(format!("ebm-figure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = Chart::new("lines", "σ", "variance")
            .scales(Scale::Log, Scale::Log)
            .series(Series::new("a", vec![(0.1, 1.0), (0.01, 100.0)], 0).with_err(vec![0.5, 20.0]))
            .series(Series::reference("σ⁻²", vec![(0.1, 1.0), (0.01, 100.0)], 1));
        let bars = Bars {
            title: "weights".into(),
            y_label: "w".into(),
            bars: vec![("a".into(), 0.5, 0.02, 0), ("b".into(), 0.8, 0.01, 1)],
            references: vec![("truth".into(), 0.8)],
            y_range: (0.0, 1.0),
        };
        let grid = Grid::histogram(
            &Tensor::from_f64s(&[0.0, 0.0, 1.0, 1.0], &[2, 2], ebm_core::DType::F64),
            &[(-2.0, 2.0), (-2.0, 2.0)],
            8,
        );
        let fig = Figure {
            title: "test".into(),
            panels: vec![
                Panel::Chart(line),
                Panel::Bars(bars),
                Panel::Density {
                    title: "density".into(),
                    grid,
                    points: None,
                },
            ],
            columns: 2,
            panel_size: (300, 240),
        };
        let p = dir.join("f.png");
        fig.write_png(&p).unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[1..4], b"PNG");
        let empty = Figure {
            panels: vec![Panel::Chart(Chart::new("empty", "x", "y"))],
            ..fig
        };
        let err = empty.write_png(&dir.join("g.png")).unwrap_err();
        assert!(err.to_string().contains("no finite values"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
