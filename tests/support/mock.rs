//! A mock model server on 127.0.0.1:0 speaking HTTP/1.1 and h2c, whose behaviour is chosen by the
//! request path, so one instance serves a whole test matrix.
//!
//! | path | answer |
//! |---|---|
//! | `/echo`, `/v2/models/...` | 200, the request body back, `x-echo-method`, `x-echo-path` |
//! | `/headers` | 200, the request headers as JSON `{name: [values]}` |
//! | `/status/{code}` | that status (3xx with `location`) |
//! | `/cookies` | two `set-cookie` and two `x-custom` values |
//! | `/chunked?chunks=K&size=S` | K chunks of S bytes, no `Content-Length` |
//! | `/sse` | one event, then waits for [`MockUpstream::release`], then two more |
//! | `/slow?ms=N` | waits N ms, then 200 |
//! | `/slow-body?ms=N` | head at once, body after N ms |
//! | `/trailers` | a gRPC-like body followed by `grpc-status` trailers |
//! | `/upgrade` | `101` to protocol `echo`, then echoes bytes |
//! | `/recs?n=N` | a ranked list of N items with awkward numbers (`1.10`, `1e-7`, 2^64−1) |
//! | `/oip-recs` | ids and scores as Open Inference output tensors |
//! | `/consume` | reads the whole body streaming; answers `{"bytes": n, "fnv": hash}` |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, channel::Channel};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

type MockBody = BoxBody<Bytes, Infallible>;

