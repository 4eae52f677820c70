//! Protection of the HTTP endpoints (`--web-config-file`): TLS, mTLS, basic auth and extra
//! headers, in the Prometheus exporter-toolkit's file format.
//!
//! [`config`] parses and validates the file, [`tls`] builds the rustls config and serves over it,
//! [`auth`] is the basic-auth middleware. [`WebConfigFile`] holds the active config and re-reads
//! it when the file, or a certificate, key or CA file it names, changes: a rotated certificate or
//! a new user needs no restart. The toolkit re-reads the file on every request; here every
//! request and every new TLS connection costs one `stat` per watched file, and the
//! file is parsed again only when one of those changed. A file that turns bad keeps the last good
//! config and is logged once per change.
//!
//! Whether the port speaks TLS is fixed at start: a reload that would switch between TLS and plain
//! HTTP is refused (a typo must never silently drop TLS), so that switch needs a restart. So is a
//! reload that weakens protection (removes basic auth, lowers client-certificate checking or the
//! TLS minimum) unless `--web-config-allow-weakening` says so, and a file that is empty on reload
//! (more likely a non-atomic rewrite under way than a wish to drop every protection). A refused
//! reload keeps the last good config, logs an error and counts in
//! `cf_service_key_exporter_config_reload_failures_total{config="web"}`.
//!
//! HTTP/2 is not served: `http_server_config.http2` is accepted and ignored, ALPN offers
//! `http/1.1`, which every Prometheus speaks.
//!
//! Concurrency: the active config is an `ArcSwap`, read without locking. The change check holds a
//! std `Mutex` for a few `stat` calls (and, on a change, the re-read of a few small local files);
//! a request that finds it taken uses the active config rather than wait.

pub mod auth;
pub mod config;
pub mod serve;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use axum::Router;

pub use config::{WebConfig, WebConfigError};

/// The web config in force, and what it was built from.
pub struct Active {
    pub config: WebConfig,
    /// Built from `config.tls`; `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A `--web-config-file`, loaded and watched for changes.
pub struct WebConfigFile {
    path: PathBuf,
    tls_enabled: bool,
    active: ArcSwap<Active>,
    watch: Mutex<Watch>,
    verifier: auth::Verifier,
    /// `--web-config-allow-weakening`.
    allow_weakening: bool,
    /// Counts refused reloads once the exporter's metrics exist.
    failures: OnceLock<prometheus_client::metrics::counter::Counter>,
}

impl std::fmt::Debug for WebConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfigFile")
            .field("path", &self.path)
            .field("tls_enabled", &self.tls_enabled)
            .finish_non_exhaustive()
    }
}

/// The files last read and their state then.
struct Watch {
    files: Vec<PathBuf>,
    stamps: Vec<Option<Stamp>>,
}

/// Enough of a file's metadata to notice a rewrite or a swapped symlink (Kubernetes secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        },
    })
}

fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files.iter().map(|f| stamp(f)).collect()
}

/// Reads the file and everything it names. Returns the files to watch whatever the outcome, so
/// a later fix of a missing certificate is noticed too.
fn read(path: &Path, allow_empty: bool) -> (Vec<PathBuf>, Result<Active, WebConfigError>) {
    let mut files = vec![path.to_owned()];
    let config = match config::load_as(path, allow_empty) {
        Ok(c) => c,
        Err(e) => return (files, Err(e)),
    };
    let tls = match &config.tls {
        None => None,
        Some(settings) => {
            files.extend(settings.files());
            match tls::server_config(settings) {
                Ok(c) => Some(Arc::new(c)),
                Err(problem) => {
                    return (
                        files,
                        Err(WebConfigError {
                            path: path.to_owned(),
                            problem,
                        }),
                    )
                }
            }
        }
    };
    (files, Ok(Active { config, tls }))
}

impl WebConfigFile {
    /// Reads and validates the file and every file it names; any problem is an error naming the
    /// file and the field.
    pub fn load(path: impl Into<PathBuf>) -> Result<WebConfigFile, WebConfigError> {
        let path = path.into();
        // Stamp before reading: a change during the read is seen at the next check.
        let before = stamps(std::slice::from_ref(&path));
        let (files, active) = read(&path, true);
        let active = active?;
        let mut file_stamps = before;
        file_stamps.extend(stamps(&files[1..]));
        Ok(WebConfigFile {
            tls_enabled: active.tls.is_some(),
            path,
            active: ArcSwap::from_pointee(active),
            watch: Mutex::new(Watch {
                files,
                stamps: file_stamps,
            }),
            verifier: auth::Verifier::default(),
            allow_weakening: false,
            failures: OnceLock::new(),
        })
    }

