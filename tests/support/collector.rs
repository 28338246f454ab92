//! A CloudEvents collector for the HTTP sink tests, on 127.0.0.1:0, that can be told to accept,
//! reject with a status, or stall (hold requests without answering).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Reject(u16),
    Stall,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    mode: Mutex<Option<Mode>>,
    received: Mutex<Vec<Received>>,
    attempts: AtomicUsize,
}

pub struct Collector {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Collector {
    pub async fn start(mode: Mode) -> Self {
        Self::start_on("127.0.0.1:0", mode).await
    }

    pub async fn start_on(addr: &str, mode: Mode) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        *state.mode.lock().unwrap() = Some(mode);
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(state, request).await) }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/ingest", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = Some(mode);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// Record ids from accepted structured events (batch or single), in arrival order.
    pub fn record_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for received in self.received() {
            let value: serde_json::Value = match serde_json::from_slice(&received.body) {
                Ok(value) => value,
                Err(_) => continue,
            };
            let events = match value {
                serde_json::Value::Array(events) => events,
                event => vec![event],
            };
            for event in events {
                if let Some(id) = event["data"]["id"].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }
        ids
    }

    /// Waits (bounded) until `count` record ids arrived.
    pub async fn wait_for_ids(&self, count: usize, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let ids = self.record_ids();
            if ids.len() >= count || tokio::time::Instant::now() >= deadline {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    state.attempts.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mode = state.mode.lock().unwrap().unwrap_or(Mode::Accept);
    match mode {
        Mode::Accept => {
            state.received.lock().unwrap().push(Received {
                headers: parts.headers,
                body,
            });
            Response::new(Full::new(Bytes::from_static(b"{}")))
        }
        Mode::Reject(status) => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"nope")));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            response
        }
        Mode::Stall => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Full::new(Bytes::new()))
        }
    }
}
