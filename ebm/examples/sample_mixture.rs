//! A custom energy sampled by MALA, HMC and NUTS, each checked against exact draws. The energy
//! is the equal mixture of N((±m, 0), I),
//!   E(x) = −log(exp(−‖x − (m, 0)‖²/2) + exp(−‖x + (m, 0)‖²/2)),
//! whose exact draws are (±m + z₀, z₁) with a fair sign and z ~ N(0, I). Every sampler's
//! estimates of the moments E[x] and E[x²] must agree with the exact draws' within 4 standard
//! errors: the sampler's from its effective sample size ([`Samples::estimate`]), the exact
//! draws' s/√n ([`Estimate::independent`]).
use ebm::prelude::*;

const M: f64 = 1.5;

/// Columns x₀, x₁, x₀², x₁² of a batch.
fn moments(x: &Tensor) -> Tensor {
    Tensor::concat(&[x.clone(), x.square()], 1)
}

pub(crate) fn main() {
    let model = CustomEnergy::new(&[("m", M)], |x: &Var, p: &ParamVars| {
        let (x0, x1_sq) = (x.narrow(1, 0, 1), x.narrow(1, 1, 1).square());
        let right = x0.sub(&p["m"]).square().add(&x1_sq);
        let left = x0.add(&p["m"]).square().add(&x1_sq);
        let log_p = Var::concat(&[right, left], 1).mul_scalar(-0.5);
        log_p.logsumexp(&[1], false).neg()
    })
    .named("two_gaussians");
    let mut rng = Rng::new(3);
    let n = 20_000;
    let side = rng.rademacher(&[n, 1], DType::F64).mul_scalar(M);
    let centres = Tensor::concat(&[side, Tensor::zeros(&[n, 1], DType::F64)], 1);
    let exact = Estimate::independent(&moments(&rng.normal(&[n, 2], DType::F64).add(&centres)));

    let target = ModelTarget::new(&model);
    let x0 = rng.normal(&[128, 2], DType::F64);
    let mala = Mala::default().with_warmup(500).with_draws(1000);
    let hmc = Hmc::default()
        .with_leapfrog_steps(8)
        .with_warmup(300)
        .with_draws(500);
    let nuts = Nuts {
        warmup: 300,
        draws: 300,
        ..Nuts::default()
    };
    let runs = [
        ("MALA", mala.run(&target, x0.clone(), &mut rng)),
        ("HMC", hmc.run(&target, x0.clone(), &mut rng)),
        ("NUTS", nuts.run(&target, x0, &mut rng)),
    ];
    for (sampler, out) in &runs {
        let est = out.estimate(moments);
        let accept = out.stats.accept_rate.unwrap();
        println!("{sampler} (acceptance {accept:.3}):");
        for (j, name) in ["x₀", "x₁", "x₀²", "x₁²"].iter().enumerate() {
            let (m, e, ess) = (est.mean[j], exact.mean[j], est.ess[j]);
            let se = est.se[j].hypot(exact.se[j]);
            println!("  E[{name}]: {m:+.4}, exact {e:+.4}, SE {se:.4}, ESS {ess:.0}");
            let z = (m - e) / se;
            assert!(z.abs() < 4.0, "{sampler}: E[{name}] is off by {z:.1} SE");
        }
    }
}
