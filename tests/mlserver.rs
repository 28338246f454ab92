//! End to end against a real MLServer (PyPI `mlserver` + `mlserver-sklearn`) serving the
//! scikit-learn iris classifier of `tests/fixtures/mlserver` (written by its `train.py`).
//!
//! Open Inference requests shaped as MLServer's Python clients send them go once straight to
//! MLServer and once through driftwatch: what the client sees must be the same, and the
//! predictions must be scikit-learn's. Monitoring must then show what was sent: the reference
//! learned from the first 60 rows, per-column validation counts, the outlier (counted and
//! recorded), the NaN and the wrong shape.

// This test uses only part of the shared support module.
#[allow(unused_imports)]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use driftwatch::config::ConfigFile;
use driftwatch::config::monitoring::{
    InputsSection, LearnSection, ModelSection, OutputsSection, TaskName,
};
use driftwatch::config::recording::AlwaysRecord;
use http::Request;
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};
use support::mlserver::MlServer;
use support::{
    Running, body_bytes, get, http1_client, metric_value, read_records, test_config,
    wait_for_records, with_file_sink,
};

const MODEL: &str = "iris";
const INFER: &str = "/v2/models/iris/infer";
/// Rows driftwatch freezes as the reference (`learn_reference.samples`).
const REFERENCE_SAMPLES: usize = 60;
/// Reference rows per request.
const BATCH: usize = 10;

/// `tests/fixtures/mlserver/iris.json`; its generator documents every field.
#[derive(Deserialize)]
struct Fixture {
    columns: Vec<String>,
    reference_bounds: BTreeMap<String, [f64; 2]>,
    reference_rows: Vec<[f64; 4]>,
    normal_rows: Vec<[f64; 4]>,
    outlier_row: [f64; 4],
    /// `null` stands for the NaN the test sends.
    nan_row: [Option<f64>; 4],
    predictions: Predictions,
}

#[derive(Deserialize)]
struct Predictions {
    reference_rows: Vec<i64>,
    normal_rows: Vec<i64>,
    outlier_row: i64,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlserver")
}

fn load_fixture() -> Fixture {
    let text = std::fs::read_to_string(fixture_dir().join("iris.json")).expect("iris.json");
    let fixture: Fixture = serde_json::from_str(&text).expect("iris.json parses");
    assert_eq!(fixture.reference_rows.len(), REFERENCE_SAMPLES);
    assert_eq!(fixture.predictions.reference_rows.len(), REFERENCE_SAMPLES);
    fixture
}

/// An Open Inference request as MLServer's documented Python client writes it: one FP32 `[N, 4]`
/// tensor with nested rows, and an `id`, which MLServer echoes (body `id`, `ce-id`), so that the
/// direct and the proxied answers can be compared byte for byte.
fn infer_body(id: &str, rows: &[[f64; 4]]) -> String {
    json!({
        "id": id,
        "inputs": [{"name": "input-0", "shape": [rows.len(), 4], "datatype": "FP32", "data": rows}],
    })
    .to_string()
}

/// A NaN in a row, written as Python's `json.dumps` writes `float("nan")`: a bare `NaN` token.
fn nan_body(id: &str, row: &[Option<f64>; 4]) -> String {
    let body = json!({
        "id": id,
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [row]}],
    })
    .to_string();
    assert_eq!(body.matches("null").count(), 1, "one NaN to write: {body}");
    body.replace("null", "NaN")
}

/// A tensor whose data does not fill its shape: `[2, 4]` declared, seven values sent, flat as
/// MLServer's `NumpyCodec` writes tensors.
fn short_tensor_body(id: &str, first: &[f64; 4], second: &[f64; 4]) -> String {
    let data: Vec<f64> = first.iter().chain(&second[..3]).copied().collect();
    json!({
        "id": id,
        "inputs": [{
            "name": "input-0", "shape": [2, 4], "datatype": "FP32",
            "parameters": {"content_type": "np"}, "data": data,
        }],
    })
    .to_string()
}

/// What a client sees of a response, less the headers that legitimately differ between two
/// answers (`date`) or that driftwatch adds (`x-request-id`, returned separately).
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: BTreeMap<String, Vec<String>>,
    body: Bytes,
}

