//! Basic auth and extra response headers for the HTTP endpoints, as an axum middleware.
//!
//! `/healthz` stays open (liveness probes carry no credentials; it says nothing but "ok"); every
//! other path needs a user of `basic_auth_users` when there are any. The check follows the
//! exporter-toolkit: an unknown user costs the same bcrypt work as the most expensive known one
//! (no user enumeration by timing, even with hashes of different costs), bcrypt runs one at a
//! time (it is CPU-heavy by design; two cores must keep serving), and a successful check is
//! cached so a scrape every 15 s does not pay a bcrypt each time. At most [`BCRYPT_QUEUE`]
//! requests wait for the bcrypt slot; more get a 429 at once, so a crowd of wrong passwords cannot
//! queue the real scraper past its scrape timeout.
//!
//! The cache holds HMAC-SHA-256 digests of (user, hash, password) under a key drawn at random
//! per process, never a password, and only successes, so a client guessing passwords can neither
//! fill it nor evict the scrapers' entries, and a memory dump gives no offline guessing oracle.
//! It is bounded ([`CACHE_CAPACITY`]); when full it is emptied, costing each real user one more
//! bcrypt. A std `Mutex` guards it: it is held for a lookup or an insert, never across an await.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::zeroize::Zeroizing;
use tokio::sync::Semaphore;

use super::config::{PasswordHash, WebConfig};
use super::WebConfigFile;

/// The one path served without credentials.
pub const OPEN_PATH: &str = "/healthz";

/// Most cached successful logins; a handful of scrapers need a handful.
pub const CACHE_CAPACITY: usize = 100;

/// Most requests waiting for the bcrypt slot (besides the one being checked); a few scrapers
/// logging in after a restart fit.
pub const BCRYPT_QUEUE: usize = 4;

/// The outcome of a credentials check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// The bcrypt queue is full: try again shortly (429).
    Busy,
}

/// The middleware: adds the configured headers to every response and asks for basic auth on every
/// path but [`OPEN_PATH`].
pub async fn require(
    State(web): State<Arc<WebConfigFile>>,
    request: Request,
    next: Next,
) -> Response {
    let active = web.current();
    let config = &active.config;
    // Exact match: axum routes only this exact path to the health handler, so nothing else can
    // slip through unauthenticated.
    let open = config.users.is_empty() || request.uri().path() == OPEN_PATH;
    let verdict = if open {
        Verdict::Pass
    } else {
        web.verifier.check(config, request.headers()).await
    };
    let mut response = match verdict {
        Verdict::Pass => next.run(request).await,
        Verdict::Fail => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cf-service-key-exporter\""),
            )],
            "Unauthorized\n",
        )
            .into_response(),
        Verdict::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            "too many logins being checked, try again\n",
        )
            .into_response(),
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Checks basic-auth credentials against bcrypt hashes, with the cache described above.
pub struct Verifier {
    cache: Mutex<HashSet<[u8; 32]>>,
    /// Keys the cache digests; drawn at start, never leaves the process.
    key: ring::hmac::Key,
    /// One bcrypt at a time, as the toolkit's `bcryptMtx`.
    bcrypt: Arc<Semaphore>,
    /// Requests waiting for or holding the bcrypt slot.
    queued: AtomicUsize,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Default for Verifier {
    fn default() -> Self {
        let random = ring::rand::SystemRandom::new();
        Verifier {
            cache: Mutex::default(),
            // The system's random source failing is unrecoverable anyway.
            key: ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &random)
                .expect("the system random source works"),
            bcrypt: Arc::new(Semaphore::new(1)),
            queued: AtomicUsize::new(0),
        }
    }
}

/// Counts a request in the bcrypt queue while it lives.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier {
    /// Whether `headers` carry the password of a user of `config`.
    pub async fn check(&self, config: &WebConfig, headers: &HeaderMap) -> Verdict {
        let Some((user, password)) = credentials(headers) else {
            return Verdict::Fail;
        };
        let (known, hash) = match config.users.get(&user) {
            Some(hash) => (true, hash.as_str().to_owned()),
            // Spend the same bcrypt work on an unknown user as on the costliest known one,
            // whose result is then ignored.
            None => match costliest(config) {
                Some(hash) => (false, hash.as_str().to_owned()),
                None => return Verdict::Fail,
            },
        };
        let key = self.cache_key(&user, &hash, &password);
        if known && self.lock_cache().contains(&key) {
            return Verdict::Pass;
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) > BCRYPT_QUEUE {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Verdict::Busy;
        }
        let queued = Queued(&self.queued);
        let Ok(permit) = self.bcrypt.clone().acquire_owned().await else {
            return Verdict::Fail;
        };
        // The permit moves into the blocking task, so a client that hangs up mid-check does not
        // let a second bcrypt start beside the first.
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(&*password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        drop(queued);
        if known && matched {
            self.remember(key);
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// HMAC-SHA-256 over length-prefixed user, hash and password: a changed hash (password
    /// rotated in the file) misses the cache, and no two different triples share a key.
    fn cache_key(&self, user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
        let mut context = ring::hmac::Context::with_key(&self.key);
        for part in [user.as_bytes(), hash.as_bytes(), password] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(context.sign().as_ref());
        key
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // A panic while holding the lock cannot leave the set half-updated; keep using it.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.lock_cache().len()
    }
}

/// User and password of an `Authorization: Basic` header.
pub(crate) fn credentials(headers: &HeaderMap) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    );
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, Zeroizing::new(decoded[colon + 1..].to_vec())))
}

