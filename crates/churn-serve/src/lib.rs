//! `churn serve`: churn probability, reasons and a suggested intervention
//! over HTTP (DESIGN.md "HTTP API").
//!
//! Links churn-model and churn-features only (no polars, no linfa, no
//! training code). Models are swapped atomically on reload ([`arc_swap`]);
//! bad input gets a 4xx JSON error naming the field; a request waits at most
//! `queue_wait_ms` for one of `max_concurrency` scoring slots, then gets 503
//! + Retry-After; a client that stalls in its body gets 408.
//!
//! Modules by concern: `routes` (the route table), `middleware` (request
//! id, metrics, body reading, admission), `auth`, `body`, `predict`,
//! `info` (models, health, metrics, OpenAPI), `admin` (reload), `oip` (Open
//! Inference Protocol v2), `deploy` (loading and swapping deployments),
//! `state`, `api` (request parsing), `predlog` (the log writer),
//! `telemetry`, `drift`, `threads` (the runtime, and how the kernel should
//! schedule its threads).

mod admin;
mod api;
mod auth;
mod body;
pub mod config;
mod deploy;
mod drift;
mod error;
mod info;
mod learners;
mod middleware;
mod oip;
mod openapi;
mod predict;
mod predlog;
mod routes;
mod state;
mod telemetry;
mod threads;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

pub use api::raw_instance;
pub use config::ServeConfig;
pub use error::ApiError;
pub use state::bucket;
pub use threads::{latency_sensitive, runtime};

/// What can stop the server from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] churn_model::ModelError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] churn_store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
}

/// A built server: its router and its state (for reloads from outside).
pub struct App {
    pub router: Router,
    state: Arc<state::AppState>,
}

impl App {
    /// Checks the configuration, loads the models, opens the log.
    pub fn build(config: ServeConfig) -> Result<Self, ServeError> {
        config.check()?;
        let deployment =
            deploy::load_deployment(&config, &config.champion, config.challenger.as_deref())?;
        let telemetry = telemetry::Telemetry::new();
        let open = |path: Option<&std::path::Path>| {
            path.map(|path| {
                predlog::PredictionLog::open(
                    path,
                    config.log_max_bytes,
                    config.log_keep,
                    config.log_buffer,
                    telemetry.log_dropped.clone(),
                )
            })
            .transpose()
        };
        let log = open(config.prediction_log.as_deref())?;
        let feature_log = open(config.feature_log.as_deref())?;
        let admission = Arc::new(middleware::Admission::new(
            config.max_concurrency,
            config.queue_wait_ms,
            config.request_timeout_ms,
            telemetry.shed.clone(),
            telemetry.timeouts.clone(),
        ));
        let store = match &config.store {
            Some(spec) => {
                let store: Arc<dyn churn_store::LearnerStore> = Arc::from(churn_store::open(spec)?);
                tracing::info!(store = %store.describe(), "learner store open");
                Some(store)
            }
            None => None,
        };
        let state = Arc::new(state::AppState {
            admission,
            config,
            deployment: ArcSwap::from_pointee(deployment),
            telemetry,
            log,
            feature_log,
            reload: tokio::sync::Mutex::new(()),
            store,
        });
        state.publish_models();
        Ok(App {
            router: routes::router(state.clone()),
            state,
        })
    }

    /// The models being served, as `(role, name@version)`.
    pub fn models(&self) -> Vec<(String, String)> {
        let deployment = self.state.deployment.load();
        deployment
            .all()
            .map(|(role, s)| {
                (
                    role.name().to_owned(),
                    format!("{}@{}", s.name(), s.version()),
                )
            })
            .collect()
    }

    /// Re-resolves the configured models and swaps them in if they load and
    /// check; the old ones keep serving otherwise.
    pub async fn reload(&self) -> Result<serde_json::Value, String> {
        let config = &self.state.config;
        self.state
            .reload(config.champion.clone(), config.challenger.clone())
            .await
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting,
    /// gives in-flight requests `shutdown_grace_ms` and flushes the log.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let config = self.state.config.clone();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(config.header_timeout_ms))
            .keep_alive(true);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let watcher = (config.watch_seconds > 0).then(|| {
            let state = self.state.clone();
            tokio::spawn(watch(state, Duration::from_secs(config.watch_seconds)))
        });
        let compactor = match (&self.state.store, config.retention_days) {
            (Some(store), days) if days > 0 => Some(tokio::spawn(keep_retention(
                store.clone(),
                days,
                Duration::from_secs(3600),
            ))),
            _ => None,
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Out of file descriptors and the like: wait, do not spin.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(self.router.clone());
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection.into_owned());
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!("shutting down: draining in-flight requests");
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(c) = compactor {
            c.abort();
        }
        let grace = Duration::from_millis(config.shutdown_grace_ms);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period; closing them");
        }
        drop(self.router);
        // The last reference closes the log (its Drop writes what is queued).
        if let Ok(mut state) = Arc::try_unwrap(self.state)
            && let Some(log) = state.log.as_mut()
        {
            log.close();
        }
        Ok(())
    }
}

/// Retention: summarises the store's events older than `days`, at once and
/// then every `every`, on the blocking pool (a compaction holds the store's
/// writer for 256 learners at a time, so ingest goes on between them).
async fn keep_retention(store: Arc<dyn churn_store::LearnerStore>, days: u64, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let cutoff =
            churn_core::now_ms().saturating_sub((days as i64).saturating_mul(churn_core::DAY_MS));
        let store = store.clone();
        match threads::spawn_blocking(move || store.compact(cutoff)).await {
            Ok(Ok(done)) => tracing::info!(
                cutoff = %churn_core::format_timestamp(cutoff),
                learners = done.learners,
                rows_before = done.rows_before,
                rows_after = done.rows_after,
                "retention: events before the cutoff summarised"
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "retention: compaction failed; retried at the next hour")
            }
            Err(e) => tracing::error!(error = %e, "retention: compaction interrupted"),
        }
    }
}

/// Polls the models directory and reloads when a reference resolves to a new version.
async fn watch(state: Arc<state::AppState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let config = &state.config;
        let resolve = |r: &str| churn_model::artifact::resolve(r, &config.models).ok();
        let wanted: Vec<Option<PathBuf>> = std::iter::once(resolve(&config.champion))
            .chain(config.challenger.as_deref().map(resolve))
            .collect();
        let current: Vec<Option<PathBuf>> = {
            let deployment = state.deployment.load();
            deployment
                .all()
                .map(|(_, s)| Some(s.artifact.dir.clone()))
                .collect()
        };
        if wanted.iter().all(Option::is_some) && wanted != current {
            let _ = state
                .reload(config.champion.clone(), config.challenger.clone())
                .await;
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
