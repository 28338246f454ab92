//! The record of SPEC §5, built from an observation on the analysis side: one JSON object per
//! exchange, serialized once and shared by every sink.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::body;
use super::redact::Redactor;
use super::sampling::SampleReason;
use crate::config::RecordingConfig;
use crate::extract;
use crate::proxy::metrics::UNKNOWN_MODEL;
use crate::tap::{Capture, Findings, Observation};

pub const SCHEMA: &str = "driftwatch.record/v1";

/// A record ready for the sinks: its id (the request id) and its JSON text (no newline).
#[derive(Debug, Clone)]
pub struct RecordLine {
    pub id: Arc<str>,
    pub line: Bytes,
}

impl RecordLine {
    /// Rebuilds a line read back from a spool or a file. `None` when it is not a record.
    pub fn parse(line: Bytes) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Id<'a> {
            #[serde(borrow)]
            id: std::borrow::Cow<'a, str>,
        }
        let id: Id<'_> = serde_json::from_slice(&line).ok()?;
        let id: Arc<str> = id.id.as_ref().into();
        Some(Self { id, line })
    }
}

pub fn build(
    observation: &Observation,
    findings: &Findings,
    reason: SampleReason,
    config: &RecordingConfig,
    redactor: &Redactor,
) -> RecordLine {
    let id = observation.request_id.to_str().unwrap_or_default();
    let path = observation.request.uri.path();
    // Monitoring's name and version first: it also reads them from the payload (OpenAI `model`,
    // Open Inference `model_name`/`model_version`). The path is the fallback, for exchanges that
    // monitoring did not read (monitoring off, not an inference call, extraction failed).
    let model = findings
        .model
        .clone()
        .or_else(|| (&*observation.model != UNKNOWN_MODEL).then(|| observation.model.to_string()));
    let model_version = findings
        .model_version
        .clone()
        .or_else(|| model_version(path));
    let request = json!({
        "method": observation.request.method.as_str(),
        "path": path,
        "headers": allowed_headers(&observation.request.headers, config),
        "bytes": observation.request_bytes,
    });
    let request = with_body(request, &observation.request_capture, redactor);
    let response = observation.response.as_ref().map(|head| {
        let mut response = json!({
            "status": head.status.as_u16(),
            "headers": allowed_headers(&head.headers, config),
            "bytes": observation.response_bytes,
        });
        if let Some(reason) = observation.proxy_error {
            response["error"] = Value::from(reason);
        }
        if let Some(status) = observation
            .grpc_status
            .as_ref()
            .and_then(|s| s.to_str().ok())
        {
            response["grpc_status"] = Value::from(status);
        }
        with_body(response, &observation.response_capture, redactor)
    });
    let record = json!({
        "schema": SCHEMA,
        "id": id,
        "time": humantime::format_rfc3339_micros(observation.started_at).to_string(),
        "trace_id": trace_id(&observation.request.headers),
        "model": model,
        "model_version": model_version,
        "request": request,
        "response": response,
        "timing": {
            "total_ms": millis(observation.timing.total),
            "upstream_headers_ms": observation.timing.upstream_headers.map(millis),
            "first_chunk_ms": observation.timing.first_chunk.map(millis),
        },
        "outcome": observation.outcome.as_str(),
        "sampled": reason.as_str(),
        "monitor": findings.monitor.clone(),
        "exploration": observation
            .exploration
            .as_deref()
            .and_then(|log| serde_json::to_value(log).ok()),
    });
    RecordLine {
        id: id.into(),
        line: Bytes::from(serde_json::to_vec(&record).expect("a JSON value serializes")),
    }
}

fn with_body(mut head: Value, capture: &Capture, redactor: &Redactor) -> Value {
    let (body, encoding) = body::encode(capture, redactor);
    if let Value::Object(map) = &mut head {
        map.insert("body".into(), body);
        map.insert("encoding".into(), Value::from(encoding.as_str()));
        map.insert("truncated".into(), Value::from(capture.truncated()));
    }
    head
}

/// Allow-listed headers as `{name: "value[, value]"}`; credential headers were removed from the
/// allow-list when the config was validated.
fn allowed_headers(headers: &HeaderMap, config: &RecordingConfig) -> Value {
    let mut out = Map::new();
    for name in &config.headers {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if !values.is_empty() {
            out.insert(name.as_str().to_owned(), Value::from(values.join(", ")));
        }
    }
    Value::Object(out)
}

/// Milliseconds with microsecond resolution.
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// The trace id of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(trace, 32) && hex(span, 16) && trace.bytes().any(|b| b != b'0'))
        .then(|| trace.to_ascii_lowercase())
}

/// The version a path gives: an inference path as [`extract::model_from_path`] reads it
/// (`…/v2/models/{name}/versions/{v}/infer`, `…/v1/models/{name}/versions/{v}:predict`, TF
/// Serving's `/labels/{label}`), else any other path under a versioned model
/// (`/v2/models/{name}/versions/{v}/…`, `/v1/models/{name}/versions/{v}[:verb]`, metadata and
/// readiness calls).
pub fn model_version(path: &str) -> Option<String> {
    if let Some((_, version)) = extract::model_from_path(path) {
        return version;
    }
    let rest = path
        .strip_prefix("/v2/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (_, after_name) = rest.split_once('/')?;
    let version = after_name.strip_prefix("versions/")?;
    let version = version.split(['/', ':']).next()?;
    (!version.is_empty()).then(|| version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_valid_traceparents_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trace_id(&headers).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        headers.insert(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(trace_id(&headers), None);
        headers.insert("traceparent", "garbage".parse().unwrap());
        assert_eq!(trace_id(&headers), None);
    }

    #[test]
    fn model_versions_come_from_the_path() {
        let version = model_version;
        assert_eq!(
            version("/v2/models/iris/versions/3/infer").as_deref(),
            Some("3")
        );
        assert_eq!(version("/v2/models/iris/infer"), None);
        assert_eq!(version("/v2/models/iris/versions/3").as_deref(), Some("3"));
        assert_eq!(
            version("/v2/models/iris/versions/3/ready").as_deref(),
            Some("3")
        );
        assert_eq!(
            version("/v1/models/m/versions/2:predict").as_deref(),
            Some("2")
        );
        assert_eq!(
            version("/v1/models/m/labels/stable:predict").as_deref(),
            Some("stable")
        );
        assert_eq!(version("/v1/models/m/versions/2").as_deref(), Some("2"));
        assert_eq!(
            version("/gw/v1/models/m/versions/5:predict").as_deref(),
            Some("5")
        );
        assert_eq!(version("/v1/models/m:predict"), None);
        assert_eq!(version("/v1/chat/completions"), None);
    }
}
