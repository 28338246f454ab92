//! The transparency matrix: every scenario runs twice, directly against the mock model server and
//! through driftwatch, and what the client sees must be equal — apart from the documented
//! differences (hop-by-hop headers, `x-request-id` added, `X-Forwarded-*` added upstream).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use support::{MockUpstream, Observations, Running, h2c_client, http1_client, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a client can observe of a response.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: BTreeMap<String, Vec<String>>,
    body: Bytes,
    trailers: Option<BTreeMap<String, Vec<String>>>,
}

/// Headers whose values legitimately differ between two responses or hops.
const IGNORED: &[&str] = &[
    "date",
    "x-request-id",
    "connection",
    "keep-alive",
    "transfer-encoding",
];

fn normalize(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if !IGNORED.contains(&name.as_str()) {
            map.entry(name.to_string())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
    }
    map
}

async fn send(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    request: Request<Full<Bytes>>,
) -> (Seen, HeaderMap) {
    let response = client.request(request).await.expect("response");
    let status = response.status().as_u16();
    let raw_headers = response.headers().clone();
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().map(normalize);
    let body = collected.to_bytes();
    (
        Seen {
            status,
            headers: normalize(&raw_headers),
            body,
            trailers,
        },
        raw_headers,
    )
}

fn request(method: Method, url: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/octet-stream")
        .body(Full::new(body))
        .unwrap()
}

/// Runs one request direct and proxied and asserts what the client sees is the same.
async fn assert_transparent(
    mock: &MockUpstream,
    proxy: &Running,
    method: Method,
    path: &str,
    body: Bytes,
) -> Seen {
    let client = http1_client();
    let (direct, _) = send(
        &client,
        request(method.clone(), &mock.url(path), body.clone()),
    )
    .await;
    let (proxied, raw) = send(&client, request(method.clone(), &proxy.url(path), body)).await;
    assert_eq!(direct, proxied, "{method} {path}");
    assert!(
        raw.contains_key("x-request-id"),
        "{method} {path}: x-request-id returned"
    );
    proxied
}

#[tokio::test]
async fn methods_and_status_codes_pass_unchanged() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    for method in [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND",
    ] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = Bytes::from(format!("payload for {method}"));
        let seen =
            assert_transparent(&mock, &proxy, method.clone(), "/echo?q=1&r=%20x", body).await;
        assert_eq!(seen.headers["x-echo-method"], [method.as_str()]);
        assert_eq!(seen.headers["x-echo-path"], ["/echo?q=1&r=%20x"]);
    }
    for code in [
        200, 201, 202, 204, 301, 304, 400, 401, 404, 409, 418, 429, 500, 502, 503,
    ] {
        let seen = assert_transparent(
            &mock,
            &proxy,
            Method::GET,
            &format!("/status/{code}"),
            Bytes::new(),
        )
        .await;
        assert_eq!(seen.status, code);
    }
    proxy.stop().await;
}

#[tokio::test]
async fn response_headers_keep_every_value_and_order() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let seen = assert_transparent(&mock, &proxy, Method::GET, "/cookies", Bytes::new()).await;
    assert_eq!(seen.headers["set-cookie"], ["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(seen.headers["x-custom"], ["first", "second"]);
    proxy.stop().await;
}

#[tokio::test]
async fn request_headers_reach_the_upstream_with_only_the_documented_changes() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let client = http1_client();
    let build = |url: String| {
        Request::get(url)
            .header("x-tenant", "acme")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .header("authorization", "Bearer abc")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("x-forwarded-for", "10.1.2.3")
            .header("connection", "x-hop-secret")
            .header("x-hop-secret", "must not travel")
            .header("keep-alive", "timeout=5")
            .header("x-request-id", "client-chosen-id")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let (direct, _) = send(&client, build(mock.url("/headers"))).await;
    let (proxied, raw) = send(&client, build(proxy.url("/headers"))).await;
    let direct: BTreeMap<String, Vec<String>> = serde_json::from_slice(&direct.body).unwrap();
    let mut proxied: BTreeMap<String, Vec<String>> = serde_json::from_slice(&proxied.body).unwrap();

    // The documented changes, checked one by one ...
    assert_eq!(
        proxied.remove("x-forwarded-for").unwrap(),
        ["10.1.2.3, 127.0.0.1"]
    );
    assert_eq!(proxied.remove("x-forwarded-proto").unwrap(), ["http"]);
    assert_eq!(
        proxied.remove("host").unwrap(),
        [proxy.addr.to_string()],
        "Host is kept"
    );
    assert_eq!(
        raw["x-request-id"], "client-chosen-id",
        "a client's request id is reused"
    );
    // ... and everything else is what the upstream would have seen directly, minus hop-by-hop.
    let mut expected = direct.clone();
    for hop_by_hop in [
        "connection",
        "x-hop-secret",
        "keep-alive",
        "x-forwarded-for",
        "host",
    ] {
        expected.remove(hop_by_hop);
    }
    assert_eq!(proxied, expected);
    assert_eq!(proxied["traceparent"], direct["traceparent"]);
    assert_eq!(proxied["x-request-id"], ["client-chosen-id"]);
    proxy.stop().await;
}

#[tokio::test]
async fn a_request_id_is_generated_sent_upstream_and_returned() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let response = http1_client()
        .request(support::get(&proxy.url("/echo")))
        .await
        .unwrap();
    let returned = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let uuid = uuid::Uuid::parse_str(&returned).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 7);
    let sent_upstream = mock.seen_headers().last().unwrap()["x-request-id"].clone();
    assert_eq!(sent_upstream, returned.as_str());
    proxy.stop().await;
}

