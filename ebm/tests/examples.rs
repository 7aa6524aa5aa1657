//! Every example runs here in full, with its own checks, so none can rot; they use the library
//! alone, so `cargo test -p ebm --no-default-features --test examples` runs them on the lean
//! facade too.

#[path = "../examples/banana.rs"]
mod banana;
#[path = "../examples/fit_each_objective.rs"]
mod fit_each_objective;
#[path = "../examples/log_z.rs"]
mod log_z;
#[path = "../examples/sample_mixture.rs"]
mod sample_mixture;

#[test]
fn banana_is_fitted_by_esm_and_sampled_by_mala() {
    banana::main();
}

#[test]
fn each_objective_fits_a_custom_energy() {
    fit_each_objective::main();
}

#[test]
fn log_z_by_quadrature_and_ais() {
    log_z::main();
}

#[test]
fn mala_hmc_and_nuts_match_exact_draws() {
    sample_mixture::main();
}

/// The README's "Your own energy" section shows the banana example as it is (its `main`
/// without the `pub(crate)` that lets this file call it).
#[test]
fn readme_shows_the_banana_example() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Your own energy")
        .nth(1)
        .expect("README.md has a section \"Your own energy\"");
    let code = section
        .split("```rust\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the section holds a rust block");
    assert_eq!(
        code,
        include_str!("../examples/banana.rs").replace("pub(crate) fn main", "fn main"),
        "README.md's program differs from ebm/examples/banana.rs"
    );
}
