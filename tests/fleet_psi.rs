//! Fleet view: two replicas' bin counters, fed to the shipped recording rules in
//! `promtool test rules`, give the same PSI as one process that saw all rows; a model of the same
//! name in another namespace is a fleet of its own, with its own PSI.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use driftwatch::config::monitoring::{
    InputsSection, LearnSection, ModelSection, OutputsSection, ProtocolName,
};
use driftwatch::demo::model::{FEATURES, serve};
use driftwatch::profile::{Format, ProfileOptions, profile_file};
use support::{Running, test_config};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `(labels, value)` of every series of `name` in an exposition.
fn series(exposition: &str, name: &str) -> Vec<(String, f64)> {
    exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The PSI series of `proxy` once its first window closed (every column scored).
async fn closed_window_psi(proxy: &Running, what: &str) -> Vec<(String, f64)> {
    let mut scores = Vec::new();
    for _ in 0..500 {
        scores = series(&proxy.metrics().await, "driftwatch_drift_score")
            .into_iter()
            .filter(|(labels, value)| labels.contains("statistic=\"psi\"") && *value != 0.0)
            .collect();
        if scores.len() == 5 {
            return scores;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{what} closed its window: {scores:?}");
}

#[tokio::test]
async fn two_replicas_give_the_fleet_psi_of_one_process_per_namespace() {
    let window: Vec<Vec<Option<f64>>> = serde_json::from_str(
        &std::fs::read_to_string(repo("tests/fixtures/drift_e2e/window.json")).unwrap(),
    )
    .unwrap();
    // Traffic like the reference: its first rows, as many as a window (inputs only).
    let like_reference: Vec<Vec<Option<f64>>> =
        std::fs::read_to_string(repo("tests/fixtures/drift_e2e/reference.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .take(window.len())
            .map(|line| {
                line.split(',')
                    .take(FEATURES.len())
                    .map(|cell| Some(cell.parse().unwrap()))
                    .collect()
            })
            .collect();
    assert_eq!(like_reference.len(), window.len());
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_file(
        &repo("tests/fixtures/drift_e2e/reference.csv"),
        &ProfileOptions {
            format: Format::Csv,
            model: Some("iris".into()),
            columns: None,
            categorical: vec!["class".into()],
            label: None,
            outputs: vec!["class".into()],
            bins: 10,
            top_k: 50,
            specs: Vec::new(),
        },
    )
    .unwrap();
    let reference = dir.path().join("iris.json");
    std::fs::write(&reference, serde_json::to_string(&profile).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let model_addr = listener.local_addr().unwrap();
    let model_server = tokio::spawn(serve(listener));
    let config = || {
        let mut file = test_config(model_addr);
        file.models = vec![ModelSection {
            name: "iris".into(),
            match_: Default::default(),
            protocol: ProtocolName::Auto,
            inputs: InputsSection {
                names: FEATURES.map(String::from).to_vec(),
                ..Default::default()
            },
            outputs: OutputsSection {
                names: vec!["class".into()],
                ..Default::default()
            },
            reference: Some(reference.to_string_lossy().into_owned()),
            learn_reference: LearnSection::default(),
        }];
        file.monitoring.window.samples = Some(window.len());
        file
    };
    let (replica_a, replica_b, single, staging) = (
        Running::start(config()).await,
        Running::start(config()).await,
        Running::start(config()).await,
        Running::start(config()).await,
    );
    // Namespace ml: the replicas split the traffic unevenly; the single process sees all of it.
    // Namespace ml-staging: one replica of the same model name, with traffic like the reference.
    let (first, second) = window.split_at(window.len() / 3);
    support::send_iris_rows(&replica_a, first, 50).await;
    support::send_iris_rows(&replica_b, second, 50).await;
    support::send_iris_rows(&single, &window, 50).await;
    support::send_iris_rows(&staging, &like_reference, 50).await;
    let single_scores = closed_window_psi(&single, "the single process").await;
    let staging_scores = closed_window_psi(&staging, "the ml-staging replica").await;
    // The namespaces' PSIs differ, so a fleet PSI merged across them would match neither.
    let differ = single_scores
        .iter()
        .filter(|(labels, value)| {
            staging_scores
                .iter()
                .any(|(other, staged)| other == labels && (staged - value).abs() > 0.01)
        })
        .count();
    assert!(
        differ > 0,
        "ml and ml-staging see different traffic: {single_scores:?} {staging_scores:?}"
    );

    // promtool input: the replicas' counters and reference gauges, and the PSI of the process that
    // saw all rows of each namespace, labelled as Kubernetes service discovery labels them.
    let mut input = String::new();
    for (namespace, instance, replica) in [
        ("ml", "a", &replica_a),
        ("ml", "b", &replica_b),
        ("ml-staging", "c", &staging),
    ] {
        let exposition = replica.metrics().await;
        for (labels, value) in series(&exposition, "driftwatch_column_bin_rows_total") {
            writeln!(input, "      - series: 'driftwatch_column_bin_rows_total{{namespace=\"{namespace}\",instance=\"{instance}\",{labels}}}'\n        values: '0 0 {value}'").unwrap();
        }
        for (labels, value) in series(&exposition, "driftwatch_reference_bin_fraction") {
            writeln!(input, "      - series: 'driftwatch_reference_bin_fraction{{namespace=\"{namespace}\",instance=\"{instance}\",{labels}}}'\n        values: '{value}x2'").unwrap();
        }
    }
    for (namespace, instance, scores) in [
        ("ml", "single", &single_scores),
        ("ml-staging", "c", &staging_scores),
    ] {
        for (labels, value) in scores {
            writeln!(input, "      - series: 'driftwatch_drift_score{{namespace=\"{namespace}\",instance=\"{instance}\",{labels}}}'\n        values: '{value}x2'").unwrap();
        }
    }
    // Five fleet PSIs per namespace, each equal to the PSI of the process that saw all its rows.
    let test = format!(
        "rule_files:\n  - {rules}\nevaluation_interval: 1m\ntests:\n  - interval: 30m\n    input_series:\n{input}    promql_expr_test:\n      - expr: count by (namespace) (driftwatch:fleet_psi:1h)\n        eval_time: 60m\n        exp_samples:\n          - labels: '{{namespace=\"ml\"}}'\n            value: 5\n          - labels: '{{namespace=\"ml-staging\"}}'\n            value: 5\n      - expr: count by (namespace) (abs(driftwatch:fleet_psi:1h - on (namespace, model, column, role) max by (namespace, model, column, role) (driftwatch_drift_score{{statistic=\"psi\"}})) < 1e-9)\n        eval_time: 60m\n        exp_samples:\n          - labels: '{{namespace=\"ml\"}}'\n            value: 5\n          - labels: '{{namespace=\"ml-staging\"}}'\n            value: 5\n",
        rules = repo("deploy/prometheus/recording-rules.yml").display(),
    );
    let test_file = dir.path().join("fleet_test.yml");
    std::fs::write(&test_file, &test).unwrap();
    let output = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&test_file)
        .output()
        .expect("promtool is installed (scripts/test installs Debian's prometheus)");
    assert!(
        output.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for running in [replica_a, replica_b, single, staging] {
        running.stop().await;
    }
    model_server.abort();
}
