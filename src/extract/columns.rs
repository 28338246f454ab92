//! Columns as the protocol adapters find them, and the one place that turns them into a
//! [`Table`]: naming, categorical rules, consistent row counts and limits (the rules are listed in
//! the [module doc](super)).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::table::{Cell, Column, Role, Table};
use super::{ExtractError, MAX_CELLS, MAX_COLUMNS, MAX_ROWS};
use crate::config::monitoring::{ModelSpec, TaskName};

/// Where a column's name comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Label {
    /// The payload names the column: a tensor, a dataframe column, a pointer, a derived column.
    Named(String),
    /// Position `index` within `source` (a tensor's second dimension, an array row, an object
    /// key's array value). With `spec_named`, the spec's positional names apply.
    Part {
        source: String,
        index: usize,
        spec_named: bool,
    },
}

/// What plain JSON values a column has held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    numbers: bool,
    /// Numbers that are not JSON integers (`1.5`, `1.0`, `NaN`).
    fractions: bool,
    /// Strings and booleans.
    texts: bool,
}

/// What the payload says about a column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// BYTES/BOOL tensors, derived categorical columns.
    Categorical,
    /// Float tensors, derived counts.
    Numeric,
    /// Integer tensors: class ids when an output of width 1.
    Integer,
    /// Plain JSON: decided by the values.
    Values(Tally),
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnData {
    pub label: Label,
    pub kind: Kind,
    pub cells: Vec<Cell>,
}

impl ColumnData {
    pub fn new(label: Label, kind: Kind) -> Self {
        Self {
            label,
            kind,
            cells: Vec::new(),
        }
    }

    pub fn named(name: &str, kind: Kind) -> Self {
        Self::new(Label::Named(name.to_owned()), kind)
    }

    /// Appends a plain JSON value as a cell, noting its type for [`Kind::Values`].
    pub fn push_json(&mut self, value: &Value) {
        let cell = cell_of(value);
        if let Kind::Values(tally) = &mut self.kind {
            match (&cell, value) {
                // A `"NaN"`/`"Infinity"` string (or a Python token) is a missing number: it
                // must not turn a text column numeric, nor make an integer column class ids.
                (Cell::Number(_), Value::String(_)) => tally.fractions = true,
                (Cell::Number(_), _) => {
                    tally.numbers = true;
                    if !(value.is_i64() || value.is_u64()) {
                        tally.fractions = true;
                    }
                }
                (Cell::Text(_) | Cell::Bool(_), _) => tally.texts = true,
                (Cell::Null | Cell::Missing | Cell::Invalid, _) => {}
            }
        }
        self.cells.push(cell);
    }
}

/// A JSON value as a cell; a TF Serving `{"b64": "…"}` object is its text.
pub(crate) fn cell_of(value: &Value) -> Cell {
    match b64(value) {
        Some(text) => Cell::Text(text.to_owned()),
        None => Cell::from_json(value),
    }
}

/// The text of a TF Serving binary value `{"b64": "…"}`.
pub(crate) fn b64(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get("b64").and_then(Value::as_str),
        _ => None,
    }
}

/// Columns of one side of an exchange, before naming.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub columns: Vec<ColumnData>,
    /// A contradiction found while reading (ragged rows, a tensor shorter than its shape).
    pub shape_mismatch: bool,
}

impl Columns {
    pub fn push(&mut self, column: ColumnData) -> Result<(), ExtractError> {
        if self.columns.len() >= MAX_COLUMNS {
            return Err(too_many_columns());
        }
        self.columns.push(column);
        Ok(())
    }

    pub fn append(&mut self, other: Columns) -> Result<(), ExtractError> {
        self.shape_mismatch |= other.shape_mismatch;
        for column in other.columns {
            self.push(column)?;
        }
        Ok(())
    }