async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> (Seen, Option<String>) {
    let mut request = Request::post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = http1_client()
        .request(request)
        .await
        .unwrap_or_else(|error| panic!("POST {url}: {error}"));
    let status = response.status().as_u16();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in response.headers() {
        headers
            .entry(name.to_string())
            .or_default()
            .push(value.to_str().unwrap().to_owned());
    }
    headers.remove("date");
    let request_id = headers.remove("x-request-id").map(|mut ids| ids.remove(0));
    let body = body_bytes(response).await;
    (
        Seen {
            status,
            headers,
            body,
        },
        request_id,
    )
}

/// One inference request sent straight to MLServer and through driftwatch; the two answers must
/// be the same. Returns the proxied answer and driftwatch's request id.
async fn exchange(
    mlserver: &MlServer,
    proxy: &Running,
    body: &str,
    headers: &[(&str, &str)],
) -> (Seen, String) {
    let (direct, direct_id) = post(&mlserver.url(INFER), body, headers).await;
    assert_eq!(direct_id, None, "MLServer sets no x-request-id itself");
    let (proxied, request_id) = post(&proxy.url(INFER), body, headers).await;
    assert_eq!(
        proxied,
        direct,
        "through driftwatch as straight from MLServer, for {body}\nMLServer log:\n{}",
        mlserver.log()
    );
    (
        proxied,
        request_id.expect("driftwatch returns x-request-id"),
    )
}

/// Asserts the answer is MLServer's prediction tensor holding scikit-learn's classes.
fn assert_predictions(seen: &Seen, id: &str, expected: &[i64]) {
    assert_eq!(seen.status, 200, "{:?}", seen.body);
    let body: Value = serde_json::from_slice(&seen.body).expect("JSON answer");
    assert_eq!(body["model_name"], MODEL);
    assert_eq!(body["id"], id);
    assert_eq!(
        body["outputs"],
        json!([{
            "name": "predict", "shape": [expected.len(), 1], "datatype": "INT64",
            "parameters": {"content_type": "np"}, "data": expected,
        }])
    );
}

/// Input values by column and validation status, as driftwatch should count them (SPEC §7): NaN
/// is `nan`; once the reference is frozen, a value outside its [min, max] is `out_of_range`;
/// anything else is `ok` (while the reference is learned there is no range to leave).
#[derive(Default)]
struct Expected {
    values: BTreeMap<(String, &'static str), u64>,
    answered_rows: u64,
}

impl Expected {
    fn count(&mut self, fixture: &Fixture, rows: &[[Option<f64>; 4]], reference_ready: bool) {
        for row in rows {
            for (column, value) in fixture.columns.iter().zip(row) {
                let [min, max] = fixture.reference_bounds[column];
                let status = match value {
                    None => "nan",
                    Some(x) if reference_ready && !(min..=max).contains(x) => "out_of_range",
                    Some(_) => "ok",
                };
                *self.values.entry((column.clone(), status)).or_default() += 1;
            }
        }
    }

