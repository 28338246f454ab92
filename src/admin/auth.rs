//! Bearer-token checks for mutating admin endpoints, compared in constant time.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::AdminToken;

/// `None` when no token is configured or the request carries it; else the 401/403 to send.
pub fn denied(token: Option<&AdminToken>, headers: &HeaderMap) -> Option<Response> {
    let token = token?;
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Some(
            (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({"error": "this endpoint needs Authorization: Bearer <admin token>"})),
        )
            .into_response(),
        );
    };
    if constant_time_eq(presented.trim().as_bytes(), token.0.as_bytes()) {
        None
    } else {
        Some(
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": "wrong admin token"})),
            )
                .into_response(),
        )
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
    }
}
