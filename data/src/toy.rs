//! The eight 2-D toy distributions of FFJORD (Grathwohl et al. 2019, `toy_data.py`), drawn
//! natively from a seeded [`Rng`] so that a run is reproducible without Python.
//!
//! Each generator follows FFJORD's recipe; where FFJORD spaces angles with `linspace` and then
//! shuffles (circles, rings), we draw them uniformly, which is the same distribution.
//!
//! 8-Gaussians is also a closed-form density (`ebm_samplers::analytic::GaussianMixture::ring`
//! with the parameters of [`EIGHT_GAUSSIANS`]): the generator here draws from those same
//! parameters, so the two cannot drift apart.

use ebm_core::{DType, Rng, Tensor};
use std::f64::consts::{PI, SQRT_2, TAU};

/// Equal-weight isotropic Gaussian modes evenly spaced on a circle, the first at angle 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ring {
    /// Number of modes.
    pub modes: usize,
    /// Distance of each mode's centre from the origin.
    pub radius: f64,
    /// Standard deviation of each mode in every direction.
    pub std: f64,
}

/// FFJORD's 8-Gaussians: centres 4·(cos kπ/4, sin kπ/4)/√2, standard deviation 0.5/√2.
pub const EIGHT_GAUSSIANS: Ring = Ring {
    modes: 8,
    radius: 4.0 / SQRT_2,
    std: 0.5 / SQRT_2,
};

/// One of FFJORD's toy distributions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toy {
    /// [`EIGHT_GAUSSIANS`].
    EightGaussians,
    /// Uniform on the 8 black squares of a 4×4 board on [−4, 4)².
    Checkerboard,
    /// Two interleaved spirals.
    TwoSpirals,
    /// Four concentric noisy circles.
    Rings,
    /// scikit-learn's two moons.
    Moons,
    /// scikit-learn's swiss roll, seen from its side.
    SwissRoll,
    /// Five curved arms.
    Pinwheel,
    /// scikit-learn's two concentric circles.
    Circles,
}

impl Toy {
    /// Every toy set, in the order the CLI lists them.
    pub const ALL: [Toy; 8] = [
        Toy::EightGaussians,
        Toy::Checkerboard,
        Toy::TwoSpirals,
        Toy::Rings,
        Toy::Moons,
        Toy::SwissRoll,
        Toy::Pinwheel,
        Toy::Circles,
    ];

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Toy::EightGaussians => "8gaussians",
            Toy::Checkerboard => "checkerboard",
            Toy::TwoSpirals => "2spirals",
            Toy::Rings => "rings",
            Toy::Moons => "moons",
            Toy::SwissRoll => "swissroll",
            Toy::Pinwheel => "pinwheel",
            Toy::Circles => "circles",
        }
    }

    /// Parses a name as written by [`Toy::name`].
    pub fn from_name(s: &str) -> Option<Toy> {
        Toy::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The differential entropy in nats where it is known in closed form (or to three
    /// decimals): the floor of the test NLL.
    pub fn entropy(self) -> Option<f64> {
        match self {
            // 8 modes N(μₖ, 0.125 I): ln 8 + ln(2πe·0.125) = 2.838 were they disjoint; their
            // slight overlap lowers it to 2.831 (numerical integration)
            Toy::EightGaussians => Some(2.831),
            // uniform on 8 squares of side 2: ln 32
            Toy::Checkerboard => Some(32f64.ln()),
            _ => None,
        }
    }

    /// `n` draws as an `[n, 2]` f32 tensor.
    pub fn sample(self, n: usize, rng: &mut Rng) -> Tensor {
        let v = match self {
            Toy::EightGaussians => eight_gaussians(n, rng),
            Toy::Checkerboard => checkerboard(n, rng),
            Toy::TwoSpirals => two_spirals(n, rng),
            Toy::Rings => rings(n, rng),
            Toy::Moons => moons(n, rng),
            Toy::SwissRoll => swissroll(n, rng),
            Toy::Pinwheel => pinwheel(n, rng),
            Toy::Circles => circles(n, rng),
        };
        debug_assert_eq!(v.len(), 2 * n);
        Tensor::from_f64s(&v, &[n, 2], DType::F32)
    }
}

/// [`EIGHT_GAUSSIANS`]: a mode drawn uniformly, then an isotropic Gaussian draw around it.
fn eight_gaussians(n: usize, rng: &mut Rng) -> Vec<f64> {
    let Ring { modes, radius, std } = EIGHT_GAUSSIANS;
    let z = rng.normal_vec(2 * n);
    // the modes' centres once, not a libm cos and sin per draw (1.5% of an NCE M2 step)
    let centres: Vec<(f64, f64)> = (0..modes)
        .map(|m| {
            let k = m as f64 * (TAU / modes as f64);
            (radius * k.cos(), radius * k.sin())
        })
        .collect();
    let mut v = Vec::with_capacity(2 * n);
    for i in 0..n {
        let (cx, cy) = centres[rng.below(modes)];
        v.push(cx + std * z[2 * i]);
        v.push(cy + std * z[2 * i + 1]);
    }
    v
}

/// Uniform on the 8 black squares of a 4×4 board on [−4, 4)².
fn checkerboard(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let x1 = rng.next_f64() * 4.0 - 2.0;
        let x2 = rng.next_f64() - 2.0 * rng.below(2) as f64 + x1.floor().rem_euclid(2.0);
        v.push(2.0 * x1);
        v.push(2.0 * x2);
    }
    v
}

