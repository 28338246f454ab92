//! Load harness for SPEC §13: how much latency, throughput and memory driftwatch costs compared
//! with talking to the model server directly and with nginx as the reverse proxy.
//!
//! One process starts a mock model server (hyper, on its own runtime and threads) that reads each
//! request body and answers with a fixed 1 KiB JSON document; `driftwatch run` in front of it;
//! and, when `nginx` is installed, nginx in front of the same server (keep-alive to the upstream,
//! as many worker processes as driftwatch has runtime threads, no access log). A Rust load
//! generator on a third runtime then drives, for each target (direct, driftwatch, nginx):
//!
//! - **closed loop**: `LOAD_CONCURRENCY` keep-alive HTTP/1.1 connections, each sending the next
//!   1 KiB JSON POST as soon as the previous answer is read — saturation throughput;
//! - **open loop**: one fixed rate for all targets, by default half of the lowest closed-loop
//!   throughput measured earlier in the same run ("half of saturation" for every target; on a
//!   small machine half of the direct throughput can exceed what a proxy saturates at). Requests are released on a schedule; latency
//!   counts from the scheduled send time whenever every connection was busy at that moment, so a
//!   stalled target is charged for the requests it delayed (no coordinated omission);
//! - a short closed loop through driftwatch with 256 connections, for resident memory.
//!
//! Runs of the targets are cut into slices and interleaved round-robin, so a noisy neighbour on a
//! shared machine hits all targets alike and the ratios are measured side by side. Latencies go
//! into HDR histograms (nanosecond resolution). The CPU time the proxies (driftwatch, nginx with its
//! workers) spend per request is read from `/proc`. driftwatch's resident memory (`VmRSS`) is sampled
//! idle, at the end of the closed loop and at the end of the 256-connection run. The result is
//! printed to stdout as markdown tables ready for the README; progress goes to stderr.
//!
//! Run it with
//!
//! ```text
//! cargo bench --bench load
//! LOAD_DURATION=30s LOAD_TARGETS=direct,driftwatch cargo bench --bench load
//! ```
//!
//! Knobs (environment variables):
//!
//! - `LOAD_DURATION` — measured time per target and mode, e.g. `10s`, `500ms`, `1m` (default `10s`);
//! - `LOAD_WARMUP` — closed-loop warm-up per target before measuring (default `2s`);
//! - `LOAD_CONCURRENCY` — connections of the closed and open loops (default `32`);
//! - `LOAD_RATE` — open-loop requests per second (default: half of the lowest closed-loop rps);
//! - `LOAD_TARGETS` — comma list out of `direct,driftwatch,nginx` (default: all three);
//! - `LOAD_DRIFTWATCH_CONFIG` — a config file passed to driftwatch as `--config` (default: none).
//!
//! With the defaults the whole run takes about 75 seconds. Everything listens on 127.0.0.1 only,
//! and the child processes are stopped when the harness ends, also when it panics.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// Size of the request and of the response body, as SPEC §13 prescribes.
const PAYLOAD_BYTES: usize = 1024;
/// Feature columns in each payload (SPEC §13 monitors 20).
const PAYLOAD_COLUMNS: usize = 20;
const REQUEST_PATH: &str = "/v2/models/load/infer";

/// The machine this was written for has 2 cores; the mock server and the load generator get 2
/// threads each, driftwatch's runtime takes one per core, and nginx gets the same number of workers.
const UPSTREAM_THREADS: usize = 2;
const LOAD_THREADS: usize = 2;
const NGINX_WORKERS: usize = 2;

/// A run is cut into slices of about this length, interleaved across the targets.
const SLICE: Duration = Duration::from_secs(2);
const MAX_SLICES: u32 = 5;
const WIDE_CONNECTIONS: usize = 256;
const WIDE_DURATION: Duration = Duration::from_secs(3);
/// How long an open loop may run past its schedule before unsent requests count as errors.
const DRAIN: Duration = Duration::from_secs(2);
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);
/// The resident set is read this long before a closed loop stops, while its connections are open.
const RSS_LEAD: Duration = Duration::from_millis(100);
/// Histogram range: 1 ns to 60 s at 3 significant digits.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

static REQUEST_BODY: LazyLock<Bytes> = LazyLock::new(|| {
    padded_json(|padding| {
        format!(
            r#"{{"id":"load","inputs":[{{"name":"features","datatype":"FP64","shape":[1,{PAYLOAD_COLUMNS}],"data":[{}]}}],"parameters":{{"padding":"{padding}"}}}}"#,
            columns(0.25)
        )
    })
});

