//! The models of the benchmark: "M2", "M64", the conv energies "C8" and "R28" (issue 14), and
//! the specs of the sweeps and the torchebm shapes, `d{D}w{W}b{B}[p{P}][k{K}][c{C}][s{S}]` (parsed alike by bench/python/common.py's
//! `model_cfg`): MLP D-W-W-1 SiLU, batch B, data 8-Gaussians when D = 2 and N(0, I)
//! otherwise, NCE noise N(0, I); P projections per row for SSM, K Langevin steps per pcd step,
//! C chains and S Langevin steps per timed step for `langevin`.
//!
//! Conv models ([`ebm_nn::ConvEnergy`], 3×3 kernels, SiLU, sum-pool head; mirrored by
//! bench/python/conv_models.py, named in bench/python/common.py's `CONV_MODELS`):
//! - "C8": what `ebm train --data digits --arch conv --hidden 32,32` builds on the 1×8×8
//!   digits (conv 1→32, plain conv 32→32 at 8×8, 2×2 average pool, plain conv 32→32 at 4×4,
//!   Σ over positions, linear 32→1), batch 128, digits / 16.
//! - "R28": a small ResNet energy on 1×28×28 (conv 1→16; one residual block of GroupNorm(4)
//!   at width 16 and 28×28; pool; one block 16→32 with a 1×1 shortcut at 14×14), batch 64,
//!   uniform random images in [0, 1] (timing only: the data does not change the work).

use ebm_nn::ConvEnergyConfig;

/// Where a model's batches come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    /// The 8-Gaussians toy set.
    EightGaussians,
    /// The digits, pixels / 16.
    Digits,
    /// Standard normal rows.
    Normal,
    /// Uniform rows in [0, 1] (random images).
    Uniform,
}

/// One model's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Layer widths D, W, W, 1 of the MLP (conv models: D = C·H·W, then zeros).
    pub widths: [usize; 4],
    /// The conv energy of a conv model (None: the MLP of `widths`).
    pub conv: Option<ConvEnergyConfig>,
    /// Rows per training batch.
    pub batch: usize,
    /// NCE noise standard deviation.
    pub nce_std: f64,
    /// The training data.
    pub data: Data,
    /// SSM projections per row.
    pub projections: usize,
    /// Langevin steps per pcd step.
    pub pcd_steps: usize,
    /// Chains of the `langevin` workload.
    pub chains: usize,
    /// Langevin steps per timed step of the `langevin` workload.
    pub langevin_steps: usize,
    /// `Some(h)`: the `langevin` workload samples the analytic double well
    /// h Σᵢ (xᵢ² − 1)² ([`ebm_samplers::DoubleWell`]) instead of a network energy.
    pub double_well: Option<f64>,
}

/// The barrier height of the `dw…` models (torchebm's double-well default).
pub const DOUBLE_WELL_BARRIER: f64 = 2.0;

/// The model named `name`, or why the name is not one.
pub fn spec(name: &str) -> Result<Spec, String> {
    let base = |widths, batch, nce_std, data| Spec {
        widths,
        conv: None,
        batch,
        nce_std,
        data,
        projections: 1,
        pcd_steps: 20,
        chains: 10_000,
        langevin_steps: 100,
        double_well: None,
    };
    match name {
        "M2" => return Ok(base([2, 128, 128, 1], 1024, 2.0, Data::EightGaussians)),
        "M64" => return Ok(base([64, 256, 256, 1], 256, 1.0, Data::Digits)),
        "C8" => {
            let mut s = base([64, 0, 0, 0], 128, 1.0, Data::Digits);
            s.conv = Some(ConvEnergyConfig::new([1, 8, 8], &[32, 32]));
            return Ok(s);
        }
        "R28" => {
            let mut s = base([784, 0, 0, 0], 64, 1.0, Data::Uniform);
            s.conv = Some(
                ConvEnergyConfig::new([1, 28, 28], &[16, 32])
                    .blocks(1)
                    .norm_groups(4),
            );
            return Ok(s);
        }
        _ => {}
    }
    let bad = || {
        format!(
            "unknown model `{name}` (M2, M64, C8, R28, d<D>w<W>b<B>[p<P>][k<K>][c<C>][s<S>] \
             or dw<D>c<C>s<S>)"
        )
    };
    // dw<D>c<C>s<S>: the analytic double well in D dimensions, C chains, S Langevin steps
    if let Some(rest) = name.strip_prefix("dw") {
        let fields = numbered_fields(rest).ok_or_else(bad)?;
        let [(d_, d), ('c', c), ('s', st)] = fields[..] else {
            return Err(bad());
        };
        if d_ != '\0' {
            return Err(bad());
        }
        let mut s = base([d, 0, 0, 0], 1, 1.0, Data::Normal);
        (s.chains, s.langevin_steps) = (c, st);
        s.double_well = Some(DOUBLE_WELL_BARRIER);
        return Ok(s);
    }
    // letters in this order, each followed by a whole number ≥ 1; d, w and b required
    let fields = numbered_fields(name)
        .filter(|f| f.iter().all(|(c, _)| *c != '\0'))
        .ok_or_else(bad)?;
    let order = ['d', 'w', 'b', 'p', 'k', 'c', 's'];
    let positions: Vec<usize> = fields
        .iter()
        .map(|(c, _)| order.iter().position(|o| o == c))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    if fields.len() < 3 || positions[..3] != [0, 1, 2] || positions.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(bad());
    }
    let get = |c: char| fields.iter().find(|f| f.0 == c).map(|f| f.1);
    let (d, w) = (get('d').unwrap_or(2), get('w').unwrap_or(128));
    let data = if d == 2 {
        Data::EightGaussians
    } else {
        Data::Normal
    };
    let mut s = base([d, w, w, 1], get('b').unwrap_or(1), 1.0, data);
    s.projections = get('p').unwrap_or(1);
    s.pcd_steps = get('k').unwrap_or(20);
    s.chains = get('c').unwrap_or(10_000);
    s.langevin_steps = get('s').unwrap_or(100);
    Ok(s)
}

