//! Feedback (SPEC §8): ground-truth labels joined to the predictions they judge, by request id,
//! in bounded memory; live model performance over windows of labels; concept drift on the error
//! stream; and the feedback delay — the length of the feedback loop.
//!
//! Predictions are remembered by the monitor as it reads responses ([`Feedback::remember`]);
//! labels arrive through `POST /api/v1/feedback` (or `/_driftwatch/feedback` on the proxy port,
//! or configured headers) and are joined by [`Feedback::apply`]. Label shift goes through the drift
//! engine: joined labels feed the model's `label` columns.

pub mod http;
pub mod parse;
pub mod performance;
pub mod store;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use metrics::{Counter, Gauge, Histogram, Unit};
use serde::Serialize;
use serde_json::Value;

use self::parse::{Item, Payload};
use self::performance::{ClassificationScores, Confusion, Errors, RegressionScores};
use self::store::{Eviction, Lookup, Pending, PendingStore, Prediction};
use crate::config::FeedbackConfig;
use crate::config::feedback::BaselineSection;
use crate::config::monitoring::TaskName;
use crate::extract::table::{Cell, Extraction};
use crate::monitor::detectors::{Adwin, ChangeDetector, Ddm};
use crate::monitor::reference::{category, number};
use crate::telemetry::Registry;

const FEEDBACK_TOTAL: &str = "driftwatch_feedback_total";
const FEEDBACK_DELAY: &str = "driftwatch_feedback_delay_seconds";
const PERFORMANCE: &str = "driftwatch_model_performance";
const PERFORMANCE_BASELINE: &str = "driftwatch_model_performance_baseline";
const PERFORMANCE_DROP: &str = "driftwatch_model_performance_drop";
const CONCEPT_DRIFT: &str = "driftwatch_concept_drift_detected";
const PENDING: &str = "driftwatch_feedback_pending";
const PENDING_BYTES: &str = "driftwatch_feedback_pending_bytes";
const EVICTED: &str = "driftwatch_feedback_evicted_total";

/// Outcomes of one feedback item, as counted and answered.
/// The margin of a reference profile's `mae`/`rmse` baseline, relative to the value (those are
/// in the target's units; an absolute 0.05 would be noise for prices and nothing for ratios).
pub const PROFILE_ERROR_MARGIN: f64 = 0.1;

pub const OUTCOMES: [&str; 5] = ["joined", "unknown", "expired", "invalid", "duplicate"];

/// What a feedback call did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JoinCounts {
    pub joined: u64,
    pub unknown: u64,
    pub expired: u64,
    pub invalid: u64,
    pub duplicate: u64,
    /// Why items were invalid (the first few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Labels joined for one model: what the drift engine needs for label shift.
pub struct JoinedLabels {
    pub model: Arc<str>,
    pub labels: Vec<Cell>,
    pub time: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Regression,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceReport {
    pub task: Task,
    pub labels: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationScores>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionScores>,
}

impl PerformanceReport {
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        match (&self.classification, &self.regression) {
            (Some(c), _) => vec![
                ("accuracy", c.accuracy),
                ("precision", c.precision),
                ("recall", c.recall),
                ("f1", c.f1),
            ],
            (_, Some(r)) => vec![("mae", r.mae), ("rmse", r.rmse)],
            _ => Vec::new(),
        }
    }
}

struct ModelPerformance {
    task: Option<Task>,
    confusion: Confusion,
    errors: Errors,
    window_labels: usize,
    window_index: u64,
    last: Option<PerformanceReport>,
    ddm: Ddm,
    adwin: Adwin,
    /// A detection not yet confirmed: the number of windows closed since it (the window it fell
    /// in may still be mostly healthy labels).
    concept_drift_pending: Option<u8>,
    /// What `driftwatch_concept_drift_detected` says.
    concept_flag: bool,
    /// The error (1 − accuracy, or MAE) of the last healthy window: the flag needs a window
    /// clearly worse than it, and clears once a window is back near it.
    healthy_error: Option<f64>,
    concept_drift_points: u64,
    baselines: Vec<BaselineSection>,
    gauges: HashMap<&'static str, Gauge>,
    model: String,
    registry: Registry,
    baseline_gauges: HashMap<String, (Gauge, Gauge)>,
    concept_gauge: Gauge,
    delay: Histogram,
    outcomes: HashMap<&'static str, Counter>,
}

