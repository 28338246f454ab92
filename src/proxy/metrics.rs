//! The operational metrics of SPEC §11, with handles registered once.
//!
//! Labels are bounded: `method` is one of the standard methods or `other`; `model` is one of at
//! most [`MAX_MODEL_LABELS`] names recognised from request paths, then `other`; `code` is the
//! status code sent to the client, or `499` when the client left before any response.

use foldhash::HashMap;
use foldhash::HashMapExt;
use std::sync::{Arc, RwLock};

use http::Method;
use metrics::{Counter, Gauge, Histogram, Unit};

use super::error::{ProxyError, UpstreamErrorKind};
use crate::tap::{ModelName, Truncation};
use crate::telemetry::Registry;

/// Most distinct `model` label values; protects Prometheus from a path scan.
pub const MAX_MODEL_LABELS: usize = 256;
/// The label for requests whose path names no model.
pub const UNKNOWN_MODEL: &str = "unknown";
/// The label once [`MAX_MODEL_LABELS`] names are in use.
pub const OTHER_MODEL: &str = "other";
/// The `code` label when the client went away before a response head was sent (nginx's
/// convention).
pub const CLIENT_CLOSED_CODE: u16 = 499;

const REQUESTS_TOTAL: &str = "driftwatch_http_requests_total";
const REQUEST_DURATION: &str = "driftwatch_http_request_duration_seconds";
const UPSTREAM_HEADERS: &str = "driftwatch_upstream_headers_seconds";
const FIRST_CHUNK: &str = "driftwatch_stream_first_chunk_seconds";
const IN_FLIGHT: &str = "driftwatch_http_requests_in_flight";
const REQUEST_SIZE: &str = "driftwatch_http_request_size_bytes";
const RESPONSE_SIZE: &str = "driftwatch_http_response_size_bytes";
const UPSTREAM_ERRORS: &str = "driftwatch_upstream_errors_total";
const PROXY_RESPONSES: &str = "driftwatch_proxy_responses_total";
const BUILD_INFO: &str = "driftwatch_build_info";
const BODY_TRUNCATED: &str = "driftwatch_body_truncated_total";
const CAPTURE_BUDGET_EXHAUSTED: &str = "driftwatch_capture_budget_exhausted_total";

pub struct ProxyMetrics {
    registry: Registry,
    pub in_flight: Gauge,
    upstream_errors: [Counter; 4],
    proxy_responses: [Counter; ProxyError::RESPONSES.len()],
    models: RwLock<HashMap<Box<str>, Arc<ModelMetrics>>>,
    /// Configured `(path_prefix, model)` pairs, longest prefix first.
    prefixes: Vec<(String, String)>,
    /// `[request, response]`.
    truncated: [Counter; 2],
    budget_exhausted: [Counter; 2],
}

/// Per-model handles; the request counters are created on first use of a (method, code) pair.
pub struct ModelMetrics {
    pub name: ModelName,
    pub duration: Histogram,
    pub upstream_headers: Histogram,
    pub first_chunk: Histogram,
    pub request_size: Histogram,
    pub response_size: Histogram,
    requests: RwLock<HashMap<(&'static str, u16), Counter>>,
    registry: Registry,
}

impl ProxyMetrics {
    pub fn new(registry: &Registry, prefixes: Vec<(String, String)>) -> Self {
        let mut prefixes = prefixes;
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        describe(registry);
        registry
            .gauge(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))])
            .set(1.0);
        let metrics = Self {
            registry: registry.clone(),
            in_flight: registry.gauge(IN_FLIGHT, &[]),
            upstream_errors: UpstreamErrorKind::ALL
                .map(|kind| registry.counter(UPSTREAM_ERRORS, &[("kind", kind.as_str())])),
            proxy_responses: ProxyError::RESPONSES.map(|(code, reason)| {
                registry.counter(
                    PROXY_RESPONSES,
                    &[("code", &code.to_string()), ("reason", reason)],
                )
            }),
            models: RwLock::new(HashMap::new()),
            prefixes,
            truncated: ["request", "response"]
                .map(|direction| registry.counter(BODY_TRUNCATED, &[("direction", direction)])),
            budget_exhausted: ["request", "response"].map(|direction| {
                registry.counter(CAPTURE_BUDGET_EXHAUSTED, &[("direction", direction)])
            }),
        };
        // Present from the start, so dashboards show 0 rather than nothing.
        metrics.model(UNKNOWN_MODEL);
        metrics
    }

    /// Counts captures cut by the size limit or the budget, per direction.
    pub fn count_truncation(&self, request: Truncation, response: Truncation) {
        for (index, truncation) in [request, response].into_iter().enumerate() {
            match truncation {
                Truncation::None => {}
                Truncation::SizeLimit => self.truncated[index].increment(1),
                Truncation::Budget => self.budget_exhausted[index].increment(1),
            }
        }
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        let index = UpstreamErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.upstream_errors[index].increment(1);
    }

    pub fn proxy_response(&self, error: &ProxyError) {
        let pair = (error.status().as_u16(), error.reason());
        if let Some(index) = ProxyError::RESPONSES.iter().position(|p| *p == pair) {
            self.proxy_responses[index].increment(1);
        }
    }

    /// The handles for the model a request path names: a configured `match.path_prefix` first,
    /// then the name in an Open Inference / KServe v1 path.
    pub fn for_path(&self, path: &str) -> Arc<ModelMetrics> {
        let configured = self
            .prefixes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, model)| model.as_str());
        self.model(
            configured
                .or_else(|| model_from_path(path))
                .unwrap_or(UNKNOWN_MODEL),
        )
    }

    fn model(&self, name: &str) -> Arc<ModelMetrics> {
        if let Some(found) = self.models.read().expect("model map lock").get(name) {
            return found.clone();
        }
        let mut models = self.models.write().expect("model map lock");
        if let Some(found) = models.get(name) {
            return found.clone();
        }
        let name = if models.len() >= MAX_MODEL_LABELS {
            OTHER_MODEL
        } else {
            name
        };
        models
            .entry(name.into())
            .or_insert_with(|| Arc::new(ModelMetrics::new(&self.registry, name)))
            .clone()
    }
}

