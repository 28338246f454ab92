//! The HTTP sink against a real collector that accepts, rejects, stalls and flaps: formats,
//! retry, spool, replay in order, restart with a non-empty spool, and what is counted.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use driftwatch::config::recording::HttpFormat;
use support::collector::{Collector, Mode};
use support::{
    MockUpstream, Running, metric_value, send_requests, test_config, wait_for_metric,
    with_http_sink,
};

const DELIVERED: &str = r#"driftwatch_records_total{sink="http",outcome="delivered"}"#;
const SPOOLED: &str = r#"driftwatch_records_total{sink="http",outcome="spooled"}"#;
const SPOOL_FULL: &str = r#"driftwatch_records_total{sink="http",outcome="dropped_spool_full"}"#;
const QUEUE_FULL: &str = r#"driftwatch_records_total{sink="http",outcome="dropped_queue_full"}"#;
const FAILED: &str = r#"driftwatch_records_total{sink="http",outcome="failed"}"#;

#[tokio::test]
async fn cloudevents_batch_posts_arrays_of_structured_events() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Accept).await;
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::CloudeventsBatch,
        None,
    );
    let proxy = Running::start(file).await;
    let ids = send_requests(&proxy, "/v2/models/iris/infer", 5).await;
    assert_eq!(
        collector.wait_for_ids(5, Duration::from_secs(10)).await,
        ids,
        "in order"
    );
    for received in collector.received() {
        assert_eq!(
            received.headers["content-type"],
            "application/cloudevents-batch+json"
        );
        let events: Vec<serde_json::Value> = serde_json::from_slice(&received.body).unwrap();
        for event in events {
            assert_eq!(event["specversion"], "1.0");
            assert_eq!(event["type"], "io.driftwatch.record.v1");
            assert_eq!(event["datacontenttype"], "application/json");
            assert_eq!(event["id"], event["data"]["id"]);
            assert_eq!(event["time"], event["data"]["time"]);
            assert!(
                event["source"]
                    .as_str()
                    .unwrap()
                    .starts_with("/driftwatch/")
            );
            assert_eq!(event["data"]["schema"], "driftwatch.record/v1");
            assert_eq!(event["data"]["model"], "iris");
        }
    }
    proxy.stop().await;
}

#[tokio::test]
async fn cloudevents_posts_one_structured_event_per_record() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Accept).await;
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::Cloudevents,
        None,
    );
    let proxy = Running::start(file).await;
    let ids = send_requests(&proxy, "/echo", 3).await;
    assert_eq!(
        collector.wait_for_ids(3, Duration::from_secs(10)).await,
        ids
    );
    let received = collector.received();
    assert_eq!(received.len(), 3);
    for request in received {
        assert_eq!(
            request.headers["content-type"],
            "application/cloudevents+json"
        );
        let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(event["specversion"], "1.0");
    }
    proxy.stop().await;
}

/// KServe's logger sends each exchange as two binary-mode CloudEvents; consumers of it (for
/// example KServe's message-dumper or Seldon's detectors) read the `ce-` headers and the raw
/// payload.
#[tokio::test]
async fn kserve_format_is_a_drop_in_for_kserves_logger() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Accept).await;
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::Kserve,
        None,
    );
    let proxy = Running::start(file).await;
    let client = support::http1_client();
    let payload = r#"{"inputs":[{"name":"predict","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
    let request = http::Request::post(proxy.url("/v2/models/iris/infer"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(payload)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    support::body_bytes(response).await;

    for _ in 0..500 {
        if collector.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = collector.received();
    assert_eq!(received.len(), 2);
    let types: Vec<&str> = received
        .iter()
        .map(|r| r.headers["ce-type"].to_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "org.kubeflow.serving.inference.request",
            "org.kubeflow.serving.inference.response"
        ]
    );
    for event in &received {
        assert_eq!(event.headers["ce-specversion"], "1.0");
        assert_eq!(event.headers["ce-id"], id.as_str());
        assert_eq!(event.headers["ce-inferenceservicename"], "iris");
        assert_eq!(event.headers["ce-statuscode"], "200");
        assert!(
            event.headers["ce-latencyms"]
                .to_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
                > 0.0
        );
        assert!(event.headers.contains_key("ce-source"));
        assert!(event.headers.contains_key("ce-time"));
        assert_eq!(event.headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
        let sent: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(body, sent, "the raw payload (the mock echoes the request)");
    }
    proxy.stop().await;
}

/// The collector is down for a while, then back: every record id arrives, in order.
#[tokio::test]
async fn destination_down_then_back_delivers_every_record_in_order() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Reject(503)).await;
    let spool = tempfile::tempdir().unwrap();
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::CloudeventsBatch,
        Some((spool.path(), 16 << 20)),
    );
    let proxy = Running::start(file).await;
    let mut ids = send_requests(&proxy, "/echo", 40).await;
    assert!(
        wait_for_metric(&proxy, SPOOLED, 40.0).await >= 40.0,
        "records go to the spool while the collector is down"
    );
    assert!(collector.record_ids().is_empty());
    let spool_bytes = metric_value(
        &proxy.metrics().await,
        r#"driftwatch_sink_spool_bytes{sink="http"}"#,
    );
    assert!(spool_bytes > 0.0);

    collector.set_mode(Mode::Accept);
    ids.extend(send_requests(&proxy, "/echo", 10).await);
    let received = collector.wait_for_ids(50, Duration::from_secs(10)).await;
    assert_eq!(received, ids, "every record, once, in arrival order");
    let metrics = proxy.metrics().await;
    assert_eq!(metric_value(&metrics, DELIVERED), 50.0);
    for outcome in [SPOOL_FULL, QUEUE_FULL, FAILED] {
        assert_eq!(metric_value(&metrics, outcome), 0.0, "{outcome}");
    }
    proxy.stop().await;
}

