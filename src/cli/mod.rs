//! The command line of SPEC §2. `main.rs` only calls [`main`].
//!
//! Flags are parsed by clap; each flag left out is then looked up as `DRIFTWATCH_<FLAG>` in an
//! injectable [`EnvSource`]; what is still unset comes from the config file, then the defaults.
//! Exit codes: 0 success, 2 usage or configuration error, 1 runtime failure.

pub mod env;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use self::env::{EnvSource, ProcessEnv, variable_for};
use crate::app::{Driftwatch, Listeners};
use crate::config::{Config, ConfigFile, Overrides, units};
use crate::telemetry::logging::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "driftwatch",
    version,
    about = "A sidecar reverse proxy that monitors ML model servers."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy in front of a model server.
    Run(RunArgs),
    /// Run a self-contained demo: a model server, driftwatch in front of it, and traffic.
    Demo(DemoArgs),
    /// Validate a config file and print the effective config, secrets redacted.
    CheckConfig(CheckConfigArgs),
    /// Build a reference profile from a training set or a records file.
    Profile(ProfileArgs),
    /// Run the monitoring of `run` over a records file; print one drift report per window.
    Replay(ReplayArgs),
    /// Export exploration decisions and rewards for offline evaluation (VW DSJson, OBP CSV).
    Export(ExportArgs),
    /// Print the JSON Schema of the config file.
    ConfigSchema,
    /// Print the version.
    Version,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Config file (YAML or JSON). [env: DRIFTWATCH_CONFIG]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model server base URL. [env: DRIFTWATCH_UPSTREAM]
    #[arg(long)]
    pub upstream: Option<String>,
    /// Proxy listen address. [env: DRIFTWATCH_LISTEN]
    #[arg(long)]
    pub listen: Option<String>,
    /// Admin listen address. [env: DRIFTWATCH_ADMIN_LISTEN]
    #[arg(long)]
    pub admin_listen: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Log line format: json or text. [env: DRIFTWATCH_LOG_FORMAT]
    #[arg(long)]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or driftwatch=debug. [env: DRIFTWATCH_LOG_LEVEL]
    #[arg(long)]
    pub log_level: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long the demo runs. [env: DRIFTWATCH_DURATION]
    #[arg(long)]
    pub duration: Option<String>,
    /// When the traffic generator shifts the input distribution. [env: DRIFTWATCH_DRIFT_AT]
    #[arg(long)]
    pub drift_at: Option<String>,
    /// Proxy listen address. [env: DRIFTWATCH_LISTEN]
    #[arg(long)]
    pub listen: Option<String>,
    /// Admin listen address. [env: DRIFTWATCH_ADMIN_LISTEN]
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Requests per second the traffic generator aims for. [env: DRIFTWATCH_RATE]
    #[arg(long)]
    pub rate: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// The training set or records file.
    #[arg(long)]
    pub input: PathBuf,
    /// csv, jsonl or records (default: csv for .csv files, else jsonl).
    #[arg(long)]
    pub format: Option<String>,
    /// The model the profile is for (with records: only its records are read).
    #[arg(long)]
    pub model: Option<String>,
    /// Columns to profile (records: names for positional input columns), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Columns that are categorical, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub categorical: Vec<String>,
    /// The ground-truth column.
    #[arg(long)]
    pub label: Option<String>,
    /// Prediction columns (role output), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub outputs: Vec<String>,
    /// Where to write the profile (JSON).
    #[arg(long)]
    pub output: PathBuf,
    /// Config file: bins, top_k and model settings come from it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The records file (JSON Lines).
    #[arg(long)]
    pub records: PathBuf,
    /// Config file: monitoring and models come from it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A reference profile to judge against (instead of the config's or learning).
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The records file (JSON Lines) holding exploration decisions.
    #[arg(long)]
    pub records: PathBuf,
    /// vw-cb, vw-ccb or obp.
    #[arg(long)]
    pub format: String,
    /// Rewards (JSON Lines, as `feedback.rewards_file` writes them).
    #[arg(long)]
    pub rewards: Option<PathBuf>,
    /// Where to write the export.
    #[arg(long)]
    pub output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// Config file to validate. [env: DRIFTWATCH_CONFIG]
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// A failure with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Runtime(_) => ExitCode::from(1),
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(error: crate::config::ConfigError) -> Self {
        Self::Usage(format!("configuration error: {error}"))
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match execute(cli, &ProcessEnv, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("driftwatch: {error}");
            error.exit_code()
        }
    }
}

