//! Exploration end to end: responses on exploration routes are reordered (and nothing else
//! changes), holdout and shadow return the upstream's bytes, opt-out and pins are respected, other
//! routes are untouched, the logged seed replays the decision, and decisions are recorded.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use driftwatch::config::exploration::{
    BucketsSection, ExplorationMatch, ExplorationSection, OpenInferenceTensors, StrategyName,
    UnitSection,
};
use driftwatch::config::units::ByteSize;
use driftwatch::explore::strategy::{self, Candidate, Strategy};
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use support::{
    MockUpstream, Running, http1_client, metric_value, test_config, wait_for_records,
    with_file_sink,
};

fn route(adjust: impl FnOnce(&mut ExplorationSection)) -> ExplorationSection {
    let mut section = ExplorationSection {
        name: "recs".into(),
        match_: ExplorationMatch {
            path_prefix: "/recs".into(),
        },
        list: "/items".into(),
        id: "/id".into(),
        score: Some("/score".into()),
        pin: None,
        open_inference: None,
        strategy: StrategyName::RandTopN,
        epsilon: 0.05,
        temperature: 1.0,
        fixed_top: 1,
        candidates: 8,
        buckets: BucketsSection {
            holdout: 0.0,
            randomize: 0.0,
        },
        unit: UnitSection {
            header: "x-user-id".into(),
        },
        salt_file: None,
        shadow: false,
        opt_out_header: "x-driftwatch-explore".into(),
        max_response_bytes: ByteSize(1 << 20),
        catalog_size: Some(100),
        diversity_window: 5,
        diversity_positions: None,
    };
    adjust(&mut section);
    section
}

async fn fetch(proxy: &Running, path: &str, headers: &[(&str, &str)]) -> (http::HeaderMap, Bytes) {
    let mut request = Request::get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = http1_client()
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, support::body_bytes(response).await)
}

async fn direct(mock: &MockUpstream, path: &str) -> Bytes {
    let response = http1_client()
        .request(support::get(&mock.url(path)))
        .await
        .unwrap();
    support::body_bytes(response).await
}

/// The list's elements as raw JSON text, and the document with the list emptied.
fn split(body: &[u8]) -> (Vec<String>, Value) {
    let mut value: Value = serde_json::from_slice(body).unwrap();
    let items = std::mem::take(value["items"].as_array_mut().unwrap());
    (items.iter().map(|v| v.to_string()).collect(), value)
}

