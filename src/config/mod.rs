//! Configuration: the file (`file`), its units (`units`), and the runtime types every other module
//! receives. Parsing happens once at start-up; after `Config::load` nothing re-reads the file.
//!
//! Precedence is flag > environment > file > default: the command line resolves flags and
//! `DRIFTWATCH_*` variables into [`Overrides`], which are applied to the parsed file before
//! validation, so an invalid override is reported with the key it overrides.

pub mod exploration;
pub mod feedback;
pub mod file;
pub mod monitoring;
pub mod recording;
pub mod units;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};

pub use feedback::FeedbackConfig;
pub use file::{ConfigFile, UpstreamProtocolName};
pub use monitoring::{ModelSpec, MonitoringConfig};
pub use recording::{RecordingConfig, SinkConfig};

/// A configuration problem. Every variant names the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file is not valid YAML or JSON: {0}")]
    Syntax(String),
    #[error("{key}: {message}")]
    Key { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Values from flags and `DRIFTWATCH_*` variables that win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub upstream: Option<String>,
}

impl ConfigFile {
    /// Parses YAML (or JSON, which YAML includes). Unknown keys fail with their dotted path.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        if value.is_null() {
            return Ok(Self::default());
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".to_owned()
            } else {
                key
            };
            ConfigError::key(key, e.into_inner().to_string())
        })
    }

    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(listen) = &overrides.listen {
            self.listen.clone_from(listen);
        }
        if let Some(listen) = &overrides.admin_listen {
            self.admin.listen.clone_from(listen);
        }
        if let Some(url) = &overrides.upstream {
            self.upstream.url.clone_from(url);
        }
    }

    /// The same config with secrets replaced by `"[REDACTED]"`: what `check-config` and
    /// `GET /api/v1/config` show. File paths are not secrets; credentials inside URLs are.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        copy.upstream.url = redact_url_password(&copy.upstream.url);
        copy.sinks = copy.sinks.iter().map(|sink| sink.redacted()).collect();
        copy
    }

    /// The effective config as YAML.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The JSON Schema of the config file, generated from these types.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(ConfigFile)).unwrap_or_default()
    }
}

pub(crate) fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:[REDACTED]@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// The validated configuration handed to the running process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub limits: Limits,
    pub shutdown: ShutdownConfig,
    pub analysis: AnalysisConfig,
    pub recording: RecordingConfig,
    pub sinks: Vec<SinkConfig>,
    pub models: Vec<ModelSpec>,
    pub monitoring: MonitoringConfig,
    pub feedback: FeedbackConfig,
    pub exploration: Vec<exploration::ExplorationRoute>,
    /// The file as given (with overrides applied), secrets redacted, for display.
    pub effective: Arc<ConfigFile>,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token for mutating endpoints, read from `admin.token_file` at start.
    pub token: Option<AdminToken>,
}

/// A secret that never prints.
#[derive(Clone)]
pub struct AdminToken(pub Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([REDACTED])")
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub scheme: Scheme,
    pub authority: Authority,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub protocol: UpstreamProtocol,
    pub health_path: Option<String>,
}

/// The protocol the upstream client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    H2c,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: NonZeroUsize,
    pub max_in_flight: NonZeroUsize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: NonZeroUsize,
}

#[derive(Debug, Clone, Copy)]
pub struct ShutdownConfig {
    pub delay: Duration,
    pub grace: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct AnalysisConfig {
    pub queue: NonZeroUsize,
}

impl Config {
    /// Bytes of each body captured for the analysis side: `recording.max_body_bytes` when
    /// something consumes captures (a sink, or monitoring), else 0 so the request path does no
    /// capture work.
    pub fn capture_limit(&self) -> usize {
        if self.sinks.is_empty() && !self.monitoring.enabled {
            0
        } else {
            self.recording.max_body_bytes
        }
    }

    /// Reads the file (if any), applies overrides, and validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut file = match path {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        file.apply(overrides);
        Self::from_file(file)
    }

