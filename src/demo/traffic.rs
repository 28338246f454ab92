//! The demo's traffic generator: iris-like rows sent as Open Inference requests at a steady rate,
//! with the input distribution shifted after the drift point.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use super::model::MODEL_NAME;

/// Per-class means and standard deviations of the four iris features (Fisher's data).
const CLASSES: [([f64; 4], [f64; 4]); 3] = [
    ([5.006, 3.428, 1.462, 0.246], [0.352, 0.379, 0.174, 0.105]),
    ([5.936, 2.770, 4.260, 1.326], [0.516, 0.314, 0.470, 0.198]),
    ([6.588, 2.974, 5.552, 2.026], [0.636, 0.322, 0.552, 0.275]),
];

/// The shift applied after the drift point: petal length grows, sepal width narrows.
pub const DRIFT_DESCRIPTION: &str = "petal_length +1.5, sepal_width x0.8";

/// Counters the summary reads; one lock, taken once per response.
#[derive(Default)]
pub struct TrafficStats {
    pub requests: u64,
    pub errors: u64,
    pub rows: u64,
    pub latency_us: Option<Histogram<u64>>,
    pub window_latency_us: Option<Histogram<u64>>,
}

impl TrafficStats {
    fn record(&mut self, micros: u64, ok: bool, rows: u64) {
        self.requests += 1;
        self.rows += rows;
        if !ok {
            self.errors += 1;
        }
        for histogram in [&mut self.latency_us, &mut self.window_latency_us] {
            let histogram = histogram.get_or_insert_with(new_histogram);
            let _ = histogram.record(micros.max(1));
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

/// A row of the four features; after the drift point, shifted.
pub fn sample_row(rng: &mut SmallRng, drifted: bool) -> [f64; 4] {
    let (means, stds) = CLASSES[rng.random_range(0..CLASSES.len())];
    let mut row = [0.0; 4];
    for (i, value) in row.iter_mut().enumerate() {
        *value = means[i] + stds[i] * standard_normal(rng);
    }
    if drifted {
        row[2] += 1.5;
        row[1] *= 0.8;
    }
    row.map(|v: f64| (v.max(0.1) * 100.0).round() / 100.0)
}

fn standard_normal(rng: &mut SmallRng) -> f64 {
    // Box–Muller; the demo needs plausible data, not a fast sampler.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Share of rows with an implausible value (an edge case the model never saw).
const OUTLIER_SHARE: f64 = 0.01;
/// Share of rows whose sepal width is sent as `NaN`, the way Python's `json` writes it.
const NAN_SHARE: f64 = 0.005;

/// An Open Inference request for `rows`, written like Python clients write it: a `[N, 4]` FP64
/// tensor, with the occasional outlier and `NaN`.
pub fn request_body(rows: &[[f64; 4]], rng: &mut SmallRng) -> String {
    let formatted: Vec<String> = rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            if rng.random_bool(OUTLIER_SHARE) {
                cells[3] = "9.9".to_owned();
            } else if rng.random_bool(NAN_SHARE) {
                cells[1] = "NaN".to_owned();
            }
            format!("[{}]", cells.join(","))
        })
        .collect();
    format!(
        r#"{{"inputs":[{{"name":"predict","shape":[{},4],"datatype":"FP64","data":[{}]}}]}}"#,
        rows.len(),
        formatted.join(",")
    )
}

pub struct Generator {
    pub target: String,
    pub rate: u32,
    pub workers: u32,
    pub drift_at: Instant,
    pub until: Instant,
    pub stats: Arc<Mutex<TrafficStats>>,
    /// Ground truth of each answered request, as feedback lines, with when they become known.
    pub labels: Arc<Mutex<std::collections::VecDeque<(Instant, String)>>>,
}

/// How late the ground truth becomes known (the feedback loop of the demo's "business").
pub const LABEL_DELAY: Duration = Duration::from_secs(2);
/// Share of labels that disagree with the true concept (noisy ground truth).
const LABEL_NOISE: f64 = 0.03;

/// The true class of a row. Before the concept change it is the rule the model learned (so a
/// shift in the inputs alone does not make the model wrong); after it, the boundary between
/// versicolor and virginica moves from petal width 1.75 down to 1.3 — invisible in the inputs.
pub fn true_class(row: &[f64; 4], concept_changed: bool) -> i64 {
    let (petal_length, petal_width) = (row[2], row[3]);
    let boundary = if concept_changed { 1.3 } else { 1.75 };
    if petal_length < 2.45 {
        0
    } else if petal_width < boundary {
        1
    } else {
        2
    }
}

impl Generator {
    /// Sends requests until `until`; each worker paces itself so the total is about `rate`.
    pub async fn run(self) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let period = Duration::from_secs_f64(f64::from(self.workers) / f64::from(self.rate.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..self.workers {
            let client = client.clone();
            let stats = self.stats.clone();
            let url = format!("{}/v2/models/{MODEL_NAME}/infer", self.target);
            let (drift_at, until) = (self.drift_at, self.until);
            let labels = self.labels.clone();
            tasks.spawn(async move {
                let mut rng = SmallRng::seed_from_u64(0x5eed + u64::from(worker));
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    if Instant::now() >= until {
                        break;
                    }
                    let drifted = Instant::now() >= drift_at;
                    let rows: Vec<[f64; 4]> = (0..rng.random_range(1..=4))
                        .map(|_| sample_row(&mut rng, drifted))
                        .collect();
                    let body = request_body(&rows, &mut rng);
                    let request = Request::post(&url)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .expect("static request parts are valid");
                    let started = Instant::now();
                    let ok = match client.request(request).await {
                        Ok(response) => {
                            let success = response.status().is_success();
                            let id = response
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let read = response.into_body().collect().await.is_ok();
                            if let (true, Some(id)) = (success && read, id) {
                                let truths: Vec<i64> = rows
                                    .iter()
                                    .map(|row| {
                                        let truth = true_class(row, drifted);
                                        if rng.random_bool(LABEL_NOISE) {
                                            (truth + 1) % 3
                                        } else {
                                            truth
                                        }
                                    })
                                    .collect();
                                let line = serde_json::json!({"request_id": id, "labels": truths})
                                    .to_string();
                                labels
                                    .lock()
                                    .expect("labels lock")
                                    .push_back((Instant::now() + LABEL_DELAY, line));
                            }
                            success && read
                        }
                        Err(_) => false,
                    };
                    let micros = started.elapsed().as_micros() as u64;
                    stats
                        .lock()
                        .expect("stats lock")
                        .record(micros, ok, rows.len() as u64);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Posts the labels whose time has come to driftwatch's feedback endpoint, as NDJSON, until
/// `until` (then the rest).
pub async fn send_labels(
    admin: String,
    labels: Arc<Mutex<std::collections::VecDeque<(Instant, String)>>>,
    until: Instant,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{admin}/api/v1/feedback");
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let finished = Instant::now() >= until;
        let due: Vec<String> = {
            let mut queue = labels.lock().expect("labels lock");
            let mut due = Vec::new();
            while queue
                .front()
                .is_some_and(|(at, _)| finished || *at <= Instant::now())
            {
                if let Some((_, line)) = queue.pop_front() {
                    due.push(line);
                }
            }
            due
        };
        if !due.is_empty() {
            let request = Request::post(&url)
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(Full::new(Bytes::from(due.join("\n"))))
                .expect("static request parts are valid");
            if let Ok(response) = client.request(request).await {
                let _ = response.into_body().collect().await;
            }
        }
        if finished {
            return;
        }
    }
}

/// Recommendation traffic: simulated users ask each variant for a list and click on what they
/// see — more on appealing items, far more at the top (position bias). Their clicks retrain the
/// popularity model: the feedback loop. Returns how many requests (lists and clicks) were
/// answered, all of them through driftwatch.
pub async fn recommend(target: String, rate: u32, until: Instant) -> u64 {
    use super::recommender::{DISPLAYED, VARIANTS, appeal};
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut rng = SmallRng::seed_from_u64(0x7ec5);
    let mut answered = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < until {
        ticker.tick().await;
        for variant in VARIANTS {
            let user = rng.random_range(0..1000u32);
            let request = Request::get(format!("{target}/recommend/{variant}?user={user}"))
                .header("x-user-id", format!("user-{user}"))
                .body(Full::new(Bytes::new()))
                .expect("static request parts are valid");
            let Ok(response) = client.request(request).await else {
                continue;
            };
            answered += 1;
            let Ok(body) = response.into_body().collect().await else {
                continue;
            };
            let Ok(list) = serde_json::from_slice::<serde_json::Value>(&body.to_bytes()) else {
                continue;
            };
            let shown: Vec<usize> = list["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .take(DISPLAYED)
                        .filter_map(|i| i["id"].as_str()?.strip_prefix("item-")?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            for (position, item) in shown.into_iter().enumerate() {
                if rng.random_bool((appeal(item) / (1.0 + position as f64)).min(1.0)) {
                    let click = Request::get(format!("{target}/clicks/{variant}?item={item}"))
                        .body(Full::new(Bytes::new()))
                        .expect("static request parts are valid");
                    if let Ok(response) = client.request(click).await {
                        answered += 1;
                        let _ = response.into_body().collect().await;
                    }
                }
            }
        }
    }
    answered
}
