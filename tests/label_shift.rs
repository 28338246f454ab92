//! Label shift end to end (issue 7): a reference profile with a label column (`driftwatch
//! profile --label class`), predictions through driftwatch to the demo iris model server, and
//! ground-truth labels through `POST /api/v1/feedback`. Joined labels feed the reference's
//! `label` column in the drift engine: `GET /api/v1/drift` judges it against the reference's label
//! distribution, and `driftwatch_drift_detected{role="label"}` follows it.
//!
//! How label rows are windowed (src/monitor/model.rs `ingest_labels`): labels have no window of
//! their own. They are added to the label column of the window that is open when they arrive
//! (not the window their predictions fell in), they do not count as window rows (only input rows
//! close a tumbling window), the column's `rows` is the number of labels in the window, and
//! `min_samples` applies to that count. The gauges follow the last complete window, so a label
//! shift reaches `/metrics` when the input window the labels fell in closes.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use driftwatch::config::ConfigFile;
use driftwatch::config::monitoring::{
    InputsSection, LearnSection, ModelSection, OutputsSection, ProtocolName, TaskName,
};
use driftwatch::demo::model::{FEATURES, serve};
use driftwatch::profile::{Format, ProfileOptions, profile_file};
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use support::{Running, http1_client, metric_value, test_config};

/// Input rows per tumbling window.
const WINDOW: usize = 300;
/// A column needs this many rows in its window to be judged drifted.
const MIN_SAMPLES: usize = 100;
/// Rows per prediction request.
const BATCH: usize = 25;
/// The default categorical statistic (psi) and its threshold.
const THRESHOLD: f64 = 0.2;
/// PSI's floor for an empty bin (SPEC §7).
const ZERO_FRACTION: f64 = 1e-4;

fn reference_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drift_e2e/reference.csv")
}

/// The reference rows: four iris features and the class (the ground truth of the reference set).
fn reference_rows() -> Vec<([f64; 4], String)> {
    std::fs::read_to_string(reference_csv())
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let features: Vec<f64> = fields[..4].iter().map(|v| v.parse().unwrap()).collect();
            (features.try_into().unwrap(), fields[4].to_owned())
        })
        .collect()
}

