//! `POST /_driftwatch/feedback` on the proxy port (`feedback.proxy_endpoint: true`), for clients
//! that can reach only the proxy. The body is read (bounded) and handed to the same feedback call
//! as the admin endpoint, on a blocking thread: parsing labels is not request-path work, so it
//! does not run on the proxy's async workers.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::body::ResponseBody;
use super::exchange::Exchange;
use crate::config::AdminToken;
use crate::monitor::SharedModels;

pub const PATH: &str = "/_driftwatch/feedback";
/// Same bound as the admin endpoint.
const MAX_BODY: usize = 16 << 20;

pub struct Endpoint {
    models: SharedModels,
    token: Option<AdminToken>,
}

impl Endpoint {
    pub fn new(models: SharedModels, token: Option<AdminToken>) -> Self {
        Self { models, token }
    }

    pub async fn answer(
        &self,
        request: Request<Incoming>,
        mut exchange: Exchange,
    ) -> Response<ResponseBody> {
        let (status, body) = self.call(request).await;
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().insert(
            super::headers::X_REQUEST_ID.clone(),
            exchange.request_id().clone(),
        );
        let (parts, body) = response.into_parts();
        exchange.response_head(parts.status, &parts.headers, false);
        exchange.finish(crate::tap::Outcome::Ok);
        Response::from_parts(parts, ResponseBody::Local { body })
    }

    async fn call(&self, request: Request<Incoming>) -> (StatusCode, serde_json::Value) {
        if request.method() != Method::POST {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"error": "use POST"}),
            );
        }
        if let Some(denial) = crate::admin::auth::check(self.token.as_ref(), request.headers()) {
            return (denial.status(), denial.body());
        }
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    serde_json::json!({"error": format!("feedback bodies are limited to {MAX_BODY} bytes")}),
                );
            }
        };
        let models = self.models.clone();
        tokio::task::spawn_blocking(move || crate::feedback::http::handle(&models, &body))
            .await
            .unwrap_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "feedback failed"}),
            ))
    }
}
