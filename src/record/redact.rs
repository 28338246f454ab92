//! Redaction of JSON bodies before a record leaves the process: by object key at any depth
//! (case-insensitive), and by JSON pointer. `mask` writes `"[REDACTED]"`; `hash` writes
//! `"hmac-sha256:<hex>"` of the value (a string's UTF-8 bytes, any other value's JSON text), keyed
//! by `recording.redact.hash_key_file`, so equal values stay joinable across records.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::config::recording::{Redaction, RedactionMode};

pub const MASK: &str = "[REDACTED]";

pub struct Redactor {
    keys: Vec<String>,
    /// Pointers parsed into unescaped reference tokens.
    pointers: Vec<Vec<String>>,
    mode: RedactionMode,
}

impl Redactor {
    pub fn new(redaction: &Redaction) -> Self {
        Self {
            keys: redaction.keys.clone(),
            pointers: redaction
                .pointers
                .iter()
                .map(|pointer| parse_pointer(pointer))
                .collect(),
            mode: redaction.mode.clone(),
        }
    }

    pub fn is_noop(&self) -> bool {
        self.keys.is_empty() && self.pointers.is_empty()
    }

    /// Redacts in place.
    pub fn redact(&self, value: &mut Value) {
        if self.is_noop() {
            return;
        }
        for pointer in &self.pointers {
            if let Some(target) = resolve(value, pointer) {
                *target = self.replacement(target);
            }
        }
        if !self.keys.is_empty() {
            self.redact_keys(value, 0);
        }
    }

    fn redact_keys(&self, value: &mut Value, depth: usize) {
        // serde_json already refuses documents nested deeper than 128 levels.
        if depth > 256 {
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if self.keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                        *child = self.replacement(child);
                    } else {
                        self.redact_keys(child, depth + 1);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.redact_keys(item, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn replacement(&self, original: &Value) -> Value {
        match &self.mode {
            RedactionMode::Mask => Value::String(MASK.to_owned()),
            RedactionMode::Hash { key } => {
                let text = match original {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                Value::String(format!("hmac-sha256:{}", hmac_hex(key, text.as_bytes())))
            }
        }
    }
}

pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in hmac(key, message) {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

/// HMAC-SHA256 of `message` keyed by `key`.
pub fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn parse_pointer(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn resolve<'a>(value: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    let mut current = value;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token)?,
            Value::Array(items) => items.get_mut(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn redactor(keys: &[&str], pointers: &[&str], mode: RedactionMode) -> Redactor {
        Redactor::new(&Redaction {
            keys: keys.iter().map(|k| k.to_lowercase()).collect(),
            pointers: pointers.iter().map(|p| (*p).to_owned()).collect(),
            mode,
        })
    }

    #[test]
    fn keys_are_redacted_at_any_depth_in_objects_and_arrays() {
        let mut body = json!({
            "email": "a@b.c",
            "user": {"Email": "x@y.z", "name": "kim"},
            "rows": [{"ssn": "123"}, {"nested": [{"SSN": 456}]}],
        });
        redactor(&["email", "ssn"], &[], RedactionMode::Mask).redact(&mut body);
        assert_eq!(
            body,
            json!({
                "email": MASK,
                "user": {"Email": MASK, "name": "kim"},
                "rows": [{"ssn": MASK}, {"nested": [{"SSN": MASK}]}],
            })
        );
    }

    #[test]
    fn pointers_are_redacted_including_escaped_tokens() {
        let mut body = json!({"inputs": [{"data": [1, 2]}, {"data": [3]}], "a/b": {"~k": 1}});
        redactor(
            &[],
            &["/inputs/1/data", "/a~1b/~0k", "/missing/x"],
            RedactionMode::Mask,
        )
        .redact(&mut body);
        assert_eq!(
            body,
            json!({"inputs": [{"data": [1, 2]}, {"data": MASK}], "a/b": {"~k": MASK}})
        );
    }

    #[test]
    fn hash_mode_is_keyed_and_joinable() {
        let key: std::sync::Arc<[u8]> = b"secret-key".to_vec().into();
        let hashing = redactor(&["email"], &[], RedactionMode::Hash { key: key.clone() });
        let mut first = json!({"email": "a@b.c"});
        let mut second = json!({"deep": {"email": "a@b.c"}});
        hashing.redact(&mut first);
        hashing.redact(&mut second);
        assert_eq!(
            first["email"], second["deep"]["email"],
            "equal values hash equally"
        );
        let expected = format!("hmac-sha256:{}", hmac_hex(b"secret-key", b"a@b.c"));
        assert_eq!(first["email"], expected.as_str());
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let other_key = redactor(
            &["email"],
            &[],
            RedactionMode::Hash {
                key: b"other".to_vec().into(),
            },
        );
        let mut third = json!({"email": "a@b.c"});
        other_key.redact(&mut third);
        assert_ne!(first["email"], third["email"]);
    }
}