/// Parses arguments as the binary would (for tests).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// Runs a parsed command. Output that is the command's result goes to `out`.
pub fn execute(
    cli: Cli,
    env: &dyn EnvSource,
    out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    match cli.command {
        Command::Version => {
            writeln!(out, "driftwatch {}", env!("CARGO_PKG_VERSION")).map_err(io_error)?;
            Ok(())
        }
        Command::ConfigSchema => {
            let schema = serde_json::to_string_pretty(&ConfigFile::json_schema())
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            writeln!(out, "{schema}").map_err(io_error)
        }
        Command::CheckConfig(args) => {
            let path = pick(path_flag(&args.config), env, "config", |s| {
                Ok(PathBuf::from(s))
            })?
            .ok_or_else(|| CliError::Usage("check-config needs --config FILE".to_owned()))?;
            let config = Config::load(Some(&path), &Overrides::default())?;
            let yaml = config.effective.to_yaml();
            writeln!(out, "{}", yaml.trim_end()).map_err(io_error)
        }
        Command::Run(args) => {
            let config = run_config(&args, env)?;
            init_logging(&args.log, env)?;
            runtime()?.block_on(async move {
                let shutdown = shutdown_signal();
                let listeners = Listeners::bind(&config)
                    .await
                    .map_err(|e| CliError::Runtime(e.to_string()))?;
                tracing::info!(
                    proxy = %listeners.proxy_addr(),
                    admin = %listeners.admin_addr(),
                    upstream = %config.upstream.authority,
                    "driftwatch {} listening", env!("CARGO_PKG_VERSION")
                );
                Driftwatch::new(config)
                    .run(listeners, shutdown)
                    .await
                    .map_err(|e| CliError::Runtime(e.to_string()))
            })
        }
        Command::Profile(args) => profile(args, env, out),
        Command::Replay(args) => replay(args, env, out),
        Command::Export(args) => export(args, out),
        Command::Demo(args) => {
            let options = demo_options(args, env)?;
            runtime()?.block_on(crate::demo::run(options, out))
        }
    }
}

fn profile(
    args: ProfileArgs,
    env: &dyn EnvSource,
    out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    use crate::profile::{Format, ProfileOptions, profile_file};
    let path = pick(path_flag(&args.config), env, "config", |s| {
        Ok(PathBuf::from(s))
    })?;
    let config = Config::load(path.as_deref(), &Overrides::default())?;
    let format = match args.format.as_deref() {
        Some(name) => Format::parse(name).ok_or_else(|| {
            CliError::Usage(format!(
                "--format: expected csv, jsonl or records, got {name:?}"
            ))
        })?,
        None => Format::guess(&args.input),
    };
    let non_empty = |list: Vec<String>| {
        list.into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let options = ProfileOptions {
        format,
        model: args.model,
        columns: args.columns,
        categorical: non_empty(args.categorical),
        label: args.label,
        outputs: non_empty(args.outputs),
        bins: config.monitoring.bins,
        top_k: config.monitoring.top_k,
        specs: config.models.clone(),
    };
    let profile =
        profile_file(&args.input, &options).map_err(|e| CliError::Usage(e.to_string()))?;
    let json =
        serde_json::to_string_pretty(&profile).map_err(|e| CliError::Runtime(e.to_string()))?;
    std::fs::write(&args.output, json + "\n")
        .map_err(|e| CliError::Runtime(format!("cannot write {}: {e}", args.output.display())))?;
    writeln!(
        out,
        "profiled {} rows, {} columns into {}",
        profile.rows,
        profile.columns.len(),
        args.output.display()
    )
    .map_err(io_error)
}

fn export(args: ExportArgs, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    use crate::explore::export::{ExportFormat, export};
    let format: ExportFormat = args.format.parse().map_err(|_| {
        CliError::Usage(format!(
            "--format: expected vw-cb, vw-ccb or obp, got {:?}",
            args.format
        ))
    })?;
    let open = |flag: &str, path: &std::path::Path| {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| CliError::Usage(format!("{flag} {}: {e}", path.display())))
    };
    let records = open("--records", &args.records)?;
    let mut rewards = args
        .rewards
        .as_deref()
        .map(|p| open("--rewards", p))
        .transpose()?;
    let file = std::fs::File::create(&args.output)
        .map_err(|e| CliError::Runtime(format!("cannot write {}: {e}", args.output.display())))?;
    let mut writer = std::io::BufWriter::new(file);
    let stats = export(
        records,
        rewards.as_mut().map(|r| r as &mut dyn std::io::BufRead),
        format,
        &mut writer,
    )
    .map_err(|e| CliError::Runtime(e.to_string()))?;
    std::io::Write::flush(&mut writer).map_err(io_error)?;
    writeln!(out, "{}", serde_json::to_string(&stats).unwrap_or_default()).map_err(io_error)?;
    if stats.decisions == 0 {
        return Err(CliError::Runtime(
            "no explored decisions in the records file".to_owned(),
        ));
    }
    Ok(())
}

