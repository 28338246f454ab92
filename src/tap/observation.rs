//! What one exchange looked like, as seen from the proxy.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};

use super::ModelName;
pub use super::capture::Capture;

/// One exchange, built on the request path and consumed on the analysis path.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The request id sent upstream and returned to the client.
    pub request_id: HeaderValue,
    /// Wall-clock time the request head arrived.
    pub started_at: SystemTime,
    /// The model label the exchange was counted under.
    pub model: ModelName,
    pub request: RequestHead,
    /// `None` when no response head came from the upstream (proxy-made responses set
    /// `proxy_error` and carry their own status here).
    pub response: Option<ResponseHead>,
    pub timing: Timing,
    pub outcome: Outcome,
    /// The `x-driftwatch-error` reason when the proxy answered itself.
    pub proxy_error: Option<&'static str>,
    /// `grpc-status` from the response trailers (or trailers-only headers).
    pub grpc_status: Option<HeaderValue>,
    /// Body bytes that crossed the proxy in each direction.
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Captured body prefixes, filled when recording is configured.
    pub request_capture: Capture,
    pub response_capture: Capture,
    /// The exploration decision, on exploration routes (the record's `exploration` field).
    pub exploration: Option<std::sync::Arc<crate::explore::log::ExplorationLog>>,
}

#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Request head to the last response byte (or to the abort).
    pub total: Duration,
    /// Request head to the upstream response head.
    pub upstream_headers: Option<Duration>,
    /// Request head to the first response body chunk.
    pub first_chunk: Option<Duration>,
}

/// How the exchange ended (SPEC §5 `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered and the response was delivered completely, whatever its status.
    Ok,
    /// The upstream could not be reached, reset, or spoke broken HTTP.
    UpstreamError,
    /// `upstream.request_timeout` passed.
    Timeout,
    /// The client went away before the response was complete.
    ClientAbort,
    /// The proxy refused the request itself (overload, draining, limits).
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UpstreamError => "upstream_error",
            Self::Timeout => "timeout",
            Self::ClientAbort => "client_abort",
            Self::Rejected => "rejected",
        }
    }
}
