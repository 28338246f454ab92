//! One Prometheus registry per driftwatch instance.
//!
//! The registry is not installed as the global `metrics` recorder: each instance owns its own, so
//! several instances in one process (tests, the demo) never mix their counters. Modules register
//! their handles once at start-up and keep them; the request path only increments atomics.

use std::sync::Arc;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Histogram bucket boundaries shared by every histogram of a kind.
pub mod buckets {
    /// Latency in seconds: 100µs to 60s.
    pub const LATENCY_SECONDS: &[f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 60.0,
    ];
    /// Propensities, in (0, 1].
    pub const PROPENSITY: &[f64] = &[
        0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0,
    ];
    /// Feedback delays (prediction to label) in seconds: 1 s to 30 days, since labels come
    /// seconds (a click) to weeks (a chargeback) after the prediction.
    pub const FEEDBACK_DELAY_SECONDS: &[f64] = &[
        1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
        86400.0, 172800.0, 604800.0, 1209600.0, 2592000.0,
    ];
    /// Payload sizes in bytes: 256B to 64MiB.
    pub const SIZE_BYTES: &[f64] = &[
        256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
        67108864.0,
    ];
}

/// Metric names whose histograms are sizes rather than latencies.
const SIZE_HISTOGRAM_SUFFIX: &str = "_bytes";

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static METADATA: Metadata<'static> = Metadata::new("driftwatch", metrics::Level::INFO, None);

impl Registry {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(buckets::LATENCY_SECONDS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Suffix(SIZE_HISTOGRAM_SUFFIX.to_owned()),
                    buckets::SIZE_BYTES,
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("driftwatch_propensity".to_owned()),
                    buckets::PROPENSITY,
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("driftwatch_feedback_delay_seconds".to_owned()),
                    buckets::FEEDBACK_DELAY_SECONDS,
                )
            })
            .expect("bucket lists are static and non-empty")
            .build_recorder();
        let handle = recorder.handle();
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        Self {
            inner: Arc::new(Inner {
                recorder,
                handle,
                process,
            }),
        }
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.inner
            .recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.inner
            .recorder
            .register_gauge(&key(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.inner
            .recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    pub fn describe_counter(&self, name: &'static str, help: &'static str) {
        self.inner.recorder.describe_counter(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
    }

    pub fn describe_gauge(&self, name: &'static str, help: &'static str) {
        self.inner.recorder.describe_gauge(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
    }

    pub fn describe_histogram(&self, name: &'static str, unit: Unit, help: &'static str) {
        self.inner.recorder.describe_histogram(
            KeyName::from_const_str(name),
            Some(unit),
            SharedString::const_str(help),
        );
    }

    /// The Prometheus text exposition, process metrics refreshed first.
    pub fn render(&self) -> String {
        metrics::with_local_recorder(&self.inner.recorder, || self.inner.process.collect());
        self.inner.handle.render()
    }

    /// Folds recent histogram samples into buckets; call periodically so memory stays flat
    /// between scrapes.
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(name, value)| Label::new(*name, (*value).to_owned()))
        .collect();
    Key::from_parts(name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_independent_and_histograms_have_buckets() {
        let first = Registry::new();
        let second = Registry::new();
        first
            .counter("driftwatch_test_total", &[("kind", "a")])
            .increment(3);
        first
            .histogram("driftwatch_test_duration_seconds", &[])
            .record(0.0003);
        first
            .histogram("driftwatch_test_size_bytes", &[])
            .record(300.0);
        let text = first.render();
        assert!(
            text.contains("driftwatch_test_total{kind=\"a\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("driftwatch_test_duration_seconds_bucket{le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("driftwatch_test_size_bytes_bucket{le=\"1024\"} 1"),
            "{text}"
        );
        first
            .histogram("driftwatch_feedback_delay_seconds", &[])
            .record(3000.0);
        let text = first.render();
        assert!(
            text.contains("driftwatch_feedback_delay_seconds_bucket{le=\"3600\"} 1")
                && text.contains("driftwatch_feedback_delay_seconds_bucket{le=\"1800\"} 0")
                && text.contains("driftwatch_feedback_delay_seconds_bucket{le=\"2592000\"} 1"),
            "feedback delays are bucketed up to 30 days: {text}"
        );
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(!second.render().contains("driftwatch_test_total"));
    }
}