/// The baseline and drop gauges of each baseline, the baseline's value set.
fn baseline_gauges(
    model: &str,
    baselines: &[BaselineSection],
    registry: &Registry,
) -> HashMap<String, (Gauge, Gauge)> {
    let mut gauges = HashMap::new();
    for baseline in baselines {
        let series = [("model", model), ("metric", baseline.metric.as_str())];
        let value = registry.gauge(PERFORMANCE_BASELINE, &series);
        value.set(baseline.value);
        gauges.insert(
            baseline.metric.clone(),
            (value, registry.gauge(PERFORMANCE_DROP, &series)),
        );
    }
    gauges
}

impl ModelPerformance {
    fn new(
        model: &str,
        window_labels: usize,
        baselines: Vec<BaselineSection>,
        registry: &Registry,
    ) -> Self {
        let labels = [("model", model)];
        let baseline_gauges = baseline_gauges(model, &baselines, registry);
        Self {
            task: None,
            confusion: Confusion::default(),
            errors: Errors::default(),
            window_labels: window_labels.max(1),
            window_index: 0,
            last: None,
            ddm: Ddm::default(),
            adwin: Adwin::default(),
            concept_drift_pending: None,
            concept_flag: false,
            healthy_error: None,
            concept_drift_points: 0,
            baselines,
            // Registered when the first window of labels closes: a model that has no labels
            // yet (a new replica, a model nobody labels) exports no performance, rather than 0.
            gauges: HashMap::new(),
            model: model.to_owned(),
            registry: registry.clone(),
            baseline_gauges,
            concept_gauge: registry.gauge(CONCEPT_DRIFT, &labels),
            delay: registry.histogram(FEEDBACK_DELAY, &labels),
            outcomes: OUTCOMES
                .iter()
                .map(|outcome| {
                    (
                        *outcome,
                        registry.counter(FEEDBACK_TOTAL, &[("model", model), ("outcome", outcome)]),
                    )
                })
                .collect(),
        }
    }

    /// Replaces the baselines (a reference profile arrived or changed).
    fn set_baselines(&mut self, baselines: Vec<BaselineSection>) {
        for (metric, (value, drop)) in &self.baseline_gauges {
            if !baselines.iter().any(|b| &b.metric == metric) {
                value.set(f64::NAN);
                drop.set(0.0);
            }
        }
        self.baseline_gauges = baseline_gauges(&self.model, &baselines, &self.registry);
        self.baselines = baselines;
        self.update_drops();
    }

    /// `driftwatch_model_performance_drop` from the last complete window against the baselines.
    fn update_drops(&self) {
        let Some(report) = &self.last else {
            return;
        };
        for (metric, value) in report.metrics() {
            for baseline in self.baselines.iter().filter(|b| b.metric == metric) {
                let lower_is_better = matches!(metric, "mae" | "rmse");
                let dropped = if lower_is_better {
                    value > baseline.value + baseline.margin
                } else {
                    value < baseline.value - baseline.margin
                };
                if let Some((_, drop)) = self.baseline_gauges.get(metric) {
                    drop.set(f64::from(u8::from(dropped)));
                }
            }
        }
    }

    fn count(&self, outcome: &'static str) {
        if let Some(counter) = self.outcomes.get(outcome) {
            counter.increment(1);
        }
    }

    /// One labelled row.
    fn add(&mut self, truth: &Value, predicted: &Prediction) -> bool {
        match predicted {
            Prediction::Class(class) => {
                let Some(truth) = category(&Cell::from_json(truth)) else {
                    return false;
                };
                self.task = Some(Task::Classification);
                self.confusion.add(&truth, class);
                let error = f64::from(u8::from(truth.as_str() != &**class));
                if self.ddm.update(error) {
                    self.concept_drift();
                }
            }
            Prediction::Value(value) => {
                let Some(truth) = number(&Cell::from_json(truth)) else {
                    return false;
                };
                self.task = Some(Task::Regression);
                self.errors.add(truth, *value);
                if self.adwin.update((truth - value).abs()) {
                    self.concept_drift();
                }
            }
            Prediction::Missing => return false,
        }
        if self.labels_in_window() >= self.window_labels as u64 {
            self.close_window();
        }
        true
    }

