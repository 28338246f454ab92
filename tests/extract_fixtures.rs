//! Checks `driftwatch::extract` against the request/response fixtures in
//! `tests/fixtures/extract/*.json` (one file per protocol, each a list of cases; the format is
//! described in `tests/fixtures/extract/README.md`), then checks with property tests that no
//! payload — arbitrary JSON, arbitrary bytes, deep nesting, enormous shapes, huge arrays — makes
//! extraction panic, overflow the stack or allocate without bound.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use driftwatch::config::monitoring::{ModelSpec, ProtocolName, TaskName};
use driftwatch::extract::table::{Cell, Table};
use driftwatch::extract::{self, ExtractError, MAX_COLUMNS, MAX_ROWS, Protocol};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extract")
}

fn load(name: &str) -> Vec<Value> {
    let path = fixture_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let fixture: Value =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let cases = fixture["cases"]
        .as_array()
        .expect("`cases` is a list")
        .clone();
    assert!(
        !cases.is_empty(),
        "{name}: a fixture without cases checks nothing"
    );
    cases
}

/// A body as the case gives it: `{side}` as JSON, or `{side}_text` as raw text (for bodies that
/// are not JSON, such as Python's `NaN` tokens); `None` when neither is present.
fn body(case: &Value, side: &str) -> Option<Vec<u8>> {
    if let Some(text) = case.get(format!("{side}_text")) {
        return Some(
            text.as_str()
                .expect("a `_text` body is a string")
                .as_bytes()
                .to_vec(),
        );
    }
    case.get(side)
        .map(|value| serde_json::to_vec(value).expect("a JSON body serializes"))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|pair| {
                    let text =
                        |index: usize| pair[index].as_str().expect("[column, pointer]").to_owned();
                    (text(0), text(1))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn spec(case: &Value) -> ModelSpec {
    let mut spec = ModelSpec::auto("fixture");
    let Some(overrides) = case.get("spec") else {
        return spec;
    };
    if let Some(protocol) = overrides.get("protocol") {
        spec.protocol =
            serde_json::from_value::<ProtocolName>(protocol.clone()).expect("a protocol name");
    }
    if let Some(task) = overrides.get("task") {
        spec.task = Some(serde_json::from_value::<TaskName>(task.clone()).expect("a task name"));
    }
    spec.input_names = strings(overrides.get("input_names"));
    spec.input_categorical = strings(overrides.get("input_categorical"));
    spec.output_names = strings(overrides.get("output_names"));
    spec.input_pointers = pairs(overrides.get("input_pointers"));
    spec.output_pointers = pairs(overrides.get("output_pointers"));
    spec
}

/// An expected cell: a number, string, bool or null as itself; `{"$": "missing" | "invalid" |
/// "nan" | "inf" | "-inf"}` for the rest.
fn expected_cell(value: &Value) -> Cell {
    match value {
        Value::Object(map) => match map.get("$").and_then(Value::as_str) {
            Some("missing") => Cell::Missing,
            Some("invalid") => Cell::Invalid,
            Some("nan") => Cell::Number(f64::NAN),
            Some("inf") => Cell::Number(f64::INFINITY),
            Some("-inf") => Cell::Number(f64::NEG_INFINITY),
            other => panic!("unknown expected cell {other:?}"),
        },
        Value::Number(number) => Cell::Number(number.as_f64().expect("a finite number")),
        Value::String(text) => Cell::Text(text.clone()),
        Value::Bool(flag) => Cell::Bool(*flag),
        Value::Null => Cell::Null,
        Value::Array(_) => panic!("an expected cell cannot be a list"),
    }
}

fn same_cell(actual: &Cell, expected: &Cell) -> bool {
    match (actual, expected) {
        (Cell::Number(a), Cell::Number(b)) => (a.is_nan() && b.is_nan()) || a == b,
        _ => actual == expected,
    }
}

fn check_table(name: &str, side: &str, actual: &Table, expected: Option<&Value>) {
    let empty = json!({"columns": [], "rows": []});
    let expected = expected.unwrap_or(&empty);
    let columns: Vec<(String, &str)> = actual
        .columns
        .iter()
        .map(|column| {
            let kind = if column.categorical {
                "categorical"
            } else {
                "numeric"
            };
            (column.name.clone(), kind)
        })
        .collect();
    let expected_columns: Vec<(String, &str)> = expected["columns"]
        .as_array()
        .expect("`columns` is a list")
        .iter()
        .map(|column| {
            let name = column[0].as_str().expect("[name, kind]").to_owned();
            (name, column[1].as_str().expect("[name, kind]"))
        })
        .collect();
    assert_eq!(columns, expected_columns, "{name}: {side} columns");
    for column in &actual.columns {
        assert_eq!(
            column.role.as_str(),
            side,
            "{name}: role of {side} column {}",
            column.name
        );
    }
    let expected_rows = expected["rows"].as_array().expect("`rows` is a list");
    assert_eq!(
        actual.rows.len(),
        expected_rows.len(),
        "{name}: {side} row count"
    );
    for (index, (row, expected_row)) in actual.rows.iter().zip(expected_rows).enumerate() {
        assert_eq!(
            row.len(),
            actual.columns.len(),
            "{name}: {side} row {index} has one cell a column"
        );
        let expected_row: Vec<Cell> = expected_row
            .as_array()
            .expect("a row is a list")
            .iter()
            .map(expected_cell)
            .collect();
        let same = row.len() == expected_row.len()
            && row.iter().zip(&expected_row).all(|(a, b)| same_cell(a, b));
        assert!(
            same,
            "{name}: {side} row {index}: got {row:?}, expected {expected_row:?}"
        );
    }
}

fn run_case(case: &Value) {
    let name = case["name"].as_str().expect("a case has a name");
    let path = case["path"].as_str().expect("a case has a path");
    let request = body(case, "request").unwrap_or_else(|| panic!("{name}: no request"));
    let response = body(case, "response");
    let flag = |key: &str| case.get(key).and_then(Value::as_bool).unwrap_or(false);
    let spec = spec(case);
    let expected = &case["expected"];
    let result = extract::extract(
        path,
        &request,
        flag("request_truncated"),
        response.as_deref(),
        flag("response_truncated"),
        &spec,
    );

    if let Some(reason) = expected.get("error") {
        let error = result.expect_err(&format!("{name}: expected an error"));
        assert_eq!(
            error.reason,
            reason.as_str().expect("a reason"),
            "{name}: {error}"
        );
        assert!(ExtractError::REASONS.contains(&error.reason));
        return;
    }
    let (protocol, extraction) = result.unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_eq!(protocol.as_str(), expected["protocol"], "{name}: protocol");
    let text = |key: &str| expected.get(key).and_then(Value::as_str).map(str::to_owned);
    assert_eq!(extraction.model, text("model"), "{name}: model");
    assert_eq!(extraction.version, text("version"), "{name}: version");
    assert_eq!(
        extraction.shape_mismatch,
        expected
            .get("shape_mismatch")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        "{name}: shape_mismatch"
    );
    assert_eq!(
        extraction.response_error.as_ref().map(|error| error.reason),
        expected.get("response_error").and_then(Value::as_str),
        "{name}: response_error {:?}",
        extraction.response_error
    );
    check_table(name, "input", &extraction.inputs, expected.get("inputs"));
    check_table(name, "output", &extraction.outputs, expected.get("outputs"));
}

fn run_fixture(name: &str) {
    for case in load(name) {
        run_case(&case);
    }
}

#[test]
fn open_inference_fixtures() {
    run_fixture("open_inference");
}

#[test]
fn kserve_v1_fixtures() {
    run_fixture("kserve_v1");
}

#[test]
fn mlflow_fixtures() {
    run_fixture("mlflow");
}

#[test]
fn openai_fixtures() {
    run_fixture("openai");
}

#[test]
fn json_pointer_fixtures() {
    run_fixture("json");
}

#[test]
fn every_fixture_file_is_checked() {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("the fixture directory")
        .filter_map(|entry| {
            let path = entry.expect("a directory entry").path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["json", "kserve_v1", "mlflow", "open_inference", "openai"]
    );
}

// ---------------------------------------------------------------------------------------------
// Limits.

fn auto() -> ModelSpec {
    ModelSpec::auto("m")
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(10_000);
    let error = extract::extract(
        "/v2/models/m/infer",
        deep.as_bytes(),
        false,
        None,
        false,
        &auto(),
    )
    .unwrap_err();
    assert_eq!(error.reason, ExtractError::INVALID_JSON);
    // The lenient retry must not change that.
    let deep_nan = format!("{}NaN{}", "[".repeat(10_000), "]".repeat(10_000));
    let error = extract::extract(
        "/invocations",
        deep_nan.as_bytes(),
        false,
        None,
        false,
        &auto(),
    )
    .unwrap_err();
    assert_eq!(error.reason, ExtractError::INVALID_JSON);
    // A deep response costs the outputs only.
    let request = br#"{"instances": [[1]]}"#;
    let (_, extraction) = extract::extract(
        "/v1/models/m:predict",
        request,
        false,
        Some(deep.as_bytes()),
        false,
        &auto(),
    )
    .unwrap();
    assert_eq!(extraction.inputs.rows.len(), 1);
    assert_eq!(
        extraction.response_error.map(|error| error.reason),
        Some(ExtractError::INVALID_JSON)
    );
}

#[test]
fn enormous_shapes_cost_only_the_data() {
    let started = Instant::now();
    for shape in [
        json!([1_000_000_000_000u64, 1_000_000_000_000u64]),
        json!([u64::MAX, u64::MAX, u64::MAX]),
        json!([1_000_000_000_000u64, 1]),
        json!([u64::MAX]),
        json!([4, 0, 1_000_000_000_000u64]),
    ] {
        let request = json!({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]});
        let response =
            json!({"outputs": [{"name": "y", "shape": shape, "datatype": "INT64", "data": [1]}]});
        let result = extract::extract(
            "/v2/models/m/infer",
            &serde_json::to_vec(&request).unwrap(),
            false,
            Some(&serde_json::to_vec(&response).unwrap()),
            false,
            &auto(),
        );
        match result {
            Ok((_, extraction)) => {
                assert!(extraction.shape_mismatch, "{shape}");
                assert!(extraction.inputs.rows.len() <= 3, "{shape}");
            }
            Err(error) => assert_eq!(error.reason, ExtractError::TOO_LARGE, "{shape}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shapes must not drive the work"
    );
}

#[test]
fn rows_beyond_the_limit_are_too_large() {
    let instances: Vec<Value> = (0..=MAX_ROWS).map(|index| json!([index])).collect();
    let request = serde_json::to_vec(&json!({"instances": instances})).unwrap();
    let error = extract::extract(
        "/v1/models/m:predict",
        &request,
        false,
        None,
        false,
        &auto(),
    )
    .unwrap_err();
    assert_eq!(error.reason, ExtractError::TOO_LARGE);

    let data: Vec<u32> = (0..=MAX_ROWS as u32).collect();
    let request = json!({"inputs": [{"name": "x", "shape": [data.len()], "datatype": "INT32", "data": data}]});
    let error = extract::extract(
        "/v2/models/m/infer",
        &serde_json::to_vec(&request).unwrap(),
        false,
        None,
        false,
        &auto(),
    )
    .unwrap_err();
    assert_eq!(error.reason, ExtractError::TOO_LARGE);

    let (_, extraction) = extract::extract(
        "/v2/models/m/infer",
        &serde_json::to_vec(&json!({"inputs": [{"name": "x", "shape": [MAX_ROWS], "datatype": "INT32", "data": &data[..MAX_ROWS]}]})).unwrap(),
        false,
        None,
        false,
        &auto(),
    )
    .unwrap();
    assert_eq!(extraction.inputs.rows.len(), MAX_ROWS);
}

#[test]
fn columns_beyond_the_limit_are_too_large() {
    let row: Vec<u32> = (0..=MAX_COLUMNS as u32).collect();
    let request = serde_json::to_vec(&json!({"instances": [row]})).unwrap();
    let error = extract::extract(
        "/v1/models/m:predict",
        &request,
        false,
        None,
        false,
        &auto(),
    )
    .unwrap_err();
    assert_eq!(error.reason, ExtractError::TOO_LARGE);

    // Keys spread over many records would pad every row: bounded by the cell limit.
    let records: Vec<Value> = (0..50_000)
        .map(|index| json!({ format!("k{}", index % 1000): 1 }))
        .collect();
    let request = serde_json::to_vec(&json!({"dataframe_records": records})).unwrap();
    let error =
        extract::extract("/invocations", &request, false, None, false, &auto()).unwrap_err();
    assert_eq!(error.reason, ExtractError::TOO_LARGE);
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop_oneof![
            Just("NaN".to_owned()),
            Just("Infinity".to_owned()),
            Just("b64".to_owned()),
            Just("name".to_owned()),
            Just("data".to_owned()),
            "[a-z]{0,6}",
            any::<String>(),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Keys the adapters look for, so arbitrary values land where they are read.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "inputs",
            "outputs",
            "instances",
            "predictions",
            "name",
            "shape",
            "datatype",
            "data",
            "parameters",
            "content_type",
            "dataframe_split",
            "dataframe_records",
            "columns",
            "messages",
            "content",
            "prompt",
            "input",
            "model",
            "model_name",
            "model_version",
            "usage",
            "choices",
            "finish_reason",
            "b64",
            "stream",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,4}",
    ]
}

/// Open Inference tensors with arbitrary (often contradictory, sometimes enormous) shapes.
fn arbitrary_tensors() -> impl Strategy<Value = Value> {
    let dimension = prop_oneof![0u64..5, Just(1_000_000_000_000u64), Just(u64::MAX)];
    let datatype = prop::sample::select(vec!["FP32", "INT64", "BYTES", "BOOL", "UINT8", "weird"]);
    let tensor = (
        "[a-z]{1,3}",
        prop::collection::vec(dimension, 0..4),
        datatype,
        arbitrary_json(),
    )
        .prop_map(|(name, shape, datatype, data)| json!({"name": name, "shape": shape, "datatype": datatype, "data": data}));
    prop::collection::vec(tensor, 0..4)
        .prop_map(|tensors| json!({"inputs": tensors.clone(), "outputs": tensors}))
}

fn arbitrary_path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/v2/models/m/infer",
            "/v2/models/m/versions/1/infer",
            "/v1/models/m:predict",
            "/v1/models/m/versions/2:predict",
            "/invocations",
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/predict",
            "",
            "?",
            "/v2/models//infer",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn arbitrary_spec() -> impl Strategy<Value = ModelSpec> {
    let protocol = prop::sample::select(vec![
        ProtocolName::Auto,
        ProtocolName::OpenInference,
        ProtocolName::KserveV1,
        ProtocolName::TfServing,
        ProtocolName::Mlflow,
        ProtocolName::Openai,
        ProtocolName::Json,
    ]);
    let pointer = prop_oneof![
        prop::sample::select(vec![
            "",
            "/",
            "/inputs",
            "/inputs/0/data",
            "/instances/*/a",
            "/*",
            "/a/*/*",
            "/data/-"
        ])
        .prop_map(str::to_owned),
        "(/[a-z0-9*~]{0,3}){0,4}",
    ];
    let pointers = prop::collection::vec(("[a-c]", pointer), 0..4);
    let names = prop::collection::vec("[a-c]{1,2}", 0..4);
    let task = prop::option::of(prop::sample::select(vec![
        TaskName::Classification,
        TaskName::Regression,
        TaskName::Ranking,
        TaskName::Generation,
    ]));
    (
        protocol,
        pointers.clone(),
        pointers,
        names.clone(),
        names,
        task,
    )
        .prop_map(
            |(protocol, input_pointers, output_pointers, input_names, output_names, task)| {
                let mut spec = ModelSpec::auto("m");
                spec.protocol = protocol;
                spec.input_pointers = input_pointers;
                spec.output_pointers = output_pointers;
                spec.input_categorical = input_names.iter().take(1).cloned().collect();
                spec.input_names = input_names;
                spec.output_names = output_names;
                spec.task = task;
                spec
            },
        )
}

/// What every successful extraction guarantees, whatever it was given.
fn check_invariants(result: &Result<(Protocol, extract::table::Extraction), ExtractError>) {
    match result {
        Ok((_, extraction)) => {
            for table in [&extraction.inputs, &extraction.outputs] {
                assert!(table.rows.len() <= MAX_ROWS);
                assert!(table.columns.len() <= MAX_COLUMNS);
                for row in &table.rows {
                    assert_eq!(row.len(), table.columns.len());
                }
                let mut names: Vec<&str> = table
                    .columns
                    .iter()
                    .map(|column| column.name.as_str())
                    .collect();
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), table.columns.len(), "column names are unique");
            }
            if let Some(error) = &extraction.response_error {
                assert!(ExtractError::REASONS.contains(&error.reason));
                assert!(extraction.outputs.columns.is_empty());
            }
        }
        Err(error) => assert!(ExtractError::REASONS.contains(&error.reason), "{error}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(
        path in arbitrary_path(),
        request in prop_oneof![arbitrary_json(), arbitrary_tensors()],
        response in prop::option::of(prop_oneof![arbitrary_json(), arbitrary_tensors()]),
        truncated in (any::<bool>(), any::<bool>()),
        spec in arbitrary_spec(),
    ) {
        let request = serde_json::to_vec(&request).unwrap();
        let response = response.map(|response| serde_json::to_vec(&response).unwrap());
        let result = extract::extract(&path, &request, truncated.0 && request.len() % 7 == 0, response.as_deref(), truncated.1, &spec);
        check_invariants(&result);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        path in arbitrary_path(),
        request in prop::collection::vec(any::<u8>(), 0..256),
        response in prop::option::of(prop::collection::vec(any::<u8>(), 0..256)),
        spec in arbitrary_spec(),
    ) {
        let result = extract::extract(&path, &request, false, response.as_deref(), false, &spec);
        check_invariants(&result);
        let _ = extract::lenient::quote_non_finite(&request);
    }

    #[test]
    fn json_with_python_tokens_never_panics(
        text in r#"[\[\]{}",:0-9 a-z\\]{0,40}(NaN|-?Infinity)[\[\]{}",:0-9 a-z\\]{0,40}"#,
        spec in arbitrary_spec(),
    ) {
        let result = extract::extract("/invocations", text.as_bytes(), false, Some(text.as_bytes()), false, &spec);
        check_invariants(&result);
    }
}
