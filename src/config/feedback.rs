//! The `feedback` section: how ground-truth labels arrive and how long predictions wait for them.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::units::{ByteSize, HumanDuration};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackSection {
    /// How long a prediction waits for its label; later labels are counted as `expired`.
    pub ttl: HumanDuration,
    /// Most predictions waiting for labels; beyond it the oldest are evicted (counted `expired`).
    pub max_pending: usize,
    /// Most memory pending predictions may take (as `driftwatch_feedback_pending_bytes` counts
    /// it); beyond it the oldest are evicted (counted `expired`). Whichever bound is reached
    /// first applies.
    pub max_pending_bytes: ByteSize,
    /// Also accept `POST /_driftwatch/feedback` on the proxy port (for clients that cannot reach
    /// the admin port). That path is then never forwarded to the model server.
    pub proxy_endpoint: bool,
    /// A response header the model server sets with the label of its own request (for servers
    /// that know the truth late in the same exchange, e.g. a rules engine's verdict).
    pub response_label_header: Option<String>,
    /// A later request carrying a label for an earlier one, in request headers.
    pub request_label: RequestLabelSection,
    /// JSON Lines file ranking rewards are appended to, for `driftwatch export`.
    pub rewards_file: Option<String>,
    /// Expected performance per model; `driftwatch_model_performance_drop` is 1 when a window's
    /// value undercuts `value - margin` (or exceeds `value + margin` for error metrics).
    pub baselines: Vec<BaselineSection>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLabelSection {
    /// Header naming the request id the label is for.
    pub id_header: Option<String>,
    /// Header holding the label (one value, or a JSON array of per-row labels).
    pub label_header: Option<String>,
    /// JSON pointer into a later request's JSON body to the request id the label is for (for
    /// clients that send the outcome in the body of their next call).
    pub id_pointer: Option<String>,
    /// JSON pointer into that body to the label (one value, or an array of per-row labels).
    pub label_pointer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineSection {
    pub model: String,
    /// `accuracy`, `precision`, `recall`, `f1`, `mae` or `rmse`.
    pub metric: String,
    pub value: f64,
    #[serde(default = "default_margin")]
    pub margin: f64,
}

/// The margin of a baseline that names none, and of a reference profile's baselines.
pub const DEFAULT_MARGIN: f64 = 0.05;

fn default_margin() -> f64 {
    DEFAULT_MARGIN
}

impl Default for FeedbackSection {
    fn default() -> Self {
        Self {
            ttl: HumanDuration::from_secs(24 * 3600),
            max_pending: 1_000_000,
            max_pending_bytes: ByteSize(16 << 20),
            proxy_endpoint: false,
            response_label_header: None,
            request_label: RequestLabelSection::default(),
            rewards_file: None,
            baselines: Vec::new(),
        }
    }
}

pub const METRICS: [&str; 6] = ["accuracy", "precision", "recall", "f1", "mae", "rmse"];

/// What the feedback join needs.
#[derive(Debug, Clone)]
pub struct FeedbackConfig {
    pub ttl: Duration,
    pub max_pending: usize,
    pub max_pending_bytes: usize,
    pub proxy_endpoint: bool,
    pub response_label_header: Option<HeaderName>,
    pub request_label: Option<(HeaderName, HeaderName)>,
    /// `(id pointer, label pointer)` into a later request's JSON body.
    pub request_label_pointers: Option<(String, String)>,
    pub rewards_file: Option<PathBuf>,
    pub baselines: Vec<BaselineSection>,
}

pub fn validate_feedback(section: &FeedbackSection) -> Result<FeedbackConfig, ConfigError> {
    if section.ttl.0.is_zero() {
        return Err(ConfigError::key(
            "feedback.ttl",
            "expected a duration above 0s",
        ));
    }
    if section.max_pending == 0 {
        return Err(ConfigError::key(
            "feedback.max_pending",
            "expected a positive integer, got 0",
        ));
    }
    if section.max_pending_bytes.0 == 0 {
        return Err(ConfigError::key(
            "feedback.max_pending_bytes",
            "expected a size above 0B",
        ));
    }
    let header = |key: &str, name: &Option<String>| -> Result<Option<HeaderName>, ConfigError> {
        name.as_ref()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| ConfigError::key(key, format!("{n:?} is not a valid header name")))
            })
            .transpose()
    };
    let response_label_header = header(
        "feedback.response_label_header",
        &section.response_label_header,
    )?;
    let request_label = match (
        header(
            "feedback.request_label.id_header",
            &section.request_label.id_header,
        )?,
        header(
            "feedback.request_label.label_header",
            &section.request_label.label_header,
        )?,
    ) {
        (Some(id), Some(label)) => Some((id, label)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::key(
                "feedback.request_label",
                "expected both id_header and label_header, or neither",
            ));
        }
    };
    let pointer = |key: &str, value: &Option<String>| -> Result<Option<String>, ConfigError> {
        match value {
            Some(p) if !p.is_empty() && !p.starts_with('/') => Err(ConfigError::key(
                key,
                format!("{p:?} is not a JSON pointer (it starts with /)"),
            )),
            other => Ok(other.clone()),
        }
    };
    let request_label_pointers = match (
        pointer(
            "feedback.request_label.id_pointer",
            &section.request_label.id_pointer,
        )?,
        pointer(
            "feedback.request_label.label_pointer",
            &section.request_label.label_pointer,
        )?,
    ) {
        (Some(id), Some(label)) => Some((id, label)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::key(
                "feedback.request_label",
                "expected both id_pointer and label_pointer, or neither",
            ));
        }
    };
    for (index, baseline) in section.baselines.iter().enumerate() {
        if !METRICS.contains(&baseline.metric.as_str()) {
            return Err(ConfigError::key(
                format!("feedback.baselines[{index}].metric"),
                format!("expected one of {METRICS:?}, got {:?}", baseline.metric),
            ));
        }
        if !baseline.value.is_finite() || !baseline.margin.is_finite() || baseline.margin < 0.0 {
            return Err(ConfigError::key(
                format!("feedback.baselines[{index}]"),
                "expected a finite value and a non-negative margin",
            ));
        }
    }
    Ok(FeedbackConfig {
        ttl: section.ttl.0,
        max_pending: section.max_pending,
        max_pending_bytes: usize::try_from(section.max_pending_bytes.0).unwrap_or(usize::MAX),
        proxy_endpoint: section.proxy_endpoint,
        response_label_header,
        request_label,
        request_label_pointers,
        rewards_file: section.rewards_file.as_ref().map(PathBuf::from),
        baselines: section.baselines.clone(),
    })
}
