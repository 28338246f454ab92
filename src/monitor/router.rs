//! Which model an exchange belongs to, and the set of monitored models.
//!
//! Routing: a configured `models[].match.path_prefix` (longest wins); else the model named in an
//! Open Inference / KServe v1 path, with its configured spec when there is one; else the name the
//! payload gives (OpenAI's `model`, Open Inference's `model_name`), else `default`. At most
//! `monitoring.max_models` models are tracked; exchanges of further models are counted as
//! `driftwatch_extract_errors_total{model="other",reason="model_limit"}`.
//!
//! [`Models::observe`] hands the name back in [`MonitorFindings::model`] (unless the exchange fell
//! to `default`), with the version the path or payload gave, for the record's `model` and
//! `model_version`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use metrics::Counter;

use super::model::{ExchangeFacts, ModelMonitor, MonitorFindings};
use super::reference::Profile;
use crate::config::{FeedbackConfig, ModelSpec, MonitoringConfig};
use crate::extract;
use crate::feedback::parse::Item;
use crate::feedback::{Feedback, JoinCounts};
use crate::telemetry::Registry;

pub type SharedModels = Arc<Mutex<Models>>;

/// Model name for exchanges whose model cannot be told.
pub const DEFAULT_MODEL: &str = "default";
/// The extract error reason when `monitoring.max_models` is reached.
pub const MODEL_LIMIT: &str = "model_limit";

/// One exchange, as monitoring reads it (from a live observation or a replayed record).
pub struct Sample<'a> {
    /// The request id, which labels will name.
    pub request_id: &'a str,
    pub path: &'a str,
    /// The model label the proxy already gave the exchange, if any.
    pub model_hint: Option<&'a str>,
    pub request: &'a [u8],
    pub request_truncated: bool,
    /// `None` when there was no 2xx response.
    pub response: Option<&'a [u8]>,
    pub response_truncated: bool,
    pub facts: ExchangeFacts,
}

pub struct Models {
    config: Arc<MonitoringConfig>,
    specs: Vec<ModelSpec>,
    references: HashMap<String, Profile>,
    monitors: BTreeMap<String, ModelMonitor>,
    registry: Registry,
    extract_errors: HashMap<(String, &'static str), Counter>,
    /// Keep every closed window's report (for replay), not only the last.
    keep_closed: bool,
    /// Predictions waiting for labels, and performance from joined labels.
    pub feedback: Feedback,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("model {model}: reference {path}: {message}")]
    Reference {
        model: String,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Feedback(String),
}

/// Labels per performance window: the tumbling window's rows (5,000 with a sliding window, which
/// has no row count).
fn window_labels(config: &MonitoringConfig) -> usize {
    match config.window {
        crate::config::monitoring::WindowConfig::Tumbling { rows } => rows,
        crate::config::monitoring::WindowConfig::Sliding { .. } => 5000,
    }
}

impl Models {
    /// Loads the configured reference files; a missing or invalid one is an error naming it.
    pub fn new(
        config: MonitoringConfig,
        specs: Vec<ModelSpec>,
        registry: &Registry,
        keep_closed: bool,
    ) -> Result<Self, MonitorError> {
        super::describe(registry);
        let mut references = HashMap::new();
        for spec in &specs {
            if let Some(path) = &spec.reference {
                let error = |message: String| MonitorError::Reference {
                    model: spec.name.clone(),
                    path: path.display().to_string(),
                    message,
                };
                let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
                let profile = Profile::from_json(&text).map_err(error)?;
                references.insert(spec.name.clone(), profile);
            }
        }
        let window_labels = window_labels(&config);
        let feedback = Feedback::new(
            crate::config::feedback::validate_feedback(&Default::default())
                .expect("the default feedback config is valid"),
            window_labels,
            registry,
        )
        .expect("the default feedback config opens no file");
        let mut models = Self {
            feedback,
            config: Arc::new(config),
            specs,
            references,
            monitors: BTreeMap::new(),
            registry: registry.clone(),
            extract_errors: HashMap::new(),
            keep_closed,
        };
        models.apply_profile_baselines();
        // Configured models are present from the start (their metrics too).
        for spec in models.specs.clone() {
            models.monitor(&spec.name, spec.clone());
        }
        Ok(models)
    }

    /// The configured reference profiles' performance becomes the feedback baselines.
    fn apply_profile_baselines(&mut self) {
        // Configured profiles not handed to a monitor yet, and those the monitors hold.
        for (model, profile) in &self.references {
            self.feedback
                .set_profile_performance(model, &profile.performance);
        }
        for (model, monitor) in &self.monitors {
            if let Some(profile) = monitor.profile() {
                self.feedback
                    .set_profile_performance(model, &profile.performance);
            }
        }
    }

    /// Replaces the feedback state (with the configured one).
    pub fn with_feedback(mut self, config: FeedbackConfig) -> Result<Self, MonitorError> {
        let window_labels = window_labels(&self.config);
        self.feedback =
            Feedback::new(config, window_labels, &self.registry).map_err(MonitorError::Feedback)?;
        self.apply_profile_baselines();
        Ok(self)
    }

    /// Joins labels (feedback) and feeds them to the drift engine's label columns.
    pub fn apply_feedback(&mut self, items: Vec<Item>, now: SystemTime) -> JoinCounts {
        let (counts, joined) = self.feedback.apply(items, now);
        for labels in joined {
            if let Some(monitor) = self.monitors.get_mut(&*labels.model) {
                monitor.ingest_labels(&labels.labels, labels.time);
            }
        }
        counts
    }

