//! The one HTTP transport every Cloud Foundry and UAA request of a foundation goes through.
//!
//! It owns the pooled `reqwest::Client` (TLS settings, timeouts, no redirects), counts every
//! request in `api_requests_total{endpoint,code}`, caps response bodies, decodes JSON into typed
//! errors, retries transient failures with jittered exponential backoff, and paces requests when
//! Cloud Foundry rate-limits us. Callers name each request by its route template, so no guid
//! ever becomes a label value.
//!
//! The pacer's waits (a `Retry-After`, the spacing until `X-RateLimit-Reset`) are measured
//! against the server's wall clock, so they run on the injected [`Clock`]: a test steps through
//! a rate-limit window without sleeping. The jittered backoff of other transient failures stays
//! on tokio's timer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{is_transient_status, ApiError, CfError, Chain, TransportKind};
use crate::clock::{unix_seconds, Clock, SystemClock};
use crate::config::{HttpOptions, TlsOptions};
use crate::vocab::{ApiEvent, RateLimit, Telemetry};

/// Which body cap a request gets (sizes in [`HttpOptions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// A list page: up to 5000 resources with `included`.
    List,
    /// A key's `/details`, the API root document or a token answer.
    Small,
}

/// Longest `Retry-After` we honour by waiting; longer ones fail the request instead of stalling
/// the refresh (the next refresh tries again).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The rate limit an answer's headers announce; `None` when it carries no (complete)
/// rate-limit headers.
fn announced_rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    Some(RateLimit {
        limit: header_u64(headers, "x-ratelimit-limit")?,
        remaining: header_u64(headers, "x-ratelimit-remaining")?,
        reset: i64::try_from(header_u64(headers, "x-ratelimit-reset")?).ok()?,
    })
}

/// Builds the shared client for one foundation.
pub fn build_client(tls: &TlsOptions, http: &HttpOptions) -> Result<reqwest::Client, CfError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(http.connect_timeout)
        // A body that stalls half-way fails after `read_timeout` of silence, not only when the
        // whole request runs out of time.
        .read_timeout(http.read_timeout)
        .timeout(http.request_timeout)
        // A redirect would carry the bearer token to wherever it points: never follow one.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "cf-service-key-exporter/",
            env!("CARGO_PKG_VERSION")
        ))
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|source| CfError::CaFile {
            path: path.clone(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CfError::CaCertificates {
                path: path.clone(),
                source: Some(e),
            })?;
        if certs.is_empty() {
            return Err(CfError::CaCertificates {
                path: path.clone(),
                source: None,
            });
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if tls.skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(CfError::Client)
}

/// Sends requests for one foundation; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Transport {
    client: reqwest::Client,
    telemetry: Arc<dyn Telemetry>,
    /// Requests sent so far (every try counts).
    sent: AtomicU64,
    pacer: Pacer,
    options: HttpOptions,
}

/// An answer with its status, headers and (capped) body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// Status and body length only: the body holds credentials (`/details`) or tokens (UAA), and
/// headers may carry cookies.
impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// Decodes a 2xx JSON body, or turns the answer into a typed error.
    pub fn json<T: DeserializeOwned>(self, endpoint: &'static str) -> Result<T, CfError> {
        if !self.status.is_success() {
            return Err(status_error(endpoint, &self));
        }
        serde_json::from_slice(&self.body).map_err(|e| CfError::Decode {
            endpoint,
            status: self.status.as_u16(),
            content_type: content_type(&self.headers),
            message: decode_message(&e),
        })
    }
}

impl Transport {
    pub fn new(
        client: reqwest::Client,
        telemetry: Arc<dyn Telemetry>,
        options: HttpOptions,
    ) -> Self {
        Transport {
            client,
            telemetry,
            sent: AtomicU64::new(0),
            pacer: Pacer::default(),
            options,
        }
    }

