//! The upstream side: one pooled keep-alive client to the model server, and the readiness probe.

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version};
use http_body::Body;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{UpstreamConfig, UpstreamProtocol};

/// How long an idle pooled connection is kept; below the usual 60s+ keep-alive of model servers'
/// HTTP stacks (uvicorn 5s is the exception and is handled by hyper's retry-on-closed).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the pooled client. `B` is the request body type the proxy streams upstream.
pub fn client<B>(config: &UpstreamConfig) -> Client<HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.enforce_http(true);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if config.protocol == UpstreamProtocol::H2c {
        builder.http2_only(true);
    }
    builder.build(connector)
}

/// Where requests go: the upstream's scheme and authority, and the HTTP version to speak.
#[derive(Debug, Clone)]
pub struct Origin {
    scheme: Scheme,
    authority: Authority,
    pub version: Version,
}

impl Origin {
    pub fn new(config: &UpstreamConfig) -> Self {
        Self {
            scheme: config.scheme.clone(),
            authority: config.authority.clone(),
            version: match config.protocol {
                UpstreamProtocol::Http1 => Version::HTTP_11,
                UpstreamProtocol::H2c => Version::HTTP_2,
            },
        }
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The absolute URI of `uri`'s path and query on the upstream.
    pub fn uri_for(&self, uri: &Uri) -> Uri {
        let path_and_query = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .expect("scheme, authority and path come from valid URIs")
    }
}

/// Checks that the upstream is reachable: a TCP connect, or a GET of `health_path` answering 2xx.
#[derive(Clone)]
pub struct ReadinessProbe {
    origin: Origin,
    connect_timeout: Duration,
    health_path: Option<String>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl ReadinessProbe {
    pub fn new(config: &UpstreamConfig) -> Self {
        Self {
            origin: Origin::new(config),
            connect_timeout: config.connect_timeout,
            health_path: config.health_path.clone(),
            client: client(config),
        }
    }

    /// `Ok` when ready, else the reason.
    pub async fn check(&self) -> Result<(), String> {
        match &self.health_path {
            None => {
                let target = self.origin.authority.as_str();
                let connect = tokio::net::TcpStream::connect(target);
                match tokio::time::timeout(self.connect_timeout, connect).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("upstream {target}: {e}")),
                    Err(_) => Err(format!("upstream {target}: connect timed out")),
                }
            }
            Some(path) => {
                let uri = self
                    .origin
                    .uri_for(&path.parse::<Uri>().map_err(|e| e.to_string())?);
                let request = Request::get(&uri)
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                match tokio::time::timeout(self.connect_timeout * 2, self.client.request(request))
                    .await
                {
                    Ok(Ok(response)) if response.status().is_success() => Ok(()),
                    Ok(Ok(response)) => Err(format!("GET {uri}: {}", response.status())),
                    Ok(Err(e)) => Err(format!("GET {uri}: {e}")),
                    Err(_) => Err(format!("GET {uri}: timed out")),
                }
            }
        }
    }
}
