//! The `http` sink's destination: CloudEvents 1.0 over a pooled keep-alive HTTP(S) client
//! (rustls; system roots plus an optional `ca_file`).
//!
//! Formats:
//! - `cloudevents-batch`: one `POST` per batch, `application/cloudevents-batch+json`, a JSON array
//!   of structured events whose `data` is the record;
//! - `cloudevents`: one `POST` per record, `application/cloudevents+json`, a structured event;
//! - `kserve`: two binary-mode `POST`s per record, exactly like KServe's logger: `ce-type`
//!   `org.kubeflow.serving.inference.request` with the request payload and
//!   `org.kubeflow.serving.inference.response` with the response payload, `ce-id` = request id,
//!   extensions `ce-inferenceservicename`, `ce-statuscode`, `ce-latencyms`.
//!
//! A 2xx answer is delivery; 408, 429 and 5xx (and transport errors) are retried; other 4xx are
//! permanent failures (the collector will never accept that payload).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use super::delivery::{Destination, Failure};
use crate::config::recording::HttpFormat;
use crate::record::RecordLine;

pub const RECORD_EVENT_TYPE: &str = "io.driftwatch.record.v1";
pub const KSERVE_REQUEST_TYPE: &str = "org.kubeflow.serving.inference.request";
pub const KSERVE_RESPONSE_TYPE: &str = "org.kubeflow.serving.inference.response";

pub struct HttpDestination {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: Uri,
    format: HttpFormat,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The CloudEvents `source`: `/driftwatch/<pod or host name>`.
    source: String,
}

impl HttpDestination {
    pub fn new(
        url: Uri,
        format: HttpFormat,
        headers: Vec<(HeaderName, HeaderValue)>,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let tls = tls_config(ca_file)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
        Ok(Self {
            client,
            url,
            format,
            headers,
            source: format!("/driftwatch/{host}"),
        })
    }

    async fn post(
        &self,
        content_type: &'static str,
        extra: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<(), Failure> {
        let mut request = Request::post(self.url.clone())
            .body(Full::new(body))
            .map_err(|e| Failure::permanent(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (name, value) in self.headers.iter().cloned().chain(extra) {
            headers.insert(name, value);
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::retryable(format!("POST {}: {e}", self.url)))?;
        let status = response.status();
        // Read the answer so the connection goes back to the pool.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::retryable(format!("POST {}: {status}", self.url)))
        } else {
            Err(Failure::permanent(format!("POST {}: {status}", self.url)))
        }
    }

    /// A structured CloudEvent whose `data` is the record, spliced in without re-encoding.
    fn structured_event(&self, record: &RecordLine) -> Vec<u8> {
        let time = record_field(&record.line, "time");
        let mut event = Vec::with_capacity(record.line.len() + 256);
        event.extend_from_slice(br#"{"specversion":"1.0","id":"#);
        event.extend_from_slice(json_string(&record.id).as_bytes());
        event.extend_from_slice(br#","source":"#);
        event.extend_from_slice(json_string(&self.source).as_bytes());
        event.extend_from_slice(br#","type":""#);
        event.extend_from_slice(RECORD_EVENT_TYPE.as_bytes());
        event.extend_from_slice(b"\"");
        if let Some(time) = time {
            event.extend_from_slice(br#","time":"#);
            event.extend_from_slice(json_string(&time).as_bytes());
        }
        event.extend_from_slice(br#","datacontenttype":"application/json","data":"#);
        event.extend_from_slice(&record.line);
        event.push(b'}');
        event
    }

    async fn deliver_kserve(&self, record: &RecordLine) -> Result<(), Failure> {
        let value: Value = serde_json::from_slice(&record.line)
            .map_err(|e| Failure::permanent(format!("unreadable record: {e}")))?;
        let model = value["model"].as_str().unwrap_or("unknown").to_owned();
        let latency = value["timing"]["total_ms"].as_f64().unwrap_or(0.0);
        let status = value["response"]["status"].as_u64();
        let common = |event_type: &'static str| {
            let mut headers = vec![
                (
                    HeaderName::from_static("ce-specversion"),
                    HeaderValue::from_static("1.0"),
                ),
                (
                    HeaderName::from_static("ce-type"),
                    HeaderValue::from_static(event_type),
                ),
                (
                    HeaderName::from_static("ce-latencyms"),
                    header_value(&format!("{latency}")),
                ),
            ];
            headers.push((HeaderName::from_static("ce-id"), header_value(&record.id)));
            headers.push((
                HeaderName::from_static("ce-source"),
                header_value(&self.source),
            ));
            headers.push((
                HeaderName::from_static("ce-inferenceservicename"),
                header_value(&model),
            ));
            if let Some(time) = value["time"].as_str() {
                headers.push((HeaderName::from_static("ce-time"), header_value(time)));
            }
            if let Some(status) = status {
                headers.push((
                    HeaderName::from_static("ce-statuscode"),
                    header_value(&status.to_string()),
                ));
            }
            headers
        };
        let (body, content_type) = payload(&value["request"]);
        self.post(content_type, common(KSERVE_REQUEST_TYPE), body)
            .await?;
        if value["response"].is_object() {
            let (body, content_type) = payload(&value["response"]);
            self.post(content_type, common(KSERVE_RESPONSE_TYPE), body)
                .await?;
        }
        Ok(())
    }
}

impl Destination for HttpDestination {
    async fn deliver(&mut self, batch: &[RecordLine]) -> Result<(), Failure> {
        match self.format {
            HttpFormat::CloudeventsBatch => {
                let mut body = Vec::with_capacity(batch.iter().map(|r| r.line.len() + 256).sum());
                body.push(b'[');
                for (index, record) in batch.iter().enumerate() {
                    if index > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(&self.structured_event(record));
                }
                body.push(b']');
                self.post(
                    "application/cloudevents-batch+json",
                    Vec::new(),
                    body.into(),
                )
                .await
            }
            HttpFormat::Cloudevents => {
                for (index, record) in batch.iter().enumerate() {
                    let event = self.structured_event(record);
                    if let Err(mut failure) = self
                        .post("application/cloudevents+json", Vec::new(), event.into())
                        .await
                    {
                        failure.delivered = index;
                        return Err(failure);
                    }
                }
                Ok(())
            }
            HttpFormat::Kserve => {
                for (index, record) in batch.iter().enumerate() {
                    if let Err(mut failure) = self.deliver_kserve(record).await {
                        failure.delivered = index;
                        return Err(failure);
                    }
                }
                Ok(())
            }
        }
    }
}

/// The raw payload of a record's request or response, with the content type to send it with.
fn payload(side: &Value) -> (Bytes, &'static str) {
    let content_type = match side["encoding"].as_str() {
        Some("json") => "application/json",
        Some("base64") => "application/octet-stream",
        _ => "text/plain; charset=utf-8",
    };
    let bytes = crate::record::body::decode(side)
        .map(|(bytes, _)| bytes)
        .unwrap_or_default();
    (Bytes::from(bytes), content_type)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// One top-level string field of a record line.
fn record_field(line: &[u8], field: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(line).ok()?;
    value.get(field)?.as_str().map(str::to_owned)
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    if let Some(path) = ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot parse ca_file {}: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("ca_file {} holds no certificate", path.display()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
