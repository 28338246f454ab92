//! `driftwatch profile`: a reference profile from a training set (CSV, JSON Lines) or from a
//! driftwatch records file — the same profile live learning would build from the same rows.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::config::ModelSpec;
use crate::extract::lenient::non_finite;
use crate::extract::table::{Cell, Role};
use crate::extract::{self};
use crate::monitor::reference::{ColumnInput, Kind, Profile, ProfileBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Records,
}

impl Format {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "records" => Some(Self::Records),
            _ => None,
        }
    }

    /// From the file name: `.csv` is CSV, anything else JSON Lines.
    pub fn guess(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Self::Csv,
            _ => Self::Jsonl,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub format: Format,
    /// The model the profile is for; with `records`, only that model's records are read.
    pub model: Option<String>,
    /// Columns to profile (CSV, JSON Lines), or names of positional input columns (records).
    pub columns: Option<Vec<String>>,
    pub categorical: Vec<String>,
    /// The ground-truth column (role `label`).
    pub label: Option<String>,
    /// Prediction columns in a CSV/JSON Lines file (role `output`).
    pub outputs: Vec<String>,
    pub bins: usize,
    pub top_k: usize,
    /// Configured models, for how records' payloads are read.
    pub specs: Vec<ModelSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}, line {line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Input(String),
}

pub fn profile_file(path: &Path, options: &ProfileOptions) -> Result<Profile, ProfileError> {
    let name = path.display().to_string();
    let read_error = |message: String| ProfileError::Read {
        path: name.clone(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
    let reader = std::io::BufReader::new(file);
    let (columns, rows) = match options.format {
        Format::Csv => read_csv(reader, options).map_err(read_error)?,
        Format::Jsonl => read_jsonl(reader, options, &name)?,
        Format::Records => read_records(reader, options, &name)?,
    };
    if rows.is_empty() {
        return Err(ProfileError::Input(format!("{name}: no rows to profile")));
    }
    let performance = baseline_performance(&columns, &rows);
    let mut builder = ProfileBuilder::new(columns);
    for row in &rows {
        builder.push(row);
    }
    let file_name = path
        .file_name()
        .map_or(name.clone(), |f| f.to_string_lossy().into_owned());
    let mut profile = builder.finish(
        options.model.clone(),
        format!("profile:{file_name}"),
        options.bins,
        options.top_k,
    );
    profile.performance = performance;
    Ok(profile)
}

/// The model's performance on the profiled rows, when they hold both its outputs and the label:
/// with one output column, a class (label or output categorical) or a value (both numeric); with
/// several numeric outputs, the argmax column's name is the class. Rows without a label or a
/// readable prediction are left out; the same metrics as live feedback compute.
fn baseline_performance(
    columns: &[ColumnInput],
    rows: &[Vec<Cell>],
) -> std::collections::BTreeMap<String, f64> {
    use crate::feedback::performance::{Confusion, Errors};
    use crate::monitor::reference::{category, number};
    let mut metrics = std::collections::BTreeMap::new();
    let Some(label) = columns.iter().position(|c| c.role == Role::Label) else {
        return metrics;
    };
    let outputs: Vec<usize> = (0..columns.len())
        .filter(|&i| columns[i].role == Role::Output)
        .collect();
    let classification = match outputs.as_slice() {
        [] => return metrics,
        [output] => {
            columns[label].kind == Kind::Categorical || columns[*output].kind == Kind::Categorical
        }
        several => {
            if several
                .iter()
                .any(|&i| columns[i].kind == Kind::Categorical)
            {
                return metrics;
            }
            true
        }
    };
    if classification {
        let mut confusion = Confusion::default();
        for row in rows {
            let Some(truth) = row.get(label).and_then(category) else {
                continue;
            };
            let predicted = if let [output] = outputs.as_slice() {
                row.get(*output).and_then(category)
            } else {
                outputs
                    .iter()
                    .filter_map(|&i| row.get(i).and_then(number).map(|x| (i, x)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(i, _)| columns[i].name.clone())
            };
            if let Some(predicted) = predicted {
                confusion.add(&truth, &predicted);
            }
        }
        // No prediction ever equal to a label: the outputs and the label do not speak the same
        // classes (probability columns named p0, p1 against labels 0, 1; a score against a
        // class), so there is no baseline to learn.
        if let Some(scores) = confusion.scores().filter(|scores| scores.accuracy > 0.0) {
            metrics.insert("accuracy".to_owned(), scores.accuracy);
            metrics.insert("precision".to_owned(), scores.precision);
            metrics.insert("recall".to_owned(), scores.recall);
            metrics.insert("f1".to_owned(), scores.f1);
        }
    } else {
        let mut errors = Errors::default();
        for row in rows {
            if let (Some(truth), Some(predicted)) = (
                row.get(label).and_then(number),
                row.get(outputs[0]).and_then(number),
            ) {
                errors.add(truth, predicted);
            }
        }
        if let Some(scores) = errors.scores() {
            metrics.insert("mae".to_owned(), scores.mae);
            metrics.insert("rmse".to_owned(), scores.rmse);
        }
    }
    metrics
}

fn role_of(options: &ProfileOptions, column: &str) -> Role {
    if options.label.as_deref() == Some(column) {
        Role::Label
    } else if options.outputs.iter().any(|o| o == column) {
        Role::Output
    } else {
        Role::Input
    }
}

/// A CSV field as a cell: empty is missing; `NaN`/`inf` spellings are non-finite numbers.
fn csv_cell(field: &str) -> Cell {
    let field = field.trim();
    if field.is_empty() {
        return Cell::Missing;
    }
    if let Some(x) = non_finite(field) {
        return Cell::Number(x);
    }
    match field.parse::<f64>() {
        Ok(x) => Cell::Number(x),
        Err(_) => Cell::Text(field.to_owned()),
    }
}

/// Columns are numeric unless listed as categorical or holding a non-numeric value.
fn kinds(names: &[String], rows: &[Vec<Cell>], options: &ProfileOptions) -> Vec<ColumnInput> {
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let textual = rows
                .iter()
                .any(|row| matches!(row.get(index), Some(Cell::Text(_) | Cell::Bool(_))));
            let categorical = options.categorical.iter().any(|c| c == name) || textual;
            ColumnInput {
                name: name.clone(),
                role: role_of(options, name),
                kind: if categorical {
                    Kind::Categorical
                } else {
                    Kind::Numeric
                },
            }
        })
        .collect()
}

fn read_csv(
    reader: impl std::io::Read,
    options: &ProfileOptions,
) -> Result<(Vec<ColumnInput>, Vec<Vec<Cell>>), String> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let selected: Vec<String> = options.columns.clone().unwrap_or_else(|| header.clone());
    let positions: Vec<usize> = selected
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("no column {name:?} in the header"))
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| e.to_string())?;
        rows.push(
            positions
                .iter()
                .map(|&at| record.get(at).map_or(Cell::Missing, csv_cell))
                .collect(),
        );
    }
    Ok((kinds(&selected, &rows, options), rows))
}

