//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and a landing page (rendered by
//! [`crate::landing`]).
//!
//! Handlers only read the current snapshot; they never call Cloud Foundry and never wait on a
//! refresh. Rendering a newly published snapshot is CPU work, so it runs on the blocking pool
//! instead of stalling the async workers; the body then streams out of shared blocks (see
//! [`crate::metrics`]), so concurrent scrapes do not each hold a copy of it. At most
//! `--web-max-requests` scrapes are served at once; more get a 503 at once rather than queueing
//! without bound.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::clock::Clock as _;
use crate::metrics::{Exposition, Format};
use crate::snapshot::Store;
use crate::web::serve::DEFAULT_MAX_REQUESTS;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    exposition: Arc<Exposition>,
    store: Arc<Store>,
    /// Recomputed at every config reload.
    warnings: Arc<arc_swap::ArcSwap<Vec<String>>>,
    /// How the landing page shows the rotate-plan command.
    plan_command: Arc<crate::landing::PlanCommand>,
    /// Scrapes being served; `None`: no limit.
    scrapes: Option<Arc<Semaphore>>,
}

impl AppState {
    /// `warnings` are shown on the landing page (e.g. TLS verification is off).
    pub fn new(exposition: Exposition, store: Arc<Store>, warnings: Vec<String>) -> Self {
        AppState {
            exposition: Arc::new(exposition),
            store,
            warnings: Arc::new(arc_swap::ArcSwap::from_pointee(warnings)),
            plan_command: Arc::default(),
            scrapes: Some(Arc::new(Semaphore::new(DEFAULT_MAX_REQUESTS))),
        }
    }

    /// Shows the warnings `warnings` holds at each request (the reload loop replaces them).
    pub fn with_warnings(mut self, warnings: Arc<arc_swap::ArcSwap<Vec<String>>>) -> Self {
        self.warnings = warnings;
        self
    }

    /// Shows this rotate-plan command on the landing page.
    pub fn with_plan_command(mut self, command: crate::landing::PlanCommand) -> Self {
        self.plan_command = Arc::new(command);
        self
    }

    /// Serves at most `limit` scrapes at once (0: no limit).
    pub fn with_max_requests(mut self, limit: usize) -> Self {
        self.scrapes = (limit > 0).then(|| Arc::new(Semaphore::new(limit)));
        self
    }
}

/// Serves `app` on `listener` over plain HTTP until `shutdown` completes, with the default
/// connection limits (see [`crate::web::serve`]); tests and benchmarks serve this way.
#[cfg(any(test, feature = "testing"))]
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::web::serve::serve(listener, app, None, Default::default(), shutdown).await
}

/// The exporter's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(metrics_handler).layer(
                // The fastest level: the default one costs far more time per scrape for a
                // slightly smaller body (docs/performance.md).
                CompressionLayer::new()
                    .gzip(true)
                    .quality(CompressionLevel::Fastest),
            ),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/", get(landing))
        // A 503 from /readyz before the first complete read is expected, not an error worth a
        // log line per probe; the handlers log their own failures.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

/// OpenMetrics when the scraper asks for it (Prometheus does), the classic text format otherwise.
async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Held until the body has been sent: the permit travels with the stream.
    let permit = match &state.scrapes {
        None => None,
        Some(scrapes) => match scrapes.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(
                    "too many concurrent scrapes; answering 503 (see --web-max-requests)"
                );
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many concurrent scrapes, try again\n",
                )
                    .into_response();
            }
        },
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let exposition = state.exposition.clone();
    let Ok(scrape) = tokio::task::spawn_blocking(move || exposition.scrape(format)).await else {
        // Rendering does not panic; answer 500 rather than crash if that ever changes.
        tracing::error!("rendering the metrics failed");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the metrics failed\n",
        )
            .into_response();
    };
    let body = scrape.into_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    (
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(body),
    )
        .into_response()
}

/// 200 once every foundation is ready ([`crate::snapshot::RefreshStatus::ready`]: seeded from
/// the cache file, or a refresh read every listed key or tried to), so a rollout onto a cold pod
/// does not publish a half-read estate as the truth; 503 naming what it waits for before.
async fn ready(State(state): State<AppState>) -> Response {
    let snapshot = state.store.load();
    let waiting: Vec<String> = snapshot
        .foundations
        .iter()
        .filter(|(_, f)| !f.status.ready)
        .map(|(name, f)| {
            if f.status.finished_once {
                format!(
                    "{name} ({} of {} keys not read yet)",
                    f.unattempted(),
                    f.keys.len()
                )
            } else {
                format!("{name} (first refresh)")
            }
        })
        .collect();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for a complete read of: {}\n", waiting.join(", ")),
        )
            .into_response()
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let snapshot = state.store.load();
    let now = crate::clock::SystemClock.unix_now();
    Html(crate::landing::page(
        &snapshot,
        &state.warnings.load(),
        &state.plan_command,
        now,
    ))
}
