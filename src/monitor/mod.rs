//! Monitoring on the analysis path (SPEC §7): every exchange's payload is extracted into rows
//! ([`crate::extract`]), each value is validated against the model's reference profile
//! ([`reference`], [`validate`]), rows are scored for outliers, counted into windows on the
//! reference bins ([`window`]), and the windows are judged for drift ([`drift`], [`stats`]);
//! online change detectors ([`detectors`]) watch per-row signals. [`model`] holds one model's
//! state; [`Monitor`] routes exchanges to models and is the analyzer the worker runs.
//!
//! The state is shared with the admin API behind one mutex ([`SharedModels`]): the worker takes it
//! per exchange it analyses, the API briefly per call.

pub mod detectors;
pub mod drift;
pub mod model;
pub mod reference;
pub mod stats;
pub mod validate;
pub mod window;

pub mod router;

pub use router::{Models, Sample, SharedModels};

use std::sync::{Arc, Mutex};

use http::Method;

use self::model::ExchangeFacts;
use crate::feedback::parse::{Item, Payload};
use crate::tap::{Analyzer, Findings, Observation, Outcome};

pub const COLUMN_VALUES: &str = "driftwatch_column_values_total";
pub const DRIFT_SCORE: &str = "driftwatch_drift_score";
pub const DRIFT_DETECTED: &str = "driftwatch_drift_detected";
pub const DATASET_DRIFT_SHARE: &str = "driftwatch_dataset_drift_share";
pub const DATASET_DRIFT_DETECTED: &str = "driftwatch_dataset_drift_detected";
pub const WINDOW_ROWS: &str = "driftwatch_window_rows";
pub const BIN_ROWS: &str = "driftwatch_column_bin_rows_total";
pub const REFERENCE_BIN_FRACTION: &str = "driftwatch_reference_bin_fraction";
pub const OUTLIER_ROWS: &str = "driftwatch_outlier_rows_total";
pub const REQUEST_ISSUES: &str = "driftwatch_request_issues_total";
pub const CHANGE_POINTS: &str = "driftwatch_change_points_total";
pub const EXTRACT_ERRORS: &str = "driftwatch_extract_errors_total";

/// The analyzer: hands each exchange's captured bodies to the shared [`Models`].
pub struct Monitor {
    models: SharedModels,
}

impl Monitor {
    pub fn new(models: SharedModels) -> Self {
        Self { models }
    }

    pub fn shared(models: Models) -> SharedModels {
        Arc::new(Mutex::new(models))
    }
}

impl Monitor {
    /// Labels carried by headers (`feedback.response_label_header`, `feedback.request_label`) or
    /// by a later request's body (`feedback.request_label.id_pointer`/`label_pointer`).
    fn labels_from_headers(&self, observation: &Observation) -> Vec<Item> {
        let Ok(models) = self.models.lock() else {
            return Vec::new();
        };
        let config = models.feedback.config().clone();
        drop(models);
        let mut items = Vec::new();
        let label = |value: serde_json::Value| match value {
            serde_json::Value::Array(labels) if !labels.is_empty() => Payload::Labels(labels),
            other => Payload::Label(other),
        };
        if let (Some(name), Some(head)) = (&config.response_label_header, &observation.response)
            && let Some(value) = head
                .headers
                .get(name)
                .and_then(crate::feedback::header_label)
        {
            items.push(Item {
                request_id: observation
                    .request_id
                    .to_str()
                    .unwrap_or_default()
                    .to_owned(),
                payload: label(value),
            });
        }
        if let Some((id_header, label_header)) = &config.request_label {
            let headers = &observation.request.headers;
            if let (Some(id), Some(value)) = (
                headers.get(id_header).and_then(|v| v.to_str().ok()),
                headers
                    .get(label_header)
                    .and_then(crate::feedback::header_label),
            ) {
                items.push(Item {
                    request_id: id.to_owned(),
                    payload: label(value),
                });
            }
        }
        if let Some((id_pointer, label_pointer)) = &config.request_label_pointers
            && !observation.request_capture.truncated()
            && let Ok(body) =
                serde_json::from_slice::<serde_json::Value>(observation.request_capture.as_slice())
            && let (Some(id), Some(value)) = (
                body.pointer(id_pointer).and_then(serde_json::Value::as_str),
                body.pointer(label_pointer),
            )
            && !value.is_null()
        {
            items.push(Item {
                request_id: id.to_owned(),
                payload: label(value.clone()),
            });
        }
        items
    }

