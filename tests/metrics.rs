//! `/metrics` against the traffic that produced it: valid exposition (`promtool check metrics`),
//! every operational metric of SPEC §11 present, counters and histograms equal to what was sent.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::{MockUpstream, Running, http1_client, metric_value, test_config};

/// Runs `promtool check metrics` on an exposition; panics with its output when it objects.
fn promtool_check(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn metrics_are_valid_and_count_the_traffic_sent() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let client = http1_client();
    let body = Bytes::from_static(
        br#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]}"#,
    );
    for _ in 0..5 {
        let request = Request::post(proxy.url("/v2/models/iris/infer"))
            .body(Full::new(body.clone()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        support::body_bytes(response).await;
    }
    for (code, times) in [(404, 3), (500, 2)] {
        for _ in 0..times {
            let response = client
                .request(support::get(&proxy.url(&format!("/status/{code}"))))
                .await
                .unwrap();
            support::body_bytes(response).await;
        }
    }

    let exposition = proxy.metrics().await;
    promtool_check(&exposition);

    let value = |series: &str| metric_value(&exposition, series);
    assert_eq!(
        value(r#"driftwatch_http_requests_total{model="iris",method="POST",code="200"}"#),
        5.0
    );
    assert_eq!(
        value(r#"driftwatch_http_requests_total{model="unknown",method="GET",code="404"}"#),
        3.0
    );
    assert_eq!(
        value(r#"driftwatch_http_requests_total{model="unknown",method="GET",code="500"}"#),
        2.0
    );
    assert_eq!(
        value(r#"driftwatch_http_request_duration_seconds_count{model="iris"}"#),
        5.0
    );
    assert_eq!(
        value(r#"driftwatch_http_request_duration_seconds_bucket{model="iris",le="+Inf"}"#),
        5.0
    );
    assert_eq!(
        value(r#"driftwatch_upstream_headers_seconds_count{model="unknown"}"#),
        5.0
    );
    assert_eq!(
        value(r#"driftwatch_http_request_size_bytes_sum{model="iris"}"#),
        5.0 * body.len() as f64
    );
    assert_eq!(
        value(r#"driftwatch_http_response_size_bytes_sum{model="iris"}"#),
        5.0 * body.len() as f64
    );
    assert_eq!(value("driftwatch_http_requests_in_flight"), 0.0);
    assert_eq!(
        value(&format!(
            "driftwatch_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert_eq!(
        value(r#"driftwatch_analysis_observations_total{result="dropped_queue_full"}"#),
        0.0
    );

    // Every operational metric of SPEC §11 is present by name (with a TYPE line).
    for name in [
        "driftwatch_http_requests_total",
        "driftwatch_http_request_duration_seconds",
        "driftwatch_upstream_headers_seconds",
        "driftwatch_stream_first_chunk_seconds",
        "driftwatch_http_requests_in_flight",
        "driftwatch_http_request_size_bytes",
        "driftwatch_http_response_size_bytes",
        "driftwatch_upstream_errors_total",
        "driftwatch_proxy_responses_total",
        "driftwatch_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            exposition.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{exposition}"
        );
    }
    // Latency is a histogram with buckets, so it aggregates across pods.
    assert!(exposition.contains("# TYPE driftwatch_http_request_duration_seconds histogram"));
    proxy.stop().await;
}

#[tokio::test]
async fn streamed_responses_record_time_to_first_chunk() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/chunked?chunks=3&size=10")))
        .await
        .unwrap();
    support::body_bytes(response).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/echo")))
        .await
        .unwrap();
    support::body_bytes(response).await;
    let exposition = proxy.metrics().await;
    // Only the chunked response counts; the one with Content-Length is not a stream.
    assert_eq!(
        metric_value(
            &exposition,
            r#"driftwatch_stream_first_chunk_seconds_count{model="unknown"}"#
        ),
        1.0
    );
    proxy.stop().await;
}
