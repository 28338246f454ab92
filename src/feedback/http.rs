//! The feedback call, shared by the admin endpoint and the proxy-port endpoint: parse the whole
//! body first, and only when every item is well-formed join them — a bad body changes nothing.

use std::time::SystemTime;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::parse;
use crate::monitor::SharedModels;

/// Problems listed in a 400 answer.
const MAX_PROBLEMS_SHOWN: usize = 20;

pub fn handle(models: &SharedModels, body: &[u8]) -> (StatusCode, Value) {
    let (items, problems) = match parse::parse(body) {
        Ok(parsed) => parsed,
        Err(message) => return (StatusCode::BAD_REQUEST, json!({"error": message})),
    };
    let Ok(mut models) = models.lock() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "monitoring state unavailable"}),
        );
    };
    if !problems.is_empty() {
        models.feedback.count_invalid(problems.len() as u64);
        let shown: Vec<Value> = problems
            .iter()
            .take(MAX_PROBLEMS_SHOWN)
            .map(|p| json!({"index": p.index, "error": p.message}))
            .collect();
        return (
            StatusCode::BAD_REQUEST,
            json!({
                "error": format!("{} of {} items are invalid; nothing was applied", problems.len(), problems.len() + items.len()),
                "invalid": problems.len(),
                "problems": shown,
            }),
        );
    }
    let counts = models.apply_feedback(items, SystemTime::now());
    (
        StatusCode::OK,
        serde_json::to_value(counts).unwrap_or_default(),
    )
}