    /// A detector fired. The flag is decided when windows close: DDM on a low error rate fires
    /// on noise (after a run of correct labels its minimum is 0), so a detection raises the flag
    /// only once a window's error is also clearly worse than the last healthy window's; a healthy
    /// window in between dismisses it.
    fn concept_drift(&mut self) {
        self.concept_drift_points += 1;
        self.concept_drift_pending = Some(0);
    }

    fn labels_in_window(&self) -> u64 {
        self.confusion.total() + self.errors.total()
    }

    fn report(&self) -> Option<PerformanceReport> {
        let task = self.task?;
        Some(PerformanceReport {
            task,
            labels: self.labels_in_window(),
            classification: self.confusion.scores(),
            regression: self.errors.scores(),
        })
    }

    fn close_window(&mut self) {
        if let Some(report) = self.report() {
            for (metric, value) in report.metrics() {
                let (registry, model) = (&self.registry, &self.model);
                self.gauges
                    .entry(metric)
                    .or_insert_with(|| {
                        registry.gauge(PERFORMANCE, &[("model", model), ("metric", metric)])
                    })
                    .set(value);
            }
            self.last = Some(report);
            self.update_drops();
        }
        // The flag rises with a detection and stays up until a whole window's error is back
        // near what it was before the change (the model recovered, or was replaced).
        let error = self.last.as_ref().and_then(|report| {
            report
                .classification
                .map(|c| 1.0 - c.accuracy)
                .or(report.regression.map(|r| r.mae))
        });
        if let Some(error) = error {
            let worse = self
                .healthy_error
                .is_some_and(|healthy| error > healthy * 1.1 + 0.01);
            if worse && self.concept_drift_pending.is_some() {
                // A detection, confirmed by a window clearly worse than the healthy one.
                self.concept_flag = true;
                self.concept_drift_pending = None;
            } else if !worse {
                // Healthy (again): the reference for the next windows, and the flag clears. A
                // detection survives the (mixed) window it fell in, and is dismissed by the next
                // healthy one.
                self.concept_flag = false;
                self.healthy_error = Some(error);
                self.concept_drift_pending = match self.concept_drift_pending {
                    Some(0) => Some(1),
                    _ => None,
                };
            }
        }
        self.concept_gauge
            .set(f64::from(u8::from(self.concept_flag)));
        self.confusion = Confusion::default();
        self.errors = Errors::default();
        self.window_index += 1;
    }
}

pub struct Feedback {
    config: FeedbackConfig,
    store: PendingStore,
    models: HashMap<String, ModelPerformance>,
    window_labels: usize,
    registry: Registry,
    pending: Gauge,
    pending_bytes: Gauge,
    unknown: Counter,
    rewards: Option<std::io::BufWriter<std::fs::File>>,
    /// Each model's reference-profile performance (default baselines).
    profile_performance: HashMap<String, std::collections::BTreeMap<String, f64>>,
}

