//! The JSON API of monitoring: `/api/v1/models`, `/api/v1/drift`, `/api/v1/reference/{model}`,
//! `/api/v1/feedback`, `/api/v1/performance`, `/api/v1/diversity`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminState;
use super::auth;
use crate::monitor::model::ModelMonitor;
use crate::monitor::reference::Profile;

pub async fn models(State(state): State<AdminState>) -> Response {
    let Ok(models) = state.models.lock() else {
        return unavailable();
    };
    let list: Vec<Value> = models.monitors().map(model_summary).collect();
    Json(json!({"models": list})).into_response()
}

fn model_summary(monitor: &ModelMonitor) -> Value {
    let reference = match (monitor.profile(), monitor.learning_progress()) {
        (Some(profile), _) => {
            json!({"state": "ready", "source": profile.source, "rows": profile.rows})
        }
        (None, Some((rows, target))) => {
            json!({"state": "learning", "rows": rows, "target": target})
        }
        (None, None) => Value::Null,
    };
    let columns: Vec<Value> = monitor
        .profile()
        .map(|profile| {
            profile
                .columns
                .iter()
                .map(|c| json!({"name": c.name, "role": c.role, "kind": c.kind}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "name": monitor.name(),
        "version": monitor.version,
        "protocol": monitor.protocol,
        "configured": monitor.spec().path_prefix.is_some() || monitor.spec().reference.is_some() || !monitor.spec().input_names.is_empty(),
        "requests": monitor.requests,
        "rows": monitor.rows,
        "reference": reference,
        "columns": columns,
    })
}

#[derive(Deserialize)]
pub struct DriftQuery {
    model: Option<String>,
}

pub async fn drift(State(state): State<AdminState>, Query(query): Query<DriftQuery>) -> Response {
    let Ok(mut models) = state.models.lock() else {
        return unavailable();
    };
    models.advance_to(std::time::SystemTime::now());
    let report = |monitor: &ModelMonitor| {
        json!({
            "model": monitor.name(),
            "last_window": monitor.last_report(),
            "open_window": monitor.report(false),
            "change_points": monitor.change_points,
        })
    };
    match query.model {
        Some(name) => match models.get(&name) {
            Some(monitor) => Json(report(monitor)).into_response(),
            None => not_found(&name),
        },
        None => Json(json!({"models": models.monitors().map(report).collect::<Vec<_>>()}))
            .into_response(),
    }
}

pub async fn get_reference(State(state): State<AdminState>, Path(model): Path<String>) -> Response {
    let Ok(models) = state.models.lock() else {
        return unavailable();
    };
    match models.get(&model).and_then(|m| m.profile()) {
        Some(profile) => Json(&**profile).into_response(),
        None => not_found(&model),
    }
}

pub async fn put_reference(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = auth::denied(state.config.admin.token.as_ref(), &headers) {
        return denied;
    }
    let text = String::from_utf8_lossy(&body);
    let profile = match Profile::from_json(&text) {
        Ok(profile) => profile,
        Err(message) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response();
        }
    };
    let Ok(mut models) = state.models.lock() else {
        return unavailable();
    };
    match models.set_reference(&model, profile) {
        Ok(()) => Json(json!({"status": "replaced", "model": model})).into_response(),
        Err(message) => (StatusCode::CONFLICT, Json(json!({"error": message}))).into_response(),
    }
}

fn not_found(model: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no model {model:?} with a reference")})),
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "monitoring state unavailable"})),
    )
        .into_response()
}

/// Bodies larger than this are refused (413): feedback comes in batches, not bulk uploads.
pub const MAX_FEEDBACK_BYTES: usize = 16 << 20;

/// `POST /api/v1/feedback` (and `/_driftwatch/feedback` on the proxy port when enabled).
pub async fn feedback(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = auth::denied(state.config.admin.token.as_ref(), &headers) {
        return denied;
    }
    // Parsing a large batch and waiting for the monitoring lock must not hold a runtime worker
    // that proxy traffic shares.
    let models = state.models.clone();
    let (status, answer) =
        tokio::task::spawn_blocking(move || crate::feedback::http::handle(&models, &body))
            .await
            .unwrap_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "feedback failed"}),
            ));
    (status, Json(answer)).into_response()
}

pub async fn performance(State(state): State<AdminState>) -> Response {
    let Ok(models) = state.models.lock() else {
        return unavailable();
    };
    Json(models.feedback.report()).into_response()
}

pub async fn diversity(State(state): State<AdminState>) -> Response {
    Json(crate::explore::analyzer::report(&state.diversity)).into_response()
}
