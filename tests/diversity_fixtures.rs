//! Checks `driftwatch::explore::diversity` against numpy: the fixtures in
//! `tests/fixtures/diversity/*.json` are written by `tests/fixtures/diversity/generate.py` (numpy
//! pinned in `requirements.txt` beside it), which computes every expected report straight from
//! the definitions on `DiversityReport`.
//!
//! Each stream of lists is replayed through one `Diversity`: every closed window's report, the
//! homogenization flag after it, and the open window at the end must match. Counts must be equal
//! and every figure within 1e-12 relative; in `sketch_zipf`, where the windows overflow
//! `max_items`, the item-level figures must be within the bounds the fixture states.

use std::path::PathBuf;

use driftwatch::explore::diversity::{Diversity, DiversityConfig, DiversityReport};
use serde_json::Value;

const RELATIVE_TOLERANCE: f64 = 1e-12;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diversity")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let fixture: Value =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert_eq!(fixture["kind"], "diversity", "{name}");
    fixture
}

fn unsigned(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is an unsigned integer: {value}"))
}

fn size(value: &Value, key: &str) -> usize {
    usize::try_from(unsigned(value, key)).expect("fits in usize")
}

fn float(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number: {value}"))
}

fn optional_float(value: &Value, key: &str) -> Option<f64> {
    (!value[key].is_null()).then(|| float(value, key))
}

fn config(fixture: &Value) -> DiversityConfig {
    let config = &fixture["config"];
    DiversityConfig {
        window_lists: size(config, "window_lists"),
        max_items: size(config, "max_items"),
        catalog_size: (!config["catalog_size"].is_null()).then(|| unsigned(config, "catalog_size")),
        overlap_lists: size(config, "overlap_lists"),
        top_k: size(config, "top_k"),
        trend_windows: size(config, "trend_windows"),
    }
}

fn expected_report(value: &Value) -> DiversityReport {
    DiversityReport {
        lists: unsigned(value, "lists"),
        exposures: unsigned(value, "exposures"),
        distinct_items: unsigned(value, "distinct_items"),
        gini: float(value, "gini"),
        gini_catalog: optional_float(value, "gini_catalog"),
        entropy_bits: float(value, "entropy_bits"),
        effective_items: float(value, "effective_items"),
        catalog_coverage: optional_float(value, "catalog_coverage"),
        head_share: float(value, "head_share"),
        long_tail_share: float(value, "long_tail_share"),
        list_overlap: float(value, "list_overlap"),
        exact: value["exact"].as_bool().expect("exact is a bool"),
    }
}

/// How far an approximate (sketch) figure may be from numpy's exact one.
#[derive(Clone, Copy)]
enum Bound {
    Relative(f64),
    Absolute(f64),
}

fn assert_close(what: &str, actual: f64, expected: f64, bound: Bound) {
    let (error, limit) = match bound {
        Bound::Relative(limit) => (
            (actual - expected).abs() / expected.abs().max(f64::MIN_POSITIVE),
            limit,
        ),
        Bound::Absolute(limit) => ((actual - expected).abs(), limit),
    };
    assert!(
        actual == expected || error <= limit,
        "{what}: {actual} vs numpy {expected} (error {error:e} > {limit:e})"
    );
}

fn assert_close_option(what: &str, actual: Option<f64>, expected: Option<f64>, bound: Bound) {
    match (actual, expected) {
        (Some(actual), Some(expected)) => assert_close(what, actual, expected, bound),
        (actual, expected) => assert_eq!(actual, expected, "{what}"),
    }
}

/// The bound for one field: 1e-12 relative for an exact report, the fixture's stated bound for
/// an item-level figure of a sketch report.
fn bound(tolerances: &Value, exact: bool, field: &str, relative: bool) -> Bound {
    if exact || tolerances[field].is_null() {
        return Bound::Relative(RELATIVE_TOLERANCE);
    }
    let limit = tolerances[field].as_f64().expect("a tolerance is a number");
    if relative {
        Bound::Relative(limit)
    } else {
        Bound::Absolute(limit)
    }
}

