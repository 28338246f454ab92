//! The `kafka` sink's destination: records produced with key = request id and value = the record
//! JSON, partitioned like Kafka's Java client (murmur2 of the key), so consumers that join on the
//! request id find all records of one exchange in one partition.
//!
//! The client is rskafka, a pure-Rust Kafka protocol client: no librdkafka to build, no OpenSSL,
//! one dependency tree with the rest of driftwatch. The connection and the topic's partition list
//! are established on first delivery and rebuilt after any failure.

use std::collections::BTreeMap;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

use super::delivery::{Destination, Failure};
use crate::record::RecordLine;

pub struct KafkaDestination {
    brokers: Vec<String>,
    topic: String,
    timeout: Duration,
    connection: Option<Connection>,
}

struct Connection {
    /// Kept so partition clients share its broker connections.
    _client: Client,
    /// Partition clients in partition order.
    partitions: Vec<PartitionClient>,
}

impl KafkaDestination {
    pub fn new(brokers: Vec<String>, topic: String, timeout: Duration) -> Self {
        Self {
            brokers,
            topic,
            timeout,
            connection: None,
        }
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: self.timeout,
            base: 2.0,
            deadline: Some(self.timeout),
        };
        let client = ClientBuilder::new(self.brokers.clone())
            .client_id("driftwatch")
            .backoff_config(backoff)
            .build()
            .await
            .map_err(|e| Failure::retryable(format!("kafka {:?}: {e}", self.brokers)))?;
        let topics = client
            .list_topics()
            .await
            .map_err(|e| Failure::retryable(format!("kafka metadata: {e}")))?;
        let topic = topics
            .into_iter()
            .find(|t| t.name == self.topic)
            .ok_or_else(|| {
                Failure::retryable(format!("kafka topic {} does not exist", self.topic))
            })?;
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let partition_client = client
                .partition_client(self.topic.clone(), partition, UnknownTopicHandling::Error)
                .await
                .map_err(|e| Failure::retryable(format!("kafka partition {partition}: {e}")))?;
            partitions.push(partition_client);
        }
        if partitions.is_empty() {
            return Err(Failure::retryable(format!(
                "kafka topic {} has no partitions",
                self.topic
            )));
        }
        Ok(Connection {
            _client: client,
            partitions,
        })
    }
}

impl Destination for KafkaDestination {
    async fn deliver(&mut self, batch: &[RecordLine]) -> Result<(), Failure> {
        if self.connection.is_none() {
            self.connection = Some(self.connect().await?);
        }
        let connection = self.connection.as_ref().expect("connected above");
        let count = connection.partitions.len();
        let mut by_partition: BTreeMap<usize, Vec<Record>> = BTreeMap::new();
        let now = chrono::Utc::now();
        for record in batch {
            let index = partition_for(record.id.as_bytes(), count);
            by_partition.entry(index).or_default().push(Record {
                key: Some(record.id.as_bytes().to_vec()),
                value: Some(record.line.to_vec()),
                headers: BTreeMap::new(),
                timestamp: now,
            });
        }
        for (index, records) in by_partition {
            let produced = connection.partitions[index]
                .produce(records, Compression::NoCompression)
                .await;
            if let Err(error) = produced {
                self.connection = None;
                return Err(Failure::retryable(format!(
                    "kafka produce to {}: {error}",
                    self.topic
                )));
            }
        }
        Ok(())
    }
}

/// Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_java_client() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 4] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
        assert!(partition_for(b"any", 3) < 3);
    }
}