    /// Requests sent so far (every try counts).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Measures the pacer's waits on `clock` instead of the system clock (set it before the
    /// first request).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        self.pacer.lock().clock = clock;
    }

    /// The rate limit Cloud Foundry announced last, while it still describes the current
    /// window (see [`Pacer::current`]).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.pacer.current()
    }

    /// The underlying client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request (rebuilt by `make` for each try), retrying transient failures.
    /// Non-2xx answers that are not transient come back as `Ok(Answer)`; the caller decides.
    pub async fn send(
        &self,
        endpoint: &'static str,
        limit: BodyLimit,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, CfError> {
        let limit = match limit {
            BodyLimit::List => self.options.list_body_limit,
            BodyLimit::Small => self.options.small_body_limit,
        };
        // The pacer holds every request of the foundation after a 429 (see [`Pacer`]): a retry
        // of a paced request needs no delay of its own.
        let paced = is_paced(endpoint);
        let once = || async {
            let answer = self.send_once(endpoint, limit, make()).await?;
            if is_transient_status(answer.status.as_u16()) {
                return Err(status_error(endpoint, &answer));
            }
            Ok(answer)
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.options.retry_min_delay)
            .with_max_delay(Duration::from_secs(10).max(self.options.retry_min_delay))
            .with_max_times(self.options.retries)
            .with_jitter();
        once.retry(backoff)
            .when(CfError::is_transient)
            .adjust(|err, delay| match err.retry_after() {
                Some(wait) if wait > MAX_RETRY_AFTER => None,
                _ if paced && is_rate_limited(err) => delay.map(|_| Duration::ZERO),
                Some(wait) => delay.map(|_| wait),
                None => delay,
            })
            .notify(|err, delay| {
                tracing::debug!(endpoint, error = %err, ?delay, "transient failure, retrying")
            })
            .await
    }

    async fn send_once(
        &self,
        endpoint: &'static str,
        limit: usize,
        request: RequestBuilder,
    ) -> Result<Answer, CfError> {
        let paced = is_paced(endpoint);
        if paced {
            self.pacer.wait().await;
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.requested(endpoint, "error");
                return Err(transport_error(endpoint, &e));
            }
        };
        let status = response.status();
        if paced {
            if let Some(rate) = self.pacer.observe(status, response.headers()) {
                self.telemetry.record(ApiEvent::RateLimit(rate));
            }
        }
        let headers = response.headers().clone();
        // Counted once the body is in: a body that stalls, breaks off or exceeds the cap is no
        // usable answer and counts as `code="error"`, whatever status line preceded it.
        let body = match read_capped(endpoint, limit, response).await {
            Ok(body) => body,
            Err(e) => {
                self.requested(endpoint, "error");
                return Err(e);
            }
        };
        self.requested(endpoint, status.as_str());
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Counts one request that ended with `code`, and reports it.
    fn requested(&self, endpoint: &'static str, code: &str) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.telemetry.record(ApiEvent::Request { endpoint, code });
    }
}

/// UAA has no Cloud Controller rate limit: a token request neither waits for it nor reads its
/// headers.
fn is_paced(endpoint: &str) -> bool {
    endpoint.starts_with("/v3")
}

fn is_rate_limited(err: &CfError) -> bool {
    matches!(err, CfError::Status { status: 429, .. })
}

/// Reads a body up to `limit` bytes; a longer one is cut off with an error, never buffered whole.
async fn read_capped(
    endpoint: &'static str,
    limit: usize,
    mut response: Response,
) -> Result<bytes::Bytes, CfError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(CfError::BodyTooLarge { endpoint, limit });
    }
    let mut body = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(CfError::BodyTooLarge { endpoint, limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => return Err(transport_error(endpoint, &e)),
        }
    }
}

fn transport_error(endpoint: &'static str, e: &reqwest::Error) -> CfError {
    let kind = if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    };
    // reqwest's Display names the URL (no secrets: tokens only travel in headers) and the cause.
    let message = Chain(e).to_string();
    CfError::Transport {
        endpoint,
        kind,
        message,
    }
}

