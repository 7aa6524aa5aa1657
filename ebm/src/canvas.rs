//! PNG files drawn in memory and written atomically: a figure is rendered into an RGB buffer,
//! encoded, and written by temp file + rename, so a full disk or a kill mid-write leaves the
//! old file or none, never a truncated picture.

use crate::error::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The drawing area of a figure in memory.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws a `w`×`h` figure with `draw` and writes it to `path` as a PNG, atomically.
pub fn write_png(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&Area) -> Result<(), String>,
) -> Result<(), Error> {
    let fail = |e: String| Error::io(format!("cannot draw {}: {e}", path.display()));
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| fail(e.to_string()))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| fail(e.to_string()))?;
    }
    crate::io::write_atomic(path, &bytes)
}

/// An axis range: finite ends, `lo < hi`, within ±10³⁰ (plotters loops for ever laying out
/// ticks on an unbounded axis).
pub fn range(lo: f64, hi: f64) -> Result<std::ops::Range<f64>, String> {
    if lo.is_finite() && hi.is_finite() && lo < hi && lo.abs().max(hi.abs()) <= 1e30 {
        Ok(lo..hi)
    } else {
        Err(format!("the axis range [{lo}, {hi}] cannot be drawn"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_lands_whole_and_a_failed_one_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("ebm-canvas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.png");
        write_png(&p, (40, 30), |a| a.fill(&RED).map_err(|e| e.to_string())).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let err = write_png(&dir.join("g.png"), (40, 30), |_| Err("no".into())).unwrap_err();
        assert!(err.to_string().contains("cannot draw"), "{err}");
        assert!(range(0.0, f64::INFINITY).is_err() && range(1.0, 1.0).is_err());
        assert!(range(-1e31, 0.0).is_err() && range(-1.0, 2.0).is_ok());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "only f.png: no temp file, no partial g.png");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
