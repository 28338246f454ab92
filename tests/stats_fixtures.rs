//! Checks `driftwatch::monitor::stats` against numpy/scipy: the fixtures in
//! `tests/fixtures/stats/*.json` are written by `tests/fixtures/stats/generate.py` (numpy and scipy
//! pinned in `requirements.txt` beside it; the script documents the JSON encoding).
//!
//! Bin edges, bin counts and quantiles must be identical; every other statistic must agree to
//! 1e-9 relative; p-values below 1e-300 only need to be below 1e-290 on both sides.

use std::path::PathBuf;

use driftwatch::monitor::stats;
use serde_json::Value;

const RELATIVE_TOLERANCE: f64 = 1e-9;
const ABSOLUTE_TOLERANCE: f64 = 1e-300;
const TINY_P_VALUE: f64 = 1e-300;
const TINY_P_VALUE_BOUND: f64 = 1e-290;
/// SPEC §7 default drift threshold for `psi`.
const PSI_THRESHOLD: f64 = 0.2;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stats")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn cases<'a>(fixture: &'a Value, kind: &str) -> &'a [Value] {
    assert_eq!(fixture["kind"], kind);
    let cases = fixture["cases"].as_array().expect("cases is an array");
    assert!(!cases.is_empty(), "a fixture without cases checks nothing");
    cases
}

/// A float as the generator encodes it: a number, `null` for NaN (a missing value), or
/// `"inf"`/`"-inf"`.
fn float(value: &Value) -> f64 {
    match value {
        Value::Number(number) => number.as_f64().expect("a finite number"),
        Value::Null => f64::NAN,
        Value::String(text) if text == "inf" => f64::INFINITY,
        Value::String(text) if text == "-inf" => f64::NEG_INFINITY,
        other => panic!("not a float: {other}"),
    }
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(float)
        .collect()
}

fn unsigned(value: &Value) -> Vec<u64> {
    let array = value.as_array().expect("an array");
    array
        .iter()
        .map(|item| item.as_u64().expect("an unsigned integer"))
        .collect()
}

/// Floats written as IEEE-754 bit patterns: exact, independent of JSON float parsing.
fn from_bits(value: &Value) -> Vec<f64> {
    unsigned(value).into_iter().map(f64::from_bits).collect()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string"))
}

fn assert_close(what: &str, actual: f64, expected: f64) {
    if actual.is_infinite() || expected.is_infinite() {
        assert_eq!(actual, expected, "{what}");
        return;
    }
    let tolerance = RELATIVE_TOLERANCE * actual.abs().max(expected.abs()) + ABSOLUTE_TOLERANCE;
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual:e}, scipy/numpy {expected:e} (difference {:e})",
        (actual - expected).abs()
    );
}

fn assert_all_close(what: &str, actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (index, (&actual, &expected)) in actual.iter().zip(expected).enumerate() {
        assert_close(&format!("{what}[{index}]"), actual, expected);
    }
}

fn assert_p_value(what: &str, actual: f64, expected: f64) {
    if expected < TINY_P_VALUE {
        assert!(
            actual < TINY_P_VALUE_BOUND,
            "{what}: got {actual:e}, scipy {expected:e} (both must be < {TINY_P_VALUE_BOUND:e})"
        );
    } else {
        assert_close(what, actual, expected);
    }
}

/// The caller's half of SPEC §7 numeric bins: value bins from `bin_index`, then one `missing`
/// bin for NaN and ±Inf (the generator encodes missing values as null, read back as NaN).
fn histogram(edges: &[f64], values: &[f64]) -> Vec<u64> {
    let missing_bin = edges.len() + 1;
    let mut counts = vec![0; missing_bin + 1];
    for &value in values {
        let bin = if value.is_finite() {
            stats::bin_index(edges, value)
        } else {
            missing_bin
        };
        counts[bin] += 1;
    }
    counts
}

fn check_profile(what: &str, values: &[f64], expected: &Value) {
    assert_close(
        &format!("{what} mean"),
        stats::mean(values),
        float(&expected["mean"]),
    );
    assert_close(
        &format!("{what} std"),
        stats::std_ddof0(values),
        float(&expected["std"]),
    );
    assert_close(
        &format!("{what} median"),
        stats::median(values),
        float(&expected["median"]),
    );
    assert_close(
        &format!("{what} mad"),
        stats::mad(values),
        float(&expected["mad"]),
    );
    assert_close(
        &format!("{what} mean_abs_deviation"),
        stats::mean_abs_deviation(values),
        float(&expected["mean_abs_deviation"]),
    );
}

