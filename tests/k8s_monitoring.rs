//! The monitoring stack of SPEC §12 against real tools: the alerting and recording rules of
//! deploy/prometheus/ pass `promtool check rules` and their unit tests (every alert fires on its
//! condition and stays silent otherwise), every alert is documented in docs/runbooks.md, the
//! Alertmanager example passes `amtool` and routes by team and severity, every metric the rules
//! and the Grafana dashboard use exists in a live driftwatch's /metrics, and a real Prometheus
//! scraping a real driftwatch with the shipped rules loaded raises the performance-below-baseline
//! alert for the undercut baseline only, raises the drift alerts when drift is injected, and
//! answers every dashboard query.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use driftwatch::config::ConfigFile;
use driftwatch::demo::model::{classify, serve};
use driftwatch::demo::recommender;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
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
    (
        "performance drop (day over day, and below a configured baseline)",
        &[
            "DriftwatchPerformanceDrop",
            "DriftwatchPerformanceBelowBaseline",
        ],
    ),
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
    // The runbooks only send people to what the admin port serves (src/admin/mod.rs).
    for (start, _) in runbooks.match_indices("localhost:8101") {
        let path: String = runbooks[start + "localhost:8101".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ['/', '_'].contains(c))
            .collect();
        assert!(
            [
                "/metrics",
                "/healthz",
                "/readyz",
                "/api/v1/config",
                "/api/v1/models",
                "/api/v1/drift",
                "/api/v1/performance",
                "/api/v1/diversity",
            ]
            .contains(&path.as_str())
                || path.starts_with("/api/v1/reference/"),
            "{RUNBOOKS} mentions {path:?}, which the admin port does not serve"
        );
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

/// The labels each alert carries when it fires (besides `alertname` and its static `severity`
/// and `team`), as its promtool unit tests state them (promtool checks them exactly).
fn alert_labels() -> BTreeMap<String, BTreeSet<String>> {
    let tests = yaml(&read(ALERT_TESTS));
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap();
            for alert in case["exp_alerts"].as_array().into_iter().flatten() {
                let keys = alert["exp_labels"].as_object().expect("exp_labels").keys();
                labels.entry(name.to_owned()).or_default().extend(
                    keys.filter(|key| !["severity", "team"].contains(&key.as_str()))
                        .cloned(),
                );
            }
        }
    }
    labels
}

/// The alerts an inhibit rule's matchers select by `alertname` (`=` or a `=~` alternation), or
/// `None` when they select on other labels.
fn alerts_matched(matchers: &Value, alerts: &BTreeMap<String, Value>) -> Option<Vec<String>> {
    let mut names = None;
    for matcher in matchers.as_array().expect("matchers") {
        let matcher = matcher.as_str().unwrap();
        let Some(value) = matcher.strip_prefix("alertname") else {
            continue;
        };
        let wanted: Vec<&str> = if let Some(pattern) = value.strip_prefix("=~") {
            let pattern = pattern.trim_matches('"');
            assert!(
                pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '|'),
                "only alternations of alert names: {matcher}"
            );
            pattern.split('|').collect()
        } else {
            vec![value.strip_prefix('=').expect("= or =~").trim_matches('"')]
        };
        for name in &wanted {
            assert!(alerts.contains_key(*name), "{matcher}: no alert {name}");
        }
        names = Some(wanted.into_iter().map(String::from).collect());
    }
    names
}