    /// Names the columns, decides which are categorical, and cuts them to a common length; the
    /// flag says whether anything contradicted itself.
    pub fn into_table(self, role: Role, spec: &ModelSpec) -> Result<(Table, bool), ExtractError> {
        let Columns {
            columns,
            mut shape_mismatch,
        } = self;
        if columns.len() > MAX_COLUMNS {
            return Err(too_many_columns());
        }
        let rows = columns
            .iter()
            .map(|column| column.cells.len())
            .min()
            .unwrap_or(0);
        if columns.iter().any(|column| column.cells.len() != rows) {
            shape_mismatch = true;
        }
        check_rows(rows)?;
        check_cells(rows, columns.len())?;

        let (positional_names, categorical_names): (&[String], &[String]) = match role {
            Role::Input => (&spec.input_names, &spec.input_categorical),
            Role::Output | Role::Label => (&spec.output_names, &[]),
        };
        let class_ids = role != Role::Input && spec.task != Some(TaskName::Regression);

        let mut parts_per_source: HashMap<(&str, bool), usize> = HashMap::new();
        for column in &columns {
            if let Label::Part {
                source, spec_named, ..
            } = &column.label
            {
                *parts_per_source
                    .entry((source.as_str(), *spec_named))
                    .or_default() += 1;
            }
        }
        let mut spec_names = positional_names.iter();
        let mut taken: HashSet<String> = HashSet::with_capacity(columns.len());
        let mut described = Vec::with_capacity(columns.len());
        for column in &columns {
            let (name, single) = match &column.label {
                Label::Named(name) => (name.clone(), true),
                Label::Part {
                    source,
                    index,
                    spec_named,
                } => {
                    let single = parts_per_source.get(&(source.as_str(), *spec_named)) == Some(&1);
                    let spec_name = if *spec_named { spec_names.next() } else { None };
                    let name = match spec_name {
                        Some(name) => name.clone(),
                        None if single => source.clone(),
                        None => format!("{source}_{index}"),
                    };
                    (name, single)
                }
            };
            let name = unique(name, &mut taken);
            let categorical = categorical_names.contains(&name)
                || match column.kind {
                    Kind::Categorical => true,
                    Kind::Numeric => false,
                    Kind::Integer => class_ids && single,
                    Kind::Values(tally) if tally.texts => !tally.numbers,
                    Kind::Values(tally) => class_ids && single && tally.numbers && !tally.fractions,
                };
            described.push(Column {
                name,
                role,
                categorical,
            });
        }

        let mut cells: Vec<_> = columns
            .into_iter()
            .map(|column| column.cells.into_iter())
            .collect();
        let table_rows = (0..rows)
            .map(|_| {
                cells
                    .iter_mut()
                    .map(|column| column.next().unwrap_or(Cell::Missing))
                    .collect()
            })
            .collect();
        let table = Table {
            columns: described,
            rows: table_rows,
        };
        Ok((table, shape_mismatch))
    }
}

/// `name`, or `name_2`, `name_3`, … when it is taken.
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    let mut suffix = 2usize;
    loop {
        let candidate = format!("{name}_{suffix}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        suffix += 1;
    }
}

pub(crate) fn check_rows(rows: usize) -> Result<(), ExtractError> {
    if rows > MAX_ROWS {
        return Err(ExtractError::too_large(format!(
            "{rows} rows, more than the {MAX_ROWS} allowed"
        )));
    }
    Ok(())
}

pub(crate) fn check_cells(rows: usize, columns: usize) -> Result<(), ExtractError> {
    if rows.saturating_mul(columns) > MAX_CELLS {
        return Err(ExtractError::too_large(format!(
            "{rows} rows of {columns} columns, more than the {MAX_CELLS} cells allowed"
        )));
    }
    Ok(())
}

pub(crate) fn too_many_columns() -> ExtractError {
    ExtractError::too_large(format!("more than the {MAX_COLUMNS} columns allowed"))
}

/// Appends the scalars of `value` to `out`, row-major through nested arrays (a scalar is itself);
/// more than `limit` of them is `too_large`. Iterative, so depth costs heap, not stack.
pub(crate) fn flatten<'a>(
    value: &'a Value,
    out: &mut Vec<&'a Value>,
    limit: usize,
) -> Result<(), ExtractError> {
    let Value::Array(items) = value else {
        out.push(value);
        return check_flat(out.len(), limit);
    };
    let mut stack = vec![items.iter()];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            None => {
                stack.pop();
            }
            Some(Value::Array(inner)) => stack.push(inner.iter()),
            Some(scalar) => {
                out.push(scalar);
                check_flat(out.len(), limit)?;
            }
        }
    }
    Ok(())
}