    /// Validates a parsed file into runtime types.
    pub fn from_file(file: ConfigFile) -> Result<Self, ConfigError> {
        let listen = socket_addr("listen", &file.listen)?;
        let admin_listen = socket_addr("admin.listen", &file.admin.listen)?;
        let token = match &file.admin.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let upstream = upstream(&file.upstream)?;
        let limits = Limits {
            max_connections: non_zero("limits.max_connections", file.limits.max_connections)?,
            max_in_flight: non_zero("limits.max_in_flight", file.limits.max_in_flight)?,
            header_read_timeout: positive(
                "limits.header_read_timeout",
                file.limits.header_read_timeout.0,
            )?,
            max_header_bytes: usize::try_from(file.limits.max_header_bytes.0)
                .ok()
                .and_then(NonZeroUsize::new)
                .filter(|bytes| bytes.get() >= 1024 && bytes.get() <= 16 << 20)
                .ok_or_else(|| {
                    ConfigError::key(
                        "limits.max_header_bytes",
                        "expected a size between 1KiB and 16MiB",
                    )
                })?,
        };
        let shutdown = ShutdownConfig {
            delay: file.shutdown.delay.0,
            grace: file.shutdown.grace.0,
        };
        let analysis = AnalysisConfig {
            queue: non_zero("analysis.queue", file.analysis.queue)?,
        };
        Ok(Self {
            listen,
            admin: AdminConfig {
                listen: admin_listen,
                token,
            },
            upstream,
            limits,
            shutdown,
            analysis,
            recording: recording::validate_recording(&file.recording)?,
            sinks: recording::validate_sinks(&file.sinks)?,
            models: monitoring::validate_models(&file.models)?,
            monitoring: monitoring::validate_monitoring(&file.monitoring)?,
            feedback: feedback::validate_feedback(&file.feedback)?,
            exploration: exploration::validate_exploration(&file.exploration)?,
            effective: Arc::new(file.redacted()),
        })
    }
}

fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::key(
            key,
            format!("expected an address like 0.0.0.0:8100 or [::]:8100, got {text:?}"),
        )
    })
}

fn non_zero(key: &str, value: usize) -> Result<NonZeroUsize, ConfigError> {
    NonZeroUsize::new(value)
        .ok_or_else(|| ConfigError::key(key, "expected a positive integer, got 0"))
}

fn positive(key: &str, value: Duration) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        Err(ConfigError::key(key, "expected a duration above 0s"))
    } else {
        Ok(value)
    }
}

fn read_token(path: &str) -> Result<AdminToken, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::key(
            "admin.token_file",
            format!("cannot read token file {path}: {e}"),
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError::key(
            "admin.token_file",
            format!("token file {path} is empty"),
        ));
    }
    Ok(AdminToken(token.into()))
}

