//! Monitoring end to end: learned references, the models and reference API (with the admin
//! token), change detectors, `profile` of a records file, and `replay` reproducing the live run.

mod support;

use std::path::PathBuf;

use bytes::Bytes;
use driftwatch::config::monitoring::{
    ChangeDetectorSection, DetectorName, InputsSection, LearnSection, ModelSection, OutputsSection,
    ProtocolName,
};
use driftwatch::config::units::HumanDuration;
use driftwatch::config::{Config, ConfigFile};
use driftwatch::demo::model::{FEATURES, serve};
use driftwatch::monitor::Models;
use driftwatch::profile::{Format, ProfileOptions, profile_file};
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use support::{Running, http1_client, metric_value, test_config, wait_for_records, with_file_sink};

fn fixture_rows(name: &str) -> Vec<Vec<Option<f64>>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/drift_e2e")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn reference_rows() -> Vec<Vec<Option<f64>>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drift_e2e/reference.csv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split(',').take(4).map(|v| v.parse().ok()).collect())
        .collect()
}

fn iris_model(learn: usize, reference: Option<String>) -> ModelSection {
    ModelSection {
        name: "iris".into(),
        match_: Default::default(),
        protocol: ProtocolName::Auto,
        inputs: InputsSection {
            names: FEATURES.map(String::from).to_vec(),
            ..Default::default()
        },
        outputs: OutputsSection {
            names: vec!["class".into()],
            ..Default::default()
        },
        reference,
        learn_reference: LearnSection { samples: learn },
    }
}

/// The profile of the drift fixture's reference rows, `class` as the categorical output.
fn reference_csv_profile(bins: usize) -> driftwatch::monitor::reference::Profile {
    profile_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drift_e2e/reference.csv"),
        &ProfileOptions {
            format: Format::Csv,
            model: Some("iris".into()),
            columns: None,
            categorical: vec!["class".into()],
            label: None,
            outputs: vec!["class".into()],
            bins,
            top_k: 50,
            specs: Vec::new(),
        },
    )
    .unwrap()
}

async fn start_model_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(serve(listener)))
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = http1_client().request(support::get(url)).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&support::body_bytes(response).await).unwrap_or(Value::Null),
    )
}

