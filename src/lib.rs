//! cf-service-key-exporter: a Prometheus exporter for the expiry of Cloud Foundry service keys.
//!
//! Data flows one way: [`config`] → [`supervisor`] → [`refresher`] (using [`cf`] to list and
//! read keys, [`lead_time`] to read their owners' lead times, [`expiry`] to read their
//! credentials) → [`snapshot`] → [`metrics`] and [`server`]. The store is written by the refreshers, one per foundation, each replacing only
//! its own foundation's part; before a foundation's first refresh (at start, or when a reload
//! adds it) by the [`cache`] file seeding it; and by the [`supervisor`], which registers a
//! foundation it starts watching and removes one a reload dropped once its refresher has
//! stopped. A scrape only reads the latest snapshot and never calls Cloud Foundry. [`web`] puts
//! TLS and basic auth in front of the endpoints (`--web-config-file`); [`landing`] renders the
//! landing page. [`rotation`] knows which key succeeds which (per snapshot) and builds the
//! plans of `report --rotate-plan`, which [`report`] runs. `main` only parses flags,
//! sets up logging, binds and calls [`run`]; tests and `--demo` use the same entry point (the
//! demo's simulated foundation is the separate `cf-sim` crate).

pub mod cache;
pub mod cf;
pub mod cli;
pub mod clock;
pub mod config;
pub mod expiry;
pub mod landing;
pub mod lead_time;
pub mod logging;
pub mod metrics;
pub mod refresher;
pub mod report;
pub mod rotation;
pub mod server;
pub mod snapshot;
pub mod supervisor;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use config::Config;
use metrics::ExporterMetrics;
use snapshot::Store;
use supervisor::Supervisor;

/// How the HTTP endpoints are served, beyond the listener.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--web-config-file`: TLS, basic auth and headers. `None`: plain HTTP, no auth.
    pub web_config: Option<Arc<web::WebConfigFile>>,
    /// `--web-max-requests`: most scrapes served at once (0: no limit).
    pub max_requests: usize,
    /// How the landing page shows the rotate-plan command of a key.
    pub plan_command: landing::PlanCommand,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            web_config: None,
            max_requests: server::DEFAULT_MAX_REQUESTS,
            plan_command: landing::PlanCommand::default(),
        }
    }
}

/// Serves the exporter on `listener` over plain HTTP until `shutdown` completes.
///
/// Refreshers start at once; the HTTP server answers immediately (`/readyz` says 503 until every
/// foundation was seeded from the cache file or has had a refresh that attempted every listed
/// key). With a config file, SIGHUP re-reads it; a bad file keeps the running configuration.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, listener, ServeOptions::default(), shutdown).await
}

/// [`run`], with the endpoints protected as `options` say (TLS and basic auth of
/// `--web-config-file`).
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Arc::new(Store::new());
    let metrics = Arc::new(ExporterMetrics::default());
    let exposition = metrics.exposition(store.clone());
    let cancel = CancellationToken::new();

    let warnings = warnings(&config);
    for warning in &warnings {
        tracing::warn!("{warning}");
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
        config.file.clone(),
        cancel.clone(),
    ));

    let app = server::router(
        server::AppState::new(exposition, store, warnings)
            .with_max_requests(options.max_requests)
            .with_plan_command(options.plan_command),
    );
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
            server::serve(listener, app, stop).await
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
            if web.tls_enabled() {
                web::tls::serve(listener, app, web, stop).await
            } else {
                server::serve(listener, app, stop).await
            }
        }
    };
    cancel.cancel();
    let _ = reloads.await;
    served.context("the HTTP server failed")
}

/// What the operator should know about the configuration: logged at start and shown on `/`.
fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for f in &config.foundations {
        if f.tls.skip_verify {
            out.push(format!(
                "foundation {}: TLS certificate verification toward Cloud Foundry is OFF (--cf-skip-tls-verify); anyone on the path can read the credentials",
                f.name
            ));
        }
        if f.api_url.scheme() == "http" && !config::is_loopback(&f.api_url) {
            out.push(format!(
                "foundation {}: the API is reached over plain http ({}); tokens and credentials travel unencrypted",
                f.name, f.api_url
            ));
        }
    }
    out
}

/// Owns the supervisor: applies reloads on SIGHUP, stops everything on cancel.
async fn reload_on_sighup(
    mut supervisor: Supervisor,
    file: Option<std::path::PathBuf>,
    cancel: CancellationToken,
) {
    #[cfg(unix)]
    let mut hangup = match (
        &file,
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
                let Some(path) = &file else { continue };
                match config::file::load(path) {
                    Ok(foundations) => match supervisor.apply(foundations).await {
                        Ok(()) => tracing::info!(file = %path.display(), "configuration reloaded"),
                        Err(e) => tracing::error!(file = %path.display(), error = %e, "reload refused; keeping the running configuration"),
                    },
                    Err(e) => tracing::error!(error = %e, "reload refused; keeping the running configuration"),
                }
            }
        }
    }
    supervisor.shutdown().await;
}
