//! Open Inference Protocol (KServe v2, Triton, MLServer): `inputs[]` / `outputs[]` tensors of
//! `{name, shape, datatype, data, parameters?}`.
//!
//! - The first dimension of `shape` is the row; the others are flattened into columns, so one
//!   `[N, F]` tensor gives F positional columns (`{name}_{j}`, or `{name}` when F is 1) and a
//!   message of several `[N]`/`[N, 1]` tensors gives one named column per tensor. MLServer's
//!   request-level `parameters.content_type: "pd"` (a dataframe, one tensor per column) names
//!   columns after tensors even when there is only one.
//! - `data` may be flat (row-major) or nested; either way it is read in row-major order.
//! - BOOL elements are booleans (0/1 accepted); BYTES elements (and any tensor with MLServer's
//!   `parameters.content_type: "str"`) are strings, read as text; every other datatype is read
//!   as numbers (`NaN`/`Infinity` tokens included).
//! - The shape is checked against the data, never used to allocate: only the rows the data
//!   actually fills are read; a shortfall or excess sets `shape_mismatch`. Without a `shape`, the
//!   rows are the outer length of `data`.
//! - Tensors sent as binary (Triton's `binary_data_size`, no `data`) cannot be read.

use serde_json::Value;

use super::columns::{ColumnData, Columns, Kind, Label, Tally, flatten};
use super::table::Cell;
use super::{ExtractError, MAX_CELLS, MAX_COLUMNS};

pub(crate) fn inputs(body: &Value) -> Result<Columns, ExtractError> {
    tensors(body, "inputs")
}

pub(crate) fn outputs(body: &Value) -> Result<Columns, ExtractError> {
    tensors(body, "outputs")
}

/// `model_name` and `model_version` of a response.
pub(crate) fn model(response: &Value) -> (Option<String>, Option<String>) {
    let text = |key: &str| match response.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    (text("model_name"), text("model_version"))
}

fn tensors(body: &Value, field: &str) -> Result<Columns, ExtractError> {
    let Some(tensors) = body.get(field).and_then(Value::as_array) else {
        return Err(ExtractError::unsupported(format!(
            "no `{field}` list of tensors"
        )));
    };
    let dataframe = body
        .pointer("/parameters/content_type")
        .and_then(Value::as_str)
        == Some("pd");
    let named_by_tensor = dataframe || tensors.len() > 1;
    let mut columns = Columns::default();
    for tensor in tensors {
        read_tensor(tensor, named_by_tensor, &mut columns)?;
    }
    Ok(columns)
}

fn read_tensor(
    tensor: &Value,
    named_by_tensor: bool,
    columns: &mut Columns,
) -> Result<(), ExtractError> {
    let Some(tensor) = tensor.as_object() else {
        return Err(ExtractError::unsupported("a tensor that is not an object"));
    };
    let Some(name) = tensor.get("name").and_then(Value::as_str) else {
        return Err(ExtractError::unsupported("a tensor without a name"));
    };
    let content_type = tensor
        .get("parameters")
        .and_then(|parameters| parameters.get("content_type"))
        .and_then(Value::as_str);
    let datatype = Datatype::of(tensor.get("datatype").and_then(Value::as_str), content_type);
    let Some(data) = tensor.get("data") else {
        return Err(ExtractError::unsupported(
            "a tensor without `data` (binary tensor data is not read)",
        ));
    };

    let mut values = Vec::new();
    flatten(data, &mut values, MAX_CELLS)?;
    let (declared_rows, width) = shape(tensor.get("shape"), data, values.len())?;
    if width > MAX_COLUMNS {
        return Err(ExtractError::too_large(format!(
            "a tensor of {width} columns, more than the {MAX_COLUMNS} allowed"
        )));
    }
    if declared_rows.checked_mul(width) != Some(values.len()) {
        columns.shape_mismatch = true;
    }
    if width == 0 {
        return Ok(());
    }
    // Rows the data fills completely; bounded by the data, whatever the shape claims.
    let rows = declared_rows.min(values.len() / width);
    super::columns::check_rows(rows)?;

    for position in 0..width {
        let label = if named_by_tensor && width == 1 {
            Label::Named(name.to_owned())
        } else {
            Label::Part {
                source: name.to_owned(),
                index: position,
                spec_named: true,
            }
        };
        let mut column = ColumnData::new(label, datatype.kind());
        column.cells.reserve(rows);
        for value in values.iter().skip(position).step_by(width).take(rows) {
            match datatype {
                Datatype::Bytes => column.cells.push(match value {
                    Value::String(text) => Cell::Text(text.clone()),
                    other => Cell::from_json(other),
                }),
                Datatype::Bool => column.cells.push(match value.as_u64() {
                    Some(0) => Cell::Bool(false),
                    Some(1) => Cell::Bool(true),
                    _ => Cell::from_json(value),
                }),
                Datatype::Integer | Datatype::Float | Datatype::Unknown => column.push_json(value),
            }
        }
        columns.push(column)?;
    }
    Ok(())
}

