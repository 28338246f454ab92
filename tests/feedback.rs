//! Feedback end to end: labels joined to predictions by request id (every body form), unknown,
//! expired, duplicate and invalid labels, bounded memory, performance equal to scikit-learn's,
//! concept drift, label shift, and the proxy-port endpoint.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use driftwatch::config::ConfigFile;
use driftwatch::config::feedback::BaselineSection;
use driftwatch::config::monitoring::{
    InputsSection, LearnSection, ModelSection, OutputsSection, ProtocolName, TaskName,
};
use driftwatch::config::units::{ByteSize, HumanDuration};
use driftwatch::demo::model::{FEATURES, serve};
use driftwatch::feedback::performance::{Confusion, Errors};
use driftwatch::profile::{Format, ProfileOptions, profile_file};
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use support::{Running, http1_client, metric_value, test_config};

fn fixture() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feedback/metrics.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: {actual} vs {expected}"
    );
}

#[test]
fn performance_metrics_equal_scikit_learns() {
    for case in fixture()["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let truth = case["truth"].as_array().unwrap();
        let predicted = case["predicted"].as_array().unwrap();
        if case["task"] == "classification" {
            let mut confusion = Confusion::default();
            for (t, p) in truth.iter().zip(predicted) {
                confusion.add(t.as_str().unwrap(), p.as_str().unwrap());
            }
            let scores = confusion.scores().unwrap();
            for (metric, value) in [
                ("accuracy", scores.accuracy),
                ("precision", scores.precision),
                ("recall", scores.recall),
                ("f1", scores.f1),
            ] {
                close(
                    value,
                    case[metric].as_f64().unwrap(),
                    &format!("{name} {metric}"),
                );
            }
        } else {
            let mut errors = Errors::default();
            for (t, p) in truth.iter().zip(predicted) {
                errors.add(t.as_f64().unwrap(), p.as_f64().unwrap());
            }
            let scores = errors.scores().unwrap();
            close(
                scores.mae,
                case["mae"].as_f64().unwrap(),
                &format!("{name} mae"),
            );
            close(
                scores.rmse,
                case["rmse"].as_f64().unwrap(),
                &format!("{name} rmse"),
            );
        }
    }
}

/// A row the demo classifier predicts as `class`.
fn row_for(class: &str) -> [f64; 4] {
    match class {
        "0" => [5.0, 3.4, 1.4, 0.2],
        "1" => [6.0, 2.8, 4.2, 1.3],
        _ => [6.5, 3.0, 5.6, 2.1],
    }
}

fn iris(window: usize) -> ConfigFile {
    ConfigFile {
        models: vec![ModelSection {
            name: "iris".into(),
            match_: Default::default(),
            protocol: ProtocolName::Auto,
            inputs: InputsSection {
                names: FEATURES.map(String::from).to_vec(),
                ..Default::default()
            },
            outputs: OutputsSection {
                names: vec!["class".into()],
                task: Some(TaskName::Classification),
                ..Default::default()
            },
            reference: None,
            learn_reference: LearnSection { samples: 50 },
        }],
        ..ConfigFile::default()
    }
    .with_window(window)
}

trait WithWindow {
    fn with_window(self, rows: usize) -> Self;
}

impl WithWindow for ConfigFile {
    fn with_window(mut self, rows: usize) -> Self {
        self.monitoring.window.samples = Some(rows);
        self
    }
}

struct Harness {
    proxy: Running,
    model_server: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(adjust: impl FnOnce(&mut ConfigFile)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let model_server = tokio::spawn(serve(listener));
        let base = test_config(addr);
        let mut file = iris(100);
        file.listen = base.listen;
        file.admin = base.admin;
        file.upstream = base.upstream;
        file.shutdown = base.shutdown;
        adjust(&mut file);
        Self {
            proxy: Running::start(file).await,
            model_server,
        }
    }