#[tokio::test]
async fn explored_lists_change_order_and_nothing_else() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.jsonl");
    let mut file = with_file_sink(test_config(mock.addr), &records);
    file.recording.sample_rate = 0.0;
    file.exploration = vec![route(|_| {})];
    let proxy = Running::start(file).await;
    let original = direct(&mock, "/recs?n=12").await;
    let (headers, explored) = fetch(&proxy, "/recs?n=12", &[("x-user-id", "user-1")]).await;

    assert_ne!(explored, original, "the list was reordered");
    assert_eq!(headers["content-length"], explored.len().to_string());
    assert!(
        !headers.contains_key("etag"),
        "a validator of the old representation is dropped"
    );
    let (mut explored_items, explored_rest) = split(&explored);
    let (mut original_items, original_rest) = split(&original);
    assert_eq!(
        explored_rest, original_rest,
        "everything but the list is equal"
    );
    // rand_top_n shuffles the whole candidates window (fixed_top does not apply to it).
    let mut window_explored = explored_items[..8].to_vec();
    let mut window_original = original_items[..8].to_vec();
    window_explored.sort();
    window_original.sort();
    assert_eq!(
        window_explored, window_original,
        "the first 8 (the candidates window) are shuffled among themselves"
    );
    assert_eq!(
        explored_items[8..],
        original_items[8..],
        "items past the candidates window keep their places"
    );
    explored_items.sort();
    original_items.sort();
    assert_eq!(explored_items, original_items, "the same elements");
    // Byte-level: number spellings and the text outside the list are untouched.
    let text = String::from_utf8(explored.to_vec()).unwrap();
    for spelling in [
        "\"score\": 99.10",
        "1e-7",
        "18446744073709551615",
        "caf\\u00e9",
        "\"version\": \"1.0\"}",
    ] {
        assert!(text.contains(spelling), "{spelling} kept in {text}");
    }
    let prefix_end = text.find("\"items\"").unwrap();
    assert_eq!(
        &text[..prefix_end],
        &String::from_utf8(original.to_vec()).unwrap()[..prefix_end]
    );

    // The decision is recorded, and replays from its seed.
    let record = &wait_for_records(&records, 1).await[0];
    assert_eq!(record["sampled"], "explored");
    let exploration = &record["exploration"];
    assert_eq!(exploration["strategy"], "rand_top_n");
    assert_eq!(exploration["bucket"], "explore");
    assert!(
        exploration["unit"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    assert!(
        !record.to_string().contains("user-1"),
        "the unit is never logged in clear"
    );
    let seed = u64::from_str_radix(
        exploration["seed"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let candidates: Vec<Candidate> = (0..12)
        .map(|i| Candidate {
            score: Some(f64::from(100 - i) + 0.1),
            pinned: false,
        })
        .collect();
    let replayed = strategy::decide(Strategy::RandTopN, &candidates, 1, 8, seed);
    let shown: Vec<u64> = exploration["shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["model_rank"].as_u64().unwrap() - 1)
        .collect();
    assert_eq!(
        shown,
        replayed.order.iter().map(|&i| i as u64).collect::<Vec<_>>()
    );
    let joint: f64 = exploration["p_joint"].as_f64().unwrap();
    assert!((joint - replayed.p_joint).abs() < 1e-18);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_exploration_decisions_total{route="recs",bucket="explore",outcome="explored"}"#
        ),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn holdout_shadow_and_opt_out_return_the_upstream_bytes() {
    let mock = MockUpstream::start().await;
    let original = direct(&mock, "/recs?n=10").await;
    for (name, section, headers) in [
        (
            "holdout",
            route(|r| r.buckets.holdout = 1.0),
            vec![("x-user-id", "u")],
        ),
        (
            "shadow",
            route(|r| r.shadow = true),
            vec![("x-user-id", "u")],
        ),
        (
            "opt_out",
            route(|_| {}),
            vec![("x-user-id", "u"), ("x-driftwatch-explore", "off")],
        ),
    ] {
        let mut file = test_config(mock.addr);
        file.exploration = vec![section];
        let proxy = Running::start(file).await;
        let (_, body) = fetch(&proxy, "/recs?n=10", &headers).await;
        assert_eq!(body, original, "{name}: the upstream's bytes");
        let metrics = proxy.metrics().await;
        let bucket = if name == "holdout" {
            "holdout"
        } else {
            "explore"
        };
        let series = format!(
            "driftwatch_exploration_decisions_total{{route=\"recs\",bucket=\"{bucket}\",outcome=\"{name}\"}}"
        );
        assert_eq!(metric_value(&metrics, &series), 1.0, "{name}");
        proxy.stop().await;
    }
}

#[tokio::test]
async fn pinned_items_never_move_and_other_routes_are_untouched() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.exploration = vec![route(|r| {
        r.pin = Some("/meta/pinned".into());
        r.fixed_top = 0;
    })];
    let proxy = Running::start(file).await;
    for user in 0..30 {
        let (_, body) = fetch(
            &proxy,
            "/recs?n=10",
            &[("x-user-id", &format!("user-{user}"))],
        )
        .await;
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value["items"][3]["id"], "item-3",
            "the pinned item stays at its position"
        );
    }
    // A path outside the route: byte-identical.
    let echo = Request::post(proxy.url("/echo"))
        .body(Full::new(Bytes::from_static(
            br#"{"items":[{"id":1},{"id":2}]}"#,
        )))
        .unwrap();
    let response = http1_client().request(echo).await.unwrap();
    assert_eq!(
        &support::body_bytes(response).await[..],
        br#"{"items":[{"id":1},{"id":2}]}"#
    );
    proxy.stop().await;
}

#[tokio::test]
async fn open_inference_tensors_are_reordered_together() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.exploration = vec![route(|r| {
        r.match_.path_prefix = "/oip-recs".into();
        r.open_inference = Some(OpenInferenceTensors {
            ids: "item_ids".into(),
            scores: Some("scores".into()),
        });
        r.fixed_top = 0;
    })];
    let proxy = Running::start(file).await;
    let mut orders = BTreeMap::new();
    for user in 0..20 {
        let (_, body) = fetch(&proxy, "/oip-recs", &[("x-user-id", &format!("u{user}"))]).await;
        let value: Value = serde_json::from_slice(&body).unwrap();
        let ids: Vec<String> =
            serde_json::from_value(value["outputs"][0]["data"][0].clone()).unwrap();
        let scores: Vec<f64> =
            serde_json::from_value(value["outputs"][1]["data"][0].clone()).unwrap();
        for (id, score) in ids.iter().zip(&scores) {
            let expected = 0.9 - 0.1 * f64::from(u32::from(id.as_bytes()[0] - b'a'));
            assert!(
                (score - expected).abs() < 1e-9,
                "scores move with their ids"
            );
        }
        orders.insert(ids.join(""), ());
    }
    assert!(orders.len() > 1, "different users get different orders");
    proxy.stop().await;
}

/// POSTs `body` to the mock's `/echo`, which answers with it: an upstream returning any bytes.
async fn echo(proxy: &Running, body: &str, user: &str) -> Bytes {
    let request = Request::post(proxy.url("/echo"))
        .header("x-user-id", user)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    support::body_bytes(response).await
}

fn oip_echo_route() -> ExplorationSection {
    route(|r| {
        r.match_.path_prefix = "/echo".into();
        r.open_inference = Some(OpenInferenceTensors {
            ids: "item_id".into(),
            scores: Some("score".into()),
        });
        r.fixed_top = 0;
    })
}

fn decisions(metrics: &str, outcome: &str) -> f64 {
    metric_value(
        metrics,
        &format!(
            "driftwatch_exploration_decisions_total{{route=\"recs\",bucket=\"explore\",outcome=\"{outcome}\"}}"
        ),
    )
}

#[tokio::test]
async fn open_inference_single_lists_of_shape_n_and_1_n_are_rewritten() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.exploration = vec![oip_echo_route()];
    let proxy = Running::start(file).await;
    let mut sent = 0.0;
    for shape in ["[5]", "[1,5]"] {
        let body = format!(
            r#"{{"model_name":"ranker","outputs":[{{"name":"item_id","datatype":"BYTES","shape":{shape},"data":["a","b","c","d","e"]}},{{"name":"score","datatype":"FP32","shape":{shape},"data":[0.9,0.8,0.7,0.6,0.5]}}]}}"#
        );
        let mut orders = BTreeMap::new();
        for user in 0..10 {
            let explored = echo(&proxy, &body, &format!("u{user}")).await;
            sent += 1.0;
            let value: Value = serde_json::from_slice(&explored).unwrap();
            assert_eq!(
                value["outputs"][0]["shape"],
                serde_json::from_str::<Value>(shape).unwrap()
            );
            let ids: Vec<String> =
                serde_json::from_value(value["outputs"][0]["data"].clone()).unwrap();
            let scores: Vec<f64> =
                serde_json::from_value(value["outputs"][1]["data"].clone()).unwrap();
            for (id, score) in ids.iter().zip(&scores) {
                let expected = 0.9 - 0.1 * f64::from(u32::from(id.as_bytes()[0] - b'a'));
                assert!(
                    (score - expected).abs() < 1e-9,
                    "{shape}: scores move with their ids"
                );
            }
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(sorted, ["a", "b", "c", "d", "e"], "{shape}");
            orders.insert(ids.join(""), ());
        }
        assert!(
            orders.len() > 1,
            "{shape}: different users get different orders"
        );
    }
    let metrics = proxy.metrics().await;
    assert_eq!(decisions(&metrics, "explored"), sent);
    assert_eq!(decisions(&metrics, "skipped_no_list"), 0.0);
    proxy.stop().await;
}

