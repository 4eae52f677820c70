//! Basic auth and extra response headers for the HTTP endpoints, as an axum middleware.
//!
//! `/healthz` stays open (liveness probes carry no credentials; it says nothing but "ok"); every
//! other path needs a user of `basic_auth_users` when there are any. The check follows the
//! exporter-toolkit: an unknown user costs the same bcrypt work as a known one (no user
//! enumeration by timing), bcrypt runs one at a time (it is CPU-heavy by design; two cores must
//! keep serving), and a successful check is cached so a scrape every 15 s does not pay ~70 ms of
//! bcrypt each time.
//!
//! The cache holds SHA-256 digests of (user, hash, password), never a password, and only
//! successes, so a client guessing passwords can neither fill it nor evict the scrapers' entries.
//! It is bounded ([`CACHE_CAPACITY`]); when full it is emptied, costing each real user one more
//! bcrypt. A std `Mutex` guards it: it is held for a lookup or an insert, never across an await.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::zeroize::Zeroizing;
use tokio::sync::Semaphore;

use super::config::WebConfig;
use super::WebConfigFile;

/// The one path served without credentials.
pub const OPEN_PATH: &str = "/healthz";

/// Most cached successful logins; a handful of scrapers need a handful.
pub const CACHE_CAPACITY: usize = 100;

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
    let mut response = if open || web.verifier.check(config, request.headers()).await {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cf-service-key-exporter\""),
            )],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Checks basic-auth credentials against bcrypt hashes, with the cache described above.
#[derive(Debug)]
pub struct Verifier {
    cache: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time, as the toolkit's `bcryptMtx`.
    bcrypt: Arc<Semaphore>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            cache: Mutex::default(),
            bcrypt: Arc::new(Semaphore::new(1)),
        }
    }
}

impl Verifier {
    /// Whether `headers` carry the password of a user of `config`.
    pub async fn check(&self, config: &WebConfig, headers: &HeaderMap) -> bool {
        let Some((user, password)) = credentials(headers) else {
            return false;
        };
        let (known, hash) = match config.users.get(&user) {
            Some(hash) => (true, hash.as_str().to_owned()),
            // Spend the same bcrypt work on an unknown user as on a known one: use a configured
            // hash (same cost), whose result is then ignored.
            None => match config.users.values().next() {
                Some(hash) => (false, hash.as_str().to_owned()),
                None => return false,
            },
        };
        let key = cache_key(&user, &hash, &password);
        if known && self.lock_cache().contains(&key) {
            return true;
        }
        let Ok(permit) = self.bcrypt.clone().acquire_owned().await else {
            return false;
        };
        // The permit moves into the blocking task, so a client that hangs up mid-check does not
        // let a second bcrypt start beside the first.
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(&*password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = known && matched;
        if ok {
            self.remember(key);
        }
        ok
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
fn credentials(headers: &HeaderMap) -> Option<(String, Zeroizing<Vec<u8>>)> {
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

/// SHA-256 over length-prefixed user, hash and password: a changed hash (password rotated in the
/// file) misses the cache, and no two different triples share a key.
fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
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
        assert!(
            verifier
                .check(&config, &basic("prometheus", "s3cret"))
                .await
        );
        assert_eq!(verifier.cached(), 1);
        assert!(
            verifier
                .check(&config, &basic("prometheus", "s3cret"))
                .await
        );
        assert_eq!(verifier.cached(), 1);
    }

    #[tokio::test]
    async fn wrong_passwords_unknown_users_and_junk_fail_and_are_not_cached() {
        let config = config(&[("prometheus", "s3cret")]);
        let verifier = Verifier::default();
        assert!(!verifier.check(&config, &basic("prometheus", "wrong")).await);
        assert!(!verifier.check(&config, &basic("grafana", "s3cret")).await);
        assert!(!verifier.check(&config, &HeaderMap::new()).await);
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(!verifier.check(&config, &bearer).await);
        let mut junk = HeaderMap::new();
        junk.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(!verifier.check(&config, &junk).await);
        assert_eq!(verifier.cached(), 0);
    }

    #[tokio::test]
    async fn a_password_with_a_colon_is_whole() {
        let config = config(&[("prometheus", "a:b:c")]);
        assert!(
            Verifier::default()
                .check(&config, &basic("prometheus", "a:b:c"))
                .await
        );
    }

    #[tokio::test]
    async fn a_cached_login_stops_working_when_the_hash_changes() {
        let verifier = Verifier::default();
        let before = config(&[("prometheus", "old")]);
        assert!(verifier.check(&before, &basic("prometheus", "old")).await);
        let after = config(&[("prometheus", "new")]);
        assert!(!verifier.check(&after, &basic("prometheus", "old")).await);
        assert!(verifier.check(&after, &basic("prometheus", "new")).await);
    }

    #[test]
    fn the_cache_is_bounded() {
        let verifier = Verifier::default();
        for i in 0..(CACHE_CAPACITY * 3 + 7) {
            verifier.remember(cache_key(&i.to_string(), "h", b"p"));
            assert!(verifier.cached() <= CACHE_CAPACITY);
        }
    }

    #[test]
    fn cache_keys_do_not_collide_across_field_boundaries() {
        assert_ne!(cache_key("ab", "c", b"d"), cache_key("a", "bc", b"d"));
    }
}