    /// Sends one request of `rows`; returns its request id.
    async fn predict(&self, rows: &[[f64; 4]]) -> String {
        let data: Vec<String> = rows
            .iter()
            .map(|r| format!("[{},{},{},{}]", r[0], r[1], r[2], r[3]))
            .collect();
        let body = format!(
            r#"{{"inputs":[{{"name":"predict","shape":[{},4],"datatype":"FP64","data":[{}]}}]}}"#,
            rows.len(),
            data.join(",")
        );
        let request = Request::post(self.proxy.url("/v2/models/iris/infer"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = http1_client().request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        support::body_bytes(response).await;
        id
    }

    async fn feedback_at(&self, url: &str, body: String, token: Option<&str>) -> (u16, Value) {
        let mut request = Request::post(url);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = http1_client()
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&support::body_bytes(response).await).unwrap_or(Value::Null),
        )
    }

    async fn feedback(&self, body: String) -> (u16, Value) {
        self.feedback_at(&self.proxy.admin_url("/api/v1/feedback"), body, None)
            .await
    }

    async fn performance(&self) -> Value {
        let response = http1_client()
            .request(support::get(&self.proxy.admin_url("/api/v1/performance")))
            .await
            .unwrap();
        serde_json::from_slice(&support::body_bytes(response).await).unwrap()
    }

    /// Waits (bounded) until the analysis worker has remembered `count` predictions.
    async fn wait_pending(&self, count: u64) {
        for _ in 0..500 {
            if self.performance().await["pending"].as_u64() >= Some(count) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{count} predictions were not remembered");
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.model_server.abort();
    }
}

#[tokio::test]
async fn labels_join_by_request_id_and_performance_equals_scikit_learns() {
    let case = fixture()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "iris_e2e")
        .unwrap()
        .clone();
    let truth: Vec<String> = serde_json::from_value(case["truth"].clone()).unwrap();
    let predicted: Vec<String> = serde_json::from_value(case["predicted"].clone()).unwrap();
    let harness = Harness::start(|file| {
        file.monitoring.window.samples = Some(truth.len());
        file.feedback.baselines = vec![BaselineSection {
            model: "iris".into(),
            metric: "accuracy".into(),
            value: 0.95,
            margin: 0.05,
        }];
    })
    .await;
    let mut ids = Vec::new();
    for class in &predicted {
        ids.push(harness.predict(&[row_for(class)]).await);
    }
    harness.wait_pending(ids.len() as u64).await;

    // Every body form: single objects, a JSON array, NDJSON.
    let label = |i: usize| json!({"request_id": ids[i], "label": truth[i].parse::<i64>().unwrap()});
    for i in 0..100 {
        let (status, answer) = harness.feedback(label(i).to_string()).await;
        assert_eq!(
            (status, answer["joined"].as_u64()),
            (200, Some(1)),
            "{answer}"
        );
    }
    let array: Vec<Value> = (100..200)
        .map(|i| json!({"request_id": ids[i], "labels": [truth[i]]}))
        .collect();
    let (_, answer) = harness.feedback(Value::Array(array).to_string()).await;
    assert_eq!(answer["joined"], 100);
    let ndjson: String = (200..300).map(|i| format!("{}\n", label(i))).collect();
    let (_, answer) = harness.feedback(ndjson).await;
    assert_eq!(
        answer,
        json!({"joined": 100, "unknown": 0, "expired": 0, "invalid": 0, "duplicate": 0})
    );

    let report = harness.performance().await;
    let iris = &report["models"][0];
    assert_eq!(iris["task"], "classification");
    let last = &iris["last_window"];
    assert_eq!(last["labels"], 300);
    for metric in ["accuracy", "precision", "recall", "f1"] {
        close(
            last["classification"][metric].as_f64().unwrap(),
            case[metric].as_f64().unwrap(),
            metric,
        );
    }
    let metrics = harness.proxy.metrics().await;
    close(
        metric_value(
            &metrics,
            r#"driftwatch_model_performance{model="iris",metric="f1"}"#,
        ),
        case["f1"].as_f64().unwrap(),
        "f1 gauge",
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_feedback_total{model="iris",outcome="joined"}"#
        ),
        300.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_feedback_delay_seconds_count{model="iris"}"#
        ),
        300.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_model_performance_baseline{model="iris",metric="accuracy"}"#
        ),
        0.95
    );
    let dropped = case["accuracy"].as_f64().unwrap() < 0.9;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_model_performance_drop{model="iris",metric="accuracy"}"#
        ),
        f64::from(u8::from(dropped))
    );
    harness.stop().await;
}

