//! Durability and bounded memory, with the real binary: a process killed with SIGKILL replays its
//! spool after a restart; a 100 MiB body passes intact while driftwatch's memory stays bounded.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::StreamBody;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::collector::{Collector, Mode};
use support::mock::{FNV_OFFSET, fnv};
use support::{MockUpstream, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_driftwatch");

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Process {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Process {
    async fn start(config: &std::path::Path) -> Self {
        Self::start_logging(config, "warn", Stdio::null()).await
    }

    async fn start_logging(config: &std::path::Path, level: &str, stderr: Stdio) -> Self {
        let (addr, admin) = (free_addr(), free_addr());
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args([
                "--listen",
                &addr.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .args(["--log-level", level])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(admin).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self { child, addr, admin }
    }

    async fn metric(&self, series: &str) -> f64 {
        let client = support::http1_client();
        match client
            .request(support::get(&format!("http://{}/metrics", self.admin)))
            .await
        {
            Ok(response) => metric_value(
                &String::from_utf8_lossy(&support::body_bytes(response).await),
                series,
            ),
            Err(_) => 0.0,
        }
    }

    /// Peak resident memory (VmHWM) in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_killed_process_replays_its_spool_after_restart() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Reject(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("driftwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream: {{url: 'http://{}'}}\nrecording: {{sample_rate: 1.0}}\nsinks:\n  - type: http\n    url: '{}'\n    batch: {{max_records: 10, max_delay: 20ms}}\n    retry: {{initial: 20ms, max: 200ms}}\n    timeout: 500ms\n    spool: {{dir: '{}', max_bytes: 16MiB}}\n",
            mock.addr,
            collector.url(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let first = Process::start(&config).await;
    let client = support::http1_client();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let response = client
            .request(support::get(&format!("http://{}/echo", first.addr)))
            .await
            .unwrap();
        ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        support::body_bytes(response).await;
    }
    let spooled = r#"driftwatch_records_total{sink="http",outcome="spooled"}"#;
    for _ in 0..400 {
        if first.metric(spooled).await >= 20.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(first.metric(spooled).await, 20.0);
    first.kill();

    collector.set_mode(Mode::Accept);
    let second = Process::start(&config).await;
    let received = collector.wait_for_ids(20, Duration::from_secs(15)).await;
    assert_eq!(
        received, ids,
        "every record spooled before the kill arrives, in order"
    );
    drop(second);
}

#[tokio::test]
async fn a_100_mib_body_passes_intact_and_memory_stays_bounded() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.jsonl");
    let config = dir.path().join("driftwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream: {{url: 'http://{}'}}\nrecording: {{sample_rate: 1.0, max_body_bytes: 256KiB}}\nsinks:\n  - {{type: file, path: '{}'}}\n",
            mock.addr,
            records.display()
        ),
    )
    .unwrap();
    let process = Process::start(&config).await;

    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 1600; // 100 MiB
    let chunk_bytes = |i: usize| Bytes::from(vec![(i % 251) as u8; CHUNK]);
    let expected_hash = (0..CHUNKS).fold(FNV_OFFSET, |hash, i| fnv(hash, &chunk_bytes(i)));
    let stream = futures_util::stream::iter(
        (0..CHUNKS).map(move |i| Ok::<_, std::convert::Infallible>(Frame::data(chunk_bytes(i)))),
    );
    let client: Client<_, StreamBody<_>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(format!("http://{}/consume", process.addr))
        .body(StreamBody::new(stream))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value =
        serde_json::from_slice(&support::body_bytes(response).await).unwrap();
    assert_eq!(
        answer["bytes"],
        (CHUNK * CHUNKS) as u64,
        "every byte reached the model server"
    );
    assert_eq!(answer["fnv"], expected_hash, "unchanged");

    let recorded = support::wait_for_records(&records, 1).await;
    let request = &recorded[0]["request"];
    assert_eq!(request["truncated"], true);
    assert_eq!(request["bytes"], (CHUNK * CHUNKS) as u64);
    assert!(
        request["body"].as_str().unwrap().len() <= 256 * 1024 * 4 / 3 + 4,
        "only the captured prefix"
    );

    let peak = process.peak_rss();
    assert!(
        peak < 64 << 20,
        "peak RSS {} MiB while streaming 100 MiB",
        peak >> 20
    );
}

/// Credentials never reach a record or a log line, whatever the allow-list says and whatever the
/// log level.
#[tokio::test]
async fn credentials_never_reach_records_or_logs() {
    let mock = MockUpstream::start().await;
    let collector = Collector::start(Mode::Reject(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.jsonl");
    let log = dir.path().join("driftwatch.log");
    let config = dir.path().join("driftwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream: {{url: 'http://{}'}}\nrecording:\n  sample_rate: 1.0\n  headers: [authorization, proxy-authorization, cookie, set-cookie, x-api-key, content-type]\nsinks:\n  - {{type: file, path: '{}'}}\n  - {{type: http, url: '{}', batch: {{max_records: 1, max_delay: 10ms}}, retry: {{initial: 10ms, max: 20ms}}}}\n",
            mock.addr,
            records.display(),
            collector.url(),
        ),
    )
    .unwrap();
    let process = Process::start_logging(
        &config,
        "trace",
        Stdio::from(std::fs::File::create(&log).unwrap()),
    )
    .await;
    let secrets = [
        "Bearer s3cr3t-token",
        "Basic cHJveHk6cGFzcw==",
        "sid=c00kie",
        "api-k3y",
    ];
    let request = http::Request::post(format!("http://{}/echo", process.addr))
        .header("authorization", secrets[0])
        .header("proxy-authorization", secrets[1])
        .header("cookie", secrets[2])
        .header("x-api-key", secrets[3])
        .header("content-type", "text/plain")
        .body(http_body_util::Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let response = support::http1_client().request(request).await.unwrap();
    support::body_bytes(response).await;
    let recorded = support::wait_for_records(&records, 1).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0]["request"]["headers"]["content-type"], "text/plain",
        "the allow-list works"
    );
    // Let the failing HTTP sink log its retries.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(process);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("sink delivery failed"),
        "trace logging ran: {logged}"
    );
    let stored = std::fs::read_to_string(&records).unwrap();
    for secret in secrets {
        assert!(!stored.contains(secret), "{secret} in a record");
        assert!(!logged.contains(secret), "{secret} in the log");
    }
}
