//! Logging set-up for the binary: JSON or text lines on stderr, level from `--log-level`.
//!
//! Library code logs through `tracing`; only the command line installs a subscriber, so tests and
//! embedders choose their own.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global subscriber. `level` is a `tracing` filter (`info`, `debug`,
/// `driftwatch=debug,hyper=warn`); an invalid one is reported by the caller as a usage error.
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("--log-level: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}