fn assert_report(
    what: &str,
    actual: &DiversityReport,
    expected: &DiversityReport,
    tolerances: &Value,
) {
    let exact = expected.exact;
    let bound = |field: &str, relative: bool| bound(tolerances, exact, field, relative);
    let what = |field: &str| format!("{what}: {field}");
    assert_eq!(actual.exact, expected.exact, "{}", what("exact"));
    assert_eq!(actual.lists, expected.lists, "{}", what("lists"));
    assert_eq!(
        actual.exposures,
        expected.exposures,
        "{}",
        what("exposures")
    );
    if exact {
        assert_eq!(
            actual.distinct_items,
            expected.distinct_items,
            "{}",
            what("distinct_items")
        );
    } else {
        assert_close(
            &what("distinct_items"),
            actual.distinct_items as f64,
            expected.distinct_items as f64,
            bound("distinct_items", true),
        );
    }
    assert_close(
        &what("gini"),
        actual.gini,
        expected.gini,
        bound("gini", false),
    );
    assert_close_option(
        &what("gini_catalog"),
        actual.gini_catalog,
        expected.gini_catalog,
        bound("gini_catalog", false),
    );
    assert_close(
        &what("entropy_bits"),
        actual.entropy_bits,
        expected.entropy_bits,
        bound("entropy_bits", true),
    );
    assert_close(
        &what("effective_items"),
        actual.effective_items,
        expected.effective_items,
        bound("effective_items", true),
    );
    assert_close_option(
        &what("catalog_coverage"),
        actual.catalog_coverage,
        expected.catalog_coverage,
        bound("catalog_coverage", true),
    );
    assert_close(
        &what("head_share"),
        actual.head_share,
        expected.head_share,
        bound("head_share", false),
    );
    assert_close(
        &what("long_tail_share"),
        actual.long_tail_share,
        expected.long_tail_share,
        bound("long_tail_share", false),
    );
    // The overlap never depends on the sketch.
    assert_close(
        &what("list_overlap"),
        actual.list_overlap,
        expected.list_overlap,
        Bound::Relative(RELATIVE_TOLERANCE),
    );
}

/// Replays the fixture's lists and checks every closed window, the flags and the open window.
fn check(name: &str) -> Vec<DiversityReport> {
    let fixture = load(name);
    let tolerances = &fixture["tolerances"];
    let expected_windows: Vec<DiversityReport> = fixture["windows"]
        .as_array()
        .expect("windows is an array")
        .iter()
        .map(expected_report)
        .collect();
    let expected_flags: Vec<bool> = fixture["homogenizing"]
        .as_array()
        .expect("homogenizing is an array")
        .iter()
        .map(|flag| flag.as_bool().expect("a flag is a bool"))
        .collect();
    assert!(
        !expected_windows.is_empty(),
        "{name}: a stream that closes no window checks little"
    );

    let mut diversity = Diversity::new(config(&fixture));
    let mut closed = Vec::new();
    let mut flags = Vec::new();
    for list in fixture["lists"].as_array().expect("lists is an array") {
        let shown: Vec<&str> = list["shown"]
            .as_array()
            .expect("shown is an array")
            .iter()
            .map(|item| item.as_str().expect("an item id is a string"))
            .collect();
        if let Some(report) = diversity.observe(unsigned(list, "unit"), &shown) {
            assert_eq!(
                diversity.last(),
                Some(&report),
                "{name}: last() is the closed window"
            );
            closed.push(report);
            flags.push(diversity.homogenizing());
        }
    }

    assert_eq!(
        closed.len(),
        expected_windows.len(),
        "{name}: windows closed"
    );
    for (index, (actual, expected)) in closed.iter().zip(&expected_windows).enumerate() {
        assert_report(
            &format!("{name} window {index}"),
            actual,
            expected,
            tolerances,
        );
    }
    assert_eq!(
        flags, expected_flags,
        "{name}: homogenizing after each window"
    );
    assert_report(
        &format!("{name} open window"),
        &diversity.report(),
        &expected_report(&fixture["open"]),
        tolerances,
    );
    closed
}

#[test]
fn zipf_popularity() {
    check("zipf");
}

#[test]
fn uniform_exposure_with_repeated_ids() {
    check("uniform");
}

#[test]
fn a_narrowing_feedback_loop_is_flagged_and_exploration_clears_it() {
    let windows = check("homogenizing");
    assert!(windows[4].gini_catalog > windows[0].gini_catalog);
    assert!(windows[4].catalog_coverage < windows[0].catalog_coverage);
}

#[test]
fn catalog_coverage_and_catalog_gini() {
    check("catalog");
}

#[test]
fn a_catalog_smaller_than_what_is_shown() {
    let windows = check("small_catalog");
    assert!(
        windows
            .iter()
            .all(|window| window.catalog_coverage == Some(1.0))
    );
}

#[test]
fn ties_duplicates_empty_lists_and_single_unit_runs() {
    check("ties");
}

#[test]
fn beyond_the_cap_the_sketch_stays_within_its_stated_error() {
    let windows = check("sketch_zipf");
    assert!(windows.iter().all(|window| !window.exact));
}