    fn apply_labels(&self, labels: Vec<Item>) {
        if labels.is_empty() {
            return;
        }
        if let Ok(mut models) = self.models.lock() {
            models.apply_feedback(labels, std::time::SystemTime::now());
        }
    }
}

impl Analyzer for Monitor {
    fn observe(&mut self, observation: &Observation, findings: &mut Findings) {
        // A response header's label is for this exchange's own prediction: it is applied after
        // the exchange has been monitored (and its prediction remembered).
        let labels = self.labels_from_headers(observation);
        // Inference calls carry a body; health checks, metadata reads and the like do not.
        let method = &observation.request.method;
        if !(method == Method::POST || method == Method::PUT || method == Method::PATCH)
            || observation.request_capture.is_empty() && !observation.request_capture.truncated()
        {
            self.apply_labels(labels);
            return;
        }
        let request = observation.request_capture.as_slice();
        let success = observation
            .response
            .as_ref()
            .is_some_and(|head| head.status.is_success())
            && observation.proxy_error.is_none();
        let response = success.then(|| observation.response_capture.as_slice());
        let server_error = observation
            .response
            .as_ref()
            .is_some_and(|head| head.status.is_server_error());
        let sample = Sample {
            request_id: observation.request_id.to_str().unwrap_or_default(),
            path: observation.request.uri.path(),
            model_hint: (&*observation.model != crate::proxy::metrics::UNKNOWN_MODEL)
                .then_some(&*observation.model),
            request,
            request_truncated: observation.request_capture.truncated(),
            response,
            response_truncated: observation.response_capture.truncated(),
            facts: ExchangeFacts {
                time: observation.started_at,
                latency: observation.timing.total,
                error: server_error
                    || matches!(
                        observation.outcome,
                        Outcome::UpstreamError | Outcome::Timeout
                    ),
            },
        };
        let found = match self.models.lock() {
            Ok(mut models) => {
                let found = models.observe(&sample);
                if !labels.is_empty() {
                    models.apply_feedback(labels, std::time::SystemTime::now());
                }
                found
            }
            Err(_) => return,
        };
        if let Some(found) = found {
            findings.outlier = !found.outlier_rows.is_empty();
            findings.monitor = serde_json::to_value(&found).ok();
            findings.model = found.model;
            findings.model_version = found.model_version;
        }
    }
}

fn describe(registry: &crate::telemetry::Registry) {
    registry.describe_counter(
        COLUMN_VALUES,
        "Values seen per column, by validation status.",
    );
    registry.describe_gauge(
        DRIFT_SCORE,
        "Drift statistic of the column's last window against its reference.",
    );
    registry.describe_gauge(
        DRIFT_DETECTED,
        "1 when the column's configured statistic crossed its threshold in the last window.",
    );
    registry.describe_gauge(
        DATASET_DRIFT_SHARE,
        "Share of input columns drifted in the last window.",
    );
    registry.describe_gauge(
        DATASET_DRIFT_DETECTED,
        "1 when the drifted share reached monitoring.dataset_drift_share.",
    );
    registry.describe_gauge(WINDOW_ROWS, "Rows in the current (open) window.");
    registry.describe_counter(
        BIN_ROWS,
        "Rows per reference bin, for fleet-wide drift in PromQL.",
    );
    registry.describe_gauge(
        REFERENCE_BIN_FRACTION,
        "The reference's fraction of rows per bin.",
    );
    registry.describe_counter(
        OUTLIER_ROWS,
        "Rows whose modified z-score exceeded monitoring.outliers.threshold.",
    );
    registry.describe_counter(
        REQUEST_ISSUES,
        "Exchanges with a per-request validation issue (shape_mismatch), by model and issue.",
    );
    registry.describe_counter(
        CHANGE_POINTS,
        "Change points found by online detectors, per signal and detector.",
    );
    registry.describe_counter(
        EXTRACT_ERRORS,
        "Exchanges whose payload could not be read, by reason.",
    );
}
