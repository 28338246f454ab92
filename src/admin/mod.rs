//! The admin listener (SPEC §10): metrics, health, readiness, and the JSON API.
//!
//! Served by axum on its own port, so a slow scrape or a burst of API calls never shares a
//! connection limit with inference traffic.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

mod api;
pub mod auth;

use crate::config::Config;
use crate::lifecycle::{Lifecycle, Phase};
use crate::monitor::SharedModels;
use crate::telemetry::Registry;
use crate::upstream::ReadinessProbe;

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    pub config: Arc<Config>,
    pub registry: Registry,
    pub lifecycle: Lifecycle,
    pub readiness: ReadinessProbe,
    pub models: SharedModels,
    pub diversity: crate::explore::analyzer::SharedDiversity,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/config", get(config))
        .route("/api/v1/models", get(api::models))
        .route("/api/v1/drift", get(api::drift))
        .route(
            "/api/v1/reference/{model}",
            get(api::get_reference).put(api::put_reference),
        )
        .route(
            "/api/v1/feedback",
            axum::routing::post(api::feedback).layer(axum::extract::DefaultBodyLimit::max(
                api::MAX_FEEDBACK_BYTES,
            )),
        )
        .route("/api/v1/performance", get(api::performance))
        .route("/api/v1/diversity", get(api::diversity))
        .with_state(state)
}

/// Serves the admin API until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop)
        .await
}

async fn metrics(State(state): State<AdminState>) -> Response {
    // Sliding windows move with time, also when no traffic moves them; never wait for the
    // analysis worker here (it will move them itself).
    if let Ok(mut models) = state.models.try_lock() {
        models.advance_to(std::time::SystemTime::now());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.registry.render(),
    )
        .into_response()
}

async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.lifecycle.phase() != Phase::Serving {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "draining"}),
        );
    }
    match state.readiness.check().await {
        Ok(()) => json(StatusCode::OK, serde_json::json!({"status": "ready"})),
        Err(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "upstream_unreachable", "reason": reason}),
        ),
    }
}

async fn config(State(state): State<AdminState>) -> Response {
    json(
        StatusCode::OK,
        serde_json::to_value(&*state.config.effective).unwrap_or_default(),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
