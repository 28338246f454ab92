//! OpenAI-compatible APIs (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`; OpenAI,
//! vLLM, TGI, llama.cpp, Azure paths): one row per request of derived columns (SPEC §6).
//!
//! Inputs:
//! - `prompt_chars`: characters (Unicode scalar values) of every message's `content` — a string,
//!   or the `text` of its parts (image and audio parts count nothing) — or of `prompt` / `input`
//!   (a string or a list of strings); missing when the prompt is only token ids;
//! - `message_count`: the number of `messages` (missing for completions and embeddings);
//! - `max_tokens` (or `max_completion_tokens`), `temperature`: as sent, missing when absent;
//! - `model_requested`: the body's `model`, categorical.
//!
//! Outputs: `prompt_tokens`, `completion_tokens` (from `usage`), and `finish_reason` of the first
//! choice (categorical). Streamed responses (`"stream": true`, server-sent events) are not read.

use serde_json::{Map, Value};

use super::ExtractError;
use super::columns::{ColumnData, Columns, Kind};
use super::table::Cell;

pub(crate) fn is_streamed(request: &Value) -> bool {
    request.get("stream").and_then(Value::as_bool) == Some(true)
}

/// The model the request names, else the one the response names.
pub(crate) fn model(request: &Value, response: Option<&Value>) -> Option<String> {
    let named = |body: &Value| {
        body.get("model")
            .and_then(Value::as_str)
            .filter(|model| !model.is_empty())
            .map(str::to_owned)
    };
    named(request).or_else(|| response.and_then(named))
}

pub(crate) fn inputs(body: &Value) -> Result<Columns, ExtractError> {
    let Some(body) = body.as_object() else {
        return Err(ExtractError::unsupported("the body is not an object"));
    };
    let (prompt_chars, message_count) = if let Some(messages) = body.get("messages") {
        let Some(messages) = messages.as_array() else {
            return Err(ExtractError::unsupported("`messages` is not a list"));
        };
        let chars = messages
            .iter()
            .filter_map(|message| message.get("content"))
            .map(content_chars)
            .sum::<usize>();
        (Some(chars), Some(messages.len()))
    } else if let Some(prompt) = body.get("prompt").or_else(|| body.get("input")) {
        (text_chars(prompt), None)
    } else {
        return Err(ExtractError::unsupported(
            "none of `messages`, `prompt`, `input`",
        ));
    };
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"));
    let mut columns = Columns::default();
    columns.push(count("prompt_chars", prompt_chars))?;
    columns.push(count("message_count", message_count))?;
    columns.push(field("max_tokens", max_tokens, Kind::Numeric))?;
    columns.push(field("temperature", body.get("temperature"), Kind::Numeric))?;
    columns.push(field(
        "model_requested",
        body.get("model"),
        Kind::Categorical,
    ))?;
    Ok(columns)
}

pub(crate) fn outputs(body: &Value) -> Result<Columns, ExtractError> {
    let Some(body) = body.as_object() else {
        return Err(ExtractError::unsupported("the body is not an object"));
    };
    if !body.contains_key("choices") && !body.contains_key("usage") {
        return Err(ExtractError::unsupported("neither `choices` nor `usage`"));
    }
    let usage = body.get("usage").and_then(Value::as_object);
    let usage_field = |key: &str| usage.and_then(|usage: &Map<String, Value>| usage.get(key));
    let finish_reason = body
        .get("choices")
        .and_then(|choices| choices.get(0))
        .and_then(|choice| choice.get("finish_reason"));
    let mut columns = Columns::default();
    columns.push(field(
        "prompt_tokens",
        usage_field("prompt_tokens"),
        Kind::Numeric,
    ))?;
    columns.push(field(
        "completion_tokens",
        usage_field("completion_tokens"),
        Kind::Numeric,
    ))?;
    columns.push(field("finish_reason", finish_reason, Kind::Categorical))?;
    Ok(columns)
}

fn count(name: &str, value: Option<usize>) -> ColumnData {
    let mut column = ColumnData::named(name, Kind::Numeric);
    // Counts are bounded by the body size, far below 2^53: exact as f64.
    column
        .cells
        .push(value.map_or(Cell::Missing, |value| Cell::Number(value as f64)));
    column
}

fn field(name: &str, value: Option<&Value>, kind: Kind) -> ColumnData {
    let mut column = ColumnData::named(name, kind);
    match value {
        Some(value) => column.push_json(value),
        None => column.cells.push(Cell::Missing),
    }
    column
}

/// Characters of a chat message's `content`: a string, or a list of parts whose `text` counts.
fn content_chars(content: &Value) -> usize {
    match content {
        Value::String(text) => text.chars().count(),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part {
                Value::String(text) => text.chars().count(),
                Value::Object(part) => part
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, |text| text.chars().count()),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// Characters of a completion `prompt` or embedding `input`: a string or a list of strings;
/// `None` when it holds no text (token ids).
fn text_chars(prompt: &Value) -> Option<usize> {
    match prompt {
        Value::String(text) => Some(text.chars().count()),
        Value::Array(items) if items.is_empty() => Some(0),
        Value::Array(items) => {
            let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            (!texts.is_empty()).then(|| texts.iter().map(|text| text.chars().count()).sum())
        }
        _ => None,
    }
}
