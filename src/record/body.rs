//! A captured body as it appears in a record: embedded JSON (`encoding: "json"`), a UTF-8 string
//! (`"text"`), or base64 (`"base64"`). JSON bodies are redacted before they are embedded. A body
//! that cannot be parsed (not JSON, or truncated) cannot be redacted by key or pointer: when
//! redaction is configured it is withheld (`"withheld"`, body `null`) rather than recorded raw, so
//! a configured redaction is never bypassed by a long or malformed body.

use base64::Engine;
use serde_json::Value;

use super::redact::Redactor;
use crate::tap::Capture;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Text,
    Base64,
    /// Redaction is configured and the body could not be parsed to apply it.
    Withheld,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Base64 => "base64",
            Self::Withheld => "withheld",
        }
    }
}

/// The body value and its encoding. Complete bodies that parse as JSON are embedded (whatever the
/// content type claims, since model servers often omit it); everything else is text when it is
/// UTF-8 (a truncated body is cut back to a character boundary) and base64 otherwise.
pub fn encode(capture: &Capture, redactor: &Redactor) -> (Value, Encoding) {
    let bytes = capture.as_slice();
    if !capture.truncated()
        && looks_like_json(bytes)
        && let Ok(mut value) = serde_json::from_slice::<Value>(bytes)
    {
        redactor.redact(&mut value);
        return (value, Encoding::Json);
    }
    if !redactor.is_noop() && !bytes.is_empty() {
        return (Value::Null, Encoding::Withheld);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        // A cut in the middle of a multi-byte character is still text.
        Err(error) if capture.truncated() && error.error_len().is_none() => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text) => (Value::String(text.to_owned()), Encoding::Text),
        None => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            Encoding::Base64,
        ),
    }
}

/// The raw body a record holds for one side (`record["request"]` or `record["response"]`): the
/// bytes it encodes, and whether they were truncated. `None` when the side has no body.
pub fn decode(side: &Value) -> Option<(Vec<u8>, bool)> {
    let body = side.get("body")?;
    let truncated = side
        .get("truncated")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let bytes = match side.get("encoding").and_then(Value::as_str) {
        Some("json") => serde_json::to_vec(body).ok()?,
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(body.as_str()?)
            .ok()?,
        _ => body.as_str()?.as_bytes().to_vec(),
    };
    Some((bytes, truncated))
}

fn looks_like_json(bytes: &[u8]) -> bool {
    matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9')
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::recording::{Redaction, RedactionMode};

    fn capture(bytes: &'static [u8], limit: usize) -> Capture {
        let mut capture = Capture::new(limit, None);
        capture.push(&Bytes::from_static(bytes));
        capture
    }

    fn email_redaction() -> Redactor {
        Redactor::new(&Redaction {
            keys: vec!["email".into()],
            pointers: vec![],
            mode: RedactionMode::Mask,
        })
    }

    fn no_redaction() -> Redactor {
        Redactor::new(&Redaction {
            keys: vec![],
            pointers: vec![],
            mode: RedactionMode::Mask,
        })
    }

    #[test]
    fn with_redaction_configured_unparseable_bodies_are_withheld() {
        for (bytes, limit) in [
            (&br#"{"email":"a@b.c","x":1}"#[..], 10),
            (&b"email=a@b.c"[..], 100),
            (&[0xff, 0xfe][..], 100),
        ] {
            let mut capture = Capture::new(limit, None);
            capture.push(&Bytes::copy_from_slice(bytes));
            assert_eq!(
                encode(&capture, &email_redaction()),
                (Value::Null, Encoding::Withheld),
                "{bytes:?}"
            );
        }
        assert_eq!(
            encode(&capture(b"", 100), &email_redaction()),
            (Value::String(String::new()), Encoding::Text),
            "an empty body has nothing to hide"
        );
    }

    #[test]
    fn complete_json_is_embedded_and_redacted() {
        let (value, encoding) = encode(
            &capture(br#"{"email":"a@b","x":[1.5]}"#, 100),
            &email_redaction(),
        );
        assert_eq!(encoding, Encoding::Json);
        assert_eq!(
            value,
            serde_json::json!({"email": "[REDACTED]", "x": [1.5]})
        );
    }

    #[test]
    fn truncated_json_is_text_and_utf8_is_cut_at_a_boundary() {
        let (value, encoding) = encode(&capture(br#"{"a":"xyz"}"#, 5), &no_redaction());
        assert_eq!(encoding, Encoding::Text);
        assert_eq!(value, r#"{"a":"#);
        let (value, encoding) = encode(&capture("héllo".as_bytes(), 2), &no_redaction());
        assert_eq!(encoding, Encoding::Text);
        assert_eq!(value, "h");
    }

    #[test]
    fn binary_is_base64() {
        let (value, encoding) = encode(&capture(&[0xff, 0x00, 0x9f], 10), &no_redaction());
        assert_eq!(encoding, Encoding::Base64);
        assert_eq!(value, "/wCf");
    }
}
