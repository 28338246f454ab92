//! The change detectors replayed on River's fixture streams: detection (and DDM warning) indices
//! must equal River's exactly, and ADWIN's window width, mean and variance at the recorded
//! checkpoints must agree to 1e-9 relative.
//!
//! Fixtures: `tests/fixtures/detectors/*.json`, written by `generate.py` beside them with the
//! River and numpy versions pinned in `requirements.txt` there.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use driftwatch::monitor::detectors::{
    Adwin, AdwinConfig, ChangeDetector, Ddm, DdmConfig, PageHinkley, PageHinkleyConfig,
};
use serde::Deserialize;
use serde_json::Value;

/// The port reproduces River's checkpoint values bit for bit; the tolerance only absorbs
/// serde_json's default float parsing, which can be one ulp off.
const CHECKPOINT_RELATIVE_TOLERANCE: f64 = 1e-9;

#[derive(Debug, Deserialize)]
struct Fixture {
    stream: String,
    generated_with: BTreeMap<String, String>,
    /// Python `repr(float)` strings, which `str::parse::<f64>` reads back bit for bit.
    values: Vec<String>,
    runs: Vec<Run>,
}

#[derive(Debug, Deserialize)]
struct Run {
    name: String,
    detector: String,
    params: BTreeMap<String, Value>,
    drift_indices: Vec<usize>,
    #[serde(default)]
    warning_indices: Option<Vec<usize>>,
    #[serde(default)]
    checkpoints: Vec<Checkpoint>,
}

#[derive(Debug, Deserialize)]
struct Checkpoint {
    index: usize,
    width: u64,
    estimation: f64,
    variance: f64,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detectors")
}

