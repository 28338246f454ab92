//! Extraction, the first stage of the analysis path: from a captured request/response pair to
//! rows of typed cells under named columns (see [`table`]), for whatever model server is behind
//! the proxy (SPEC §6). It runs on the analysis worker, on the captured copy; nothing here is on
//! the request path.
//!
//! # Protocols
//!
//! The protocol is `spec.protocol` when it is not `auto`; otherwise [`detect`] picks it from the
//! path, then from the request body's shape; a model with configured pointers falls back to
//! `json`; nothing else is `unknown_protocol`.
//!
//! | protocol | inputs (request) | outputs (response) |
//! |---|---|---|
//! | `open-inference` | `inputs[]` tensors | `outputs[]` tensors; model from `model_name`/`model_version` |
//! | `kserve-v1`, `tf-serving` | `instances` (rows) or `inputs` (columnar) | `predictions` (rows) or `outputs` (columnar) |
//! | `mlflow` | `dataframe_split`, `dataframe_records`, `instances`, `inputs` | `predictions` or a bare list |
//! | `openai` | derived: `prompt_chars`, `message_count`, `max_tokens`, `temperature`, `model_requested` | `prompt_tokens`, `completion_tokens`, `finish_reason` |
//! | `json` | `spec.input_pointers` | `spec.output_pointers` |
//!
//! # Columns
//!
//! - **Positional columns** (a tensor's second dimension, rows given as arrays, a dataframe
//!   without column names) take `spec.input_names` / `spec.output_names` in order of appearance;
//!   past the names (or without any) they are `{source}_{j}` (`predict_0`, `instances_2`), or just
//!   `{source}` when the source has one column. The source is the tensor name or the payload field
//!   (`instances`, `inputs`, `predictions`, `outputs`, `dataframe_split`, …).
//! - **Named columns** keep their names: one tensor per column (when a message carries several
//!   tensors, a tensor of width 1 is a column named after the tensor), object keys (`{key}_{j}`
//!   for an array value), dataframe column names, JSON-pointer columns, the derived OpenAI
//!   columns. A name already taken gets a `_2`, `_3`, … suffix.
//! - Nested arrays inside a row (a tensor of rank above 2, an array row of arrays) are flattened
//!   row-major, so a `[N, A, B]` tensor has `A·B` columns.
//!
//! # Categorical or numeric
//!
//! In order, the first rule that applies:
//! 1. an input column listed in `spec.input_categorical` is categorical;
//! 2. a BYTES or BOOL tensor (or a tensor with MLServer's `content_type: str`), TF `{"b64": …}`
//!    values, `model_requested` and `finish_reason` are categorical; float tensors and the derived
//!    OpenAI counts are numeric;
//! 3. an *output* column of width 1 (its tensor or source has no other column) holding integers —
//!    an INT*/UINT* tensor, or plain JSON integers — is categorical (class ids), unless
//!    `spec.task` is `regression`; integer inputs are numeric;
//! 4. plain JSON: a column with strings or booleans and no numbers is categorical; anything else
//!    (numbers, a mix, only nulls) is numeric. `NaN`/`Infinity` (tokens or strings) become
//!    non-finite numbers but do not decide the type: `["Paris", "nan"]` is categorical.
//!
//! # Shapes and limits
//!
//! - A tensor whose `data` does not fill its `shape`, tensors or columns of different lengths,
//!   ragged array rows, a dataframe row of the wrong width, pointer arrays of different lengths,
//!   or a response with a different number of rows than the request set
//!   [`Extraction::shape_mismatch`]; it is not an error. Columns are then cut to the rows every
//!   column has (a short array row is padded with [`table::Cell::Missing`] instead), so every
//!   returned row is consistent.
//! - More than [`MAX_ROWS`] rows, [`MAX_COLUMNS`] columns or [`MAX_CELLS`] cells in one table is
//!   `too_large`: the request is rejected, not truncated, so a window never holds a silently
//!   partial batch. Tensor shapes are never trusted for allocation: the rows read are bounded by
//!   the data actually present, so `shape: [1e12, 1e12]` costs nothing.
//! - Nesting deeper than serde_json's recursion limit (128) is `invalid_json`.
//!
//! # Responses
//!
//! The caller passes `response: None` when there was no response or its status was not 2xx: a
//! failed request has no output rows and that is not an extraction error. An empty 2xx body is
//! the same as no response. A response that cannot be read (truncated, not JSON, a shape the
//! protocol does not have, too large) never discards the inputs: the outputs stay empty and the
//! reason is in [`Extraction::response_error`], for the caller to count. Responses that are not
//! read at all — a streamed OpenAI response (`"stream": true`), any response under `json`
//! without output pointers — give no outputs and no error.
//!
//! Error details name fields and counts, never payload values, so they can be logged.

