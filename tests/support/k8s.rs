//! Kubernetes packaging test support: the offline tools the chart and monitoring tests shell out to
//! (the Helm Go SDK, kubernetes-validate and the Prometheus Operator CRD schemas through
//! `tests/k8s/k8s_tools.py` in the test-tools venv; Debian's `promtool`, `amtool` and
//! `prometheus`), a real Prometheus on 127.0.0.1 stopped on drop, and the PromQL and exposition
//! readers of the "every metric exists" check.
//!
//! A missing tool fails the test with what installs it; nothing is skipped.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{body_bytes, get, http1_client};

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Reads a repository file (panics with its path).
pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// Parses YAML (one document) into JSON values.
pub fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|error| panic!("invalid YAML: {error}\n{text}"))
}

/// The test-tools venv's python, where `scripts/test` installs tests/tools/requirements.txt.
pub fn tools_python() -> PathBuf {
    let python = super::kafka::tools_venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, which creates the test-tools venv from \
         tests/tools/requirements.txt (helm-python-sdk, kubernetes-validate, \
         cloudcoil-models-prometheus-operator, dockerfile)",
        python.display()
    );
    python
}

/// Runs `tests/k8s/k8s_tools.py ARGS` and returns the JSON it prints.
pub fn k8s_tools<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Value {
    let output = Command::new(tools_python())
        .arg(repo("tests/k8s/k8s_tools.py"))
        .args(args)
        .output()
        .expect("run the test-tools python");
    assert!(
        output.status.success(),
        "k8s_tools.py {:?} failed (run scripts/test to install the test tools):\n{}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "k8s_tools.py printed no JSON ({error}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A system tool from a Debian package; the message says which package when it is missing.
pub fn system_tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} not found on PATH: install Debian's {package} (scripts/test installs it: \
             apt-get install {package})"
        )
    })
}

/// Runs a command to completion and asserts it succeeded; returns its output.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A free port on 127.0.0.1 (released before use: the same small race every test with child
/// processes accepts).
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap()
}

