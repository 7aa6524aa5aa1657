//! log Z of a custom energy by grid quadrature and by annealed importance sampling, against
//! its closed form. The energy is Neal's funnel in two dimensions with scale s,
//!   E(v, w) = v²/(2s²) + w²·e^(−v)/2 + v/2,
//! whose w-integral is √(2π)·e^(v/2), so Z = 2πs; its exact draws are v = s·z₀, w = e^(v/2)·z₁.
//! - Quadrature: the error must be within the estimate's own `grid_error` (the midpoint rule's
//!   true error is about a third of it).
//! - AIS (Neal 2001) forward from N(0, 3²I) is a stochastic lower bound and reverse from exact
//!   draws an upper bound (Grosse et al. 2015): each must hold within 4 of its SEs.
//! - The test NLL of exact draws with the quadrature's log Z is E[E] + log Z = 1 + log 2πs
//!   (E[v²/2s²] = ½, E[w²e^(−v)/2] = ½, E[v/2] = 0), within 4 SE of the energies' mean.
use ebm::prelude::*;

const S: f64 = 1.0;

pub(crate) fn main() {
    let funnel = CustomEnergy::new(&[("s", S)], |x: &Var, p: &ParamVars| {
        let (v, w) = (x.narrow(1, 0, 1), x.narrow(1, 1, 1));
        let neck = w.square().mul(&v.neg().exp());
        let e = v.div(&p["s"]).square().add(&neck).add(&v).mul_scalar(0.5);
        e.sum(&[1], false)
    })
    .named("funnel");
    let truth = (2.0 * std::f64::consts::PI * S).ln();
    let target = ModelTarget::new(&funnel);
    let mut rng = Rng::new(11);
    let n = 20_000;
    let z = rng.normal(&[n, 2], DType::F64);
    let v = z.narrow(1, 0, 1).mul_scalar(S);
    let exact = Tensor::concat(
        &[v.clone(), z.narrow(1, 1, 1).mul(&v.mul_scalar(0.5).exp())],
        1,
    );

    let grid = grid_log_z(
        &target,
        &[(-7.0, 7.0), (-40.0, 40.0)],
        600,
        1e-9,
        DType::F64,
    );
    let err = grid.log_z - truth;
    println!("log Z = {truth:.5} (log 2πs)");
    println!(
        "quadrature: {:.5}, error {err:+.1e}, its estimate {:.1e}",
        grid.log_z, grid.grid_error
    );
    assert!(err.abs() <= grid.grid_error.max(1e-9));

    let cfg = AisConfig {
        n_temps: 300,
        n_chains: 512,
        ..AisConfig::default()
    };
    let reverse_from = exact.narrow(0, 0, cfg.n_chains);
    let ais = ais_log_z(&target, 2, Some(&reverse_from), &cfg, DType::F64, &mut rng);
    let (rev, rev_se) = (ais.reverse.unwrap(), ais.reverse_se.unwrap());
    println!(
        "AIS: forward {:.4} ± {:.4} ≤ log Z ≤ reverse {rev:.4} ± {rev_se:.4}",
        ais.forward, ais.forward_se
    );
    assert!(ais.forward <= truth + 4.0 * ais.forward_se && rev >= truth - 4.0 * rev_se);

    let energies = target.energy(&exact).reshape(&[n, 1]);
    let (test_nll, se) = (nll(&target, &exact, grid.log_z), energies.col_sem().item());
    println!(
        "test NLL of exact draws: {test_nll:.4} (1 + log 2πs = {:.4}, SE {se:.4})",
        1.0 + truth
    );
    assert!((test_nll - 1.0 - truth).abs() < 4.0 * se);
}
