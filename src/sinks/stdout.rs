//! The `stdout` sink: JSON Lines on standard output, flushed whenever the queue runs dry.

use std::io::Write;

use tokio::sync::mpsc;

use super::SinkMetrics;
use crate::record::RecordLine;

pub fn run(mut receiver: mpsc::Receiver<RecordLine>, metrics: SinkMetrics) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    crate::background::lower_current_thread_priority();
    while let Some(record) = receiver.blocking_recv() {
        let mut pending = vec![record];
        while let Ok(more) = receiver.try_recv() {
            pending.push(more);
        }
        metrics.queue.set(receiver.len() as f64);
        let started = std::time::Instant::now();
        let written = pending.iter().try_for_each(|record| {
            out.write_all(&record.line)?;
            out.write_all(b"\n")
        });
        match written.and_then(|()| out.flush()) {
            Ok(()) => {
                metrics.delivered.increment(pending.len() as u64);
                metrics.delivery.record(started.elapsed().as_secs_f64());
            }
            Err(error) => {
                tracing::warn!(%error, "stdout sink cannot write");
                metrics.failed.increment(pending.len() as u64);
            }
        }
    }
}
