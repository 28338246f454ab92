//! The delivery driver shared by the network sinks: batches records from the sink's queue, hands
//! each batch to a [`Destination`], retries with exponential backoff and jitter, and — when a
//! spool is configured — moves records to the disk spool while the destination is down and
//! replays them, oldest first, when it is back.
//!
//! Ordering: while the spool holds records, new records are appended behind them, so delivery
//! order is arrival order. Delivery is at-least-once: a batch whose acknowledgement was lost is
//! sent again; the record id makes it idempotent downstream.
//!
//! Each driver runs on its own thread with a single-threaded runtime, so the spool's synchronous
//! file I/O and a stuck destination never touch the proxy's runtime.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use rand::RngExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::SinkMetrics;
use super::spool::{Spool, SpoolError};
use crate::config::recording::DeliveryConfig;
use crate::record::RecordLine;

/// A failed delivery: how many leading records of the batch did get through, and whether trying
/// again can help (a collector that is down) or not (a collector that rejects the payload).
#[derive(Debug)]
pub struct Failure {
    pub delivered: usize,
    pub retryable: bool,
    pub message: String,
}

impl Failure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            delivered: 0,
            retryable: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            delivered: 0,
            retryable: false,
            message: message.into(),
        }
    }
}

/// Where a network sink delivers.
pub trait Destination: Send + 'static {
    /// Delivers the batch in order.
    fn deliver(&mut self, batch: &[RecordLine]) -> impl Future<Output = Result<(), Failure>>;
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling up to `max`.
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let factor: f64 = rand::rng().random_range(0.5..=1.0);
        ceiling.mul_f64(factor)
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

pub struct Driver<D> {
    receiver: mpsc::Receiver<RecordLine>,
    destination: D,
    batch_records: usize,
    batch_delay: Duration,
    timeout: Duration,
    backoff: Backoff,
    spool: Option<Spool>,
    metrics: SinkMetrics,
    /// Every sender is gone and the queue is drained: finish what is held, then stop.
    closed: bool,
}

impl<D: Destination> Driver<D> {
    pub fn new(
        receiver: mpsc::Receiver<RecordLine>,
        destination: D,
        config: &DeliveryConfig,
        metrics: SinkMetrics,
    ) -> Result<Self, SpoolError> {
        let spool = match &config.spool {
            Some((dir, max_bytes)) => Some(Spool::open(dir, *max_bytes)?),
            None => None,
        };
        let driver = Self {
            receiver,
            destination,
            batch_records: config.batch_records,
            batch_delay: config.batch_delay,
            timeout: config.timeout,
            backoff: Backoff::new(config.retry_initial, config.retry_max),
            spool,
            metrics,
            closed: false,
        };
        driver.update_spool_gauge();
        Ok(driver)
    }

