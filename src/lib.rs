//! driftwatch: a sidecar reverse proxy for ML model servers.
//!
//! The tree follows the data flow (docs/architecture.md draws it):
//! - request path: [`server`] (listener) → [`proxy`] (stages of one exchange, body capture, the
//!   exploration rewrite on exploration routes) → [`upstream`] (pooled client);
//! - the boundary: [`tap`] (one bounded, non-blocking hand-off of an [`tap::Observation`] per
//!   exchange) → the analysis worker;
//! - analysis path: [`extract`] (protocol adapters → rows) → [`monitor`] (validation, outliers,
//!   windows, drift statistics, change detectors) → [`feedback`] (pending predictions, label
//!   join, live performance, concept drift); [`explore`] (strategies, propensities, diversity);
//!   [`record`] (sampling, record, redaction) → [`sinks`] (stdout, file, http, kafka; delivery
//!   driver and disk spool);
//! - offline: [`profile`] (reference profiles), [`replay`] (detectors over a records file),
//!   [`explore::export`] (VW and OBP exports);
//! - around them: [`config`], [`telemetry`] (metrics registry, logging), [`admin`] (the admin
//!   listener), [`lifecycle`] (shutdown phases), [`background`] (niced threads for analysis and
//!   sinks), [`app`] (assembly), [`cli`], [`demo`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod background;
pub mod cli;
pub mod config;
pub mod demo;
pub mod explore;
pub mod extract;
pub mod feedback;
pub mod lifecycle;
pub mod monitor;
pub mod profile;
pub mod proxy;
pub mod record;
pub mod replay;
pub mod server;
pub mod sinks;
pub mod tap;
pub mod telemetry;
pub mod upstream;
