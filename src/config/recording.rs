//! The `recording` and `sinks` sections: what is recorded, how it is redacted, where it goes.
//! File shapes first, then the runtime types they validate into.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::{ByteSize, HumanDuration};
use super::{ConfigError, redact_url_password};

/// Headers that are never recorded, whatever the allow-list says.
pub const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSection {
    /// Share of exchanges recorded by head sampling, 0 to 1, decided from the request id so every
    /// replica makes the same decision for the same request.
    pub sample_rate: f64,
    /// Exchanges recorded regardless of the sample rate: `errors` (5xx and proxy errors), `slow`
    /// (over `slow_threshold`), `outliers`, `explored`.
    pub always: Vec<AlwaysRecord>,
    /// Exchanges at least this long count as slow.
    pub slow_threshold: HumanDuration,
    /// Per direction, the body prefix captured and recorded; longer bodies are cut and flagged
    /// `truncated`.
    pub max_body_bytes: ByteSize,
    /// Most captured body bytes held at once across all exchanges in flight or waiting for
    /// analysis; beyond it bodies are not captured (counted), so memory stays bounded.
    pub capture_budget: ByteSize,
    /// Request and response headers recorded (allow-list, case-insensitive). Credential headers
    /// (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`, `X-Api-Key`) never are.
    pub headers: Vec<String>,
    /// Redaction of JSON bodies before a record leaves the process.
    pub redact: RedactSection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlwaysRecord {
    Errors,
    Slow,
    Outliers,
    Explored,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RedactSection {
    /// Object keys whose values are redacted at any depth (case-insensitive).
    pub keys: Vec<String>,
    /// JSON pointers (RFC 6901) redacted in request and response bodies.
    pub pointers: Vec<String>,
    /// `mask` replaces values with "[REDACTED]"; `hash` with "hmac-sha256:<hex>" keyed by
    /// `hash_key_file`, so equal values stay joinable without being readable.
    pub mode: RedactMode,
    /// File with the HMAC key; required when `mode: hash`.
    pub hash_key_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedactMode {
    Mask,
    Hash,
}

/// One destination for records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkSection {
    /// JSON Lines on standard output.
    Stdout {
        /// Name used in the `sink` metric label; default `stdout`.
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        queue: QueueSection,
    },
    /// JSON Lines files with size-based rotation and retention by count.
    File {
        /// Name used in the `sink` metric label; default `file`.
        #[serde(default)]
        name: Option<String>,
        /// The file records are appended to; rotated files get `.1`, `.2`, ... suffixes.
        path: String,
        #[serde(default)]
        rotate: RotateSection,
        #[serde(default)]
        queue: QueueSection,
    },
    /// CloudEvents over HTTP(S) to a collector.
    Http {
        /// Name used in the `sink` metric label; default `http`.
        #[serde(default)]
        name: Option<String>,
        /// Collector URL, `http://` or `https://`.
        url: String,
        /// `cloudevents-batch` (one JSON array per batch), `cloudevents` (one structured event per
        /// request) or `kserve` (KServe logger compatible binary events).
        #[serde(default)]
        format: HttpFormat,
        #[serde(default)]
        batch: BatchSection,
        #[serde(default)]
        queue: QueueSection,
        #[serde(default)]
        retry: RetrySection,
        /// Disk spool used while the collector is unreachable. Unset: no spool.
        #[serde(default)]
        spool: Option<SpoolSection>,
        /// Time allowed for one delivery request.
        #[serde(default = "default_sink_timeout")]
        timeout: HumanDuration,
        /// Extra request headers (e.g. `authorization`); values are redacted in displays.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Extra CA certificates (PEM) trusted for an `https` collector, besides the system roots.
        #[serde(default)]
        ca_file: Option<String>,
    },
    /// Kafka: key = request id, value = record JSON.
    Kafka {
        /// Name used in the `sink` metric label; default `kafka`.
        #[serde(default)]
        name: Option<String>,
        /// Bootstrap brokers, `host:port`.
        brokers: Vec<String>,
        /// Topic records are produced to (it must exist).
        topic: String,
        #[serde(default)]
        batch: BatchSection,
        #[serde(default)]
        queue: QueueSection,
        #[serde(default)]
        retry: RetrySection,
        /// Disk spool used while the brokers are unreachable. Unset: no spool.
        #[serde(default)]
        spool: Option<SpoolSection>,
        /// Time allowed for one produce request.
        #[serde(default = "default_sink_timeout")]
        timeout: HumanDuration,
    },
}

fn default_sink_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HttpFormat {
    #[default]
    CloudeventsBatch,
    Cloudevents,
    Kserve,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RotateSection {
    /// Rotate when the file would grow beyond this size.
    pub max_bytes: ByteSize,
    /// Rotated files kept (`.1` is the newest); older ones are deleted.
    pub max_files: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// Records waiting in memory for this sink; when full, new records are dropped and counted
    /// (`dropped_queue_full`).
    pub max_records: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSection {
    /// Most records per delivery.
    pub max_records: usize,
    /// Longest a record waits for its batch to fill.
    pub max_delay: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySection {
    /// First backoff after a failed delivery; doubles each time, with jitter.
    pub initial: HumanDuration,
    /// Longest backoff.
    pub max: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Directory of the spool (one per sink; on a volume that survives restarts).
    pub dir: String,
    /// Most bytes on disk; beyond it records are dropped and counted (`dropped_spool_full`).
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: ByteSize,
}

fn default_spool_bytes() -> ByteSize {
    ByteSize(1 << 30)
}

impl Default for RecordingSection {
    fn default() -> Self {
        Self {
            sample_rate: 0.1,
            always: vec![
                AlwaysRecord::Errors,
                AlwaysRecord::Slow,
                AlwaysRecord::Outliers,
                AlwaysRecord::Explored,
            ],
            slow_threshold: HumanDuration::from_secs(1),
            max_body_bytes: ByteSize(256 * 1024),
            capture_budget: ByteSize(16 << 20),
            headers: ["content-type", "user-agent", "x-request-id", "traceparent"]
                .map(String::from)
                .to_vec(),
            redact: RedactSection::default(),
        }
    }
}

impl Default for RedactSection {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            pointers: Vec::new(),
            mode: RedactMode::Mask,
            hash_key_file: None,
        }
    }
}

impl Default for RotateSection {
    fn default() -> Self {
        Self {
            max_bytes: ByteSize(100 << 20),
            max_files: 10,
        }
    }
}

impl Default for QueueSection {
    fn default() -> Self {
        Self {
            max_records: 10_000,
        }
    }
}

impl Default for BatchSection {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_delay: HumanDuration::from_secs(1),
        }
    }
}

impl Default for RetrySection {
    fn default() -> Self {
        Self {
            initial: HumanDuration::from_millis(100),
            max: HumanDuration::from_secs(30),
        }
    }
}

impl SinkSection {
    /// The same sink with secrets (URL passwords, header values) redacted.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        if let Self::Http { url, headers, .. } = &mut copy {
            *url = redact_url_password(url);
            for value in headers.values_mut() {
                *value = "[REDACTED]".to_owned();
            }
        }
        copy
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime types.

/// What the recorder needs.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub sample_rate: f64,
    pub always_errors: bool,
    pub always_slow: bool,
    pub always_outliers: bool,
    pub always_explored: bool,
    pub slow_threshold: Duration,
    pub max_body_bytes: usize,
    pub capture_budget: usize,
    /// Allow-listed header names, credential headers already removed.
    pub headers: Vec<HeaderName>,
    pub redaction: Redaction,
}