static RESPONSE_BODY: LazyLock<Bytes> = LazyLock::new(|| {
    padded_json(|padding| {
        format!(
            r#"{{"model_name":"load","outputs":[{{"name":"scores","datatype":"FP64","shape":[1,{PAYLOAD_COLUMNS}],"data":[{}]}}],"parameters":{{"padding":"{padding}"}}}}"#,
            columns(0.75)
        )
    })
});

fn columns(base: f64) -> String {
    (0..PAYLOAD_COLUMNS)
        .map(|column| format!("{:.6}", base + column as f64 * 0.0137))
        .collect::<Vec<_>>()
        .join(",")
}

/// Fills the `padding` string of `document` so the JSON is exactly [`PAYLOAD_BYTES`] long.
fn padded_json(document: impl Fn(&str) -> String) -> Bytes {
    let bare = document("").len();
    assert!(bare <= PAYLOAD_BYTES, "payload skeleton is {bare} bytes");
    let text = document(&"x".repeat(PAYLOAD_BYTES - bare));
    assert_eq!(text.len(), PAYLOAD_BYTES);
    serde_json::from_str::<serde_json::Value>(&text).expect("payload is valid JSON");
    Bytes::from(text)
}

fn main() {
    let knobs = Knobs::from_env().unwrap_or_else(|message| {
        eprintln!("load: {message}");
        std::process::exit(2);
    });

    let upstream_runtime = runtime("load-upstream", UPSTREAM_THREADS);
    let upstream = upstream_runtime.block_on(start_upstream());
    let load = runtime("load-client", LOAD_THREADS);
    let scratch = tempfile::Builder::new()
        .prefix("driftwatch-load-")
        .tempdir()
        .expect("create a scratch directory");
    // nginx workers drop root privileges and must still reach their temp paths below.
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755))
        .expect("open up the scratch directory");

    let mut notes = Vec::new();
    let mut targets = Vec::new();
    for kind in &knobs.targets {
        match kind {
            TargetKind::Direct => targets.push(Target {
                kind: TargetKind::Direct,
                endpoint: Endpoint::new(upstream),
                process: None,
            }),
            TargetKind::Driftwatch => targets.push(start_driftwatch(
                &load,
                upstream,
                scratch.path(),
                knobs.driftwatch_config.as_deref(),
            )),
            TargetKind::Nginx => match start_nginx(upstream, scratch.path()) {
                Ok(nginx) => targets.push(nginx),
                Err(reason) => {
                    eprintln!("load: nginx skipped: {reason}");
                    notes.push(format!("nginx skipped: {reason}."));
                }
            },
        }
    }
    assert!(!targets.is_empty(), "no target left to measure");

    let driftwatch_pid = targets
        .iter()
        .find(|target| target.kind == TargetKind::Driftwatch)
        .and_then(Target::pid);
    let idle_rss = driftwatch_pid.and_then(resident_kib);

    // Every target must answer exactly like the model server before any number means anything.
    for target in &targets {
        load.block_on(async {
            let mut sender = connect(&target.endpoint).await?;
            sender.ready().await?;
            exchange(&mut sender, &target.endpoint).await
        })
        .unwrap_or_else(|error| panic!("{}: smoke request failed: {error}", target.name()));
    }

    let concurrency = knobs.concurrency;
    for target in &targets {
        eprintln!("load: warming up {} for {:?}", target.name(), knobs.warm_up);
        load.block_on(closed_loop(
            target.endpoint.clone(),
            concurrency,
            knobs.warm_up,
            None,
        ));
    }

    let closed = interleaved(&targets, knobs.duration, "closed loop", |target, slice| {
        load.block_on(closed_loop(
            target.endpoint.clone(),
            concurrency,
            slice,
            target.pid(),
        ))
    });

    // "Half of saturation" must hold for every target at the one rate they all get: on a small
    // machine half of the direct throughput can be more than a proxy saturates at, and the open
    // loop would then measure a growing queue instead of latency.
    let rate = knobs.rate.unwrap_or_else(|| {
        let (slowest, sample) = targets
            .iter()
            .zip(&closed)
            .min_by(|(_, a), (_, b)| a.rps().total_cmp(&b.rps()))
            .expect("at least one target");
        notes.push(format!(
            "Open-loop rate: half of the lowest closed-loop throughput ({}).",
            slowest.name()
        ));
        (sample.rps() / 2.0).max(1.0)
    });

    let open = interleaved(&targets, knobs.duration, "open loop", |target, slice| {
        load.block_on(open_loop(target.endpoint.clone(), concurrency, rate, slice))
    });

    let wide = targets
        .iter()
        .find(|target| target.kind == TargetKind::Driftwatch)
        .map(|driftwatch| {
            eprintln!("load: driftwatch with {WIDE_CONNECTIONS} connections");
            with_cpu(driftwatch, |driftwatch| {
                load.block_on(closed_loop(
                    driftwatch.endpoint.clone(),
                    WIDE_CONNECTIONS,
                    WIDE_DURATION,
                    driftwatch.pid(),
                ))
            })
        });

    for target in &mut targets {
        if let Some(status) = target.process.as_mut().and_then(ChildGuard::exited) {
            notes.push(format!(
                "{} exited during the run ({status}).",
                target.name()
            ));
        }
    }
    if targets
        .iter()
        .any(|target| target.kind == TargetKind::Driftwatch)
    {
        notes.extend(log_note(
            "driftwatch",
            &scratch.path().join("driftwatch.log"),
        ));
    }
    if targets
        .iter()
        .any(|target| target.kind == TargetKind::Nginx)
    {
        notes.extend(log_note("nginx", &scratch.path().join("nginx/error.log")));
    }

    let report = Report {
        knobs: &knobs,
        rate,
        targets: &targets,
        closed: &closed,
        open: &open,
        wide: wide.as_ref(),
        idle_rss,
        notes: &notes,
    };
    print!("{}", report.render());
}

