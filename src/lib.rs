//! driftwatch: a sidecar reverse proxy for ML model servers.
//!
//! The tree follows the data flow:
//! - request path: [`server`] (listener) → [`proxy`] (stages of one exchange) → [`upstream`]
//!   (pooled client);
//! - the boundary: [`tap`] (one bounded, non-blocking hand-off of an [`tap::Observation`] per
//!   exchange) → the analysis worker;
//! - analysis path: [`record`] (sampling, record, redaction) → [`sinks`] (stdout, file, http,
//!   kafka; delivery driver and disk spool); [`monitor`] (statistics, change detectors);
//! - around them: [`config`], [`telemetry`] (metrics registry, logging), [`admin`] (the admin
//!   listener), [`lifecycle`] (shutdown phases), [`app`] (assembly), [`cli`], [`demo`].
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
