//! Parsing payloads that Python clients produce: `NaN`, `Infinity` and `-Infinity` tokens.
//!
//! Python's `json.dumps` writes non-finite floats as bare tokens that are not JSON, and serde_json
//! rejects them. [`parse`] tries strict JSON first; only when that fails does it rewrite the
//! tokens found outside strings into the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, which
//! [`non_finite`] (and so [`super::table::Cell::from_json`]) reads back as numbers, and parse
//! again. The rewrite is one pass over the bytes, never panics, and grows the body by at most
//! two bytes per token (under 70%).

/// The value of a string that spells a non-finite number.
pub fn non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Parses strict JSON, or JSON with bare non-finite tokens. The error is the strict parser's
/// when the rewrite found no token (or did not help).
pub fn parse(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(strict) => match quote_non_finite(bytes) {
            Some(rewritten) => serde_json::from_slice(&rewritten).map_err(|_| strict),
            None => Err(strict),
        },
    }
}

/// The tokens, longest first so `-Infinity` is not read as `-` then `Infinity`.
const TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

/// `bytes` with every bare `NaN`, `Infinity` and `-Infinity` outside a string quoted; `None` when
/// there is none. Escapes inside strings are honoured (`"a\"NaN"` is left alone); bytes that are
/// not JSON are copied as they are, for the parser to reject.
pub fn quote_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut output: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    // Bytes already copied to `output` (or that would have been, while it is still `None`).
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            index += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            index += 1;
            continue;
        }
        if matches!(byte, b'N' | b'I' | b'-') {
            let rest = &bytes[index..];
            if let Some(token) = TOKENS.iter().find(|token| rest.starts_with(token)) {
                let out = output.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 16));
                out.extend_from_slice(&bytes[copied..index]);
                out.push(b'"');
                out.extend_from_slice(token);
                out.push(b'"');
                index += token.len();
                copied = index;
                continue;
            }
        }
        index += 1;
    }
    let mut out = output?;
    out.extend_from_slice(&bytes[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(text: &str) -> Option<String> {
        quote_non_finite(text.as_bytes())
            .map(|bytes| String::from_utf8(bytes).expect("utf-8 in, utf-8 out"))
    }

    #[test]
    fn quotes_bare_tokens_only() {
        assert_eq!(
            rewrite(r#"[NaN, Infinity, -Infinity, 1]"#).as_deref(),
            Some(r#"["NaN", "Infinity", "-Infinity", 1]"#)
        );
        assert_eq!(
            rewrite(r#"{"x":NaN,"s":"NaN Infinity","e":"a\"NaN\\","y":-Infinity}"#).as_deref(),
            Some(r#"{"x":"NaN","s":"NaN Infinity","e":"a\"NaN\\","y":"-Infinity"}"#)
        );
        assert_eq!(rewrite(r#"{"s": "NaN", "n": -1}"#), None);
        assert_eq!(rewrite(""), None);
    }

    #[test]
    fn parses_python_json() {
        let value = parse(br#"{"data": [1.5, NaN, -Infinity]}"#).expect("lenient parse");
        let data = value["data"].as_array().expect("array");
        assert_eq!(data[0], 1.5);
        assert_eq!(data[1], "NaN");
        assert_eq!(data[2], "-Infinity");
        assert!(parse(b"[NaN").is_err());
        assert!(parse(b"nope").is_err());
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for bytes in [
            &b"\""[..],
            b"\\",
            b"\"\\",
            b"-",
            b"N",
            b"NaN",
            b"-Inf",
            b"\xff\xfeNaN\"",
            b"\"NaN",
        ] {
            let _ = quote_non_finite(bytes);
            let _ = parse(bytes);
        }
    }
}
