//! Fleet view: two replicas' bin counters, fed to the shipped recording rules in
//! `promtool test rules`, give the same PSI as one process that saw all rows.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use bytes::Bytes;
use driftwatch::config::monitoring::{
    InputsSection, LearnSection, ModelSection, OutputsSection, ProtocolName,
};
use driftwatch::demo::model::{FEATURES, serve};
use driftwatch::profile::{Format, ProfileOptions, profile_file};
use http::Request;
use http_body_util::Full;
use support::{Running, http1_client, test_config};

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

async fn send(proxy: &Running, rows: &[Vec<Option<f64>>]) {
    let client = http1_client();
    for batch in rows.chunks(50) {
        let data: Vec<String> = batch
            .iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .map(|v| v.map_or("NaN".to_owned(), |x| format!("{x}")))
                    .collect();
                format!("[{}]", cells.join(","))
            })
            .collect();
        let body = format!(
            r#"{{"inputs":[{{"name":"predict","shape":[{},4],"datatype":"FP64","data":[{}]}}]}}"#,
            batch.len(),
            data.join(",")
        );
        let request = Request::post(proxy.url("/v2/models/iris/infer"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        support::body_bytes(client.request(request).await.unwrap()).await;
    }
}

#[tokio::test]
async fn two_replicas_give_the_fleet_psi_of_one_process() {
    let window: Vec<Vec<Option<f64>>> = serde_json::from_str(
        &std::fs::read_to_string(repo("tests/fixtures/drift_e2e/window.json")).unwrap(),
    )
    .unwrap();
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
    let (replica_a, replica_b, single) = (
        Running::start(config()).await,
        Running::start(config()).await,
        Running::start(config()).await,
    );
    // The replicas split the traffic unevenly; the single process sees all of it.
    let (first, second) = window.split_at(window.len() / 3);
    send(&replica_a, first).await;
    send(&replica_b, second).await;
    send(&single, &window).await;
    let mut single_scores = Vec::new();
    for _ in 0..500 {
        single_scores = series(&single.metrics().await, "driftwatch_drift_score")
            .into_iter()
            .filter(|(labels, value)| labels.contains("statistic=\"psi\"") && *value != 0.0)
            .collect();
        if single_scores.len() == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        single_scores.len(),
        5,
        "the single process closed its window: {single_scores:?}"
    );

    // promtool input: the replicas' counters and reference gauges, and the single process's PSI.
    let mut input = String::new();
    for (instance, replica) in [("a", &replica_a), ("b", &replica_b)] {
        let exposition = replica.metrics().await;
        for (labels, value) in series(&exposition, "driftwatch_column_bin_rows_total") {
            writeln!(input, "      - series: 'driftwatch_column_bin_rows_total{{instance=\"{instance}\",{labels}}}'\n        values: '0 0 {value}'").unwrap();
        }
        for (labels, value) in series(&exposition, "driftwatch_reference_bin_fraction") {
            writeln!(input, "      - series: 'driftwatch_reference_bin_fraction{{instance=\"{instance}\",{labels}}}'\n        values: '{value}x2'").unwrap();
        }
    }
    for (labels, value) in &single_scores {
        writeln!(input, "      - series: 'driftwatch_drift_score{{instance=\"single\",{labels}}}'\n        values: '{value}x2'").unwrap();
    }
    let test = format!(
        "rule_files:\n  - {rules}\nevaluation_interval: 1m\ntests:\n  - interval: 30m\n    input_series:\n{input}    promql_expr_test:\n      - expr: count(driftwatch:fleet_psi:1h)\n        eval_time: 60m\n        exp_samples:\n          - labels: '{{}}'\n            value: 5\n      - expr: count(abs(driftwatch:fleet_psi:1h - on (model, column, role) max by (model, column, role) (driftwatch_drift_score{{statistic=\"psi\"}})) < 1e-9)\n        eval_time: 60m\n        exp_samples:\n          - labels: '{{}}'\n            value: 5\n",
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
    for running in [replica_a, replica_b, single] {
        running.stop().await;
    }
    model_server.abort();
}