#[tokio::test]
async fn bodies_up_to_10_mib_stream_both_ways_intact() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    for size in [0usize, 1, 1024, 65_543, 1 << 20, 10 << 20] {
        let body: Bytes = (0..size)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let seen = assert_transparent(&mock, &proxy, Method::POST, "/echo", body.clone()).await;
        assert_eq!(seen.body.len(), size);
        assert!(seen.body == body, "body of {size} bytes intact");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn chunked_responses_pass_chunk_by_chunk() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let seen = assert_transparent(
        &mock,
        &proxy,
        Method::GET,
        "/chunked?chunks=50&size=1000",
        Bytes::new(),
    )
    .await;
    assert_eq!(seen.body.len(), 50_000);
    assert!(!seen.headers.contains_key("content-length"));
    proxy.stop().await;
}

/// The first server-sent event reaches the client while the upstream is still holding the
/// stream open: the proxy does not delay time to first token.
#[tokio::test]
async fn server_sent_events_are_not_delayed() {
    for through_proxy in [false, true] {
        let mock = MockUpstream::start().await;
        let proxy = Running::start(test_config(mock.addr)).await;
        let url = if through_proxy {
            proxy.url("/sse")
        } else {
            mock.url("/sse")
        };
        let response = http1_client().request(support::get(&url)).await.unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();
        let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("first event arrives while the upstream still holds the stream")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(&first[..], b"data: first\n\n");
        mock.release();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(&rest[..], b"data: second\n\ndata: [DONE]\n\n");
        proxy.stop().await;
    }
}

#[tokio::test]
async fn http2_clients_see_the_same_responses() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let client = h2c_client();
    for (method, path, body) in [
        (
            Method::POST,
            "/echo",
            Bytes::from_static(b"{\"inputs\":[]}"),
        ),
        (Method::GET, "/status/404", Bytes::new()),
        (Method::GET, "/cookies", Bytes::new()),
        (Method::GET, "/chunked?chunks=8&size=4096", Bytes::new()),
    ] {
        let (direct, _) = send(
            &client,
            request(method.clone(), &mock.url(path), body.clone()),
        )
        .await;
        let (proxied, raw) = send(&client, request(method.clone(), &proxy.url(path), body)).await;
        assert_eq!(direct, proxied, "h2 {method} {path}");
        assert!(raw.contains_key("x-request-id"));
    }
    proxy.stop().await;
}

async fn raw_http1(addr: SocketAddr, head: &str) -> String {
    let bytes = support::raw_exchange(addr, head.as_bytes(), Duration::from_secs(5)).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The status line and body of a raw HTTP/1.1 response, which is what is comparable.
fn status_and_body(raw: &str) -> (String, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    let head =
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    // raw_http1 reads until the server closes; a 5s idle cut-off would leave the answer open.
    let started = std::time::Instant::now();
    let direct = raw_http1(mock.addr, head).await;
    let proxied = raw_http1(proxy.addr, head).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "both servers closed the connection"
    );
    assert_eq!(status_and_body(&direct), status_and_body(&proxied));
    assert_eq!(
        status_and_body(&proxied),
        ("HTTP/1.1 200 OK".into(), "hello".into())
    );
    assert!(proxied.to_ascii_lowercase().contains("connection: close"));
    proxy.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    for addr in [mock.addr, proxy.addr] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        let mut interim = vec![0u8; 25];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut interim))
            .await
            .expect("100 Continue arrives without the body being sent")
            .unwrap();
        assert_eq!(&interim[..], b"HTTP/1.1 100 Continue\r\n\r\n");
        stream.write_all(b"hello world").await.unwrap();
        let response = support::read_until_idle(&mut stream, Duration::from_millis(500)).await;
        let response = String::from_utf8_lossy(&response).into_owned();
        assert_eq!(
            status_and_body(&response),
            ("HTTP/1.1 200 OK".into(), "hello world".into())
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn upgrade_is_tunnelled() {
    let mock = MockUpstream::start().await;
    let proxy = Running::start(test_config(mock.addr)).await;
    for addr in [mock.addr, proxy.addr] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut byte))
                .await
                .expect("101 head")
                .unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 101 switching protocols"),
            "{head}"
        );
        assert!(head.contains("upgrade: echo"), "{head}");
        for message in [&b"ping"[..], b"second message"] {
            stream.write_all(message).await.unwrap();
            let mut echoed = vec![0u8; message.len()];
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
                .await
                .expect("echo through the tunnel")
                .unwrap();
            assert_eq!(echoed, message);
        }
    }
    proxy.stop().await;
}

/// gRPC over h2c: trailers (`grpc-status`) reach the client, and the status is recorded.
#[tokio::test]
async fn grpc_trailers_pass_over_h2c_and_are_recorded() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.upstream.protocol = driftwatch::config::UpstreamProtocolName::H2c;
    let observations = Observations::default();
    let proxy = Running::start_with(file, vec![Box::new(observations.clone())]).await;
    let client = h2c_client();
    let grpc = |url: String| {
        Request::post(url)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
            .unwrap()
    };
    let (direct, _) = send(&client, grpc(mock.url("/trailers"))).await;
    let (proxied, _) = send(&client, grpc(proxy.url("/trailers"))).await;
    assert_eq!(direct, proxied);
    let trailers = proxied.trailers.expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], ["0"]);
    assert_eq!(trailers["grpc-message"], ["ok"]);
    let seen = observations.wait_for(1).await;
    assert_eq!(seen[0].grpc_status.as_ref().unwrap(), "0");
    assert_eq!(mock.seen_headers().last().unwrap()["te"], "trailers");
    proxy.stop().await;
}
