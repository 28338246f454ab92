//! Recording end to end: what a record holds (SPEC §5), sampling, redaction, credential headers,
//! truncation — through real sockets into a real file sink.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use driftwatch::config::recording::RedactMode;
use driftwatch::config::units::{ByteSize, HumanDuration};
use driftwatch::record::redact::hmac_hex;
use driftwatch::record::sampling::head_sampled;
use http::Request;
use http_body_util::Full;
use support::{
    MockUpstream, Running, http1_client, metric_value, read_records, test_config, wait_for_records,
    with_file_sink,
};

const SECRETS: [&str; 4] = ["Bearer top-secret", "session=abc123", "key-987", "hunter2"];

#[tokio::test]
async fn records_hold_what_spec_5_promises_and_never_credentials() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let mut file = with_file_sink(test_config(mock.addr), &path);
    file.recording.headers = [
        "content-type",
        "traceparent",
        "authorization",
        "cookie",
        "x-api-key",
        "x-tenant",
        "set-cookie",
    ]
    .map(String::from)
    .to_vec();
    file.recording.redact.keys = vec!["email".into(), "password".into()];
    file.recording.redact.pointers = vec!["/inputs/0/data".into()];
    let proxy = Running::start(file).await;

    let body = r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[5.1,3.5]}],"user":{"Email":"kim@example.com","prefs":[{"password":"hunter2"}]}}"#;
    let request = Request::post(proxy.url("/v2/models/iris/versions/2/infer"))
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("authorization", SECRETS[0])
        .header("cookie", SECRETS[1])
        .header("x-api-key", SECRETS[2])
        .header("x-tenant", "acme")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    support::body_bytes(response).await;

    let records = wait_for_records(&path, 1).await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["schema"], "driftwatch.record/v1");
    assert_eq!(record["id"], request_id.as_str());
    let time = record["time"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(time).is_ok() && time.ends_with('Z') && time.len() == 27,
        "{time}"
    );
    assert_eq!(record["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(record["model"], "iris");
    assert_eq!(record["model_version"], "2");
    let request = &record["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/v2/models/iris/versions/2/infer");
    assert_eq!(request["bytes"], body.len());
    assert_eq!(request["encoding"], "json");
    assert_eq!(request["truncated"], false);
    assert_eq!(request["headers"]["content-type"], "application/json");
    assert_eq!(request["headers"]["x-tenant"], "acme");
    assert_eq!(
        request["headers"].as_object().unwrap().len(),
        3,
        "{}",
        request["headers"]
    );
    assert_eq!(
        request["body"]["inputs"][0]["data"], "[REDACTED]",
        "pointer"
    );
    assert_eq!(request["body"]["inputs"][0]["name"], "x");
    assert_eq!(
        request["body"]["user"]["Email"], "[REDACTED]",
        "key, any case"
    );
    assert_eq!(
        request["body"]["user"]["prefs"][0]["password"], "[REDACTED]",
        "key inside an array"
    );
    let response = &record["response"];
    assert_eq!(response["status"], 200);
    assert_eq!(response["encoding"], "json");
    assert_eq!(
        response["body"]["user"]["Email"], "[REDACTED]",
        "the echoed response is redacted too"
    );
    assert!(
        record["timing"]["total_ms"].as_f64().unwrap()
            >= record["timing"]["upstream_headers_ms"].as_f64().unwrap()
    );
    assert_eq!(record["outcome"], "ok");
    assert_eq!(record["sampled"], "rate");
    // Monitoring read the Open Inference request: one row, four columns.
    assert_eq!(record["monitor"]["rows"], 1, "{}", record["monitor"]);
    assert!(record["exploration"].is_null());

    // A response that sets cookies, recorded with `set-cookie` on the allow-list: still never.
    let request = Request::get(proxy.url("/cookies"))
        .header("x-driftwatch-record", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
    support::body_bytes(response).await;
    let records = wait_for_records(&path, 2).await;
    let cookies = records
        .iter()
        .find(|r| r["request"]["path"] == "/cookies")
        .expect("the forced exchange is recorded");
    assert_eq!(cookies["sampled"], "forced", "{cookies}");
    assert!(
        cookies["response"]["headers"].get("set-cookie").is_none(),
        "{}",
        cookies["response"]["headers"]
    );

    let raw = std::fs::read_to_string(&path).unwrap();
    for secret in SECRETS
        .iter()
        .chain(["kim@example.com", "a=1; Path=/", "b=2; Path=/"].iter())
    {
        assert!(!raw.contains(secret), "{secret} leaked into a record");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn hash_redaction_keeps_values_joinable() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let key_file = dir.path().join("hash.key");
    std::fs::write(&key_file, "k3y\n").unwrap();
    let mut file = with_file_sink(test_config(mock.addr), &path);
    file.recording.redact.keys = vec!["email".into()];
    file.recording.redact.mode = RedactMode::Hash;
    file.recording.redact.hash_key_file = Some(key_file.to_string_lossy().into_owned());
    let proxy = Running::start(file).await;
    for body in [
        r#"{"email":"kim@example.com"}"#,
        r#"{"rows":[{"email":"kim@example.com"}]}"#,
    ] {
        let request = Request::post(proxy.url("/echo"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        support::body_bytes(http1_client().request(request).await.unwrap()).await;
    }
    let records = wait_for_records(&path, 2).await;
    let expected = format!("hmac-sha256:{}", hmac_hex(b"k3y", b"kim@example.com"));
    let first = records
        .iter()
        .find(|r| r["request"]["body"]["email"].is_string())
        .unwrap();
    let second = records
        .iter()
        .find(|r| r["request"]["body"]["rows"].is_array())
        .unwrap();
    assert_eq!(first["request"]["body"]["email"], expected.as_str());
    assert_eq!(
        second["request"]["body"]["rows"][0]["email"],
        expected.as_str()
    );
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("kim@example.com")
    );
    proxy.stop().await;
}

#[tokio::test]
async fn errors_slow_and_forced_exchanges_are_recorded_whatever_the_rate() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let mut file = with_file_sink(test_config(mock.addr), &path);
    file.recording.sample_rate = 0.0;
    file.recording.slow_threshold = HumanDuration::from_millis(200);
    let proxy = Running::start(file).await;
    let client = http1_client();
    for path in [
        "/status/200",
        "/status/404",
        "/status/503",
        "/slow?ms=300",
        "/echo",
    ] {
        support::body_bytes(
            client
                .request(support::get(&proxy.url(path)))
                .await
                .unwrap(),
        )
        .await;
    }
    let forced = Request::get(proxy.url("/status/201"))
        .header("x-driftwatch-record", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    support::body_bytes(client.request(forced).await.unwrap()).await;

    let records = wait_for_records(&path, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records_after = read_records(&path);
    assert_eq!(
        records.len(),
        records_after.len(),
        "nothing else is recorded"
    );
    let reasons: Vec<(String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["sampled"].as_str().unwrap().to_owned(),
                r["response"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("error".to_owned(), 503),
            ("slow".to_owned(), 200),
            ("forced".to_owned(), 201)
        ]
    );
    let metrics = proxy.metrics().await;
    for (reason, count) in [
        ("error", 1.0),
        ("slow", 1.0),
        ("forced", 1.0),
        ("rate", 0.0),
    ] {
        let series = format!("driftwatch_records_sampled_total{{reason=\"{reason}\"}}");
        assert_eq!(metric_value(&metrics, &series), count, "{reason}");
    }
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_records_total{sink="file",outcome="delivered"}"#
        ),
        3.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn proxy_errors_are_recorded_with_their_reason() {
    let upstream = support::closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let mut file = with_file_sink(test_config(upstream), &path);
    file.recording.sample_rate = 0.0;
    let proxy = Running::start(file).await;
    support::body_bytes(
        http1_client()
            .request(support::get(&proxy.url("/v2/models/m/infer")))
            .await
            .unwrap(),
    )
    .await;
    let records = wait_for_records(&path, 1).await;
    assert_eq!(records[0]["sampled"], "error");
    assert_eq!(records[0]["outcome"], "upstream_error");
    assert_eq!(records[0]["response"]["status"], 502);
    assert_eq!(records[0]["response"]["error"], "upstream_connect");
    proxy.stop().await;
}

/// Head sampling over 10,000 requests: the realised rate is within 4σ of the configured rate,
/// and the recorded set is exactly the ids the documented hash selects.
#[tokio::test]
async fn sampling_rate_is_realised_and_deterministic_on_the_request_id() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let rate = 0.2;
    let mut file = with_file_sink(test_config(mock.addr), &path);
    file.recording.sample_rate = rate;
    file.recording.always.clear();
    let proxy = Running::start(file).await;
    let client = http1_client();
    let total = 10_000;
    let mut ids = Vec::with_capacity(total);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let client = client.clone();
        let url = proxy.url("/status/200");
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for _ in (worker..total).step_by(32) {
                let response = client.request(support::get(&url)).await.unwrap();
                ids.push(
                    response.headers()["x-request-id"]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
                support::body_bytes(response).await;
            }
            ids
        });
    }
    while let Some(batch) = tasks.join_next().await {
        ids.extend(batch.unwrap());
    }
    let expected: HashSet<&String> = ids
        .iter()
        .filter(|id| head_sampled(id.as_bytes(), rate))
        .collect();
    let records = wait_for_records(&path, expected.len()).await;
    let recorded: HashSet<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let recorded: HashSet<&String> = recorded.iter().collect();
    assert_eq!(recorded, expected, "exactly the ids the hash selects");
    let realised = recorded.len() as f64 / total as f64;
    let sigma = (rate * (1.0 - rate) / total as f64).sqrt();
    assert!(
        (realised - rate).abs() < 4.0 * sigma,
        "realised {realised}, expected {rate} ± {}",
        4.0 * sigma
    );
    proxy.stop().await;
}

#[tokio::test]
async fn bodies_beyond_max_body_bytes_are_cut_and_flagged() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let mut file = with_file_sink(test_config(mock.addr), &path);
    file.recording.max_body_bytes = ByteSize(1024);
    let proxy = Running::start(file).await;
    let body = format!("{{\"data\":\"{}\"}}", "é".repeat(3000));
    let request = Request::post(proxy.url("/echo"))
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let echoed = support::body_bytes(http1_client().request(request).await.unwrap()).await;
    assert_eq!(echoed.len(), body.len(), "the traffic itself is untouched");
    let records = wait_for_records(&path, 1).await;
    for side in ["request", "response"] {
        let recorded = &records[0][side];
        assert_eq!(recorded["truncated"], true, "{side}");
        assert_eq!(recorded["encoding"], "text", "{side}");
        assert_eq!(recorded["bytes"], body.len(), "{side}");
        let text = recorded["body"].as_str().unwrap();
        assert!(
            text.len() <= 1024 && text.len() >= 1022,
            "{side}: cut at a character boundary"
        );
        assert!(body.starts_with(text));
    }
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_body_truncated_total{direction="request"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_body_truncated_total{direction="response"}"#
        ),
        1.0
    );
    proxy.stop().await;
}
