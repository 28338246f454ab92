//! `driftwatch demo`: an embedded model server, driftwatch in front of it, and a traffic
//! generator, in one process, so a new user sees driftwatch work with one command.

pub mod model;
pub mod recommender;
pub mod traffic;
mod watch;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use self::traffic::{Generator, TrafficStats};
use crate::app::{Driftwatch, Listeners};
use crate::cli::CliError;
use crate::config::exploration::{
    BucketsSection, ExplorationMatch, ExplorationSection, StrategyName, UnitSection,
};
use crate::config::monitoring::{
    InputsSection, LearnSection, ModelSection, OutputsSection, ProtocolName, TaskName,
};
use crate::config::recording::SinkSection;
use crate::config::units::HumanDuration;
use crate::config::{Config, ConfigFile};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub duration: Duration,
    pub drift_at: Duration,
    pub listen: String,
    pub admin_listen: String,
    pub rate: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            drift_at: Duration::from_secs(30),
            listen: "127.0.0.1:8100".to_owned(),
            admin_listen: "127.0.0.1:8101".to_owned(),
            rate: 200,
        }
    }
}

const WORKERS: u32 = 8;

pub async fn run(options: DemoOptions, out: &mut dyn Write) -> Result<(), CliError> {
    let runtime_error = |e: &dyn std::fmt::Display| CliError::Runtime(e.to_string());
    let model_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| runtime_error(&e))?;
    let model_addr = model_listener.local_addr().map_err(|e| runtime_error(&e))?;
    let model_server = tokio::spawn(model::serve(model_listener));

    let mut file = ConfigFile {
        listen: options.listen.clone(),
        ..ConfigFile::default()
    };
    file.admin.listen = options.admin_listen.clone();
    file.upstream.url = format!("http://{model_addr}");
    file.shutdown.delay = HumanDuration::from_secs(0);
    let records_dir = std::env::temp_dir().join(format!("driftwatch-demo-{}", std::process::id()));
    let records_path = records_dir.join("records.jsonl");
    // The iris model, named columns, a reference learned from the first rows, and windows short
    // enough that the demo shows several of them.
    file.models = vec![ModelSection {
        name: model::MODEL_NAME.to_owned(),
        match_: Default::default(),
        protocol: ProtocolName::OpenInference,
        inputs: InputsSection {
            names: model::FEATURES.map(String::from).to_vec(),
            ..Default::default()
        },
        outputs: OutputsSection {
            names: vec!["class".to_owned()],
            task: Some(TaskName::Classification),
            ..Default::default()
        },
        reference: None,
        learn_reference: LearnSection { samples: 3000 },
    }];
    file.monitoring.window.samples = Some(2500);
    // The recommender, twice: without exploration (every unit held out, so the lists are only
    // measured) and with ε-greedy exploration over the 50 candidates.
    let recommendation_route = |name: &str, variant: &str| ExplorationSection {
        name: name.to_owned(),
        match_: ExplorationMatch {
            path_prefix: format!("/recommend/{variant}"),
        },
        list: "/items".to_owned(),
        id: "/id".to_owned(),
        score: Some("/score".to_owned()),
        pin: None,
        open_inference: None,
        strategy: StrategyName::EpsilonGreedy,
        epsilon: 0.3,
        temperature: 1.0,
        fixed_top: 0,
        candidates: recommender::LIST,
        buckets: BucketsSection {
            holdout: if variant == "plain" { 1.0 } else { 0.0 },
            randomize: 0.0,
        },
        unit: UnitSection::default(),
        salt_file: None,
        shadow: false,
        opt_out_header: "x-driftwatch-explore".to_owned(),
        max_response_bytes: crate::config::units::ByteSize(1 << 20),
        catalog_size: Some(recommender::CATALOG as u64),
        diversity_window: 200,
        diversity_positions: Some(recommender::DISPLAYED),
    };
    file.exploration = vec![
        recommendation_route("recs-plain", "plain"),
        recommendation_route("recs-explore", "explore"),
    ];
    file.sinks = vec![SinkSection::File {
        name: None,
        path: records_path.to_string_lossy().into_owned(),
        rotate: Default::default(),
        queue: Default::default(),
    }];
    file.shutdown.grace = HumanDuration::from_secs(5);
    let config = Config::from_file(file)?;
    let listeners = Listeners::bind(&config)
        .await
        .map_err(|e| runtime_error(&e))?;
    let (proxy_addr, admin_addr) = (listeners.proxy_addr(), listeners.admin_addr());

    let driftwatch = Driftwatch::new(config);
    let registry = driftwatch.registry().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let instance = tokio::spawn(driftwatch.run(listeners, async move {
        let _ = stopped.await;
    }));

    let io = |e: std::io::Error| CliError::Runtime(e.to_string());
    writeln!(
        out,
        "driftwatch demo: a model server, driftwatch in front of it, and traffic"
    )
    .map_err(io)?;
    writeln!(
        out,
        "  model server  http://{model_addr}  (Open Inference Protocol, model \"{}\")",
        model::MODEL_NAME
    )
    .map_err(io)?;
    writeln!(
        out,
        "  proxy         http://{proxy_addr}/v2/models/{}/infer",
        model::MODEL_NAME
    )
    .map_err(io)?;
    writeln!(out, "  metrics       http://{admin_addr}/metrics").map_err(io)?;
    writeln!(out, "  readiness     http://{admin_addr}/readyz").map_err(io)?;
    writeln!(out, "  config        http://{admin_addr}/api/v1/config").map_err(io)?;
    writeln!(
        out,
        "  records       {} (10% sampled, errors and slow always)",
        records_path.display()
    )
    .map_err(io)?;
    writeln!(
        out,
        "  traffic       {} req/s for {}; input shift ({}) at {}",
        options.rate,
        HumanDuration(options.duration),
        traffic::DRIFT_DESCRIPTION,
        HumanDuration(options.drift_at)
    )
    .map_err(io)?;
    out.flush().map_err(io)?;

    let started = Instant::now();
    let stats = Arc::new(Mutex::new(TrafficStats::default()));
    let labels = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let generator = tokio::spawn(
        Generator {
            target: format!("http://{proxy_addr}"),
            rate: options.rate,
            workers: WORKERS,
            drift_at: started + options.drift_at,
            until: started + options.duration,
            stats: stats.clone(),
            labels: labels.clone(),
        }
        .run(),
    );
    let recommendations = tokio::spawn(traffic::recommend(
        format!("http://{proxy_addr}"),
        20,
        started + options.duration,
    ));
    let label_sender = tokio::spawn(traffic::send_labels(
        admin_addr.to_string(),
        labels,
        started + options.duration,
    ));

    let mut ticker =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let mut previous_requests = 0;
    let mut watcher = watch::Watcher::new(admin_addr.to_string());
    loop {
        ticker.tick().await;
        if generator.is_finished() {
            break;
        }
        watcher.poll(started.elapsed().as_secs_f64()).await;
        let line = {
            let mut stats = stats.lock().expect("stats lock");
            let window = stats.window_latency_us.take();
            let (p50, p99) = window.as_ref().map_or((0.0, 0.0), |h| {
                (
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            });
            let rps = stats.requests - previous_requests;
            previous_requests = stats.requests;
            let phase = if started.elapsed() >= options.drift_at {
                "shifted"
            } else {
                "reference"
            };
            let records = RecordCounts::read(&registry.render());
            format!(
                "[{:>4}s] requests={} rps={} p50={p50:.2}ms p99={p99:.2}ms errors={} records={} dropped={} inputs={phase} {}",
                started.elapsed().as_secs(),
                stats.requests,
                rps,
                stats.errors,
                records.delivered,
                records.dropped,
                watcher.drift_fragment(),
            )
        };
        writeln!(out, "{line}").map_err(io)?;
        out.flush().map_err(io)?;
    }
    let _ = generator.await;
    // The last labels are not due yet; the demo sends them now rather than wait.
    let _ = label_sender.await;
    let recommendation_requests = recommendations.await.unwrap_or(0);
    watcher.poll(started.elapsed().as_secs_f64()).await;
    let (validation, outliers) = watcher.validation().await;

    let counted = sum_metric(&registry.render(), "driftwatch_http_requests_total");
    let _ = stop.send(());
    let _ = instance.await;
    // After shutdown the sinks have flushed: these are the final counts.
    let records = RecordCounts::read(&registry.render());
    model_server.abort();

    let stats = stats.lock().expect("stats lock");
    let (p50, p99) = stats.latency_us.as_ref().map_or((0.0, 0.0), |h| {
        (
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
        )
    });
    writeln!(out, "report").map_err(io)?;
    writeln!(out, "  client sent {} requests ({} rows), {} errors; latency through driftwatch p50={p50:.2}ms p99={p99:.2}ms", stats.requests, stats.rows, stats.errors).map_err(io)?;
    writeln!(
        out,
        "  client sent {recommendation_requests} recommendation requests (lists and clicks)"
    )
    .map_err(io)?;
    writeln!(
        out,
        "  driftwatch counted {counted} exchanges (driftwatch_http_requests_total)"
    )
    .map_err(io)?;
    writeln!(
        out,
        "  records: {} delivered to {}, {} dropped ({})",
        records.delivered,
        records_path.display(),
        records.dropped,
        if records.dropped == 0 {
            "none".to_owned()
        } else {
            records.reasons.join(", ")
        }
    )
    .map_err(io)?;
    writeln!(
        out,
        "  validation (input values by status), outliers: {outliers} rows"
    )
    .map_err(io)?;
    for (column, counts) in &validation {
        let counts: Vec<String> = counts
            .iter()
            .map(|(status, n)| format!("{status}={n}"))
            .collect();
        writeln!(out, "    {column:<13} {}", counts.join(" ")).map_err(io)?;
    }
    for line in drift_report(&watcher, options.drift_at.as_secs_f64()) {
        writeln!(out, "  {line}").map_err(io)?;
    }
    for line in watcher.performance_report(options.drift_at.as_secs_f64()) {
        writeln!(out, "  {line}").map_err(io)?;
    }
    for line in watcher.diversity_report() {
        writeln!(out, "  {line}").map_err(io)?;
    }
    Ok(())
}