/// A real Prometheus (`/usr/bin/prometheus` from Debian's `prometheus`) on 127.0.0.1, with its
/// own config and storage in a temporary directory; killed and reaped on drop.
pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML; rule file paths relative to `dir()` are fine once
    /// written with `write_file`) and waits (bounded, 30s) until `/-/ready` answers 200.
    pub async fn start(config: &str, files: &[(&str, String)]) -> Self {
        let binary = system_tool("prometheus", "prometheus");
        let dir = tempfile::tempdir().expect("Prometheus directory");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write a Prometheus file");
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write prometheus.yml");
        let addr = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .current_dir(dir.path())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Self { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log());
            }
            if let Ok((200, _)) = prometheus.get("/-/ready").await {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30s:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn get(&self, path_and_query: &str) -> Result<(u16, Value), String> {
        let url = format!("http://{}{path_and_query}", self.addr);
        let response = http1_client()
            .request(get(&url))
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let body = body_bytes(response).await;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// `GET /api/v1/alerts`: every pending or firing alert.
    pub async fn alerts(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/alerts").await.expect("alerts API");
        assert_eq!(status, 200, "alerts API: {body}");
        body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `GET /api/v1/query?query=EXPR`: the whole answer (status, data or error).
    pub async fn query(&self, expr: &str) -> Value {
        let (_, body) = self
            .get(&format!("/api/v1/query?query={}", percent_encode(expr)))
            .await
            .expect("query API");
        body
    }

    /// `GET /api/v1/targets`: the active scrape targets.
    pub async fn targets(&self) -> Vec<Value> {
        let (_, body) = self.get("/api/v1/targets").await.expect("targets API");
        body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value (everything but RFC 3986 unreserved characters).
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The rule files with every `for:` cut to 1s and every group interval to 1s, so a test
/// Prometheus evaluating each second shows in seconds what production shows in minutes.
pub fn fast_rules(rules: &str) -> String {
    rules
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            if trimmed.starts_with("for: ") {
                format!("{indent}for: 1s")
            } else if trimmed.starts_with("interval: ") {
                format!("{indent}interval: 1s")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// PromQL keywords and aggregation operators: identifiers that are not metric names (an
/// aggregation may be followed by `by (...)` instead of its parenthesis).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names (and recording-rule names) a PromQL expression selects.
///
/// A small reader, enough for the shipped rules and dashboard: string literals, label matchers
/// `{...}`, ranges `[...]` and the label lists of `by`/`without`/`on`/`ignoring`/`group_*` are
/// removed; what remains that is an identifier, not a keyword, and not followed by `(` (a
/// function or aggregation) is a metric name. Grafana's `label_values(metric{...}, label)`
/// contributes its metric.
pub fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut text = String::new();
    // Strings and label matchers out (label values may contain anything).
    let mut chars = expr.chars().peekable();
    let mut depth_brace = 0usize;
    let mut depth_bracket = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let quote = c;
                while let Some(inner) = chars.next() {
                    if inner == '\\' && quote != '`' {
                        chars.next();
                    } else if inner == quote {
                        break;
                    }
                }
                text.push(' ');
            }
            '{' => depth_brace += 1,
            '}' => depth_brace = depth_brace.saturating_sub(1),
            '[' => depth_bracket += 1,
            ']' => depth_bracket = depth_bracket.saturating_sub(1),
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            _ => text.push(c),
        }
    }
    let tokens = tokenize(&text);
    let mut index = 0;
    while index < tokens.len() {
        let token = &tokens[index];
        let next = tokens.get(index + 1).map(String::as_str);
        if token == "label_values" && next == Some("(") {
            if let Some(metric) = tokens.get(index + 2).filter(|t| is_identifier(t)) {
                names.insert(metric.clone());
            }
            // Skip to the closing parenthesis: the label argument is not a metric.
            while index < tokens.len() && tokens[index] != ")" {
                index += 1;
            }
        } else if matches!(
            token.as_str(),
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) && next == Some("(")
        {
            while index < tokens.len() && tokens[index] != ")" {
                index += 1;
            }
        } else if is_identifier(token) && next != Some("(") && !KEYWORDS.contains(&token.as_str()) {
            names.insert(token.clone());
        }
        index += 1;
    }
    names
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
}

/// Identifiers and numbers (with the letters of durations and exponents attached), and every
/// other non-space character as its own token.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' || c == '$' {
            current.push(c);
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Every series name an exposition can hold: each `# TYPE` family, plus `_bucket`, `_sum` and
/// `_count` of histograms and summaries.
pub fn exposition_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let mut fields = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        {
            names.insert(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// Every PromQL expression in the shipped rule files: `(file, rule name, expr)`.
pub fn rule_expressions(path: &str) -> Vec<(String, String, String)> {
    let rules = yaml(&read(path));
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .expect("alert or record name");
            let expr = rule["expr"].as_str().expect("expr");
            out.push((path.to_owned(), name.to_owned(), expr.to_owned()));
        }
    }
    out
}

/// Every PromQL expression of the dashboard: panel targets, template variable queries and
/// annotation queries, as `(where, expr)`.
pub fn dashboard_expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {:?}", panel["title"].as_str().unwrap_or("")),
                target["expr"].as_str().expect("target expr").to_owned(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] == "query" {
            let query = variable["query"]["query"]
                .as_str()
                .or_else(|| variable["query"].as_str())
                .expect("variable query");
            out.push((format!("variable {}", variable["name"]), query.to_owned()));
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .expect("annotations")
    {
        if let Some(expr) = annotation["expr"].as_str() {
            out.push((
                format!("annotation {}", annotation["name"]),
                expr.to_owned(),
            ));
        }
    }
    out
}

/// A dashboard expression with Grafana's variables replaced by what "All" means, so Prometheus
/// can evaluate it.
pub fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$namespace", ".*")
        .replace("$model", ".*")
        .replace("$column", ".*")
        .replace("$route", ".*")
        .replace("$statistic", "psi")
}
