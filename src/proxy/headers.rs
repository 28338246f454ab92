//! Header rewriting on the way through: hop-by-hop removal (RFC 9110 §7.6.1), `X-Forwarded-*`,
//! the request id. Pure functions over `HeaderMap`, so each rule is unit-tested on its own.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_DRIFTWATCH_ERROR: HeaderName = HeaderName::from_static("x-driftwatch-error");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Longest client-supplied request id reused as is; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 200;

/// Whether to keep `Upgrade` and `Connection: upgrade` (a protocol switch being tunnelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    Strip,
    Keep,
}

/// Removes hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-Connection`, `Transfer-Encoding`, `Upgrade` and `TE` — except `TE: trailers`, which gRPC
/// needs end to end.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: Upgrade) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| !(upgrade == Upgrade::Keep && name == header::UPGRADE))
            .collect();
        for name in named {
            // Never let a `Connection` list strip the headers this proxy itself sets.
            if name != X_REQUEST_ID && name != header::HOST {
                headers.remove(&name);
            }
        }
        headers.remove(header::CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    if headers.contains_key(header::TE) {
        let trailers_only = headers
            .get_all(header::TE)
            .iter()
            .any(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"));
        headers.remove(header::TE);
        if trailers_only {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    match upgrade {
        Upgrade::Strip => {
            headers.remove(header::UPGRADE);
        }
        Upgrade::Keep => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
}

/// True when an HTTP/1.1 request asks to switch protocols (WebSocket and the like).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Appends the client address to `X-Forwarded-For` and the scheme to `X-Forwarded-Proto`.
pub fn append_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &'static str) {
    append_list(headers, &X_FORWARDED_FOR, &client.to_string());
    append_list(headers, &X_FORWARDED_PROTO, proto);
}

fn append_list(headers: &mut HeaderMap, name: &HeaderName, item: &str) {
    let mut joined = String::new();
    for value in headers.get_all(name) {
        if let Ok(value) = value.to_str() {
            joined.push_str(value);
            joined.push_str(", ");
        }
    }
    joined.push_str(item);
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(name.clone(), value);
    }
}

/// The client's `X-Request-Id` when it is a sane token, else a fresh UUIDv7.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(value) = headers.get(&X_REQUEST_ID) {
        let bytes = value.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes.iter().all(|b| b.is_ascii_graphic())
        {
            return value.clone();
        }
    }
    let mut buffer = Uuid::encode_buffer();
    let text = Uuid::now_v7().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

/// Bytes of the request head as it appeared on the wire (request line and header lines).
pub fn head_size(method: &http::Method, uri: &http::Uri, headers: &HeaderMap) -> usize {
    let request_line = method.as_str().len() + uri.to_string().len() + " HTTP/1.1\r\n".len() + 1;
    request_line
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_connection_listed_ones_go() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("te", "gzip"),
            ("content-type", "application/json"),
        ]);
        remove_hop_by_hop(&mut map, Upgrade::Strip);
        let names: Vec<&str> = map.keys().map(|name| name.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut map = headers(&[("te", "trailers")]);
        remove_hop_by_hop(&mut map, Upgrade::Strip);
        assert_eq!(map.get("te").unwrap(), "trailers");
    }

    #[test]
    fn upgrade_is_kept_when_tunnelling() {
        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&map));
        remove_hop_by_hop(&mut map, Upgrade::Keep);
        assert_eq!(map.get("upgrade").unwrap(), "websocket");
        assert_eq!(map.get("connection").unwrap(), "upgrade");
        assert!(!wants_upgrade(&headers(&[("upgrade", "websocket")])));
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let mut map = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        append_forwarded(&mut map, "192.168.1.9".parse().unwrap(), "http");
        assert_eq!(
            map.get("x-forwarded-for").unwrap(),
            "10.0.0.1, 10.0.0.2, 192.168.1.9"
        );
        assert_eq!(map.get("x-forwarded-proto").unwrap(), "http");
    }

    #[test]
    fn request_id_is_reused_or_generated_as_uuid_v7() {
        let given = headers(&[("x-request-id", "abc-123")]);
        assert_eq!(request_id(&given), "abc-123");
        let generated = request_id(&HeaderMap::new());
        let uuid = Uuid::parse_str(generated.to_str().unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        let spaced = headers(&[("x-request-id", "has space")]);
        assert_ne!(request_id(&spaced), "has space");
    }
}