#[derive(Debug, Clone)]
pub struct Redaction {
    /// Lower-cased keys.
    pub keys: Vec<String>,
    pub pointers: Vec<String>,
    pub mode: RedactionMode,
}

#[derive(Clone)]
pub enum RedactionMode {
    Mask,
    Hash { key: Arc<[u8]> },
}

impl std::fmt::Debug for RedactionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mask => f.write_str("Mask"),
            Self::Hash { .. } => f.write_str("Hash([REDACTED])"),
        }
    }
}

/// A validated sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The `sink` metric label.
    pub name: String,
    pub queue_records: usize,
    pub kind: SinkKind,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    Stdout,
    File {
        path: PathBuf,
        max_bytes: u64,
        max_files: usize,
    },
    Http {
        url: http::Uri,
        format: HttpFormat,
        delivery: DeliveryConfig,
        headers: Vec<(HeaderName, http::HeaderValue)>,
        ca_file: Option<PathBuf>,
    },
    Kafka {
        brokers: Vec<String>,
        topic: String,
        delivery: DeliveryConfig,
    },
}

/// Batching, retry and spool settings shared by the network sinks.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub batch_records: usize,
    pub batch_delay: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub timeout: Duration,
    pub spool: Option<(PathBuf, u64)>,
}

pub fn validate_recording(section: &RecordingSection) -> Result<RecordingConfig, ConfigError> {
    if !(0.0..=1.0).contains(&section.sample_rate) {
        return Err(ConfigError::key(
            "recording.sample_rate",
            format!("expected a number from 0 to 1, got {}", section.sample_rate),
        ));
    }
    let max_body_bytes = usize::try_from(section.max_body_bytes.0)
        .ok()
        .filter(|b| *b <= 64 << 20)
        .ok_or_else(|| ConfigError::key("recording.max_body_bytes", "expected at most 64MiB"))?;
    let mut headers = Vec::new();
    for (index, name) in section.headers.iter().enumerate() {
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            ConfigError::key(
                format!("recording.headers[{index}]"),
                format!("{name:?} is not a valid header name"),
            )
        })?;
        if !CREDENTIAL_HEADERS.contains(&header.as_str()) {
            headers.push(header);
        }
    }
    for (index, pointer) in section.redact.pointers.iter().enumerate() {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(ConfigError::key(
                format!("recording.redact.pointers[{index}]"),
                format!("expected a JSON pointer starting with /, got {pointer:?}"),
            ));
        }
    }
    let mode = match (section.redact.mode, &section.redact.hash_key_file) {
        (RedactMode::Mask, _) => RedactionMode::Mask,
        (RedactMode::Hash, None) => {
            return Err(ConfigError::key(
                "recording.redact.hash_key_file",
                "required when recording.redact.mode is hash",
            ));
        }
        (RedactMode::Hash, Some(path)) => {
            let key = std::fs::read(path).map_err(|e| {
                ConfigError::key(
                    "recording.redact.hash_key_file",
                    format!("cannot read {path}: {e}"),
                )
            })?;
            let key = key.trim_ascii().to_vec();
            if key.is_empty() {
                return Err(ConfigError::key(
                    "recording.redact.hash_key_file",
                    format!("{path} is empty"),
                ));
            }
            RedactionMode::Hash { key: key.into() }
        }
    };
    Ok(RecordingConfig {
        sample_rate: section.sample_rate,
        always_errors: section.always.contains(&AlwaysRecord::Errors),
        always_slow: section.always.contains(&AlwaysRecord::Slow),
        always_outliers: section.always.contains(&AlwaysRecord::Outliers),
        always_explored: section.always.contains(&AlwaysRecord::Explored),
        slow_threshold: section.slow_threshold.0,
        max_body_bytes,
        capture_budget: usize::try_from(section.capture_budget.0).unwrap_or(usize::MAX),
        headers,
        redaction: Redaction {
            keys: section
                .redact
                .keys
                .iter()
                .map(|k| k.to_lowercase())
                .collect(),
            pointers: section.redact.pointers.clone(),
            mode,
        },
    })
}

