//! The monitoring stack of SPEC §12 against real tools: the alerting and recording rules of
//! deploy/prometheus/ pass `promtool check rules` and their unit tests (every alert fires on its
//! condition and stays silent otherwise), every alert is documented in docs/runbooks.md, the
//! Alertmanager example passes `amtool` and routes by team and severity, every metric the rules
//! and the Grafana dashboard use exists in a live driftwatch's /metrics, and a real Prometheus
//! scraping a real driftwatch with the shipped rules loaded raises the drift alerts when drift is
//! injected, and answers every dashboard query.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use driftwatch::config::ConfigFile;
use driftwatch::demo::model::serve;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use support::collector::{Collector, Mode};
use support::k8s::{
    Prometheus, dashboard_expressions, exposition_names, fast_rules, grafana_to_promql,
    promql_metric_names, read, repo, rule_expressions, run_ok, system_tool, yaml,
};
use support::{Running, http1_client, metric_value};

const ALERTS: &str = "deploy/prometheus/alerts.yml";
const RECORDING: &str = "deploy/prometheus/recording-rules.yml";
const ALERT_TESTS: &str = "deploy/prometheus/alerts.test.yml";
const DASHBOARD: &str = "deploy/grafana/driftwatch-dashboard.json";
const ALERTMANAGER: &str = "deploy/alertmanager/alertmanager.yml";
const RUNBOOKS: &str = "docs/runbooks.md";
/// The base of every `runbook_url`; the chart's `monitoring.prometheusRule.runbookBaseUrl`
/// replaces it.
const RUNBOOK_BASE: &str = "https://github.com/OWNER/driftwatch/blob/main/docs/runbooks.md";

/// Metrics of SPEC §11 that the rules and dashboard already use but driftwatch does not export
/// yet: they are being built with the feedback ([feedback]) and exploration ([explore]) work.
/// Remove each name here when its metric lands; the consistency test then checks it too.
const NOT_YET_EXPORTED: &[&str] = &[
    // Feedback (SPEC §8, §11).
    "driftwatch_feedback_total",
    "driftwatch_feedback_delay_seconds",
    "driftwatch_model_performance",
    "driftwatch_concept_drift_detected",
    // Exploration and diversity (SPEC §9, §11).
    "driftwatch_exploration_decisions_total",
    "driftwatch_propensity",
    "driftwatch_recs_exposure_gini",
    "driftwatch_recs_entropy_bits",
    "driftwatch_recs_effective_items",
    "driftwatch_recs_distinct_items",
    "driftwatch_recs_catalog_coverage",
    "driftwatch_recs_head_share",
    "driftwatch_recs_long_tail_share",
    "driftwatch_recs_list_overlap",
    "driftwatch_recs_homogenization",
];

/// Series Prometheus makes itself.
const PROMETHEUS_SERIES: [&str; 1] = ["ALERTS"];

/// SPEC §12's alert conditions and the alerts that cover each.
const SPEC_CONDITIONS: [(&str, &[&str]); 13] = [
    (
        "feature drift",
        &["DriftwatchFeatureDrift", "DriftwatchFleetFeatureDrift"],
    ),
    ("dataset drift", &["DriftwatchDatasetDrift"]),
    ("prediction drift", &["DriftwatchPredictionDrift"]),
    (
        "data-quality rates",
        &[
            "DriftwatchMissingValues",
            "DriftwatchInvalidValues",
            "DriftwatchPayloadUnreadable",
        ],
    ),
    ("outlier rate", &["DriftwatchOutlierRate"]),
    ("performance drop", &["DriftwatchPerformanceDrop"]),
    ("concept drift", &["DriftwatchConceptDrift"]),
    ("homogenization", &["DriftwatchHomogenization"]),
    ("error rate", &["DriftwatchHighErrorRate"]),
    ("latency", &["DriftwatchHighLatency"]),
    ("upstream down", &["DriftwatchUpstreamDown"]),
    (
        "records dropped",
        &["DriftwatchRecordsDropped", "DriftwatchRecordsFailed"],
    ),
    ("sink spooling", &["DriftwatchSinkSpooling"]),
];

fn not_yet_exported(name: &str) -> bool {
    NOT_YET_EXPORTED.iter().any(|family| {
        name == *family
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name == format!("{family}{suffix}"))
    })
}

