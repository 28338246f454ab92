//! Criterion benchmarks of the analysis path, for the numbers SPEC §13 and the README report:
//!
//! - `extract/*` — [`extract::extract`] on realistic bodies (20 FP32 input columns and one class
//!   id output): per row, for Open Inference at 1, 8 and 64 rows a request, KServe v1 and MLflow
//!   `dataframe_split` at 64. Column values per second are rows per second × 21.
//! - `monitor/ingest` — [`ModelMonitor::ingest`] alone on a prepared 64-row extraction, per column
//!   value (64 × 21): the number to hold against "monitoring ingest ≥ 2 million column values per
//!   second per core". `tumbling_5000` is the steady state (a window closes, and its report is
//!   computed, every 5,000 rows); `window_open` never closes a window, so it is validation,
//!   binning, sampling and outlier scoring alone.
//! - `monitor/report` — one window report for a model of 20 numeric inputs and a class output,
//!   with 10,000-value samples on both sides of KS and Wasserstein.
//! - `record/build` — one record of a 1 KiB JSON request and response, redacting two keys.
//!
//! Before the timings it prints the memory per monitored column, measured (resident memory of
//! about 1,000 monitored columns, before and after their windows fill) and computed from the
//! sizes of the per-column state.
//!
//! ```text
//! cargo bench --bench analysis
//! cargo bench --bench analysis -- monitor/ingest
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use driftwatch::config::monitoring::WindowConfig;
use driftwatch::config::{Config, ConfigFile, ModelSpec, MonitoringConfig, RecordingConfig};
use driftwatch::extract::{self, table::Cell, table::Extraction};
use driftwatch::monitor::model::{ExchangeFacts, ModelMonitor};
use driftwatch::monitor::reference::{ColumnInput, Kind, Profile, ProfileBuilder, SAMPLE_SIZE};
use driftwatch::monitor::window::BinLayout;
use driftwatch::record::build::build;
use driftwatch::record::redact::Redactor;
use driftwatch::record::sampling::SampleReason;
use driftwatch::tap::{Capture, Findings, Observation, Outcome, RequestHead, ResponseHead, Timing};
use driftwatch::telemetry::Registry;

const MODEL: &str = "fraud";
const INPUT_COLUMNS: usize = 20;
/// 20 inputs and the class id output.
const COLUMNS_PER_ROW: usize = INPUT_COLUMNS + 1;
const CLASSES: u64 = 4;
const BATCH_ROWS: usize = 64;
const REFERENCE_ROWS: usize = 5_000;
const WINDOW_ROWS: usize = 5_000;
const SEED: u64 = 0x00d1_1f7a_5eed;

/// One row of the model: its 20 inputs and the class id it predicted.
type Row = ([f64; INPUT_COLUMNS], u64);

/// Builds one protocol's exchange from rows.
type Encoder = fn(&[Row]) -> Exchange;

/// Seeded rows: input `j` is normal with mean `j` and standard deviation `1 + j/10`; the class
/// depends on the first input, so the output is not uniform.
struct RowSource {
    rng: SmallRng,
}