#[tokio::test]
async fn unknown_duplicate_invalid_and_per_row_labels() {
    let harness = Harness::start(|_| {}).await;
    let two_rows = harness.predict(&[row_for("0"), row_for("2")]).await;
    let one_row = harness.predict(&[row_for("1")]).await;
    harness.wait_pending(2).await;

    let (_, answer) = harness
        .feedback(json!({"request_id": two_rows, "labels": [0, 2]}).to_string())
        .await;
    assert_eq!(answer["joined"], 1);
    let (_, answer) = harness
        .feedback(json!({"request_id": two_rows, "labels": [1, 1]}).to_string())
        .await;
    assert_eq!(answer["duplicate"], 1, "the first label wins");
    let (_, answer) = harness
        .feedback(json!({"request_id": one_row, "labels": [1, 1]}).to_string())
        .await;
    assert_eq!(answer["invalid"], 1, "two labels for one row: {answer}");
    assert!(
        answer["problems"][0]
            .as_str()
            .unwrap()
            .contains("2 labels for 1 rows")
    );
    let (_, answer) = harness
        .feedback(json!({"request_id": "never-seen", "label": 1}).to_string())
        .await;
    assert_eq!(answer["unknown"], 1);

    // A malformed body: 400 naming the problem, and nothing applied.
    let before = harness.performance().await;
    let (status, answer) = harness
        .feedback(json!([{"request_id": one_row, "label": 1}, {"label": 2}]).to_string())
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("nothing was applied")
    );
    assert_eq!(answer["problems"][0]["error"], "request_id is missing");
    assert_eq!(answer["problems"][0]["index"], 1);
    let (status, answer) = harness.feedback("{oops".into()).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(
        harness.performance().await,
        before,
        "rejected bodies change nothing"
    );
    // The valid label of the rejected batch can still be sent.
    let (_, answer) = harness
        .feedback(json!({"request_id": one_row, "label": 1}).to_string())
        .await;
    assert_eq!(answer["joined"], 1);
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_feedback_total{model="iris",outcome="duplicate"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_feedback_total{model="unknown",outcome="unknown"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_feedback_total{model="unknown",outcome="invalid"}"#
        ),
        1.0
    );
    harness.stop().await;
}