fn read_jsonl(
    reader: impl BufRead,
    options: &ProfileOptions,
    path: &str,
) -> Result<(Vec<ColumnInput>, Vec<Vec<Cell>>), ProfileError> {
    let mut names: Vec<String> = options.columns.clone().unwrap_or_default();
    let fixed = options.columns.is_some();
    let mut objects = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_error = |message: String| ProfileError::Line {
            path: path.to_owned(),
            line: index + 1,
            message,
        };
        let line = line.map_err(|e| line_error(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value =
            extract::lenient::parse(line.as_bytes()).map_err(|e| line_error(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(line_error("expected a JSON object".to_owned()));
        };
        if !fixed {
            for key in map.keys() {
                if !names.contains(key) {
                    names.push(key.clone());
                }
            }
        }
        objects.push(map);
    }
    let rows: Vec<Vec<Cell>> = objects
        .iter()
        .map(|map| {
            names
                .iter()
                .map(|name| map.get(name).map_or(Cell::Missing, Cell::from_json))
                .collect()
        })
        .collect();
    Ok((kinds(&names, &rows, options), rows))
}

fn read_records(
    reader: impl BufRead,
    options: &ProfileOptions,
    path: &str,
) -> Result<(Vec<ColumnInput>, Vec<Vec<Cell>>), ProfileError> {
    let mut columns: Vec<ColumnInput> = Vec::new();
    let mut rows = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_error = |message: String| ProfileError::Line {
            path: path.to_owned(),
            line: index + 1,
            message,
        };
        let line = line.map_err(|e| line_error(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value =
            serde_json::from_str(&line).map_err(|e| line_error(format!("not a record: {e}")))?;
        let model = record["model"].as_str();
        if let (Some(wanted), Some(model)) = (&options.model, model)
            && wanted != model
        {
            continue;
        }
        let Some((request, request_truncated)) = crate::record::body::decode(&record["request"])
        else {
            continue;
        };
        let success = record["response"]["status"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s));
        let response = success
            .then(|| crate::record::body::decode(&record["response"]))
            .flatten();
        let name = options
            .model
            .clone()
            .or_else(|| model.map(str::to_owned))
            .unwrap_or_default();
        let mut spec = options
            .specs
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| ModelSpec::auto(&name));
        if let Some(names) = &options.columns {
            spec.input_names = names.clone();
        }
        let path_in_record = record["request"]["path"].as_str().unwrap_or("/");
        let Ok((_, extraction)) = extract::extract(
            path_in_record,
            &request,
            request_truncated,
            response.as_ref().map(|(bytes, _)| bytes.as_slice()),
            response.as_ref().is_some_and(|(_, truncated)| *truncated),
            &spec,
        ) else {
            continue;
        };
        if columns.is_empty() {
            columns = extraction
                .inputs
                .columns
                .iter()
                .chain(&extraction.outputs.columns)
                .map(|c| ColumnInput {
                    name: c.name.clone(),
                    role: c.role,
                    kind: if c.categorical || options.categorical.contains(&c.name) {
                        Kind::Categorical
                    } else {
                        Kind::Numeric
                    },
                })
                .collect();
        }
        let count = extraction
            .inputs
            .rows
            .len()
            .max(extraction.outputs.rows.len());
        for row in 0..count {
            rows.push(
                columns
                    .iter()
                    .map(|column| {
                        let table = match column.role {
                            Role::Output => &extraction.outputs,
                            _ => &extraction.inputs,
                        };
                        table
                            .columns
                            .iter()
                            .position(|c| c.name == column.name)
                            .and_then(|at| table.rows.get(row).map(|cells| cells[at].clone()))
                            .unwrap_or(Cell::Missing)
                    })
                    .collect(),
            );
        }
    }
    Ok((columns, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: Format) -> ProfileOptions {
        ProfileOptions {
            format,
            model: Some("m".into()),
            columns: None,
            categorical: Vec::new(),
            label: Some("y".into()),
            outputs: Vec::new(),
            bins: 4,
            top_k: 10,
            specs: Vec::new(),
        }
    }

    #[test]
    fn csv_columns_get_kinds_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv");
        std::fs::write(&path, "a,b,y\n1.5,red,0\n2.5,blue,1\n,red,1\nNaN,green,0\n").unwrap();
        let profile = profile_file(&path, &options(Format::Csv)).unwrap();
        let a = profile.column(Role::Input, "a").unwrap();
        assert_eq!((a.kind, a.count, a.missing), (Kind::Numeric, 2, 2));
        let b = profile.column(Role::Input, "b").unwrap();
        assert_eq!(b.kind, Kind::Categorical);
        let y = profile.column(Role::Label, "y").unwrap();
        assert_eq!(y.kind, Kind::Numeric);
        assert_eq!(profile.rows, 4);
        assert_eq!(profile.source, "profile:train.csv");
    }

    #[test]
    fn jsonl_and_csv_of_the_same_rows_give_the_same_profile() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        let jsonl = dir.path().join("t.jsonl");
        std::fs::write(&csv, "x,c\n1,u\n2,v\n3,u\n").unwrap();
        std::fs::write(
            &jsonl,
            "{\"x\":1,\"c\":\"u\"}\n{\"x\":2,\"c\":\"v\"}\n{\"x\":3,\"c\":\"u\"}\n",
        )
        .unwrap();
        let mut from_csv = profile_file(&csv, &options(Format::Csv)).unwrap();
        let mut from_jsonl = profile_file(&jsonl, &options(Format::Jsonl)).unwrap();
        from_csv.source.clear();
        from_jsonl.source.clear();
        assert_eq!(from_csv, from_jsonl);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{\"x\":1}\n[1,2]\n").unwrap();
        let error = profile_file(&path, &options(Format::Jsonl)).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
