//! Record sinks: where records go after the recorder builds them.
//!
//! Each sink runs on its own thread behind its own bounded queue, so a slow disk or a dead
//! collector only ever fills that sink's queue: the recorder hands records over with `try_send`
//! and counts what does not fit (`dropped_queue_full`). The network sinks (`http`, `kafka`) share
//! one delivery driver ([`delivery`]): batching, retry with backoff and jitter, and the disk
//! [`spool`].
//!
//! Every record offered to a sink ends in exactly one of `delivered`, `dropped_queue_full`,
//! `dropped_spool_full` or `failed` (`driftwatch_records_total{sink,outcome}`); `spooled` counts
//! records written to the spool on their way (they are later `delivered` or stay spooled across a
//! restart).

pub mod delivery;
mod file;
pub mod http;
pub mod kafka;
pub mod spool;
mod stdout;

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Unit};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::SinkConfig;
use crate::config::recording::SinkKind;
use crate::record::RecordLine;
use crate::telemetry::Registry;

const RECORDS_TOTAL: &str = "driftwatch_records_total";
const QUEUE_RECORDS: &str = "driftwatch_sink_queue_records";
const SPOOL_BYTES: &str = "driftwatch_sink_spool_bytes";
const DELIVERY_SECONDS: &str = "driftwatch_sink_delivery_seconds";

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {sink}: {message}")]
    Start { sink: String, message: String },
}

/// The handles of one sink's metrics, registered once.
#[derive(Clone)]
pub struct SinkMetrics {
    pub delivered: Counter,
    pub spooled: Counter,
    pub dropped_queue_full: Counter,
    pub dropped_spool_full: Counter,
    pub failed: Counter,
    pub queue: Gauge,
    pub spool_bytes: Gauge,
    pub delivery: Histogram,
}

impl SinkMetrics {
    pub fn new(registry: &Registry, sink: &str) -> Self {
        registry.describe_counter(RECORDS_TOTAL, "Records per sink by outcome: delivered, spooled (on the way), dropped_queue_full, dropped_spool_full, failed.");
        registry.describe_gauge(
            QUEUE_RECORDS,
            "Records waiting in the sink's in-memory queue.",
        );
        registry.describe_gauge(SPOOL_BYTES, "Bytes in the sink's disk spool.");
        registry.describe_histogram(
            DELIVERY_SECONDS,
            Unit::Seconds,
            "Time of one successful delivery (a write, a batch POST, a produce).",
        );
        let outcome = |outcome: &str| {
            registry.counter(RECORDS_TOTAL, &[("sink", sink), ("outcome", outcome)])
        };
        Self {
            delivered: outcome("delivered"),
            spooled: outcome("spooled"),
            dropped_queue_full: outcome("dropped_queue_full"),
            dropped_spool_full: outcome("dropped_spool_full"),
            failed: outcome("failed"),
            queue: registry.gauge(QUEUE_RECORDS, &[("sink", sink)]),
            spool_bytes: registry.gauge(SPOOL_BYTES, &[("sink", sink)]),
            delivery: registry.histogram(DELIVERY_SECONDS, &[("sink", sink)]),
        }
    }
}

struct SinkHandle {
    name: String,
    sender: mpsc::Sender<RecordLine>,
    metrics: SinkMetrics,
    thread: JoinHandle<()>,
    /// Signals the end of the thread, so closing can wait with a deadline.
    done: std_mpsc::Receiver<()>,
}

/// Every configured sink, fed by the recorder.
pub struct SinkSet {
    sinks: Vec<SinkHandle>,
}

impl SinkSet {
    /// Opens every sink (files, spools) and starts its thread. Fails when a sink cannot start.
    pub fn start(configs: &[SinkConfig], registry: &Registry) -> Result<Self, SinkError> {
        let mut sinks = Vec::with_capacity(configs.len());
        for config in configs {
            let metrics = SinkMetrics::new(registry, &config.name);
            let (sender, receiver) = mpsc::channel(config.queue_records);
            let (done_sender, done) = std_mpsc::channel();
            let start_error = |message: String| SinkError::Start {
                sink: config.name.clone(),
                message,
            };
            let thread_metrics = metrics.clone();
            let name = format!("driftwatch-sink-{}", config.name);
            let body: Box<dyn FnOnce() + Send> = match &config.kind {
                SinkKind::Stdout => Box::new(move || stdout::run(receiver, thread_metrics)),
                SinkKind::File {
                    path,
                    max_bytes,
                    max_files,
                } => {
                    let writer = file::RotatingFile::open(path.clone(), *max_bytes, *max_files)
                        .map_err(|e| start_error(format!("cannot open {}: {e}", path.display())))?;
                    Box::new(move || file::run(receiver, writer, thread_metrics))
                }
                SinkKind::Http {
                    url,
                    format,
                    delivery,
                    headers,
                    ca_file,
                } => {
                    let destination = http::HttpDestination::new(
                        url.clone(),
                        *format,
                        headers.clone(),
                        ca_file.as_deref(),
                        delivery.timeout,
                    )
                    .map_err(start_error)?;
                    let driver =
                        delivery::Driver::new(receiver, destination, delivery, thread_metrics)
                            .map_err(|e| start_error(e.to_string()))?;
                    Box::new(move || driver.run_on_own_runtime())
                }
                SinkKind::Kafka {
                    brokers,
                    topic,
                    delivery,
                } => {
                    let destination = kafka::KafkaDestination::new(
                        brokers.clone(),
                        topic.clone(),
                        delivery.timeout,
                    );
                    let driver =
                        delivery::Driver::new(receiver, destination, delivery, thread_metrics)
                            .map_err(|e| start_error(e.to_string()))?;
                    Box::new(move || driver.run_on_own_runtime())
                }
            };
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    body();
                    let _ = done_sender.send(());
                })
                .map_err(|e| start_error(format!("cannot start its thread: {e}")))?;
            sinks.push(SinkHandle {
                name: config.name.clone(),
                sender,
                metrics,
                thread,
                done,
            });
        }
        Ok(Self { sinks })
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Hands a record to every sink without waiting; a full queue drops it for that sink, counted.
    pub fn offer(&self, record: &RecordLine) {
        for sink in &self.sinks {
            match sink.sender.try_send(record.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => sink.metrics.dropped_queue_full.increment(1),
                Err(TrySendError::Closed(_)) => sink.metrics.failed.increment(1),
            }
            let queued = sink.sender.max_capacity() - sink.sender.capacity();
            sink.metrics.queue.set(queued as f64);
        }
    }

    /// Closes the queues and waits until every sink has delivered or spooled what it holds, for
    /// at most `deadline` in all.
    pub fn close(self, deadline: Duration) {
        let until = Instant::now() + deadline;
        let mut waiting = Vec::new();
        for sink in self.sinks {
            let queue = sink.sender.max_capacity() - sink.sender.capacity();
            drop(sink.sender);
            waiting.push((sink.name, sink.done, sink.thread, queue));
        }
        for (name, done, thread, queue) in waiting {
            let left = until.saturating_duration_since(Instant::now());
            match done.recv_timeout(left) {
                Ok(()) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = thread.join();
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    // The process exits now: the log line is the count that survives it.
                    tracing::warn!(
                        sink = %name,
                        records_queued_at_shutdown = queue,
                        "sink did not finish before the shutdown deadline; what it still held (at most the records queued at shutdown plus the batch in flight) is lost"
                    );
                }
            }
        }
    }
}
