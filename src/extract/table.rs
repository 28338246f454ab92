//! What extraction produces: rows of typed cells under named columns, per role.

use std::fmt;

/// Which side of the model a column is on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Input,
    Output,
    Label,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Label => "label",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value of one column in one row, as found in the payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A JSON number (or a `NaN`/`Infinity` token, or a numeric tensor element).
    Number(f64),
    /// A string (a categorical value, or a BYTES tensor element).
    Text(String),
    Bool(bool),
    /// JSON `null`.
    Null,
    /// The column is absent from this row.
    Missing,
    /// An object or array where a scalar was expected.
    Invalid,
}

impl Cell {
    pub fn from_json(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Number(n) => n.as_f64().map_or(Self::Invalid, Self::Number),
            serde_json::Value::String(s) => match super::lenient::non_finite(s) {
                Some(x) => Self::Number(x),
                None => Self::Text(s.clone()),
            },
            serde_json::Value::Bool(b) => Self::Bool(*b),
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => Self::Invalid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub role: Role,
    /// The payload declares this column categorical (BYTES/BOOL tensors, strings in dataframes,
    /// `models[].inputs.categorical`); numeric otherwise. A reference profile overrides it.
    pub categorical: bool,
}

/// Rows under columns. Every row has exactly `columns.len()` cells (absent ones are
/// [`Cell::Missing`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// What one exchange says about the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extraction {
    /// The model name from the path or the body (`model_name`, `model`), when there is one.
    pub model: Option<String>,
    pub version: Option<String>,
    /// Input rows, one per sample in the request.
    pub inputs: Table,
    /// Output rows, one per sample in the response (empty when there is no usable response).
    pub outputs: Table,
    /// The payload contradicts itself: a tensor's data does not fill its shape, columns of
    /// different lengths, or as many output rows as input rows were not returned.
    pub shape_mismatch: bool,
    /// Why the response gave no output rows although there was one (truncated, not JSON, an
    /// unreadable shape); the inputs are still good. Counted like a request's error.
    pub response_error: Option<super::ExtractError>,
}
