//! One model's monitoring state: its reference (learning or ready), per-column validation
//! counters, windows and drift reports, outlier scoring, and change detectors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge};
use serde::Serialize;

use super::detectors::{Adwin, ChangeDetector, Ddm, PageHinkley};
use super::drift::{self, ColumnReport};
use super::reference::{ColumnInput, ColumnProfile, Kind, Profile, ProfileBuilder, number};
use super::stats;
use super::validate::{Status, validate};
use super::window::{BinLayout, ColumnWindow};
use crate::config::monitoring::{DetectorName, WindowConfig};
use crate::config::{ModelSpec, MonitoringConfig};
use crate::extract::table::{Cell, Extraction, Role, Table};
use crate::telemetry::Registry;

/// Most validation issues listed in one record's `monitor` field.
const MAX_ISSUES_PER_RECORD: usize = 100;

/// The per-request validation statuses (SPEC §7), the `issue` label of
/// `driftwatch_request_issues_total{model,issue}`: a payload that contradicts itself
/// ([`Extraction::shape_mismatch`]). Per-value statuses are [`Status`].
pub const REQUEST_ISSUES: [&str; 1] = [SHAPE_MISMATCH];
const SHAPE_MISMATCH: &str = "shape_mismatch";

/// One exchange as monitoring sees it, live or replayed.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeFacts {
    pub time: SystemTime,
    pub latency: Duration,
    /// A 5xx or proxy-made error.
    pub error: bool,
}

/// What monitoring found in one exchange (the record's `monitor` field).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MonitorFindings {
    pub rows: usize,
    pub issues: Vec<Issue>,
    pub outlier_rows: Vec<usize>,
    pub outlier_score_max: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shape_mismatch: bool,
    /// The model the exchange was monitored as, when something named it (a configured prefix,
    /// the path, or the payload); `None` when it fell to `default`. Not part of the `monitor`
    /// field: the record's `model` carries it.
    #[serde(skip)]
    pub model: Option<String>,
    /// The version the path or the payload gave. Not part of the `monitor` field: the record's
    /// `model_version` carries it.
    #[serde(skip)]
    pub model_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub row: usize,
    pub column: String,
    pub issue: &'static str,
}