/// Two interleaved spirals: radius √u·3π, jitter U(0, ½) then N(0, 0.1²), scaled by ⅓.
fn two_spirals(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 * n);
    let z = rng.normal_vec(2 * n);
    for i in 0..n {
        let r = rng.next_f64().sqrt() * 540.0 * TAU / 360.0;
        let dx = -r.cos() * r + rng.next_f64() * 0.5;
        let dy = r.sin() * r + rng.next_f64() * 0.5;
        let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
        v.push(sign * dx / 3.0 + 0.1 * z[2 * i]);
        v.push(sign * dy / 3.0 + 0.1 * z[2 * i + 1]);
    }
    v
}

/// Four concentric circles of radii 3, 2.25, 1.5, 0.75 with N(0, 0.08²) noise.
fn rings(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 * n);
    let z = rng.normal_vec(2 * n);
    for i in 0..n {
        let radius = [3.0, 2.25, 1.5, 0.75][rng.below(4)];
        let a = TAU * rng.next_f64();
        v.push(radius * a.cos() + 0.08 * z[2 * i]);
        v.push(radius * a.sin() + 0.08 * z[2 * i + 1]);
    }
    v
}

/// scikit-learn's two moons with noise 0.1, scaled by 2 and shifted by (−1, −0.2).
fn moons(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 * n);
    let z = rng.normal_vec(2 * n);
    for i in 0..n {
        let t = PI * rng.next_f64();
        let (x, y) = if rng.below(2) == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 1.0 - t.sin() - 0.5)
        };
        v.push(2.0 * (x + 0.1 * z[2 * i]) - 1.0);
        v.push(2.0 * (y + 0.1 * z[2 * i + 1]) - 0.2);
    }
    v
}

/// scikit-learn's swiss roll (t = 1.5π(1 + 2u), noise 1), coordinates (x, z), divided by 5.
fn swissroll(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 * n);
    let z = rng.normal_vec(2 * n);
    for i in 0..n {
        let t = 1.5 * PI * (1.0 + 2.0 * rng.next_f64());
        v.push((t * t.cos() + z[2 * i]) / 5.0);
        v.push((t * t.sin() + z[2 * i + 1]) / 5.0);
    }
    v
}

/// Five curved arms: radial N(1, 0.3²), tangential N(0, 0.1²), rotated by the arm's angle
/// plus 0.25·e^radial, scaled by 2.
fn pinwheel(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 * n);
    let z = rng.normal_vec(2 * n);
    for i in 0..n {
        let arm = rng.below(5) as f64 * TAU / 5.0;
        let f0 = 0.3 * z[2 * i] + 1.0;
        let f1 = 0.1 * z[2 * i + 1];
        let a = arm + 0.25 * f0.exp();
        let (s, c) = a.sin_cos();
        v.push(2.0 * (f0 * c + f1 * s));
        v.push(2.0 * (-f0 * s + f1 * c));
    }
    v
}

/// scikit-learn's two circles (radii 1 and 0.5, noise 0.08), scaled by 3.
fn circles(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 * n);
    let z = rng.normal_vec(2 * n);
    for i in 0..n {
        let radius = if rng.below(2) == 0 { 1.0 } else { 0.5 };
        let a = TAU * rng.next_f64();
        v.push(3.0 * (radius * a.cos() + 0.08 * z[2 * i]));
        v.push(3.0 * (radius * a.sin() + 0.08 * z[2 * i + 1]));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_is_seeded_finite_and_in_its_box() {
        for toy in Toy::ALL {
            let a = toy.sample(2000, &mut Rng::new(1));
            let b = toy.sample(2000, &mut Rng::new(1));
            assert_eq!(a.to_vec_f64(), b.to_vec_f64(), "{}", toy.name());
            let v = a.to_vec_f64();
            assert!(
                v.iter().all(|x| x.is_finite() && x.abs() < 6.0),
                "{}",
                toy.name()
            );
            // spread: not collapsed
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            assert!(var > 0.3, "{}: variance {var}", toy.name());
            assert_eq!(Toy::from_name(toy.name()), Some(toy));
        }
    }

    #[test]
    fn eight_gaussians_has_its_modes_radius_and_spread() {
        // the mean radius is r + σ²/(2r) to first order (≈ 2.850); 4 standard errors of the
        // mean of 20,000 draws of sd ≈ 0.354 are 0.010
        let x = Toy::EightGaussians
            .sample(20_000, &mut Rng::new(3))
            .to_vec_f64();
        let Ring { radius, std, .. } = EIGHT_GAUSSIANS;
        let r: Vec<f64> = x
            .chunks(2)
            .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
            .collect();
        let mean_r = r.iter().sum::<f64>() / r.len() as f64;
        let want = radius + std * std / (2.0 * radius);
        assert!(
            (mean_r - want).abs() < 0.010,
            "mean radius {mean_r} vs {want}"
        );
        // every mode gets its share: 2,500 ± 4·√(2500·7/8)
        let mut counts = [0usize; 8];
        for p in x.chunks(2) {
            let a = p[1].atan2(p[0]).rem_euclid(TAU);
            counts[((a / (TAU / 8.0)).round() as usize) % 8] += 1;
        }
        assert!(counts.iter().all(|&c| c.abs_diff(2500) < 190), "{counts:?}");
    }

    #[test]
    fn checkerboard_lands_on_black_squares() {
        let x = Toy::Checkerboard
            .sample(5000, &mut Rng::new(2))
            .to_vec_f64();
        for p in x.chunks(2) {
            let (i, j) = ((p[0] / 2.0).floor() as i64, (p[1] / 2.0).floor() as i64);
            assert_eq!((i + j).rem_euclid(2), 0, "{p:?}");
        }
    }
}
