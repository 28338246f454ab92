//! `driftwatch replay`: the very detectors of `run`, over a records file, printing one drift
//! report per window (the shape of `GET /api/v1/drift`'s reports) so thresholds can be
//! back-tested offline, then, per model whose change detectors fired, one line
//! `{"model", "change_points": [...]}` (the last 100, as the API keeps them).
//!
//! Records must hold complete JSON bodies (`recording.sample_rate: 1.0`, bodies not truncated);
//! redacted fields replay as their redacted values.

use std::io::{BufRead, Write};
use std::time::Duration;

use serde_json::Value;

use crate::monitor::model::ExchangeFacts;
use crate::monitor::{Models, Sample};
use crate::record::body::decode;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub records: u64,
    pub skipped: u64,
    pub reports: u64,
    pub change_points: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("cannot write the report: {0}")]
    Write(#[from] std::io::Error),
}

/// Feeds every record to `models` in file order; prints each closed window's report as one JSON
/// line, then the still-open windows (with `"complete": false`).
pub fn replay(
    records: impl BufRead,
    models: &mut Models,
    out: &mut dyn Write,
) -> Result<ReplayStats, ReplayError> {
    let mut stats = ReplayStats::default();
    for (index, line) in records.lines().enumerate() {
        let line = line.map_err(|e| ReplayError::Line {
            line: index + 1,
            message: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line).map_err(|e| ReplayError::Line {
            line: index + 1,
            message: format!("not a record: {e}"),
        })?;
        stats.records += 1;
        if !feed(&record, models) {
            stats.skipped += 1;
        }
        stats.reports += print_closed(models, out)?;
    }
    let names: Vec<String> = models.monitors().map(|m| m.name().to_owned()).collect();
    for name in names {
        if let Some(report) = models
            .get(&name)
            .and_then(|m| m.report(false))
            .filter(|r| r.window.rows > 0)
        {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&report).unwrap_or_default()
            )?;
            stats.reports += 1;
        }
    }
    for monitor in models.monitors() {
        if !monitor.change_points.is_empty() {
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "model": monitor.name(),
                    "change_points": monitor.change_points,
                })
            )?;
            stats.change_points += monitor.change_points.len() as u64;
        }
    }
    Ok(stats)
}

fn feed(record: &Value, models: &mut Models) -> bool {
    let Some((request, request_truncated)) = decode(&record["request"]) else {
        return false;
    };
    let status = record["response"]["status"].as_u64();
    let success =
        status.is_some_and(|s| (200..300).contains(&s)) && record["response"]["error"].is_null();
    let response = success.then(|| decode(&record["response"])).flatten();
    let time = record["time"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or(std::time::UNIX_EPOCH);
    let latency = Duration::from_secs_f64(
        record["timing"]["total_ms"]
            .as_f64()
            .unwrap_or(0.0)
            .max(0.0)
            / 1000.0,
    );
    let error = status.is_some_and(|s| s >= 500)
        || !record["response"]["error"].is_null()
        || matches!(
            record["outcome"].as_str(),
            Some("upstream_error" | "timeout")
        );
    let sample = Sample {
        request_id: record["id"].as_str().unwrap_or_default(),
        path: record["request"]["path"].as_str().unwrap_or("/"),
        model_hint: record["model"].as_str(),
        request: &request,
        request_truncated,
        response: response.as_ref().map(|(bytes, _)| bytes.as_slice()),
        response_truncated: response.as_ref().is_some_and(|(_, truncated)| *truncated),
        facts: ExchangeFacts {
            time,
            latency,
            error,
        },
    };
    models.observe(&sample).is_some()
}

fn print_closed(models: &mut Models, out: &mut dyn Write) -> Result<u64, ReplayError> {
    let names: Vec<String> = models.monitors().map(|m| m.name().to_owned()).collect();
    let mut printed = 0;
    for name in names {
        if let Some(monitor) = models.get_mut(&name) {
            for report in monitor.take_closed_reports() {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&report).unwrap_or_default()
                )?;
                printed += 1;
            }
        }
    }
    Ok(printed)
}