#[tokio::test]
async fn ttl_and_capacity_evict_and_memory_stays_bounded() {
    let harness = Harness::start(|file| {
        file.feedback.max_pending = 100;
        file.feedback.ttl = HumanDuration::from_millis(1500);
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..400 {
        ids.push(harness.predict(&[row_for("1")]).await);
    }
    harness.wait_pending(100).await;
    for _ in 0..200 {
        let metrics = harness.proxy.metrics().await;
        if metric_value(
            &metrics,
            r#"driftwatch_feedback_evicted_total{model="iris",reason="capacity"}"#,
        ) >= 300.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(&metrics, "driftwatch_feedback_pending"),
        100.0,
        "bounded at max_pending"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_feedback_evicted_total{model="iris",reason="capacity"}"#
        ),
        300.0
    );
    let bytes = metric_value(&metrics, "driftwatch_feedback_pending_bytes");
    assert!(
        bytes > 0.0 && bytes < 100.0 * 512.0,
        "{bytes} bytes for 100 pending predictions"
    );
    let (_, answer) = harness
        .feedback(json!({"request_id": ids[0], "label": 1}).to_string())
        .await;
    assert_eq!(answer["expired"], 1, "evicted for capacity: {answer}");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (_, answer) = harness
        .feedback(json!({"request_id": ids[399], "label": 1}).to_string())
        .await;
    assert_eq!(answer["expired"], 1, "older than the ttl: {answer}");
    assert_eq!(
        metric_value(
            &harness.proxy.metrics().await,
            r#"driftwatch_feedback_total{model="iris",outcome="expired"}"#
        ),
        2.0,
        "late labels are counted under the model they were for"
    );
    harness.stop().await;
}

#[tokio::test]
async fn the_byte_bound_caps_the_store_and_counts_what_it_evicts() {
    const BOUND: u64 = 16 * 1024;
    let harness = Harness::start(|file| file.feedback.max_pending_bytes = ByteSize(BOUND)).await;
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(harness.predict(&[row_for("1")]).await);
    }
    // Wait until the analysis worker has seen all 300: kept + evicted.
    let mut metrics = String::new();
    for _ in 0..500 {
        metrics = harness.proxy.metrics().await;
        let kept = metric_value(&metrics, "driftwatch_feedback_pending");
        let evicted = metric_value(
            &metrics,
            r#"driftwatch_feedback_evicted_total{model="iris",reason="capacity"}"#,
        );
        if kept + evicted >= 300.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kept = metric_value(&metrics, "driftwatch_feedback_pending");
    let evicted = metric_value(
        &metrics,
        r#"driftwatch_feedback_evicted_total{model="iris",reason="capacity"}"#,
    );
    let bytes = metric_value(&metrics, "driftwatch_feedback_pending_bytes");
    assert_eq!(kept + evicted, 300.0, "every prediction kept or counted");
    assert!(
        kept > 10.0 && kept < 300.0,
        "{kept} kept under {BOUND} bytes"
    );
    assert!(bytes > 0.0 && bytes <= BOUND as f64, "{bytes} bytes held");
    // The oldest went first: the first is expired, the newest still joins.
    let (_, answer) = harness
        .feedback(json!({"request_id": ids[0], "label": 1}).to_string())
        .await;
    assert_eq!(answer["expired"], 1, "{answer}");
    let (_, answer) = harness
        .feedback(json!({"request_id": ids[299], "label": 1}).to_string())
        .await;
    assert_eq!(answer["joined"], 1, "{answer}");
    harness.stop().await;
}

/// A reference profile built from rows that hold the model's output and the label measures the
/// model's performance; without a configured baseline that is the baseline the drop check uses.
#[tokio::test]
async fn the_reference_profile_performance_is_the_default_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reference.csv");
    let mut text = String::from("sepal_length,sepal_width,petal_length,petal_width,class,label\n");
    for i in 0..200 {
        let class = ["0", "1", "2"][i % 3];
        let row = row_for(class);
        // Every tenth row the model was wrong: accuracy 0.9.
        let label = if i % 10 == 9 {
            ["1", "2", "0"][i % 3]
        } else {
            class
        };
        text.push_str(&format!(
            "{},{},{},{},{class},{label}\n",
            row[0], row[1], row[2], row[3]
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let profile = profile_file(
        &csv,
        &ProfileOptions {
            format: Format::Csv,
            model: Some("iris".into()),
            columns: None,
            categorical: vec!["class".into(), "label".into()],
            label: Some("label".into()),
            outputs: vec!["class".into()],
            bins: 10,
            top_k: 50,
            specs: Vec::new(),
        },
    )
    .unwrap();
    assert_eq!(profile.performance["accuracy"], 0.9);
    let json = serde_json::to_string(&profile).unwrap();
    assert!(
        json.contains("\"performance\":{"),
        "kept in the profile file"
    );
    let path = dir.path().join("iris.json");
    std::fs::write(&path, json).unwrap();

    let harness = Harness::start(|file| {
        file.models[0].reference = Some(path.to_string_lossy().into_owned());
        file.models[0].learn_reference = LearnSection { samples: 0 };
    })
    .await;
    // A window of 100 labels at accuracy 0.7: below 0.9 − 0.05.
    let mut labels = Vec::new();
    for i in 0..100 {
        let class = ["0", "1", "2"][i % 3];
        let id = harness.predict(&[row_for(class)]).await;
        let truth = if i % 10 < 3 {
            ["1", "2", "0"][i % 3]
        } else {
            class
        };
        labels.push(json!({"request_id": id, "label": truth}).to_string());
    }
    harness.wait_pending(100).await;
    let (_, answer) = harness.feedback(labels.join("\n")).await;
    assert_eq!(answer["joined"], 100, "{answer}");
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_model_performance{model="iris",metric="accuracy"}"#
        ),
        0.7
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_model_performance_baseline{model="iris",metric="accuracy"}"#
        ),
        0.9,
        "the profile's accuracy is the baseline: {}",
        metrics
            .lines()
            .filter(|l| l.contains("baseline") || l.contains("performance"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_model_performance_drop{model="iris",metric="accuracy"}"#
        ),
        1.0
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_concept_change_raises_the_flag_and_accuracy_falls() {
    let harness = Harness::start(|file| file.monitoring.window.samples = Some(300)).await;
    let mut labels = Vec::new();
    for i in 0..1200 {
        let class = ["0", "1", "2"][i % 3];
        let id = harness.predict(&[row_for(class)]).await;
        // The first 600: the model is right. Then the concept changes: classes 1 and 2 swap.
        let truth = if i < 600 {
            class
        } else {
            ["0", "2", "1"][i % 3]
        };
        labels.push(json!({"request_id": id, "label": truth}).to_string());
    }
    harness.wait_pending(1200).await;
    let (_, answer) = harness.feedback(labels[..600].join("\n")).await;
    assert_eq!(answer["joined"], 600);
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_concept_drift_detected{model="iris"}"#
        ),
        0.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_model_performance{model="iris",metric="accuracy"}"#
        ),
        1.0
    );
    let (_, answer) = harness.feedback(labels[600..].join("\n")).await;
    assert_eq!(answer["joined"], 600);
    let metrics = harness.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_concept_drift_detected{model="iris"}"#
        ),
        1.0
    );
    let accuracy = metric_value(
        &metrics,
        r#"driftwatch_model_performance{model="iris",metric="accuracy"}"#,
    );
    assert!((accuracy - 1.0 / 3.0).abs() < 1e-9, "accuracy {accuracy}");
    harness.stop().await;
}

