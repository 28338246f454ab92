//! The config file as users write it: serde structs with defaults everywhere and unknown keys
//! rejected. Nothing here is validated beyond its syntax; `validate` turns it into runtime types.
//!
//! The doc comment on each field is the documentation users read: it becomes the description in
//! the generated JSON Schema (`driftwatch config-schema`), which the Helm chart validates against.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::exploration::ExplorationSection;
use super::feedback::FeedbackSection;
use super::monitoring::{ModelSection, MonitoringSection};
use super::recording::{RecordingSection, SinkSection};
use super::units::{ByteSize, HumanDuration};

/// The whole driftwatch configuration. The empty file is valid: every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Address the proxy listens on for inference traffic (`host:port`).
    pub listen: String,
    /// The admin listener: metrics, health, API.
    pub admin: AdminSection,
    /// The model server driftwatch forwards to.
    pub upstream: UpstreamSection,
    /// Connection and request limits on the proxy listener.
    pub limits: LimitsSection,
    /// Graceful shutdown on SIGTERM/SIGINT.
    pub shutdown: ShutdownSection,
    /// The hand-off from the request path to the analysis worker.
    pub analysis: AnalysisSection,
    /// What is recorded of each exchange, and how it is redacted.
    pub recording: RecordingSection,
    /// Where records go; none by default.
    pub sinks: Vec<SinkSection>,
    /// Models whose payloads need configuration; auto-detection works without.
    pub models: Vec<ModelSection>,
    /// Drift, validation and outlier detection.
    pub monitoring: MonitoringSection,
    /// Ground-truth labels joined to predictions.
    pub feedback: FeedbackSection,
    /// Routes whose ranked responses are reordered to explore.
    pub exploration: Vec<ExplorationSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Address of the admin listener (`host:port`).
    pub listen: String,
    /// File holding the bearer token that mutating admin endpoints require. Unset: no token.
    pub token_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSection {
    /// Base URL of the model server, `http://host:port`.
    pub url: String,
    /// Time allowed to open a TCP connection to the upstream; 502 after it.
    pub connect_timeout: HumanDuration,
    /// Time allowed for the whole exchange, response body included; 504 (or a cut stream) after it.
    pub request_timeout: HumanDuration,
    /// Upstream HTTP protocol: `http1`, `h2c` (HTTP/2 without TLS, for gRPC), or `auto`.
    pub protocol: UpstreamProtocolName,
    /// Optional path `/readyz` sends a GET to; 2xx means ready. Unset: a TCP connect is enough.
    pub health_path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocolName {
    Http1,
    H2c,
    Auto,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Most client connections open at once; further connections wait in the accept backlog.
    pub max_connections: usize,
    /// Most exchanges in progress at once; beyond it: 503 with `x-driftwatch-error: overloaded`.
    pub max_in_flight: usize,
    /// Time a client has to send a complete request head on a new HTTP/1 request.
    pub header_read_timeout: HumanDuration,
    /// Largest request head (request line and headers); beyond it: 431.
    pub max_header_bytes: ByteSize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSection {
    /// After the signal, keep accepting connections this long while Kubernetes removes the pod
    /// from its endpoints (`/readyz` is 503 from the first moment).
    pub delay: HumanDuration,
    /// Then stop accepting and let in-flight exchanges finish for at most this long.
    pub grace: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisSection {
    /// Observations waiting for the analysis worker; when full, new ones are dropped and counted
    /// (`driftwatch_analysis_observations_total{result="dropped_queue_full"}`), never waited for.
    pub queue: usize,
}

impl Default for ConfigFile {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8100".to_owned(),
            admin: AdminSection::default(),
            upstream: UpstreamSection::default(),
            limits: LimitsSection::default(),
            shutdown: ShutdownSection::default(),
            analysis: AnalysisSection::default(),
            recording: RecordingSection::default(),
            sinks: Vec::new(),
            models: Vec::new(),
            monitoring: MonitoringSection::default(),
            feedback: FeedbackSection::default(),
            exploration: Vec::new(),
        }
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8101".to_owned(),
            token_file: None,
        }
    }
}

impl Default for UpstreamSection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".to_owned(),
            connect_timeout: HumanDuration::from_secs(1),
            request_timeout: HumanDuration::from_secs(60),
            protocol: UpstreamProtocolName::Http1,
            health_path: None,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_in_flight: 4096,
            header_read_timeout: HumanDuration::from_secs(10),
            max_header_bytes: ByteSize(64 * 1024),
        }
    }
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self {
            delay: HumanDuration::from_secs(5),
            grace: HumanDuration::from_secs(30),
        }
    }
}

impl Default for AnalysisSection {
    fn default() -> Self {
        Self { queue: 1024 }
    }
}
