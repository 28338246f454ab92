//! Error mapping: every way the upstream or the client can fail, and what the client and the
//! metrics see. Proxy-made responses carry `x-driftwatch-error` and a JSON body with the request id.

mod support;

use std::time::Duration;

use bytes::Bytes;
use driftwatch::config::units::{ByteSize, HumanDuration};
use driftwatch::tap::Outcome;
use http::Request;
use http_body_util::{BodyExt, Full};
use support::mock::raw_upstream;
use support::{
    MockUpstream, Observations, Running, closed_port, http1_client, metric_value, test_config,
};

/// Checks a proxy-made response and returns its JSON body.
async fn assert_proxy_error(
    response: http::Response<hyper::body::Incoming>,
    status: u16,
    reason: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["x-driftwatch-error"], reason);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = support::body_bytes(response).await;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["request_id"], request_id.as_str());
    assert!(!json["error"].as_str().unwrap().is_empty());
    json
}

#[tokio::test]
async fn refused_upstream_is_502_upstream_connect() {
    let upstream = closed_port().await;
    let observations = Observations::default();
    let proxy =
        Running::start_with(test_config(upstream), vec![Box::new(observations.clone())]).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/v2/models/m/infer")))
        .await
        .unwrap();
    let json = assert_proxy_error(response, 502, "upstream_connect").await;
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains(&upstream.to_string())
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "driftwatch_upstream_errors_total{kind=\"connect\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "driftwatch_proxy_responses_total{code=\"502\",reason=\"upstream_connect\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "driftwatch_http_requests_total{model=\"m\",method=\"GET\",code=\"502\"}"
        ),
        1.0
    );
    let seen = observations.wait_for(1).await;
    assert_eq!(seen[0].outcome, Outcome::UpstreamError);
    assert_eq!(seen[0].proxy_error, Some("upstream_connect"));
    proxy.stop().await;
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_request_timeout() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.upstream.request_timeout = HumanDuration::from_millis(300);
    let observations = Observations::default();
    let proxy = Running::start_with(file, vec![Box::new(observations.clone())]).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/slow?ms=5000")))
        .await
        .unwrap();
    assert_proxy_error(response, 504, "upstream_timeout").await;
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "driftwatch_upstream_errors_total{kind=\"timeout\"}"
        ),
        1.0
    );
    assert_eq!(observations.wait_for(1).await[0].outcome, Outcome::Timeout);
    proxy.stop().await;
}

#[tokio::test]
async fn a_body_that_outlives_the_request_timeout_is_cut() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.upstream.request_timeout = HumanDuration::from_millis(300);
    let observations = Observations::default();
    let proxy = Running::start_with(file, vec![Box::new(observations.clone())]).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/slow-body?ms=5000")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the head was already on its way");
    assert!(
        response.into_body().collect().await.is_err(),
        "the client sees a broken body"
    );
    let seen = observations.wait_for(1).await;
    assert_eq!(seen[0].outcome, Outcome::Timeout);
    assert_eq!(seen[0].response_bytes, 6);
    proxy.stop().await;
}

#[tokio::test]
async fn beyond_max_in_flight_is_503_overloaded() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.limits.max_in_flight = 1;
    let proxy = Running::start(file).await;
    let client = http1_client();
    let slow = tokio::spawn(client.request(support::get(&proxy.url("/slow?ms=1500"))));
    // Wait until the slow request holds the only slot.
    for _ in 0..100 {
        if mock.requests() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let response = client
        .request(support::get(&proxy.url("/echo")))
        .await
        .unwrap();
    assert_proxy_error(response, 503, "overloaded").await;
    assert_eq!(
        mock.requests(),
        1,
        "the shed request never reached the upstream"
    );
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    // The slot is free again.
    let response = client
        .request(support::get(&proxy.url("/echo")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "driftwatch_proxy_responses_total{code=\"503\",reason=\"overloaded\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(&metrics, "driftwatch_http_requests_in_flight"),
        0.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn oversized_header_is_431() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.limits.max_header_bytes = ByteSize(2048);
    let proxy = Running::start(file).await;
    let client = http1_client();
    let big = "x".repeat(3000);
    let request = Request::get(proxy.url("/echo"))
        .header("x-big", big.as_str())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_proxy_error(response, 431, "header_too_large").await;
    assert_eq!(mock.requests(), 0);
    let fits = Request::get(proxy.url("/echo"))
        .header("x-big", "x".repeat(1000))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.request(fits).await.unwrap().status(), 200);
    proxy.stop().await;
}

#[tokio::test]
async fn garbage_from_the_upstream_is_502_upstream_protocol() {
    let (upstream, _server) = raw_upstream(b"this is not HTTP at all\r\n\r\n").await;
    let proxy = Running::start(test_config(upstream)).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/x")))
        .await
        .unwrap();
    assert_proxy_error(response, 502, "upstream_protocol").await;
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "driftwatch_upstream_errors_total{kind=\"protocol\"}"
        ),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_reset_before_the_head_is_502_upstream_reset() {
    let (upstream, _server) = raw_upstream(b"").await;
    let proxy = Running::start(test_config(upstream)).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/x")))
        .await
        .unwrap();
    assert_proxy_error(response, 502, "upstream_reset").await;
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(&metrics, "driftwatch_upstream_errors_total{kind=\"reset\"}"),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_reset_mid_body_breaks_the_client_body_and_is_counted() {
    let (upstream, _server) =
        raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part of it").await;
    let observations = Observations::default();
    let proxy =
        Running::start_with(test_config(upstream), vec![Box::new(observations.clone())]).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/x")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.into_body().collect().await.is_err(),
        "a short body is an error, not silence"
    );
    let seen = observations.wait_for(1).await;
    assert_eq!(seen[0].outcome, Outcome::UpstreamError);
    assert_eq!(seen[0].response_bytes, 15);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(&metrics, "driftwatch_upstream_errors_total{kind=\"reset\"}"),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_is_recorded_as_client_abort() {
    let mock = MockUpstream::start().await;
    let observations = Observations::default();
    let proxy =
        Running::start_with(test_config(mock.addr), vec![Box::new(observations.clone())]).await;
    let client = http1_client();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        client.request(support::get(&proxy.url("/slow?ms=3000"))),
    )
    .await;
    assert!(abandoned.is_err(), "the client gave up");
    let seen = observations.wait_for(1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].outcome, Outcome::ClientAbort);
    assert!(seen[0].response.is_none());
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "driftwatch_http_requests_total{model=\"unknown\",method=\"GET\",code=\"499\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(&metrics, "driftwatch_http_requests_in_flight"),
        0.0
    );
    proxy.stop().await;
}