/// What the drift detector found, and when, compared with what the demo injected.
fn drift_report(watcher: &watch::Watcher, drift_at: f64) -> Vec<String> {
    let mut lines = Vec::new();
    match watcher.reference_ready_at {
        Some(at) => lines.push(format!(
            "reference learned from the first 3000 rows (ready at {at:.0}s)"
        )),
        None => {
            lines.push("drift: the reference was still being learned (run longer)".to_owned());
            return lines;
        }
    }
    let before: Vec<&watch::WindowSeen> = watcher
        .windows
        .iter()
        .filter(|w| w.seen_at < drift_at)
        .collect();
    let false_alarms: Vec<String> = before
        .iter()
        .flat_map(|w| w.columns.iter().filter(|c| c.3).map(|c| c.0.clone()))
        .collect();
    lines.push(format!(
        "before the shift: {} windows, {}",
        before.len(),
        if false_alarms.is_empty() {
            "no column drifted".to_owned()
        } else {
            format!("drift flagged on {}", false_alarms.join(", "))
        }
    ));
    let detected = watcher
        .windows
        .iter()
        .find(|w| w.seen_at >= drift_at && w.columns.iter().any(|c| c.3));
    match detected {
        Some(window) => {
            let format = |drifted: bool| -> String {
                window
                    .columns
                    .iter()
                    .filter(|c| c.3 == drifted)
                    .map(|c| format!("{} ({} {:.3})", c.0, c.1, c.2))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            lines.push(format!(
                "drift: injected at {drift_at:.0}s ({}); detected in window {} at {:.0}s (dataset drift: {})",
                traffic::DRIFT_DESCRIPTION,
                window.index,
                window.seen_at,
                if window.dataset_drifted { "yes" } else { "no" }
            ));
            lines.push(format!("  drifted:     {}", format(true)));
            lines.push(format!("  not drifted: {}", format(false)));
        }
        None => lines.push(format!(
            "drift: injected at {drift_at:.0}s; no window closed after it showed drift (run longer: --duration)"
        )),
    }
    lines
}

/// Record outcomes summed over sinks, from an exposition.
struct RecordCounts {
    delivered: u64,
    dropped: u64,
    reasons: Vec<String>,
}

impl RecordCounts {
    fn read(exposition: &str) -> Self {
        let mut counts = Self {
            delivered: 0,
            dropped: 0,
            reasons: Vec::new(),
        };
        for outcome in [
            "delivered",
            "dropped_queue_full",
            "dropped_spool_full",
            "failed",
        ] {
            let needle = format!("outcome=\"{outcome}\"}}");
            let value = exposition
                .lines()
                .filter(|line| {
                    line.starts_with("driftwatch_records_total{") && line.contains(&needle)
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64;
            if outcome == "delivered" {
                counts.delivered = value;
            } else if value > 0 {
                counts.dropped += value;
                counts.reasons.push(format!("{outcome}={value}"));
            }
        }
        counts
    }
}

/// The sum of every series of a counter in a Prometheus text exposition.
pub fn sum_metric(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