#[tokio::test]
async fn open_inference_batches_pass_through_unchanged_and_are_counted() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.exploration = vec![oip_echo_route()];
    let proxy = Running::start(file).await;
    let batches = [
        // [2, N], flat row-major: two users' lists, never shuffled into one.
        r#"{"model_name":"ranker","outputs":[{"name":"item_id","datatype":"BYTES","shape":[2,3],"data":["a","b","c","d","e","f"]},{"name":"score","datatype":"FP32","shape":[2,3],"data":[0.90,1e-7,0.7,0.6,0.5,0.4]}]}"#,
        // [2, N], nested: the rows are not items.
        r#"{"model_name":"ranker","outputs":[{"name":"item_id","datatype":"BYTES","shape":[2,3],"data":[["a","b","c"],["d","e","f"]]},{"name":"score","datatype":"FP32","shape":[2,3],"data":[[0.90,1e-7,0.7],[0.6,0.5,0.4]]}]}"#,
    ];
    for (i, body) in batches.iter().enumerate() {
        for user in 0..5 {
            let returned = echo(&proxy, body, &format!("u{user}")).await;
            assert_eq!(&returned[..], body.as_bytes(), "batch {i}: byte for byte");
        }
    }
    let metrics = proxy.metrics().await;
    assert_eq!(decisions(&metrics, "skipped_no_list"), 10.0);
    assert_eq!(decisions(&metrics, "explored"), 0.0);
    proxy.stop().await;
}

#[tokio::test]
async fn responses_beyond_the_limit_pass_through_and_are_counted() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.exploration = vec![route(|r| r.max_response_bytes = ByteSize(200))];
    let proxy = Running::start(file).await;
    let original = direct(&mock, "/recs?n=10").await;
    let (_, body) = fetch(&proxy, "/recs?n=10", &[]).await;
    assert_eq!(body, original);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"driftwatch_exploration_decisions_total{route="recs",bucket="explore",outcome="skipped_too_large"}"#
        ),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test]
async fn diversity_is_measured_per_route() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.exploration = vec![route(|_| {})];
    let proxy = Running::start(file).await;
    for user in 0..10 {
        fetch(
            &proxy,
            "/recs?n=10",
            &[("x-user-id", &format!("user-{user}"))],
        )
        .await;
    }
    let mut report = Value::Null;
    for _ in 0..200 {
        let response = http1_client()
            .request(support::get(&proxy.admin_url("/api/v1/diversity")))
            .await
            .unwrap();
        report = serde_json::from_slice(&support::body_bytes(response).await).unwrap();
        if report["routes"][0]["last_window"]["lists"] == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let last = &report["routes"][0]["last_window"];
    assert_eq!(last["lists"], 5, "{report}");
    assert_eq!(last["distinct_items"], 10);
    assert_eq!(last["catalog_coverage"], 0.1);
    assert_eq!(last["gini"], 0.0, "every list shows the same 10 items once");
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"driftwatch_recs_distinct_items{route="recs"}"#),
        10.0
    );
    proxy.stop().await;
}
