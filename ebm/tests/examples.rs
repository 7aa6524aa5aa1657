//! Every example runs here in full, with its own checks, so none can rot; they use the library
//! alone, so `cargo test -p ebm --no-default-features --test examples` runs them on the lean
//! facade too.

#[path = "../examples/banana.rs"]
mod banana;
#[path = "../examples/check_derivatives.rs"]
mod check_derivatives;
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
fn a_detached_term_fails_the_derivative_check() {
    check_derivatives::main();
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

/// docs/guide.md's programs are the examples, as they are and in this order (each runs above).
#[test]
fn the_guide_shows_the_examples() {
    let guide = include_str!("../../docs/guide.md");
    let examples = [
        ("banana", include_str!("../examples/banana.rs")),
        (
            "check_derivatives",
            include_str!("../examples/check_derivatives.rs"),
        ),
        (
            "fit_each_objective",
            include_str!("../examples/fit_each_objective.rs"),
        ),
        (
            "sample_mixture",
            include_str!("../examples/sample_mixture.rs"),
        ),
        ("log_z", include_str!("../examples/log_z.rs")),
    ];
    let blocks: Vec<&str> = guide
        .split("```rust\n")
        .skip(1)
        .map(|s| s.split("```").next().expect("a closed block"))
        .collect();
    assert_eq!(
        blocks.len(),
        examples.len(),
        "docs/guide.md: one rust block per example"
    );
    for (block, (name, source)) in blocks.iter().zip(examples) {
        assert_eq!(
            *block, source,
            "docs/guide.md's program differs from ebm/examples/{name}.rs"
        );
    }
}
