//! The admin listener: liveness, readiness against the upstream, the effective config.

mod support;

use support::{MockUpstream, Running, closed_port, http1_client, test_config};

async fn status_and_json(url: &str) -> (u16, serde_json::Value) {
    let response = http1_client().request(support::get(url)).await.unwrap();
    let status = response.status().as_u16();
    let body = support::body_bytes(response).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn readyz_follows_upstream_reachability() {
    let down = Running::start(test_config(closed_port().await)).await;
    assert_eq!(status_and_json(&down.admin_url("/healthz")).await.0, 200);
    let (status, body) = status_and_json(&down.admin_url("/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "upstream_unreachable");
    down.stop().await;

    let mock = MockUpstream::start().await;
    let up = Running::start(test_config(mock.addr)).await;
    assert_eq!(status_and_json(&up.admin_url("/readyz")).await.0, 200);
    up.stop().await;
}

#[tokio::test]
async fn readyz_uses_the_health_path_when_configured() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.upstream.health_path = Some("/status/503".into());
    let failing = Running::start(file.clone()).await;
    let (status, body) = status_and_json(&failing.admin_url("/readyz")).await;
    assert_eq!(status, 503);
    assert!(body["reason"].as_str().unwrap().contains("503"), "{body}");
    failing.stop().await;

    file.upstream.health_path = Some("/status/200".into());
    let healthy = Running::start(file).await;
    assert_eq!(status_and_json(&healthy.admin_url("/readyz")).await.0, 200);
    assert_eq!(
        mock.seen_headers().len(),
        2,
        "each probe reached the health path"
    );
    healthy.stop().await;
}

#[tokio::test]
async fn config_endpoint_shows_the_effective_config() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.limits.max_in_flight = 77;
    let proxy = Running::start(file).await;
    let (status, body) = status_and_json(&proxy.admin_url("/api/v1/config")).await;
    assert_eq!(status, 200);
    assert_eq!(body["limits"]["max_in_flight"], 77);
    assert_eq!(body["upstream"]["url"], format!("http://{}", mock.addr));
    assert_eq!(body["upstream"]["request_timeout"], "1m");
    proxy.stop().await;
}