impl ModelMetrics {
    fn new(registry: &Registry, name: &str) -> Self {
        let labels = [("model", name)];
        Self {
            name: name.into(),
            duration: registry.histogram(REQUEST_DURATION, &labels),
            upstream_headers: registry.histogram(UPSTREAM_HEADERS, &labels),
            first_chunk: registry.histogram(FIRST_CHUNK, &labels),
            request_size: registry.histogram(REQUEST_SIZE, &labels),
            response_size: registry.histogram(RESPONSE_SIZE, &labels),
            requests: RwLock::new(HashMap::new()),
            registry: registry.clone(),
        }
    }

    pub fn count_request(&self, method: &Method, code: u16) {
        let key = (method_label(method), code);
        if let Some(counter) = self
            .requests
            .read()
            .expect("request counter lock")
            .get(&key)
        {
            counter.increment(1);
            return;
        }
        let counter = self
            .requests
            .write()
            .expect("request counter lock")
            .entry(key)
            .or_insert_with(|| {
                self.registry.counter(
                    REQUESTS_TOTAL,
                    &[
                        ("model", &self.name),
                        ("method", key.0),
                        ("code", &code.to_string()),
                    ],
                )
            })
            .clone();
        counter.increment(1);
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The model name in an Open Inference (`/v2/models/{name}/...`) or KServe v1 / TF Serving
/// (`/v1/models/{name}:predict`) path.
pub fn model_from_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/v2/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let end = rest.find(['/', ':']).unwrap_or(rest.len());
    let name = &rest[..end];
    (!name.is_empty() && name.len() <= 128).then_some(name)
}

fn describe(registry: &Registry) {
    registry.describe_counter(
        REQUESTS_TOTAL,
        "Exchanges handled, by model, method and status code sent to the client.",
    );
    registry.describe_histogram(
        REQUEST_DURATION,
        Unit::Seconds,
        "Request head to last response byte.",
    );
    registry.describe_histogram(
        UPSTREAM_HEADERS,
        Unit::Seconds,
        "Request head to the upstream response head.",
    );
    registry.describe_histogram(
        FIRST_CHUNK,
        Unit::Seconds,
        "Request head to the first body chunk of streamed (no Content-Length) responses.",
    );
    registry.describe_gauge(IN_FLIGHT, "Exchanges in progress.");
    registry.describe_histogram(REQUEST_SIZE, Unit::Bytes, "Request body bytes.");
    registry.describe_histogram(RESPONSE_SIZE, Unit::Bytes, "Response body bytes.");
    registry.describe_counter(
        UPSTREAM_ERRORS,
        "Failures talking to the upstream, by kind.",
    );
    registry.describe_counter(
        PROXY_RESPONSES,
        "Responses made by driftwatch itself, by code and x-driftwatch-error reason.",
    );
    registry.describe_gauge(
        BUILD_INFO,
        "Always 1; the version label says which build runs.",
    );
    registry.describe_counter(
        BODY_TRUNCATED,
        "Bodies longer than recording.max_body_bytes, captured only in part, by direction.",
    );
    registry.describe_counter(
        CAPTURE_BUDGET_EXHAUSTED,
        "Bodies not captured (or only in part) because recording.capture_budget was spent, by direction.",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_come_from_inference_paths() {
        assert_eq!(model_from_path("/v2/models/iris/infer"), Some("iris"));
        assert_eq!(
            model_from_path("/v2/models/iris/versions/3/infer"),
            Some("iris")
        );
        assert_eq!(model_from_path("/v1/models/resnet:predict"), Some("resnet"));
        assert_eq!(model_from_path("/v2/models/"), None);
        assert_eq!(model_from_path("/invocations"), None);
    }

    #[test]
    fn model_labels_are_bounded() {
        let metrics =
            ProxyMetrics::new(&Registry::new(), vec![("/recommend".into(), "recs".into())]);
        assert_eq!(&*metrics.for_path("/recommend/user/1").name, "recs");
        for i in 0..MAX_MODEL_LABELS + 10 {
            metrics.for_path(&format!("/v2/models/m{i}/infer"));
        }
        assert_eq!(&*metrics.for_path("/v2/models/new/infer").name, OTHER_MODEL);
        assert!(metrics.models.read().unwrap().len() <= MAX_MODEL_LABELS + 1);
    }
}