fn load(stream: &str) -> Fixture {
    let path = fixture_dir().join(format!("{stream}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: Fixture =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(fixture.stream, stream);
    fixture
}

fn values(fixture: &Fixture) -> Vec<f64> {
    fixture
        .values
        .iter()
        .map(|repr| {
            repr.parse()
                .unwrap_or_else(|e| panic!("{}: value {repr:?}: {e}", fixture.stream))
        })
        .collect()
}

fn number(run: &Run, key: &str, value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{}: parameter {key} = {value} is not a number", run.name))
}

fn integer(run: &Run, key: &str, value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{}: parameter {key} = {value} is not an integer", run.name))
}

/// Builds the detector River ran, from River's parameter names; an unknown name fails the test
/// so that the fixtures and this mapping cannot silently drift apart.
fn detector_for(run: &Run) -> Box<dyn ChangeDetector> {
    match run.detector.as_str() {
        "page_hinkley" => {
            let mut config = PageHinkleyConfig::default();
            for (key, value) in &run.params {
                match key.as_str() {
                    "min_instances" => config.min_instances = integer(run, key, value),
                    "delta" => config.delta = number(run, key, value),
                    "threshold" => config.threshold = number(run, key, value),
                    "alpha" => config.alpha = number(run, key, value),
                    "mode" => {
                        config.mode = value
                            .as_str()
                            .and_then(|mode| mode.parse().ok())
                            .unwrap_or_else(|| panic!("{}: mode {value}", run.name))
                    }
                    other => panic!("{}: unknown Page-Hinkley parameter {other}", run.name),
                }
            }
            Box::new(PageHinkley::new(config).expect("valid Page-Hinkley parameters"))
        }
        "adwin" => Box::new(adwin_for(run)),
        "ddm" => Box::new(ddm_for(run)),
        other => panic!("{}: unknown detector {other}", run.name),
    }
}

fn adwin_for(run: &Run) -> Adwin {
    let mut config = AdwinConfig::default();
    for (key, value) in &run.params {
        let small = || u32::try_from(integer(run, key, value)).expect("fits in u32");
        match key.as_str() {
            "delta" => config.delta = number(run, key, value),
            "clock" => config.clock = small(),
            "max_buckets" => config.max_buckets = small() as usize,
            "min_window_length" => config.min_window_length = small(),
            "grace_period" => config.grace_period = small(),
            other => panic!("{}: unknown ADWIN parameter {other}", run.name),
        }
    }
    Adwin::new(config).expect("valid ADWIN parameters")
}

fn ddm_for(run: &Run) -> Ddm {
    let mut config = DdmConfig::default();
    for (key, value) in &run.params {
        match key.as_str() {
            "warm_start" => config.warm_start = integer(run, key, value),
            "warning_threshold" => config.warning_threshold = number(run, key, value),
            "drift_threshold" => config.drift_threshold = number(run, key, value),
            other => panic!("{}: unknown DDM parameter {other}", run.name),
        }
    }
    Ddm::new(config).expect("valid DDM parameters")
}

fn close(actual: f64, expected: f64) -> bool {
    actual == expected
        || (actual - expected).abs()
            <= CHECKPOINT_RELATIVE_TOLERANCE * actual.abs().max(expected.abs())
}

/// Replays one run; returns a description of every disagreement with River.
fn replay(values: &[f64], run: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    let mut drift_indices = Vec::new();
    let mut warning_indices = Vec::new();
    let mut checkpoints = run.checkpoints.iter().peekable();

    if run.detector == "adwin" {
        // ADWIN's window statistics are only reachable on the concrete type.
        let mut adwin = adwin_for(run);
        for (index, &value) in values.iter().enumerate() {
            if adwin.update(value) {
                drift_indices.push(index);
            }
            while let Some(checkpoint) = checkpoints.next_if(|c| c.index == index) {
                let actual = (adwin.width(), adwin.estimation(), adwin.variance());
                let expected = (checkpoint.width, checkpoint.estimation, checkpoint.variance);
                if actual.0 != expected.0
                    || !close(actual.1, expected.1)
                    || !close(actual.2, expected.2)
                {
                    problems.push(format!(
                        "{}: at index {index} (width, estimation, variance) = {actual:?}, River {expected:?}",
                        run.name
                    ));
                }
            }
        }
    } else {
        let mut detector = detector_for(run);
        for (index, &value) in values.iter().enumerate() {
            let detected = detector.update(value);
            assert_eq!(detected, detector.drift_detected(), "{}", run.name);
            if detected {
                drift_indices.push(index);
            }
            if detector.warning_detected() {
                warning_indices.push(index);
            }
        }
    }

    if let Some(unchecked) = checkpoints.next() {
        problems.push(format!(
            "{}: checkpoint at index {} was never reached",
            run.name, unchecked.index
        ));
    }
    if drift_indices != run.drift_indices {
        problems.push(format!(
            "{}: drift at {drift_indices:?}, River at {:?}",
            run.name, run.drift_indices
        ));
    }
    if let Some(expected) = &run.warning_indices
        && &warning_indices != expected
    {
        problems.push(format!(
            "{}: warnings at {warning_indices:?}, River at {expected:?}",
            run.name
        ));
    }
    problems
}

/// Every run of one stream; `expected_detectors` guards against a fixture losing its runs.
fn check_stream(stream: &str, expected_detectors: &[&str]) {
    let fixture = load(stream);
    let values = values(&fixture);
    assert!(
        values.len() >= 2_000,
        "{stream}: only {} values",
        values.len()
    );
    for detector in expected_detectors {
        assert!(
            fixture.runs.iter().any(|run| run.detector == *detector),
            "{stream}: no {detector} run"
        );
    }
    let problems: Vec<String> = fixture
        .runs
        .iter()
        .flat_map(|run| replay(&values, run))
        .collect();
    assert!(
        problems.is_empty(),
        "{stream} disagrees with River:\n{}",
        problems.join("\n")
    );
}

const REAL_VALUED: &[&str] = &["page_hinkley", "adwin"];
const BINARY: &[&str] = &["page_hinkley", "adwin", "ddm"];

#[test]
fn step_change_in_mean() {
    check_stream("step_mean", REAL_VALUED);
}

#[test]
fn gradual_drift_linear_ramp() {
    check_stream("linear_ramp", REAL_VALUED);
}

#[test]
fn alternating_regimes() {
    check_stream("alternating_regimes", REAL_VALUED);
}

#[test]
fn noisy_stream_without_drift() {
    check_stream("noisy_no_drift", REAL_VALUED);
}

#[test]
fn error_stream_whose_rate_jumps() {
    check_stream("error_rate_jump", BINARY);
}

#[test]
fn error_stream_with_a_stable_rate() {
    check_stream("error_rate_stable", BINARY);
}

#[test]
fn heavy_tailed_latency_with_a_shift() {
    check_stream("lognormal_latency", REAL_VALUED);
}

#[test]
fn rivers_docstring_example() {
    // River documents ADWIN at 1023 and Page-Hinkley at 1006 on this stream.
    check_stream("river_doc_example", REAL_VALUED);
    let fixture = load("river_doc_example");
    let indices = |name: &str| {
        fixture
            .runs
            .iter()
            .find(|run| run.name == name)
            .map(|run| run.drift_indices.clone())
    };
    assert_eq!(indices("adwin_default"), Some(vec![1023]));
    assert_eq!(indices("ph_default"), Some(vec![1006]));
}

#[test]
fn every_fixture_is_checked_and_generated_with_the_pinned_versions() {
    let checked = [
        "step_mean",
        "linear_ramp",
        "alternating_regimes",
        "noisy_no_drift",
        "error_rate_jump",
        "error_rate_stable",
        "lognormal_latency",
        "river_doc_example",
    ];
    let mut on_disk: Vec<String> = fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .filter_map(|entry| {
            let name = entry.expect("directory entry").file_name();
            name.to_str()?.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = checked.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected);

    let requirements =
        fs::read_to_string(fixture_dir().join("requirements.txt")).expect("requirements.txt");
    let pins: BTreeMap<&str, &str> = requirements
        .lines()
        .filter_map(|line| line.trim().split_once("=="))
        .collect();
    for stream in checked {
        let fixture = load(stream);
        for package in ["river", "numpy"] {
            assert_eq!(
                fixture.generated_with.get(package).map(String::as_str),
                pins.get(package).copied(),
                "{stream}: {package} version differs from requirements.txt"
            );
        }
    }
}
