//! Reordering a ranked list inside a JSON response without touching anything else: a small
//! scanner finds the byte spans of the list's elements, and the new body is the old one with the
//! element spans written back in the new order. Field order, number formatting (`1.10`, `1e-7`,
//! integers beyond 2^53), escapes and whitespace outside the list all stay byte for byte.

use serde_json::Value;

/// Deepest nesting the scanner follows (deeper documents are left alone).
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// Why a response was passed through unmodified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("the response is not JSON")]
    NotJson,
    #[error("the configured list is not in the response")]
    NoList,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len()
            && matches!(self.bytes[self.pos], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// The span of the string starting here, quotes included.
    fn string(&mut self) -> Option<Span> {
        let start = self.pos;
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        while self.pos < self.bytes.len() {
            match self.bytes[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return Some(Span {
                        start,
                        end: self.pos,
                    });
                }
                _ => self.pos += 1,
            }
        }
        None
    }

    /// Skips one value; returns its span.
    fn value(&mut self, depth: usize) -> Option<Span> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        let start = self.pos;
        match self.peek()? {
            b'"' => self.string(),
            b'{' => {
                self.pos += 1;
                self.skip_ws();
                if self.peek()? == b'}' {
                    self.pos += 1;
                    return Some(Span {
                        start,
                        end: self.pos,
                    });
                }
                loop {
                    self.skip_ws();
                    self.string()?;
                    self.expect(b':')?;
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b'}' => {
                            self.pos += 1;
                            return Some(Span {
                                start,
                                end: self.pos,
                            });
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.skip_ws();
                if self.peek()? == b']' {
                    self.pos += 1;
                    return Some(Span {
                        start,
                        end: self.pos,
                    });
                }
                loop {
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Some(Span {
                                start,
                                end: self.pos,
                            });
                        }
                        _ => return None,
                    }
                }
            }
            _ => {
                // Numbers and literals: everything up to a delimiter.
                while self.pos < self.bytes.len()
                    && !matches!(
                        self.bytes[self.pos],
                        b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.pos += 1;
                }
                (self.pos > start).then_some(Span {
                    start,
                    end: self.pos,
                })
            }
        }
    }
}

/// The unescaped reference tokens of a JSON pointer.
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The span of the value at `tokens` inside `bytes[span]`.
pub fn find(bytes: &[u8], span: Span, tokens: &[String]) -> Option<Span> {
    let mut current = span;
    for token in tokens {
        let mut scanner = Scanner::new(&bytes[..current.end]);
        scanner.pos = current.start;
        scanner.skip_ws();
        match scanner.peek()? {
            b'{' => {
                scanner.pos += 1;
                let mut found = None;
                loop {
                    scanner.skip_ws();
                    if scanner.peek()? == b'}' {
                        break;
                    }
                    let key = scanner.string()?;
                    scanner.expect(b':')?;
                    let value = scanner.value(0)?;
                    if key_equals(&bytes[key.start..key.end], token) {
                        found = Some(value);
                        break;
                    }
                    scanner.skip_ws();
                    match scanner.peek()? {
                        b',' => scanner.pos += 1,
                        b'}' => break,
                        _ => return None,
                    }
                }
                current = found?;
            }
            b'[' => {
                let index: usize = token.parse().ok()?;
                current = *elements(bytes, current)?.get(index)?;
            }
            _ => return None,
        }
    }
    Some(current)
}

/// Whether a JSON string literal (quotes included) spells `token`; without escapes, by bytes.
fn key_equals(literal: &[u8], token: &str) -> bool {
    let raw = &literal[1..literal.len() - 1];
    if !raw.contains(&b'\\') {
        return raw == token.as_bytes();
    }
    serde_json::from_slice::<String>(literal).is_ok_and(|name| name == token)
}

