//! Assembles one driftwatch instance from a validated config: the proxy listener, the admin
//! listener, the tap and analysis worker, and the shutdown sequence of SPEC §4.
//!
//! The caller binds the listeners and supplies the shutdown signal (mini-redis style), so the
//! binary, the demo and the tests all run the very same code.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::lifecycle::{Lifecycle, Phase};
use crate::monitor::{Models, Monitor};
use crate::proxy::Proxy;
use crate::record::Recorder;
use crate::server;
use crate::sinks::SinkSet;
use crate::tap::{self, AnalysisWorker, Analyzer};
use crate::telemetry::Registry;
use crate::upstream::ReadinessProbe;

/// How often histogram samples are folded into buckets between scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the analysis worker: {0}")]
    Worker(std::io::Error),
    #[error("admin listener failed: {0}")]
    Admin(std::io::Error),
    #[error("cannot start the record sinks: {0}")]
    Sinks(#[from] crate::sinks::SinkError),
    #[error("cannot start monitoring: {0}")]
    Monitor(#[from] crate::monitor::router::MonitorError),
}

/// The two sockets an instance serves.
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> Result<Self, AppError> {
        let proxy = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AppError::Bind {
                what: "proxy",
                addr: config.listen,
                source,
            })?;
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|source| AppError::Bind {
                what: "admin",
                addr: config.admin.listen,
                source,
            })?;
        Ok(Self { proxy, admin })
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }
}

/// One driftwatch instance, before it runs.
pub struct Driftwatch {
    config: Arc<Config>,
    registry: Registry,
    analyzers: Vec<Box<dyn Analyzer>>,
}

impl Driftwatch {
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
            registry: Registry::new(),
            analyzers: Vec::new(),
        }
    }

    /// Adds a consumer of observations on the analysis side.
    pub fn with_analyzer(mut self, analyzer: Box<dyn Analyzer>) -> Self {
        self.analyzers.push(analyzer);
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves until `shutdown` resolves, then: `/readyz` turns 503 at once; connections are still
    /// accepted for `shutdown.delay`; then the listener closes and in-flight exchanges get up to
    /// `shutdown.grace`; then the analysis worker drains; then the admin listener stops.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AppError> {
        let Self {
            config,
            registry,
            mut analyzers,
        } = self;
        let models = Monitor::shared(
            Models::new(
                config.monitoring.clone(),
                config.models.clone(),
                &registry,
                false,
            )?
            .with_feedback(config.feedback.clone())?,
        );
        if config.monitoring.enabled {
            analyzers.push(Box::new(Monitor::new(models.clone())));
        }
        let diversity = crate::explore::analyzer::shared(&config.exploration, &registry);
        if !config.exploration.is_empty() {
            analyzers.push(Box::new(crate::explore::analyzer::DiversityAnalyzer::new(
                diversity.clone(),
            )));
        }
        // The recorder comes last: it records what the other analyzers found.
        if !config.sinks.is_empty() {
            let sinks = SinkSet::start(&config.sinks, &registry)?;
            analyzers.push(Box::new(Recorder::new(
                config.recording.clone(),
                sinks,
                &registry,
            )));
        }
        let lifecycle = Lifecycle::new();
        let (tap, observations) = tap::channel(config.analysis.queue.get(), &registry);
        let worker =
            AnalysisWorker::spawn(observations, analyzers, &registry).map_err(AppError::Worker)?;
        let proxy = Proxy::new(
            &config,
            &registry,
            tap,
            lifecycle.clone(),
            Some(models.clone()),
        );

        let upkeep = tokio::spawn({
            let registry = registry.clone();
            async move {
                let mut interval = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
                loop {
                    interval.tick().await;
                    registry.run_upkeep();
                }
            }
        });

        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin = tokio::spawn(admin::serve(
            listeners.admin,
            AdminState {
                config: config.clone(),
                registry: registry.clone(),
                lifecycle: lifecycle.clone(),
                readiness: ReadinessProbe::new(&config.upstream),
                models,
                diversity,
            },
            async move {
                let _ = admin_stopped.await;
            },
        ));

        let proxy_server = tokio::spawn({
            let limits = config.limits.clone();
            let lifecycle = lifecycle.clone();
            let grace = config.shutdown.grace;
            async move { server::serve(listeners.proxy, proxy, &limits, lifecycle, grace).await }
        });

        shutdown.await;
        tracing::info!(delay = ?config.shutdown.delay, "shutdown signal: draining");
        lifecycle.advance(Phase::Draining);
        tokio::time::sleep(config.shutdown.delay).await;
        tracing::info!(grace = ?config.shutdown.grace, "closing the listener; finishing in-flight exchanges");
        lifecycle.advance(Phase::Closing);
        let _ = proxy_server.await;
        worker.join().await;
        upkeep.abort();
        let _ = stop_admin.send(());
        let admin_result = admin.await;
        tracing::info!("stopped");
        match admin_result {
            Ok(Err(error)) => Err(AppError::Admin(error)),
            _ => Ok(()),
        }
    }
}
