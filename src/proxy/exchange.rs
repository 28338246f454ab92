//! One exchange in progress: the observation being filled in, the in-flight slot it holds, and
//! the bookkeeping done exactly once when it ends — however it ends (completed, failed, timed out,
//! or dropped because the client went away).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use super::Shared;
use super::body::ResponseBody;
use super::error::{ProxyError, UpstreamErrorKind, error_response};
use super::metrics::{CLIENT_CLOSED_CODE, ModelMetrics};
use crate::tap::{
    Capture, Observation, Outcome, RequestHead, ResponseHead, Timing, detached_headers,
    detached_uri, detached_value,
};

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// What the request body stream reports back while the upstream client consumes it.
#[derive(Default)]
pub struct RequestSide {
    pub bytes: AtomicU64,
    /// Uncontended: only the upstream connection task pushes, and `finish` takes it once.
    pub capture: Mutex<Capture>,
}

pub struct Exchange {
    shared: Arc<Shared>,
    model: Arc<ModelMetrics>,
    started: Instant,
    request_side: Arc<RequestSide>,
    holds_in_flight: bool,
    /// Whether the response is streamed (no `Content-Length`), for the first-chunk histogram.
    streamed: bool,
    /// `Some` until the exchange is finished.
    observation: Option<Observation>,
}

impl Exchange {
    pub(super) fn begin<B>(
        shared: Arc<Shared>,
        request: &Request<B>,
        request_id: HeaderValue,
    ) -> Self {
        let model = shared.metrics.for_path(request.uri().path());
        let observation = Observation {
            request_id: detached_value(&request_id),
            started_at: SystemTime::now(),
            model: model.name.clone(),
            request: RequestHead {
                method: request.method().clone(),
                uri: detached_uri(request.uri()),
                version: request.version(),
                headers: detached_headers(request.headers()),
            },
            response: None,
            timing: Timing::default(),
            outcome: Outcome::ClientAbort,
            proxy_error: None,
            grpc_status: None,
            request_bytes: 0,
            response_bytes: 0,
            request_capture: Capture::default(),
            response_capture: shared.new_capture(),
            exploration: None,
        };
        let request_side = Arc::new(RequestSide {
            bytes: AtomicU64::new(0),
            capture: Mutex::new(shared.new_capture()),
        });
        Self {
            shared,
            model,
            started: Instant::now(),
            request_side,
            holds_in_flight: false,
            streamed: false,
            observation: Some(observation),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn request_id(&self) -> &HeaderValue {
        &self
            .observation
            .as_ref()
            .expect("the request id is read before the exchange finishes")
            .request_id
    }

    pub fn request_side(&self) -> Arc<RequestSide> {
        self.request_side.clone()
    }

    /// Takes an in-flight slot; returns how many exchanges were in flight before this one.
    pub fn enter_in_flight(&mut self) -> usize {
        self.holds_in_flight = true;
        self.shared.metrics.in_flight.increment(1.0);
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel)
    }

    fn leave_in_flight(&mut self) {
        if std::mem::take(&mut self.holds_in_flight) {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.shared.metrics.in_flight.decrement(1.0);
        }
    }

    /// Records the response head the client is about to receive.
    pub fn response_head(&mut self, status: StatusCode, headers: &HeaderMap, streamed: bool) {
        let upstream_headers = self.started.elapsed();
        self.streamed = streamed;
        if let Some(observation) = &mut self.observation {
            observation.timing.upstream_headers = Some(upstream_headers);
            observation.grpc_status = headers.get(&GRPC_STATUS).map(detached_value);
            observation.response = Some(ResponseHead {
                status,
                headers: detached_headers(headers),
            });
        }
    }

    pub fn response_data(&mut self, chunk: &Bytes) {
        if let Some(observation) = &mut self.observation {
            if observation.timing.first_chunk.is_none() {
                observation.timing.first_chunk = Some(self.started.elapsed());
            }
            observation.response_bytes += chunk.len() as u64;
            observation.response_capture.push(chunk);
        }
    }

    /// The exploration decision, for the record.
    pub fn set_exploration(&mut self, log: crate::explore::log::ExplorationLog) {
        if let Some(observation) = &mut self.observation {
            observation.exploration = Some(std::sync::Arc::new(log));
        }
    }

    pub fn response_trailers(&mut self, trailers: &HeaderMap) {
        if let (Some(observation), Some(status)) =
            (&mut self.observation, trailers.get(&GRPC_STATUS))
        {
            observation.grpc_status = Some(detached_value(status));
        }
    }

    /// Answers the request with a proxy-made error and finishes the exchange.
    pub fn reject(mut self, error: ProxyError) -> Response<ResponseBody> {
        let response = error_response(&error, self.request_id());
        self.shared.metrics.proxy_response(&error);
        if let Some(kind) = error.upstream_kind() {
            self.shared.metrics.upstream_error(kind);
        }
        let (parts, body) = response.into_parts();
        let body_len = http_body::Body::size_hint(&body).exact().unwrap_or(0);
        if let Some(observation) = &mut self.observation {
            observation.proxy_error = Some(error.reason());
            observation.response = Some(ResponseHead {
                status: parts.status,
                headers: parts.headers.clone(),
            });
            observation.response_bytes = body_len;
        }
        self.finish(error.outcome());
        Response::from_parts(parts, ResponseBody::Local { body })
    }

    /// Ends the exchange after a response head was sent and its body failed mid-stream.
    pub fn fail_body(&mut self, kind: UpstreamErrorKind) {
        self.shared.metrics.upstream_error(kind);
        let outcome = match kind {
            UpstreamErrorKind::Timeout => Outcome::Timeout,
            _ => Outcome::UpstreamError,
        };
        self.finish(outcome);
    }

    /// Ends the exchange: metrics, in-flight slot, observation to the tap. Idempotent.
    pub fn finish(&mut self, outcome: Outcome) {
        let Some(mut observation) = self.observation.take() else {
            return;
        };
        self.leave_in_flight();
        let total = self.started.elapsed();
        observation.outcome = outcome;
        observation.timing.total = total;
        observation.request_bytes = self.request_side.bytes.load(Ordering::Acquire);
        if let Ok(mut capture) = self.request_side.capture.lock() {
            observation.request_capture = std::mem::take(&mut *capture);
        }
        self.shared.metrics.count_truncation(
            observation.request_capture.truncation(),
            observation.response_capture.truncation(),
        );
        let code = observation
            .response
            .as_ref()
            .map_or(CLIENT_CLOSED_CODE, |head| head.status.as_u16());
        let model = &self.model;
        model.count_request(&observation.request.method, code);
        model.duration.record(total.as_secs_f64());
        if let Some(upstream) = observation
            .timing
            .upstream_headers
            .filter(|_| observation.proxy_error.is_none())
        {
            model.upstream_headers.record(upstream.as_secs_f64());
        }
        if self.streamed
            && let Some(first) = observation.timing.first_chunk
        {
            model.first_chunk.record(first.as_secs_f64());
        }
        model.request_size.record(observation.request_bytes as f64);
        model
            .response_size
            .record(observation.response_bytes as f64);
        self.shared.tap.offer(observation);
    }

    /// Time since the request head arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Exchange {
    /// An exchange dropped before it finished means the client went away (hyper drops the
    /// service future or the response body).
    fn drop(&mut self) {
        self.finish(Outcome::ClientAbort);
    }
}

/// An empty local body, for `101 Switching Protocols`.
pub fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}
