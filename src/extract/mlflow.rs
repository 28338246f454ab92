//! MLflow scoring server (`POST /invocations`).
//!
//! - Request: `dataframe_split` (`{columns?, data, index?}`: one column per name, or positional
//!   `dataframe_split_{j}` columns without names; a row of the wrong width is a shape mismatch),
//!   `dataframe_records` (a list of objects, one column per key), `instances` (the TF Serving row
//!   format) or `inputs` (a list of rows, or an object of column → values).
//! - Response: `{"predictions": …}` or, from older servers, the bare value; a list of scalars
//!   (column `predictions`), of lists (`predictions_{j}`), of objects (one column per key), or an
//!   object of column → values.
//! - CSV bodies (`Content-Type: text/csv`) are not read.

use serde_json::Value;

use super::columns::{ColumnData, Columns, Kind, Tally, check_cells, check_rows, read_rows};
use super::table::Cell;
use super::{ExtractError, MAX_COLUMNS, kserve_v1};

pub(crate) fn inputs(body: &Value) -> Result<Columns, ExtractError> {
    let Some(body) = body.as_object() else {
        return Err(ExtractError::unsupported("the body is not an object"));
    };
    if let Some(split) = body.get("dataframe_split") {
        dataframe_split(split)
    } else if let Some(records) = body.get("dataframe_records") {
        kserve_v1::rows("dataframe_records", records)
    } else if let Some(instances) = body.get("instances") {
        kserve_v1::rows("instances", instances)
    } else if let Some(inputs) = body.get("inputs") {
        kserve_v1::columnar("inputs", inputs)
    } else {
        Err(ExtractError::unsupported(
            "none of `dataframe_split`, `dataframe_records`, `instances`, `inputs`",
        ))
    }
}

pub(crate) fn outputs(body: &Value) -> Result<Columns, ExtractError> {
    match body {
        Value::Object(map) => match map.get("predictions") {
            Some(predictions) => kserve_v1::columnar("predictions", predictions),
            None => Err(ExtractError::unsupported("no `predictions`")),
        },
        Value::Array(rows) => read_rows("predictions", rows, true, true),
        _ => Err(ExtractError::unsupported("neither an object nor a list")),
    }
}

fn dataframe_split(split: &Value) -> Result<Columns, ExtractError> {
    let Some(split) = split.as_object() else {
        return Err(ExtractError::unsupported(
            "`dataframe_split` is not an object",
        ));
    };
    let Some(rows) = split.get("data").and_then(Value::as_array) else {
        return Err(ExtractError::unsupported(
            "`dataframe_split` without a `data` list",
        ));
    };
    match split.get("columns") {
        Some(Value::Array(names)) if !names.is_empty() => named_rows(names, rows),
        _ => read_rows("dataframe_split", rows, true, false),
    }
}

/// Rows of `data` under the given column names (pandas allows non-string names: their JSON
/// text is the name).
fn named_rows(names: &[Value], rows: &[Value]) -> Result<Columns, ExtractError> {
    if names.len() > MAX_COLUMNS {
        return Err(super::columns::too_many_columns());
    }
    check_rows(rows.len())?;
    check_cells(rows.len(), names.len())?;
    let mut columns: Vec<ColumnData> = names
        .iter()
        .map(|name| {
            let name = match name {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let mut column = ColumnData::named(&name, Kind::Values(Tally::default()));
            column.cells.reserve(rows.len());
            column
        })
        .collect();
    let mut shape_mismatch = false;
    for row in rows {
        let values = match row {
            Value::Array(values) => values.as_slice(),
            single => std::slice::from_ref(single),
        };
        shape_mismatch |= values.len() != columns.len();
        for (position, column) in columns.iter_mut().enumerate() {
            match values.get(position) {
                Some(value) => column.push_json(value),
                None => column.cells.push(Cell::Missing),
            }
        }
    }
    let mut out = Columns {
        columns: Vec::with_capacity(columns.len()),
        shape_mismatch,
    };
    for column in columns {
        out.push(column)?;
    }
    Ok(out)
}
