//! Your own energy: the banana E(x) = ½‖z‖², z = (x₀/a, x₁ − b·x₀²) (a twisted Gaussian, Haario
//! et al. 1999); z ~ N(0, I) under it, so x₀ = a·z₀, x₁ = z₁ + b·x₀² are exact draws.
use ebm::prelude::*;

fn exact(a: f64, b: f64, z: &Tensor) -> Tensor {
    let x0 = z.narrow(1, 0, 1).mul_scalar(a);
    let x1 = z.narrow(1, 1, 1).add(&x0.square().mul_scalar(b));
    Tensor::concat(&[x0, x1], 1)
}

pub(crate) fn main() {
    let (n, mut rng) = (10_000, Rng::new(0));
    let data = exact(1.5, 0.5, &rng.normal(&[n, 2], DType::F64));
    let mut model = CustomEnergy::new(&[("a", 1.0), ("b", 0.0)], |x, p| {
        let (x0, x1) = (x.narrow(1, 0, 1), x.narrow(1, 1, 1));
        let z = Var::concat(&[x0.div(&p["a"]), x1.sub(&x0.square().mul(&p["b"]))], 1);
        z.sum_squares(&[1], false).mul_scalar(0.5)
    });
    check_energy(&model, &data.narrow(0, 0, 16), &CheckOpts::default()).unwrap();
    let opt = Optimizer::adam(0.05, model.params()).with_schedule(Schedule::cosine(500, 0.01));
    let (esm, mut step) = (&mut ExactScoreMatching, TrainStep::new(opt));
    for _ in 0..500 {
        train_step(esm, &mut model, &mut step, &data, &mut rng);
    }
    let (a, b) = (model.param("a"), model.param("b"));
    // exact score matching's SEs at n = 10⁴ (sandwich formula): 4.14/√n and 0.435/√n
    println!("ESM: a = {a:.4} (1.5 ± 0.041), b = {b:.4} (0.5 ± 0.0044)");
    assert!((a - 1.5).abs() < 4.0 * 0.0414 && (b - 0.5).abs() < 4.0 * 0.00435);
    let out = Mala::default().run(&ModelTarget::new(&model), data.narrow(0, 0, 200), &mut rng);
    let moments = |x: &Tensor| Tensor::concat(&[x.clone(), x.square()], 1); // x, x²
    let (mcmc, z) = (out.estimate(moments), rng.normal(&[10 * n, 2], DType::F64));
    let iid = Estimate::independent(&moments(&exact(a, b, &z)));
    println!("MALA acceptance {:.3}", out.stats.accept_rate.unwrap());
    for (j, name) in ["x₀", "x₁", "x₀²", "x₁²"].iter().enumerate() {
        let (m, e, se) = (mcmc.mean[j], iid.mean[j], mcmc.se[j].hypot(iid.se[j]));
        println!("E[{name}]: MALA {m:.4}, exact {e:.4}, SE {se:.4}");
        assert!((m - e).abs() < 4.0 * se);
    }
}
