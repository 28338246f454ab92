//! A real MLServer (PyPI `mlserver` + `mlserver-sklearn`, installed by `scripts/test` into the
//! test-tools venv) serving a model folder on 127.0.0.1, stopped with its whole process group when
//! dropped.
//!
//! MLServer is configured only through environment variables of the child process (never of the
//! test process): free HTTP and gRPC ports, no metrics server, and a private working directory for
//! the `.metrics`/`.envs` folders it creates there.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{get, http1_client};

/// How long MLServer may take to load its models and answer ready.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long MLServer may take to exit after SIGTERM before its group is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// The `mlserver` command: `$DRIFTWATCH_TEST_MLSERVER`, or the one in the test-tools venv.
pub fn mlserver_binary() -> PathBuf {
    if let Ok(path) = std::env::var("DRIFTWATCH_TEST_MLSERVER") {
        return PathBuf::from(path);
    }
    let candidate = super::kafka::tools_venv().join("bin/mlserver");
    if candidate.exists() {
        return candidate;
    }
    panic!(
        "mlserver not found at {}: run scripts/test, which installs PyPI mlserver and \
         mlserver-sklearn from tests/tools/requirements.txt into {}, or set DRIFTWATCH_TEST_MLSERVER",
        candidate.display(),
        super::kafka::tools_venv().display()
    );
}

/// A running `mlserver start <models>`.
pub struct MlServer {
    /// The HTTP (Open Inference REST) address.
    pub addr: SocketAddr,
    child: Child,
    /// Working directory and log file; removed after the process is gone.
    workdir: tempfile::TempDir,
}

impl MlServer {
    /// Starts MLServer on the models under `models` and waits until `GET /v2/health/ready` is
    /// 200, which MLServer answers only once every model has loaded.
    pub async fn start(models: &Path) -> Self {
        let binary = mlserver_binary();
        let workdir = tempfile::tempdir().expect("MLServer working directory");
        let log_path = workdir.path().join("mlserver.log");
        let log = std::fs::File::create(&log_path).expect("MLServer log file");
        let [http, grpc] = free_ports();
        let mut command = Command::new(&binary);
        // Only the settings below: none inherited from whoever runs the tests.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MLSERVER_") {
                command.env_remove(name);
            }
        }
        command
            .arg("start")
            .arg(models)
            .current_dir(workdir.path())
            .env("MLSERVER_HOST", "127.0.0.1")
            .env("MLSERVER_HTTP_PORT", http.port().to_string())
            .env("MLSERVER_GRPC_PORT", grpc.port().to_string())
            // An empty endpoint disables MLServer's separate metrics server (and its port).
            .env("MLSERVER_METRICS_ENDPOINT", "")
            .env("MLSERVER_METRICS_DIR", workdir.path().join(".metrics"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            // Its own process group: MLServer forks inference workers, and the group is what
            // Drop stops, so none of them outlives the test.
            .process_group(0);
        let child = command.spawn().unwrap_or_else(|error| {
            panic!(
                "start {}: {error} (run scripts/test to install the test tools)",
                binary.display()
            )
        });
        let mut server = Self {
            addr: http,
            child,
            workdir,
        };
        server.wait_ready().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What MLServer has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("mlserver.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let client = http1_client();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "MLServer exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            let ready = client.request(get(&self.url("/v2/health/ready"))).await;
            if ready.is_ok_and(|response| response.status() == http::StatusCode::OK) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "MLServer was not ready within {READY_WITHIN:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends `signal` to the whole process group (the group id is the child's pid).
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for MlServer {
    fn drop(&mut self) {
        self.signal_group("TERM");
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (a worker, or MLServer itself past the grace).
        self.signal_group("KILL");
        let _ = self.child.wait();
    }
}

/// Two distinct ports free at the time of asking (MLServer binds them a moment later).
fn free_ports() -> [SocketAddr; 2] {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let held = [bind(), bind()];
    held.map(|listener| listener.local_addr().expect("local address"))
}