fn replay(
    args: ReplayArgs,
    env: &dyn EnvSource,
    out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    use crate::monitor::Models;
    use crate::monitor::reference::Profile;
    let path = pick(path_flag(&args.config), env, "config", |s| {
        Ok(PathBuf::from(s))
    })?;
    let config = Config::load(path.as_deref(), &Overrides::default())?;
    let registry = crate::telemetry::Registry::new();
    let mut models = Models::new(
        config.monitoring.clone(),
        config.models.clone(),
        &registry,
        true,
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(reference) = &args.reference {
        let text = std::fs::read_to_string(reference)
            .map_err(|e| CliError::Usage(format!("--reference {}: {e}", reference.display())))?;
        let profile = Profile::from_json(&text)
            .map_err(|e| CliError::Usage(format!("--reference {}: {e}", reference.display())))?;
        let model = profile
            .model
            .clone()
            .unwrap_or_else(|| crate::monitor::router::DEFAULT_MODEL.to_owned());
        models
            .set_reference(&model, profile)
            .map_err(CliError::Usage)?;
    }
    let file = std::fs::File::open(&args.records)
        .map_err(|e| CliError::Usage(format!("--records {}: {e}", args.records.display())))?;
    let stats = crate::replay::replay(std::io::BufReader::new(file), &mut models, out)
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    eprintln!(
        "replayed {} records ({} not readable), {} reports, {} change points (the last 100 per model)",
        stats.records, stats.skipped, stats.reports, stats.change_points
    );
    Ok(())
}

/// Resolves `run`'s flags, environment and file into a validated config.
pub fn run_config(args: &RunArgs, env: &dyn EnvSource) -> Result<Config, CliError> {
    let path = pick(path_flag(&args.config), env, "config", |s| {
        Ok(PathBuf::from(s))
    })?;
    let overrides = Overrides {
        listen: pick(args.listen.clone(), env, "listen", ok_string)?,
        admin_listen: pick(args.admin_listen.clone(), env, "admin-listen", ok_string)?,
        upstream: pick(args.upstream.clone(), env, "upstream", ok_string)?,
    };
    Ok(Config::load(path.as_deref(), &overrides)?)
}

pub fn demo_options(
    args: DemoArgs,
    env: &dyn EnvSource,
) -> Result<crate::demo::DemoOptions, CliError> {
    let defaults = crate::demo::DemoOptions::default();
    Ok(crate::demo::DemoOptions {
        duration: pick(args.duration, env, "duration", |s| {
            duration("--duration", &s)
        })?
        .unwrap_or(defaults.duration),
        drift_at: pick(args.drift_at, env, "drift-at", |s| {
            duration("--drift-at", &s)
        })?
        .unwrap_or(defaults.drift_at),
        listen: pick(args.listen, env, "listen", ok_string)?.unwrap_or(defaults.listen),
        admin_listen: pick(args.admin_listen, env, "admin-listen", ok_string)?
            .unwrap_or(defaults.admin_listen),
        rate: pick(args.rate, env, "rate", |s| {
            s.parse()
                .map_err(|_| CliError::Usage(format!("--rate: expected a whole number, got {s:?}")))
        })?
        .unwrap_or(defaults.rate),
    })
}

fn init_logging(args: &LogArgs, env: &dyn EnvSource) -> Result<(), CliError> {
    let format = pick(args.log_format.clone(), env, "log-format", |s| {
        match s.as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(CliError::Usage(format!(
                "--log-format: expected json or text, got {s:?}"
            ))),
        }
    })?
    .unwrap_or(LogFormat::Json);
    let level = pick(args.log_level.clone(), env, "log-level", ok_string)?
        .unwrap_or_else(|| "info".to_owned());
    logging::init(format, &level).map_err(CliError::Usage)
}

/// The flag when given, else the environment variable, parsed.
fn pick<T>(
    flag: Option<String>,
    env: &dyn EnvSource,
    name: &str,
    parse: impl FnOnce(String) -> Result<T, CliError>,
) -> Result<Option<T>, CliError> {
    flag.or_else(|| env.get(&variable_for(name)))
        .map(parse)
        .transpose()
}