    /// Accepts reloads that weaken protection (`--web-config-allow-weakening`).
    pub fn allow_weakening(mut self, allow: bool) -> Self {
        self.allow_weakening = allow;
        self
    }

    /// Counts every refused reload in `counter` (set once, when the metrics exist).
    pub fn count_failures_in(&self, counter: prometheus_client::metrics::counter::Counter) {
        let _ = self.failures.set(counter);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the port serves TLS (fixed at start).
    pub fn tls_enabled(&self) -> bool {
        self.tls_enabled
    }

    /// Whether basic auth is on in the active config.
    pub fn basic_auth_enabled(&self) -> bool {
        !self.active.load().config.users.is_empty()
    }

    /// The active config, re-read first if a watched file changed.
    pub fn current(&self) -> Arc<Active> {
        if let Ok(mut watch) = self.watch.try_lock() {
            let now = stamps(&watch.files);
            if now != watch.stamps {
                self.reload(&mut watch);
            }
        }
        self.active.load_full()
    }

    /// A TLS acceptor for a new connection, with the current certificate.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.current()
            .tls
            .clone()
            .map(tokio_rustls::TlsAcceptor::from)
    }

    /// `router` with basic auth and the configured headers on every route.
    pub fn protect(self: &Arc<Self>, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            auth::require,
        ))
    }

    fn reload(&self, watch: &mut Watch) {
        let before = stamps(std::slice::from_ref(&self.path));
        let (files, result) = read(&self.path, false);
        let mut file_stamps = before;
        file_stamps.extend(stamps(&files[1..]));
        watch.files = files;
        watch.stamps = file_stamps;
        let active = match result {
            Ok(active) => active,
            Err(e) => return self.refuse(&e.to_string()),
        };
        if active.tls.is_some() != self.tls_enabled {
            return self.refuse("switching between TLS and plain HTTP needs a restart");
        }
        let weakened = self.active.load().config.weakened_by(&active.config);
        match weakened {
            Some(how) if !self.allow_weakening => {
                return self.refuse(&format!(
                    "{how}; restart, or allow it with --web-config-allow-weakening"
                ))
            }
            Some(how) => {
                tracing::warn!(file = %self.path.display(), "web config reload weakens protection: {how}")
            }
            None => {}
        }
        tracing::info!(
            file = %self.path.display(),
            tls = active.tls.is_some(),
            basic_auth_users = active.config.users.len(),
            "web config reloaded"
        );
        self.active.store(Arc::new(active));
    }

    fn refuse(&self, why: &str) {
        tracing::error!(
            file = %self.path.display(),
            "web config reload refused: {why}; keeping the last good web config"
        );
        if let Some(counter) = self.failures.get() {
            counter.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_rewrite_keeps_the_last_good_config_and_a_fix_is_picked_up() {
        let dir = std::env::temp_dir().join(format!("web-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        let hash = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(&path, format!("basic_auth_users:\n  a: '{hash}'\n")).unwrap();
        let web = WebConfigFile::load(&path).unwrap();
        assert!(web.current().config.users.contains_key("a"));

        std::fs::write(&path, "basic_auth_users: [not, a, map]\n").unwrap();
        assert!(web.current().config.users.contains_key("a"));

        std::fs::write(
            &path,
            format!("basic_auth_users:\n  a: '{hash}'\n  b: '{hash}'\n"),
        )
        .unwrap();
        assert!(web.current().config.users.contains_key("b"));

        // A config naming certificates that do not exist is refused; the last good one stays.
        std::fs::write(&path, "tls_server_config:\n  cert_file: x\n  key_file: y\n").unwrap();
        assert!(web.current().tls.is_none());
        assert!(web.current().config.users.contains_key("b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let e = WebConfigFile::load("/nonexistent/web.yml").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("web config /nonexistent/web.yml: cannot read the file:"),
            "{text}"
        );
    }
}
