//! The exporter as the binary runs it: [`run`] wires the store, the metrics, the supervisor,
//! the HTTP server and the SIGHUP reloads; [`binary`] re-exports what `main.rs` uses besides.

/// What the `cf-service-key-exporter` binary (`main.rs`) uses besides [`run`] and
/// [`ServeOptions`]: with them, the library's whole interface outside the tests (re-exported at
/// the crate root).
pub mod binary {
    pub use crate::clock::SystemClock;
    pub use crate::landing::PlanCommand;
    pub use crate::web::{serve::Limits, WebConfigFile};

    /// The flags and the configuration they select.
    pub mod cli {
        pub use crate::cli::{demo, from_source, Cli, Command, Source};
    }
    /// The validated configuration.
    pub mod config {
        pub use crate::config::{Config, DemoTarget};
    }
    /// Logging set-up.
    pub mod logging {
        pub use crate::logging::{init, DEFAULT_LEVEL, QUIET_LEVEL};
    }
    /// The `report` command.
    pub mod report {
        pub use crate::report::rotate::plan::command;
        pub use crate::report::{run, EXIT_RUNTIME};
    }
}

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::metrics::ExporterMetrics;
use crate::snapshot::Store;
use crate::supervisor::Supervisor;
use crate::{cache, landing, server, web};

/// How the HTTP endpoints are served, beyond the listener.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// `--web-config-file`: TLS, basic auth and headers. `None`: plain HTTP, no auth.
    pub web_config: Option<Arc<web::WebConfigFile>>,
    /// `--web-max-requests`: most scrapes served at once (0: no limit); `None`: the server's
    /// default ([`web::serve::DEFAULT_MAX_REQUESTS`], applied by [`server::AppState::new`]).
    pub max_requests: Option<usize>,
    /// `--web-header-timeout`, `--web-write-timeout`, `--web-max-connections`.
    pub limits: web::serve::Limits,
    /// How the landing page shows the rotate-plan command of a key.
    pub plan_command: landing::PlanCommand,
}

/// Serves the exporter on `listener` until `shutdown` completes, the endpoints protected as
/// `options` say (TLS and basic auth of `--web-config-file`; plain HTTP by default).
///
/// Refreshers start at once; the HTTP server answers immediately (`/readyz` says 503 until every
/// foundation was seeded from the cache file or has had a refresh that attempted every listed
/// key). With a config file, SIGHUP re-reads it; a bad file keeps the running configuration.
pub async fn run(
    config: Config,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Arc::new(Store::new());
    let metrics = Arc::new(ExporterMetrics::default());
    let exposition = metrics.exposition(store.clone());
    let cancel = CancellationToken::new();
    // Renders each published snapshot ahead of the scrapes.
    let renderer = tokio::spawn(metrics.clone().follow(store.clone(), cancel.clone()));

    let warnings = Arc::new(arc_swap::ArcSwap::from_pointee(config.warnings()));
    for warning in warnings.load().iter() {
        tracing::warn!("{warning}");
    }
    if let Some(web) = &options.web_config {
        web.count_failures_in(metrics.reload_failures("web"));
    }
    // Seeds the store before the refreshers start, so their first refresh reuses the readings.
    let cache = (config.cache_file.as_deref())
        .map(|path| Arc::new(cache::Cache::open(path, &config.foundations, &store)));
    let mut supervisor =
        Supervisor::new(store.clone(), metrics.clone(), cancel.clone()).with_cache(cache);
    supervisor
        .apply(config.foundations.clone())
        .await
        .context("cannot start the refreshers")?;
    let reloads = tokio::spawn(reload_on_sighup(
        supervisor,
        Reloads {
            file: config.file.clone(),
            warnings: warnings.clone(),
            failures: config
                .file
                .is_some()
                .then(|| metrics.reload_failures("file")),
            cache_file: config.cache_file.clone(),
        },
        cancel.clone(),
    ));

    let mut state = server::AppState::new(exposition, store, Vec::new())
        .with_warnings(warnings)
        .with_plan_command(options.plan_command);
    if let Some(limit) = options.max_requests {
        state = state.with_max_requests(limit);
    }
    let app = server::router(state);
    let server_cancel = cancel.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = server_cancel.cancelled() => {}
        }
    };
    let address = listener.local_addr()?;
    let served = match options.web_config {
        None => {
            tracing::info!(%address, tls = false, basic_auth = false, "serving /metrics");
            web::serve::serve(listener, app, None, options.limits, stop).await
        }
        Some(web) => {
            tracing::info!(
                %address,
                tls = web.tls_enabled(),
                basic_auth = web.basic_auth_enabled(),
                web_config = %web.path().display(),
                "serving /metrics"
            );
            let app = web.protect(app);
            let tls = web.tls_enabled().then_some(web);
            web::serve::serve(listener, app, tls, options.limits, stop).await
        }
    };
    cancel.cancel();
    let _ = reloads.await;
    let _ = renderer.await;
    served.context("the HTTP server failed")
}

/// What the SIGHUP loop needs besides the supervisor.
struct Reloads {
    /// The `--config` file; `None`: nothing to reload.
    file: Option<std::path::PathBuf>,
    /// Shown on `/`; recomputed at every reload.
    warnings: Arc<arc_swap::ArcSwap<Vec<String>>>,
    /// `config_reload_failures_total{config="file"}`.
    failures: Option<prometheus_client::metrics::counter::Counter>,
    cache_file: Option<std::path::PathBuf>,
}

impl Reloads {
    fn refused(&self, file: &std::path::Path, error: &dyn std::fmt::Display) {
        tracing::error!(file = %file.display(), error = %error, "reload refused; keeping the running configuration");
        if let Some(failures) = &self.failures {
            failures.inc();
        }
    }

    fn applied(&self, file: &std::path::Path, foundations: Vec<config::FoundationConfig>) {
        tracing::info!(file = %file.display(), "configuration reloaded");
        let now = Config {
            foundations,
            file: None,
            cache_file: self.cache_file.clone(),
        }
        .warnings();
        for warning in &now {
            tracing::warn!("{warning}");
        }
        self.warnings.store(Arc::new(now));
    }
}

/// Owns the supervisor: applies reloads on SIGHUP, stops everything on cancel.
async fn reload_on_sighup(mut supervisor: Supervisor, reloads: Reloads, cancel: CancellationToken) {
    #[cfg(unix)]
    let mut hangup = match (
        &reloads.file,
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()),
    ) {
        (Some(_), Ok(s)) => Some(s),
        (Some(_), Err(e)) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; config reloads are off");
            None
        }
        (None, _) => None,
    };
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = hup => {
                let Some(path) = &reloads.file else { continue };
                match config::file::load(path) {
                    Ok(foundations) => match supervisor.apply(foundations.clone()).await {
                        Ok(()) => reloads.applied(path, foundations),
                        Err(e) => reloads.refused(path, &e),
                    },
                    Err(e) => reloads.refused(path, &e),
                }
            }
        }
    }
    supervisor.shutdown().await;
}
