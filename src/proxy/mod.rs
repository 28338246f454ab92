//! The request path: client request in, upstream request out, upstream response back — changed
//! only as SPEC §4 documents, observed without being delayed.
//!
//! [`handle`] reads top to bottom as the stages of one exchange:
//! 1. **begin** — request id, model label, the observation draft ([`exchange`]);
//! 2. **admit** — draining, in-flight cap, header size: shed load before doing any work;
//! 3. **rewrite** — hop-by-hop removal, `X-Forwarded-*`, request id, absolute upstream URI
//!    ([`headers`]);
//! 4. **forward** — the pooled client, bounded by `upstream.request_timeout`;
//! 5. **respond** — response headers rewritten, body streamed through [`body::ObservedBody`],
//!    which hands the finished observation to the tap.
//!
//! Errors at any stage become responses in one place ([`error::error_response`]).

mod body;
mod error;
mod exchange;
mod explore;
mod feedback;
pub mod headers;
pub mod metrics;
mod upgrade;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, EXPECT, HOST, HeaderValue};
use http::{Extensions, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

pub use body::{BodyError, ResponseBody};
pub use error::{ProxyError, UpstreamErrorKind};

use self::body::{ObservedBody, RequestBody};
use self::exchange::Exchange;
use self::headers::{Upgrade, X_REQUEST_ID};
use self::metrics::ProxyMetrics;
use crate::config::Config;
use crate::lifecycle::{Lifecycle, Phase};
use crate::monitor::SharedModels;
use crate::tap::{Capture, CaptureBudget, Tap};
use crate::telemetry::Registry;
use crate::upstream::{self, Origin};

/// The proxy, shared by every connection.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    client: Client<HttpConnector, RequestBody>,
    origin: Origin,
    request_timeout: Duration,
    max_header_bytes: usize,
    max_in_flight: usize,
    in_flight: AtomicUsize,
    lifecycle: Lifecycle,
    metrics: ProxyMetrics,
    tap: Tap,
    /// Per-direction body capture size; 0 when nothing consumes captures.
    capture_limit: usize,
    capture_budget: Arc<CaptureBudget>,
    /// `POST /_driftwatch/feedback` answered here (`feedback.proxy_endpoint`).
    feedback: Option<feedback::Endpoint>,
    /// Exploration routes (SPEC §9).
    explorer: explore::Explorer,
}

impl Proxy {
    pub fn new(
        config: &Config,
        registry: &Registry,
        tap: Tap,
        lifecycle: Lifecycle,
        models: Option<SharedModels>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                client: upstream::client(&config.upstream),
                origin: Origin::new(&config.upstream),
                request_timeout: config.upstream.request_timeout,
                max_header_bytes: config.limits.max_header_bytes.get(),
                max_in_flight: config.limits.max_in_flight.get(),
                in_flight: AtomicUsize::new(0),
                lifecycle,
                metrics: ProxyMetrics::new(
                    registry,
                    config
                        .models
                        .iter()
                        .filter_map(|m| Some((m.path_prefix.clone()?, m.name.clone())))
                        .collect(),
                ),
                tap,
                capture_limit: config.capture_limit(),
                capture_budget: CaptureBudget::new(config.recording.capture_budget),
                feedback: models
                    .filter(|_| config.feedback.proxy_endpoint)
                    .map(|models| feedback::Endpoint::new(models, config.admin.token.clone())),
                explorer: explore::Explorer::new(
                    config
                        .exploration
                        .iter()
                        .cloned()
                        .map(crate::explore::route::Route::new)
                        .collect(),
                    registry,
                ),
            }),
        }
    }

    /// The service for one client connection.
    pub fn service(&self, client_addr: SocketAddr) -> ProxyService {
        ProxyService {
            shared: self.shared.clone(),
            client_addr,
        }
    }
}

/// The per-connection service hyper drives.
#[derive(Clone)]
pub struct ProxyService {
    shared: Arc<Shared>,
    client_addr: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    // The one box per request: the future of `handle` is large and its type unnameable.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        Box::pin(handle(self.shared.clone(), self.client_addr, request))
    }
}