fn check_flat(count: usize, limit: usize) -> Result<(), ExtractError> {
    if count > limit {
        return Err(ExtractError::too_large(format!("more than {limit} values")));
    }
    Ok(())
}

/// Reads `rows`, one row per element: an array row gives positional columns of `source` (nested
/// arrays flattened); with `records`, an object row gives one column per key (`{key}_{j}` for an
/// array value); anything else is the single column `source`. Absent cells are
/// [`Cell::Missing`]; array rows of different widths are a shape mismatch.
pub(crate) fn read_rows(
    source: &str,
    rows: &[Value],
    spec_named: bool,
    records: bool,
) -> Result<Columns, ExtractError> {
    check_rows(rows.len())?;
    let mut reader = RowReader {
        out: Columns::default(),
        positions: Vec::new(),
        keys: HashMap::new(),
        total_rows: rows.len(),
    };
    let mut array_width = None;
    let mut flat = Vec::new();
    for (row_index, row) in rows.iter().enumerate() {
        match row {
            Value::Array(_) => {
                flat.clear();
                flatten(row, &mut flat, MAX_COLUMNS)?;
                if *array_width.get_or_insert(flat.len()) != flat.len() {
                    reader.out.shape_mismatch = true;
                }
                for (position, value) in flat.iter().enumerate() {
                    let slot = reader.position_slot(source, position, spec_named, row_index)?;
                    reader.put(slot, row_index, value);
                }
            }
            Value::Object(map) if records && b64(row).is_none() => {
                for (key, value) in map {
                    if let Value::Array(_) = value {
                        flat.clear();
                        flatten(value, &mut flat, MAX_COLUMNS)?;
                        for (position, item) in flat.iter().enumerate() {
                            let slot = reader.key_slot(key, position, row_index)?;
                            reader.put(slot, row_index, item);
                        }
                    } else {
                        let slot = reader.key_slot(key, 0, row_index)?;
                        reader.put(slot, row_index, value);
                    }
                }
            }
            _ => {
                let slot = reader.position_slot(source, 0, spec_named, row_index)?;
                reader.put(slot, row_index, row);
            }
        }
        for column in &mut reader.out.columns {
            if column.cells.len() <= row_index {
                column.cells.push(Cell::Missing);
            }
        }
    }
    Ok(reader.out)
}

struct RowReader<'a> {
    out: Columns,
    /// Column of each position of the rows' own source (array rows, scalar rows).
    positions: Vec<usize>,
    /// Column of each `(key, position)` of object rows.
    keys: HashMap<(&'a str, usize), usize>,
    total_rows: usize,
}

impl<'a> RowReader<'a> {
    fn position_slot(
        &mut self,
        source: &str,
        position: usize,
        spec_named: bool,
        row_index: usize,
    ) -> Result<usize, ExtractError> {
        if let Some(&slot) = self.positions.get(position) {
            return Ok(slot);
        }
        // Positions arrive in order within a row, so the next one is always `positions.len()`.
        let slot = self.create(source, position, spec_named, row_index)?;
        self.positions.push(slot);
        Ok(slot)
    }

    fn key_slot(
        &mut self,
        key: &'a str,
        position: usize,
        row_index: usize,
    ) -> Result<usize, ExtractError> {
        if let Some(&slot) = self.keys.get(&(key, position)) {
            return Ok(slot);
        }
        let slot = self.create(key, position, false, row_index)?;
        self.keys.insert((key, position), slot);
        Ok(slot)
    }

    fn create(
        &mut self,
        source: &str,
        position: usize,
        spec_named: bool,
        row_index: usize,
    ) -> Result<usize, ExtractError> {
        // Every column will hold `total_rows` cells, so bound them before allocating.
        check_cells(self.total_rows, self.out.columns.len() + 1)?;
        let mut column = ColumnData::new(
            Label::Part {
                source: source.to_owned(),
                index: position,
                spec_named,
            },
            Kind::Values(Tally::default()),
        );
        column.cells.reserve(self.total_rows);
        column.cells.resize(row_index, Cell::Missing);
        self.out.push(column)?;
        Ok(self.out.columns.len() - 1)
    }

