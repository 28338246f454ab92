//! Recording: which exchanges are recorded ([`sampling`]), what a record holds ([`build`], with
//! [`body`] encoding and [`redact`]ion), and the hand-off to the sinks.
//!
//! The [`Recorder`] is the last analyzer on the analysis worker, so it sees what the others found
//! (outliers force recording). Records are built and serialized once, then shared by every sink.

pub mod body;
pub mod build;
pub mod redact;
pub mod sampling;

use std::time::Duration;

use metrics::Counter;

pub use build::RecordLine;

use self::redact::Redactor;
use self::sampling::SampleReason;
use crate::config::RecordingConfig;
use crate::sinks::SinkSet;
use crate::tap::{Analyzer, Findings, Observation};
use crate::telemetry::Registry;

const SAMPLED_TOTAL: &str = "driftwatch_records_sampled_total";
/// How long shutdown waits for the sinks to deliver or spool what they hold.
const SINK_CLOSE_DEADLINE: Duration = Duration::from_secs(15);

pub struct Recorder {
    config: RecordingConfig,
    redactor: Redactor,
    sinks: Option<SinkSet>,
    sampled: [Counter; SampleReason::ALL.len()],
}

impl Recorder {
    pub fn new(config: RecordingConfig, sinks: SinkSet, registry: &Registry) -> Self {
        registry.describe_counter(
            SAMPLED_TOTAL,
            "Exchanges recorded, by why they were recorded.",
        );
        Self {
            redactor: Redactor::new(&config.redaction),
            config,
            sinks: Some(sinks),
            sampled: SampleReason::ALL
                .map(|reason| registry.counter(SAMPLED_TOTAL, &[("reason", reason.as_str())])),
        }
    }
}

impl Analyzer for Recorder {
    fn observe(&mut self, observation: &Observation, findings: &mut Findings) {
        let Some(sinks) = &self.sinks else {
            return;
        };
        let Some(reason) = sampling::decide(&self.config, observation, findings) else {
            return;
        };
        let index = SampleReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.sampled[index].increment(1);
        let record = build::build(observation, findings, reason, &self.config, &self.redactor);
        sinks.offer(&record);
    }

    fn finish(&mut self) {
        if let Some(sinks) = self.sinks.take() {
            sinks.close(SINK_CLOSE_DEADLINE);
        }
    }
}