/// Every alerting rule: name -> the rule.
fn alert_rules() -> BTreeMap<String, Value> {
    let rules = yaml(&read(ALERTS));
    let mut alerts = BTreeMap::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            assert!(
                alerts.insert(name.clone(), rule.clone()).is_none(),
                "{name} defined twice"
            );
        }
    }
    alerts
}

#[test]
fn promql_reader_finds_metric_names() {
    let names = promql_metric_names(
        r#"sum by (model, le) (rate(driftwatch_http_request_duration_seconds_bucket{model=~"a|b", x="}"}[5m] offset 1d))
           / on (namespace) group_left sum by (namespace) (rate(driftwatch_http_requests_total[$__rate_interval])) > 0.1
           and driftwatch:fleet_psi:1h{role="input"} unless label_values(driftwatch_build_info{namespace=~"$namespace"}, namespace)"#,
    );
    let expected: BTreeSet<String> = [
        "driftwatch:fleet_psi:1h",
        "driftwatch_build_info",
        "driftwatch_http_request_duration_seconds_bucket",
        "driftwatch_http_requests_total",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let promtool = system_tool("promtool", "prometheus");
    run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(repo(ALERTS))
            .arg(repo(RECORDING)),
    );
    let output = run_ok(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(repo(ALERT_TESTS)),
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("SUCCESS"),
        "promtool test rules: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn every_alert_has_a_unit_test_that_fires_and_one_that_stays_silent() {
    let alerts = alert_rules();
    let tests = yaml(&read(ALERT_TESTS));
    let rule_files: Vec<&str> = tests["rule_files"]
        .as_array()
        .expect("rule_files")
        .iter()
        .map(|file| file.as_str().unwrap())
        .collect();
    assert_eq!(rule_files, ["alerts.yml", "recording-rules.yml"]);
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            assert!(
                alerts.contains_key(&name),
                "a test for unknown alert {name}"
            );
            match case["exp_alerts"].as_array() {
                Some(expected) if !expected.is_empty() => {
                    // A firing case states the labels and the rendered annotations.
                    for alert in expected {
                        assert!(alert["exp_annotations"]["summary"].is_string(), "{name}");
                        assert!(
                            alert["exp_annotations"]["runbook_url"].is_string(),
                            "{name}"
                        );
                    }
                    fires.insert(name);
                }
                _ => {
                    silent.insert(name);
                }
            }
        }
    }
    for name in alerts.keys() {
        assert!(fires.contains(name), "no unit test where {name} fires");
        assert!(
            silent.contains(name),
            "no unit test where {name} stays silent"
        );
    }
}