fn runtime(name: &str, threads: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// Knobs

struct Knobs {
    duration: Duration,
    warm_up: Duration,
    concurrency: usize,
    rate: Option<f64>,
    targets: Vec<TargetKind>,
    driftwatch_config: Option<PathBuf>,
}

impl Knobs {
    fn from_env() -> Result<Self, String> {
        let duration = env_duration("LOAD_DURATION", Duration::from_secs(10))?;
        let warm_up = env_duration("LOAD_WARMUP", Duration::from_secs(2))?;
        let concurrency = match env_text("LOAD_CONCURRENCY") {
            None => 32,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|&connections| connections > 0)
                .ok_or_else(|| {
                    format!("LOAD_CONCURRENCY: expected a positive integer, got {text:?}")
                })?,
        };
        let rate = match env_text("LOAD_RATE") {
            None => None,
            Some(text) => Some(
                text.parse::<f64>()
                    .ok()
                    .filter(|rate| rate.is_finite() && *rate > 0.0)
                    .ok_or_else(|| {
                        format!("LOAD_RATE: expected requests per second, got {text:?}")
                    })?,
            ),
        };
        let targets = match env_text("LOAD_TARGETS") {
            None => vec![
                TargetKind::Direct,
                TargetKind::Driftwatch,
                TargetKind::Nginx,
            ],
            Some(text) => {
                let mut targets = Vec::new();
                for name in text
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                {
                    let kind = TargetKind::parse(name).ok_or_else(|| {
                        format!(
                            "LOAD_TARGETS: unknown target {name:?}; use direct, driftwatch, nginx"
                        )
                    })?;
                    if !targets.contains(&kind) {
                        targets.push(kind);
                    }
                }
                if targets.is_empty() {
                    return Err("LOAD_TARGETS: name at least one target".to_owned());
                }
                targets
            }
        };
        if duration.is_zero() {
            return Err("LOAD_DURATION: must be longer than zero".to_owned());
        }
        Ok(Self {
            duration,
            warm_up,
            concurrency,
            rate,
            targets,
            driftwatch_config: std::env::var_os("LOAD_DRIFTWATCH_CONFIG").map(PathBuf::from),
        })
    }
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

fn env_duration(name: &str, default: Duration) -> Result<Duration, String> {
    match env_text(name) {
        None => Ok(default),
        Some(text) => parse_duration(&text).ok_or_else(|| {
            format!("{name}: expected a duration like 10s, 500ms or 1m, got {text:?}")
        }),
    }
}

/// `500ms`, `10s`, `1.5s`, `2m`; a bare number is seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, seconds_per_unit) = if let Some(number) = text.strip_suffix("ms") {
        (number, 0.001)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60.0)
    } else {
        (text, 1.0)
    };
    let value = number.trim().parse::<f64>().ok()?;
    Duration::try_from_secs_f64(value * seconds_per_unit).ok()
}

// ---------------------------------------------------------------------------------------------
// Targets and their processes

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetKind {
    Direct,
    Driftwatch,
    Nginx,
}

