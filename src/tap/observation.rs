//! What one exchange looked like, as seen from the proxy.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::uri::{Authority, PathAndQuery};
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

/// A copy of `headers` whose values share one small allocation of their own.
///
/// hyper and h2 hand out header values (and the URI) as slices of the connection's read buffer; a
/// plain clone would keep that whole buffer (8 KiB or more per direction) alive for as long as
/// the observation waits in the analysis queue, multiplying the queue's memory. Copying the few
/// hundred bytes of values costs one allocation.
pub fn detached_headers(headers: &HeaderMap) -> HeaderMap {
    let total: usize = headers.iter().map(|(_, value)| value.len()).sum();
    let mut storage = BytesMut::with_capacity(total);
    for (_, value) in headers {
        storage.extend_from_slice(value.as_bytes());
    }
    let storage = storage.freeze();
    let mut copy = HeaderMap::with_capacity(headers.keys_len());
    let mut offset = 0;
    for (name, value) in headers {
        let end = offset + value.len();
        let mut detached = HeaderValue::from_maybe_shared(storage.slice(offset..end))
            .unwrap_or_else(|_| value.clone());
        detached.set_sensitive(value.is_sensitive());
        copy.append(name.clone(), detached);
        offset = end;
    }
    copy
}

/// A copy of one header value that does not keep a read buffer alive (see [`detached_headers`]).
pub fn detached_value(value: &HeaderValue) -> HeaderValue {
    let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
    copy.set_sensitive(value.is_sensitive());
    copy
}

/// A copy of `uri` that does not keep a read buffer alive (see [`detached_headers`]).
pub fn detached_uri(uri: &Uri) -> Uri {
    let mut parts = uri.clone().into_parts();
    if let Some(path) = &parts.path_and_query
        && let Ok(copy) =
            PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(path.as_str().as_bytes()))
    {
        parts.path_and_query = Some(copy);
    }
    if let Some(authority) = &parts.authority
        && let Ok(copy) =
            Authority::from_maybe_shared(Bytes::copy_from_slice(authority.as_str().as_bytes()))
    {
        parts.authority = Some(copy);
    }
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod detach_tests {
    use super::*;
    use http::header::{AUTHORIZATION, CONTENT_TYPE};

    #[test]
    fn detached_headers_are_equal_and_own_their_bytes() {
        let buffer = Bytes::from_static(b"application/jsonBearer xyzv1v2");
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_maybe_shared(buffer.slice(0..16)).unwrap(),
        );
        let mut secret = HeaderValue::from_maybe_shared(buffer.slice(16..26)).unwrap();
        secret.set_sensitive(true);
        headers.insert(AUTHORIZATION, secret);
        headers.append("x-multi", HeaderValue::from_static("v1"));
        headers.append("x-multi", HeaderValue::from_static("v2"));
        let copy = detached_headers(&headers);
        assert_eq!(copy, headers);
        assert_eq!(
            copy.get_all("x-multi").iter().collect::<Vec<_>>(),
            ["v1", "v2"]
        );
        assert!(copy[AUTHORIZATION].is_sensitive());
        assert_ne!(
            copy[CONTENT_TYPE].as_bytes().as_ptr(),
            headers[CONTENT_TYPE].as_bytes().as_ptr(),
            "the copy does not point into the read buffer"
        );
    }

    #[test]
    fn detached_uris_are_equal() {
        for text in [
            "/v2/models/iris/infer?x=1",
            "http://example.com:8080/a/b",
            "*",
        ] {
            let uri: Uri = text.parse().unwrap();
            assert_eq!(detached_uri(&uri), uri);
        }
        // A URI parsed from a buffer shares it; the detached copy does not.
        let buffer = Bytes::from_static(b"/v2/models/iris/infer?x=1");
        let uri = Uri::from_maybe_shared(buffer.clone()).unwrap();
        let copy = detached_uri(&uri);
        assert_eq!(copy, uri);
        assert_eq!(
            uri.path().as_ptr(),
            buffer.as_ptr(),
            "parsing shares the buffer"
        );
        assert_ne!(
            copy.path().as_ptr(),
            buffer.as_ptr(),
            "the copy does not point into the read buffer"
        );
        let value = HeaderValue::from_static("0192f2c4-7b1e-7000-8000-000000000000");
        assert_eq!(detached_value(&value), value);
    }
}