pub mod lenient;
pub mod table;

mod columns;
mod kserve_v1;
mod mlflow;
mod open_inference;
mod openai;
mod pointers;
mod protocol;

pub use protocol::{Protocol, detect, model_from_path};

use serde_json::Value;

use crate::config::monitoring::ModelSpec;
use columns::Columns;
use table::{Extraction, Role};

/// Most rows one request (or one response) may carry.
pub const MAX_ROWS: usize = 100_000;
/// Most columns one request (or one response) may carry.
pub const MAX_COLUMNS: usize = 1024;
/// Most cells (rows × columns) in one table: bounds the memory of one extraction (about 32 bytes
/// a cell) well below `MAX_ROWS × MAX_COLUMNS`.
pub const MAX_CELLS: usize = 2_000_000;

/// Why an exchange gave no rows; `reason` is the `reason` label of
/// `driftwatch_extract_errors_total{model,reason}`, one of [`ExtractError::REASONS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ExtractError {
    pub reason: &'static str,
    pub detail: String,
}

impl ExtractError {
    /// The body is not JSON, even with `NaN`/`Infinity` tokens allowed, or nests too deeply.
    pub const INVALID_JSON: &'static str = "invalid_json";
    /// Auto-detection recognised no protocol and the model has no pointers.
    pub const UNKNOWN_PROTOCOL: &'static str = "unknown_protocol";
    /// A recognised protocol, but a shape of it that cannot be read.
    pub const UNSUPPORTED_PAYLOAD: &'static str = "unsupported_payload";
    /// Beyond [`MAX_ROWS`], [`MAX_COLUMNS`] or [`MAX_CELLS`].
    pub const TOO_LARGE: &'static str = "too_large";
    /// The captured body was cut by the capture limit, so it cannot be parsed.
    pub const TRUNCATED: &'static str = "truncated";

    /// Every reason, for registering the metric's label values up front.
    pub const REASONS: [&'static str; 5] = [
        Self::INVALID_JSON,
        Self::UNKNOWN_PROTOCOL,
        Self::UNSUPPORTED_PAYLOAD,
        Self::TOO_LARGE,
        Self::TRUNCATED,
    ];

    pub(crate) fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(detail: impl Into<String>) -> Self {
        Self::new(Self::UNSUPPORTED_PAYLOAD, detail)
    }

    pub(crate) fn too_large(detail: impl Into<String>) -> Self {
        Self::new(Self::TOO_LARGE, detail)
    }
}