impl RowSource {
    fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn standard_normal(&mut self) -> f64 {
        // Box–Muller; 1 - u keeps the logarithm finite.
        let u: f64 = 1.0 - self.rng.random::<f64>();
        let v: f64 = self.rng.random::<f64>();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// One row: the inputs rounded as a client serializing FP32 would, and the class id.
    fn row(&mut self) -> Row {
        let mut inputs = [0.0; INPUT_COLUMNS];
        for (j, value) in inputs.iter_mut().enumerate() {
            let x = j as f64 + (1.0 + j as f64 / 10.0) * self.standard_normal();
            *value = f64::from(x as f32);
        }
        let class = ((inputs[0] + 2.0).max(0.0) as u64).min(CLASSES - 1);
        (inputs, class)
    }

    fn rows(&mut self, count: usize) -> Vec<Row> {
        (0..count).map(|_| self.row()).collect()
    }
}

/// Bodies of one exchange in each protocol, with the path that selects it.
struct Exchange {
    path: &'static str,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn open_inference(rows: &[Row]) -> Exchange {
    let inputs: Vec<f64> = rows.iter().flat_map(|(inputs, _)| *inputs).collect();
    let classes: Vec<u64> = rows.iter().map(|(_, class)| *class).collect();
    let request = json!({
        "id": "42",
        "inputs": [{
            "name": "input",
            "shape": [rows.len(), INPUT_COLUMNS],
            "datatype": "FP32",
            "data": inputs,
        }],
    });
    let response = json!({
        "model_name": MODEL,
        "model_version": "3",
        "id": "42",
        "outputs": [{
            "name": "predict",
            "shape": [rows.len(), 1],
            "datatype": "INT64",
            "data": classes,
        }],
    });
    Exchange {
        path: "/v2/models/fraud/infer",
        request: serde_json::to_vec(&request).expect("serializes"),
        response: serde_json::to_vec(&response).expect("serializes"),
    }
}

fn kserve_v1(rows: &[Row]) -> Exchange {
    let instances: Vec<Vec<f64>> = rows.iter().map(|(inputs, _)| inputs.to_vec()).collect();
    let predictions: Vec<u64> = rows.iter().map(|(_, class)| *class).collect();
    Exchange {
        path: "/v1/models/fraud:predict",
        request: serde_json::to_vec(&json!({ "instances": instances })).expect("serializes"),
        response: serde_json::to_vec(&json!({ "predictions": predictions })).expect("serializes"),
    }
}

fn mlflow_dataframe_split(rows: &[Row]) -> Exchange {
    let columns: Vec<String> = (0..INPUT_COLUMNS).map(|j| format!("f{j}")).collect();
    let data: Vec<Vec<f64>> = rows.iter().map(|(inputs, _)| inputs.to_vec()).collect();
    let predictions: Vec<u64> = rows.iter().map(|(_, class)| *class).collect();
    let request = json!({ "dataframe_split": { "columns": columns, "data": data } });
    Exchange {
        path: "/invocations",
        request: serde_json::to_vec(&request).expect("serializes"),
        response: serde_json::to_vec(&json!({ "predictions": predictions })).expect("serializes"),
    }
}

fn extract_exchange(exchange: &Exchange, spec: &ModelSpec) -> Extraction {
    let (_, extraction) = extract::extract(
        exchange.path,
        &exchange.request,
        false,
        Some(&exchange.response),
        false,
        spec,
    )
    .expect("the bench bodies extract");
    assert_eq!(extraction.inputs.columns.len(), INPUT_COLUMNS);
    assert_eq!(extraction.outputs.columns.len(), 1);
    assert!(!extraction.shape_mismatch);
    extraction
}

fn bench_extract(c: &mut Criterion) {
    let spec = ModelSpec::auto(MODEL);
    let mut source = RowSource::new(SEED);

    let mut group = c.benchmark_group("extract/open_inference");
    for rows in [1, 8, BATCH_ROWS] {
        let exchange = open_inference(&source.rows(rows));
        extract_exchange(&exchange, &spec);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(BenchmarkId::new("rows", rows), |b| {
            b.iter(|| {
                extract::extract(
                    exchange.path,
                    black_box(&exchange.request),
                    false,
                    Some(black_box(&exchange.response)),
                    false,
                    &spec,
                )
            });
        });
    }
    group.finish();

    let others: [(&str, Encoder); 2] = [
        ("extract/kserve_v1", kserve_v1),
        ("extract/mlflow_dataframe_split", mlflow_dataframe_split),
    ];
    for (name, make) in others {
        let exchange = make(&source.rows(BATCH_ROWS));
        extract_exchange(&exchange, &spec);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(BATCH_ROWS as u64));
        group.bench_function(BenchmarkId::new("rows", BATCH_ROWS), |b| {
            b.iter(|| {
                extract::extract(
                    exchange.path,
                    black_box(&exchange.request),
                    false,
                    Some(black_box(&exchange.response)),
                    false,
                    &spec,
                )
            });
        });
        group.finish();
    }
}