fn class_counts<'a>(classes: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for class in classes {
        *counts.entry(class.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// PSI of a window of labels against the reference's labels, by the SPEC §7 formula (computed
/// here, not by driftwatch): `Σ (q − p)·ln(q / p)` over the classes, empty fractions floored.
/// The other bins (`__other__`, `__unseen__`, `__missing__`) are empty on both sides and add 0.
fn expected_psi(reference: &BTreeMap<String, u64>, window: &BTreeMap<String, u64>) -> f64 {
    let total = |counts: &BTreeMap<String, u64>| counts.values().sum::<u64>() as f64;
    let (reference_total, window_total) = (total(reference), total(window));
    reference
        .keys()
        .chain(window.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|class| {
            let fraction = |counts: &BTreeMap<String, u64>, total: f64| {
                let f = counts.get(class).copied().unwrap_or(0) as f64 / total;
                if f == 0.0 { ZERO_FRACTION } else { f }
            };
            let p = fraction(reference, reference_total);
            let q = fraction(window, window_total);
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// The shifted ground truth: 70% class 0, 20% class 1, 10% class 2 (the reference has about a
/// third of each).
fn shifted_class(i: usize) -> &'static str {
    match i % 10 {
        0..=6 => "0",
        7 | 8 => "1",
        _ => "2",
    }
}

/// `driftwatch profile --label class --categorical class` of the fixture, written to `dir`.
fn write_profile(dir: &Path) -> PathBuf {
    let profile = profile_file(
        &reference_csv(),
        &ProfileOptions {
            format: Format::Csv,
            model: Some("iris".into()),
            columns: None,
            categorical: vec!["class".into()],
            label: Some("class".into()),
            outputs: Vec::new(),
            bins: 10,
            top_k: 50,
            specs: Vec::new(),
        },
    )
    .unwrap();
    let path = dir.join("iris.profile.json");
    std::fs::write(&path, serde_json::to_string(&profile).unwrap()).unwrap();
    path
}

struct Harness {
    proxy: Running,
    model_server: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(reference: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let model_server = tokio::spawn(serve(listener));
        let mut file: ConfigFile = test_config(addr);
        file.models = vec![ModelSection {
            name: "iris".into(),
            match_: Default::default(),
            protocol: ProtocolName::Auto,
            inputs: InputsSection {
                names: FEATURES.map(String::from).to_vec(),
                ..Default::default()
            },
            // The model's output column is also called `class`: it must not reach the label
            // column of the same name.
            outputs: OutputsSection {
                names: vec!["class".into()],
                task: Some(TaskName::Classification),
                ..Default::default()
            },
            reference: Some(reference.to_string_lossy().into_owned()),
            learn_reference: LearnSection { samples: 50 },
        }];
        file.monitoring.window.samples = Some(WINDOW);
        file.monitoring.min_samples = MIN_SAMPLES;
        Self {
            proxy: Running::start(file).await,
            model_server,
        }
    }

    /// Sends `rows` in requests of [`BATCH`] rows; returns the request ids.
    async fn predict(&self, rows: &[([f64; 4], String)]) -> Vec<String> {
        let client = http1_client();
        let mut ids = Vec::new();
        for chunk in rows.chunks(BATCH) {
            let data: Vec<String> = chunk
                .iter()
                .map(|(r, _)| format!("[{},{},{},{}]", r[0], r[1], r[2], r[3]))
                .collect();
            let body = format!(
                r#"{{"inputs":[{{"name":"predict","shape":[{},4],"datatype":"FP64","data":[{}]}}]}}"#,
                chunk.len(),
                data.join(",")
            );
            let request = Request::post(self.proxy.url("/v2/models/iris/infer"))
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let response = client.request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            ids.push(
                response.headers()["x-request-id"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
            support::body_bytes(response).await;
        }
        ids
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = http1_client()
            .request(support::get(&self.proxy.admin_url(path)))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        serde_json::from_slice(&support::body_bytes(response).await).unwrap()
    }

    /// Waits (bounded, 10s) until the monitor has taken `rows` rows and the feedback store
    /// remembers `predictions` predictions (the analysis worker does both under one lock).
    async fn wait_for_rows(&self, rows: u64, predictions: u64) {
        let mut last = Value::Null;
        for _ in 0..500 {
            let models = self.get_json("/api/v1/models").await;
            let performance = self.get_json("/api/v1/performance").await;
            if models["models"][0]["rows"].as_u64() == Some(rows)
                && performance["pending"].as_u64() == Some(predictions)
            {
                return;
            }
            last = models;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the monitor did not reach {rows} rows: {last}");
    }

    /// Posts one NDJSON body of `{"request_id", "labels"}` items; returns the answer.
    async fn feedback(&self, items: &[(String, Vec<Value>)]) -> Value {
        let body: String = items
            .iter()
            .map(|(id, labels)| format!("{}\n", json!({"request_id": id, "labels": labels})))
            .collect();
        let request = Request::post(self.proxy.admin_url("/api/v1/feedback"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = http1_client().request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_slice(&support::body_bytes(response).await).unwrap()
    }

    async fn drift(&self) -> Value {
        self.get_json("/api/v1/drift?model=iris").await
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.model_server.abort();
    }
}

/// The report's column of `role` named `name`.
fn column<'a>(report: &'a Value, role: &str, name: &str) -> &'a Value {
    report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == role && c["name"] == name)
        .unwrap_or_else(|| panic!("no {role} column {name} in {report}"))
}

/// The window fraction of each bin of a column report, by bin label.
fn window_fractions(column: &Value) -> BTreeMap<String, f64> {
    let labels = column["bins"]["labels"].as_array().unwrap();
    let window = column["bins"]["window"].as_array().unwrap();
    labels
        .iter()
        .zip(window)
        .map(|(l, w)| (l.as_str().unwrap().to_owned(), w.as_f64().unwrap()))
        .collect()
}

/// Every input column of a report: judged on the whole window, and not drifted.
fn assert_inputs_steady(report: &Value) {
    for feature in FEATURES {
        let input = column(report, "input", feature);
        assert_eq!(input["rows"], WINDOW, "{feature}: {input}");
        let psi = input["value"].as_f64().unwrap();
        assert!(psi < THRESHOLD, "{feature} psi {psi}");
        assert_eq!(input["drifted"], false, "{feature}: {input}");
    }
    assert_eq!(report["dataset"]["drifted_columns"], 0);
    assert_eq!(report["dataset"]["drifted"], false);
}

fn series(name: &str, column: &str, role: &str) -> String {
    format!(r#"{name}{{model="iris",column="{column}",role="{role}"}}"#)
}

fn score(column: &str, role: &str, statistic: &str) -> String {
    format!(
        r#"driftwatch_drift_score{{model="iris",column="{column}",role="{role}",statistic="{statistic}"}}"#
    )
}

#[tokio::test]
async fn label_shift_is_judged_against_the_references_label_distribution() {
    let rows = reference_rows();
    let reference = class_counts(rows.iter().map(|(_, c)| c.as_str()));
    assert_eq!(reference.len(), 3, "the fixture has three classes");
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(&write_profile(dir.path())).await;

    let models = harness.get_json("/api/v1/models").await;
    let iris = &models["models"][0];
    assert_eq!(iris["reference"]["source"], "profile:reference.csv");
    assert!(
        iris["columns"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "class", "role": "label", "kind": "categorical"})),
        "{iris}"
    );

    // Window 0: predictions only. The label column has nothing to judge.
    let window0 = harness.predict(&rows[..WINDOW]).await;
    harness
        .wait_for_rows(WINDOW as u64, window0.len() as u64)
        .await;
    let drift = harness.drift().await;
    let last = &drift["last_window"];
    assert_eq!(last["window"]["index"], 0);
    assert_eq!(last["window"]["complete"], true);
    let label = column(last, "label", "class");
    assert_eq!(
        label["rows"], 0,
        "predicted classes are not labels: {label}"
    );
    assert_eq!(label["value"], Value::Null);
    assert_eq!(label["drifted"], false);
    assert_inputs_steady(last);

    // The true labels of window 0, distributed as in the reference. They fall into the open
    // window 1, whatever window their predictions were in, and add no window rows.
    let truth: Vec<(String, Vec<Value>)> = window0
        .iter()
        .zip(rows[..WINDOW].chunks(BATCH))
        .map(|(id, chunk)| {
            let labels = chunk
                .iter()
                .map(|(_, c)| json!(c.parse::<i64>().unwrap()))
                .collect();
            (id.clone(), labels)
        })
        .collect();
    let answer = harness.feedback(&truth).await;
    assert_eq!(
        answer,
        json!({"joined": window0.len(), "unknown": 0, "expired": 0, "invalid": 0, "duplicate": 0})
    );
    let matching = class_counts(rows[..WINDOW].iter().map(|(_, c)| c.as_str()));
    let matching_psi = expected_psi(&reference, &matching);
    assert!(matching_psi < THRESHOLD / 4.0, "{matching_psi}");
    let drift = harness.drift().await;
    assert_eq!(
        drift["last_window"]["window"]["index"], 0,
        "labels close no window"
    );
    let open = &drift["open_window"];
    assert_eq!(open["window"]["index"], 1);
    assert_eq!(open["window"]["rows"], 0, "labels are not window rows");
    let label = column(open, "label", "class");
    assert_eq!(label["rows"], WINDOW);
    assert_eq!(label["kind"], "categorical");
    assert_eq!(label["statistic"], "psi");
    assert_eq!(label["threshold"], THRESHOLD);
    let psi = label["value"].as_f64().unwrap();
    assert!(
        (psi - matching_psi).abs() < 1e-12,
        "{psi} vs {matching_psi}"
    );
    assert_eq!(label["drifted"], false);
    let fractions = window_fractions(label);
    for (class, count) in &matching {
        assert_eq!(fractions[class], *count as f64 / WINDOW as f64, "{class}");
    }
    assert_eq!(fractions["__unseen__"], 0.0);
    assert_eq!(fractions["__missing__"], 0.0);
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_column_values_total{model="iris",column="class",role="label",status="ok"}"#
        ),
        WINDOW as f64,
        "every label validated against the reference's classes"
    );

    // Window 1 closes on input rows: its labels are judged, nothing drifts.
    let window1 = harness.predict(&rows[WINDOW..2 * WINDOW]).await;
    harness
        .wait_for_rows(2 * WINDOW as u64, 2 * window0.len() as u64)
        .await;
    let drift = harness.drift().await;
    let last = &drift["last_window"];
    assert_eq!(last["window"]["index"], 1);
    let label = column(last, "label", "class");
    assert_eq!(label["rows"], WINDOW);
    assert!((label["value"].as_f64().unwrap() - matching_psi).abs() < 1e-12);
    assert_eq!(label["drifted"], false);
    assert_inputs_steady(last);
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            &series("driftwatch_drift_detected", "class", "label")
        ),
        0.0
    );
    let published = metric_value(&metrics, &score("class", "label", "psi"));
    assert!(
        (published - matching_psi).abs() < 1e-12,
        "the label column's psi is exported: {published}"
    );
    for feature in FEATURES {
        assert_eq!(
            metric_value(
                &metrics,
                &series("driftwatch_drift_detected", feature, "input")
            ),
            0.0,
            "{feature}"
        );
    }

    // Labels for window 1 with a shifted class distribution (as strings this time: "0" is the
    // reference's category 0). Below min_samples the column crosses the threshold undrifted.
    let shifted: Vec<(String, Vec<Value>)> = window1
        .iter()
        .enumerate()
        .map(|(request, id)| {
            let labels = (0..BATCH)
                .map(|row| json!(shifted_class(request * BATCH + row)))
                .collect();
            (id.clone(), labels)
        })
        .collect();
    let early = MIN_SAMPLES / BATCH - 1;
    let answer = harness.feedback(&shifted[..early]).await;
    assert_eq!(answer["joined"], early);
    let drift = harness.drift().await;
    let label = column(&drift["open_window"], "label", "class");
    let few = class_counts((0..early * BATCH).map(shifted_class));
    assert_eq!(label["rows"], early * BATCH);
    assert!(early * BATCH < MIN_SAMPLES);
    let psi = label["value"].as_f64().unwrap();
    assert!((psi - expected_psi(&reference, &few)).abs() < 1e-12);
    assert!(psi > THRESHOLD, "{psi}");
    assert_eq!(label["drifted"], false, "fewer labels than min_samples");

    let answer = harness.feedback(&shifted[early..]).await;
    assert_eq!(answer["joined"], window1.len() - early);
    let all = class_counts((0..WINDOW).map(shifted_class));
    assert_eq!(all["0"], 210);
    let shifted_psi = expected_psi(&reference, &all);
    assert!(shifted_psi > 2.0 * THRESHOLD, "{shifted_psi}");
    let drift = harness.drift().await;
    let open = &drift["open_window"];
    assert_eq!(open["window"]["rows"], 0);
    let label = column(open, "label", "class");
    assert_eq!(label["rows"], WINDOW);
    let psi = label["value"].as_f64().unwrap();
    assert!((psi - shifted_psi).abs() < 1e-12, "{psi} vs {shifted_psi}");
    assert_eq!(label["drifted"], true);
    assert!(label["statistics"]["chi2_p"].as_f64().unwrap() < 1e-6);
    let fractions = window_fractions(label);
    assert_eq!(
        (fractions["0"], fractions["1"], fractions["2"]),
        (0.7, 0.2, 0.1)
    );
    assert_eq!(fractions["__unseen__"], 0.0);
    assert_eq!(
        metric_value(
            &harness.proxy.metrics().await,
            &series("driftwatch_drift_detected", "class", "label")
        ),
        0.0,
        "the gauge follows the last complete window"
    );

    // Window 2 closes on input rows from the reference: only the label column drifted.
    harness.predict(&rows[2 * WINDOW..3 * WINDOW]).await;
    harness
        .wait_for_rows(3 * WINDOW as u64, 3 * window0.len() as u64)
        .await;
    let drift = harness.drift().await;
    let last = &drift["last_window"];
    assert_eq!(last["window"]["index"], 2);
    let label = column(last, "label", "class");
    assert_eq!(label["rows"], WINDOW);
    assert!((label["value"].as_f64().unwrap() - shifted_psi).abs() < 1e-12);
    assert_eq!(label["drifted"], true);
    assert_inputs_steady(last);
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            &series("driftwatch_drift_detected", "class", "label")
        ),
        1.0
    );
    let published = metric_value(&metrics, &score("class", "label", "psi"));
    assert!((published - shifted_psi).abs() < 1e-12, "{published}");
    assert!(metric_value(&metrics, &score("class", "label", "chi2_p")) < 1e-6);
    for feature in FEATURES {
        assert_eq!(
            metric_value(
                &metrics,
                &series("driftwatch_drift_detected", feature, "input")
            ),
            0.0,
            "{feature}"
        );
        assert!(metric_value(&metrics, &score(feature, "input", "psi")) < THRESHOLD);
    }
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_dataset_drift_detected{model="iris"}"#
        ),
        0.0,
        "label shift is not input drift"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_column_values_total{model="iris",column="class",role="label",status="ok"}"#
        ),
        2.0 * WINDOW as f64
    );

    // Window 3: no labels. The label column has nothing to judge, and the flag falls.
    harness.predict(&rows[3 * WINDOW..4 * WINDOW]).await;
    harness
        .wait_for_rows(4 * WINDOW as u64, 4 * window0.len() as u64)
        .await;
    let drift = harness.drift().await;
    let last = &drift["last_window"];
    assert_eq!(last["window"]["index"], 3);
    let label = column(last, "label", "class");
    assert_eq!(
        (label["rows"].as_u64(), label["drifted"].as_bool()),
        (Some(0), Some(false))
    );
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            &series("driftwatch_drift_detected", "class", "label")
        ),
        0.0
    );
    assert!(
        metric_value(&metrics, &score("class", "label", "psi")).is_nan(),
        "a window without labels has no label PSI (not the last one's): {}",
        metric_value(&metrics, &score("class", "label", "psi"))
    );
    harness.stop().await;
}