/// `name` as (letter, whole number ≥ 1) pairs, e.g. "d2w128" → [('d', 2), ('w', 128)]; a
/// leading number without a letter comes first as ('\0', n). `None` if any number is missing,
/// zero or not a number.
fn numbered_fields(name: &str) -> Option<Vec<(char, usize)>> {
    let mut fields = Vec::new();
    let mut rest = name;
    let mut letter = '\0';
    if !rest.starts_with(|ch: char| ch.is_ascii_digit()) {
        letter = rest.chars().next()?;
        rest = &rest[letter.len_utf8()..];
    }
    loop {
        let digits = rest
            .find(|ch: char| !ch.is_ascii_digit())
            .unwrap_or(rest.len());
        let v: usize = rest[..digits].parse().ok()?;
        if v == 0 {
            return None;
        }
        fields.push((letter, v));
        rest = &rest[digits..];
        match rest.chars().next() {
            None => return Some(fields),
            Some(c) => {
                letter = c;
                rest = &rest[c.len_utf8()..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_names_are_refused() {
        assert_eq!(spec("M2").unwrap().widths, [2, 128, 128, 1]);
        assert_eq!(spec("M64").unwrap().data, Data::Digits);
        let c8 = spec("C8").unwrap();
        assert_eq!((c8.widths[0], c8.batch, c8.data), (64, 128, Data::Digits));
        assert_eq!(c8.conv.unwrap().widths, [32, 32]);
        let r28 = spec("R28").unwrap().conv.unwrap();
        assert_eq!(
            (r28.image, r28.blocks, r28.norm_groups),
            ([1, 28, 28], 1, 4)
        );
        let s = spec("d128w128b1024p5k10").unwrap();
        assert_eq!(
            (s.widths, s.batch, s.projections, s.pcd_steps, s.data),
            ([128, 128, 128, 1], 1024, 5, 10, Data::Normal)
        );
        let s = spec("d2w128b1c100000s2").unwrap();
        assert_eq!(
            (s.chains, s.langevin_steps, s.data),
            (100_000, 2, Data::EightGaussians)
        );
        let dw = spec("dw128c1024s100").unwrap();
        assert_eq!(
            (dw.widths[0], dw.chains, dw.langevin_steps, dw.double_well),
            (128, 1024, 100, Some(DOUBLE_WELL_BARRIER))
        );
        assert_eq!(spec("M2").unwrap().double_well, None);
        for bad in [
            "",
            "M3",
            "dw",
            "dw128",
            "dw128c1024",
            "dwc1024s1",
            "dw0c1s1",
            "dw4s1c1",
            "d2w128",
            "w128d2b4",
            "d2w0b4",
            "d2w128b4x1",
            "d2w128b4p",
            "d2w128b4k1p1",
            "d2wxb4",
        ] {
            assert!(spec(bad).is_err(), "{bad:?}");
        }
    }
}