/// The default monitoring config with bins exported and tumbling windows of `window_rows`.
fn monitoring_config(window_rows: usize) -> MonitoringConfig {
    let mut config = Config::from_file(ConfigFile::default())
        .expect("the default config is valid")
        .monitoring;
    config.window = WindowConfig::Tumbling { rows: window_rows };
    config.export_bins = true;
    config
}

/// A reference profile of `rows` seeded rows, under the columns an extraction names.
fn reference_profile(
    columns_of: &Extraction,
    rows: usize,
    config: &MonitoringConfig,
    seed: u64,
) -> Profile {
    let columns = columns_of
        .inputs
        .columns
        .iter()
        .chain(&columns_of.outputs.columns)
        .map(|column| ColumnInput {
            name: column.name.clone(),
            role: column.role,
            kind: if column.categorical {
                Kind::Categorical
            } else {
                Kind::Numeric
            },
        })
        .collect();
    let mut builder = ProfileBuilder::new(columns);
    let mut source = RowSource::new(seed);
    for _ in 0..rows {
        let (inputs, class) = source.row();
        let cells: Vec<Cell> = inputs
            .iter()
            .map(|x| Cell::Number(*x))
            .chain([Cell::Number(class as f64)])
            .collect();
        builder.push(&cells);
    }
    builder.finish(
        Some(MODEL.to_owned()),
        "bench".to_owned(),
        config.bins,
        config.top_k,
    )
}

/// Open Inference extractions of `BATCH_ROWS` rows each, from the reference's distribution.
fn batches(count: usize, seed: u64) -> Vec<Extraction> {
    let spec = ModelSpec::auto(MODEL);
    let mut source = RowSource::new(seed);
    (0..count)
        .map(|_| extract_exchange(&open_inference(&source.rows(BATCH_ROWS)), &spec))
        .collect()
}

fn facts() -> ExchangeFacts {
    ExchangeFacts {
        time: SystemTime::now(),
        latency: Duration::from_millis(3),
        error: false,
    }
}

fn monitor_with(profile: Profile, config: MonitoringConfig, registry: &Registry) -> ModelMonitor {
    let monitor = ModelMonitor::new(
        MODEL,
        ModelSpec::auto(MODEL),
        Some(profile),
        Arc::new(config),
        registry,
        false,
    );
    assert!(monitor.profile().is_some(), "the reference is ready");
    monitor
}

fn bench_monitor(c: &mut Criterion) {
    let extractions = batches(16, SEED + 1);
    let values = (BATCH_ROWS * COLUMNS_PER_ROW) as u64;

    let mut group = c.benchmark_group("monitor/ingest");
    group.throughput(Throughput::Elements(values));
    for (name, window_rows) in [("tumbling_5000", WINDOW_ROWS), ("window_open", usize::MAX)] {
        let config = monitoring_config(window_rows);
        let profile = reference_profile(&extractions[0], REFERENCE_ROWS, &config, SEED);
        let registry = Registry::new();
        let mut monitor = monitor_with(profile, config, &registry);
        let facts = facts();
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % extractions.len();
                monitor.ingest(black_box(&extractions[next]), facts)
            });
        });
    }
    group.finish();

    // A window that holds a full 10,000-value sample per column, against a reference whose
    // sample is full too.
    let config = monitoring_config(usize::MAX);
    let profile = reference_profile(&extractions[0], 2 * SAMPLE_SIZE, &config, SEED);
    let registry = Registry::new();
    let mut monitor = monitor_with(profile, config, &registry);
    let facts = facts();
    for extraction in extractions
        .iter()
        .cycle()
        .take(SAMPLE_SIZE / BATCH_ROWS + 1)
    {
        monitor.ingest(extraction, facts);
    }
    let report = monitor.report(false).expect("a reference is set");
    assert_eq!(report.columns.len(), COLUMNS_PER_ROW);
    assert!(
        report
            .columns
            .iter()
            .filter(|column| column.kind == "numeric")
            .all(|column| column.statistics.wasserstein.is_some())
    );
    let mut group = c.benchmark_group("monitor/report");
    group.throughput(Throughput::Elements(1));
    group.bench_function("columns_21_sample_10000", |b| {
        b.iter(|| monitor.report(black_box(false)));
    });
    group.finish();
}

