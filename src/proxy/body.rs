//! Bodies on the way through. Both directions stream frame by frame; nothing is buffered here
//! (only exploration routes buffer a response, in `proxy::explore`, to reorder its list).
//!
//! [`RequestBody`] counts what the client sends while the upstream client reads it.
//! [`ObservedBody`] forwards the upstream's response frames as they arrive (so server-sent events
//! and streamed tokens are not delayed), enforces the exchange deadline, notes the first chunk,
//! trailers and size, and finishes the [`Exchange`] when the stream ends or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::error::{UpstreamErrorKind, upstream_kind_of};
use super::exchange::{Exchange, RequestSide};
use crate::tap::Outcome;

pin_project! {
    /// The client's request body, counted as the upstream client consumes it.
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        side: Arc<RequestSide>,
    }
}

impl RequestBody {
    pub fn new(inner: Incoming, side: Arc<RequestSide>) -> Self {
        Self { inner, side }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.side
                .bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            if let Ok(mut capture) = this.side.capture.lock() {
                capture.push(data);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a response body stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("upstream response body failed: {0}")]
    Upstream(BoxError),
    #[error("the exchange exceeded upstream.request_timeout ({0:?})")]
    Timeout(Duration),
}

pin_project! {
    /// The upstream's response body, observed on its way to the client.
    pub struct ObservedBody<B: Body = Incoming> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
        exchange: Exchange,
        // Bytes already read from `inner` (by a stage that looked at the body first), sent first.
        prefix: Option<Bytes>,
    }

    impl<B: Body> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // hyper may stop polling once `is_end_stream` is true; that is a completed body,
            // not a client abort.
            let outcome = if this.inner.is_end_stream() && this.prefix.is_none() { Outcome::Ok } else { Outcome::ClientAbort };
            this.exchange.finish(outcome);
        }
    }
}

impl<B: Body> ObservedBody<B> {
    pub fn new(inner: B, exchange: Exchange, deadline: Instant, timeout: Duration) -> Self {
        Self::with_prefix(inner, exchange, deadline, timeout, None)
    }

    /// A body whose first bytes were already read from `inner`.
    pub fn with_prefix(
        inner: B,
        exchange: Exchange,
        deadline: Instant,
        timeout: Duration,
        prefix: Option<Bytes>,
    ) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep_until(deadline),
            timeout,
            exchange,
            prefix: prefix.filter(|p| !p.is_empty()),
        }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        if let Some(prefix) = this.prefix.take() {
            this.exchange.response_data(&prefix);
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Poll::Ready(polled) = this.inner.as_mut().poll_frame(cx) {
            return Poll::Ready(match polled {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        this.exchange.response_data(data);
                    } else if let Some(trailers) = frame.trailers_ref() {
                        this.exchange.response_trailers(trailers);
                    }
                    Some(Ok(frame))
                }
                Some(Err(error)) => {
                    let error: BoxError = error.into();
                    this.exchange.fail_body(upstream_kind_of(&*error));
                    Some(Err(BodyError::Upstream(error)))
                }
                None => {
                    this.exchange.finish(Outcome::Ok);
                    None
                }
            });
        }
        // Only consulted while the upstream has nothing to give, so a fast body never touches
        // the timer wheel.
        ready!(this.deadline.poll(cx));
        this.exchange.fail_body(UpstreamErrorKind::Timeout);
        Poll::Ready(Some(Err(BodyError::Timeout(*this.timeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + extra);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}

pin_project! {
    /// What the proxy sends to the client: the upstream's body, observed, or a local response.
    #[project = ResponseBodyProjection]
    pub enum ResponseBody {
        Streamed { #[pin] body: ObservedBody },
        Local { body: Full<Bytes> },
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ResponseBodyProjection::Streamed { body } => body.poll_frame(cx),
            ResponseBodyProjection::Local { body } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streamed { body } => body.is_end_stream(),
            Self::Local { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed { body } => body.size_hint(),
            Self::Local { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{HeaderValue, Request};
    use http_body_util::BodyExt;
    use http_body_util::channel::Channel;

    use super::*;
    use crate::config::{Config, ConfigFile};
    use crate::lifecycle::Lifecycle;
    use crate::proxy::Proxy;
    use crate::tap;
    use crate::telemetry::Registry;

    /// A response body that stalls is cut at the exchange deadline: the client gets an error
    /// (so it sees a broken response, not a silently short one), and the observation says
    /// `timeout`. Time is paused, so the 60s deadline passes instantly.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_at_the_deadline() {
        let registry = Registry::new();
        let (tap, observations) = tap::channel(8, &registry);
        let config = Config::from_file(ConfigFile::default()).unwrap();
        let proxy = Proxy::new(&config, &registry, tap, Lifecycle::new(), None);
        let request = Request::post("/v2/models/iris/infer").body(()).unwrap();
        let exchange = Exchange::begin(
            proxy.shared.clone(),
            &request,
            HeaderValue::from_static("req-7"),
        );
        let (mut sender, stalled) = Channel::<Bytes, Infallible>::new(1);
        sender
            .send_data(Bytes::from_static(b"first"))
            .await
            .unwrap();
        let timeout = config.upstream.request_timeout;
        let body = ObservedBody::new(stalled, exchange, Instant::now() + timeout, timeout);

        let started = Instant::now();
        let error = body.collect().await.unwrap_err();
        assert!(matches!(error, BodyError::Timeout(_)), "{error}");
        assert_eq!(started.elapsed(), timeout);

        let observation = observations.try_recv().unwrap();
        assert_eq!(observation.outcome, Outcome::Timeout);
        assert_eq!(observation.response_bytes, 5);
        assert_eq!(&*observation.model, "iris");
        let exposition = registry.render();
        assert!(exposition.contains("driftwatch_upstream_errors_total{kind=\"timeout\"} 1"));
        drop(sender);
    }

    /// A body that completes finishes the exchange as `ok` exactly once, even though hyper
    /// drops it afterwards.
    #[tokio::test(start_paused = true)]
    async fn a_complete_body_finishes_once_as_ok() {
        let registry = Registry::new();
        let (tap, observations) = tap::channel(8, &registry);
        let config = Config::from_file(ConfigFile::default()).unwrap();
        let proxy = Proxy::new(&config, &registry, tap, Lifecycle::new(), None);
        let request = Request::get("/health").body(()).unwrap();
        let exchange = Exchange::begin(
            proxy.shared.clone(),
            &request,
            HeaderValue::from_static("r"),
        );
        let (mut sender, streamed) = Channel::<Bytes, Infallible>::new(2);
        sender.send_data(Bytes::from_static(b"ab")).await.unwrap();
        sender.send_data(Bytes::from_static(b"cde")).await.unwrap();
        drop(sender);
        let body = ObservedBody::new(
            streamed,
            exchange,
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcde");
        let observation = observations.try_recv().unwrap();
        assert_eq!(observation.outcome, Outcome::Ok);
        assert_eq!(observation.response_bytes, 5);
        assert!(observation.timing.first_chunk.is_some());
        drop(proxy);
        assert!(
            observations.recv_blocking().is_none(),
            "exactly one observation"
        );
    }
}