/// `(rows, columns)` of a tensor: the first dimension, and the product of the others (`[]` is one
/// scalar). Without a shape: the outer length of `data`, and what each row then holds.
fn shape(
    shape: Option<&Value>,
    data: &Value,
    values: usize,
) -> Result<(usize, usize), ExtractError> {
    let Some(shape) = shape else {
        let rows = match data {
            Value::Array(items) => items.len(),
            _ => 1,
        };
        let width = values.checked_div(rows).unwrap_or(1).max(1);
        return Ok((rows, width));
    };
    let Some(dims) = shape.as_array() else {
        return Err(ExtractError::unsupported(
            "a tensor `shape` that is not a list",
        ));
    };
    let mut sizes = dims.iter().map(Value::as_u64);
    let Some(first) = sizes.next() else {
        return Ok((1, 1));
    };
    let invalid = || {
        ExtractError::unsupported(
            "a tensor `shape` with a dimension that is not a non-negative integer",
        )
    };
    let rows = usize::try_from(first.ok_or_else(invalid)?).unwrap_or(usize::MAX);
    let mut width: u64 = 1;
    let mut empty = false;
    for size in sizes {
        let size = size.ok_or_else(invalid)?;
        empty |= size == 0;
        width = width.saturating_mul(size);
    }
    let width = if empty {
        0
    } else {
        usize::try_from(width).unwrap_or(usize::MAX)
    };
    Ok((rows, width))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Datatype {
    Bool,
    Integer,
    Float,
    Bytes,
    Unknown,
}

impl Datatype {
    fn of(datatype: Option<&str>, content_type: Option<&str>) -> Self {
        if content_type == Some("str") {
            return Self::Bytes;
        }
        match datatype {
            Some("BOOL") => Self::Bool,
            Some(
                "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "INT32" | "INT64",
            ) => Self::Integer,
            Some("FP16" | "FP32" | "FP64" | "BF16") => Self::Float,
            Some("BYTES") => Self::Bytes,
            _ => Self::Unknown,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::Bool | Self::Bytes => Kind::Categorical,
            Self::Integer => Kind::Integer,
            Self::Float => Kind::Numeric,
            Self::Unknown => Kind::Values(Tally::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shapes() {
        let data = json!([1]);
        assert_eq!(shape(Some(&json!([2, 4])), &data, 8).unwrap(), (2, 4));
        assert_eq!(shape(Some(&json!([3])), &data, 3).unwrap(), (3, 1));
        assert_eq!(shape(Some(&json!([])), &data, 1).unwrap(), (1, 1));
        assert_eq!(shape(Some(&json!([2, 3, 4])), &data, 24).unwrap(), (2, 12));
        assert_eq!(shape(Some(&json!([2, 0, 4])), &data, 0).unwrap(), (2, 0));
        assert_eq!(
            shape(Some(&json!([1, u64::MAX, u64::MAX])), &data, 1).unwrap(),
            (1, usize::MAX)
        );
        assert!(shape(Some(&json!([-1, 2])), &data, 2).is_err());
        assert!(shape(Some(&json!("2x2")), &data, 4).is_err());
        assert_eq!(
            shape(None, &json!([[1, 2], [3, 4], [5, 6]]), 6).unwrap(),
            (3, 2)
        );
    }

    #[test]
    fn huge_shape_reads_only_the_data() {
        let body = json!({"inputs": [{"name": "x", "shape": [1_000_000_000_000u64, 1], "datatype": "FP32", "data": [1.0, 2.0]}]});
        let columns = inputs(&body).unwrap();
        assert!(columns.shape_mismatch);
        assert_eq!(columns.columns[0].cells.len(), 2);
        let body = json!({"inputs": [{"name": "x", "shape": [1_000_000_000_000u64, 1_000_000_000_000u64], "datatype": "FP32", "data": [1.0]}]});
        assert_eq!(inputs(&body).unwrap_err().reason, ExtractError::TOO_LARGE);
    }
}