/// A JSON body of about `target` bytes with the redacted keys at two depths.
fn json_body(target: usize, head: Value) -> Bytes {
    let mut body = head;
    let mut filler = Vec::new();
    let mut source = RowSource::new(SEED + 2);
    while serde_json::to_vec(&body).expect("serializes").len() < target {
        filler.push(source.row().0[3]);
        body["data"] = json!(filler);
    }
    Bytes::from(serde_json::to_vec(&body).expect("serializes"))
}

fn observation(request: Bytes, response: Bytes) -> Observation {
    let capture = |body: &Bytes| {
        let mut capture = Capture::new(64 << 10, None);
        capture.push(body);
        capture
    };
    let mut request_headers = HeaderMap::new();
    request_headers.insert("content-type", HeaderValue::from_static("application/json"));
    request_headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    request_headers.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    request_headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
    let mut response_headers = HeaderMap::new();
    response_headers.insert("content-type", HeaderValue::from_static("application/json"));
    Observation {
        request_id: HeaderValue::from_static("01904d6e-3c4e-7c1a-9a53-7a4f5e1d2c3b"),
        started_at: SystemTime::now(),
        model: Arc::from(MODEL),
        request: RequestHead {
            method: Method::POST,
            uri: Uri::from_static("/v2/models/fraud/versions/3/infer"),
            version: Version::HTTP_11,
            headers: request_headers,
        },
        response: Some(ResponseHead {
            status: StatusCode::OK,
            headers: response_headers,
        }),
        timing: Timing {
            total: Duration::from_micros(3_250),
            upstream_headers: Some(Duration::from_micros(3_000)),
            first_chunk: Some(Duration::from_micros(3_100)),
        },
        outcome: Outcome::Ok,
        proxy_error: None,
        grpc_status: None,
        request_bytes: request.len() as u64,
        response_bytes: response.len() as u64,
        request_capture: capture(&request),
        response_capture: capture(&response),
        exploration: None,
    }
}

fn recording_config() -> RecordingConfig {
    let mut config = Config::from_file(ConfigFile::default())
        .expect("the default config is valid")
        .recording;
    config.redaction.keys = vec!["api_key".to_owned(), "ssn".to_owned()];
    config
}

fn bench_record(c: &mut Criterion) {
    let request = json_body(
        1024,
        json!({
            "id": "42",
            "api_key": "sk-0123456789abcdef",
            "customer": { "name": "Ada", "ssn": "078-05-1120", "segment": "retail" },
            "inputs": [{ "name": "input", "shape": [1, 20], "datatype": "FP32" }],
        }),
    );
    let response = json_body(
        1024,
        json!({
            "model_name": MODEL,
            "model_version": "3",
            "outputs": [{ "name": "predict", "shape": [1, 1], "datatype": "INT64" }],
            "explanation": { "ssn": "078-05-1120" },
        }),
    );
    let observation = observation(request, response);
    let config = recording_config();
    let redactor = Redactor::new(&config.redaction);
    let findings = Findings {
        monitor: Some(
            json!({ "rows": 1, "issues": [], "outlier_rows": [], "outlier_score_max": 1.2 }),
        ),
        outlier: false,
        ..Findings::default()
    };
    let record = build(
        &observation,
        &findings,
        SampleReason::Rate,
        &config,
        &redactor,
    );
    let text = std::str::from_utf8(&record.line).expect("records are UTF-8");
    assert!(!text.contains("078-05-1120") && !text.contains("sk-0123"));
    assert!(!text.contains("Bearer"));

    let mut group = c.benchmark_group("record/build");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json_1KiB_redact_2_keys", |b| {
        b.iter(|| {
            build(
                black_box(&observation),
                &findings,
                SampleReason::Rate,
                &config,
                &redactor,
            )
        });
    });
    group.finish();
}

/// Resident memory of this process, from `/proc/self/status` (`VmRSS`, in kB).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Heap bytes a `Vec<f64>` grown by pushes holds once it has `len` values (amortized doubling
/// from 4).
fn grown_vec_bytes(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.max(4).next_power_of_two() * 8
    }
}