/// An inhibit rule between named alerts compares exactly the labels both alerts carry: fewer
/// would silence alerts of other models or pods (the audited `equal: [model]` across namespaces),
/// a label one side lacks would never match.
#[test]
fn alertmanager_inhibit_rules_compare_the_labels_both_alerts_carry() {
    let alerts = alert_rules();
    let labels = alert_labels();
    let config = yaml(&read(ALERTMANAGER));
    let mut checked = 0;
    for rule in config["inhibit_rules"].as_array().expect("inhibit_rules") {
        let equal: BTreeSet<String> = rule["equal"]
            .as_array()
            .expect("equal")
            .iter()
            .map(|label| label.as_str().unwrap().to_owned())
            .collect();
        let (Some(sources), Some(targets)) = (
            alerts_matched(&rule["source_matchers"], &alerts),
            alerts_matched(&rule["target_matchers"], &alerts),
        ) else {
            continue;
        };
        for source in &sources {
            for target in &targets {
                let shared: BTreeSet<String> = labels[source]
                    .intersection(&labels[target])
                    .cloned()
                    .collect();
                assert_eq!(
                    equal, shared,
                    "inhibit rule {source} -> {target}: `equal` should be the labels both carry"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 6,
        "the named inhibit rules were checked: {checked}"
    );
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
/// the demo's model server: a learned reference, a window without drift and a window with it,
/// ground-truth labels for the first two (live performance against two baselines, one of them
/// undercut; feedback delay, concept drift), an outlier, an unreadable payload, a 404,
/// recommendation lists on an exploration route (decisions, propensities, closed diversity
/// windows), a file sink and an HTTP sink whose collector refuses (so it retries and spools).
struct Populated {
    proxy: Running,
    model_server: tokio::task::JoinHandle<()>,
    _collector: Collector,
    _dir: tempfile::TempDir,
}

/// Rows per window and per learned reference; also labels per performance window.
const WINDOW_ROWS: usize = 200;
/// Rows per inference request.
const BATCH_ROWS: usize = 50;
/// The exploration route, over the demo recommender's `explore` variant.
const RECS_ROUTE: &str = "recs";
/// Shown lists per diversity window: small, so windows close after a few requests.
const DIVERSITY_WINDOW: usize = 20;
/// Users asking for lists, each several times: overlap compares lists of different users.
const USERS: usize = 7;

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

/// Sends the rows in requests of [`BATCH_ROWS`]; returns each request's id (its predictions wait
/// for labels under it).
async fn infer(proxy: &Running, rows: &[[f64; 4]]) -> Vec<String> {
    let mut request_ids = Vec::new();
    for batch in rows.chunks(BATCH_ROWS) {
        let data: Vec<String> = batch
            .iter()
            .map(|row| format!("[{},{},{},{}]", row[0], row[1], row[2], row[3]))
            .collect();
        let body = format!(
            r#"{{"inputs":[{{"name":"predict","shape":[{},4],"datatype":"FP64","data":[{}]}}]}}"#,
            batch.len(),
            data.join(",")
        );
        let (status, request_id) = post(proxy, "/v2/models/iris/infer", body).await;
        assert_eq!(status, 200, "inference through the proxy");
        request_ids.push(request_id);
    }
    request_ids
}

/// Posts a JSON body; returns the status and the exchange's `x-request-id`.
async fn post(proxy: &Running, path: &str, body: String) -> (u16, String) {
    let request = Request::post(proxy.url(path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = http1_client()
        .request(request)
        .await
        .expect("proxy answers");
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    support::body_bytes(response).await;
    (status, request_id)
}

/// The truth for predicted rows: the demo classifier's class, except every tenth row, where the
/// model is wrong (accuracy 0.9).
fn truth(rows: &[[f64; 4]]) -> Vec<i64> {
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let class = classify(row);
            if index % 10 == 9 {
                (class + 1) % 3
            } else {
                class
            }
        })
        .collect()
}

/// Labels the predictions of `rows`, sent as `request_ids` by [`infer`], through the admin
/// feedback API, once the analysis worker holds them all.
async fn label(proxy: &Running, request_ids: &[String], rows: &[[f64; 4]]) {
    let performance = proxy.admin_url("/api/v1/performance");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = http1_client()
            .request(support::get(&performance))
            .await
            .expect("admin answers");
        let report: Value = serde_json::from_slice(&support::body_bytes(response).await).unwrap();
        if report["pending"].as_u64() >= Some(request_ids.len() as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "predictions not remembered within 20s: {report}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let items: Vec<Value> = request_ids
        .iter()
        .zip(rows.chunks(BATCH_ROWS))
        .map(|(request_id, batch)| json!({"request_id": request_id, "labels": truth(batch)}))
        .collect();
    let request = Request::post(proxy.admin_url("/api/v1/feedback"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(Value::from(items).to_string())))
        .unwrap();
    let response = http1_client()
        .request(request)
        .await
        .expect("admin answers");
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(&support::body_bytes(response).await).unwrap();
    assert_eq!(
        answer["joined"].as_u64(),
        Some(request_ids.len() as u64),
        "every label joined: {answer}"
    );
}

/// Asks the recommender for `lists` lists on the exploration route, users taking turns.
async fn recommend(proxy: &Running, lists: usize) {
    for list in 0..lists {
        let user = list % USERS;
        let request = Request::get(proxy.url(&format!("/recommend/explore?user={user}")))
            .header("x-user-id", format!("user-{user}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = http1_client()
            .request(request)
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 200, "a recommendation through the proxy");
        support::body_bytes(response).await;
    }
}

/// Polls `/metrics` (bounded) until `series` is exported with a value `accept`s, described by
/// `wanted` for the failure message; returns the value.
async fn wait_until(
    proxy: &Running,
    series: &str,
    wanted: &str,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exposition = proxy.metrics().await;
        let value = metric_value(&exposition, series);
        if exposition.contains(series) && accept(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{series} was not {wanted} within 20s:\n{exposition}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/metrics` (bounded) until `series` equals `value`.
async fn wait_for_series(proxy: &Running, series: &str, value: f64) {
    wait_until(proxy, series, &value.to_string(), |v| v == value).await;
}

/// Polls `/metrics` (bounded) until `series` is above 0; returns its value.
async fn wait_for_positive(proxy: &Running, series: &str) -> f64 {
    wait_until(proxy, series, "above 0", |v| v > 0.0).await
}

const PETAL_LENGTH_DRIFT: &str =
    r#"driftwatch_drift_detected{model="iris",column="petal_length",role="input"}"#;
const ACCURACY_DROP: &str = r#"driftwatch_model_performance_drop{model="iris",metric="accuracy"}"#;
const F1_DROP: &str = r#"driftwatch_model_performance_drop{model="iris",metric="f1"}"#;

impl Populated {
    /// Starts it and sends the reference rows and one window without drift (both labelled), the
    /// odd requests, and three diversity windows of recommendation lists.
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
    outputs: {{names: [class], task: classification}}
    learn_reference: {{samples: {WINDOW_ROWS}}}
monitoring:
  window: {{samples: {WINDOW_ROWS}}}
  min_samples: 100
feedback:
  baselines:
    - {{model: iris, metric: accuracy, value: 0.85, margin: 0.05}}
    - {{model: iris, metric: f1, value: 0.99, margin: 0.05}}
exploration:
  - name: {RECS_ROUTE}
    match: {{path_prefix: /recommend/explore}}
    list: /items
    id: /id
    score: /score
    strategy: epsilon_greedy
    epsilon: 0.2
    candidates: 20
    unit: {{header: x-user-id}}
    catalog_size: {catalog}
    diversity_window: {DIVERSITY_WINDOW}
"#,
            catalog = recommender::CATALOG,
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
        let rows = [
            iris_rows(WINDOW_ROWS, 1, false),
            iris_rows(WINDOW_ROWS, 2, false),
        ]
        .concat();
        let request_ids = infer(&proxy, &rows).await;
        wait_for_series(&proxy, PETAL_LENGTH_DRIFT, 0.0).await;
        // Their labels: two windows of them, scored.
        label(&proxy, &request_ids, &rows).await;
        wait_for_series(
            &proxy,
            r#"driftwatch_feedback_total{model="iris",outcome="joined"}"#,
            request_ids.len() as f64,
        )
        .await;
        wait_for_series(
            &proxy,
            r#"driftwatch_model_performance{model="iris",metric="accuracy"}"#,
            0.9,
        )
        .await;
        // Accuracy 0.9 is within its baseline (0.85 - 0.05); F1 (about 0.9) undercuts 0.99 - 0.05.
        wait_for_series(&proxy, ACCURACY_DROP, 0.0).await;
        wait_for_series(&proxy, F1_DROP, 1.0).await;
        // An outlier row, an unreadable payload, a path the model server does not know.
        infer(&proxy, &[[5.0, 3.0, 400.0, 1.0]]).await;
        assert_eq!(
            post(&proxy, "/v2/models/iris/infer", "not json".into())
                .await
                .0,
            400
        );
        let response = http1_client()
            .request(support::get(&proxy.url("/nowhere")))
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        // Three diversity windows of explored lists (homogenization compares windows).
        recommend(&proxy, 3 * DIVERSITY_WINDOW).await;
        let recs = |family: &str| format!(r#"{family}{{route="{RECS_ROUTE}"}}"#);
        let distinct = wait_for_positive(&proxy, &recs("driftwatch_recs_distinct_items")).await;
        assert!(
            distinct >= recommender::LIST as f64,
            "a window of lists shows at least one list's items: {distinct}"
        );
        // Lists of different users share items; explored slots logged their propensities.
        wait_for_positive(&proxy, &recs("driftwatch_recs_list_overlap")).await;
        wait_for_positive(&proxy, &recs("driftwatch_propensity_count")).await;
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
    for (place, name) in &uses {
        if name.contains(':') {
            if !recorded.contains(name) {
                missing.push(format!("{place}: {name} is recorded by no rule"));
            }
        } else if !PROMETHEUS_SERIES.contains(&name.as_str()) && !live.contains(name) {
            missing.push(format!("{place}: {name} is not in /metrics"));
        }
    }
    assert!(
        missing.is_empty(),
        "metrics used but not exported:\n{}\n\nlive families: {live:?}",
        missing.join("\n")
    );
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

    // The labelled windows undercut the F1 baseline (0.99 - 0.05), not the accuracy one.
    let below_baseline = |alerts: &[Value]| -> Vec<Value> {
        alerts
            .iter()
            .filter(|alert| alert["labels"]["alertname"] == "DriftwatchPerformanceBelowBaseline")
            .cloned()
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let baseline_alerts = loop {
        let found = below_baseline(&prometheus.alerts().await);
        if found.iter().any(|alert| alert["state"] == "firing") {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "DriftwatchPerformanceBelowBaseline not firing within 30s: {found:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(baseline_alerts.len(), 1, "{baseline_alerts:?}");
    let baseline = &baseline_alerts[0];
    assert_eq!(baseline["labels"]["metric"], "f1", "{baseline}");
    assert_eq!(baseline["labels"]["model"], "iris");
    assert_eq!(baseline["labels"]["namespace"], "ml");
    assert_eq!(baseline["labels"]["severity"], "critical");
    let description = baseline["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("against a baseline of 0.99") && !description.contains("unknown"),
        "the description shows the measured value and the baseline: {description}"
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

    // Every dashboard query is PromQL this Prometheus evaluates; the core, performance and
    // recommendation panels show data.
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
        "panel \"Performance over the last window of labels\"",
        "panel \"Feedback by outcome\"",
        "panel \"Concept drift\"",
        "panel \"Exposure Gini\"",
        "panel \"List overlap between users\"",
        "panel \"Exploration decisions\"",
        "panel \"Resident memory\"",
    ] {
        assert!(!empty.contains(place), "{place} shows no data");
    }
}