async fn handle(
    shared: Arc<Shared>,
    client_addr: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let request_id = headers::request_id(request.headers());
    let mut exchange = Exchange::begin(shared.clone(), &request, request_id);

    if let Err(error) = shared.admit(&mut exchange, &request) {
        return Ok(exchange.reject(error));
    }

    // The one path the proxy answers itself, when configured; never forwarded.
    if let Some(endpoint) = &shared.feedback
        && request.uri().path() == feedback::PATH
    {
        return Ok(endpoint.answer(request, exchange).await);
    }

    // The client's upgrade handle must be taken before the request is consumed. Upgrades are an
    // HTTP/1.1 mechanism on both sides.
    let client_upgrade = (request.version() == Version::HTTP_11
        && shared.origin.version == Version::HTTP_11
        && headers::wants_upgrade(request.headers()))
    .then(|| hyper::upgrade::on(&mut request));
    let upgrade = if client_upgrade.is_some() {
        Upgrade::Keep
    } else {
        Upgrade::Strip
    };

    let exploring = if shared.explorer.is_empty() {
        None
    } else {
        shared.explorer.exploring(&request, exchange.request_id())
    };

    let upstream_request = shared.upstream_request(request, client_addr, &exchange, upgrade);
    let deadline = exchange.started() + shared.request_timeout;
    let response =
        match tokio::time::timeout_at(deadline.into(), shared.client.request(upstream_request))
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                let error = ProxyError::from_client(error, shared.origin.authority().as_str());
                return Ok(exchange.reject(error));
            }
            Err(_elapsed) => {
                return Ok(exchange.reject(ProxyError::UpstreamTimeout(shared.request_timeout)));
            }
        };

    if let Some(exploring) = exploring {
        return Ok(shared
            .explorer
            .respond(
                exploring,
                response,
                exchange,
                deadline.into(),
                shared.request_timeout,
            )
            .await);
    }
    Ok(shared.client_response(response, exchange, client_upgrade, deadline.into()))
}

impl Shared {
    fn new_capture(&self) -> Capture {
        Capture::new(self.capture_limit, Some(self.capture_budget.clone()))
    }

    fn admit(
        &self,
        exchange: &mut Exchange,
        request: &Request<Incoming>,
    ) -> Result<(), ProxyError> {
        if self.lifecycle.phase() == Phase::Closing {
            return Err(ProxyError::Draining);
        }
        let in_flight_before = exchange.enter_in_flight();
        if in_flight_before >= self.max_in_flight {
            return Err(ProxyError::Overloaded {
                limit: self.max_in_flight,
            });
        }
        let head_bytes = headers::head_size(request.method(), request.uri(), request.headers());
        if head_bytes > self.max_header_bytes {
            return Err(ProxyError::HeaderTooLarge {
                bytes: head_bytes,
                limit: self.max_header_bytes,
            });
        }
        Ok(())
    }

    fn upstream_request(
        &self,
        request: Request<Incoming>,
        client_addr: SocketAddr,
        exchange: &Exchange,
        upgrade: Upgrade,
    ) -> Request<RequestBody> {
        let (mut parts, body) = request.into_parts();
        // HTTP/2 clients send the authority in the URI; HTTP/1 upstreams need it as Host.
        if !parts.headers.contains_key(HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(HOST, host);
        }
        headers::remove_hop_by_hop(&mut parts.headers, upgrade);
        // hyper answers `Expect: 100-continue` to the client when the body is first read, which
        // happens as soon as the upstream connection is ready; the upstream need not repeat it.
        parts.headers.remove(EXPECT);
        headers::append_forwarded(&mut parts.headers, client_addr.ip(), "http");
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), exchange.request_id().clone());
        parts.uri = self.origin.uri_for(&parts.uri);
        parts.version = self.origin.version;
        parts.extensions = Extensions::new();
        Request::from_parts(parts, RequestBody::new(body, exchange.request_side()))
    }

    fn client_response(
        &self,
        mut response: Response<Incoming>,
        mut exchange: Exchange,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        deadline: tokio::time::Instant,
    ) -> Response<ResponseBody> {
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (true, Some(client_upgrade)) = (switching, client_upgrade) {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let (mut parts, _) = response.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers, Upgrade::Keep);
            parts
                .headers
                .insert(X_REQUEST_ID.clone(), exchange.request_id().clone());
            exchange.response_head(parts.status, &parts.headers, false);
            exchange.finish(crate::tap::Outcome::Ok);
            upgrade::tunnel(client_upgrade, upstream_upgrade);
            return Response::from_parts(
                parts,
                ResponseBody::Local {
                    body: exchange::empty(),
                },
            );
        }
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers, Upgrade::Strip);
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), exchange.request_id().clone());
        let streamed = !parts.headers.contains_key(CONTENT_LENGTH);
        exchange.response_head(parts.status, &parts.headers, streamed);
        let body = ObservedBody::new(body, exchange, deadline, self.request_timeout);
        Response::from_parts(parts, ResponseBody::Streamed { body })
    }
}