    /// Runs the driver to completion on a runtime of its own (call on a dedicated thread).
    pub fn run_on_own_runtime(self) {
        crate::background::lower_current_thread_priority();
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(self.run()),
            Err(error) => tracing::error!(%error, "sink cannot start its runtime"),
        }
    }

    pub async fn run(mut self) {
        loop {
            if self.spool_pending() {
                if !self.replay_from_spool().await {
                    break;
                }
                continue;
            }
            let Some(batch) = self.gather().await else {
                break;
            };
            self.deliver_fresh(batch).await;
        }
        if let Some(spool) = &mut self.spool
            && let Err(error) = spool.sync()
        {
            tracing::warn!(%error, "cannot sync the spool at shutdown");
        }
        self.update_spool_gauge();
    }

    fn spool_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|spool| !spool.is_empty())
    }

    /// Waits for the first record, then fills the batch until it is full or `batch_delay` passes.
    async fn gather(&mut self) -> Option<Vec<RecordLine>> {
        if self.closed {
            return None;
        }
        let Some(first) = self.receiver.recv().await else {
            self.closed = true;
            return None;
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + self.batch_delay;
        while batch.len() < self.batch_records {
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Some(record) => batch.push(record),
                    None => {
                        self.closed = true;
                        break;
                    }
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.metrics.queue.set(self.receiver.len() as f64);
        Some(batch)
    }

    async fn attempt(&mut self, batch: &[RecordLine]) -> Result<(), Failure> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.destination.deliver(batch)).await
        {
            Ok(result) => result,
            Err(_) => Err(Failure::retryable(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        };
        match &result {
            Ok(()) => {
                self.metrics.delivered.increment(batch.len() as u64);
                self.metrics
                    .delivery
                    .record(started.elapsed().as_secs_f64());
                self.backoff.reset();
            }
            Err(failure) => {
                self.metrics.delivered.increment(failure.delivered as u64);
                tracing::warn!(
                    records = batch.len() - failure.delivered,
                    retryable = failure.retryable,
                    error = %failure.message,
                    "sink delivery failed"
                );
            }
        }
        result
    }

    /// A batch straight from the queue.
    async fn deliver_fresh(&mut self, batch: Vec<RecordLine>) {
        let failure = match self.attempt(&batch).await {
            Ok(()) => return,
            Err(failure) => failure,
        };
        let rest = &batch[failure.delivered..];
        if !failure.retryable {
            self.metrics.failed.increment(rest.len() as u64);
            return;
        }
        if self.spool.is_some() {
            self.spool_records(rest.iter().map(|r| r.line.clone()).collect());
            return;
        }
        self.retry_in_memory(rest.to_vec()).await;
    }

    /// Without a spool: keep the batch and retry it with backoff; meanwhile the queue fills and
    /// the recorder counts what overflows. At shutdown, one last attempt, then `failed`.
    async fn retry_in_memory(&mut self, mut batch: Vec<RecordLine>) {
        loop {
            let delay = self.backoff.next_delay();
            self.sleep_unless_closed(delay).await;
            let closing = self.receiver.is_closed();
            match self.attempt(&batch).await {
                Ok(()) => return,
                Err(failure) => {
                    batch.drain(..failure.delivered);
                    if !failure.retryable || closing {
                        self.metrics.failed.increment(batch.len() as u64);
                        return;
                    }
                }
            }
        }
    }

    async fn sleep_unless_closed(&mut self, delay: Duration) {
        let until = Instant::now() + delay;
        while Instant::now() < until && !self.receiver.is_closed() {
            let step = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            tokio::time::sleep(step).await;
        }
    }

    /// One replay step: move what is queued behind the spooled records, send the oldest batch.
    /// Returns false when the driver should stop (closing with the destination still down: the
    /// records stay spooled for the next start).
    async fn replay_from_spool(&mut self) -> bool {
        self.absorb_queue();
        let lines = match self
            .spool
            .as_mut()
            .map(|spool| spool.peek(self.batch_records))
        {
            Some(Ok(lines)) => lines,
            Some(Err(error)) => {
                tracing::error!(%error, "cannot read the spool; its records stay on disk");
                return false;
            }
            None => return true,
        };
        let batch: Vec<RecordLine> = lines.into_iter().filter_map(RecordLine::parse).collect();
        let peeked = batch.len();
        let (committed, retry) = match self.attempt(&batch).await {
            Ok(()) => (peeked, false),
            Err(failure) if !failure.retryable => {
                self.metrics
                    .failed
                    .increment((peeked - failure.delivered) as u64);
                (peeked, false)
            }
            Err(failure) => (failure.delivered, true),
        };
        if committed > 0 {
            if let Some(Err(error)) = self.spool.as_mut().map(|spool| spool.commit(committed)) {
                tracing::warn!(%error, "cannot commit the spool cursor; records may be sent again");
            }
            self.update_spool_gauge();
        }
        if retry {
            if self.closed || self.receiver.is_closed() {
                // Shutting down with the destination still failing: what was queued while this
                // attempt ran goes to the spool too, not lost.
                self.absorb_queue();
                return false;
            }
            let delay = self.backoff.next_delay();
            self.wait_absorbing(delay).await;
        }
        true
    }

    /// Sleeps for `delay` while moving newly queued records into the spool, so the queue never
    /// fills while the destination is down.
    async fn wait_absorbing(&mut self, delay: Duration) {
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                received = self.receiver.recv(), if !self.closed => match received {
                    Some(record) => {
                        let mut lines = vec![record.line];
                        while let Ok(more) = self.receiver.try_recv() {
                            lines.push(more.line);
                        }
                        self.spool_records(lines);
                    }
                    None => {
                        self.closed = true;
                        return;
                    }
                },
            }
        }
    }

    fn absorb_queue(&mut self) {
        let mut lines = Vec::new();
        while let Ok(record) = self.receiver.try_recv() {
            lines.push(record.line);
        }
        if !lines.is_empty() {
            self.spool_records(lines);
        }
    }

    fn spool_records(&mut self, lines: Vec<Bytes>) {
        let Some(spool) = &mut self.spool else {
            return;
        };
        let total = lines.len();
        let appended = match spool.append(&lines) {
            Ok(appended) => appended,
            Err((appended, error)) => {
                tracing::warn!(%error, "cannot write to the spool");
                appended
            }
        };
        self.metrics.spooled.increment(appended as u64);
        self.metrics
            .dropped_spool_full
            .increment((total - appended) as u64);
        self.metrics.queue.set(self.receiver.len() as f64);
        self.update_spool_gauge();
    }

    fn update_spool_gauge(&self) {
        if let Some(spool) = &self.spool {
            self.metrics.spool_bytes.set(spool.bytes() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        let ceilings = [100, 200, 400, 800, 800, 800];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                *delay <= ceiling && *delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