#[test]
fn every_alert_is_labelled_annotated_and_has_a_runbook() {
    let alerts = alert_rules();
    let runbooks = read(RUNBOOKS);
    for (name, rule) in &alerts {
        let severity = rule["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        let team = rule["labels"]["team"].as_str().unwrap_or("");
        assert!(["ml", "platform"].contains(&team), "{name}: team {team:?}");
        for key in ["summary", "description", "runbook_url"] {
            let text = rule["annotations"][key].as_str().unwrap_or("");
            assert!(!text.trim().is_empty(), "{name}: no {key}");
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = name.to_lowercase();
        assert_eq!(
            url,
            format!("{RUNBOOK_BASE}#{anchor}"),
            "{name}: runbook_url"
        );
        // GitHub's anchor of "## DriftwatchX" is "#driftwatchx".
        let heading = format!("\n## {name}\n");
        let start = runbooks
            .find(&heading)
            .unwrap_or_else(|| panic!("{RUNBOOKS} has no section {heading:?}"));
        let section = &runbooks[start + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for part in [
            "**What it means.**",
            "**How to investigate.**",
            "**How to fix.**",
        ] {
            assert!(section.contains(part), "{RUNBOOKS} {name}: no {part}");
        }
    }
    for line in runbooks.lines() {
        if let Some(title) = line.strip_prefix("## Driftwatch") {
            assert!(
                alerts.contains_key(&format!("Driftwatch{title}")),
                "{RUNBOOKS}: a runbook for no alert: {line}"
            );
        }
    }
    for (condition, covering) in SPEC_CONDITIONS {
        for name in covering {
            assert!(
                alerts.contains_key(*name),
                "SPEC §12 {condition}: alert {name} missing"
            );
        }
    }
}

#[test]
fn alertmanager_example_is_valid_and_routes_by_team_and_severity() {
    let amtool = system_tool("amtool", "prometheus-alertmanager");
    run_ok(
        Command::new(&amtool)
            .arg("check-config")
            .arg(repo(ALERTMANAGER)),
    );
    let expected = |team: &str, severity: &str| match (team, severity) {
        ("ml", "critical") => "ml-pager,ml-chat",
        ("ml", "warning") => "ml-chat",
        ("ml", "info") => "ml-feed",
        ("platform", "critical") => "platform-pager,platform-chat",
        ("platform", "warning") => "platform-chat",
        other => panic!("no route expected for {other:?}"),
    };
    for (name, rule) in alert_rules() {
        let team = rule["labels"]["team"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str().unwrap();
        let output = run_ok(
            Command::new(&amtool)
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", repo(ALERTMANAGER).display()))
                .arg(format!("alertname={name}"))
                .arg(format!("team={team}"))
                .arg(format!("severity={severity}"))
                .arg("namespace=ml")
                .arg("model=iris"),
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected(team, severity),
            "{name} ({team}, {severity}) is routed"
        );
    }
}

/// A driftwatch that has seen every kind of traffic the rules and dashboard watch, in front of
/// the demo's iris model server: a learned reference, a window without drift and a window with
/// it, an outlier, an unreadable payload, a 404, a file sink and an HTTP sink whose collector
/// refuses (so it retries and spools).
struct Populated {
    proxy: Running,
    model_server: tokio::task::JoinHandle<()>,
    _collector: Collector,
    _dir: tempfile::TempDir,
}

/// Rows per window and per learned reference.
const WINDOW_ROWS: usize = 200;

/// Deterministic iris-like rows: the reference distribution, or with petal length and width
/// shifted far enough that both columns drift (half of the inputs: dataset drift too).
fn iris_rows(count: usize, seed: u64, shifted: bool) -> Vec<[f64; 4]> {
    let mut state = seed;
    let mut uniform = move |low: f64, high: f64| {
        // splitmix64: a fixed, dependency-free sequence.
        state = state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^= z >> 31;
        low + (high - low) * ((z >> 11) as f64 / (1u64 << 53) as f64)
    };
    (0..count)
        .map(|_| {
            let shift = if shifted { 3.0 } else { 0.0 };
            [
                uniform(4.5, 7.5),
                uniform(2.2, 4.2),
                uniform(1.0, 6.5) + shift,
                uniform(0.1, 2.4) + shift / 2.0,
            ]
        })
        .collect()
}

async fn infer(proxy: &Running, rows: &[[f64; 4]]) {
    for batch in rows.chunks(50) {
        let data: Vec<String> = batch
            .iter()
            .map(|row| format!("[{},{},{},{}]", row[0], row[1], row[2], row[3]))
            .collect();
        let body = format!(
            r#"{{"inputs":[{{"name":"predict","shape":[{},4],"datatype":"FP64","data":[{}]}}]}}"#,
            batch.len(),
            data.join(",")
        );
        post(proxy, "/v2/models/iris/infer", body).await;
    }
}

async fn post(proxy: &Running, path: &str, body: String) -> u16 {
    let request = Request::post(proxy.url(path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = http1_client()
        .request(request)
        .await
        .expect("proxy answers");
    let status = response.status().as_u16();
    support::body_bytes(response).await;
    status
}

/// Polls `/metrics` (bounded) until `series` equals `value`.
async fn wait_for_series(proxy: &Running, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exposition = proxy.metrics().await;
        if metric_value(&exposition, series) == value && exposition.contains(series) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} did not become {value} within 20s:\n{exposition}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const PETAL_LENGTH_DRIFT: &str =
    r#"driftwatch_drift_detected{model="iris",column="petal_length",role="input"}"#;

impl Populated {
    /// Starts it and sends the reference rows and one window without drift.
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let model_addr = listener.local_addr().unwrap();
        let model_server = tokio::spawn(serve(listener));
        let collector = Collector::start(Mode::Reject(503)).await;
        let dir = tempfile::tempdir().unwrap();
        let mut file = ConfigFile::parse(&format!(
            r#"
upstream: {{url: "http://{model_addr}"}}
recording: {{sample_rate: 1.0}}
sinks:
  - {{type: file, path: "{records}"}}
  - type: http
    url: "{collector}"
    batch: {{max_records: 20, max_delay: 20ms}}
    retry: {{initial: 20ms, max: 200ms}}
    timeout: 500ms
    spool: {{dir: "{spool}", max_bytes: 16MiB}}
models:
  - name: iris
    inputs: {{names: [sepal_length, sepal_width, petal_length, petal_width]}}
    outputs: {{names: [class]}}
    learn_reference: {{samples: {WINDOW_ROWS}}}
monitoring:
  window: {{samples: {WINDOW_ROWS}}}
  min_samples: 100
"#,
            records = dir.path().join("records.jsonl").display(),
            collector = collector.url(),
            spool = dir.path().join("spool").display(),
        ))
        .expect("the test config parses");
        let test = support::test_config(model_addr);
        file.listen = test.listen;
        file.admin.listen = test.admin.listen;
        file.shutdown = test.shutdown;
        let proxy = Running::start(file).await;

        // The learned reference, then a window like it.
        infer(&proxy, &iris_rows(WINDOW_ROWS, 1, false)).await;
        infer(&proxy, &iris_rows(WINDOW_ROWS, 2, false)).await;
        wait_for_series(&proxy, PETAL_LENGTH_DRIFT, 0.0).await;
        // An outlier row, an unreadable payload, a path the model server does not know.
        infer(&proxy, &[[5.0, 3.0, 400.0, 1.0]]).await;
        assert_eq!(
            post(&proxy, "/v2/models/iris/infer", "not json".into()).await,
            400
        );
        let response = http1_client()
            .request(support::get(&proxy.url("/nowhere")))
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        Self {
            proxy,
            model_server,
            _collector: collector,
            _dir: dir,
        }
    }

    /// Sends a window of shifted rows and waits until driftwatch reports the drift.
    async fn inject_drift(&self) {
        // The window in progress holds the outlier row; fill it with shifted rows.
        infer(&self.proxy, &iris_rows(WINDOW_ROWS, 3, true)).await;
        wait_for_series(&self.proxy, PETAL_LENGTH_DRIFT, 1.0).await;
    }
}

impl Drop for Populated {
    fn drop(&mut self) {
        self.model_server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboard_use_exists_in_live_metrics() {
    let driftwatch = Populated::start().await;
    driftwatch.inject_drift().await;
    // The HTTP sink's collector refuses: wait until it spooled, so every sink series exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_value(
        &driftwatch.proxy.metrics().await,
        r#"driftwatch_records_total{sink="http",outcome="spooled"}"#,
    ) == 0.0
    {
        assert!(Instant::now() < deadline, "the http sink never spooled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = exposition_names(&driftwatch.proxy.metrics().await);

    let recorded: BTreeSet<String> = rule_expressions(RECORDING)
        .into_iter()
        .map(|(_, name, _)| name)
        .collect();
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut uses: Vec<(String, String)> = Vec::new();
    for (file, rule, expr) in rule_expressions(ALERTS)
        .into_iter()
        .chain(rule_expressions(RECORDING))
    {
        for name in promql_metric_names(&expr) {
            uses.push((format!("{file} {rule}"), name));
        }
    }
    for (place, expr) in dashboard_expressions(&dashboard) {
        for name in promql_metric_names(&expr) {
            uses.push((format!("{DASHBOARD} {place}"), name));
        }
    }
    assert!(uses.len() > 50, "the reader found the metrics: {uses:?}");

    let mut missing = Vec::new();
    let mut waiting = BTreeSet::new();
    for (place, name) in &uses {
        if name.contains(':') {
            if !recorded.contains(name) {
                missing.push(format!("{place}: {name} is recorded by no rule"));
            }
        } else if PROMETHEUS_SERIES.contains(&name.as_str()) || live.contains(name) {
            continue;
        } else if not_yet_exported(name) {
            waiting.insert(name.clone());
        } else {
            missing.push(format!("{place}: {name} is not in /metrics"));
        }
    }
    assert!(
        missing.is_empty(),
        "metrics used but not exported:\n{}\n\nlive families: {live:?}",
        missing.join("\n")
    );
    let landed: Vec<&str> = NOT_YET_EXPORTED
        .iter()
        .copied()
        .filter(|name| live.contains(*name))
        .collect();
    if !landed.is_empty() {
        eprintln!("now exported, remove from NOT_YET_EXPORTED: {landed:?}");
    }
    eprintln!("used but not exported yet (allowed): {waiting:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_raises_the_drift_alerts_and_answers_every_dashboard_query() {
    let driftwatch = Populated::start().await;
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - alerts.yml
  - recording-rules.yml
scrape_configs:
  - job_name: driftwatch
    static_configs:
      - targets: ["{admin}"]
        labels: {{namespace: ml, pod: iris-0}}
"#,
        admin = driftwatch.proxy.admin,
    );
    let prometheus = Prometheus::start(
        &config,
        &[
            ("alerts.yml", fast_rules(&read(ALERTS))),
            ("recording-rules.yml", fast_rules(&read(RECORDING))),
        ],
    )
    .await;

    let drift_alerts = |alerts: &[Value]| -> Vec<(String, String, String)> {
        alerts
            .iter()
            .filter(|alert| {
                alert["labels"]["alertname"].as_str().is_some_and(|name| {
                    matches!(
                        name,
                        "DriftwatchFeatureDrift"
                            | "DriftwatchDatasetDrift"
                            | "DriftwatchPredictionDrift"
                            | "DriftwatchFleetFeatureDrift"
                    )
                })
            })
            .map(|alert| {
                (
                    alert["labels"]["alertname"].as_str().unwrap().to_owned(),
                    alert["labels"]["column"].as_str().unwrap_or("").to_owned(),
                    alert["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };

    // Scraped, rules evaluated a few times over the window without drift: no drift alert.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let targets = prometheus.targets().await;
        let scraped = prometheus
            .query(r#"driftwatch_drift_detected{column="petal_length"}"#)
            .await;
        if targets.iter().any(|target| target["health"] == "up")
            && scraped["data"]["result"]
                .as_array()
                .is_some_and(|result| !result.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape driftwatch: {targets:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = drift_alerts(&prometheus.alerts().await);
    assert!(
        before.is_empty(),
        "drift alerts before any drift: {before:?}"
    );

    driftwatch.inject_drift().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected = [
        (
            "DriftwatchFeatureDrift".to_owned(),
            "petal_length".to_owned(),
            "firing".to_owned(),
        ),
        (
            "DriftwatchFeatureDrift".to_owned(),
            "petal_width".to_owned(),
            "firing".to_owned(),
        ),
        (
            "DriftwatchDatasetDrift".to_owned(),
            String::new(),
            "firing".to_owned(),
        ),
    ];
    let firing = loop {
        let alerts = prometheus.alerts().await;
        let found = drift_alerts(&alerts);
        if expected.iter().all(|alert| found.contains(alert)) {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "drift alerts not firing within 60s: {found:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let feature = firing
        .iter()
        .find(|alert| {
            alert["labels"]["alertname"] == "DriftwatchFeatureDrift"
                && alert["labels"]["column"] == "petal_length"
        })
        .unwrap();
    assert_eq!(feature["labels"]["model"], "iris");
    assert_eq!(feature["labels"]["namespace"], "ml");
    assert_eq!(feature["labels"]["severity"], "warning");
    assert_eq!(feature["labels"]["team"], "ml");
    assert!(
        feature["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("petal_length"),
        "{feature}"
    );
    // Inputs that did not move raise nothing.
    let found = drift_alerts(&firing);
    assert!(
        !found.iter().any(
            |(name, column, _)| name == "DriftwatchFeatureDrift" && column.starts_with("sepal")
        ),
        "unshifted columns alerted: {found:?}"
    );

    // Every dashboard query is PromQL this Prometheus evaluates; the core panels show data.
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut empty = BTreeSet::new();
    for (place, expr) in dashboard_expressions(&dashboard) {
        if place.starts_with("variable") {
            continue;
        }
        let promql = grafana_to_promql(&expr);
        let answer = prometheus.query(&promql).await;
        assert_eq!(answer["status"], "success", "{place}: {promql}\n{answer}");
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|result| result.is_empty())
        {
            empty.insert(place);
        }
    }
    for place in [
        "panel \"Requests per second by model\"",
        "panel \"Request duration (p50, p90, p99)\"",
        "panel \"Drift score per column ($statistic)\"",
        "panel \"Drifted columns (last window)\"",
        "panel \"Dataset drift share\"",
        "panel \"Records by sink and outcome\"",
        "panel \"Resident memory\"",
    ] {
        assert!(!empty.contains(place), "{place} shows no data");
    }
}