pub fn validate_sinks(sinks: &[SinkSection]) -> Result<Vec<SinkConfig>, ConfigError> {
    let mut validated: Vec<SinkConfig> = Vec::new();
    for (index, sink) in sinks.iter().enumerate() {
        let key = |field: &str| format!("sinks[{index}].{field}");
        let non_zero = |field: &str, value: usize| {
            if value == 0 {
                Err(ConfigError::key(
                    key(field),
                    "expected a positive integer, got 0",
                ))
            } else {
                Ok(value)
            }
        };
        let (name, queue, kind) = match sink {
            SinkSection::Stdout { name, queue } => (name.clone(), queue, SinkKind::Stdout),
            SinkSection::File {
                name,
                path,
                rotate,
                queue,
            } => {
                if path.is_empty() {
                    return Err(ConfigError::key(key("path"), "expected a file path"));
                }
                if rotate.max_bytes.0 < 4096 {
                    return Err(ConfigError::key(
                        key("rotate.max_bytes"),
                        "expected at least 4KiB",
                    ));
                }
                (
                    name.clone(),
                    queue,
                    SinkKind::File {
                        path: PathBuf::from(path),
                        max_bytes: rotate.max_bytes.0,
                        max_files: rotate.max_files,
                    },
                )
            }
            SinkSection::Http {
                name,
                url,
                format,
                batch,
                queue,
                retry,
                spool,
                timeout,
                headers,
                ca_file,
            } => {
                let uri: http::Uri = url.parse().map_err(|_| {
                    ConfigError::key(
                        key("url"),
                        format!(
                            "expected an http(s) URL, got {:?}",
                            redact_url_password(url)
                        ),
                    )
                })?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(ConfigError::key(
                        key("url"),
                        "expected an http:// or https:// URL with a host",
                    ));
                }
                let mut extra = Vec::new();
                for (header, value) in headers {
                    let parsed = (
                        HeaderName::from_bytes(header.as_bytes()),
                        http::HeaderValue::from_str(value),
                    );
                    match parsed {
                        (Ok(header), Ok(value)) => extra.push((header, value)),
                        _ => {
                            return Err(ConfigError::key(
                                key(&format!("headers.{header}")),
                                "expected a valid header name and value",
                            ));
                        }
                    }
                }
                (
                    name.clone(),
                    queue,
                    SinkKind::Http {
                        url: uri,
                        format: *format,
                        delivery: delivery(&key, batch, retry, spool, timeout)?,
                        headers: extra,
                        ca_file: ca_file.as_ref().map(PathBuf::from),
                    },
                )
            }
            SinkSection::Kafka {
                name,
                brokers,
                topic,
                batch,
                queue,
                retry,
                spool,
                timeout,
            } => {
                if brokers.is_empty() {
                    return Err(ConfigError::key(
                        key("brokers"),
                        "expected at least one host:port",
                    ));
                }
                for (i, broker) in brokers.iter().enumerate() {
                    if broker
                        .rsplit_once(':')
                        .and_then(|(_, port)| port.parse::<u16>().ok())
                        .is_none()
                    {
                        return Err(ConfigError::key(
                            key(&format!("brokers[{i}]")),
                            format!("expected host:port, got {broker:?}"),
                        ));
                    }
                }
                if topic.is_empty() {
                    return Err(ConfigError::key(key("topic"), "expected a topic name"));
                }
                (
                    name.clone(),
                    queue,
                    SinkKind::Kafka {
                        brokers: brokers.clone(),
                        topic: topic.clone(),
                        delivery: delivery(&key, batch, retry, spool, timeout)?,
                    },
                )
            }
        };
        let default_name = match &kind {
            SinkKind::Stdout => "stdout",
            SinkKind::File { .. } => "file",
            SinkKind::Http { .. } => "http",
            SinkKind::Kafka { .. } => "kafka",
        };
        let mut name = name.unwrap_or_else(|| default_name.to_owned());
        if validated.iter().any(|s| s.name == name) {
            if sink_name_given(sink) {
                return Err(ConfigError::key(
                    key("name"),
                    format!("sink name {name:?} is used twice"),
                ));
            }
            name = format!("{name}-{index}");
        }
        validated.push(SinkConfig {
            name,
            queue_records: non_zero("queue.max_records", queue.max_records)?,
            kind,
        });
    }
    let mut spool_dirs: Vec<&PathBuf> = Vec::new();
    for (index, sink) in validated.iter().enumerate() {
        if let SinkKind::Http { delivery, .. } | SinkKind::Kafka { delivery, .. } = &sink.kind
            && let Some((dir, _)) = &delivery.spool
        {
            if spool_dirs.contains(&dir) {
                return Err(ConfigError::key(
                    format!("sinks[{index}].spool.dir"),
                    "each sink needs its own spool directory",
                ));
            }
            spool_dirs.push(dir);
        }
    }
    Ok(validated)
}