/// Measures and computes the memory of monitored columns for windows of `window_rows`, with a
/// reference of `reference_rows`, over `models` models of 21 columns, and prints it. Returns the
/// monitors: the caller keeps them until every measurement is done, because memory they freed
/// would stay resident in the allocator and make a later measurement look smaller.
fn memory_per_column(
    window_rows: usize,
    reference_rows: usize,
    models: usize,
) -> Vec<ModelMonitor> {
    let extractions = batches(16, SEED + 3);
    let config = monitoring_config(window_rows);
    let profile = reference_profile(&extractions[0], reference_rows, &config, SEED);
    let registry = Registry::new();
    let columns = models * COLUMNS_PER_ROW;

    let before = resident_bytes();
    let mut monitors: Vec<ModelMonitor> = (0..models)
        .map(|_| monitor_with(profile.clone(), config.clone(), &registry))
        .collect();
    let created = resident_bytes();
    // Fill every window to just below its close.
    let fill_batches = (window_rows.min(SAMPLE_SIZE + BATCH_ROWS) - 1) / BATCH_ROWS;
    let facts = facts();
    for monitor in &mut monitors {
        for extraction in extractions.iter().cycle().take(fill_batches) {
            monitor.ingest(extraction, facts);
        }
    }
    let filled = resident_bytes();
    let window_values = fill_batches * BATCH_ROWS;

    // The same, computed from the state's sizes (heap only, numeric input column).
    let numeric = profile
        .columns
        .iter()
        .find(|column| column.kind == Kind::Numeric)
        .expect("numeric inputs");
    let numeric_profile = numeric.numeric.as_ref().expect("a numeric profile");
    let bins = BinLayout::from_profile(numeric).len();
    let reference_sample = numeric_profile.sample.len() * 8;
    let reference_rest = (numeric_profile.edges.len() + numeric_profile.bin_counts.len()) * 8;
    let window_sample = grown_vec_bytes(window_values.min(SAMPLE_SIZE));
    let window_bins = bins * 8;
    // bin_rows counters and reference fractions (export_bins), 7 status counters, 5 statistic
    // gauges, 1 drifted gauge.
    let series = 2 * bins + 7 + 5 + 1;
    let computed = 2 * (reference_sample + reference_rest) + window_sample + window_bins;

    let window = if window_rows == usize::MAX {
        "never closed".to_owned()
    } else {
        format!("{window_rows} rows")
    };
    println!(
        "memory per monitored column (window {window}, reference {reference_rows} rows, {columns} columns over {models} models):"
    );
    match (before, created, filled) {
        (Some(before), Some(created), Some(filled)) => {
            let per_column = |bytes: u64| bytes / columns as u64;
            println!(
                "  measured (VmRSS): {} B empty window, {} B with {window_values} rows in the window",
                per_column(created.saturating_sub(before)),
                per_column(filled.saturating_sub(before)),
            );
        }
        _ => println!("  measured: /proc/self/status unreadable"),
    }
    println!(
        "  computed (numeric column, heap): {computed} B = reference sample {reference_sample} B x 2 copies \
         (Arc<Profile> + ColumnState.profile) + edges/bin counts {reference_rest} B x 2 + window sample \
         {window_sample} B ({} values in a pushed Vec) + window bins {window_bins} B ({bins} bins x 8); \
         plus {series} metric series in the registry",
        window_values.min(SAMPLE_SIZE)
    );
    monitors
}

/// Feedback: memory per pending prediction (measured over 200,000 single-row predictions) and the
/// join throughput (labels joined per second, one per prediction).
fn memory_per_pending_prediction() -> driftwatch::feedback::Feedback {
    use driftwatch::config::feedback::{FeedbackSection, validate_feedback};
    use driftwatch::feedback::store::Prediction;
    let registry = Registry::new();
    // Unbounded by bytes, so all of them stay and are measured.
    let section = FeedbackSection {
        max_pending_bytes: driftwatch::config::units::ByteSize(1 << 40),
        ..FeedbackSection::default()
    };
    let config = validate_feedback(&section).expect("feedback config");
    let mut feedback =
        driftwatch::feedback::Feedback::new(config, 5000, &registry).expect("no files");
    let now = std::time::SystemTime::now();
    let count = 200_000;
    let before = resident_bytes();
    for i in 0..count {
        let id = uuid::Uuid::now_v7().to_string();
        let _ = i;
        feedback.remember(&id, "iris", now, vec![Prediction::Class("1".into())], now);
    }
    let after = resident_bytes();
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "memory per pending prediction (single row, UUID request id): {} bytes measured over {count} (store's own estimate {} bytes)",
            (after - before) / count as u64,
            feedback.pending_bytes() / count,
        );
    }
    feedback
}

