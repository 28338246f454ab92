//! The Kafka sink against a real Kafka-protocol broker (tansu), read back with a Kafka consumer.

mod support;

use std::collections::HashSet;

use driftwatch::sinks::kafka::partition_for;
use support::kafka::Broker;
use support::{
    MockUpstream, Running, send_requests, test_config, wait_for_metric, with_kafka_sink,
};

const TOPIC: &str = "inference-records";

#[tokio::test]
async fn records_arrive_keyed_by_request_id_in_the_partition_of_their_key() {
    let broker = Broker::start().await;
    broker.create_topic(TOPIC, 3).await;
    let mock = MockUpstream::start().await;
    let proxy = Running::start(with_kafka_sink(
        test_config(mock.addr),
        broker.addr,
        TOPIC,
        None,
    ))
    .await;
    let ids = send_requests(&proxy, "/v2/models/iris/infer", 30).await;
    let consumed = broker.consume(TOPIC, 3, 30).await;
    assert_eq!(consumed.len(), 30);
    let keys: HashSet<&String> = consumed.iter().map(|(_, key, _)| key).collect();
    assert_eq!(keys, ids.iter().collect());
    for (partition, key, value) in &consumed {
        let record: serde_json::Value = serde_json::from_slice(value).unwrap();
        assert_eq!(record["id"], key.as_str());
        assert_eq!(record["schema"], "driftwatch.record/v1");
        assert_eq!(record["model"], "iris");
        assert_eq!(
            *partition as usize,
            partition_for(key.as_bytes(), 3),
            "Java-compatible partitioning"
        );
    }
    // Per partition, records keep the order they were sent in.
    for partition in 0..3 {
        let order: Vec<&String> = consumed
            .iter()
            .filter(|(p, _, _)| *p == partition)
            .map(|(_, k, _)| k)
            .collect();
        let sent: Vec<&String> = ids
            .iter()
            .filter(|id| partition_for(id.as_bytes(), 3) == partition as usize)
            .collect();
        assert_eq!(order, sent);
    }
    proxy.stop().await;
}

#[tokio::test]
async fn broker_down_then_back_delivers_every_spooled_record() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mock = MockUpstream::start().await;
    let spool = tempfile::tempdir().unwrap();
    let proxy = Running::start(with_kafka_sink(
        test_config(mock.addr),
        addr,
        TOPIC,
        Some(spool.path()),
    ))
    .await;
    let ids = send_requests(&proxy, "/echo", 20).await;
    let spooled = wait_for_metric(
        &proxy,
        r#"driftwatch_records_total{sink="kafka",outcome="spooled"}"#,
        20.0,
    )
    .await;
    assert_eq!(
        spooled, 20.0,
        "the broker is down: records wait in the spool"
    );

    let broker = Broker::start_on(addr).await;
    broker.create_topic(TOPIC, 1).await;
    let consumed = broker.consume(TOPIC, 1, 20).await;
    let keys: Vec<&String> = consumed.iter().map(|(_, key, _)| key).collect();
    assert_eq!(
        keys,
        ids.iter().collect::<Vec<_>>(),
        "every record, in order"
    );
    let delivered = wait_for_metric(
        &proxy,
        r#"driftwatch_records_total{sink="kafka",outcome="delivered"}"#,
        20.0,
    )
    .await;
    assert_eq!(delivered, 20.0);
    proxy.stop().await;
}
