//! Test support: a mock model server builder on 127.0.0.1:0, an in-process driftwatch, and
//! clients (pooled HTTP/1, HTTP/2 prior knowledge, raw TCP for what clients libraries hide).
#![allow(dead_code)]

pub mod collector;
pub mod k8s;
pub mod kafka;
pub mod mlserver;
pub mod mock;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use driftwatch::app::{Driftwatch, Listeners};
use driftwatch::config::{Config, ConfigFile};
use driftwatch::tap::{Analyzer, Findings, Observation};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[allow(unused_imports)]
pub use mock::MockUpstream;

/// A driftwatch instance running in this process on ephemeral ports.
pub struct Running {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), driftwatch::app::AppError>>>,
}

/// Collects every observation the analysis worker sees.
#[derive(Clone, Default)]
pub struct Observations(pub Arc<Mutex<Vec<Observation>>>);

impl Analyzer for Observations {
    fn observe(&mut self, observation: &Observation, _: &mut Findings) {
        self.0.lock().unwrap().push(observation.clone());
    }
}

impl Observations {
    pub fn take(&self) -> Vec<Observation> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Waits (bounded) until at least `count` observations arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Observation> {
        for _ in 0..200 {
            if self.0.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.0.lock().unwrap().clone()
    }
}

/// The config tests start from: ephemeral ports, no shutdown delay.
pub fn test_config(upstream: SocketAddr) -> ConfigFile {
    let mut file = ConfigFile {
        listen: "127.0.0.1:0".into(),
        ..ConfigFile::default()
    };
    file.admin.listen = "127.0.0.1:0".into();
    file.upstream.url = format!("http://{upstream}");
    file.shutdown.delay = driftwatch::config::units::HumanDuration::from_secs(0);
    file.shutdown.grace = driftwatch::config::units::HumanDuration::from_secs(5);
    file
}

impl Running {
    pub async fn start(file: ConfigFile) -> Self {
        Self::start_with(file, Vec::new()).await
    }