/// Queue and spool both full: the overflow is counted as `dropped_spool_full`, and everything
/// else arrives.
#[tokio::test]
async fn spool_overflow_is_counted_and_nothing_else_is_lost() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Reject(503)).await;
    let spool = tempfile::tempdir().unwrap();
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::CloudeventsBatch,
        Some((spool.path(), 64 * 1024)),
    );
    let proxy = Running::start(file).await;
    let sent = 300;
    send_requests(&proxy, "/echo", sent).await;
    let accounted =
        |metrics: &str| metric_value(metrics, SPOOLED) + metric_value(metrics, SPOOL_FULL);
    for _ in 0..500 {
        if accounted(&proxy.metrics().await) >= sent as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = proxy.metrics().await;
    let spooled = metric_value(&metrics, SPOOLED);
    let dropped = metric_value(&metrics, SPOOL_FULL);
    assert!(dropped > 0.0, "a 64KiB spool cannot hold {sent} records");
    assert_eq!(spooled + dropped, sent as f64);

    collector.set_mode(Mode::Accept);
    let received = collector
        .wait_for_ids(spooled as usize, Duration::from_secs(10))
        .await;
    assert_eq!(
        received.len(),
        spooled as usize,
        "every spooled record arrives"
    );
    assert_eq!(
        received.iter().collect::<HashSet<_>>().len(),
        received.len(),
        "no duplicates"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(&metrics, DELIVERED) + metric_value(&metrics, SPOOL_FULL),
        sent as f64
    );
    proxy.stop().await;
}

/// A collector that takes requests and never answers: records wait behind the delivery timeout,
/// go to the spool, and the proxied traffic carries on.
#[tokio::test]
async fn a_stalled_collector_spools_and_never_holds_up_traffic() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Stall).await;
    let spool = tempfile::tempdir().unwrap();
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::CloudeventsBatch,
        Some((spool.path(), 16 << 20)),
    );
    let proxy = Running::start(file).await;
    let ids = send_requests(&proxy, "/echo", 30).await;
    assert_eq!(
        ids.len(),
        30,
        "all requests answered while the collector stalls"
    );
    assert!(wait_for_metric(&proxy, SPOOLED, 30.0).await >= 30.0);
    assert!(collector.attempts() >= 1);
    collector.set_mode(Mode::Accept);
    let received: HashSet<String> = collector
        .wait_for_ids(30, Duration::from_secs(10))
        .await
        .into_iter()
        .collect();
    assert_eq!(received, ids.into_iter().collect());
    proxy.stop().await;
}

/// A flapping collector: at-least-once delivery of every record.
#[tokio::test]
async fn a_flapping_collector_still_gets_every_record() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Accept).await;
    let spool = tempfile::tempdir().unwrap();
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::CloudeventsBatch,
        Some((spool.path(), 16 << 20)),
    );
    let proxy = Running::start(file).await;
    let mut ids = Vec::new();
    for round in 0..6 {
        collector.set_mode(if round % 2 == 0 {
            Mode::Reject(502)
        } else {
            Mode::Accept
        });
        ids.extend(send_requests(&proxy, "/echo", 15).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    collector.set_mode(Mode::Accept);
    let expected: HashSet<String> = ids.into_iter().collect();
    let mut received = HashSet::new();
    for _ in 0..500 {
        received = collector.record_ids().into_iter().collect();
        if received.is_superset(&expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(received, expected);
    proxy.stop().await;
}

/// A collector that rejects the payload (4xx) will never accept it: counted as failed, not
/// retried forever.
#[tokio::test]
async fn permanent_rejections_are_counted_as_failed() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Reject(400)).await;
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::CloudeventsBatch,
        None,
    );
    let proxy = Running::start(file).await;
    send_requests(&proxy, "/echo", 5).await;
    assert_eq!(wait_for_metric(&proxy, FAILED, 5.0).await, 5.0);
    proxy.stop().await;
}

/// Shutdown with the collector down keeps the records in the spool; the next start delivers them.
#[tokio::test]
async fn records_spooled_at_shutdown_arrive_after_a_restart() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Reject(503)).await;
    let spool = tempfile::tempdir().unwrap();
    let file = with_http_sink(
        test_config(mock.addr),
        &collector.url(),
        HttpFormat::CloudeventsBatch,
        Some((spool.path(), 16 << 20)),
    );
    let first = Running::start(file.clone()).await;
    let ids = send_requests(&first, "/echo", 25).await;
    wait_for_metric(&first, SPOOLED, 25.0).await;
    first.stop().await;

    collector.set_mode(Mode::Accept);
    let second = Running::start(file).await;
    let received = collector.wait_for_ids(25, Duration::from_secs(10)).await;
    assert_eq!(received, ids);
    second.stop().await;
}