/// Recomputes every statistic of a numeric case from its raw samples, NaN included: the
/// functions over raw samples must ignore non-finite values by themselves.
fn check_numeric_case(case: &Value) {
    let name = text(case, "name");
    let bins = usize::try_from(case["bins"].as_u64().expect("bins")).expect("bins fits");
    let reference = floats(&case["reference"]);
    let window = floats(&case["window"]);
    let expected = &case["expected"];

    let edges = stats::bin_edges(&reference, bins);
    assert_eq!(edges, from_bits(&expected["edges_bits"]), "{name}: edges");
    assert_all_close(
        &format!("{name}: edges"),
        &edges,
        &floats(&expected["edges"]),
    );

    let reference_counts = histogram(&edges, &reference);
    let window_counts = histogram(&edges, &window);
    assert_eq!(
        reference_counts,
        unsigned(&expected["reference_counts"]),
        "{name}: reference counts"
    );
    assert_eq!(
        window_counts,
        unsigned(&expected["window_counts"]),
        "{name}: window counts"
    );

    let reference_fractions = stats::fractions(&reference_counts);
    let window_fractions = stats::fractions(&window_counts);
    assert_all_close(
        &format!("{name}: reference fractions"),
        &reference_fractions,
        &floats(&expected["reference_fractions"]),
    );
    assert_all_close(
        &format!("{name}: window fractions"),
        &window_fractions,
        &floats(&expected["window_fractions"]),
    );

    let psi = stats::psi(&reference_fractions, &window_fractions);
    assert_close(&format!("{name}: psi"), psi, float(&expected["psi"]));
    let js = stats::js_distance(&reference_fractions, &window_fractions);
    assert_close(&format!("{name}: js"), js, float(&expected["js"]));

    let (ks_d, ks_p) = stats::ks_2samp(&reference, &window);
    assert_close(&format!("{name}: ks_d"), ks_d, float(&expected["ks_d"]));
    assert_p_value(&format!("{name}: ks_p"), ks_p, float(&expected["ks_p"]));

    assert_close(
        &format!("{name}: wasserstein"),
        stats::wasserstein(&reference, &window),
        float(&expected["wasserstein"]),
    );
    assert_close(
        &format!("{name}: wasserstein_normalized"),
        stats::wasserstein_normalized(&reference, &window),
        float(&expected["wasserstein_normalized"]),
    );

    check_profile(
        &format!("{name}: reference"),
        &reference,
        &expected["reference_profile"],
    );
    check_profile(
        &format!("{name}: window"),
        &window,
        &expected["window_profile"],
    );

    let median = stats::median(&reference);
    let mad = stats::mad(&reference);
    let mean_abs_deviation = stats::mean_abs_deviation(&reference);
    let probes = expected["modified_z"].as_array().expect("modified_z");
    assert!(!probes.is_empty(), "{name}: no z-score probes");
    for probe in probes {
        let x = float(&probe[0]);
        assert_close(
            &format!("{name}: modified z-score of {x}"),
            stats::modified_z_score(x, median, mad, mean_abs_deviation),
            float(&probe[1]),
        );
    }
}

fn check_numeric_file(name: &str) {
    for case in cases(&load(name), "numeric") {
        check_numeric_case(case);
    }
}

fn numeric_case(file: &str, name: &str) -> Value {
    let fixture = load(file);
    cases(&fixture, "numeric")
        .iter()
        .find(|case| case["name"] == name)
        .unwrap_or_else(|| panic!("{file}: no case {name}"))
        .clone()
}

/// Value-bin fractions of a numeric case with its `missing` bin left out: what PSI would see
/// without SPEC's missing bin.
fn value_bin_fractions(counts: &[u64]) -> Vec<f64> {
    stats::fractions(&counts[..counts.len() - 1])
}

#[test]
fn spec_worked_example_literals() {
    let reference: Vec<f64> = (1..=10).map(f64::from).collect();
    let window: Vec<f64> = (2..=13).map(f64::from).collect();
    let edges = stats::bin_edges(&reference, 5);
    // SPEC prints [2.8, 4.6, 6.4, 8.2]; numpy's third quantile is 6.3999999999999995.
    assert_eq!(edges, [2.8, 4.6, 6.3999999999999995, 8.2]);
    let count = |values: &[f64]| {
        let mut counts = vec![0_u64; edges.len() + 1];
        for &value in values {
            counts[stats::bin_index(&edges, value)] += 1;
        }
        counts
    };
    let reference_counts = count(&reference);
    let window_counts = count(&window);
    assert_eq!(reference_counts, [2, 2, 2, 2, 2]);
    assert_eq!(window_counts, [1, 2, 2, 2, 5]);
    let p = stats::fractions(&reference_counts);
    let q = stats::fractions(&window_counts);
    assert_close("psi", stats::psi(&p, &q), 0.2793968296380606);
    assert_close("js", stats::js_distance(&p, &q), 0.22178270989692128);
    assert_close("ks_d", stats::ks_2samp(&reference, &window).0, 0.25);
    assert_close(
        "wasserstein",
        stats::wasserstein_normalized(&reference, &window),
        0.6963106238227914,
    );
}

#[test]
fn worked_example_matches_scipy() {
    check_numeric_file("worked_example");
}

