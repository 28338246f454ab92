//! Protocol `json`: columns at configured JSON pointers (RFC 6901), for APIs no adapter knows.
//!
//! - Each `(column, pointer)` is one named column; `inputs.pointers` read the request,
//!   `outputs.pointers` the response.
//! - A pointer to an array gives one row per element (an element that is itself an array or an
//!   object is an invalid cell). All array pointers must agree in length; otherwise the rows are
//!   cut to the shortest and `shape_mismatch` is set.
//! - A pointer to a scalar is broadcast to every row (one row when no pointer is an array), so a
//!   request-level value such as `/model` or `/threshold` sits beside per-row values.
//! - A pointer to nothing gives missing cells.
//! - Extension: a `*` token where the value is an array (an index can never be `*`) maps the rest
//!   of the pointer over its elements: `/records/*/age` reads the `age` of every record (an
//!   element without it is missing). Only the first `*` maps; a later one finds nothing.

use serde_json::Value;

use super::ExtractError;
use super::MAX_COLUMNS;
use super::columns::{ColumnData, Columns, Kind, Tally, check_cells, check_rows, too_many_columns};
use super::table::Cell;

pub(crate) fn read(body: &Value, pointers: &[(String, String)]) -> Result<Columns, ExtractError> {
    if pointers.len() > MAX_COLUMNS {
        return Err(too_many_columns());
    }
    let found = pointers
        .iter()
        .map(|(_, pointer)| resolve(body, pointer))
        .collect::<Result<Vec<_>, _>>()?;
    let lengths = found.iter().filter_map(|found| match found {
        Found::One(_) => None,
        Found::Many(items) => Some(items.len()),
    });
    let rows = lengths.clone().min().unwrap_or(1);
    let mut out = Columns {
        columns: Vec::with_capacity(pointers.len()),
        shape_mismatch: lengths.clone().any(|length| length != rows),
    };
    check_rows(rows)?;
    check_cells(rows, pointers.len())?;
    for ((name, _), found) in pointers.iter().zip(found) {
        let mut column = ColumnData::named(name, Kind::Values(Tally::default()));
        column.cells.reserve(rows);
        match found {
            Found::One(Some(value)) => {
                for _ in 0..rows {
                    column.push_json(value);
                }
            }
            Found::One(None) => column.cells.resize(rows, Cell::Missing),
            Found::Many(items) => {
                for item in items.into_iter().take(rows) {
                    match item {
                        Some(value) => column.push_json(value),
                        None => column.cells.push(Cell::Missing),
                    }
                }
            }
        }
        out.push(column)?;
    }
    Ok(out)
}

#[derive(Debug, PartialEq)]
enum Found<'a> {
    /// One value (or nothing), broadcast to every row.
    One(Option<&'a Value>),
    /// One value per row.
    Many(Vec<Option<&'a Value>>),
}

fn resolve<'a>(body: &'a Value, pointer: &str) -> Result<Found<'a>, ExtractError> {
    // RFC 6901: "" is the whole document; every other pointer starts with `/`.
    let tokens: Vec<String> = if pointer.is_empty() {
        Vec::new()
    } else if let Some(rest) = pointer.strip_prefix('/') {
        rest.split('/')
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect()
    } else {
        return Ok(Found::One(None));
    };
    let mut value = body;
    for (position, token) in tokens.iter().enumerate() {
        if let (Value::Array(items), "*") = (value, token.as_str()) {
            check_rows(items.len())?;
            let rest = &tokens[position + 1..];
            let each = items
                .iter()
                .map(|item| {
                    rest.iter()
                        .try_fold(item, |value, token| step(value, token))
                })
                .collect();
            return Ok(Found::Many(each));
        }
        match step(value, token) {
            Some(next) => value = next,
            None => return Ok(Found::One(None)),
        }
    }
    match value {
        Value::Array(items) => {
            check_rows(items.len())?;
            Ok(Found::Many(items.iter().map(Some).collect()))
        }
        scalar => Ok(Found::One(Some(scalar))),
    }
}

/// One RFC 6901 reference token: an object key, or an array index without leading zeros.
fn step<'a>(value: &'a Value, token: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(token),
        Value::Array(items) => {
            let canonical = token == "0"
                || (!token.starts_with('0') && token.bytes().all(|byte| byte.is_ascii_digit()));
            if !canonical || token.is_empty() {
                return None;
            }
            token
                .parse::<usize>()
                .ok()
                .and_then(|index| items.get(index))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resolves_rfc_6901_and_wildcards() {
        let body =
            json!({"a/b": {"m~n": 1}, "list": [10, 20], "records": [{"x": 1}, {"y": 2}], "": 5});
        assert_eq!(
            resolve(&body, "/a~1b/m~0n").unwrap(),
            Found::One(Some(&json!(1)))
        );
        assert_eq!(
            resolve(&body, "/list/1").unwrap(),
            Found::One(Some(&json!(20)))
        );
        assert_eq!(resolve(&body, "/list/01").unwrap(), Found::One(None));
        assert_eq!(resolve(&body, "/list/-").unwrap(), Found::One(None));
        assert_eq!(resolve(&body, "/").unwrap(), Found::One(Some(&json!(5))));
        assert_eq!(
            resolve(&body, "/list").unwrap(),
            Found::Many(vec![Some(&json!(10)), Some(&json!(20))])
        );
        assert_eq!(
            resolve(&body, "/records/*/x").unwrap(),
            Found::Many(vec![Some(&json!(1)), None])
        );
        assert_eq!(resolve(&body, "/missing/x").unwrap(), Found::One(None));
        assert_eq!(resolve(&body, "no-slash").unwrap(), Found::One(None));
        assert!(matches!(resolve(&body, "").unwrap(), Found::One(Some(_))));
    }
}