fn sink_name_given(sink: &SinkSection) -> bool {
    match sink {
        SinkSection::Stdout { name, .. }
        | SinkSection::File { name, .. }
        | SinkSection::Http { name, .. }
        | SinkSection::Kafka { name, .. } => name.is_some(),
    }
}

fn delivery(
    key: &dyn Fn(&str) -> String,
    batch: &BatchSection,
    retry: &RetrySection,
    spool: &Option<SpoolSection>,
    timeout: &HumanDuration,
) -> Result<DeliveryConfig, ConfigError> {
    if batch.max_records == 0 {
        return Err(ConfigError::key(
            key("batch.max_records"),
            "expected a positive integer, got 0",
        ));
    }
    if retry.initial.0.is_zero() || retry.max.0 < retry.initial.0 {
        return Err(ConfigError::key(
            key("retry"),
            "expected 0 < retry.initial <= retry.max",
        ));
    }
    if timeout.0.is_zero() {
        return Err(ConfigError::key(
            key("timeout"),
            "expected a duration above 0s",
        ));
    }
    let spool = match spool {
        None => None,
        Some(section) => {
            if section.dir.is_empty() {
                return Err(ConfigError::key(key("spool.dir"), "expected a directory"));
            }
            if section.max_bytes.0 < 64 * 1024 {
                return Err(ConfigError::key(
                    key("spool.max_bytes"),
                    "expected at least 64KiB",
                ));
            }
            Some((PathBuf::from(&section.dir), section.max_bytes.0))
        }
    };
    Ok(DeliveryConfig {
        batch_records: batch.max_records,
        batch_delay: batch.max_delay.0,
        retry_initial: retry.initial.0,
        retry_max: retry.max.0,
        timeout: timeout.0,
        spool,
    })
}