/// Reads one exchange.
///
/// `path` is the request path (a query string is ignored); `request`/`response` are the captured
/// bodies and the `*_truncated` flags say whether the capture cut them. Pass `response: None`
/// when there was no response or it was not 2xx (see the module doc). A truncated request is
/// `truncated`; a truncated response gives the inputs and no outputs.
pub fn extract(
    path: &str,
    request: &[u8],
    request_truncated: bool,
    response: Option<&[u8]>,
    response_truncated: bool,
    spec: &ModelSpec,
) -> Result<(Protocol, Extraction), ExtractError> {
    if request_truncated {
        return Err(ExtractError::new(
            ExtractError::TRUNCATED,
            format!(
                "request: body cut at {} bytes by the capture limit",
                request.len()
            ),
        ));
    }
    let request_body = parse(request).map_err(|error| prefixed("request", error))?;
    let protocol = Protocol::from_name(spec.protocol)
        .or_else(|| detect(path, &request_body))
        .or_else(|| {
            let has_pointers = !spec.input_pointers.is_empty() || !spec.output_pointers.is_empty();
            has_pointers.then_some(Protocol::Json)
        })
        .ok_or_else(|| {
            ExtractError::new(
                ExtractError::UNKNOWN_PROTOCOL,
                "neither the path nor the request body matches a known protocol, and no pointers are configured",
            )
        })?;

    let inputs =
        read_inputs(protocol, &request_body, spec).map_err(|error| prefixed("request", error))?;
    let (inputs, mut shape_mismatch) = inputs
        .into_table(Role::Input, spec)
        .map_err(|error| prefixed("request", error))?;

    let mut extraction = Extraction {
        inputs,
        ..Extraction::default()
    };
    let reads_response = match protocol {
        Protocol::Json => !spec.output_pointers.is_empty(),
        Protocol::Openai => !openai::is_streamed(&request_body),
        _ => true,
    };
    let mut response_body = None;
    if let Some(bytes) = response.filter(|_| reads_response) {
        match read_response(protocol, bytes, response_truncated, spec) {
            Ok(None) => {}
            Ok(Some(response)) => {
                // A response with columns but not one row per input row contradicts the request
                // (SPEC §7 `shape_mismatch`); an empty table says nothing.
                let rows_differ = !response.outputs.columns.is_empty()
                    && response.outputs.rows.len() != extraction.inputs.rows.len();
                shape_mismatch |= response.shape_mismatch || rows_differ;
                extraction.outputs = response.outputs;
                response_body = Some(response.body);
            }
            Err(error) => extraction.response_error = Some(prefixed("response", error)),
        }
    }
    extraction.shape_mismatch = shape_mismatch;

    let (model, version) = model_and_version(protocol, path, &request_body, response_body.as_ref());
    extraction.model = model;
    extraction.version = version;
    Ok((protocol, extraction))
}

/// Parses a body strictly, then leniently (bare `NaN`/`Infinity` tokens, see [`lenient`]).
fn parse(bytes: &[u8]) -> Result<Value, ExtractError> {
    lenient::parse(bytes)
        .map_err(|error| ExtractError::new(ExtractError::INVALID_JSON, error.to_string()))
}

fn prefixed(side: &str, error: ExtractError) -> ExtractError {
    ExtractError::new(error.reason, format!("{side}: {}", error.detail))
}

fn read_inputs(
    protocol: Protocol,
    body: &Value,
    spec: &ModelSpec,
) -> Result<Columns, ExtractError> {
    match protocol {
        Protocol::OpenInference => open_inference::inputs(body),
        Protocol::KserveV1 | Protocol::TfServing => kserve_v1::inputs(body),
        Protocol::Mlflow => mlflow::inputs(body),
        Protocol::Openai => openai::inputs(body),
        Protocol::Json => pointers::read(body, &spec.input_pointers),
    }
}

struct Response {
    body: Value,
    outputs: table::Table,
    shape_mismatch: bool,
}

/// The response's output table; `None` for an empty body (the same as no response).
fn read_response(
    protocol: Protocol,
    bytes: &[u8],
    truncated: bool,
    spec: &ModelSpec,
) -> Result<Option<Response>, ExtractError> {
    if truncated {
        return Err(ExtractError::new(
            ExtractError::TRUNCATED,
            format!("body cut at {} bytes by the capture limit", bytes.len()),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body = parse(bytes)?;
    let outputs = match protocol {
        Protocol::OpenInference => open_inference::outputs(&body),
        Protocol::KserveV1 | Protocol::TfServing => kserve_v1::outputs(&body),
        Protocol::Mlflow => mlflow::outputs(&body),
        Protocol::Openai => openai::outputs(&body),
        Protocol::Json => pointers::read(&body, &spec.output_pointers),
    }?;
    let (outputs, shape_mismatch) = outputs.into_table(Role::Output, spec)?;
    Ok(Some(Response {
        body,
        outputs,
        shape_mismatch,
    }))
}

/// The path names the model first; otherwise the body does (Open Inference responses, the
/// OpenAI `model` field, the request's before the response's).
fn model_and_version(
    protocol: Protocol,
    path: &str,
    request: &Value,
    response: Option<&Value>,
) -> (Option<String>, Option<String>) {
    let (body_model, body_version) = match protocol {
        Protocol::OpenInference => response.map_or((None, None), open_inference::model),
        Protocol::Openai => (openai::model(request, response), None),
        _ => (None, None),
    };
    match model_from_path(path) {
        Some((model, version)) => (Some(model), version.or(body_version)),
        None => (body_model, body_version),
    }
}