/// Waits (bounded) until the monitor has taken `rows` rows of model iris; returns the model entry.
async fn wait_for_rows(proxy: &Running, rows: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..500 {
        let (_, models) = get_json(&proxy.admin_url("/api/v1/models")).await;
        last = models["models"][0].clone();
        if last["rows"].as_u64() == Some(rows) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("monitor did not reach {rows} rows: {last}");
}

async fn wait_for_window(proxy: &Running, index: u64) -> Value {
    for _ in 0..500 {
        let (_, drift) = get_json(&proxy.admin_url("/api/v1/drift?model=iris")).await;
        if drift["last_window"]["window"]["index"].as_u64() == Some(index) {
            return drift["last_window"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("window {index} did not close");
}

#[tokio::test]
async fn a_learned_reference_judges_later_windows_and_the_models_api_shows_it() {
    let (model_addr, model_server) = start_model_server().await;
    let mut file = test_config(model_addr);
    file.models = vec![iris_model(500, None)];
    file.monitoring.window.samples = Some(400);
    file.monitoring.min_samples = 100;
    let proxy = Running::start(file).await;

    support::send_iris_rows(&proxy, &reference_rows()[..300], 25).await;
    let iris = &wait_for_rows(&proxy, 300).await;
    assert_eq!(iris["name"], "iris");
    assert_eq!(iris["protocol"], "open-inference");
    assert_eq!(iris["reference"]["state"], "learning");
    assert_eq!(iris["reference"]["rows"], 300);
    assert_eq!(iris["reference"]["target"], 500);

    support::send_iris_rows(&proxy, &reference_rows()[300..900], 25).await;
    let iris = &wait_for_rows(&proxy, 900).await;
    assert_eq!(iris["reference"]["state"], "ready");
    assert_eq!(iris["reference"]["source"], "learned");
    let columns: Vec<(String, String, String)> = iris["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["role"].as_str().unwrap().into(),
                c["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(columns.len(), 5);
    assert_eq!(
        columns[4],
        ("class".into(), "output".into(), "categorical".into())
    );

    // Rows 500..900 filled the first window: same distribution, no drift.
    let first = wait_for_window(&proxy, 0).await;
    assert_eq!(first["dataset"]["drifted"], false, "{first}");
    // A shifted window drifts.
    support::send_iris_rows(&proxy, &fixture_rows("window.json")[..400], 25).await;
    let second = wait_for_window(&proxy, 1).await;
    assert_eq!(second["dataset"]["drifted"], true);
    let (_, reference) = get_json(&proxy.admin_url("/api/v1/reference/iris")).await;
    assert_eq!(reference["schema"], "driftwatch.profile/v1");
    assert_eq!(reference["rows"], 500);
    assert_eq!(
        get_json(&proxy.admin_url("/api/v1/reference/nope")).await.0,
        404
    );
    proxy.stop().await;
    model_server.abort();
}

#[tokio::test]
async fn putting_a_reference_needs_the_admin_token() {
    let (model_addr, model_server) = start_model_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let mut file = test_config(model_addr);
    file.admin.token_file = Some(token.to_string_lossy().into_owned());
    file.models = vec![iris_model(100, None)];
    let proxy = Running::start(file).await;
    let profile = reference_csv_profile(10);
    let body = serde_json::to_string(&profile).unwrap();
    let put = |authorization: Option<&str>, body: String| {
        let mut request = Request::put(proxy.admin_url("/api/v1/reference/iris"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        http1_client().request(request.body(Full::new(Bytes::from(body))).unwrap())
    };
    assert_eq!(put(None, body.clone()).await.unwrap().status(), 401);
    assert_eq!(
        put(Some("Bearer wrong"), body.clone())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        put(Some("Bearer t0ken"), "{\"schema\":\"nope\"}".into())
            .await
            .unwrap()
            .status(),
        400
    );
    let (_, models) = get_json(&proxy.admin_url("/api/v1/models")).await;
    assert_eq!(
        models["models"][0]["reference"]["state"], "learning",
        "rejected PUTs change nothing"
    );
    assert_eq!(put(Some("Bearer t0ken"), body).await.unwrap().status(), 200);
    let (_, models) = get_json(&proxy.admin_url("/api/v1/models")).await;
    assert_eq!(
        models["models"][0]["reference"]["source"],
        "profile:reference.csv"
    );
    proxy.stop().await;
    model_server.abort();
}

/// A sliding window holds the rows of its last `duration`, says which span it covers, and moves
/// with time also when no traffic comes (the API and `/metrics` move it).
#[tokio::test]
async fn a_sliding_window_covers_its_duration_and_empties_without_traffic() {
    let (model_addr, model_server) = start_model_server().await;
    let mut file = test_config(model_addr);
    file.models = vec![iris_model(100, None)];
    file.monitoring.window.samples = None;
    file.monitoring.window.duration = Some(HumanDuration::from_millis(2000));
    file.monitoring.window.slots = Some(4);
    let proxy = Running::start(file).await;
    // The first 100 rows are the learned reference; the next 100 fall into the window.
    support::send_iris_rows(&proxy, &reference_rows()[..200], 20).await;
    let url = proxy.admin_url("/api/v1/drift?model=iris");
    let mut open = Value::Null;
    for _ in 0..200 {
        open = get_json(&url).await.1["open_window"].clone();
        if open["window"]["rows"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let window = &open["window"];
    assert_eq!(window["kind"], "sliding", "{open}");
    assert!(window["rows"].as_u64().unwrap() > 0, "{open}");
    let start = humantime::parse_rfc3339(window["start"].as_str().unwrap()).unwrap();
    let age = std::time::SystemTime::now().duration_since(start).unwrap();
    assert!(
        age <= std::time::Duration::from_millis(2600),
        "the window starts at most one duration (+ a slot) ago: {age:?} {open}"
    );
    // No traffic for longer than the window: it is empty when asked.
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let (_, drift) = get_json(&url).await;
    assert_eq!(drift["open_window"]["window"]["rows"], 0, "{drift}");
    assert_eq!(
        metric_value(
            &proxy.metrics().await,
            r#"driftwatch_window_rows{model="iris"}"#
        ),
        0.0
    );
    proxy.stop().await;
    model_server.abort();
}

/// A new reference zeroes the fleet series of the one it replaces: a bin the new layout lacks
/// must not stay in the fleet PSI at its old fraction.
#[tokio::test]
async fn replacing_the_reference_retires_its_bin_fractions() {
    let (model_addr, model_server) = start_model_server().await;
    let mut file = test_config(model_addr);
    file.models = vec![iris_model(100, None)];
    let proxy = Running::start(file).await;
    support::send_iris_rows(&proxy, &reference_rows()[..200], 20).await;
    let bin = |bin: &str| {
        format!(
            r#"driftwatch_reference_bin_fraction{{model="iris",column="petal_length",role="input",bin="{bin}"}}"#
        )
    };
    // The learned reference has 10 bins (quantiles: 10% each).
    let learned = support::wait_for_metric(&proxy, &bin("7"), 0.05).await;
    assert!(learned > 0.05, "{learned}");
    let profile = reference_csv_profile(5);
    let request = Request::put(proxy.admin_url("/api/v1/reference/iris"))
        .body(Full::new(Bytes::from(
            serde_json::to_string(&profile).unwrap(),
        )))
        .unwrap();
    assert_eq!(http1_client().request(request).await.unwrap().status(), 200);
    let metrics = proxy.metrics().await;
    assert_eq!(metric_value(&metrics, &bin("7")), 0.0, "a retired bin");
    assert!(
        metric_value(&metrics, &bin("2")) > 0.1,
        "a bin of the new layout"
    );
    proxy.stop().await;
    model_server.abort();
}

#[tokio::test]
async fn change_detectors_count_change_points() {
    let (model_addr, model_server) = start_model_server().await;
    let mut file = test_config(model_addr);
    file.models = vec![iris_model(200, None)];
    file.monitoring.change_detectors = vec![ChangeDetectorSection {
        signal: "column:petal_length".into(),
        detector: DetectorName::Adwin,
        model: None,
    }];
    let proxy = Running::start(file).await;
    support::send_iris_rows(&proxy, &reference_rows()[..1000], 50).await;
    let before = metric_value(
        &proxy.metrics().await,
        r#"driftwatch_change_points_total{model="iris",signal="column:petal_length",detector="adwin"}"#,
    );
    support::send_iris_rows(&proxy, &fixture_rows("window.json")[..1000], 50).await;
    let after = support::wait_for_metric(
        &proxy,
        r#"driftwatch_change_points_total{model="iris",signal="column:petal_length",detector="adwin"}"#,
        before + 1.0,
    )
    .await;
    assert!(
        after > before,
        "the +1.2 shift of petal_length is a change point ({before} -> {after})"
    );
    let (_, drift) = get_json(&proxy.admin_url("/api/v1/drift?model=iris")).await;
    assert!(
        drift["change_points"]
            .as_array()
            .is_some_and(|points| !points.is_empty())
    );
    proxy.stop().await;
    model_server.abort();
}

/// The profile of a records file equals the profile of the same rows from a CSV.
#[tokio::test]
async fn profiling_records_equals_profiling_the_csv() {
    let (model_addr, model_server) = start_model_server().await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.jsonl");
    let mut file = with_file_sink(test_config(model_addr), &records);
    file.models = vec![iris_model(100_000, None)];
    let proxy = Running::start(file).await;
    let rows = reference_rows();
    support::send_iris_rows(&proxy, &rows, 40).await;
    wait_for_records(&records, rows.len() / 40).await;
    proxy.stop().await;
    model_server.abort();

    let options = |format| ProfileOptions {
        format,
        model: Some("iris".into()),
        columns: (format == Format::Records).then(|| FEATURES.map(String::from).to_vec()),
        categorical: vec!["class".into()],
        label: None,
        outputs: vec!["class".into()],
        bins: 10,
        top_k: 50,
        specs: vec![
            Config::from_file(ConfigFile {
                models: vec![iris_model(10, None)],
                ..ConfigFile::default()
            })
            .unwrap()
            .models[0]
                .clone(),
        ],
    };
    let mut from_records = profile_file(&records, &options(Format::Records)).unwrap();
    let mut from_csv = profile_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drift_e2e/reference.csv"),
        &options(Format::Csv),
    )
    .unwrap();
    assert_eq!(from_records.rows, 2000);
    from_records.source.clear();
    from_csv.source.clear();
    assert_eq!(from_records, from_csv);
}

/// `replay` over the records of a live run reproduces the live run's window reports.
#[tokio::test]
async fn replay_gives_the_reports_of_the_live_run() {
    let (model_addr, model_server) = start_model_server().await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.jsonl");
    let mut file = with_file_sink(test_config(model_addr), &records);
    file.models = vec![iris_model(600, None)];
    file.monitoring.window.samples = Some(700);
    file.monitoring.min_samples = 100;
    let proxy = Running::start(file.clone()).await;
    let mut traffic = reference_rows()[..1300].to_vec();
    traffic.extend(fixture_rows("window.json")[..700].iter().cloned());
    support::send_iris_rows(&proxy, &traffic, 20).await;
    let live_second = wait_for_window(&proxy, 1).await;
    wait_for_records(&records, traffic.len() / 20).await;
    proxy.stop().await;
    model_server.abort();

    let config = Config::from_file(file).unwrap();
    let registry = driftwatch::telemetry::Registry::new();
    let mut models = Models::new(
        config.monitoring.clone(),
        config.models.clone(),
        &registry,
        true,
    )
    .unwrap();
    let mut out = Vec::new();
    let reader = std::io::BufReader::new(std::fs::File::open(&records).unwrap());
    let stats = driftwatch::replay::replay(reader, &mut models, &mut out).unwrap();
    assert_eq!(stats.skipped, 0);
    let reports: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let complete: Vec<&Value> = reports
        .iter()
        .filter(|r| r["window"]["complete"] == true)
        .collect();
    assert_eq!(
        complete.len(),
        2,
        "two windows closed: after the learned reference, 1400 rows of 700"
    );
    assert_eq!(*complete[1], live_second, "replayed report == live report");
    assert_eq!(complete[1]["dataset"]["drifted"], true);
}