    fn put(&mut self, slot: usize, row_index: usize, value: &Value) {
        let column = &mut self.out.columns[slot];
        if column.cells.len() == row_index {
            column.push_json(value);
        }
    }
}

/// Reads a columnar object (`{"a": [1, 2], "b": [[1, 2], [3, 4]]}`): each key is a column, or
/// `{key}_{j}` columns when its elements are arrays; a scalar is a one-row column. Keys of
/// different lengths are a shape mismatch (found when the table is assembled).
pub(crate) fn read_columnar(map: &Map<String, Value>) -> Result<Columns, ExtractError> {
    let mut out = Columns::default();
    for (key, value) in map {
        match value {
            Value::Array(rows) => out.append(read_rows(key, rows, false, false)?)?,
            scalar => {
                let mut column = ColumnData::new(
                    Label::Part {
                        source: key.clone(),
                        index: 0,
                        spec_named: false,
                    },
                    Kind::Values(Tally::default()),
                );
                column.push_json(scalar);
                out.push(column)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn table(columns: Columns, role: Role, spec: &ModelSpec) -> (Table, bool) {
        columns.into_table(role, spec).expect("a table")
    }

    #[test]
    fn rows_of_arrays_objects_and_scalars() {
        let rows = json!([[1, 2], {"a": "x"}, 3]);
        let columns = read_rows("instances", rows.as_array().unwrap(), true, true).unwrap();
        let (table, mismatch) = table(columns, Role::Input, &ModelSpec::auto("m"));
        let names: Vec<_> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["instances_0", "instances_1", "a"]);
        assert!(!mismatch, "one array row cannot be ragged");
        assert_eq!(
            table.rows[1],
            [Cell::Missing, Cell::Missing, Cell::Text("x".into())]
        );
        assert_eq!(
            table.rows[2],
            [Cell::Number(3.0), Cell::Missing, Cell::Missing]
        );
        assert!(table.columns[2].categorical);
    }

    #[test]
    fn ragged_rows_are_padded_and_flagged() {
        let rows = json!([[1, 2], [3]]);
        let columns = read_rows("instances", rows.as_array().unwrap(), true, true).unwrap();
        let (table, mismatch) = table(columns, Role::Input, &ModelSpec::auto("m"));
        assert!(mismatch);
        assert_eq!(table.rows[1], [Cell::Number(3.0), Cell::Missing]);
    }

    #[test]
    fn integer_outputs_of_width_one_are_class_ids() {
        let rows = json!([0, 2, 1]);
        let read = || read_rows("predictions", rows.as_array().unwrap(), true, true).unwrap();
        let (table_, _) = table(read(), Role::Output, &ModelSpec::auto("m"));
        assert!(table_.columns[0].categorical);
        let mut regression = ModelSpec::auto("m");
        regression.task = Some(TaskName::Regression);
        let (table_, _) = table(read(), Role::Output, &regression);
        assert!(!table_.columns[0].categorical);
        let (table_, _) = table(read(), Role::Input, &ModelSpec::auto("m"));
        assert!(!table_.columns[0].categorical);
    }

    #[test]
    fn names_are_unique() {
        let mut columns = Columns::default();
        for _ in 0..3 {
            let mut column = ColumnData::named("x", Kind::Numeric);
            column.cells.push(Cell::Number(1.0));
            columns.push(column).unwrap();
        }
        let (table, _) = table(columns, Role::Input, &ModelSpec::auto("m"));
        let names: Vec<_> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["x", "x_2", "x_3"]);
    }

    #[test]
    fn flatten_is_bounded() {
        let value = json!([[1, [2, 3]], 4]);
        let mut out = Vec::new();
        flatten(&value, &mut out, 10).unwrap();
        assert_eq!(out, [&json!(1), &json!(2), &json!(3), &json!(4)]);
        let mut out = Vec::new();
        assert_eq!(
            flatten(&value, &mut out, 3).unwrap_err().reason,
            ExtractError::TOO_LARGE
        );
    }
}
