//! The tap: one observation per exchange with what the analysis side needs, and a full queue
//! drops observations (counted) without slowing a single request.

mod support;

use std::time::Duration;

use bytes::Bytes;
use driftwatch::tap::{Analyzer, Findings, Observation, Outcome};
use http::Request;
use http_body_util::Full;
use support::{MockUpstream, Observations, Running, http1_client, metric_value, test_config};

#[tokio::test]
async fn each_exchange_yields_one_complete_observation() {
    let mock = MockUpstream::start().await;
    let observations = Observations::default();
    let proxy =
        Running::start_with(test_config(mock.addr), vec![Box::new(observations.clone())]).await;
    let body = Bytes::from_static(br#"{"inputs":[]}"#);
    let request = Request::post(proxy.url("/v2/models/iris/versions/2/infer?debug=1"))
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Full::new(body.clone()))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    let request_id = response.headers()["x-request-id"].clone();
    support::body_bytes(response).await;

    let seen = observations.wait_for(1).await;
    assert_eq!(seen.len(), 1);
    let observation = &seen[0];
    assert_eq!(observation.request_id, request_id);
    assert_eq!(&*observation.model, "iris");
    assert_eq!(observation.request.method, "POST");
    assert_eq!(
        observation.request.uri.path(),
        "/v2/models/iris/versions/2/infer"
    );
    assert_eq!(observation.request.uri.query(), Some("debug=1"));
    assert_eq!(
        observation.request.headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    let response = observation.response.as_ref().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(observation.request_bytes, body.len() as u64);
    assert_eq!(observation.response_bytes, body.len() as u64);
    assert_eq!(observation.outcome, Outcome::Ok);
    assert!(observation.proxy_error.is_none());
    let upstream = observation.timing.upstream_headers.unwrap();
    assert!(upstream <= observation.timing.total);
    assert!(observation.timing.total < Duration::from_secs(5));
    proxy.stop().await;
}

/// An analyzer stuck on its first observation until the test lets it go.
struct Stuck(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Analyzer for Stuck {
    fn observe(&mut self, _: &Observation, _: &mut Findings) {
        let (released, wake) = &*self.0;
        let mut released = released.lock().unwrap();
        while !*released {
            released = wake.wait(released).unwrap();
        }
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking_requests() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.analysis.queue = 2;
    let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let proxy = Running::start_with(file, vec![Box::new(Stuck(gate.clone()))]).await;
    let client = http1_client();
    let sent = 30;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sent {
        let client = client.clone();
        let url = proxy.url("/echo");
        tasks.spawn(async move { client.request(support::get(&url)).await.unwrap().status() });
    }
    // Every request completes while the analysis side is stuck: the hand-off never waits.
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let metrics = proxy.metrics().await;
    let dropped = metric_value(
        &metrics,
        r#"driftwatch_analysis_observations_total{result="dropped_queue_full"}"#,
    );
    // At most one observation is held by the stuck analyzer and two wait in the queue.
    assert!(dropped >= (sent - 3) as f64, "dropped {dropped}");

    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    // Nothing is lost silently: every exchange was either analysed or counted as dropped.
    let mut processed = 0.0;
    for _ in 0..200 {
        let metrics = proxy.metrics().await;
        processed = metric_value(
            &metrics,
            r#"driftwatch_analysis_observations_total{result="processed"}"#,
        );
        if processed + dropped >= sent as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(processed + dropped, sent as f64);
    proxy.stop().await;
}