impl TargetKind {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(Self::Direct),
            "driftwatch" => Some(Self::Driftwatch),
            "nginx" => Some(Self::Nginx),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Driftwatch => "driftwatch",
            Self::Nginx => "nginx",
        }
    }
}

struct Target {
    kind: TargetKind,
    endpoint: Endpoint,
    process: Option<ChildGuard>,
}

impl Target {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// CPU time of the proxy's processes so far; `None` for direct (the mock server shares the
    /// harness's process).
    fn cpu(&self) -> Option<Duration> {
        self.process
            .as_ref()
            .and_then(|guard| tree_cpu(guard.child.id()))
    }

    /// The process whose memory is sampled: driftwatch only (nginx spreads over several).
    fn pid(&self) -> Option<u32> {
        match self.kind {
            TargetKind::Driftwatch => self.process.as_ref().map(|guard| guard.child.id()),
            TargetKind::Direct | TargetKind::Nginx => None,
        }
    }
}

/// Stops its child when dropped, also while a panic unwinds.
struct ChildGuard {
    child: Child,
    /// nginx's master must be asked (SIGTERM) so that it takes its workers down with it; killing it
    /// outright would orphan them.
    terminate_first: bool,
}

impl ChildGuard {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if self.terminate_first {
            let asked = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            let deadline = Instant::now() + Duration::from_secs(5);
            while asked && Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (bound, read and released).
fn free_port() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port")
}

/// Polls `ready` until it holds, the child exits, or the startup deadline passes.
fn wait_until(
    what: &str,
    guard: &mut ChildGuard,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = guard.exited() {
            return Err(format!("exited ({status}) while waiting for {what}"));
        }
        if Instant::now() > deadline {
            return Err(format!("no {what} after {STARTUP_DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accepts_tcp(addr: SocketAddr) -> bool {
    StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn start_driftwatch(
    load: &Runtime,
    upstream: SocketAddr,
    scratch: &Path,
    config: Option<&Path>,
) -> Target {
    let listen = free_port();
    let admin = free_port();
    let log_path = scratch.join("driftwatch.log");
    let log = File::create(&log_path).expect("create the driftwatch log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_driftwatch"));
    command.arg("run");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(["--upstream", &format!("http://{upstream}")])
        .args(["--listen", &listen.to_string()])
        .args(["--admin-listen", &admin.to_string()])
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("share the driftwatch log"))
        .stderr(log);
    let child = command.spawn().expect("start driftwatch");
    let mut guard = ChildGuard {
        child,
        terminate_first: false,
    };
    eprintln!("load: driftwatch pid {} on {listen}", guard.child.id());

    let admin_endpoint = Endpoint::new(admin);
    let started =
        wait_until("the proxy listener", &mut guard, || accepts_tcp(listen)).and_then(|()| {
            wait_until("GET /readyz = 200", &mut guard, || {
                load.block_on(get_status(&admin_endpoint, "/readyz"))
                    .is_ok_and(|status| status == StatusCode::OK)
            })
        });
    if let Err(reason) = started {
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        panic!("driftwatch did not start: {reason}\n--- driftwatch log ---\n{log}");
    }
    Target {
        kind: TargetKind::Driftwatch,
        endpoint: Endpoint::new(listen),
        process: Some(guard),
    }
}

fn find_nginx() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

fn start_nginx(upstream: SocketAddr, scratch: &Path) -> Result<Target, String> {
    let binary = find_nginx().ok_or("nginx is not installed (looked on PATH and in /usr/sbin)")?;
    let dir = scratch.join("nginx");
    fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    let listen = free_port();
    let error_log = dir.join("error.log");
    let config_path = dir.join("nginx.conf");
    fs::write(&config_path, nginx_config(&dir, listen, upstream))
        .map_err(|e| format!("write {}: {e}", config_path.display()))?;

    let child = Command::new(&binary)
        .arg("-e")
        .arg(&error_log)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let mut guard = ChildGuard {
        child,
        terminate_first: true,
    };
    eprintln!("load: nginx pid {} on {listen}", guard.child.id());
    wait_until("the nginx listener", &mut guard, || accepts_tcp(listen)).map_err(|reason| {
        let log = fs::read_to_string(&error_log).unwrap_or_default();
        format!("{reason}: {}", log.trim())
    })?;
    Ok(Target {
        kind: TargetKind::Nginx,
        endpoint: Endpoint::new(listen),
        process: Some(guard),
    })
}

/// nginx configured like driftwatch: keep-alive on both sides, no access log, buffers in memory
/// (a 1 KiB body never reaches the temp paths, which only keep nginx away from system paths).
fn nginx_config(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes {NGINX_WORKERS};
pid "{dir}/nginx.pid";
error_log "{dir}/error.log" warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path "{dir}/client_body";
    proxy_temp_path "{dir}/proxy";
    fastcgi_temp_path "{dir}/fastcgi";
    uwsgi_temp_path "{dir}/uwsgi";
    scgi_temp_path "{dir}/scgi";
    keepalive_requests 10000000;
    keepalive_timeout 75s;

    upstream model {{
        server {upstream};
        keepalive 64;
        keepalive_requests 10000000;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

/// Reads `VmRSS` of a process, in KiB.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// User and system CPU time of a process and its direct children (nginx's workers).
fn tree_cpu(root: u32) -> Option<Duration> {
    let (_, mut ticks) = process_stat(root)?;
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if let Some((parent, child_ticks)) = process_stat(pid)
            && parent == root
        {
            ticks += child_ticks;
        }
    }
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// The parent pid and the user + system clock ticks of a process.
fn process_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may itself contain spaces: state is
    // field 3 of proc(5), so field n is at index n - 3.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((parent, user + system))
}

/// A note on what a child logged during the run, if anything; the first lines go to stderr.
fn log_note(name: &str, path: &Path) -> Option<String> {
    let log = fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    eprintln!("load: {name} logged {} lines; the first ones:", lines.len());
    for line in lines.iter().take(10) {
        eprintln!("  {line}");
    }
    Some(format!(
        "{name} logged {} lines (warn level or above); first: `{}`",
        lines.len(),
        lines[0].chars().take(200).collect::<String>()
    ))
}

// ---------------------------------------------------------------------------------------------
// Mock model server

async fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the mock upstream");
    let addr = listener.local_addr().expect("mock upstream address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                    .await;
            });
        }
    });
    addr
}