    fn value(&self, column: &str, status: &str) -> u64 {
        self.values
            .get(&(column.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }
}

fn known(rows: &[[f64; 4]]) -> Vec<[Option<f64>; 4]> {
    rows.iter().map(|row| row.map(Some)).collect()
}

async fn admin_json(proxy: &Running, path: &str) -> Value {
    let response = http1_client()
        .request(get(&proxy.admin_url(path)))
        .await
        .expect("admin answers");
    assert_eq!(response.status(), 200, "GET {path}");
    serde_json::from_slice(&body_bytes(response).await).expect("admin JSON")
}

/// The `iris` entry of `GET /api/v1/models`, once `done` holds for it (bounded, 10s: the analysis
/// worker reads exchanges after they were answered).
async fn model_when(proxy: &Running, done: impl Fn(&Value) -> bool) -> Value {
    let mut model = Value::Null;
    for _ in 0..500 {
        let models = admin_json(proxy, "/api/v1/models").await;
        model = models["models"]
            .as_array()
            .and_then(|list| list.iter().find(|m| m["name"] == MODEL))
            .cloned()
            .unwrap_or(Value::Null);
        if done(&model) {
            return model;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("model {MODEL} never reached the expected state; last seen: {model:#}");
}

/// The record's validation issues on input columns (a refused request also lists its output
/// column as `missing`: it got no prediction).
fn input_issues(record: &Value, fixture: &Fixture) -> Value {
    let issues = record["monitor"]["issues"].as_array().expect("issues");
    issues
        .iter()
        .filter(|issue| {
            fixture
                .columns
                .iter()
                .any(|c| issue["column"] == c.as_str())
        })
        .cloned()
        .collect()
}

fn record_for<'a>(records: &'a [Value], request_id: &str) -> &'a Value {
    records
        .iter()
        .find(|record| record["id"] == request_id)
        .unwrap_or_else(|| panic!("no record for {request_id} in {records:#?}"))
}

fn proxy_config(mlserver: &MlServer, fixture: &Fixture, records: &Path) -> ConfigFile {
    let mut file = with_file_sink(test_config(mlserver.addr), records);
    // Only exchanges that must be recorded whatever the rate: errors, outliers, forced ones.
    file.recording.sample_rate = 0.0;
    file.recording.always = vec![AlwaysRecord::Errors, AlwaysRecord::Outliers];
    file.models = vec![ModelSection {
        name: MODEL.to_owned(),
        match_: Default::default(),
        protocol: Default::default(),
        inputs: InputsSection {
            names: fixture.columns.clone(),
            ..Default::default()
        },
        outputs: OutputsSection {
            names: vec!["class".to_owned()],
            task: Some(TaskName::Classification),
            ..Default::default()
        },
        reference: None,
        learn_reference: LearnSection {
            samples: REFERENCE_SAMPLES,
        },
    }];
    file
}

#[tokio::test]
async fn mlserver_sklearn_through_driftwatch_is_transparent_and_monitored() {
    let fixture = load_fixture();
    let mlserver = MlServer::start(&fixture_dir()).await;
    let records_dir = tempfile::tempdir().unwrap();
    let records_path = records_dir.path().join("records.jsonl");
    let proxy = Running::start(proxy_config(&mlserver, &fixture, &records_path)).await;
    let mut expected = Expected::default();
    let mut requests = 0;

    // Reference traffic: 60 iris rows in batches of 10, all answered with scikit-learn's classes.
    for (batch, (rows, classes)) in fixture
        .reference_rows
        .chunks(BATCH)
        .zip(fixture.predictions.reference_rows.chunks(BATCH))
        .enumerate()
    {
        let id = format!("reference-{batch}");
        let (seen, _) = exchange(&mlserver, &proxy, &infer_body(&id, rows), &[]).await;
        assert_predictions(&seen, &id, classes);
        expected.count(&fixture, &known(rows), false);
        expected.answered_rows += rows.len() as u64;
        requests += 1;
    }

    let model = model_when(&proxy, |m| m["reference"]["state"] == "ready").await;
    assert_eq!(model["protocol"], "open-inference");
    assert_eq!(
        model["reference"],
        json!({"state": "ready", "source": "learned", "rows": REFERENCE_SAMPLES})
    );
    let mut columns: Vec<Value> = fixture
        .columns
        .iter()
        .map(|name| json!({"name": name, "role": "input", "kind": "numeric"}))
        .collect();
    // Class ids (an INT64 tensor of width 1) are categorical.
    columns.push(json!({"name": "class", "role": "output", "kind": "categorical"}));
    assert_eq!(model["columns"], Value::Array(columns));
    // The reference is exactly the rows sent: its ranges are the fixture's.
    let reference = admin_json(&proxy, "/api/v1/reference/iris").await;
    for column in &fixture.columns {
        let profile = reference["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == column.as_str() && c["role"] == "input")
            .unwrap_or_else(|| panic!("{column} in the reference"));
        let [min, max] = fixture.reference_bounds[column];
        assert_eq!(
            (
                profile["numeric"]["min"].as_f64(),
                profile["numeric"]["max"].as_f64()
            ),
            (Some(min), Some(max)),
            "{column}"
        );
        assert_eq!(profile["count"], REFERENCE_SAMPLES);
    }

    // Rows like the reference: answered, nothing to report.
    for (batch, (rows, classes)) in fixture
        .normal_rows
        .chunks(5)
        .zip(fixture.predictions.normal_rows.chunks(5))
        .enumerate()
    {
        let id = format!("normal-{batch}");
        let (seen, _) = exchange(&mlserver, &proxy, &infer_body(&id, rows), &[]).await;
        assert_predictions(&seen, &id, classes);
        expected.count(&fixture, &known(rows), true);
        expected.answered_rows += rows.len() as u64;
        requests += 1;
    }

    // An outlier in the second row: petal_length 40 (reference at most 6.7).
    let outlier_rows = [fixture.normal_rows[0], fixture.outlier_row];
    let (seen, outlier_id) = exchange(
        &mlserver,
        &proxy,
        &infer_body("outlier", &outlier_rows),
        &[],
    )
    .await;
    assert_predictions(
        &seen,
        "outlier",
        &[
            fixture.predictions.normal_rows[0],
            fixture.predictions.outlier_row,
        ],
    );
    expected.count(&fixture, &known(&outlier_rows), true);
    expected.answered_rows += 2;
    requests += 1;

    // A NaN: MLServer's JSON parser refuses the token (422), driftwatch's reads it. Forced into
    // the records to see what monitoring said about it.
    let (seen, nan_id) = exchange(
        &mlserver,
        &proxy,
        &nan_body("nan", &fixture.nan_row),
        &[("x-driftwatch-record", "1")],
    )
    .await;
    assert_eq!(seen.status, 422, "MLServer rejects NaN: {:?}", seen.body);
    expected.count(&fixture, &[fixture.nan_row], true);
    requests += 1;

    // A tensor shorter than its shape: MLServer fails to reshape it (500); driftwatch reads the
    // one complete row and flags the request.
    let (seen, short_id) = exchange(
        &mlserver,
        &proxy,
        &short_tensor_body("short", &fixture.normal_rows[1], &fixture.normal_rows[2]),
        &[],
    )
    .await;
    assert_eq!(seen.status, 500, "{:?}", seen.body);
    assert!(
        String::from_utf8_lossy(&seen.body).contains("cannot reshape array of size 7"),
        "{:?}",
        seen.body
    );
    expected.count(&fixture, &known(&fixture.normal_rows[1..2]), true);
    requests += 1;

    let rows_sent = expected.values.values().sum::<u64>() / fixture.columns.len() as u64;
    let model = model_when(&proxy, |m| m["requests"] == requests).await;
    assert_eq!(model["rows"], rows_sent);

    // Validation counts: every input value, by status, exactly as sent.
    let metrics = proxy.metrics().await;
    for column in &fixture.columns {
        for status in [
            "ok",
            "missing",
            "null",
            "nan",
            "wrong_type",
            "out_of_range",
            "unseen_category",
        ] {
            let series = format!(
                r#"driftwatch_column_values_total{{model="iris",column="{column}",role="input",status="{status}"}}"#
            );
            assert_eq!(
                metric_value(&metrics, &series),
                expected.value(column, status) as f64,
                "{series}"
            );
        }
    }
    assert_eq!(expected.value("petal_length", "out_of_range"), 1);
    assert_eq!(expected.value("sepal_width", "nan"), 1);
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_column_values_total{model="iris",column="class",role="output",status="ok"}"#
        ),
        expected.answered_rows as f64,
        "one class per answered row"
    );
    assert_eq!(
        metric_value(&metrics, r#"driftwatch_outlier_rows_total{model="iris"}"#),
        1.0
    );
    for reason in driftwatch::extract::ExtractError::REASONS {
        let series =
            format!(r#"driftwatch_extract_errors_total{{model="iris",reason="{reason}"}}"#);
        assert_eq!(metric_value(&metrics, &series), 0.0, "{series}");
    }

    // Records: only the outlier, the forced NaN request and the 500.
    let records = wait_for_records(&records_path, 3).await;
    let outlier = record_for(&records, &outlier_id);
    assert_eq!(outlier["sampled"], "outlier");
    assert_eq!(outlier["model"], MODEL);
    assert_eq!(outlier["response"]["status"], 200);
    assert_eq!(outlier["monitor"]["rows"], 2);
    assert_eq!(outlier["monitor"]["outlier_rows"], json!([1]));
    assert!(outlier["monitor"]["outlier_score_max"].as_f64().unwrap() > 3.5);
    assert_eq!(
        outlier["monitor"]["issues"],
        json!([{"row": 1, "column": "petal_length", "issue": "out_of_range"}])
    );

    let nan = record_for(&records, &nan_id);
    assert_eq!(nan["sampled"], "forced");
    assert_eq!(nan["response"]["status"], 422);
    assert_eq!(nan["monitor"]["rows"], 1);
    assert_eq!(
        input_issues(nan, &fixture),
        json!([{"row": 0, "column": "sepal_width", "issue": "nan"}])
    );
    assert_eq!(nan["monitor"]["outlier_rows"], json!([]));

    let short = record_for(&records, &short_id);
    assert_eq!(short["sampled"], "error");
    assert_eq!(short["response"]["status"], 500);
    assert_eq!(short["monitor"]["rows"], 1);
    assert_eq!(short["monitor"]["shape_mismatch"], true);
    assert_eq!(input_issues(short, &fixture), json!([]));

    // Nothing else was recorded (sample rate 0): give the sink a moment to show a stray record.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read_records(&records_path).len(), 3);

    proxy.stop().await;
}
