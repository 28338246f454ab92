//! Bearer-token checks for mutating admin endpoints, compared in constant time.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::AdminToken;

/// Why a request is refused a mutating endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No `Authorization: Bearer` header: 401.
    Missing,
    /// A bearer token that is not the admin token: 403.
    Wrong,
}

impl Denial {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Missing => StatusCode::UNAUTHORIZED,
            Self::Wrong => StatusCode::FORBIDDEN,
        }
    }

    pub fn body(self) -> serde_json::Value {
        match self {
            Self::Missing => {
                serde_json::json!({"error": "this endpoint needs Authorization: Bearer <admin token>"})
            }
            Self::Wrong => serde_json::json!({"error": "wrong admin token"}),
        }
    }
}

/// `None` when no token is configured or the request carries it. Used by the admin listener and
/// by the proxy port's `/_driftwatch/feedback`, so both answer alike.
pub fn check(token: Option<&AdminToken>, headers: &HeaderMap) -> Option<Denial> {
    let token = token?;
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Some(Denial::Missing);
    };
    if constant_time_eq(presented.trim().as_bytes(), token.0.as_bytes()) {
        None
    } else {
        Some(Denial::Wrong)
    }
}

/// `None` when no token is configured or the request carries it; else the 401/403 to send.
pub fn denied(token: Option<&AdminToken>, headers: &HeaderMap) -> Option<Response> {
    let denial = check(token, headers)?;
    let body = axum::Json(denial.body());
    Some(match denial {
        Denial::Missing => (
            denial.status(),
            [(header::WWW_AUTHENTICATE, "Bearer")],
            body,
        )
            .into_response(),
        Denial::Wrong => (denial.status(), body).into_response(),
    })
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
