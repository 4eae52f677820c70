//! The accept loop of the HTTP endpoints, plain or TLS, with the limits that keep slow or
//! hostile clients from starving the scraper.
//!
//! Why our own loop rather than `axum::serve`: `axum::serve` builds hyper without a timer, so
//! hyper's header-read timeout is silently off, and it caps nothing. Here every connection gets:
//!
//! - a **header timeout** (`--web-header-timeout`): a connection that has not sent a whole request
//!   head within it, at its start or between keep-alive requests, is closed (hyper's
//!   `header_read_timeout`, with a timer);
//! - a **connection cap** (`--web-max-connections`): past it a new connection is closed at once,
//!   before anything is read from it, so idle sockets cannot exhaust file descriptors;
//! - a **write deadline** (`--web-write-timeout`): a connection whose client has not read its
//!   response (and sent a new request, or hung up) within it is closed, which drops the body and
//!   with it the `--web-max-requests` slot it holds (a client that asks for `/metrics` and never
//!   reads must not keep the scraper out). An idle keep-alive connection is so closed at the
//!   latest that long after its last response.
//!
//! On TLS the handshake must also finish within the header timeout, and each connection gets the
//! current certificate (see [`super::tls`]).
//!
//! Concurrency: the loop only accepts; each connection runs in its own task, holding one permit
//! of the connection cap until it ends. A response's deadline is a small task that cancels the
//! connection's token unless the next request or the end of the connection disarms it first.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, DropGuard};
use tower::ServiceExt as _;

use super::WebConfigFile;

/// Default of `--web-header-timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `--web-write-timeout`: three times Prometheus' default scrape timeout; a scrape
/// slower than that has already failed on Prometheus' side.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `--web-max-connections`: far more than a few scrapers and browsers need, far less
/// than the usual file-descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default of `--web-max-requests`, as node_exporter's `--web.max-requests`.
pub const DEFAULT_MAX_REQUESTS: usize = 40;

/// The per-connection limits (flags `--web-header-timeout`, `--web-write-timeout`,
/// `--web-max-connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a whole request head (at the start and between keep-alive requests).
    pub header_timeout: Duration,
    /// Longest time a response may take to be written out.
    pub write_timeout: Duration,
    /// Most connections open at once; 0: no limit.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for open connections to
/// finish their requests (bounded by the write deadline). With `tls`, every connection is TLS
/// with the certificate current when it was accepted.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<WebConfigFile>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let cap =
        (limits.max_connections > 0).then(|| Arc::new(Semaphore::new(limits.max_connections)));
    let at_cap = AtomicBool::new(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin (as axum does).
                    tracing::warn!(error = %e, "cannot accept a connection; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = admit(cap.as_ref(), &at_cap, limits.max_connections) else {
            drop(stream);
            continue;
        };
        // Each response chunk at once: a `/metrics` body streams in chunks, and Nagle's
        // algorithm against the scraper's delayed ACKs would delay a scrape (docs/performance.md).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = match &tls {
            None => None,
            // The config current now, re-read if the file or a certificate changed.
            Some(web) => match web.tls_acceptor() {
                Some(acceptor) => Some(acceptor),
                None => {
                    // Cannot happen: a reload never turns TLS off while serving TLS. Fail closed.
                    tracing::error!("no TLS configuration; dropping the connection");
                    continue;
                }
            },
        };
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                return connection(stream, app, limits, watcher, peer).await;
            };
            let handshake = super::tls::handshake(acceptor, stream);
            match tokio::time::timeout(limits.header_timeout, handshake).await {
                Ok(Ok(stream)) => connection(stream, app, limits, watcher, peer).await,
                Ok(Err(e)) => super::tls::log_handshake_error(peer, &e),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A permit of the connection cap (`None`: no cap), or `Err` past it: the caller closes the
/// connection at once.
fn admit(
    cap: Option<&Arc<Semaphore>>,
    at_cap: &AtomicBool,
    max_connections: usize,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ()> {
    let Some(cap) = cap else {
        return Ok(None);
    };
    match cap.clone().try_acquire_owned() {
        Ok(permit) => {
            at_cap.store(false, Ordering::Relaxed);
            Ok(Some(permit))
        }
        Err(_) => {
            // Once per episode, not once per connection: a flood must not flood the log.
            if !at_cap.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_connections,
                    "connection cap reached; closing new connections (see --web-max-connections)"
                );
            }
            Err(())
        }
    }
}

/// Serves HTTP/1.1 on one connection until it ends, the client stalls past a deadline, or
/// shutdown.
async fn connection<S>(
    stream: S,
    app: Router,
    limits: Limits,
    watcher: hyper_util::server::graceful::Watcher,
    peer: std::net::SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = CancellationToken::new();
    let deadline = Arc::new(Deadline {
        kill: kill.clone(),
        timeout: limits.write_timeout,
        armed: Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let app = app.clone();
        let deadline = deadline.clone();
        async move {
            // A new request: the previous response is out.
            deadline.disarm();
            let response = app.oneshot(request.map(Body::new)).await?;
            deadline.arm();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        ended = watcher.watch(connection) => {
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = kill.cancelled() => {
            tracing::debug!(%peer, "response not written within --web-write-timeout; connection closed");
        }
    }
}

/// The write deadline of a connection: armed when a response starts, disarmed by the next
/// request or the end of the connection. Hyper does not say when a response has been flushed,
/// and a body stream ends while its last chunks still sit in hyper's and the kernel's buffers;
/// the next request is the first sure sign that the client read the whole response.
struct Deadline {
    kill: CancellationToken,
    timeout: Duration,
    /// Dropping the guard disarms the timer task.
    armed: Mutex<Option<DropGuard>>,
}

impl Deadline {
    fn arm(&self) {
        let done = CancellationToken::new();
        let (kill, timeout, cancelled) = (self.kill.clone(), self.timeout, done.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => kill.cancel(),
                _ = cancelled.cancelled() => {}
            }
        });
        *self.lock() = Some(done.drop_guard());
    }

    fn disarm(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<DropGuard>> {
        // Only a guard is inside: a panic elsewhere cannot leave it half-written.
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }
}