/// A window's report, as `GET /api/v1/drift` and `driftwatch replay` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    pub model: String,
    pub reference: ReferenceInfo,
    pub window: WindowInfo,
    pub dataset: DatasetInfo,
    pub columns: Vec<ColumnReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceInfo {
    pub source: String,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowInfo {
    pub kind: &'static str,
    /// Tumbling: the window's sequence number since the reference was set.
    pub index: u64,
    pub rows: u64,
    pub start: Option<String>,
    pub end: Option<String>,
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetInfo {
    pub drift_share: f64,
    pub threshold: f64,
    pub drifted: bool,
    pub input_columns: usize,
    pub drifted_columns: usize,
}

/// A change point found by an online detector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePoint {
    pub signal: String,
    pub detector: &'static str,
    pub time: String,
    /// The signal's observation count at the change.
    pub at: u64,
}

enum ReferenceState {
    Learning {
        builder: ProfileBuilder,
        target: usize,
    },
    Ready {
        profile: Arc<Profile>,
    },
}

struct ColumnState {
    /// The whole reference (shared by every column of the model) and this column's place in it.
    reference: Arc<Profile>,
    index: usize,
    window: ColumnWindow,
    /// Validation counters, one per [`Status`].
    statuses: Option<[Counter; Status::ALL.len()]>,
    bin_rows: Vec<Counter>,
    /// Counts of the exchange being ingested, added to the counters once at its end.
    pending_statuses: [u64; Status::ALL.len()],
    pending_bins: Vec<u64>,
    scores: Vec<(&'static str, Gauge)>,
    drifted: Gauge,
}

struct SignalDetector {
    signal: String,
    detector: Box<dyn ChangeDetector>,
    observations: u64,
    change_points: Counter,
}

pub struct ModelMonitor {
    name: String,
    spec: ModelSpec,
    config: Arc<MonitoringConfig>,
    registry: Registry,
    pub protocol: Option<&'static str>,
    reference: ReferenceState,
    columns: Vec<ColumnState>,
    statuses: HashMap<(Role, String), [Counter; Status::ALL.len()]>,
    /// Window bookkeeping.
    window_index: u64,
    window_rows: u64,
    window_start: Option<SystemTime>,
    window_end: Option<SystemTime>,
    slot_clock: Option<u64>,
    slot_rows: Vec<u64>,
    last_report: Option<ModelReport>,
    /// Reports of windows closed since the last `take_closed_reports` (replay prints them).
    closed: Vec<ModelReport>,
    keep_closed: bool,
    detectors: Vec<SignalDetector>,
    pub change_points: Vec<ChangePoint>,
    pub requests: u64,
    pub rows: u64,
    /// The last model version an exchange gave (path or payload); exchanges without one keep it.
    pub version: Option<String>,
    outlier_rows: Counter,
    /// One counter per [`REQUEST_ISSUES`] entry.
    request_issues: [Counter; REQUEST_ISSUES.len()],
    window_rows_gauge: Gauge,
    dataset_share: Gauge,
    dataset_drifted: Gauge,
}

impl ModelMonitor {
    pub fn new(
        name: &str,
        spec: ModelSpec,
        reference: Option<Profile>,
        config: Arc<MonitoringConfig>,
        registry: &Registry,
        keep_closed: bool,
    ) -> Self {
        let labels = [("model", name)];
        let slots = match config.window {
            WindowConfig::Tumbling { .. } => 1,
            WindowConfig::Sliding { slots, .. } => slots,
        };
        let detectors = config
            .change_detectors
            .iter()
            .filter(|d| d.model.as_deref().is_none_or(|m| m == name))
            .map(|d| {
                let detector: Box<dyn ChangeDetector> = match d.detector {
                    DetectorName::PageHinkley => Box::new(PageHinkley::default()),
                    DetectorName::Adwin => Box::new(Adwin::default()),
                    DetectorName::Ddm => Box::new(Ddm::default()),
                };
                let change_points = registry.counter(
                    super::CHANGE_POINTS,
                    &[
                        ("model", name),
                        ("signal", &d.signal),
                        ("detector", detector.name()),
                    ],
                );
                SignalDetector {
                    signal: d.signal.clone(),
                    detector,
                    observations: 0,
                    change_points,
                }
            })
            .collect();
        let mut model = Self {
            name: name.to_owned(),
            reference: ReferenceState::Learning {
                builder: ProfileBuilder::new(Vec::new()),
                target: spec.learn_samples.max(1),
            },
            spec,
            registry: registry.clone(),
            protocol: None,
            columns: Vec::new(),
            statuses: HashMap::new(),
            window_index: 0,
            window_rows: 0,
            window_start: None,
            window_end: None,
            slot_clock: None,
            slot_rows: vec![0; slots],
            last_report: None,
            closed: Vec::new(),
            keep_closed,
            detectors,
            change_points: Vec::new(),
            requests: 0,
            rows: 0,
            version: None,
            outlier_rows: registry.counter(super::OUTLIER_ROWS, &labels),
            request_issues: REQUEST_ISSUES.map(|issue| {
                registry.counter(super::REQUEST_ISSUES, &[("model", name), ("issue", issue)])
            }),
            window_rows_gauge: registry.gauge(super::WINDOW_ROWS, &labels),
            dataset_share: registry.gauge(super::DATASET_DRIFT_SHARE, &labels),
            dataset_drifted: registry.gauge(super::DATASET_DRIFT_DETECTED, &labels),
            config,
        };
        if let Some(profile) = reference {
            model.set_reference(profile);
        }
        model
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn profile(&self) -> Option<&Arc<Profile>> {
        match &self.reference {
            ReferenceState::Ready { profile } => Some(profile),
            ReferenceState::Learning { .. } => None,
        }
    }

    /// `(rows learned, rows needed)` while the reference is being learned.
    pub fn learning_progress(&self) -> Option<(u64, usize)> {
        match &self.reference {
            ReferenceState::Learning { builder, target } => Some((builder.rows(), *target)),
            ReferenceState::Ready { .. } => None,
        }
    }

    pub fn last_report(&self) -> Option<&ModelReport> {
        self.last_report.as_ref()
    }

    pub fn take_closed_reports(&mut self) -> Vec<ModelReport> {
        std::mem::take(&mut self.closed)
    }

    /// Replaces the reference (a file, a learned profile, or `PUT /api/v1/reference`); the window
    /// starts over.
    pub fn set_reference(&mut self, profile: Profile) {
        self.retire_reference_series();
        let profile = Arc::new(profile);
        let slots = self.slot_rows.len();
        let export = self.config.export_bins;
        let mut columns = Vec::new();
        for (index, column) in profile
            .columns
            .iter()
            .enumerate()
            .take(self.config.max_columns)
        {
            let layout = BinLayout::from_profile(column);
            let labels = layout.labels();
            let role = column.role.as_str();
            let model = self.name.clone();
            let series = |bin: &str| -> Vec<(&'static str, String)> {
                vec![
                    ("model", model.clone()),
                    ("column", column.name.clone()),
                    ("role", role.to_owned()),
                    ("bin", bin.to_owned()),
                ]
            };
            let bin_rows = if export {
                labels
                    .iter()
                    .map(|bin| {
                        let owned = series(bin);
                        let borrowed: Vec<(&'static str, &str)> =
                            owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        self.registry.counter(super::BIN_ROWS, &borrowed)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if export {
                let reference = stats::fractions(&layout.reference_counts(column));
                for (bin, fraction) in labels.iter().zip(reference) {
                    let owned = series(bin);
                    let borrowed: Vec<(&'static str, &str)> =
                        owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    self.registry
                        .gauge(super::REFERENCE_BIN_FRACTION, &borrowed)
                        .set(fraction);
                }
            }
            let statuses = self.status_counters(column.role, &column.name).cloned();
            let column_labels = [
                ("model", model.as_str()),
                ("column", column.name.as_str()),
                ("role", role),
            ];
            let statistics: &[&'static str] = match column.kind {
                Kind::Numeric => &["psi", "js", "ks_d", "ks_p", "wasserstein"],
                Kind::Categorical => &["psi", "js", "chi2_p"],
            };
            let scores = statistics
                .iter()
                .map(|statistic| {
                    let mut labels = column_labels.to_vec();
                    labels.push(("statistic", statistic));
                    (*statistic, self.registry.gauge(super::DRIFT_SCORE, &labels))
                })
                .collect();
            let seed = seed_for(&self.name, column.role, &column.name, index);
            let bins = layout.len();
            columns.push(ColumnState {
                reference: profile.clone(),
                index,
                window: ColumnWindow::new(layout, slots, seed),
                statuses,
                bin_rows,
                pending_statuses: [0; Status::ALL.len()],
                pending_bins: vec![0; bins],
                scores,
                drifted: self.registry.gauge(super::DRIFT_DETECTED, &column_labels),
            });
        }
        self.columns = columns;
        self.reference = ReferenceState::Ready { profile };
        self.window_index = 0;
        self.window_rows = 0;
        self.window_start = None;
        self.window_end = None;
        self.slot_clock = None;
        self.slot_rows.iter_mut().for_each(|r| *r = 0);
        self.last_report = None;
        self.window_rows_gauge.set(0.0);
    }

    /// Retires the series of the reference being replaced (fractions 0, scores NaN, flags 0). The registry cannot remove a series;
    /// a stale reference fraction would otherwise stay in the fleet PSI sum for ever (a bin the
    /// new layout lacks, at its old fraction, against a window count that no longer grows reads as
    /// drift), and a dropped column would keep its last drift flag. At 0 a stale bin adds nothing
    /// to the fleet PSI (both sides clamp to the same floor); bins of the new reference are set
    /// again right after.
    fn retire_reference_series(&mut self) {
        for column in &self.columns {
            let Some(profile_column) = column.reference.columns.get(column.index) else {
                continue;
            };
            if self.config.export_bins {
                let role = profile_column.role.as_str();
                for bin in BinLayout::from_profile(profile_column).labels() {
                    self.registry
                        .gauge(
                            super::REFERENCE_BIN_FRACTION,
                            &[
                                ("model", self.name.as_str()),
                                ("column", profile_column.name.as_str()),
                                ("role", role),
                                ("bin", bin.as_str()),
                            ],
                        )
                        .set(0.0);
                }
            }
            for (_, gauge) in &column.scores {
                gauge.set(f64::NAN);
            }
            column.drifted.set(0.0);
        }
    }

    fn status_counters(&mut self, role: Role, name: &str) -> Option<&[Counter; Status::ALL.len()]> {
        let key = (role, name.to_owned());
        if !self.statuses.contains_key(&key) {
            if self.statuses.len() >= self.config.max_columns {
                return None;
            }
            let counters = Status::ALL.map(|status| {
                self.registry.counter(
                    super::COLUMN_VALUES,
                    &[
                        ("model", self.name.as_str()),
                        ("column", name),
                        ("role", role.as_str()),
                        ("status", status.as_str()),
                    ],
                )
            });
            self.statuses.insert(key.clone(), counters);
        }
        self.statuses.get(&key)
    }

    /// Takes one exchange's rows.
    pub fn ingest(&mut self, extraction: &Extraction, facts: ExchangeFacts) -> MonitorFindings {
        self.requests += 1;
        let rows = extraction
            .inputs
            .rows
            .len()
            .max(extraction.outputs.rows.len());
        self.rows += rows as u64;
        let mut findings = MonitorFindings {
            rows,
            shape_mismatch: extraction.shape_mismatch,
            ..MonitorFindings::default()
        };
        if extraction.shape_mismatch {
            self.count_request_issue(SHAPE_MISMATCH);
        }
        self.update_exchange_detectors(facts);
        if let ReferenceState::Learning { .. } = self.reference {
            self.learn(extraction, &mut findings);
            return findings;
        }
        self.advance_clock(facts.time);
        let slot = self.current_slot();
        // Where each monitored column is in this extraction.
        let lookup: Vec<Option<(&Table, usize)>> = self
            .columns
            .iter()
            .map(|c| {
                let profile = c.profile();
                locate(extraction, profile.role, &profile.name)
            })
            .collect();
        let mut score_max: Option<f64> = None;
        // No usable response (an error, or nothing to read): outputs are not missing values of
        // the model, so output columns are left out of validation and windows for this exchange.
        let outputs_present = !extraction.outputs.rows.is_empty();
        for row in 0..rows {
            let mut row_score: Option<f64> = None;
            for (index, column) in self.columns.iter_mut().enumerate() {
                let profile = &column.reference.columns[column.index];
                // Labels come later, through feedback (`ingest_labels`).
                if profile.role == Role::Label || profile.role == Role::Output && !outputs_present {
                    continue;
                }
                let cell = lookup[index]
                    .and_then(|(table, at)| table.rows.get(row).map(|cells| &cells[at]))
                    .unwrap_or(&Cell::Missing);
                let status = validate(cell, profile.kind, Some(profile));
                column.pending_statuses[status.index()] += 1;
                if status != Status::Ok && findings.issues.len() < MAX_ISSUES_PER_RECORD {
                    findings.issues.push(Issue {
                        row,
                        column: profile.name.clone(),
                        issue: status.as_str(),
                    });
                }
                let bin = column.window.add(slot, cell);
                if let Some(pending) = column.pending_bins.get_mut(bin) {
                    *pending += 1;
                }
                if profile.role == Role::Input
                    && let (Some(x), Some(numeric)) = (number(cell), profile.numeric.as_ref())
                {
                    let score = stats::modified_z_score(
                        x,
                        numeric.median,
                        numeric.mad,
                        numeric.mean_abs_deviation,
                    );
                    if score.is_finite() || score == f64::INFINITY {
                        row_score = Some(row_score.map_or(score, |s: f64| s.max(score)));
                    }
                }
            }
            if let Some(score) = row_score {
                score_max = Some(score_max.map_or(score, |s: f64| s.max(score)));
                if score > self.config.outlier_threshold {
                    findings.outlier_rows.push(row);
                    self.outlier_rows.increment(1);
                }
            }
            self.update_row_detectors(extraction, row, facts.time);
            self.count_row(slot, facts.time);
        }
        findings.outlier_score_max = score_max;
        for column in &mut self.columns {
            column.flush_counts();
        }
        self.window_rows_gauge.set(self.rows_in_window() as f64);
        findings
    }

    fn count_request_issue(&self, issue: &str) {
        if let Some(index) = REQUEST_ISSUES.iter().position(|i| *i == issue) {
            self.request_issues[index].increment(1);
        }
    }

    /// Takes joined labels (one per row) into the reference's `label` column: validation counts
    /// and the window, so label shift is judged like any column. No label column, no effect.
    pub fn ingest_labels(&mut self, labels: &[Cell], time: SystemTime) {
        if !matches!(self.reference, ReferenceState::Ready { .. }) {
            return;
        }
        self.advance_clock(time);
        let slot = self.current_slot();
        for column in &mut self.columns {
            let profile = &column.reference.columns[column.index];
            if profile.role != Role::Label {
                continue;
            }
            for cell in labels {
                let status = validate(cell, profile.kind, Some(profile));
                column.pending_statuses[status.index()] += 1;
                let bin = column.window.add(slot, cell);
                if let Some(pending) = column.pending_bins.get_mut(bin) {
                    *pending += 1;
                }
            }
            column.flush_counts();
        }
    }

    fn learn(&mut self, extraction: &Extraction, findings: &mut MonitorFindings) {
        let ReferenceState::Learning { builder, target } = &mut self.reference else {
            return;
        };
        if builder.columns().is_empty() {
            let columns = extraction
                .inputs
                .columns
                .iter()
                .chain(&extraction.outputs.columns)
                .take(self.config.max_columns)
                .map(|c| ColumnInput {
                    name: c.name.clone(),
                    role: c.role,
                    kind: if c.categorical {
                        Kind::Categorical
                    } else {
                        Kind::Numeric
                    },
                })
                .collect();
            *builder = ProfileBuilder::new(columns);
        }
        let columns: Vec<(Role, String, Kind)> = builder
            .columns()
            .iter()
            .map(|c| (c.role, c.name.clone(), c.kind))
            .collect();
        let rows = extraction
            .inputs
            .rows
            .len()
            .max(extraction.outputs.rows.len());
        let target = *target;
        let mut learned_cells: Vec<Vec<Cell>> = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut cells = Vec::with_capacity(columns.len());
            for (role, name, kind) in &columns {
                let cell = locate(extraction, *role, name)
                    .and_then(|(table, at)| table.rows.get(row).map(|cells| cells[at].clone()))
                    .unwrap_or(Cell::Missing);
                let status = validate(&cell, *kind, None);
                if status != Status::Ok && findings.issues.len() < MAX_ISSUES_PER_RECORD {
                    findings.issues.push(Issue {
                        row,
                        column: name.clone(),
                        issue: status.as_str(),
                    });
                }
                if let Some(counters) = self.status_counters(*role, name) {
                    counters[status.index()].increment(1);
                }
                cells.push(cell);
            }
            learned_cells.push(cells);
        }
        let ReferenceState::Learning { builder, .. } = &mut self.reference else {
            return;
        };
        // Rows of a failed exchange (no outputs) would teach the reference missing predictions.
        let expects_outputs = builder.columns().iter().any(|c| c.role == Role::Output);
        if expects_outputs && extraction.outputs.rows.is_empty() {
            return;
        }
        // Rows past the target (in the exchange that completes the reference) are neither learned
        // nor windowed: the window starts with the next exchange.
        for cells in learned_cells {
            if (builder.rows() as usize) < target {
                builder.push(&cells);
            }
        }
        if builder.rows() as usize >= target {
            let builder = std::mem::replace(builder, ProfileBuilder::new(Vec::new()));
            let profile = builder.finish(
                Some(self.name.clone()),
                "learned".to_owned(),
                self.config.bins,
                self.config.top_k,
            );
            tracing::info!(model = %self.name, rows = profile.rows, "reference learned from live traffic");
            self.set_reference(profile);
        }
    }

    fn update_exchange_detectors(&mut self, facts: ExchangeFacts) {
        for index in 0..self.detectors.len() {
            let value = match self.detectors[index].signal.as_str() {
                "latency" => facts.latency.as_secs_f64(),
                "error_rate" => f64::from(u8::from(facts.error)),
                _ => continue,
            };
            self.feed_detector(index, value, facts.time);
        }
    }

    fn update_row_detectors(&mut self, extraction: &Extraction, row: usize, time: SystemTime) {
        for index in 0..self.detectors.len() {
            let value = match self.detectors[index].signal.as_str() {
                "prediction_mean" => extraction
                    .outputs
                    .rows
                    .get(row)
                    .and_then(|cells| cells.first())
                    .and_then(number),
                signal => signal.strip_prefix("column:").and_then(|name| {
                    locate(extraction, Role::Input, name).and_then(|(table, at)| {
                        table.rows.get(row).and_then(|cells| number(&cells[at]))
                    })
                }),
            };
            if let Some(value) = value {
                self.feed_detector(index, value, time);
            }
        }
    }

    fn feed_detector(&mut self, index: usize, value: f64, time: SystemTime) {
        let detector = &mut self.detectors[index];
        detector.observations += 1;
        if detector.detector.update(value) {
            detector.change_points.increment(1);
            self.change_points.push(ChangePoint {
                signal: detector.signal.clone(),
                detector: detector.detector.name(),
                time: timestamp(time),
                at: detector.observations,
            });
            if self.change_points.len() > 100 {
                self.change_points.remove(0);
            }
        }
    }

    fn slot_length(&self) -> Option<Duration> {
        match self.config.window {
            WindowConfig::Sliding { duration, slots } => Some(duration / slots as u32),
            WindowConfig::Tumbling { .. } => None,
        }
    }

    fn current_slot(&self) -> usize {
        match self.slot_clock {
            Some(clock) => (clock % self.slot_rows.len() as u64) as usize,
            None => 0,
        }
    }

    /// Sliding windows: moves the window to `now` without a row (the admin API and `/metrics`
    /// call it, so a model without traffic does not keep reporting rows older than the window).
    /// Tumbling windows are moved by rows only.
    pub fn advance_to(&mut self, now: SystemTime) {
        if self.slot_clock.is_some() {
            self.advance_clock(now);
            self.window_rows_gauge.set(self.rows_in_window() as f64);
        }
    }

    /// The time the window covers from: for a sliding window the start of its oldest slot, for a
    /// tumbling window its first row.
    fn window_start(&self) -> Option<SystemTime> {
        match (self.slot_length(), self.slot_clock) {
            (Some(length), Some(clock)) => {
                let first_slot = (clock + 1).saturating_sub(self.slot_rows.len() as u64);
                let nanos = length.as_nanos().saturating_mul(u128::from(first_slot));
                Some(UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
            }
            _ => self.window_start,
        }
    }

    /// Sliding windows: moves the ring to `time`, emptying expired slots, and refreshes the
    /// report whenever the window moved.
    fn advance_clock(&mut self, time: SystemTime) {
        let Some(length) = self.slot_length() else {
            return;
        };
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let clock = (since_epoch.as_nanos() / length.as_nanos().max(1)) as u64;
        let slots = self.slot_rows.len() as u64;
        match self.slot_clock {
            None => self.slot_clock = Some(clock),
            Some(previous) if clock > previous => {
                self.publish(false, true);
                let expired = (clock - previous).min(slots);
                for step in 1..=expired {
                    let slot = ((previous + step) % slots) as usize;
                    self.slot_rows[slot] = 0;
                    for column in &mut self.columns {
                        column.window.clear(slot, previous + step);
                    }
                }
                self.slot_clock = Some(clock);
                self.window_index = clock;
            }
            Some(_) => {}
        }
    }

    fn count_row(&mut self, slot: usize, time: SystemTime) {
        self.window_start.get_or_insert(time);
        self.window_end = Some(time);
        self.slot_rows[slot] += 1;
        self.window_rows += 1;
        if let WindowConfig::Tumbling { rows } = self.config.window
            && self.window_rows >= rows as u64
        {
            self.publish(true, true);
            self.window_index += 1;
            self.window_rows = 0;
            self.window_start = None;
            self.window_end = None;
            self.slot_rows[0] = 0;
            let generation = self.window_index;
            for column in &mut self.columns {
                column.window.clear(0, generation);
            }
        }
    }

    fn rows_in_window(&self) -> u64 {
        self.slot_rows.iter().sum()
    }

    /// The report of the window as it is now (`complete` for a closed tumbling window).
    pub fn report(&self, complete: bool) -> Option<ModelReport> {
        let ReferenceState::Ready { profile } = &self.reference else {
            return None;
        };
        let columns: Vec<ColumnReport> = self
            .columns
            .iter()
            .map(|column| {
                let (counts, sample, exact) = column.window.merged();
                drift::column_report(
                    column.profile(),
                    &column.window.layout,
                    &counts,
                    &sample,
                    exact,
                    &self.config,
                )
            })
            .collect();
        let (share, drifted) = drift::dataset_drift(&columns, self.config.dataset_drift_share);
        let input_columns = columns.iter().filter(|c| c.role == Role::Input).count();
        let drifted_columns = columns
            .iter()
            .filter(|c| c.role == Role::Input && c.drifted)
            .count();
        Some(ModelReport {
            model: self.name.clone(),
            reference: ReferenceInfo {
                source: profile.source.clone(),
                rows: profile.rows,
            },
            window: WindowInfo {
                kind: match self.config.window {
                    WindowConfig::Tumbling { .. } => "tumbling",
                    WindowConfig::Sliding { .. } => "sliding",
                },
                index: self.window_index,
                rows: self.rows_in_window(),
                start: self.window_start().map(timestamp),
                end: self.window_end.map(timestamp),
                complete,
            },
            dataset: DatasetInfo {
                drift_share: share,
                threshold: self.config.dataset_drift_share,
                drifted,
                input_columns,
                drifted_columns,
            },
            columns,
        })
    }

    /// Computes the report, exports it as gauges, and keeps it as the last one.
    fn publish(&mut self, complete: bool, keep: bool) {
        let Some(report) = self.report(complete) else {
            return;
        };
        for (column, state) in report.columns.iter().zip(&self.columns) {
            for (name, gauge) in &state.scores {
                if let Some((_, value)) = column
                    .statistics
                    .present()
                    .into_iter()
                    .find(|(n, _)| n == name)
                {
                    gauge.set(value);
                } else {
                    // No value in this window (no labels, no responses, too few numbers): NaN,
                    // not the last window's value, which would read as still current.
                    gauge.set(f64::NAN);
                }
            }
            state.drifted.set(f64::from(u8::from(column.drifted)));
        }
        self.dataset_share.set(report.dataset.drift_share);
        self.dataset_drifted
            .set(f64::from(u8::from(report.dataset.drifted)));
        if keep {
            if self.keep_closed {
                self.closed.push(report.clone());
            }
            self.last_report = Some(report);
        }
    }
}

impl ColumnState {
    fn profile(&self) -> &ColumnProfile {
        &self.reference.columns[self.index]
    }

    /// Adds the exchange's counts to the Prometheus counters: one atomic add per status and bin
    /// touched, not one per value.
    fn flush_counts(&mut self) {
        if let Some(counters) = &self.statuses {
            for (counter, pending) in counters.iter().zip(&mut self.pending_statuses) {
                if *pending > 0 {
                    counter.increment(std::mem::take(pending));
                }
            }
        }
        self.pending_statuses = [0; Status::ALL.len()];
        for (index, pending) in self.pending_bins.iter_mut().enumerate() {
            if *pending > 0 {
                if let Some(counter) = self.bin_rows.get(index) {
                    counter.increment(*pending);
                }
                *pending = 0;
            }
        }
    }
}

/// Where a column is in an extraction: the table and the column index.
fn locate<'a>(extraction: &'a Extraction, role: Role, name: &str) -> Option<(&'a Table, usize)> {
    let table = match role {
        Role::Input => &extraction.inputs,
        Role::Output => &extraction.outputs,
        Role::Label => return None,
    };
    table
        .columns
        .iter()
        .position(|c| c.name == name)
        .map(|at| (table, at))
}

fn seed_for(model: &str, role: Role, column: &str, index: usize) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in model
        .bytes()
        .chain([0])
        .chain(role.as_str().bytes())
        .chain([0])
        .chain(column.bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^ index as u64
}

pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}