/// The spans of an array's elements (`None` when `span` is not an array).
pub fn elements(bytes: &[u8], span: Span) -> Option<Vec<Span>> {
    let mut scanner = Scanner::new(&bytes[..span.end]);
    scanner.pos = span.start;
    scanner.skip_ws();
    if scanner.peek()? != b'[' {
        return None;
    }
    scanner.pos += 1;
    let mut spans = Vec::new();
    scanner.skip_ws();
    if scanner.peek()? == b']' {
        return Some(spans);
    }
    loop {
        spans.push(scanner.value(0)?);
        scanner.skip_ws();
        match scanner.peek()? {
            b',' => scanner.pos += 1,
            b']' => return Some(spans),
            _ => return None,
        }
    }
}

/// The whole document's span, when `bytes` is one JSON value.
pub fn document(bytes: &[u8]) -> Option<Span> {
    let mut scanner = Scanner::new(bytes);
    let span = scanner.value(0)?;
    scanner.skip_ws();
    (scanner.pos == bytes.len()).then_some(span)
}

/// A small JSON value inside the document (an id or a score), parsed.
pub fn value_at(bytes: &[u8], span: Span) -> Option<Value> {
    serde_json::from_slice(&bytes[span.start..span.end]).ok()
}

/// An id as text: a string's contents (without allocation-heavy parsing when it has no
/// escapes), or a number's spelling.
pub fn scalar_text(bytes: &[u8], span: Span) -> Option<String> {
    let literal = &bytes[span.start..span.end];
    match literal.first()? {
        b'"' => {
            let raw = &literal[1..literal.len() - 1];
            if raw.contains(&b'\\') {
                serde_json::from_slice::<String>(literal).ok()
            } else {
                std::str::from_utf8(raw).ok().map(str::to_owned)
            }
        }
        b'{' | b'[' => None,
        _ => std::str::from_utf8(literal).ok().map(str::to_owned),
    }
}

/// A number's value (`None` for anything else).
pub fn number_at(bytes: &[u8], span: Span) -> Option<f64> {
    std::str::from_utf8(&bytes[span.start..span.end])
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
}

/// Writes `lists` (each a list of element spans, with the new order of its elements) back into
/// `bytes`: element `order[i]` goes where element `i` was; separators stay where they were.
pub fn reorder(bytes: &[u8], lists: &[(Vec<Span>, &[usize])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut cursor = 0;
    let mut flat: Vec<(Span, Span)> = Vec::new();
    for (spans, order) in lists {
        for (slot, &source) in order.iter().enumerate() {
            flat.push((spans[slot], spans[source]));
        }
    }
    flat.sort_by_key(|(target, _)| target.start);
    for (target, source) in flat {
        out.extend_from_slice(&bytes[cursor..target.start]);
        out.extend_from_slice(&bytes[source.start..source.end]);
        cursor = target.end;
    }
    out.extend_from_slice(&bytes[cursor..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lists_and_reorders_keeping_every_other_byte() {
        let body = br#"{"model":"r","items": [ {"id":"a","score":1.10}, {"id":"b","score":1e-7},{"id":9223372036854775807,"score":0} ],"tail":"\u00e9"}"#;
        let doc = document(body).unwrap();
        let list = find(body, doc, &pointer_tokens("/items")).unwrap();
        let spans = elements(body, list).unwrap();
        assert_eq!(spans.len(), 3);
        let id = find(body, spans[2], &pointer_tokens("/id")).unwrap();
        assert_eq!(&body[id.start..id.end], b"9223372036854775807");
        let out = reorder(body, &[(spans, &[2, 0, 1])]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"r","items": [ {"id":9223372036854775807,"score":0}, {"id":"a","score":1.10},{"id":"b","score":1e-7} ],"tail":"\u00e9"}"#
        );
    }

    #[test]
    fn escaped_keys_nested_pointers_and_garbage() {
        let body = br#"{"a/b":{"x\"y":[1,2,3]}}"#;
        let doc = document(body).unwrap();
        let list = find(body, doc, &pointer_tokens("/a~1b/x\"y")).unwrap();
        assert_eq!(elements(body, list).unwrap().len(), 3);
        assert!(document(b"{\"a\":").is_none());
        assert!(document(b"[1,2] x").is_none());
        assert!(
            document(&[b'['; 10_000]).is_none(),
            "deep nesting is refused, not a stack overflow"
        );
    }
}
