//! What each objective requires of its options; messages spell option names as the caller
//! asks (`--sigma-min` on a command line, `sigma_min` in a library).

use super::{DataFacts, ObjectiveOptions, Spell};
use crate::{Domain, RatioMatching};

/// `v` finite and > 0.
fn positive(name: &str, v: f64, spell: &Spell) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{} must be a positive number, got {v}",
            spell(name)
        ))
    }
}

/// `lo` < `hi`, both positive.
fn ordered(lo: (&str, f64), hi: (&str, f64), spell: &Spell) -> Result<(), String> {
    positive(lo.0, lo.1, spell)?;
    positive(hi.0, hi.1, spell)?;
    if lo.1 >= hi.1 {
        return Err(format!(
            "{} ({}) must be below {} ({})",
            spell(lo.0),
            lo.1,
            spell(hi.0),
            hi.1
        ));
    }
    Ok(())
}

/// A count of at least `min`.
fn at_least(name: &str, v: usize, min: usize, spell: &Spell) -> Result<(), String> {
    if v < min {
        return Err(format!("{} must be at least {min}, got {v}", spell(name)));
    }
    Ok(())
}

fn t_min_ok(o: &ObjectiveOptions, spell: &Spell) -> Result<(), String> {
    if !(o.t_min > 0.0 && o.t_min < 1.0) {
        return Err(format!(
            "{} must be in (0, 1), got {}",
            spell("t_min"),
            o.t_min
        ));
    }
    Ok(())
}

pub(super) fn check_sigma(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("sigma", o.sigma, s)
}

pub(super) fn check_none(_: &ObjectiveOptions, _: &Spell) -> Result<(), String> {
    Ok(())
}

pub(super) fn check_ssm(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    at_least("projections", o.projections, 1, s)
}

pub(super) fn check_nce(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("nce_ratio", o.nce_ratio, s)?;
    positive("nce_inflate", o.nce_inflate, s)
}

pub(super) fn check_mcmc(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("langevin_eps", o.langevin_eps, s)?;
    if !(o.langevin_noise.is_finite() && o.langevin_noise >= 0.0) {
        return Err(format!(
            "{} must be 0 (tied Langevin) or positive (SGLD's noise), got {}",
            s("langevin_noise"),
            o.langevin_noise
        ));
    }
    at_least("langevin_steps", o.langevin_steps, 1, s)?;
    if !(0.0..=1.0).contains(&o.reinit) {
        return Err(format!(
            "{} must be in [0, 1], got {}",
            s("reinit"),
            o.reinit
        ));
    }
    if !(o.alpha.is_finite() && o.alpha >= 0.0) {
        return Err(format!("{} must be ≥ 0, got {}", s("alpha"), o.alpha));
    }
    Ok(())
}

pub(super) fn check_pcd(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    check_mcmc(o, s)?;
    at_least("buffer_size", o.buffer_size, 1, s)
}

pub(super) fn check_ncsn(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    ordered(("sigma_min", o.sigma_min), ("sigma_max", o.sigma_max), s)?;
    at_least("levels", o.levels, 2, s)
}

pub(super) fn check_ve(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    ordered(("sigma_min", o.sigma_min), ("sigma_max", o.sigma_max), s)?;
    t_min_ok(o, s)
}

pub(super) fn check_vp(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    ordered(("beta_min", o.beta_min), ("beta_max", o.beta_max), s)?;
    t_min_ok(o, s)
}

pub(super) fn check_cnce(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("epsilon", o.epsilon, s)
}

pub(super) fn check_fce(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("nce_ratio", o.nce_ratio, s)?;
    at_least("flow_couplings", o.flow_couplings, 1, s)
}

pub(super) fn check_mpf(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("mpf_sigma", o.mpf_sigma, s)?;
    at_least("neighbours", o.neighbours, 2, s)?;
    if !o.neighbours.is_multiple_of(2) {
        return Err(format!(
            "{} must be even (antithetic pairs), got {}",
            s("neighbours"),
            o.neighbours
        ));
    }
    Ok(())
}

pub(super) fn check_mvl(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("mvl_step", o.mvl_step, s)
}

pub(super) fn check_ksd(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    if !(o.ksd_bandwidth.is_finite() && o.ksd_bandwidth >= 0.0) {
        return Err(format!(
            "{} must be ≥ 0 (0: the median heuristic), got {}",
            s("ksd_bandwidth"),
            o.ksd_bandwidth
        ));
    }
    Ok(())
}

pub(super) fn check_lsd(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("lsd_lambda", o.lsd_lambda, s)
}

pub(super) fn check_ed(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("ed_t", o.ed_t, s)?;
    at_least("contrasts", o.contrasts, 1, s)
}

pub(super) fn check_drl(o: &ObjectiveOptions, s: &Spell) -> Result<(), String> {
    positive("drl_sigma", o.drl_sigma, s)?;
    at_least("drl_steps", o.drl_steps, 1, s)
}

pub(super) fn any_data(_: &DataFacts) -> Result<(), String> {
    Ok(())
}

/// Generalised SM's domain is [0, ∞)ᵈ (or [0, 1]ᵈ): standardised or signed data are outside.
pub(super) fn non_negative_data(d: &DataFacts) -> Result<(), String> {
    if Domain::NonNegative.contains(d.fit_rows) {
        Ok(())
    } else {
        Err("gsm trains on data in [0, ∞)ᵈ, and these data have negative values (for a CSV or .npy file, pass --no-standardize)".into())
    }
}

/// Ratio matching is for binary data: every value 0 or 1.
pub(super) fn binary_data(d: &DataFacts) -> Result<(), String> {
    if RatioMatching::is_binary(d.fit_rows) {
        Ok(())
    } else {
        Err("ratio-matching trains on binary data (every value 0 or 1), and these data have other values (for a CSV or .npy file, pass --no-standardize)".into())
    }
}