    pub fn config(&self) -> &MonitoringConfig {
        &self.config
    }

    /// Moves every sliding window to `now` (see [`ModelMonitor::advance_to`]).
    pub fn advance_to(&mut self, now: std::time::SystemTime) {
        for monitor in self.monitors.values_mut() {
            monitor.advance_to(now);
        }
    }

    pub fn monitors(&self) -> impl Iterator<Item = &ModelMonitor> {
        self.monitors.values()
    }

    pub fn get(&self, model: &str) -> Option<&ModelMonitor> {
        self.monitors.get(model)
    }

    pub fn get_mut(&mut self, model: &str) -> Option<&mut ModelMonitor> {
        self.monitors.get_mut(model)
    }

    /// Installs a reference for a model (creating its monitor if it is new).
    pub fn set_reference(&mut self, model: &str, profile: Profile) -> Result<(), String> {
        if !self.monitors.contains_key(model) && self.monitors.len() >= self.config.max_models {
            return Err(format!(
                "monitoring.max_models ({}) reached",
                self.config.max_models
            ));
        }
        let spec = self.spec_for_name(model);
        let performance = profile.performance.clone();
        let monitor = self.monitor(model, spec).ok_or("model limit reached")?;
        monitor.set_reference(profile);
        self.feedback.set_profile_performance(model, &performance);
        Ok(())
    }

    fn spec_for_name(&self, name: &str) -> ModelSpec {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| ModelSpec::auto(name))
    }

    /// The spec for an exchange, before its payload is read.
    fn route(&self, path: &str, hint: Option<&str>) -> Option<ModelSpec> {
        let by_prefix = self
            .specs
            .iter()
            .filter(|s| {
                s.path_prefix
                    .as_deref()
                    .is_some_and(|p| path.starts_with(p))
            })
            .max_by_key(|s| s.path_prefix.as_ref().map_or(0, String::len));
        if let Some(spec) = by_prefix {
            return Some(spec.clone());
        }
        let named = extract::model_from_path(path)
            .map(|(name, _)| name)
            .or_else(|| hint.map(str::to_owned));
        named.map(|name| self.spec_for_name(&name))
    }

    fn monitor(&mut self, name: &str, spec: ModelSpec) -> Option<&mut ModelMonitor> {
        if !self.monitors.contains_key(name) {
            if self.monitors.len() >= self.config.max_models {
                return None;
            }
            let reference = self.references.remove(name);
            let monitor = ModelMonitor::new(
                name,
                spec,
                reference,
                self.config.clone(),
                &self.registry,
                self.keep_closed,
            );
            self.monitors.insert(name.to_owned(), monitor);
        }
        self.monitors.get_mut(name)
    }

    fn count_error(&mut self, model: &str, reason: &'static str) {
        let key = (model.to_owned(), reason);
        let registry = &self.registry;
        self.extract_errors
            .entry(key)
            .or_insert_with(|| {
                registry.counter(
                    super::EXTRACT_ERRORS,
                    &[("model", model), ("reason", reason)],
                )
            })
            .increment(1);
    }

    /// Reads, validates and counts one exchange; `None` when it could not be read.
    pub fn observe(&mut self, sample: &Sample<'_>) -> Option<MonitorFindings> {
        if !self.config.enabled {
            return None;
        }
        let routed = self.route(sample.path, sample.model_hint);
        let spec = routed
            .clone()
            .unwrap_or_else(|| ModelSpec::auto(DEFAULT_MODEL));
        let (protocol, extraction) = match extract::extract(
            sample.path,
            sample.request,
            sample.request_truncated,
            sample.response,
            sample.response_truncated,
            &spec,
        ) {
            Ok(extracted) => extracted,
            Err(error) => {
                let model = if self.monitors.contains_key(&spec.name)
                    || self.monitors.len() < self.config.max_models
                {
                    spec.name.clone()
                } else {
                    "other".to_owned()
                };
                tracing::debug!(%model, %error, "payload not extracted");
                self.count_error(&model, error.reason);
                return None;
            }
        };
        // Something named the model (a configured prefix, the path, the proxy's label, or the
        // payload); otherwise it is monitored as `default`, which names nothing.
        let named = routed.is_some() || extraction.model.is_some();
        let name = match &routed {
            Some(spec) => spec.name.clone(),
            None => extraction
                .model
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        };
        let spec = if routed.is_some() {
            spec
        } else {
            self.spec_for_name(&name)
        };
        let Some(monitor) = self.monitor(&name, spec) else {
            self.count_error("other", MODEL_LIMIT);
            return None;
        };
        monitor.protocol = Some(protocol.as_str());
        if let Some(version) = &extraction.version {
            monitor.version = Some(version.clone());
        }
        let mut found = monitor.ingest(&extraction, sample.facts);
        found.model = named.then(|| name.clone());
        found.model_version = extraction.version.clone();
        let predictions = crate::feedback::predictions(
            &extraction,
            monitor.spec().task,
            &monitor.spec().output_names,
        );
        self.feedback.remember(
            sample.request_id,
            &name,
            sample.facts.time,
            predictions,
            SystemTime::now().max(sample.facts.time),
        );
        if let Some(error) = &extraction.response_error {
            self.count_error(&name, error.reason);
        }
        Some(found)
    }
}
