//! Bodies on the way through. Both directions stream frame by frame; nothing is buffered.
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
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                this.side
                    .bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
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

/// Why a response body stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("upstream response body failed: {0}")]
    Upstream(#[from] hyper::Error),
    #[error("the exchange exceeded upstream.request_timeout ({0:?})")]
    Timeout(Duration),
}

pin_project! {
    /// The upstream's response body, observed on its way to the client.
    pub struct ObservedBody {
        #[pin]
        inner: Incoming,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
        exchange: Exchange,
    }

    impl PinnedDrop for ObservedBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // hyper may stop polling once `is_end_stream` is true; that is a completed body,
            // not a client abort.
            let outcome = if this.inner.is_end_stream() { Outcome::Ok } else { Outcome::ClientAbort };
            this.exchange.finish(outcome);
        }
    }
}

impl ObservedBody {
    pub fn new(inner: Incoming, exchange: Exchange, deadline: Instant, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep_until(deadline),
            timeout,
            exchange,
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
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
                    this.exchange.fail_body(upstream_kind_of(&error));
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
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