    pub async fn start_with(file: ConfigFile, analyzers: Vec<Box<dyn Analyzer>>) -> Self {
        let config = Config::from_file(file).expect("test config is valid");
        let listeners = Listeners::bind(&config)
            .await
            .expect("bind ephemeral ports");
        let (addr, admin) = (listeners.proxy_addr(), listeners.admin_addr());
        let mut driftwatch = Driftwatch::new(config);
        for analyzer in analyzers {
            driftwatch = driftwatch.with_analyzer(analyzer);
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(driftwatch.run(listeners, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals shutdown and waits until the instance has stopped.
    pub async fn stop(mut self) {
        self.signal_shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("driftwatch stops within 20s")
                .expect("driftwatch task did not panic")
                .expect("driftwatch stopped cleanly");
        }
    }

    pub fn join_handle(&mut self) -> JoinHandle<Result<(), driftwatch::app::AppError>> {
        self.task.take().expect("still running")
    }

    /// The Prometheus exposition from the admin port.
    pub async fn metrics(&self) -> String {
        let response = http1_client()
            .request(get(&self.admin_url("/metrics")))
            .await
            .expect("metrics answer");
        String::from_utf8(body_bytes(response).await.to_vec()).unwrap()
    }
}

/// A pooled HTTP/1.1 client.
pub fn http1_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

pub async fn body_bytes(response: Response<hyper::body::Incoming>) -> Bytes {
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// The value of one series in an exposition (`name{labels}` exactly as rendered), 0 when absent.
pub fn metric_value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Sends raw bytes and reads until the peer closes or `idle` passes without data.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], idle: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_idle(&mut stream, idle).await
}

pub async fn read_until_idle(stream: &mut TcpStream, idle: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        match tokio::time::timeout(idle, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
    received
}

/// A port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// Reads a JSON Lines file (missing file: empty).
pub fn read_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON record"))
        .collect()
}

/// Waits (bounded, 10s) until the JSON Lines file holds at least `count` records.
pub async fn wait_for_records(path: &std::path::Path, count: usize) -> Vec<serde_json::Value> {
    for _ in 0..1000 {
        let records = read_records(path);
        if records.len() >= count {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    read_records(path)
}

/// A file sink on `path` recording every exchange.
pub fn with_file_sink(mut file: ConfigFile, path: &std::path::Path) -> ConfigFile {
    file.recording.sample_rate = 1.0;
    file.sinks = vec![driftwatch::config::recording::SinkSection::File {
        name: None,
        path: path.to_string_lossy().into_owned(),
        rotate: Default::default(),
        queue: Default::default(),
    }];
    file
}

/// An HTTP sink to `url` recording every exchange, with a spool in `spool_dir` when given.
pub fn with_http_sink(
    mut file: ConfigFile,
    url: &str,
    format: driftwatch::config::recording::HttpFormat,
    spool: Option<(&std::path::Path, u64)>,
) -> ConfigFile {
    use driftwatch::config::recording::{BatchSection, RetrySection, SinkSection, SpoolSection};
    use driftwatch::config::units::{ByteSize, HumanDuration};
    file.recording.sample_rate = 1.0;
    file.sinks = vec![SinkSection::Http {
        name: None,
        url: url.to_owned(),
        format,
        batch: BatchSection {
            max_records: 20,
            max_delay: HumanDuration::from_millis(20),
        },
        queue: Default::default(),
        retry: RetrySection {
            initial: HumanDuration::from_millis(20),
            max: HumanDuration::from_millis(200),
        },
        spool: spool.map(|(dir, max_bytes)| SpoolSection {
            dir: dir.to_string_lossy().into_owned(),
            max_bytes: ByteSize(max_bytes),
        }),
        timeout: HumanDuration::from_millis(500),
        headers: Default::default(),
        ca_file: None,
    }];
    file
}

/// Sends `count` sequential requests and returns their request ids in order.
pub async fn send_requests(proxy: &Running, path: &str, count: usize) -> Vec<String> {
    let client = http1_client();
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let response = client.request(get(&proxy.url(path))).await.unwrap();
        ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        body_bytes(response).await;
    }
    ids
}

/// Polls `/metrics` (bounded, 10s) until `series` reaches `at_least`; returns its last value.
pub async fn wait_for_metric(proxy: &Running, series: &str, at_least: f64) -> f64 {
    let mut value = 0.0;
    for _ in 0..500 {
        value = metric_value(&proxy.metrics().await, series);
        if value >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    value
}

/// A Kafka sink to `brokers`/`topic` recording every exchange, with a spool when given.
pub fn with_kafka_sink(
    mut file: ConfigFile,
    broker: SocketAddr,
    topic: &str,
    spool: Option<&std::path::Path>,
) -> ConfigFile {
    use driftwatch::config::recording::{BatchSection, RetrySection, SinkSection, SpoolSection};
    use driftwatch::config::units::{ByteSize, HumanDuration};
    file.recording.sample_rate = 1.0;
    file.sinks = vec![SinkSection::Kafka {
        name: None,
        brokers: vec![broker.to_string()],
        topic: topic.to_owned(),
        batch: BatchSection {
            max_records: 20,
            max_delay: HumanDuration::from_millis(20),
        },
        queue: Default::default(),
        retry: RetrySection {
            initial: HumanDuration::from_millis(50),
            max: HumanDuration::from_millis(500),
        },
        spool: spool.map(|dir| SpoolSection {
            dir: dir.to_string_lossy().into_owned(),
            max_bytes: ByteSize(16 << 20),
        }),
        timeout: HumanDuration::from_secs(2),
    }];
    file
}

/// Sends iris rows (a missing value as `NaN`) through `proxy` to `/v2/models/iris/infer`, as Open
/// Inference requests of `batch` rows each (one `[rows, 4]` FP64 tensor); every answer must be 200.
pub async fn send_iris_rows(proxy: &Running, rows: &[Vec<Option<f64>>], batch: usize) {
    let client = http1_client();
    for chunk in rows.chunks(batch) {
        let data: Vec<String> = chunk
            .iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .map(|v| v.map_or("NaN".to_owned(), |x| format!("{x}")))
                    .collect();
                format!("[{}]", cells.join(","))
            })
            .collect();
        let body = format!(
            r#"{{"inputs":[{{"name":"predict","shape":[{},4],"datatype":"FP64","data":[{}]}}]}}"#,
            chunk.len(),
            data.join(",")
        );
        let request = Request::post(proxy.url("/v2/models/iris/infer"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        body_bytes(response).await;
    }
}
