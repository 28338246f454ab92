//! Telemetry: the per-process metrics registry (Prometheus text exposition) and logging.

pub mod logging;
mod registry;

pub use registry::{Registry, buckets};