impl Feedback {
    pub fn new(
        config: FeedbackConfig,
        window_labels: usize,
        registry: &Registry,
    ) -> Result<Self, String> {
        registry.describe_counter(
            FEEDBACK_TOTAL,
            "Feedback items by outcome: joined, unknown, expired, invalid, duplicate.",
        );
        registry.describe_histogram(
            FEEDBACK_DELAY,
            Unit::Seconds,
            "Time from a prediction to its label: the feedback loop length.",
        );
        registry.describe_gauge(PERFORMANCE, "Model performance over the last complete window of labels (accuracy, precision, recall, f1 macro; mae, rmse).");
        registry.describe_gauge(
            PERFORMANCE_BASELINE,
            "The configured expected performance (feedback.baselines).",
        );
        registry.describe_gauge(
            PERFORMANCE_DROP,
            "1 when the last window undercut its baseline by more than the margin.",
        );
        registry.describe_gauge(CONCEPT_DRIFT, "1 when DDM (classification) or ADWIN (regression) found a change in the error stream in the current or last window.");
        registry.describe_gauge(PENDING, "Predictions waiting for labels.");
        registry.describe_gauge(
            PENDING_BYTES,
            "Approximate memory held by predictions waiting for labels.",
        );
        registry.describe_counter(
            EVICTED,
            "Predictions dropped without a label, by reason (ttl, capacity).",
        );
        let rewards = match &config.rewards_file {
            Some(path) => Some(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("feedback.rewards_file {}: {e}", path.display()))?,
            )),
            None => None,
        };
        Ok(Self {
            store: PendingStore::new(config.ttl, config.max_pending, config.max_pending_bytes),
            config,
            models: HashMap::new(),
            window_labels,
            pending: registry.gauge(PENDING, &[]),
            pending_bytes: registry.gauge(PENDING_BYTES, &[]),
            unknown: registry.counter(
                FEEDBACK_TOTAL,
                &[("model", "unknown"), ("outcome", "unknown")],
            ),
            registry: registry.clone(),
            rewards,
            profile_performance: HashMap::new(),
        })
    }

    pub fn config(&self) -> &FeedbackConfig {
        &self.config
    }

    pub fn pending(&self) -> usize {
        self.store.len()
    }

    pub fn pending_bytes(&self) -> usize {
        self.store.bytes()
    }

    /// The model's baselines: the configured ones, then the reference profile's performance for
    /// every metric the config leaves out (with the default margin).
    fn baselines_for(&self, model: &str) -> Vec<BaselineSection> {
        let mut baselines: Vec<BaselineSection> = self
            .config
            .baselines
            .iter()
            .filter(|b| b.model == model)
            .cloned()
            .collect();
        if let Some(performance) = self.profile_performance.get(model) {
            for (metric, value) in performance {
                if !baselines.iter().any(|b| &b.metric == metric)
                    && crate::config::feedback::METRICS.contains(&metric.as_str())
                    && value.is_finite()
                {
                    // Error metrics are in the target's units: their margin is relative.
                    let margin = if matches!(metric.as_str(), "mae" | "rmse") {
                        PROFILE_ERROR_MARGIN * value.abs()
                    } else {
                        crate::config::feedback::DEFAULT_MARGIN
                    };
                    baselines.push(BaselineSection {
                        model: model.to_owned(),
                        metric: metric.clone(),
                        value: *value,
                        margin,
                    });
                }
            }
        }
        baselines
    }

    /// The performance a model's reference profile measured (`Profile::performance`), used as
    /// its baseline where the config sets none.
    pub fn set_profile_performance(
        &mut self,
        model: &str,
        performance: &std::collections::BTreeMap<String, f64>,
    ) {
        if performance.is_empty() && !self.profile_performance.contains_key(model) {
            return;
        }
        self.profile_performance
            .insert(model.to_owned(), performance.clone());
        let baselines = self.baselines_for(model);
        if let Some(existing) = self.models.get_mut(model) {
            existing.set_baselines(baselines);
        }
    }

    fn model(&mut self, model: &str) -> &mut ModelPerformance {
        if !self.models.contains_key(model) {
            let baselines = self.baselines_for(model);
            let performance =
                ModelPerformance::new(model, self.window_labels, baselines, &self.registry);
            self.models.insert(model.to_owned(), performance);
        }
        self.models.get_mut(model).expect("inserted above")
    }

    fn count_evictions(&mut self, evicted: Vec<(Arc<str>, Eviction)>) {
        for (model, reason) in evicted {
            let reason = match reason {
                Eviction::Ttl => "ttl",
                Eviction::Capacity => "capacity",
            };
            self.registry
                .counter(EVICTED, &[("model", &model), ("reason", reason)])
                .increment(1);
        }
        self.pending.set(self.store.len() as f64);
        self.pending_bytes.set(self.store.bytes() as f64);
    }

    /// Counts items rejected before any join (a malformed feedback body).
    pub fn count_invalid(&self, items: u64) {
        self.registry
            .counter(
                FEEDBACK_TOTAL,
                &[("model", "unknown"), ("outcome", "invalid")],
            )
            .increment(items);
    }

    /// Remembers the predictions of one exchange until its labels come.
    pub fn remember(
        &mut self,
        request_id: &str,
        model: &str,
        time: SystemTime,
        predictions: Vec<Prediction>,
        now: SystemTime,
    ) {
        if predictions.is_empty() || request_id.is_empty() {
            return;
        }
        self.model(model);
        let pending = Pending {
            model: self.store.model_name(model),
            time,
            predictions: predictions.into(),
            joined: false,
        };
        let evicted = self.store.insert(request_id, pending, now);
        self.count_evictions(evicted);
    }

    /// Joins labels; returns the counts and the labels joined per model (for label shift).
    pub fn apply(&mut self, items: Vec<Item>, now: SystemTime) -> (JoinCounts, Vec<JoinedLabels>) {
        let evicted = self.store.evict(now);
        self.count_evictions(evicted);
        let mut counts = JoinCounts::default();
        let mut joined_labels: Vec<JoinedLabels> = Vec::new();
        for item in items {
            match item.payload {
                Payload::Rewards(rewards) => {
                    self.reward(&item.request_id, &rewards, now, &mut counts)
                }
                Payload::Labels(labels) => self.join(
                    &item.request_id,
                    Labels::PerRow(labels),
                    now,
                    &mut counts,
                    &mut joined_labels,
                ),
                Payload::Label(label) => self.join(
                    &item.request_id,
                    Labels::One(label),
                    now,
                    &mut counts,
                    &mut joined_labels,
                ),
            }
        }
        if let Some(rewards) = &mut self.rewards {
            let _ = rewards.flush();
        }
        (counts, joined_labels)
    }

    fn reward(
        &mut self,
        request_id: &str,
        rewards: &[(String, f64)],
        now: SystemTime,
        counts: &mut JoinCounts,
    ) {
        let Some(file) = &mut self.rewards else {
            counts.invalid += 1;
            counts.problems.push(format!(
                "{request_id}: rewards need feedback.rewards_file to be configured"
            ));
            return;
        };
        let time = humantime::format_rfc3339_micros(now).to_string();
        for (item, reward) in rewards {
            let line = serde_json::json!({"request_id": request_id, "id": item, "reward": reward, "time": time});
            let _ = writeln!(file, "{line}");
        }
        counts.joined += 1;
    }

    fn join(
        &mut self,
        request_id: &str,
        labels: Labels,
        now: SystemTime,
        counts: &mut JoinCounts,
        joined_labels: &mut Vec<JoinedLabels>,
    ) {
        let (model, predictions, time) = match self.store.lookup(request_id) {
            Lookup::Unknown => {
                counts.unknown += 1;
                self.unknown.increment(1);
                return;
            }
            Lookup::Expired(model) => {
                counts.expired += 1;
                self.model(&model).count("expired");
                return;
            }
            Lookup::Found(pending) => {
                if pending.joined {
                    let model = pending.model.clone();
                    counts.duplicate += 1;
                    self.model(&model).count("duplicate");
                    return;
                }
                (
                    pending.model.clone(),
                    pending.predictions.clone(),
                    pending.time,
                )
            }
        };
        let truths: Vec<Value> = match labels {
            Labels::PerRow(values) if values.len() == predictions.len() => values,
            Labels::PerRow(values) => {
                counts.invalid += 1;
                counts.problems.push(format!(
                    "{request_id}: {} labels for {} rows",
                    values.len(),
                    predictions.len()
                ));
                self.model(&model).count("invalid");
                return;
            }
            Labels::One(value) => vec![value; predictions.len()],
        };
        let performance = self.model(&model);
        let mut scored = 0;
        for (truth, predicted) in truths.iter().zip(predictions.iter()) {
            if performance.add(truth, predicted) {
                scored += 1;
            }
        }
        if scored == 0 {
            counts.invalid += 1;
            counts.problems.push(format!(
                "{request_id}: labels of the wrong type for the predictions"
            ));
            performance.count("invalid");
            return;
        }
        performance.count("joined");
        performance
            .delay
            .record(now.duration_since(time).unwrap_or_default().as_secs_f64());
        if let Lookup::Found(pending) = self.store.lookup(request_id) {
            pending.joined = true;
        }
        counts.joined += 1;
        joined_labels.push(JoinedLabels {
            model,
            labels: truths.iter().map(Cell::from_json).collect(),
            time: now,
        });
    }

    /// `GET /api/v1/performance`.
    pub fn report(&self) -> Value {
        let mut models: Vec<(&String, &ModelPerformance)> = self.models.iter().collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        let list: Vec<Value> = models
            .into_iter()
            .map(|(name, performance)| {
                serde_json::json!({
                    "model": name,
                    "task": performance.task,
                    "window_labels": performance.window_labels,
                    "window_index": performance.window_index,
                    "last_window": performance.last,
                    "open_window": performance.report(),
                    "concept_drift": {
                        "detected": performance.concept_flag,
                        "change_points": performance.concept_drift_points,
                    },
                    "baselines": performance.baselines.iter().map(|b| serde_json::json!({"metric": b.metric, "value": b.value, "margin": b.margin})).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "pending": self.store.len(),
            "pending_bytes": self.store.bytes(),
            "models": list,
        })
    }
}

enum Labels {
    PerRow(Vec<Value>),
    One(Value),
}

/// What each row predicted: a categorical output is a class; several numeric outputs are class
/// probabilities (argmax, unless the task is regression); one numeric output is a value (a class
/// when the task is classification). The argmax class is the output column's configured name
/// when `outputs.names` names the classes (`[setosa, versicolor, virginica]`), else its index.
pub fn predictions(
    extraction: &Extraction,
    task: Option<TaskName>,
    output_names: &[String],
) -> Vec<Prediction> {
    let outputs = &extraction.outputs;
    if outputs.columns.is_empty() {
        return Vec::new();
    }
    let probabilities = outputs.columns.len() > 1
        && outputs.columns.iter().all(|c| !c.categorical)
        && task != Some(TaskName::Regression);
    outputs
        .rows
        .iter()
        .map(|cells| {
            if probabilities {
                let best = cells
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| number(c).map(|x| (i, x)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                return best.map_or(Prediction::Missing, |(i, _)| match output_names.get(i) {
                    Some(name) if output_names.len() == cells.len() => {
                        Prediction::Class(name.as_str().into())
                    }
                    _ => Prediction::Class(i.to_string().into()),
                });
            }
            let cell = &cells[0];
            if outputs.columns[0].categorical || task == Some(TaskName::Classification) {
                category(cell).map_or(Prediction::Missing, |c| Prediction::Class(c.into()))
            } else {
                number(cell).map_or(Prediction::Missing, Prediction::Value)
            }
        })
        .collect()
}

/// The label value a header carries: a JSON value when it parses as one, else the text.
pub fn header_label(value: &::http::HeaderValue) -> Option<Value> {
    let text = value.to_str().ok()?.trim();
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::monitoring::ModelSpec;

    fn extraction(spec: &ModelSpec) -> Extraction {
        let request =
            br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}"#;
        let response = br#"{"outputs":[{"name":"proba","shape":[2,3],"datatype":"FP32","data":[0.1,0.7,0.2,0.6,0.3,0.1]}]}"#;
        crate::extract::extract(
            "/v2/models/iris/infer",
            request,
            false,
            Some(response),
            false,
            spec,
        )
        .expect("an Open Inference exchange")
        .1
    }

    #[test]
    fn argmax_classes_take_the_configured_output_names() {
        let mut spec = ModelSpec::auto("iris");
        let by_index = predictions(&extraction(&spec), None, &spec.output_names);
        assert_eq!(
            by_index,
            vec![Prediction::Class("1".into()), Prediction::Class("0".into())]
        );
        spec.output_names = vec!["setosa".into(), "versicolor".into(), "virginica".into()];
        let named = predictions(&extraction(&spec), None, &spec.output_names);
        assert_eq!(
            named,
            vec![
                Prediction::Class("versicolor".into()),
                Prediction::Class("setosa".into())
            ]
        );
    }
}
