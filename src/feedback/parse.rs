//! Feedback bodies: one object, a JSON array of objects, or NDJSON (one object per line).
//! Each object is `{"request_id", "labels": [...]}` (one label per row), `{"request_id", "label"}`
//! (one label for a one-row request, or for every row), or `{"request_id", "rewards": [{"id",
//! "reward"}]}` for ranking routes.

use serde_json::Value;

use crate::extract::lenient;

/// The most feedback items one body may carry.
pub const MAX_ITEMS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// One label per row.
    Labels(Vec<Value>),
    /// One label for all rows.
    Label(Value),
    /// Rewards for ranked items.
    Rewards(Vec<(String, f64)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub request_id: String,
    pub payload: Payload,
}

/// What is wrong with one item, by position.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub index: usize,
    pub message: String,
}

/// Parses a body. `Err` when the body as a whole is unreadable; otherwise the valid items and
/// the problems of the others.
pub fn parse(body: &[u8]) -> Result<(Vec<Item>, Vec<Problem>), String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(
            "the body is empty; expected a JSON object, an array of objects, or NDJSON".to_owned(),
        );
    }
    let values: Vec<Value> = match lenient::parse(trimmed.as_bytes()) {
        Ok(Value::Array(items)) => items,
        Ok(value) => vec![value],
        Err(whole) => {
            // NDJSON: every non-empty line a JSON object.
            let mut values = Vec::new();
            for (line, text) in trimmed.lines().enumerate() {
                if text.trim().is_empty() {
                    continue;
                }
                let value = lenient::parse(text.trim().as_bytes()).map_err(|e| {
                    if line == 0 {
                        format!("not JSON: {whole}")
                    } else {
                        format!("line {}: not JSON: {e}", line + 1)
                    }
                })?;
                values.push(value);
            }
            values
        }
    };
    if values.len() > MAX_ITEMS {
        return Err(format!(
            "{} items; at most {MAX_ITEMS} per request",
            values.len()
        ));
    }
    let mut items = Vec::with_capacity(values.len());
    let mut problems = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        match item(value) {
            Ok(item) => items.push(item),
            Err(message) => problems.push(Problem { index, message }),
        }
    }
    Ok((items, problems))
}

fn item(value: Value) -> Result<Item, String> {
    let Value::Object(mut map) = value else {
        return Err("expected an object".to_owned());
    };
    let request_id = match map.remove("request_id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 200 => id,
        Some(_) => {
            return Err(
                "request_id must be a non-empty string of at most 200 characters".to_owned(),
            );
        }
        None => return Err("request_id is missing".to_owned()),
    };
    let payload = match (
        map.remove("labels"),
        map.remove("label"),
        map.remove("rewards"),
    ) {
        (Some(Value::Array(labels)), None, None) if !labels.is_empty() => Payload::Labels(labels),
        (Some(_), None, None) => return Err("labels must be a non-empty array".to_owned()),
        (None, Some(label), None) => Payload::Label(label),
        (None, None, Some(Value::Array(rewards))) => Payload::Rewards(
            rewards
                .iter()
                .map(|reward| {
                    let id = match &reward["id"] {
                        Value::String(id) => id.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return Err("each reward needs an id (string or number)".to_owned()),
                    };
                    let value = reward["reward"]
                        .as_f64()
                        .ok_or("each reward needs a numeric reward")?;
                    Ok((id, value))
                })
                .collect::<Result<_, String>>()?,
        ),
        (None, None, Some(_)) => return Err("rewards must be an array of {id, reward}".to_owned()),
        (None, None, None) => return Err("expected one of labels, label or rewards".to_owned()),
        _ => return Err("give only one of labels, label or rewards".to_owned()),
    };
    Ok(Item {
        request_id,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_arrays_and_ndjson() {
        let (single, _) = parse(br#"{"request_id":"a","label":1}"#).unwrap();
        assert_eq!(
            single,
            [Item {
                request_id: "a".into(),
                payload: Payload::Label(json!(1))
            }]
        );
        let (array, _) =
            parse(br#"[{"request_id":"a","labels":[1,2]},{"request_id":"b","label":"x"}]"#)
                .unwrap();
        assert_eq!(array.len(), 2);
        let (lines, _) =
            parse(b"{\"request_id\":\"a\",\"label\":0}\n\n{\"request_id\":\"b\",\"label\":1}\n")
                .unwrap();
        assert_eq!(lines.len(), 2);
        let (rewards, _) = parse(
            br#"{"request_id":"r","rewards":[{"id":"item-1","reward":1.0},{"id":7,"reward":0}]}"#,
        )
        .unwrap();
        assert_eq!(
            rewards[0].payload,
            Payload::Rewards(vec![("item-1".into(), 1.0), ("7".into(), 0.0)])
        );
    }

    #[test]
    fn problems_name_what_is_wrong() {
        assert!(parse(b"").unwrap_err().contains("empty"));
        assert!(parse(b"{not json").unwrap_err().contains("not JSON"));
        let (items, problems) = parse(br#"[{"label":1},{"request_id":"a"},{"request_id":"b","label":1,"labels":[1]},{"request_id":"c","label":2}]"#).unwrap();
        assert_eq!(items.len(), 1);
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "request_id is missing",
                "expected one of labels, label or rewards",
                "give only one of labels, label or rewards"
            ]
        );
    }
}