/// What went wrong decoding a body, without any of its values: serde_json's "invalid type" and
/// "invalid value" messages quote the offending value, which may be a credential or a token.
fn decode_message(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let message = e.to_string();
    match e.classify() {
        Category::Data if !message.starts_with("missing field") => format!(
            "unexpected JSON structure at line {} column {}",
            e.line(),
            e.column()
        ),
        _ => message,
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_owned()
}

/// Turns a non-2xx answer into an error, keeping the CF error fields when the body has them.
pub fn status_error(endpoint: &'static str, answer: &Answer) -> CfError {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<ApiError>,
    }
    let api = serde_json::from_slice::<Body>(&answer.body)
        .ok()
        .and_then(|b| b.errors.into_iter().next());
    CfError::Status {
        endpoint,
        status: answer.status.as_u16(),
        api,
        retry_after: retry_after(&answer.headers),
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    // Cloud Controller sends seconds; an HTTP date is treated as "a while" rather than parsed.
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Spaces requests out when Cloud Foundry says we are close to, or over, the rate limit.
///
/// A `429` blocks every request of the foundation until its `Retry-After` has passed.
/// `X-RateLimit-Remaining` is floored to tenths of the limit, so `0` means under 10 % left: then
/// the (at most) 10 % left is spread evenly until `X-RateLimit-Reset`, and no longer. An answer
/// without the headers says nothing about the limit and changes nothing. Every wait is measured
/// on the injected clock.
#[derive(Debug, Default)]
struct Pacer {
    // A std Mutex: held for a few instructions, never across an await.
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    clock: Arc<dyn Clock>,
    /// The last rate limit announced, and when it came (Unix seconds on `clock`).
    last: Option<(RateLimit, i64)>,
    not_before: Option<SystemTime>,
    /// Gap between requests, and when the window it was computed for ends.
    spacing: Option<(Duration, SystemTime)>,
}

impl Default for PacerState {
    fn default() -> Self {
        PacerState {
            clock: Arc::new(SystemClock),
            last: None,
            not_before: None,
            spacing: None,
        }
    }
}

impl Pacer {
    #[cfg(test)]
    fn with_clock(clock: Arc<dyn Clock>) -> Pacer {
        let pacer = Pacer::default();
        pacer.lock().clock = clock;
        pacer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last rate limit announced, while it describes the current window: once its reset
    /// has passed, a new window has begun that the reading says nothing about (an API that only
    /// sends the headers with a 429, or a proxy that drops them, may never say more), so it no
    /// longer limits anything. A reset that had already passed when the reading came (clock
    /// skew) still counts for the second it came in.
    fn current(&self) -> Option<RateLimit> {
        let state = self.lock();
        let (rate, seen) = state.last?;
        let now = state.clock.unix_now();
        (now < rate.reset || now <= seen).then_some(rate)
    }

    async fn wait(&self) {
        let (until, clock) = {
            let mut state = self.lock();
            let now = state.clock.now();
            let start = state.not_before.filter(|t| *t > now).unwrap_or(now);
            match state.spacing {
                // Reserve the next slot so concurrent requests queue one spacing apart.
                Some((spacing, until)) if start < until => state.not_before = Some(start + spacing),
                Some(_) => state.spacing = None,
                None => {}
            }
            (start, state.clock.clone())
        };
        if let Ok(wait) = until.duration_since(clock.now()) {
            if !wait.is_zero() {
                tracing::debug!(?wait, "pacing requests for the rate limit");
                clock.sleep_until(until).await;
            }
        }
    }

    /// Takes note of an answer; returns the rate limit it announced, if any.
    fn observe(&self, status: StatusCode, headers: &HeaderMap) -> Option<RateLimit> {
        let mut state = self.lock();
        let now = state.clock.now();
        let announced = announced_rate_limit(headers);
        if let Some(rate) = announced {
            state.last = Some((rate, unix_seconds(now)));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(headers)
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER);
            let until = now + wait;
            state.not_before = Some(state.not_before.map_or(until, |t| t.max(until)));
            tracing::warn!(retry_after = ?wait, "Cloud Foundry rate limit reached (429); pausing requests");
            return announced;
        }
        let rate = announced?;
        state.spacing = match rate {
            RateLimit {
                limit,
                remaining: 0,
                reset,
            } if limit > 0 => {
                let left = u64::try_from(reset.saturating_sub(unix_seconds(now))).unwrap_or(0);
                let to_reset = Duration::from_secs(left).min(MAX_RETRY_AFTER);
                let budget = u32::try_from((limit / 10).max(1)).unwrap_or(u32::MAX);
                if state.spacing.is_none() {
                    tracing::info!(?to_reset, "under 10% of the Cloud Foundry rate limit left; spacing requests until it resets");
                }
                Some((to_reset / budget, now + to_reset))
            }
            _ => None,
        };
        announced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ManualClock;
    use crate::vocab::Reason;
    use reqwest::header::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    const T0: u64 = 1_800_000_000;

    fn manual() -> (Arc<ManualClock>, Pacer) {
        let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(T0)));
        (clock.clone(), Pacer::with_clock(clock))
    }

    fn rate(remaining: u64, reset: u64) -> HeaderMap {
        headers(&[
            ("x-ratelimit-limit", "100".into()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ])
    }

    #[tokio::test]
    async fn a_429_holds_every_request_until_retry_after_on_the_injected_clock() {
        let (clock, pacer) = manual();
        pacer.observe(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "2".into())]),
        );
        pacer.wait().await;
        assert_eq!(clock.waited(), Duration::from_secs(2));
        // Once it has passed, nothing more to wait for.
        pacer.wait().await;
        assert_eq!(clock.waited(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn low_remaining_budget_spreads_requests_until_reset() {
        let (clock, pacer) = manual();
        // 100 requests per hour, under 10 left, reset in 100 s: one request per 10 s.
        pacer.observe(StatusCode::OK, &rate(0, T0 + 100));
        pacer.wait().await;
        pacer.wait().await;
        pacer.wait().await;
        assert_eq!(clock.waited(), Duration::from_secs(20));
        // Plenty left again: no more spacing (the slot already reserved is kept).
        pacer.observe(StatusCode::OK, &rate(50, T0 + 100));
        pacer.wait().await;
        pacer.wait().await;
        assert!(
            clock.waited() <= Duration::from_secs(30),
            "{:?}",
            clock.waited()
        );
    }

    #[test]
    fn a_reading_limits_nothing_once_its_reset_has_passed() {
        let (clock, pacer) = manual();
        assert_eq!(pacer.current(), None);
        pacer.observe(StatusCode::TOO_MANY_REQUESTS, &rate(0, T0 + 2));
        let reading = pacer.current().expect("the reading of the 429");
        assert_eq!((reading.remaining, reading.reset), (0, T0 as i64 + 2));
        clock.advance(Duration::from_secs(1));
        assert_eq!(pacer.current(), Some(reading));
        // The window is over; later answers carry no headers and say nothing new.
        clock.advance(Duration::from_secs(1));
        pacer.observe(StatusCode::OK, &HeaderMap::new());
        assert_eq!(pacer.current(), None);
        // A reset already passed when the reading came (clock skew): it counts for that second.
        clock.advance(Duration::from_secs(5));
        pacer.observe(StatusCode::OK, &rate(1800, T0 + 3));
        assert!(pacer.current().is_some());
        clock.advance(Duration::from_secs(1));
        assert_eq!(pacer.current(), None);
    }

    #[test]
    fn status_error_keeps_the_cf_error_fields() {
        let answer = Answer {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
            body: bytes::Bytes::from_static(
                br#"{"errors":[{"code":10010,"title":"CF-ResourceNotFound","detail":"Service credential binding not found"}]}"#,
            ),
        };
        let err = status_error("/v3/service_credential_bindings/:guid/details", &answer);
        assert_eq!(err.reason(), Reason::NotFound);
        assert_eq!(
            err.to_string(),
            "/v3/service_credential_bindings/:guid/details: HTTP 404: CF-ResourceNotFound (10010): Service credential binding not found"
        );
    }

    #[test]
    fn html_error_page_is_a_typed_decode_error_naming_the_content_type() {
        let answer = Answer {
            status: StatusCode::OK,
            headers: headers(&[("content-type", "text/html".into())]),
            body: bytes::Bytes::from_static(b"<html>oops</html>"),
        };
        let err = answer
            .json::<serde_json::Value>("/v3/service_instances")
            .unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidJson);
        assert!(err.to_string().contains("text/html"), "{err}");
    }
}