fn path_flag(path: &Option<PathBuf>) -> Option<String> {
    path.as_ref().map(|p| p.to_string_lossy().into_owned())
}

fn ok_string(value: String) -> Result<String, CliError> {
    Ok(value)
}

fn duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    units::parse_duration(text).ok_or_else(|| {
        CliError::Usage(format!(
            "{flag}: expected a duration like 60s or 2m, got {text:?}"
        ))
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}

fn io_error(error: std::io::Error) -> CliError {
    CliError::Runtime(error.to_string())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not when the
/// future is first polled), so a signal that arrives during start-up is not lost.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate =
            signal(SignalKind::terminate()).expect("installing a SIGTERM handler succeeds on unix");
        let mut interrupt =
            signal(SignalKind::interrupt()).expect("installing a SIGINT handler succeeds on unix");
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(std::iter::once("driftwatch").chain(args.iter().copied()))
            .unwrap()
            .command
        {
            Command::Run(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "listen: 127.0.0.1:7000\nadmin: {listen: 127.0.0.1:7001}\nupstream: {url: 'http://127.0.0.1:7002'}\n").unwrap();
        let file_arg = file.to_str().unwrap();

        let config = run_config(&run_args(&["run", "--config", file_arg]), &env(&[])).unwrap();
        assert_eq!(config.listen.port(), 7000);

        let environment = env(&[
            ("DRIFTWATCH_LISTEN", "127.0.0.1:7100"),
            ("DRIFTWATCH_UPSTREAM", "http://127.0.0.1:7102"),
        ]);
        let config = run_config(&run_args(&["run", "--config", file_arg]), &environment).unwrap();
        assert_eq!(config.listen.port(), 7100);
        assert_eq!(config.upstream.authority.port_u16(), Some(7102));
        assert_eq!(config.admin.listen.port(), 7001);

        let args = run_args(&["run", "--config", file_arg, "--listen", "127.0.0.1:7200"]);
        assert_eq!(run_config(&args, &environment).unwrap().listen.port(), 7200);

        let config = run_config(&run_args(&["run"]), &env(&[])).unwrap();
        assert_eq!(config.listen.port(), 8100);
    }

    #[test]
    fn config_path_comes_from_env_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "listen: 127.0.0.1:7300\n").unwrap();
        let environment = env(&[("DRIFTWATCH_CONFIG", file.to_str().unwrap())]);
        assert_eq!(
            run_config(&run_args(&["run"]), &environment)
                .unwrap()
                .listen
                .port(),
            7300
        );
    }

    #[test]
    fn bad_config_is_a_usage_error_naming_the_key() {
        let environment = env(&[("DRIFTWATCH_UPSTREAM", "not a url")]);
        let error = run_config(&run_args(&["run"]), &environment).unwrap_err();
        assert!(matches!(error, CliError::Usage(_)));
        assert!(error.to_string().contains("upstream.url"), "{error}");
        assert_eq!(error.exit_code(), ExitCode::from(2));
    }

    #[test]
    fn check_config_prints_the_effective_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "upstream: {url: 'http://u:pw@127.0.0.1:9'}\n").unwrap();
        let cli = parse([
            "driftwatch",
            "check-config",
            "--config",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        // Credentials in the upstream URL are rejected, and the message does not echo them.
        let error = execute(cli, &env(&[]), &mut out).unwrap_err();
        assert!(error.to_string().contains("upstream.url"));
        assert!(!error.to_string().contains("pw"));

        std::fs::write(&file, "limits: {max_in_flight: 7}\n").unwrap();
        let cli = parse([
            "driftwatch",
            "check-config",
            "--config",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        execute(cli, &env(&[]), &mut out).unwrap();
        let printed = String::from_utf8(out).unwrap();
        assert!(printed.contains("max_in_flight: 7"), "{printed}");
        assert!(printed.contains("request_timeout: 1m"), "{printed}");
    }

    #[test]
    fn usage_errors_exit_2() {
        let error = parse(["driftwatch", "run", "--bogus"]).unwrap_err();
        assert!(error.use_stderr());
        let demo = match parse(["driftwatch", "demo"]).unwrap().command {
            Command::Demo(args) => args,
            other => panic!("{other:?}"),
        };
        let error = demo_options(demo, &env(&[("DRIFTWATCH_DURATION", "soon")])).unwrap_err();
        assert!(error.to_string().contains("--duration"));
        assert_eq!(error.exit_code(), ExitCode::from(2));
    }
}
