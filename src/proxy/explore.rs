//! The exploration stage of the request path (`exploration` routes only): the upstream's response
//! is buffered (bounded by `max_response_bytes`), its ranked list reordered by the route's seeded
//! strategy, and sent with its new `Content-Length`. Anything that cannot be rewritten — not 2xx,
//! compressed, not JSON, no list, too large — passes through unmodified and is counted.
//!
//! This is the one place the proxy changes a response, by design (SPEC §9).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, ETAG, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use metrics::{Counter, Histogram};

use super::body::{ObservedBody, ResponseBody};
use super::exchange::Exchange;
use super::headers::{self, Upgrade, X_REQUEST_ID};
use crate::explore::route::{Route, outcome};
use crate::telemetry::Registry;

const DECISIONS: &str = "driftwatch_exploration_decisions_total";
const PROPENSITY: &str = "driftwatch_propensity";

/// The exploration routes and their metrics.
pub struct Explorer {
    routes: Vec<Arc<Route>>,
    decisions: RwLock<HashMap<(usize, &'static str, &'static str), Counter>>,
    propensity: Vec<Histogram>,
    registry: Registry,
}

/// An exploration request, noted before the request goes upstream.
pub struct Exploring {
    route: usize,
    unit: Vec<u8>,
    opted_out: bool,
}

impl Explorer {
    pub fn new(routes: Vec<Arc<Route>>, registry: &Registry) -> Self {
        registry.describe_counter(DECISIONS, "Responses on exploration routes, by bucket and outcome (explored, shadow, holdout, opt_out, skipped_*).");
        registry.describe_histogram(
            PROPENSITY,
            metrics::Unit::Count,
            "Propensity of the item chosen for the first free slot of explored lists.",
        );
        let propensity = routes
            .iter()
            .map(|r| registry.histogram(PROPENSITY, &[("route", r.name())]))
            .collect();
        let explorer = Self {
            routes,
            decisions: RwLock::new(HashMap::new()),
            propensity,
            registry: registry.clone(),
        };
        // Every route's outcomes are present from the start.
        for route in 0..explorer.routes.len() {
            for bucket in ["explore", "holdout", "randomize"] {
                for outcome in outcome::ALL {
                    let _ = explorer.counter(route, bucket, outcome);
                }
            }
        }
        explorer
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    fn counter(&self, route: usize, bucket: &'static str, outcome: &'static str) -> Counter {
        let key = (route, bucket, outcome);
        if let Some(counter) = self
            .decisions
            .read()
            .expect("decision counters lock")
            .get(&key)
        {
            return counter.clone();
        }
        self.decisions
            .write()
            .expect("decision counters lock")
            .entry(key)
            .or_insert_with(|| {
                self.registry.counter(
                    DECISIONS,
                    &[
                        ("route", self.routes[route].name()),
                        ("bucket", bucket),
                        ("outcome", outcome),
                    ],
                )
            })
            .clone()
    }

    /// Notes an exploration request: its route, unit and opt-out.
    pub fn exploring(
        &self,
        request: &Request<Incoming>,
        request_id: &HeaderValue,
    ) -> Option<Exploring> {
        let path = request.uri().path();
        let route = self
            .routes
            .iter()
            .position(|r| path.starts_with(r.config.path_prefix.as_str()))?;
        let config = &self.routes[route].config;
        let unit = request
            .headers()
            .get(&config.unit_header)
            .map_or_else(|| request_id.as_bytes().to_vec(), |v| v.as_bytes().to_vec());
        let opted_out = request
            .headers()
            .get(&config.opt_out_header)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"off"));
        Some(Exploring {
            route,
            unit,
            opted_out,
        })
    }

    /// Explores the response, or passes it through.
    pub async fn respond(
        &self,
        exploring: Exploring,
        response: Response<Incoming>,
        mut exchange: Exchange,
        deadline: tokio::time::Instant,
        timeout: std::time::Duration,
    ) -> Response<ResponseBody> {
        let route = &self.routes[exploring.route];
        let (mut parts, mut body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers, Upgrade::Strip);
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), exchange.request_id().clone());
        let bucket = route.bucket(&exploring.unit).as_str();
        let max = route.config.max_response_bytes;
        let compressed = parts
            .headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let passthrough = |parts: http::response::Parts,
                           body: Incoming,
                           mut exchange: Exchange,
                           prefix: Option<Bytes>| {
            let streamed = !parts.headers.contains_key(CONTENT_LENGTH);
            exchange.response_head(parts.status, &parts.headers, streamed);
            let body = ObservedBody::with_prefix(body, exchange, deadline, timeout, prefix);
            Response::from_parts(parts, ResponseBody::Streamed { body })
        };
        if !parts.status.is_success() || compressed {
            self.counter(exploring.route, bucket, outcome::NOT_REWRITABLE)
                .increment(1);
            return passthrough(parts, body, exchange, None);
        }
        if declared.is_some_and(|length| length > max) {
            self.counter(exploring.route, bucket, outcome::TOO_LARGE)
                .increment(1);
            return passthrough(parts, body, exchange, None);
        }
        // Buffer the body, bounded, within the exchange deadline.
        let mut buffer = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(max));
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                // A failing or late body: pass on what was read and let the stream report it.
                Ok(Some(Err(_))) | Err(_) => {
                    self.counter(exploring.route, bucket, outcome::NOT_REWRITABLE)
                        .increment(1);
                    return passthrough(parts, body, exchange, Some(buffer.freeze()));
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    buffer.extend_from_slice(&data);
                    if buffer.len() > max {
                        self.counter(exploring.route, bucket, outcome::TOO_LARGE)
                            .increment(1);
                        return passthrough(parts, body, exchange, Some(buffer.freeze()));
                    }
                }
                Err(_) => {
                    // Trailers on a JSON answer: not something to rewrite around.
                    self.counter(exploring.route, bucket, outcome::NOT_REWRITABLE)
                        .increment(1);
                    return passthrough(parts, body, exchange, Some(buffer.freeze()));
                }
            }
        }
        let original = buffer.freeze();
        let explored = route.explore(
            &original,
            &exploring.unit,
            exchange.request_id().as_bytes(),
            exploring.opted_out,
        );
        self.counter(exploring.route, explored.bucket.as_str(), explored.outcome)
            .increment(1);
        if let Some(p) = explored.propensity {
            self.propensity[exploring.route].record(p);
        }
        let sent = match explored.body {
            Some(rewritten) => {
                // The representation changed: its validators no longer describe it.
                parts.headers.remove(ETAG);
                parts.headers.remove("content-md5");
                Bytes::from(rewritten)
            }
            None => original,
        };
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(sent.len()));
        exchange.set_exploration(explored.log);
        exchange.response_head(parts.status, &parts.headers, false);
        exchange.response_data(&sent);
        exchange.finish(crate::tap::Outcome::Ok);
        let body = Full::new(sent);
        debug_assert!(body.size_hint().exact().is_some());
        Response::from_parts(parts, ResponseBody::Local { body })
    }
}