fn bench_feedback(c: &mut Criterion) {
    use driftwatch::config::feedback::{FeedbackSection, validate_feedback};
    use driftwatch::feedback::parse::{Item, Payload};
    use driftwatch::feedback::store::Prediction;
    let mut group = c.benchmark_group("feedback");
    let batch = 1000;
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function("join/1000_labels", |b| {
        b.iter_batched(
            || {
                let registry = Registry::new();
                let config = validate_feedback(&FeedbackSection::default())
                    .expect("default feedback config");
                let mut feedback =
                    driftwatch::feedback::Feedback::new(config, 5000, &registry).expect("no files");
                let now = std::time::SystemTime::now();
                let mut items = Vec::with_capacity(batch);
                for i in 0..batch {
                    let id = format!("req-{i}");
                    feedback.remember(
                        &id,
                        "iris",
                        now,
                        vec![Prediction::Class((i % 3).to_string().into())],
                        now,
                    );
                    items.push(Item {
                        request_id: id,
                        payload: Payload::Label(serde_json::json!(i % 3)),
                    });
                }
                (feedback, items)
            },
            |(mut feedback, items)| feedback.apply(items, std::time::SystemTime::now()),
            criterion::BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// SPEC §13: "an exploration rewrite of a 100-item list ≤ 50 µs" — the whole exploration of one
/// response: find the list, bucket and seed, decide, log the propensities, rewrite the bytes.
fn bench_explore(c: &mut Criterion) {
    use driftwatch::config::exploration::{ExplorationSection, validate_exploration};
    use driftwatch::explore::route::Route;
    let items: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"id":"item-{i}","score":{}.5,"title":"Item number {i}","meta":{{"pop":1e-7,"tags":["a","b"]}}}}"#, 1000 - i))
        .collect();
    let body = format!(
        r#"{{"user":"u-1","model":"recs-v3","items":[{}],"total":100}}"#,
        items.join(",")
    );
    let mut group = c.benchmark_group("explore");
    for (strategy, candidates) in [
        ("epsilon_greedy", 20),
        ("epsilon_greedy", 100),
        ("softmax", 100),
        ("rand_top_n", 100),
    ] {
        let yaml = format!(
            "{{name: recs, match: {{path_prefix: /recs}}, score: /score, strategy: {strategy}, epsilon: 0.1, candidates: {candidates}, buckets: {{holdout: 0, randomize: 0}}}}"
        );
        let section: ExplorationSection = serde_saphyr::from_str(&yaml).expect("bench route");
        let route = Route::new(
            validate_exploration(&[section])
                .expect("valid route")
                .remove(0),
        );
        // Warm the ε-greedy marginal cache (once per route and list length in production).
        let _ = route.explore(body.as_bytes(), b"warm", b"warm", false);
        group.bench_function(
            format!("rewrite_100_items/{strategy}/candidates_{candidates}"),
            |b| {
                let mut request = 0u64;
                b.iter(|| {
                    request += 1;
                    route.explore(body.as_bytes(), b"user-42", &request.to_le_bytes(), false)
                });
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_extract,
    bench_monitor,
    bench_record,
    bench_feedback,
    bench_explore
);

fn main() {
    // Before the timings, so the resident memory is not the benches' leftovers.
    let measured = [
        memory_per_column(WINDOW_ROWS, REFERENCE_ROWS, 48),
        memory_per_column(usize::MAX, 2 * SAMPLE_SIZE, 48),
    ];
    let pending = memory_per_pending_prediction();
    drop(measured);
    drop(pending);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
