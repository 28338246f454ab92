//! Proxy-made responses: every way the proxy itself can answer a request, and the one function
//! that turns such an error into an HTTP response, marked with `x-driftwatch-error` so users can
//! tell it from a model-server error.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::headers::{X_DRIFTWATCH_ERROR, X_REQUEST_ID};
use crate::tap::Outcome;

type BoxError = Box<dyn StdError + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("too many requests in flight (limit {limit})")]
    Overloaded { limit: usize },
    #[error("driftwatch is shutting down")]
    Draining,
    #[error("request header fields too large: {bytes} bytes, limit {limit}")]
    HeaderTooLarge { bytes: usize, limit: usize },
    #[error("upstream {authority}: connect failed: {source}")]
    UpstreamConnect { authority: String, source: BoxError },
    #[error("upstream did not respond within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("upstream reset the connection: {0}")]
    UpstreamReset(BoxError),
    #[error("upstream sent an invalid response: {0}")]
    UpstreamProtocol(BoxError),
}

/// Why talking to the upstream failed, as counted in `driftwatch_upstream_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Reset,
    Protocol,
}

impl UpstreamErrorKind {
    pub const ALL: [Self; 4] = [Self::Connect, Self::Timeout, Self::Reset, Self::Protocol];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::Protocol => "protocol",
        }
    }
}

impl ProxyError {
    /// Every `(status, reason)` pair the proxy can answer with, for pre-registered metrics.
    pub const RESPONSES: [(u16, &'static str); 7] = [
        (503, "overloaded"),
        (503, "draining"),
        (431, "header_too_large"),
        (502, "upstream_connect"),
        (504, "upstream_timeout"),
        (502, "upstream_reset"),
        (502, "upstream_protocol"),
    ];

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Overloaded { .. } | Self::Draining => StatusCode::SERVICE_UNAVAILABLE,
            Self::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamConnect { .. } | Self::UpstreamReset(_) | Self::UpstreamProtocol(_) => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// The `x-driftwatch-error` value.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Overloaded { .. } => "overloaded",
            Self::Draining => "draining",
            Self::HeaderTooLarge { .. } => "header_too_large",
            Self::UpstreamConnect { .. } => "upstream_connect",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::UpstreamReset(_) => "upstream_reset",
            Self::UpstreamProtocol(_) => "upstream_protocol",
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Overloaded { .. } | Self::Draining | Self::HeaderTooLarge { .. } => {
                Outcome::Rejected
            }
            Self::UpstreamTimeout(_) => Outcome::Timeout,
            Self::UpstreamConnect { .. } | Self::UpstreamReset(_) | Self::UpstreamProtocol(_) => {
                Outcome::UpstreamError
            }
        }
    }

    pub fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            Self::UpstreamConnect { .. } => Some(UpstreamErrorKind::Connect),
            Self::UpstreamTimeout(_) => Some(UpstreamErrorKind::Timeout),
            Self::UpstreamReset(_) => Some(UpstreamErrorKind::Reset),
            Self::UpstreamProtocol(_) => Some(UpstreamErrorKind::Protocol),
            _ => None,
        }
    }

    /// Classifies a failure of the pooled client before a response head arrived.
    pub fn from_client(error: hyper_util::client::legacy::Error, authority: &str) -> Self {
        if error.is_connect() {
            return Self::UpstreamConnect {
                authority: authority.to_owned(),
                source: error.into(),
            };
        }
        match upstream_kind_of(&error) {
            UpstreamErrorKind::Reset => Self::UpstreamReset(error.into()),
            _ => Self::UpstreamProtocol(error.into()),
        }
    }
}

/// Distinguishes a connection that went away (reset, closed early) from one that spoke broken
/// HTTP, by walking the error's sources.
pub fn upstream_kind_of(error: &(dyn StdError + 'static)) -> UpstreamErrorKind {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(hyper_error) = error.downcast_ref::<hyper::Error>() {
            if hyper_error.is_parse() || hyper_error.is_parse_status() || hyper_error.is_user() {
                return UpstreamErrorKind::Protocol;
            }
            if hyper_error.is_incomplete_message()
                || hyper_error.is_canceled()
                || hyper_error.is_closed()
            {
                return UpstreamErrorKind::Reset;
            }
        }
        if let Some(io_error) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io_error.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return UpstreamErrorKind::Reset;
            }
        }
        if let Some(h2_error) = error.downcast_ref::<h2::Error>()
            && (h2_error.is_reset() || h2_error.is_go_away() || h2_error.is_io())
        {
            return UpstreamErrorKind::Reset;
        }
        current = error.source();
    }
    UpstreamErrorKind::Protocol
}

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The one place a proxy-made error becomes a response.
pub fn error_response(error: &ProxyError, request_id: &HeaderValue) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error": error.to_string(),
        "request_id": request_id.to_str().unwrap_or_default(),
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, APPLICATION_JSON.clone());
    headers.insert(
        X_DRIFTWATCH_ERROR.clone(),
        HeaderValue::from_static(error.reason()),
    );
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_responses_are_marked_and_carry_the_request_id() {
        let id = HeaderValue::from_static("req-1");
        let response = error_response(&ProxyError::Overloaded { limit: 4 }, &id);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["x-driftwatch-error"], "overloaded");
        assert_eq!(response.headers()["x-request-id"], "req-1");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["request_id"], "req-1");
        assert!(json["error"].as_str().unwrap().contains("limit 4"));
    }

    #[test]
    fn every_variant_is_in_the_response_table() {
        let variants = [
            ProxyError::Overloaded { limit: 1 },
            ProxyError::Draining,
            ProxyError::HeaderTooLarge { bytes: 2, limit: 1 },
            ProxyError::UpstreamConnect {
                authority: "x".into(),
                source: "refused".into(),
            },
            ProxyError::UpstreamTimeout(Duration::from_secs(1)),
            ProxyError::UpstreamReset("reset".into()),
            ProxyError::UpstreamProtocol("garbage".into()),
        ];
        for error in variants {
            let pair = (error.status().as_u16(), error.reason());
            assert!(ProxyError::RESPONSES.contains(&pair), "{pair:?}");
        }
    }

    #[test]
    fn io_resets_are_resets() {
        let error = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(upstream_kind_of(&error), UpstreamErrorKind::Reset);
        let other = std::io::Error::other("weird");
        assert_eq!(upstream_kind_of(&other), UpstreamErrorKind::Protocol);
    }
}