#[test]
fn samples_with_many_ties() {
    check_numeric_file("ties");
}

#[test]
fn constant_reference_columns() {
    check_numeric_file("constant_reference");
    let case = numeric_case("constant_reference", "constant_ten_bins");
    assert_eq!(floats(&case["expected"]["edges"]), [5.0]);
    let case = numeric_case("constant_reference", "constant_one_bin");
    assert!(floats(&case["expected"]["edges"]).is_empty());
}

#[test]
fn heavy_tailed_samples() {
    check_numeric_file("heavy_tails");
}

#[test]
fn small_samples_and_unequal_sizes() {
    check_numeric_file("small_samples");
}

#[test]
fn nan_surge_raises_psi_through_the_missing_bin() {
    check_numeric_file("nan_surge");
    for name in ["nan_surge", "nan_surge_reference_few_missing"] {
        let case = numeric_case("nan_surge", name);
        let expected = &case["expected"];
        let window_fractions = floats(&expected["window_fractions"]);
        let missing_share = window_fractions.last().copied().unwrap_or(f64::NAN);
        assert_close(&format!("{name}: missing share"), missing_share, 0.3);
        let psi = float(&expected["psi"]);
        assert!(
            psi > PSI_THRESHOLD,
            "{name}: psi {psi} should flag the surge"
        );
        // The finite values come from the same distribution: without the missing bin there is
        // no drift to see.
        let without_missing = stats::psi(
            &value_bin_fractions(&unsigned(&expected["reference_counts"])),
            &value_bin_fractions(&unsigned(&expected["window_counts"])),
        );
        assert!(
            without_missing < PSI_THRESHOLD,
            "{name}: psi without the missing bin {without_missing}"
        );
    }
}

#[test]
fn large_sample_small_shift_is_significant_but_not_drifted() {
    check_numeric_file("large_shift");
    let case = numeric_case("large_shift", "shift_0_02_sigma_100k");
    let expected = &case["expected"];
    let ks_p = float(&expected["ks_p"]);
    let psi = float(&expected["psi"]);
    assert!(ks_p < 1e-3, "ks_p {ks_p}");
    assert!(psi < PSI_THRESHOLD, "psi {psi}");
    assert!(psi < 1e-3, "psi {psi} should be of the order of 0.0004");
}

#[test]
fn categorical_counts() {
    for case in cases(&load("categorical"), "categorical") {
        let name = text(case, "name");
        let reference_counts = unsigned(&case["reference_counts"]);
        let window_counts = unsigned(&case["window_counts"]);
        let expected = &case["expected"];
        let p = stats::fractions(&reference_counts);
        let q = stats::fractions(&window_counts);
        assert_all_close(
            &format!("{name}: reference fractions"),
            &p,
            &floats(&expected["reference_fractions"]),
        );
        assert_all_close(
            &format!("{name}: window fractions"),
            &q,
            &floats(&expected["window_fractions"]),
        );
        assert_close(
            &format!("{name}: psi"),
            stats::psi(&p, &q),
            float(&expected["psi"]),
        );
        assert_close(
            &format!("{name}: js"),
            stats::js_distance(&p, &q),
            float(&expected["js"]),
        );
        let as_floats =
            |counts: &[u64]| counts.iter().map(|&count| count as f64).collect::<Vec<_>>();
        assert_p_value(
            &format!("{name}: chi2_p"),
            stats::chi2_contingency_p(&as_floats(&reference_counts), &as_floats(&window_counts)),
            float(&expected["chi2_p"]),
        );
    }
}

#[test]
fn special_functions() {
    let fixture = load("special_functions");
    let functions = &cases(&fixture, "special")[0];
    for point in functions["kstwobign_sf"].as_array().expect("kstwobign_sf") {
        let x = float(&point[0]);
        assert_p_value(
            &format!("kstwobign_sf({x})"),
            stats::kstwobign_sf(x),
            float(&point[1]),
        );
    }
    for point in functions["chi2_sf"].as_array().expect("chi2_sf") {
        let (x, dof) = (float(&point[0]), float(&point[1]));
        assert_p_value(
            &format!("chi2_sf({x}, {dof})"),
            stats::chi2_sf(x, dof),
            float(&point[2]),
        );
    }
    for point in functions["ln_gamma"].as_array().expect("ln_gamma") {
        let x = float(&point[0]);
        assert_close(
            &format!("ln_gamma({x})"),
            stats::ln_gamma(x),
            float(&point[1]),
        );
    }
    for grid in functions["quantile_linear"]
        .as_array()
        .expect("quantile_linear")
    {
        let sorted = floats(&grid["sorted"]);
        let expected = from_bits(&grid["expected_bits"]);
        for (q, expected) in floats(&grid["q"]).into_iter().zip(expected) {
            assert_eq!(
                stats::quantile_linear(&sorted, q),
                expected,
                "quantile_linear(n = {}, q = {q})",
                sorted.len()
            );
        }
    }
}
