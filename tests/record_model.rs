//! The model name and version in records and in `GET /api/v1/models`, from the path or the body
//! (Open Inference `model_name`/`model_version`, KServe v1 versioned paths, OpenAI `model`), and
//! per-request validation issues counted in `driftwatch_request_issues_total` — through real
//! sockets into a real file sink.

mod support;

use std::net::SocketAddr;

use axum::http::{StatusCode, Uri};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use support::{
    Running, body_bytes, http1_client, metric_value, test_config, wait_for_metric,
    wait_for_records, with_file_sink,
};

/// A model server answering by path: Open Inference with `model_name`/`model_version` in the
/// response, KServe v1, OpenAI chat completions, and one Open Inference model (`shapes`) that
/// answers one row whatever the request holds.
async fn model_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    async fn answer(uri: Uri) -> (StatusCode, axum::Json<Value>) {
        let body = match uri.path() {
            "/v2/models/iris/infer" => json!({
                "model_name": "iris", "model_version": "7",
                "outputs": [{"name": "predict", "shape": [1, 1], "datatype": "FP32", "data": [0.5]}],
            }),
            "/score" => json!({
                "model_name": "ranker", "model_version": "v3",
                "outputs": [{"name": "predict", "shape": [1, 1], "datatype": "FP32", "data": [0.5]}],
            }),
            "/v2/models/shapes/infer" => json!({
                "model_name": "shapes",
                "outputs": [{"name": "predict", "shape": [1, 1], "datatype": "FP32", "data": [0.5]}],
            }),
            "/v1/models/flowers/versions/2:predict" | "/predict" => json!({"predictions": [0]}),
            "/v1/chat/completions" => json!({
                "id": "c-1", "object": "chat.completion", "model": "gpt-test",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "hello"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }),
            _ => json!({}),
        };
        (StatusCode::OK, axum::Json(body))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(answer);
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, task)
}

async fn post(proxy: &Running, path: &str, body: Value) {
    let request = Request::post(proxy.url(path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    body_bytes(response).await;
}

fn record_for<'a>(records: &'a [Value], path: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["request"]["path"] == path)
        .unwrap_or_else(|| panic!("no record of {path} in {records:?}"))
}

fn one_row_tensor() -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]})
}

#[tokio::test]
async fn records_carry_the_model_and_version_from_the_path_or_the_body() {
    let (upstream, _server) = model_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let proxy = Running::start(with_file_sink(test_config(upstream), &path)).await;

    // Open Inference: the name in the path, the version only in the response body.
    post(&proxy, "/v2/models/iris/infer", one_row_tensor()).await;
    // Open Inference on a path that names no model: both from the response body.
    post(&proxy, "/score", one_row_tensor()).await;
    // KServe v1: the version in the path.
    post(
        &proxy,
        "/v1/models/flowers/versions/2:predict",
        json!({"instances": [[1.0, 2.0]]}),
    )
    .await;
    // OpenAI: routed by the request's `model`.
    post(
        &proxy,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    // Nothing names the model: monitored as `default`, recorded without a name.
    post(&proxy, "/predict", json!({"instances": [[1.0, 2.0]]})).await;
    // Not an inference call (monitoring does not read it): the version still comes from the path.
    let response = http1_client()
        .request(support::get(&proxy.url("/v1/models/flowers/versions/2")))
        .await
        .unwrap();
    body_bytes(response).await;

    let records = wait_for_records(&path, 6).await;
    assert_eq!(records.len(), 6, "{records:?}");

    let iris = record_for(&records, "/v2/models/iris/infer");
    assert_eq!(iris["model"], "iris", "{iris}");
    assert_eq!(iris["model_version"], "7", "{iris}");
    assert_eq!(iris["monitor"]["rows"], 1, "{iris}");
    assert!(
        iris["monitor"].get("model").is_none() && iris["monitor"].get("model_version").is_none(),
        "the monitor field does not repeat the model: {}",
        iris["monitor"]
    );

    let ranker = record_for(&records, "/score");
    assert_eq!(ranker["model"], "ranker", "{ranker}");
    assert_eq!(ranker["model_version"], "v3", "{ranker}");

    let flowers = record_for(&records, "/v1/models/flowers/versions/2:predict");
    assert_eq!(flowers["model"], "flowers", "{flowers}");
    assert_eq!(flowers["model_version"], "2", "{flowers}");

    let chat = record_for(&records, "/v1/chat/completions");
    assert_eq!(chat["model"], "gpt-test", "{chat}");
    assert!(chat["model_version"].is_null(), "{chat}");
    assert_eq!(chat["monitor"]["rows"], 1, "{chat}");

    let unnamed = record_for(&records, "/predict");
    assert!(unnamed["model"].is_null(), "{unnamed}");
    assert!(unnamed["model_version"].is_null(), "{unnamed}");
    assert_eq!(
        unnamed["monitor"]["rows"], 1,
        "monitored all the same: {unnamed}"
    );

    let metadata = record_for(&records, "/v1/models/flowers/versions/2");
    assert_eq!(metadata["model"], "flowers", "{metadata}");
    assert_eq!(metadata["model_version"], "2", "{metadata}");
    assert!(metadata["monitor"].is_null(), "{metadata}");

    // The models API shows the last version each model gave.
    let response = http1_client()
        .request(support::get(&proxy.admin_url("/api/v1/models")))
        .await
        .unwrap();
    let models: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    let version = |name: &str| {
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no model {name} in {models}"))["version"]
            .clone()
    };
    assert_eq!(version("iris"), "7", "{models}");
    assert_eq!(version("ranker"), "v3", "{models}");
    assert_eq!(version("flowers"), "2", "{models}");
    assert!(version("gpt-test").is_null(), "{models}");
    assert!(version("default").is_null(), "{models}");
}

#[tokio::test]
async fn a_shape_mismatch_is_counted_and_listed_in_the_record() {
    let (upstream, _server) = model_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let proxy = Running::start(with_file_sink(test_config(upstream), &path)).await;
    let series = r#"driftwatch_request_issues_total{model="shapes",issue="shape_mismatch"}"#;

    // A consistent exchange first: the series exists at 0 once the model is monitored.
    post(&proxy, "/v2/models/shapes/infer", one_row_tensor()).await;
    wait_for_records(&path, 1).await;
    let exposition = proxy.metrics().await;
    assert!(
        exposition.contains(&format!("{series} 0")),
        "registered up front: {exposition}"
    );
    assert!(
        exposition.contains("# HELP driftwatch_request_issues_total "),
        "described"
    );

    // Two input rows, one output row: the response contradicts the request.
    post(
        &proxy,
        "/v2/models/shapes/infer",
        json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
                           "data": [1.0, 2.0, 3.0, 4.0]}]}),
    )
    .await;
    assert_eq!(wait_for_metric(&proxy, series, 1.0).await, 1.0);

    let records = wait_for_records(&path, 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let first = &records[0]["monitor"];
    assert!(first.get("shape_mismatch").is_none(), "{first}");
    let mismatched = &records[1];
    assert_eq!(mismatched["model"], "shapes", "{mismatched}");
    assert_eq!(
        mismatched["monitor"]["shape_mismatch"], true,
        "{mismatched}"
    );
    assert_eq!(mismatched["monitor"]["rows"], 2, "{mismatched}");

    // Still exactly one: a consistent exchange adds nothing.
    post(&proxy, "/v2/models/shapes/infer", one_row_tensor()).await;
    wait_for_records(&path, 3).await;
    assert_eq!(metric_value(&proxy.metrics().await, series), 1.0);
}