/// The hash with the highest bcrypt cost (the first such in user order): what an unknown user
/// is checked against.
fn costliest(config: &WebConfig) -> Option<&PasswordHash> {
    let cost = |h: &PasswordHash| {
        h.as_str()
            .parse::<bcrypt::HashParts>()
            .map_or(0, |p| p.get_cost())
    };
    config.users.values().rev().max_by_key(|h| cost(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::config::parse;

    fn config(users: &[(&str, &str)]) -> WebConfig {
        let mut text = String::from("basic_auth_users:\n");
        for (user, password) in users {
            let hash = bcrypt::hash(password, 4).unwrap();
            text.push_str(&format!("  {user}: '{hash}'\n"));
        }
        parse(&text, std::path::Path::new(".")).unwrap()
    }

    async fn passes(verifier: &Verifier, config: &WebConfig, headers: &HeaderMap) -> bool {
        verifier.check(config, headers).await == Verdict::Pass
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn the_right_password_passes_and_is_cached() {
        let config = config(&[("prometheus", "s3cret")]);
        let verifier = Verifier::default();
        assert!(passes(&verifier, &config, &basic("prometheus", "s3cret")).await);
        assert_eq!(verifier.cached(), 1);
        assert!(passes(&verifier, &config, &basic("prometheus", "s3cret")).await);
        assert_eq!(verifier.cached(), 1);
    }

    #[tokio::test]
    async fn wrong_passwords_unknown_users_and_junk_fail_and_are_not_cached() {
        let config = config(&[("prometheus", "s3cret")]);
        let verifier = Verifier::default();
        assert!(!passes(&verifier, &config, &basic("prometheus", "wrong")).await);
        assert!(!passes(&verifier, &config, &basic("grafana", "s3cret")).await);
        assert!(!passes(&verifier, &config, &HeaderMap::new()).await);
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(!passes(&verifier, &config, &bearer).await);
        let mut junk = HeaderMap::new();
        junk.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(!passes(&verifier, &config, &junk).await);
        assert_eq!(verifier.cached(), 0);
    }

    #[tokio::test]
    async fn a_password_with_a_colon_is_whole() {
        let config = config(&[("prometheus", "a:b:c")]);
        assert!(passes(&Verifier::default(), &config, &basic("prometheus", "a:b:c")).await);
    }

    #[tokio::test]
    async fn a_cached_login_stops_working_when_the_hash_changes() {
        let verifier = Verifier::default();
        let before = config(&[("prometheus", "old")]);
        assert!(passes(&verifier, &before, &basic("prometheus", "old")).await);
        let after = config(&[("prometheus", "new")]);
        assert!(!passes(&verifier, &after, &basic("prometheus", "old")).await);
        assert!(passes(&verifier, &after, &basic("prometheus", "new")).await);
    }

    #[test]
    fn the_cache_is_bounded() {
        let verifier = Verifier::default();
        for i in 0..(CACHE_CAPACITY * 3 + 7) {
            verifier.remember(verifier.cache_key(&i.to_string(), "h", b"p"));
            assert!(verifier.cached() <= CACHE_CAPACITY);
        }
    }

    #[test]
    fn cache_keys_do_not_collide_across_field_boundaries() {
        let v = Verifier::default();
        assert_ne!(v.cache_key("ab", "c", b"d"), v.cache_key("a", "bc", b"d"));
    }

    #[test]
    fn cache_keys_are_keyed_per_process() {
        // Two verifiers (two processes) digest the same login differently, and neither is the
        // plain SHA-256 an attacker could precompute.
        let (a, b) = (Verifier::default(), Verifier::default());
        assert_ne!(a.cache_key("u", "h", b"p"), b.cache_key("u", "h", b"p"));
        assert_eq!(a.cache_key("u", "h", b"p"), a.cache_key("u", "h", b"p"));
        let mut plain = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [&b"u"[..], b"h", b"p"] {
            plain.update(&(part.len() as u64).to_be_bytes());
            plain.update(part);
        }
        assert_ne!(a.cache_key("u", "h", b"p")[..], *plain.finish().as_ref());
    }

    #[test]
    fn an_unknown_user_is_checked_against_the_costliest_hash() {
        // "a" sorts first but has the cheaper hash: the old choice (first user) was "a"'s.
        let cheap = bcrypt::hash("x", 4).unwrap();
        let dear = bcrypt::hash("y", 6).unwrap();
        let text = format!("basic_auth_users:\n  a: '{cheap}'\n  b: '{dear}'\n  c: '{cheap}'\n");
        let config = parse(&text, std::path::Path::new(".")).unwrap();
        assert_eq!(costliest(&config).unwrap().as_str(), dear);
    }

    #[tokio::test]
    async fn beyond_the_bcrypt_queue_a_login_is_busy_at_once() {
        let config = config(&[("prometheus", "s3cret")]);
        let verifier = Verifier::default();
        // Hold the bcrypt slot, and fill the queue with waiting checks.
        let held = verifier.bcrypt.clone().acquire_owned().await.unwrap();
        let headers = basic("prometheus", "wrong");
        let waiting: Vec<_> = (0..=BCRYPT_QUEUE)
            .map(|_| verifier.check(&config, &headers))
            .collect();
        let mut waiting = futures::future::join_all(waiting);
        // Poll them once so each takes its place in the queue.
        assert!(futures::poll!(&mut waiting).is_pending());
        // At once: with an unbounded queue this would wait for the held slot (and time out).
        let busy = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            verifier.check(&config, &headers),
        )
        .await;
        assert_eq!(busy, Ok(Verdict::Busy));
        drop(held);
        let verdicts = waiting.await;
        assert!(verdicts.iter().all(|v| *v == Verdict::Fail), "{verdicts:?}");
        // The queue drained: the next check is a real one again.
        assert_eq!(verifier.check(&config, &headers).await, Verdict::Fail);
        assert!(passes(&verifier, &config, &basic("prometheus", "s3cret")).await);
    }
}
