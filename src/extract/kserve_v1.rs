//! KServe v1 and TF Serving REST (`POST /v1/models/{name}[/versions/{v}]:predict`).
//!
//! - Request: `instances` in the row format — each instance an array (positional columns
//!   `instances_{j}`, or the spec's input names), an object (one column per key; an array value
//!   gives `{key}_{j}`), or a scalar (the single column `instances`); or `inputs` in the columnar
//!   format — an object of input name → values (one column per name, `{name}_{j}` when each value
//!   is an array), or a single list read like `instances`.
//! - Response: `predictions` (rows, as `instances`) or `outputs` (columnar, as `inputs`).
//! - TF Serving's binary values `{"b64": "…"}` are read as their (base64) text.

use serde_json::Value;

use super::ExtractError;
use super::columns::{ColumnData, Columns, Kind, Label, Tally, b64, read_columnar, read_rows};

pub(crate) fn inputs(body: &Value) -> Result<Columns, ExtractError> {
    let Some(body) = body.as_object() else {
        return Err(ExtractError::unsupported("the body is not an object"));
    };
    if let Some(instances) = body.get("instances") {
        rows("instances", instances)
    } else if let Some(inputs) = body.get("inputs") {
        columnar("inputs", inputs)
    } else {
        Err(ExtractError::unsupported(
            "neither `instances` nor `inputs`",
        ))
    }
}

pub(crate) fn outputs(body: &Value) -> Result<Columns, ExtractError> {
    let Some(body) = body.as_object() else {
        return Err(ExtractError::unsupported("the body is not an object"));
    };
    if let Some(predictions) = body.get("predictions") {
        rows("predictions", predictions)
    } else if let Some(outputs) = body.get("outputs") {
        columnar("outputs", outputs)
    } else {
        Err(ExtractError::unsupported(
            "neither `predictions` nor `outputs`",
        ))
    }
}

/// The row format: a list of instances.
pub(crate) fn rows(source: &str, value: &Value) -> Result<Columns, ExtractError> {
    match value {
        Value::Array(rows) => read_rows(source, rows, true, true),
        _ => Err(ExtractError::unsupported(format!(
            "`{source}` is not a list"
        ))),
    }
}

/// The columnar format: an object of named columns, a single list, or a single value.
pub(crate) fn columnar(source: &str, value: &Value) -> Result<Columns, ExtractError> {
    match value {
        Value::Object(map) if b64(value).is_none() => read_columnar(map),
        Value::Array(rows) => read_rows(source, rows, true, true),
        scalar => {
            let mut column = ColumnData::new(
                Label::Part {
                    source: source.to_owned(),
                    index: 0,
                    spec_named: true,
                },
                Kind::Values(Tally::default()),
            );
            column.push_json(scalar);
            let mut columns = Columns::default();
            columns.push(column)?;
            Ok(columns)
        }
    }
}