fn upstream(section: &file::UpstreamSection) -> Result<UpstreamConfig, ConfigError> {
    let expected = "expected a URL like http://127.0.0.1:8080";
    let uri: http::Uri = section.url.parse().map_err(|_| {
        ConfigError::key(
            "upstream.url",
            format!("{expected}, got {:?}", redact_url_password(&section.url)),
        )
    })?;
    let scheme = uri.scheme().cloned().ok_or_else(|| {
        ConfigError::key(
            "upstream.url",
            format!("{expected} (the scheme is missing)"),
        )
    })?;
    if scheme != Scheme::HTTP {
        return Err(ConfigError::key(
            "upstream.url",
            format!("scheme {scheme} is not supported yet; expected http"),
        ));
    }
    let authority = uri.authority().cloned().ok_or_else(|| {
        ConfigError::key("upstream.url", format!("{expected} (the host is missing)"))
    })?;
    if authority.as_str().contains('@') {
        return Err(ConfigError::key(
            "upstream.url",
            "credentials in the upstream URL are not supported",
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(ConfigError::key(
            "upstream.url",
            "expected a base URL without path or query; request paths are forwarded unchanged",
        ));
    }
    let health_path = match &section.health_path {
        Some(path) if !path.starts_with('/') => {
            return Err(ConfigError::key(
                "upstream.health_path",
                format!("expected a path starting with /, got {path:?}"),
            ));
        }
        other => other.clone(),
    };
    Ok(UpstreamConfig {
        scheme,
        authority,
        connect_timeout: positive("upstream.connect_timeout", section.connect_timeout.0)?,
        request_timeout: positive("upstream.request_timeout", section.request_timeout.0)?,
        // `auto` negotiates by ALPN, which needs TLS; over plain http it is HTTP/1.1.
        protocol: match section.protocol {
            UpstreamProtocolName::Http1 | UpstreamProtocolName::Auto => UpstreamProtocol::Http1,
            UpstreamProtocolName::H2c => UpstreamProtocol::H2c,
        },
        health_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_error(text: &str) -> (String, String) {
        match ConfigFile::parse(text).and_then(Config::from_file) {
            Err(ConfigError::Key { key, message }) => (key, message),
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        for text in ["", "{}", "# just a comment\n"] {
            let config = Config::from_file(ConfigFile::parse(text).unwrap()).unwrap();
            assert_eq!(config.listen, "0.0.0.0:8100".parse().unwrap());
            assert_eq!(config.admin.listen, "0.0.0.0:8101".parse().unwrap());
            assert_eq!(config.upstream.authority.as_str(), "127.0.0.1:8080");
            assert_eq!(config.upstream.request_timeout, Duration::from_secs(60));
            assert_eq!(config.limits.max_in_flight.get(), 4096);
            assert_eq!(config.limits.max_header_bytes.get(), 65536);
            assert_eq!(config.shutdown.delay, Duration::from_secs(5));
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let (key, message) = key_error("upstream:\n  conect_timeout: 1s\n");
        assert_eq!(key, "upstream.conect_timeout");
        assert!(message.contains("unknown field"), "{message}");
        assert!(
            message.contains("connect_timeout"),
            "lists the valid keys: {message}"
        );
        let (key, _) = key_error("listen: 0.0.0.0:1\nlimitz: {}\n");
        assert_eq!(key, "limitz");
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(
            key_error("upstream: {connect_timeout: 5}").0,
            "upstream.connect_timeout"
        );
        assert_eq!(
            key_error("limits: {max_header_bytes: 10 kilo}").0,
            "limits.max_header_bytes"
        );
        assert_eq!(
            key_error("limits: {max_header_bytes: 10}").0,
            "limits.max_header_bytes"
        );
        assert_eq!(
            key_error("limits: {max_in_flight: 0}").0,
            "limits.max_in_flight"
        );
        assert_eq!(key_error("listen: localhost").0, "listen");
        assert_eq!(key_error("upstream: {url: 'ftp://x'}").0, "upstream.url");
        assert_eq!(
            key_error("upstream: {url: 'http://x:1/base'}").0,
            "upstream.url"
        );
        assert_eq!(key_error("upstream: {protocol: h3}").0, "upstream.protocol");
        assert_eq!(
            key_error("admin: {token_file: /nonexistent/token}").0,
            "admin.token_file"
        );
        assert_eq!(
            key_error("upstream: {health_path: ready}").0,
            "upstream.health_path"
        );
    }

    #[test]
    fn json_is_accepted() {
        let file = ConfigFile::parse(
            r#"{"listen": "127.0.0.1:9000", "limits": {"max_header_bytes": "8KiB"}}"#,
        )
        .unwrap();
        let config = Config::from_file(file).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.limits.max_header_bytes.get(), 8192);
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut file = ConfigFile::parse("upstream: {url: 'http://10.0.0.1:80'}").unwrap();
        file.apply(&Overrides {
            upstream: Some("http://127.0.0.1:9999".into()),
            ..Overrides::default()
        });
        let config = Config::from_file(file).unwrap();
        assert_eq!(config.upstream.authority.as_str(), "127.0.0.1:9999");
    }

    #[test]
    fn effective_config_round_trips_and_redacts() {
        let mut file = ConfigFile::default();
        file.upstream.url = "http://user:hunter2@127.0.0.1:8080".into();
        let shown = file.redacted().to_yaml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        let plain = ConfigFile::default();
        assert_eq!(ConfigFile::parse(&plain.to_yaml()).unwrap(), plain);
    }

    #[test]
    fn token_is_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let text = format!("admin: {{token_file: {}}}", path.display());
        let config = Config::from_file(ConfigFile::parse(&text).unwrap()).unwrap();
        assert_eq!(&*config.admin.token.as_ref().unwrap().0, "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn schema_covers_every_section() {
        let schema = ConfigFile::json_schema().to_string();
        for key in [
            "listen",
            "admin",
            "upstream",
            "limits",
            "shutdown",
            "analysis",
            "max_in_flight",
        ] {
            assert!(schema.contains(key), "{key}");
        }
    }
}