pub struct MockUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    requests: AtomicUsize,
    gate: Notify,
    seen_headers: std::sync::Mutex<Vec<HeaderMap>>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
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
                            async move { Ok::<_, Infallible>(respond(state, request).await) }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Lets a waiting `/sse` response continue.
    pub fn release(&self) {
        self.state.gate.notify_waiters();
    }

    /// The headers of every request received, in order.
    pub fn seen_headers(&self) -> Vec<HeaderMap> {
        self.state.seen_headers.lock().unwrap().clone()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(bytes: impl Into<Bytes>) -> MockBody {
    Full::new(bytes.into()).boxed()
}

fn query_number(request: &Request<Incoming>, key: &str, default: u64) -> u64 {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

async fn respond(state: Arc<State>, mut request: Request<Incoming>) -> Response<MockBody> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    state
        .seen_headers
        .lock()
        .unwrap()
        .push(request.headers().clone());
    let path = request.uri().path().to_owned();
    let route = if path.starts_with("/v2/models/") {
        "/echo"
    } else {
        path.as_str()
    };
    match route {
        "/echo" => {
            let method = request.method().to_string();
            let path_and_query = request.uri().path_and_query().unwrap().to_string();
            let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let mut response = Response::new(full(body));
            let headers = response.headers_mut();
            headers.insert("x-echo-method", HeaderValue::from_str(&method).unwrap());
            headers.insert(
                "x-echo-path",
                HeaderValue::from_str(&path_and_query).unwrap(),
            );
            if let Some(content_type) = content_type {
                headers.insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        "/recs" => {
            let n = query_number(&request, "n", 10);
            let items: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"id": "item-{i}", "score": {}.10, "meta": {{"x": 1e-7, "pinned": {}}}}}"#, 100 - i, i == 3))
                .collect();
            let body = format!(
                "{{\"user\": \"caf\\u00e9\", \"items\": [\n  {}\n], \"big\": 18446744073709551615, \"version\": \"1.0\"}}",
                items.join(",\n  ")
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ETAG, "\"v1\"")
                .body(full(body))
                .unwrap()
        }
        "/oip-recs" => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(r#"{"model_name":"recs","outputs":[{"name":"item_ids","shape":[1,5],"datatype":"BYTES","data":[["a","b","c","d","e"]]},{"name":"scores","shape":[1,5],"datatype":"FP32","data":[[0.9,0.8,0.7,0.6,0.5]]}]}"#))
            .unwrap(),
        "/consume" => {
            let mut body = request.into_body();
            let mut bytes = 0u64;
            let mut hash = FNV_OFFSET;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    bytes += data.len() as u64;
                    hash = fnv(hash, &data);
                }
            }
            Response::new(full(format!("{{\"bytes\":{bytes},\"fnv\":{hash}}}")))
        }
        "/headers" => {
            let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, value) in request.headers() {
                seen.entry(name.to_string())
                    .or_default()
                    .push(value.to_str().unwrap_or("<binary>").to_owned());
            }
            Response::new(full(serde_json::to_vec(&seen).unwrap()))
        }
        "/cookies" => Response::builder()
            .header(header::SET_COOKIE, "a=1; Path=/")
            .header(header::SET_COOKIE, "b=2; Path=/")
            .header("x-custom", "first")
            .header("x-custom", "second")
            .body(full("cookies"))
            .unwrap(),
        "/chunked" => {
            let chunks = query_number(&request, "chunks", 4);
            let size = query_number(&request, "size", 16) as usize;
            let (mut sender, body) = Channel::<Bytes, Infallible>::new(4);
            tokio::spawn(async move {
                for i in 0..chunks {
                    let byte = b'a' + (i % 26) as u8;
                    if sender
                        .send_data(Bytes::from(vec![byte; size]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            });
            Response::new(body.boxed())
        }
        "/sse" => {
            let (mut sender, body) = Channel::<Bytes, Infallible>::new(4);
            let state = state.clone();
            tokio::spawn(async move {
                let released = state.gate.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                let _ = sender
                    .send_data(Bytes::from_static(b"data: first\n\n"))
                    .await;
                released.await;
                let _ = sender
                    .send_data(Bytes::from_static(b"data: second\n\n"))
                    .await;
                let _ = sender
                    .send_data(Bytes::from_static(b"data: [DONE]\n\n"))
                    .await;
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(body.boxed())
                .unwrap()
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_number(&request, "ms", 1000))).await;
            Response::new(full("slow"))
        }
        "/slow-body" => {
            let wait = Duration::from_millis(query_number(&request, "ms", 1000));
            let (mut sender, body) = Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                let _ = sender.send_data(Bytes::from_static(b"start;")).await;
                tokio::time::sleep(wait).await;
                let _ = sender.send_data(Bytes::from_static(b"end")).await;
            });
            Response::new(body.boxed())
        }
        "/trailers" => {
            let (mut sender, body) = Channel::<Bytes, Infallible>::new(2);
            tokio::spawn(async move {
                let _ = sender
                    .send_data(Bytes::from_static(b"\0\0\0\0\x05hello"))
                    .await;
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                trailers.insert("grpc-message", HeaderValue::from_static("ok"));
                let _ = sender.send_trailers(trailers).await;
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "application/grpc")
                .body(body.boxed())
                .unwrap()
        }
        "/upgrade" => {
            let on_upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buffer).await {
                        if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "upgrade")
                .header(header::UPGRADE, "echo")
                .body(full(Bytes::new()))
                .unwrap()
        }
        _ => {
            if let Some(code) = path.strip_prefix("/status/") {
                let status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
                let mut builder = Response::builder().status(status);
                if status.is_redirection() {
                    builder = builder.header(header::LOCATION, "/elsewhere");
                }
                let body = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
                {
                    full(Bytes::new())
                } else {
                    full(format!("{{\"status\":{code}}}"))
                };
                return builder.body(body).unwrap();
            }
            Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(full("no such mock route"))
                .unwrap()
        }
    }
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `data`, continuing from `hash`.
pub fn fnv(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A TCP server that answers every connection with fixed bytes, then closes; for upstreams that
/// speak broken HTTP or reset mid-body.
pub async fn raw_upstream(reply: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 8192];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(reply).await;
                let _ = stream.flush().await;
                // Dropping the socket ends the response where it is.
            });
        }
    });
    (addr, task)
}
