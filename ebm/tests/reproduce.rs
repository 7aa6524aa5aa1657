//! `ebm reproduce` as a user runs it: the list of experiments, one experiment's PNG and JSON
//! (the fastest, on the quick budget), and one `error:` line with status 2 for a bad name or
//! an output folder that cannot be made.

mod common;

use common::*;

#[test]
fn list_names_every_experiment_in_the_order_of_the_review() {
    let out = ok(&["reproduce", "--list"]);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        ["langevin", "mle", "cost", "dsm", "weights", "nce", "cnce", "ncsn"]
    );
}

#[test]
fn an_experiment_writes_its_figure_and_numbers() {
    let d = scratch("reproduce-cnce");
    let out = ok(&["reproduce", "cnce", "--quick", "--out", d.to_str().unwrap()]);
    assert!(out.contains("holds: with the axis directions"), "{out}");
    check_png(&d.join("cnce.png"), 1000, 400);
    let j = json(&d.join("cnce.json"));
    assert_eq!(j["experiment"], "cnce");
    assert_eq!(j["budget"], "quick");
    assert_eq!(j["holds"], true);
    let slope = j["numbers"]["slope"].as_f64().unwrap();
    assert!((slope - 2.0).abs() < 0.2, "slope {slope}");
    // nothing but the two files (written by rename, no temporary left)
    let mut files: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["cnce.json", "cnce.png"]);
}

#[test]
fn a_bad_name_or_output_folder_is_one_error_line() {
    let line = fails_one_line(&["reproduce", "nope"]);
    assert!(
        line.contains("unknown experiment `nope`") && line.contains("ncsn"),
        "{line}"
    );
    let d = scratch("reproduce-bad-out");
    let file = d.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    fails_one_line(&[
        "reproduce",
        "cnce",
        "--quick",
        "--out",
        file.to_str().unwrap(),
    ]);
}