/// Reads the whole request, then answers with the fixed 1 KiB document.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    request.into_body().collect().await?;
    let mut response = Response::new(Full::new(RESPONSE_BODY.clone()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Load generator

type Failure = Box<dyn std::error::Error + Send + Sync>;
type Sender = SendRequest<Full<Bytes>>;

#[derive(Clone)]
struct Endpoint {
    addr: SocketAddr,
    host: HeaderValue,
}

impl Endpoint {
    fn new(addr: SocketAddr) -> Self {
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header");
        Self { addr, host }
    }
}

async fn connect(endpoint: &Endpoint) -> Result<Sender, Failure> {
    let stream = TcpStream::connect(endpoint.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn connect_all(endpoint: &Endpoint, connections: usize) -> Vec<Option<Sender>> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(endpoint).await.ok());
    }
    senders
}

/// Makes `slot` hold a connection that can take a request now, reconnecting if it has none.
async fn ensure_ready(endpoint: &Endpoint, slot: &mut Option<Sender>) -> Result<(), Failure> {
    let sender = match slot {
        Some(sender) => sender,
        None => slot.insert(connect(endpoint).await?),
    };
    if let Err(error) = sender.ready().await {
        *slot = None;
        return Err(error.into());
    }
    Ok(())
}

/// One POST of the 1 KiB request; succeeds only on a 200 with the whole 1 KiB answer read.
async fn exchange(sender: &mut Sender, endpoint: &Endpoint) -> Result<(), Failure> {
    let mut request = Request::new(Full::new(REQUEST_BODY.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static(REQUEST_PATH);
    let headers = request.headers_mut();
    headers.insert(HOST, endpoint.host.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        return Err(format!("status {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    if body.len() != PAYLOAD_BYTES {
        return Err(format!("response body of {} bytes", body.len()).into());
    }
    Ok(())
}

async fn get_status(endpoint: &Endpoint, path: &'static str) -> Result<StatusCode, Failure> {
    let mut sender = connect(endpoint).await?;
    sender.ready().await?;
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static(path);
    request.headers_mut().insert(HOST, endpoint.host.clone());
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// What one run (or slice of a run) measured.
struct Sample {
    latencies: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// driftwatch's resident set near the end of a closed loop, KiB (largest over the slices).
    rss_kib: Option<u64>,
    /// User and system CPU time of the proxy's processes while the load ran.
    cpu: Option<Duration>,
}

impl Sample {
    fn new() -> Self {
        Self {
            latencies: Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3)
                .expect("valid histogram bounds"),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            rss_kib: None,
            cpu: None,
        }
    }

    fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latencies.saturating_record(nanos.max(1));
    }

    fn fail(&mut self, error: impl ToString) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    /// Adds a slice that ran concurrently (`elapsed` is kept) or after this one (`elapsed` adds up).
    fn merge(&mut self, other: Sample, sequential: bool) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms share bounds");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        if sequential {
            self.elapsed += other.elapsed;
            self.cpu = match (self.cpu, other.cpu) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
        }
        self.rss_kib = self.rss_kib.max(other.rss_kib);
    }

    fn rps(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.latencies.len() as f64 / seconds
        } else {
            0.0
        }
    }

    fn cpu_per_request(&self) -> Option<f64> {
        let requests = self.latencies.len();
        self.cpu
            .filter(|_| requests > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64)
    }

    fn micros(&self, quantile: f64) -> f64 {
        self.latencies.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Runs `drive` against `target` and notes the CPU time the target's processes spent meanwhile.
fn with_cpu(target: &Target, drive: impl FnOnce(&Target) -> Sample) -> Sample {
    let before = target.cpu();
    let mut sample = drive(target);
    sample.cpu = before
        .zip(target.cpu())
        .map(|(before, after)| after.saturating_sub(before));
    sample
}

/// Runs `drive` for every target in slices of about [`SLICE`], round-robin with a rotating first
/// target, and merges each target's slices.
fn interleaved(
    targets: &[Target],
    duration: Duration,
    mode: &str,
    mut drive: impl FnMut(&Target, Duration) -> Sample,
) -> Vec<Sample> {
    let slices = u32::try_from(duration.as_millis() / SLICE.as_millis())
        .unwrap_or(MAX_SLICES)
        .clamp(1, MAX_SLICES);
    let slice = duration / slices;
    let mut merged: Vec<Sample> = targets.iter().map(|_| Sample::new()).collect();
    for round in 0..slices as usize {
        eprintln!(
            "load: {mode}, slice {}/{slices} of {slice:?} per target",
            round + 1
        );
        for offset in 0..targets.len() {
            let index = (round + offset) % targets.len();
            let sample = with_cpu(&targets[index], |target| drive(target, slice));
            merged[index].merge(sample, true);
        }
    }
    merged
}

/// `connections` connections, each sending its next request as soon as the last answer is read.
/// When `rss_of` is set, that process's resident set is read shortly before the loop stops.
async fn closed_loop(
    endpoint: Endpoint,
    connections: usize,
    duration: Duration,
    rss_of: Option<u32>,
) -> Sample {
    let senders = connect_all(&endpoint, connections).await;
    let begin = Instant::now();
    let stop_at = begin + duration;
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(closed_worker(endpoint.clone(), sender, stop_at)))
        .collect();
    let rss_kib = match rss_of {
        Some(pid) => {
            tokio::time::sleep_until((stop_at - RSS_LEAD.min(duration / 2)).into()).await;
            resident_kib(pid)
        }
        None => None,
    };
    let mut total = Sample::new();
    for worker in workers {
        total.merge(worker.await.expect("closed-loop worker panicked"), false);
    }
    total.elapsed = begin.elapsed();
    total.rss_kib = rss_kib;
    total
}

async fn closed_worker(endpoint: Endpoint, mut sender: Option<Sender>, stop_at: Instant) -> Sample {
    let mut sample = Sample::new();
    while Instant::now() < stop_at {
        if let Err(error) = ensure_ready(&endpoint, &mut sender).await {
            sample.fail(error);
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        let Some(ready) = sender.as_mut() else {
            continue;
        };
        let start = Instant::now();
        match exchange(ready, &endpoint).await {
            Ok(()) => sample.record(start.elapsed()),
            Err(error) => {
                sample.fail(error);
                sender = None;
            }
        }
    }
    sample
}

/// The open loop's timetable: slot `i` is due at `begin + i / rate`. A pacer thread releases due
/// slots as semaphore permits; whichever connection is free claims the next one.
struct Schedule {
    begin: Instant,
    rate: f64,
    slots: u64,
    released: Semaphore,
    claimed: AtomicU64,
}

impl Schedule {
    fn due(&self, slot: u64) -> Instant {
        self.begin + Duration::from_secs_f64(slot as f64 / self.rate)
    }

    /// Releases slots as they fall due. A plain thread sleeps with ~50 µs slack where tokio's
    /// timer would round to the millisecond and send bursts.
    fn pace(&self) {
        let mut granted = 0;
        while granted < self.slots {
            let now = Instant::now();
            let next_due = self.due(granted);
            if next_due > now {
                std::thread::sleep(next_due - now);
                continue;
            }
            let due_now = ((now - self.begin).as_secs_f64() * self.rate) as u64 + 1;
            let due_now = due_now.clamp(granted + 1, self.slots);
            self.released
                .add_permits(usize::try_from(due_now - granted).expect("permits fit usize"));
            granted = due_now;
        }
    }

    /// The next due slot, or `None` once the schedule is over.
    async fn claim(&self) -> Option<u64> {
        self.released.acquire().await.ok()?.forget();
        let slot = self.claimed.fetch_add(1, Ordering::Relaxed);
        if slot + 1 >= self.slots {
            self.released.close();
        }
        Some(slot)
    }
}

/// Requests at a fixed `rate` over `connections` connections for `duration`.
async fn open_loop(
    endpoint: Endpoint,
    connections: usize,
    rate: f64,
    duration: Duration,
) -> Sample {
    let senders = connect_all(&endpoint, connections).await;
    let slots = ((duration.as_secs_f64() * rate).round() as u64).max(1);
    let schedule = Arc::new(Schedule {
        begin: Instant::now(),
        rate,
        slots,
        released: Semaphore::new(0),
        claimed: AtomicU64::new(0),
    });
    let pacer = {
        let schedule = Arc::clone(&schedule);
        tokio::task::spawn_blocking(move || schedule.pace())
    };
    let drain = {
        let schedule = Arc::clone(&schedule);
        tokio::spawn(async move {
            tokio::time::sleep_until((schedule.begin + duration + DRAIN).into()).await;
            schedule.released.close();
        })
    };
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(open_worker(endpoint.clone(), sender, Arc::clone(&schedule))))
        .collect();
    let mut total = Sample::new();
    for worker in workers {
        total.merge(worker.await.expect("open-loop worker panicked"), false);
    }
    total.elapsed = schedule.begin.elapsed();
    drain.abort();
    pacer.await.expect("pacer panicked");
    let unsent = slots.saturating_sub(schedule.claimed.load(Ordering::Relaxed));
    if unsent > 0 {
        total.errors += unsent;
        total.first_error.get_or_insert_with(|| {
            format!("{unsent} scheduled requests were never sent within {DRAIN:?} of the end")
        });
    }
    total
}

async fn open_worker(
    endpoint: Endpoint,
    mut sender: Option<Sender>,
    schedule: Arc<Schedule>,
) -> Sample {
    let mut sample = Sample::new();
    loop {
        let free_since = Instant::now();
        let Some(slot) = schedule.claim().await else {
            break;
        };
        let due = schedule.due(slot);
        if let Err(error) = ensure_ready(&endpoint, &mut sender).await {
            sample.fail(error);
            continue;
        }
        let Some(ready) = sender.as_mut() else {
            continue;
        };
        let sent = Instant::now();
        // A request that found every connection busy at its due time waited because of the
        // target: charge that wait. A connection that sat idle until the pacer woke it only
        // waited for the harness's own timer slack: count from the actual send.
        let start = if free_since <= due { sent } else { due };
        match exchange(ready, &endpoint).await {
            Ok(()) => sample.record(start.elapsed()),
            Err(error) => {
                sample.fail(error);
                sender = None;
            }
        }
    }
    sample
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report<'a> {
    knobs: &'a Knobs,
    rate: f64,
    targets: &'a [Target],
    closed: &'a [Sample],
    open: &'a [Sample],
    wide: Option<&'a Sample>,
    idle_rss: Option<u64>,
    notes: &'a [String],
}

impl Report<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let concurrency = self.knobs.concurrency;
        let _ = writeln!(out, "\n### Load: direct vs driftwatch vs nginx\n");
        let _ = writeln!(
            out,
            "Loopback, {cores} cores shared by all processes; 1 KiB JSON POST, 1 KiB JSON answer; \
             {:?} measured per target and mode after a {:?} warm-up, in interleaved slices. \
             Latencies in µs.\n",
            self.knobs.duration, self.knobs.warm_up
        );
        let _ = writeln!(
            out,
            "| target | load | rps | p50 | p90 | p99 | p99.9 | proxy CPU µs/req | errors |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        let closed_mode = format!("closed, {concurrency} conns");
        let open_mode = format!("open, {:.0} rps, {concurrency} conns", self.rate);
        for (target, sample) in self.targets.iter().zip(self.closed) {
            row(&mut out, target.name(), &closed_mode, sample);
        }
        for (target, sample) in self.targets.iter().zip(self.open) {
            row(&mut out, target.name(), &open_mode, sample);
        }
        if let Some(wide) = self.wide {
            let mode = format!("closed, {WIDE_CONNECTIONS} conns, {WIDE_DURATION:?}");
            row(&mut out, "driftwatch", &mode, wide);
        }

        let _ = writeln!(out, "\n| comparison | value |");
        let _ = writeln!(out, "|---|---:|");
        let ratio = |of: TargetKind, to: TargetKind| -> String {
            match (self.closed_of(of), self.closed_of(to)) {
                (Some(a), Some(b)) if b.rps() > 0.0 => format!("{:.2}", a.rps() / b.rps()),
                _ => "n/a".to_owned(),
            }
        };
        let added = |proxy: TargetKind, quantile: f64| -> String {
            match (self.open_of(proxy), self.open_of(TargetKind::Direct)) {
                (Some(a), Some(b)) => format!("{:+.1} µs", a.micros(quantile) - b.micros(quantile)),
                _ => "n/a".to_owned(),
            }
        };
        let _ = writeln!(
            out,
            "| throughput driftwatch / direct ({closed_mode}) | {} |",
            ratio(TargetKind::Driftwatch, TargetKind::Direct)
        );
        let _ = writeln!(
            out,
            "| throughput driftwatch / nginx ({closed_mode}) | {} |",
            ratio(TargetKind::Driftwatch, TargetKind::Nginx)
        );
        let _ = writeln!(
            out,
            "| throughput nginx / direct ({closed_mode}) | {} |",
            ratio(TargetKind::Nginx, TargetKind::Direct)
        );
        for proxy in [TargetKind::Driftwatch, TargetKind::Nginx] {
            for (label, quantile) in [("p50", 0.5), ("p99", 0.99)] {
                let _ = writeln!(
                    out,
                    "| added latency {label}, {} − direct ({open_mode}) | {} |",
                    proxy.name(),
                    added(proxy, quantile)
                );
            }
        }

        if self.closed_of(TargetKind::Driftwatch).is_some() {
            let mib = |kib: Option<u64>| {
                kib.map_or_else(
                    || "n/a".to_owned(),
                    |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
                )
            };
            let _ = writeln!(out, "\n| driftwatch resident memory (VmRSS) | value |");
            let _ = writeln!(out, "|---|---:|");
            let _ = writeln!(out, "| idle, before load | {} |", mib(self.idle_rss));
            let _ = writeln!(
                out,
                "| {concurrency} connections, end of closed loop (largest slice) | {} |",
                mib(self
                    .closed_of(TargetKind::Driftwatch)
                    .and_then(|s| s.rss_kib))
            );
            let _ = writeln!(
                out,
                "| {WIDE_CONNECTIONS} connections, end of closed loop | {} |",
                mib(self.wide.and_then(|s| s.rss_kib))
            );
        }

        let errors = self
            .targets
            .iter()
            .zip(self.closed)
            .map(|(target, sample)| (target, "closed", sample))
            .chain(
                self.targets
                    .iter()
                    .zip(self.open)
                    .map(|(target, sample)| (target, "open", sample)),
            )
            .filter_map(|(target, mode, sample)| {
                let error = sample.first_error.as_ref()?;
                Some(format!(
                    "{} {mode}: {} errors, first: {error}",
                    target.name(),
                    sample.errors
                ))
            })
            .chain(self.wide.and_then(|wide| {
                let error = wide.first_error.as_ref()?;
                Some(format!(
                    "driftwatch {WIDE_CONNECTIONS} conns: {} errors, first: {error}",
                    wide.errors
                ))
            }));
        let notes: Vec<String> = self.notes.iter().cloned().chain(errors).collect();
        if !notes.is_empty() {
            let _ = writeln!(out);
            for note in notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }

    fn closed_of(&self, kind: TargetKind) -> Option<&Sample> {
        self.sample_of(kind, self.closed)
    }

    fn open_of(&self, kind: TargetKind) -> Option<&Sample> {
        self.sample_of(kind, self.open)
    }

    fn sample_of<'s>(&self, kind: TargetKind, samples: &'s [Sample]) -> Option<&'s Sample> {
        self.targets
            .iter()
            .zip(samples)
            .find(|(target, _)| target.kind == kind)
            .map(|(_, sample)| sample)
    }
}

fn row(out: &mut String, target: &str, mode: &str, sample: &Sample) {
    let _ = writeln!(
        out,
        "| {target} | {mode} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
        sample.rps(),
        sample.micros(0.5),
        sample.micros(0.9),
        sample.micros(0.99),
        sample.micros(0.999),
        sample
            .cpu_per_request()
            .map_or_else(|| "–".to_owned(), |micros| format!("{micros:.1}")),
        sample.errors
    );
}