#[tokio::test]
async fn the_proxy_endpoint_and_header_labels_join_too() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "fb-token").unwrap();
    let harness = Harness::start(|file| {
        file.feedback.proxy_endpoint = true;
        file.feedback.request_label.id_header = Some("x-label-for".into());
        file.feedback.request_label.label_header = Some("x-label".into());
        file.feedback.request_label.id_pointer = Some("/feedback/request_id".into());
        file.feedback.request_label.label_pointer = Some("/feedback/label".into());
        file.admin.token_file = Some(token.to_string_lossy().into_owned());
    })
    .await;
    let first = harness.predict(&[row_for("2")]).await;
    let second = harness.predict(&[row_for("0")]).await;
    let third = harness.predict(&[row_for("1")]).await;
    harness.wait_pending(3).await;
    let url = harness.proxy.url("/_driftwatch/feedback");
    let body = json!({"request_id": first, "label": 2}).to_string();
    assert_eq!(harness.feedback_at(&url, body.clone(), None).await.0, 401);
    assert_eq!(
        harness
            .feedback_at(&url, body.clone(), Some("not-it"))
            .await
            .0,
        403,
        "a wrong token is refused as on the admin port"
    );
    let (status, answer) = harness.feedback_at(&url, body, Some("fb-token")).await;
    assert_eq!(
        (status, answer["joined"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );

    // A later request through the proxy carries the label of the second.
    let beacon = Request::get(harness.proxy.url("/status/204"))
        .header("x-label-for", second.as_str())
        .header("x-label", "0")
        .body(Full::new(Bytes::new()))
        .unwrap();
    support::body_bytes(http1_client().request(beacon).await.unwrap()).await;
    // And a later request's JSON body carries the label of the third (wrong: 2, not 1).
    let later = Request::post(harness.proxy.url("/echo"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"feedback": {"request_id": third, "label": 2}}).to_string(),
        )))
        .unwrap();
    support::body_bytes(http1_client().request(later).await.unwrap()).await;
    for _ in 0..500 {
        let metrics = harness.proxy.metrics().await;
        if metric_value(
            &metrics,
            r#"driftwatch_feedback_total{model="iris",outcome="joined"}"#,
        ) == 3.0
        {
            let performance = harness.performance().await;
            let open = &performance["models"][0]["open_window"];
            assert_eq!(open["labels"], 3, "{performance}");
            assert_eq!(
                open["classification"]["accuracy"].as_f64(),
                Some(2.0 / 3.0),
                "the body's label (2 for a 1) was scored: {performance}"
            );
            harness.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the header and body labels were not joined");
}
