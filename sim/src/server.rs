//! The simulated Cloud Controller (V3) and UAA, served by axum on loopback.
//!
//! Behaves as `../cf-facts.md` describes the real ones: unknown query parameters are a
//! `400 CF-BadQueryParameter`, `per_page` is 1..5000, pagination links are absolute, list
//! filters split on commas and percent-decode each element, `fields[...]` fill `included`,
//! tokens are opaque and expire, error bodies are `{"errors": [...]}`, a rate limit answers
//! `429` with `Retry-After` and `X-RateLimit-*` headers. Switches change behaviour at run time
//! (latency, page cap, outages, failing details, throttling, token lifetime), and [`Stats`]
//! records every request so tests can count what the exporter sent.
//!
//! Routes: `GET /` and `GET /v3` (no token), and behind the token check, latency, rate limit,
//! outage switch and request log: `/v3/service_instances`, `/v3/service_credential_bindings`,
//! `/v3/service_credential_bindings/:guid/details` and `/v3/spaces` (with
//! `include=organization`, as `spaces_list_message.rb` and the space and organization
//! presenters define them); and, in [`crate::keys_api`], key creation (`POST`), a key
//! (`GET`, `DELETE`), its `/parameters`, `/v3/jobs/:guid` and `/v3/service_offerings`.
//! Before any of them runs, the guard finishes the asynchronous broker operations that have
//! ended by the simulator's clock ([`crate::operations::settle`]), so every answer sees them
//! done. A key whose creation has not succeeded answers `/details` with the Cloud
//! Controller's `404` ("Creation of service key in progress"). Every listed resource carries its `created_at`, `updated_at` and
//! `metadata: {labels, annotations}`; `label_selector` filters the three lists (`=`, `==`,
//! `!=`, `in`, `notin`, `key`, `!key`, on labels only, as the Cloud Controller does).
//!
//! # Clock
//! The rate limit's window, `Retry-After` and `X-RateLimit-Reset` follow the simulator's clock:
//! the system clock unless a test sets a manual one ([`Switches::set_clock`],
//! [`Switches::advance_clock`], or the same on [`SimState`]). A manual clock stands still
//! until moved, so a test runs an hour of a 2,000-per-hour limit by advancing it an hour, not
//! by waiting. Token lifetimes, latency and the request log's instants keep real time.
//!
//! Concurrency model: the world and switches sit behind std locks held only for the few
//! instructions of one handler (never across an `.await`), so tests can change them while the
//! exporter runs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::keys_api;
use super::world::{Metadata, Space, World};

/// Who may log in to the simulated UAA.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
    /// When set, the password grant must carry `login_hint={"origin":"..."}` with this origin.
    pub origin: Option<String>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            username: "monitoring@example.com".into(),
            password: "sim-password".into(),
            client_id: "cf".into(),
            client_secret: String::new(),
            origin: None,
        }
    }
}

/// What every `/v3` request answers while an outage is switched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outage {
    /// An HTML error page with this status (as a load balancer sends).
    Html(u16),
    /// `200` with a body that is not JSON.
    InvalidJson,
    /// `200` with a JSON body of this many bytes, streamed in chunks without a
    /// `Content-Length` (as an endless or runaway body arrives).
    HugeBody(usize),
    /// `200` with the start of a JSON body, then silence with the connection kept open.
    StallBody,
}

/// A per-window request budget, as the Cloud Controller's rate limiter. Its window is measured
/// on the simulator's clock (see the module's "Clock"); it starts when the limit is switched
/// on ([`Switches::set_rate_limit`]) and a new one starts with the first request after it ends.
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub limit: u64,
    pub window: Duration,
    used: u64,
    /// `None` until [`Switches::set_rate_limit`] stamps it with the simulator's clock.
    window_start: Option<SystemTime>,
}

impl RateLimit {
    pub fn new(limit: u64, window: Duration) -> Self {
        RateLimit {
            limit,
            window,
            used: 0,
            window_start: None,
        }
    }

    /// The current window starts with `used` requests already spent.
    pub fn with_used(mut self, used: u64) -> Self {
        self.used = used;
        self
    }

    /// Requests spent in the current window.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// When the current window ends (`now + window` before the window has started).
    fn window_end(&self, now: SystemTime) -> SystemTime {
        self.window_start.unwrap_or(now) + self.window
    }

    /// Starts a new window at `now` if the current one has ended.
    fn roll_over(&mut self, now: SystemTime) {
        let start = *self.window_start.get_or_insert(now);
        // A clock set back leaves the window where it is.
        if now.duration_since(start).is_ok_and(|e| e >= self.window) {
            self.window_start = Some(now);
            self.used = 0;
        }
    }

    /// Whole seconds (rounded up, at least 1) until the window ends: `Retry-After`.
    fn retry_after(&self, now: SystemTime) -> u64 {
        let left = self
            .window_end(now)
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(self.window);
        ceil_secs(left).max(1)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Behaviour that tests and benchmarks change while the simulator runs.
#[derive(Debug)]
pub struct Switches {
    /// Added before every API and UAA answer.
    pub latency_ms: AtomicU64,
    /// Largest page served, whatever `per_page` asks (the real maximum is 5000).
    pub page_cap: AtomicUsize,
    /// Lifetime of issued access tokens.
    pub token_ttl_secs: AtomicU64,
    pub issue_refresh_tokens: AtomicBool,
    pub outage: Mutex<Option<Outage>>,
    pub uaa_down: AtomicBool,
    /// Keys whose `/details` answer this status instead.
    pub details_failures: Mutex<HashMap<String, u16>>,
    /// The next N API requests answer `429` with this `Retry-After` (seconds).
    pub throttle_next: Mutex<(u32, u64)>,
    pub rate_limit: Mutex<Option<RateLimit>>,
    /// `next` links point to this origin instead of the API's.
    pub foreign_next: Mutex<Option<String>>,
    /// `next` links point back to the first page.
    pub loop_pages: AtomicBool,
    /// The API answers `401 CF-InvalidAuthToken` to every token, even one just issued (a CC
    /// that does not trust this UAA).
    pub refuse_tokens: AtomicBool,
    /// The manual clock, if a test set one; `None` reads the system clock.
    clock: Mutex<Option<SystemTime>>,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            latency_ms: AtomicU64::new(0),
            page_cap: AtomicUsize::new(5000),
            token_ttl_secs: AtomicU64::new(3600),
            issue_refresh_tokens: AtomicBool::new(true),
            outage: Mutex::new(None),
            uaa_down: AtomicBool::new(false),
            details_failures: Mutex::new(HashMap::new()),
            throttle_next: Mutex::new((0, 0)),
            rate_limit: Mutex::new(None),
            foreign_next: Mutex::new(None),
            loop_pages: AtomicBool::new(false),
            refuse_tokens: AtomicBool::new(false),
            clock: Mutex::new(None),
        }
    }
}

impl Switches {
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }
    pub fn set_page_cap(&self, cap: usize) {
        self.page_cap.store(cap, Ordering::Relaxed);
    }
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.token_ttl_secs.store(ttl.as_secs(), Ordering::Relaxed);
    }
    pub fn set_outage(&self, outage: Option<Outage>) {
        *lock(&self.outage) = outage;
    }
    pub fn fail_details(&self, guid: &str, status: u16) {
        lock(&self.details_failures).insert(guid.to_owned(), status);
    }
    pub fn clear_details_failures(&self) {
        lock(&self.details_failures).clear();
    }
    pub fn throttle(&self, requests: u32, retry_after_secs: u64) {
        *lock(&self.throttle_next) = (requests, retry_after_secs);
    }
    /// Starts (or stops) a rate limit whose window begins now, on the simulator's clock.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let now = self.now();
        *lock(&self.rate_limit) = limit.map(|mut rl| {
            rl.window_start.get_or_insert(now);
            rl
        });
    }
    /// Spent requests and the limit of the current rate-limit window, if one is on.
    pub fn rate_limit_used(&self) -> Option<(u64, u64)> {
        lock(&self.rate_limit)
            .as_ref()
            .map(|rl| (rl.used, rl.limit))
    }
    /// Sets the simulator's clock to `at` and stops it there (`None`: back to the system
    /// clock). Rate-limit windows, `Retry-After` and `X-RateLimit-Reset` follow it.
    pub fn set_clock(&self, at: Option<SystemTime>) {
        *lock(&self.clock) = at;
    }
    /// Moves the clock forward by `by`; the first call with the system clock switches to a
    /// manual clock at the system time plus `by`.
    pub fn advance_clock(&self, by: Duration) {
        let mut clock = lock(&self.clock);
        *clock = Some(clock.unwrap_or_else(SystemTime::now) + by);
    }
    /// The simulator's time now: the manual clock if set, else the system clock.
    pub fn now(&self) -> SystemTime {
        lock(&self.clock).unwrap_or_else(SystemTime::now)
    }
}

/// One request the simulator answered.
#[derive(Debug, Clone)]
pub struct Logged {
    /// When the answer was sent (after the injected latency).
    pub at: Instant,
    /// When the request arrived.
    pub received: Instant,
    pub method: Method,
    /// Route template, e.g. `/v3/service_credential_bindings/:guid/details`.
    pub route: &'static str,
    pub status: u16,
    /// The `Authorization` header was present.
    pub authorized: bool,
}

/// Everything the simulator was asked.
#[derive(Debug, Default)]
pub struct Stats {
    log: Mutex<Vec<Logged>>,
    pub logins: AtomicU64,
    /// The `login_hint` of the last password grant.
    pub last_login_hint: Mutex<Option<String>>,
    /// Most requests in flight at once.
    pub max_in_flight: AtomicUsize,
    in_flight: AtomicUsize,
}

impl Stats {
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.log).clone()
    }
    /// Requests answered on a route, whatever their method.
    pub fn count(&self, route: &str) -> usize {
        lock(&self.log).iter().filter(|l| l.route == route).count()
    }
    /// Requests with this method (`GET`, `POST`, `DELETE`) answered on a route.
    pub fn count_method(&self, method: &str, route: &str) -> usize {
        lock(&self.log)
            .iter()
            .filter(|l| l.route == route && l.method.as_str() == method)
            .count()
    }
    pub fn total(&self) -> usize {
        lock(&self.log).len()
    }
    pub fn reset(&self) {
        lock(&self.log).clear();
        self.logins.store(0, Ordering::Relaxed);
        self.max_in_flight.store(0, Ordering::Relaxed);
    }
}

/// The simulator's shared state.
#[derive(Debug)]
pub struct SimState {
    pub world: RwLock<World>,
    pub switches: Switches,
    pub stats: Stats,
    pub accounts: Accounts,
    tokens: Mutex<HashMap<String, Instant>>,
    refresh_tokens: Mutex<HashSet<String>>,
    /// Every access and refresh token ever issued, for leak tests.
    issued: Mutex<Vec<String>>,
    token_counter: AtomicU64,
    api_base: String,
    uaa_base: String,
}

impl SimState {
    /// Changes the world (plant, rotate or delete keys) while the simulator runs.
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut world = self.world.write().unwrap_or_else(|e| e.into_inner());
        f(&mut world)
    }

    /// Invalidates every issued access token, as if they had all expired (refresh tokens
    /// stay valid).
    pub fn expire_tokens(&self) {
        lock(&self.tokens).clear();
    }

    /// Every access and refresh token issued so far (secrets a leak test looks for).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.issued).clone()
    }

    /// Sets the simulator's clock ([`Switches::set_clock`]).
    pub fn set_clock(&self, at: Option<SystemTime>) {
        self.switches.set_clock(at);
    }

    /// Moves the simulator's clock forward ([`Switches::advance_clock`]).
    pub fn advance_clock(&self, by: Duration) {
        self.switches.advance_clock(by);
    }

    /// The API's base URL, without a trailing slash.
    pub(crate) fn api_base(&self) -> &str {
        &self.api_base
    }

    /// Finishes the asynchronous broker operations that have ended by the simulator's clock.
    /// The write lock is taken only when one has.
    fn settle_operations(&self) {
        let now = crate::keys_api::sim_now(self);
        let due = {
            let world = self.world.read().unwrap_or_else(|e| e.into_inner());
            crate::operations::has_due(&world, now)
        };
        if due {
            self.with_world(|w| crate::operations::settle(w, now));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running simulated foundation: a CF API and a UAA, each on its own loopback port.
#[derive(Debug)]
pub struct Sim {
    pub api_url: Url,
    pub uaa_url: Url,
    pub state: Arc<SimState>,
    cancel: CancellationToken,
}

impl Sim {
    /// Serves `world` on two fresh loopback ports.
    pub async fn start(world: World, accounts: Accounts) -> std::io::Result<Sim> {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let uaa = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api_base = format!("http://{}", api.local_addr()?);
        let uaa_base = format!("http://{}", uaa.local_addr()?);
        let state = Arc::new(SimState {
            world: RwLock::new(world),
            switches: Switches::default(),
            stats: Stats::default(),
            accounts,
            tokens: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashSet::new()),
            issued: Mutex::new(Vec::new()),
            token_counter: AtomicU64::new(0),
            api_base: api_base.clone(),
            uaa_base: uaa_base.clone(),
        });
        let cancel = CancellationToken::new();
        for (listener, router) in [
            (api, api_router(state.clone())),
            (uaa, uaa_router(state.clone())),
        ] {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { cancel.cancelled().await })
                    .await;
            });
        }
        let parse = |s: &str| Url::parse(s).map_err(std::io::Error::other);
        Ok(Sim {
            api_url: parse(&api_base)?,
            uaa_url: parse(&uaa_base)?,
            state,
            cancel,
        })
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn api_router(state: Arc<SimState>) -> Router {
    let v3 = Router::new()
        .route("/v3/service_instances", get(list_instances))
        .route(
            "/v3/service_credential_bindings",
            get(list_bindings).post(keys_api::create),
        )
        .route(
            "/v3/service_credential_bindings/{guid}",
            get(keys_api::show).delete(keys_api::delete),
        )
        .route(
            "/v3/service_credential_bindings/{guid}/details",
            get(details),
        )
        .route(
            "/v3/service_credential_bindings/{guid}/parameters",
            get(keys_api::parameters),
        )
        .route("/v3/jobs/{guid}", get(keys_api::job))
        .route("/v3/service_offerings", get(keys_api::list_offerings))
        .route("/v3/service_offerings/{guid}", get(keys_api::show_offering))
        .route("/v3/spaces", get(list_spaces))
        .layer(middleware::from_fn_with_state(state.clone(), v3_guard));
    Router::new()
        .route("/", get(api_root))
        .route("/v3", get(v3_root))
        .merge(v3)
        .with_state(state)
}

fn uaa_router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .with_state(state)
}

/// A V3 error answer.
pub(crate) fn cf_error(status: u16, code: u32, title: &str, detail: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"errors": [{"code": code, "title": title, "detail": detail}]});
    (status, Json(body)).into_response()
}

fn html(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = format!(
        "<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center><hr><center>nginx</center></body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

fn route_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
    match segments.as_slice() {
        ["service_credential_bindings"] => "/v3/service_credential_bindings",
        ["service_credential_bindings", _] => "/v3/service_credential_bindings/:guid",
        ["service_credential_bindings", _, "details"] => {
            "/v3/service_credential_bindings/:guid/details"
        }
        ["service_credential_bindings", _, "parameters"] => {
            "/v3/service_credential_bindings/:guid/parameters"
        }
        ["service_instances", ..] => "/v3/service_instances",
        ["spaces", ..] => "/v3/spaces",
        ["jobs", _] => "/v3/jobs/:guid",
        ["service_offerings"] => "/v3/service_offerings",
        ["service_offerings", _] => "/v3/service_offerings/:guid",
        _ => "other",
    }
}

async fn latency(state: &SimState) {
    let ms = state.switches.latency_ms.load(Ordering::Relaxed);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Latency, rate limits, outages and token checks for every `/v3` request, and the request log.
async fn v3_guard(State(state): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let received = Instant::now();
    let route = route_of(request.uri().path());
    let method = request.method().clone();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let in_flight = state.stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state
        .stats
        .max_in_flight
        .fetch_max(in_flight, Ordering::SeqCst);
    latency(&state).await;
    let mut response = guarded(&state, authorization.as_deref(), request, next).await;
    state.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    add_rate_limit_headers(&state, response.headers_mut());
    lock(&state.stats.log).push(Logged {
        at: Instant::now(),
        received,
        method,
        route,
        status: response.status().as_u16(),
        authorized: authorization.is_some(),
    });
    response
}

async fn guarded(
    state: &SimState,
    authorization: Option<&str>,
    request: Request,
    next: Next,
) -> Response {
    {
        let mut throttle = lock(&state.switches.throttle_next);
        if throttle.0 > 0 {
            throttle.0 -= 1;
            return too_many(throttle.1);
        }
    }
    let now = state.switches.now();
    if let Some(rl) = lock(&state.switches.rate_limit).as_mut() {
        rl.roll_over(now);
        if rl.used >= rl.limit {
            return too_many(rl.retry_after(now));
        }
        rl.used += 1;
    }
    let Some(authorization) = authorization else {
        return cf_error(401, 10002, "CF-NotAuthenticated", "Authentication error");
    };
    let token = authorization
        .strip_prefix("bearer ")
        .or_else(|| authorization.strip_prefix("Bearer "))
        .unwrap_or("");
    let valid = !state.switches.refuse_tokens.load(Ordering::Relaxed)
        && lock(&state.tokens)
            .get(token)
            .is_some_and(|expires| *expires > Instant::now());
    if !valid {
        return cf_error(401, 1000, "CF-InvalidAuthToken", "Invalid Auth Token");
    }
    let outage = lock(&state.switches.outage).clone();
    match outage {
        Some(Outage::Html(status)) => html(status),
        Some(Outage::InvalidJson) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"resources\": [",
        )
            .into_response(),
        Some(Outage::HugeBody(bytes)) => {
            const CHUNK: usize = 64 * 1024;
            let head = futures::stream::once(async { Ok(Bytes::from_static(b"{\"padding\":\"")) });
            let padding = futures::stream::iter((0..bytes.div_ceil(CHUNK)).map(move |i| {
                let len = CHUNK.min(bytes - i * CHUNK);
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; len]))
            }));
            let tail = futures::stream::once(async { Ok(Bytes::from_static(b"\"}")) });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(head.chain(padding).chain(tail)),
            )
                .into_response()
        }
        Some(Outage::StallBody) => {
            let start = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"{\"pagination\": {\"total_"))
            });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(start.chain(futures::stream::pending())),
            )
                .into_response()
        }
        None => {
            state.settle_operations();
            next.run(request).await
        }
    }
}

fn too_many(retry_after: u64) -> Response {
    let body = json!({"errors": [{"code": 10013, "title": "CF-RateLimitExceeded", "detail": "Rate Limit Exceeded"}]});
    // The Cloud Controller sends this JSON body as text/plain.
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain")],
        body.to_string(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

fn add_rate_limit_headers(state: &SimState, headers: &mut HeaderMap) {
    let Some(rl) = lock(&state.switches.rate_limit).clone() else {
        return;
    };
    let left = rl.limit.saturating_sub(rl.used);
    // Floored to tenths of the limit, as the Cloud Controller reports it.
    let remaining = (left * 10)
        .checked_div(rl.limit)
        .map_or(0, |tenths| tenths * rl.limit / 10);
    // The Unix second at which the window ends, rounded up so a client that waits for it
    // finds the new window open.
    let reset = rl
        .window_end(state.switches.now())
        .duration_since(UNIX_EPOCH)
        .map(ceil_secs)
        .unwrap_or(0);
    headers.insert("x-ratelimit-limit", HeaderValue::from(rl.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

async fn api_root(State(state): State<Arc<SimState>>) -> Json<Value> {
    let api = &state.api_base;
    let uaa = &state.uaa_base;
    Json(json!({
        "links": {
            "self": {"href": api},
            "cloud_controller_v3": {"href": format!("{api}/v3"), "meta": {"version": "3.180.0"}},
            "login": {"href": uaa},
            "uaa": {"href": uaa}
        }
    }))
}

async fn v3_root(State(state): State<Arc<SimState>>) -> Json<Value> {
    let api = &state.api_base;
    Json(json!({"links": {"self": {"href": format!("{api}/v3")}}}))
}

/// Parsed query: the raw pairs, in order.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>) -> Self {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list filter; each element percent-decoded once more.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| {
            v.split(',')
                .map(|s| {
                    url::form_urlencoded::parse(format!("x={}", s.trim_start()).as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                })
                .collect()
        })
    }

    // A handler answers with the error response as is; boxing it would only add noise.
    #[allow(clippy::result_large_err)]
    fn check_allowed(&self, allowed: &[&str]) -> Result<(), Response> {
        let unknown: Vec<&str> = self
            .0
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !allowed.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let detail = format!(
            "The query parameter is invalid: Unknown query parameter(s): '{}'. Valid parameters are: '{}'",
            unknown.join("', '"),
            allowed.join("', '")
        );
        Err(cf_error(400, 10005, "CF-BadQueryParameter", &detail))
    }

    #[allow(clippy::result_large_err)]
    fn paging(&self, cap: usize) -> Result<(usize, usize), Response> {
        let bad = |d: &str| cf_error(400, 10005, "CF-BadQueryParameter", d);
        let per_page = match self.get("per_page") {
            None => 50,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=5000).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "The query parameter is invalid: Per page must be between 1 and 5000",
                    ))
                }
            },
        };
        let page = match self.get("page") {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(bad(
                        "The query parameter is invalid: Page must be greater than 0",
                    ))
                }
            },
        };
        Ok((page, per_page.min(cap.max(1))))
    }
}

const PAGING: &[&str] = &[
    "page",
    "per_page",
    "order_by",
    "created_ats",
    "updated_ats",
    "label_selector",
];

/// Builds the `pagination` object with absolute links and returns the page's index range.
pub(crate) fn paginate(
    state: &SimState,
    path: &str,
    query: &Query,
    total: usize,
    page: usize,
    per_page: usize,
) -> (std::ops::Range<usize>, Value) {
    let total_pages = total.div_ceil(per_page).max(1);
    let href = |p: usize| {
        let mut url =
            Url::parse(&format!("{}{path}", state.api_base)).expect("the base URL is valid");
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &query.0 {
                if k != "page" && k != "per_page" {
                    pairs.append_pair(k, v);
                }
            }
            pairs
                .append_pair("page", &p.to_string())
                .append_pair("per_page", &per_page.to_string());
        }
        if let Some(origin) = lock(&state.switches.foreign_next).as_deref() {
            if p != 1 {
                let mut foreign = Url::parse(origin).expect("a test gives a valid origin");
                foreign.set_path(url.path());
                foreign.set_query(url.query());
                return json!({"href": foreign.as_str()});
            }
        }
        json!({"href": url.as_str()})
    };
    let next = if state.switches.loop_pages.load(Ordering::Relaxed) {
        href(1)
    } else if page < total_pages {
        href(page + 1)
    } else {
        Value::Null
    };
    let pagination = json!({
        "total_results": total,
        "total_pages": total_pages,
        "first": href(1),
        "last": href(total_pages),
        "next": next,
        "previous": if page > 1 { href(page - 1) } else { Value::Null },
    });
    let start = ((page - 1) * per_page).min(total);
    (start..(start + per_page).min(total), pagination)
}

pub(crate) fn timestamp(t: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// The requested keys of one `fields[...]` parameter, or `None` when not requested.
fn fields<'a>(query: &'a Query, resource: &str) -> Option<Vec<&'a str>> {
    query
        .get(&format!("fields[{resource}]"))
        .map(|v| v.split(',').collect())
}

/// Query parameters of `/v3/service_instances` besides paging (`service_instances_list_message.rb`).
const INSTANCE_PARAMS: &[&str] = &[
    "names",
    "guids",
    "type",
    "space_guids",
    "organization_guids",
    "service_plan_guids",
    "service_plan_names",
    "fields[space]",
    "fields[space.organization]",
    "fields[service_plan]",
    "fields[service_plan.service_offering]",
    "fields[service_plan.service_offering.service_broker]",
];

/// Query parameters of `/v3/service_credential_bindings` besides paging
/// (`service_credential_binding_list_message.rb`); no `fields[...]`.
const BINDING_PARAMS: &[&str] = &[
    "type",
    "names",
    "guids",
    "service_instance_guids",
    "service_instance_names",
    "service_plan_names",
    "service_plan_guids",
    "service_offering_names",
    "service_offering_guids",
    "app_guids",
    "app_names",
    "include",
];

/// Parses a list request: rejects unknown parameters as the Cloud Controller does and reads
/// the page and page size (capped by the `page_cap` switch).
#[allow(clippy::result_large_err)]
pub(crate) fn list_request(
    state: &SimState,
    raw: Option<String>,
    params: &[&str],
) -> Result<(Query, usize, usize), Response> {
    let query = Query::parse(raw);
    let allowed: Vec<&str> = PAGING.iter().chain(params).copied().collect();
    query.check_allowed(&allowed)?;
    let (page, per_page) = query.paging(state.switches.page_cap.load(Ordering::Relaxed))?;
    Ok((query, page, per_page))
}

async fn list_instances(State(state): State<Arc<SimState>>, RawQuery(raw): RawQuery) -> Response {
    let (query, page, per_page) = match list_request(&state, raw, INSTANCE_PARAMS) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let selector = match LabelSelector::from_query(&query) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    let plan_names = query.list("service_plan_names");
    let plan_guids = query.list("service_plan_guids");
    let names = query.list("names");
    let guids = query.list("guids");
    let space_guids = query.list("space_guids");
    let org_guids = query.list("organization_guids");
    let org_of: HashMap<&str, &str> = world
        .spaces
        .iter()
        .map(|s| (s.guid.as_str(), s.org_guid.as_str()))
        .collect();
    let kind = query.get("type");
    let selected: Vec<_> = world
        .instances
        .iter()
        .filter(|i| one_of(&names, &i.name) && one_of(&guids, &i.guid))
        .filter(|i| one_of(&space_guids, &i.space_guid))
        .filter(|i| {
            org_guids.is_none()
                || org_of
                    .get(i.space_guid.as_str())
                    .is_some_and(|o| one_of(&org_guids, o))
        })
        .filter(|i| {
            plan_guids.is_none() || i.plan_guid.as_ref().is_some_and(|p| one_of(&plan_guids, p))
        })
        .filter(|i| selector.matches(&i.metadata))
        .filter(|i| match kind {
            Some("managed") => i.plan_guid.is_some(),
            Some("user-provided") => i.plan_guid.is_none(),
            _ => true,
        })
        .filter(|i| match &plan_names {
            None => true,
            Some(names) => i
                .plan_guid
                .as_ref()
                .and_then(|g| world.plans.iter().find(|p| &p.guid == g))
                .is_some_and(|p| names.contains(&p.name)),
        })
        .collect();
    let (range, pagination) = paginate(
        &state,
        "/v3/service_instances",
        &query,
        selected.len(),
        page,
        per_page,
    );
    let on_page = &selected[range];

    let resources: Vec<Value> = on_page
        .iter()
        .map(|i| {
            let mut relationships = json!({"space": {"data": {"guid": i.space_guid}}});
            if let Some(plan) = &i.plan_guid {
                relationships["service_plan"] = json!({"data": {"guid": plan}});
            }
            json!({
                "guid": i.guid,
                "name": i.name,
                "type": if i.plan_guid.is_some() { "managed" } else { "user-provided" },
                "created_at": timestamp(i.created_at),
                "updated_at": timestamp(i.updated_at),
                "tags": [],
                "last_operation": {"type": "create", "state": "succeeded",
                                   "created_at": timestamp(i.created_at), "updated_at": timestamp(i.updated_at)},
                "relationships": relationships,
                "metadata": metadata(&i.metadata),
                "links": {"self": {"href": format!("{}/v3/service_instances/{}", state.api_base, i.guid)}}
            })
        })
        .collect();

    let mut included = serde_json::Map::new();
    let space_guids: HashSet<&str> = on_page.iter().map(|i| i.space_guid.as_str()).collect();
    let spaces: Vec<_> = world
        .spaces
        .iter()
        .filter(|s| space_guids.contains(s.guid.as_str()))
        .collect();
    if let Some(f) = fields(&query, "space") {
        included.insert(
            "spaces".into(),
            spaces
                .iter()
                .map(|s| {
                    let mut o = serde_json::Map::new();
                    if f.contains(&"guid") {
                        o.insert("guid".into(), json!(s.guid));
                    }
                    if f.contains(&"name") {
                        o.insert("name".into(), json!(s.name));
                    }
                    if f.contains(&"relationships.organization") {
                        o.insert(
                            "relationships".into(),
                            json!({"organization": {"data": {"guid": s.org_guid}}}),
                        );
                    }
                    Value::Object(o)
                })
                .collect(),
        );
    }
    if fields(&query, "space.organization").is_some() {
        let org_guids: HashSet<&str> = spaces.iter().map(|s| s.org_guid.as_str()).collect();
        included.insert(
            "organizations".into(),
            world
                .orgs
                .iter()
                .filter(|o| org_guids.contains(o.guid.as_str()))
                .map(|o| json!({"guid": o.guid, "name": o.name}))
                .collect(),
        );
    }
    // Plans and offerings are left out when the page has no managed instance.
    let plan_guids: HashSet<&str> = on_page
        .iter()
        .filter_map(|i| i.plan_guid.as_deref())
        .collect();
    if !plan_guids.is_empty() {
        let plans: Vec<_> = world
            .plans
            .iter()
            .filter(|p| plan_guids.contains(p.guid.as_str()))
            .collect();
        if fields(&query, "service_plan").is_some() {
            included.insert(
                "service_plans".into(),
                plans
                    .iter()
                    .map(|p| {
                        json!({"guid": p.guid, "name": p.name,
                               "relationships": {"service_offering": {"data": {"guid": p.offering_guid}}}})
                    })
                    .collect(),
            );
        }
        if fields(&query, "service_plan.service_offering").is_some() {
            let offering_guids: HashSet<&str> =
                plans.iter().map(|p| p.offering_guid.as_str()).collect();
            included.insert(
                "service_offerings".into(),
                world
                    .offerings
                    .iter()
                    .filter(|o| offering_guids.contains(o.guid.as_str()))
                    .map(|o| json!({"guid": o.guid, "name": o.name}))
                    .collect(),
            );
        }
    }
    let mut body = json!({"pagination": pagination, "resources": resources});
    if !included.is_empty() {
        body["included"] = Value::Object(included);
    }
    Json(body).into_response()
}

async fn list_bindings(State(state): State<Arc<SimState>>, RawQuery(raw): RawQuery) -> Response {
    let (query, page, per_page) = match list_request(&state, raw, BINDING_PARAMS) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let selector = match LabelSelector::from_query(&query) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    if query.get("type").is_some_and(|t| t == "app") {
        let (_, pagination) = paginate(
            &state,
            "/v3/service_credential_bindings",
            &query,
            0,
            page,
            per_page,
        );
        return Json(json!({"pagination": pagination, "resources": []})).into_response();
    }
    let plan_names = query.list("service_plan_names");
    let instance_guids = query.list("service_instance_guids");
    let names = query.list("names");
    let guids = query.list("guids");
    let plan_of: HashMap<&str, &str> = world
        .instances
        .iter()
        .filter_map(|i| {
            let plan = world
                .plans
                .iter()
                .find(|p| Some(&p.guid) == i.plan_guid.as_ref())?;
            Some((i.guid.as_str(), plan.name.as_str()))
        })
        .collect();
    let selected: Vec<_> = world
        .keys
        .iter()
        .filter(|k| match &plan_names {
            None => true,
            Some(names) => plan_of
                .get(k.instance_guid.as_str())
                .is_some_and(|p| names.iter().any(|n| n == p)),
        })
        .filter(|k| {
            instance_guids
                .as_ref()
                .is_none_or(|g| g.contains(&k.instance_guid))
        })
        .filter(|k| names.as_ref().is_none_or(|n| n.contains(&k.name)))
        .filter(|k| one_of(&guids, &k.guid))
        .filter(|k| selector.matches(&k.metadata))
        .collect();
    let (range, pagination) = paginate(
        &state,
        "/v3/service_credential_bindings",
        &query,
        selected.len(),
        page,
        per_page,
    );
    let resources: Vec<Value> = selected[range]
        .iter()
        .map(|k| keys_api::binding_json(&state.api_base, k))
        .collect();
    Json(json!({"pagination": pagination, "resources": resources})).into_response()
}

/// Query parameters of `/v3/spaces` besides paging (`spaces_list_message.rb`).
const SPACE_PARAMS: &[&str] = &["names", "guids", "organization_guids", "include"];

/// The guid of the quota every simulated org uses (the Cloud Controller's `default`).
const DEFAULT_QUOTA_GUID: &str = "00009007-0000-4000-8000-000000000001";

/// The `metadata` object of a V3 resource.
pub(crate) fn metadata(m: &Metadata) -> Value {
    json!({"labels": m.labels, "annotations": m.annotations})
}

/// Whether `value` passes an optional list filter.
fn one_of(filter: &Option<Vec<String>>, value: &str) -> bool {
    filter
        .as_ref()
        .is_none_or(|values| values.iter().any(|v| v == value))
}

/// `include=` of `/v3/spaces`: whether the organizations are asked for, or the Cloud
/// Controller's error (`IncludeParamValidator`, valid values `org` and `organization`).
#[allow(clippy::result_large_err)]
fn include_organization(query: &Query) -> Result<bool, Response> {
    let Some(include) = query.list("include") else {
        return Ok(false);
    };
    let mut seen = HashSet::new();
    for candidate in &include {
        let detail = if !["org", "organization"].contains(&candidate.as_str()) {
            format!(
                "Invalid included resource: '{candidate}'. Valid included resources are: 'org', 'organization'"
            )
        } else if !seen.insert(candidate.as_str()) {
            format!("Duplicate included resource: '{candidate}'")
        } else {
            continue;
        };
        return Err(cf_error(
            400,
            10005,
            "CF-BadQueryParameter",
            &format!("The query parameter is invalid: {detail}"),
        ));
    }
    Ok(true)
}

/// `order_by=` of `/v3/spaces`: `created_at`, `updated_at` or `name`, `+` or `-` in front.
#[allow(clippy::result_large_err)]
fn order_spaces(query: &Query, spaces: &mut [&Space]) -> Result<(), Response> {
    let Some(order) = query.get("order_by") else {
        return Ok(());
    };
    let (descending, column) = match order.strip_prefix('-') {
        Some(c) => (true, c),
        None => (false, order.strip_prefix('+').unwrap_or(order)),
    };
    match column {
        "created_at" => spaces.sort_by_key(|s| s.created_at),
        "updated_at" => spaces.sort_by_key(|s| s.updated_at),
        "name" => spaces.sort_by(|a, b| a.name.cmp(&b.name)),
        _ => {
            return Err(cf_error(
                400,
                10005,
                "CF-BadQueryParameter",
                "The query parameter is invalid: Order by can only be: 'created_at', 'updated_at', 'name'",
            ))
        }
    }
    if descending {
        spaces.reverse();
    }
    Ok(())
}

/// `GET /v3/spaces`, as `spaces_list_message.rb` and `space_presenter.rb` define it; with
/// `include=organization`, `included.organizations` holds the orgs of the spaces on the page
/// (`organization_presenter.rb`), ordered by creation.
async fn list_spaces(State(state): State<Arc<SimState>>, RawQuery(raw): RawQuery) -> Response {
    let (query, page, per_page) = match list_request(&state, raw, SPACE_PARAMS) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let include_orgs = match include_organization(&query) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let selector = match LabelSelector::from_query(&query) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    let names = query.list("names");
    let guids = query.list("guids");
    let org_guids = query.list("organization_guids");
    let mut selected: Vec<&Space> = world
        .spaces
        .iter()
        .filter(|s| one_of(&names, &s.name) && one_of(&guids, &s.guid))
        .filter(|s| one_of(&org_guids, &s.org_guid))
        .filter(|s| selector.matches(&s.metadata))
        .collect();
    if let Err(e) = order_spaces(&query, &mut selected) {
        return e;
    }
    let (range, pagination) =
        paginate(&state, "/v3/spaces", &query, selected.len(), page, per_page);
    let on_page = &selected[range];
    let api = &state.api_base;
    let resources: Vec<Value> = on_page
        .iter()
        .map(|s| {
            json!({
                "guid": s.guid,
                "created_at": timestamp(s.created_at),
                "updated_at": timestamp(s.updated_at),
                "name": s.name,
                "suspended": false,
                "relationships": {
                    "organization": {"data": {"guid": s.org_guid}},
                    "quota": {"data": null}
                },
                "metadata": metadata(&s.metadata),
                "links": {
                    "self": {"href": format!("{api}/v3/spaces/{}", s.guid)},
                    "organization": {"href": format!("{api}/v3/organizations/{}", s.org_guid)},
                    "features": {"href": format!("{api}/v3/spaces/{}/features", s.guid)},
                    "apply_manifest": {"href": format!("{api}/v3/spaces/{}/actions/apply_manifest", s.guid), "method": "POST"}
                }
            })
        })
        .collect();
    let mut body = json!({"pagination": pagination, "resources": resources});
    if include_orgs {
        let org_guids: HashSet<&str> = on_page.iter().map(|s| s.org_guid.as_str()).collect();
        let mut orgs: Vec<_> = world
            .orgs
            .iter()
            .filter(|o| org_guids.contains(o.guid.as_str()))
            .collect();
        orgs.sort_by(|a, b| (a.created_at, &a.guid).cmp(&(b.created_at, &b.guid)));
        let orgs: Vec<Value> = orgs
            .iter()
            .map(|o| {
                json!({
                    "guid": o.guid,
                    "created_at": timestamp(o.created_at),
                    "updated_at": timestamp(o.updated_at),
                    "name": o.name,
                    "suspended": false,
                    "relationships": {"quota": {"data": {"guid": DEFAULT_QUOTA_GUID}}},
                    "metadata": metadata(&o.metadata),
                    "links": {
                        "self": {"href": format!("{api}/v3/organizations/{}", o.guid)},
                        "domains": {"href": format!("{api}/v3/organizations/{}/domains", o.guid)},
                        "default_domain": {"href": format!("{api}/v3/organizations/{}/domains/default", o.guid)},
                        "quota": {"href": format!("{api}/v3/organization_quotas/{DEFAULT_QUOTA_GUID}")}
                    }
                })
            })
            .collect();
        body["included"] = json!({"organizations": orgs});
    }
    Json(body).into_response()
}

/// One requirement of a `label_selector` (`MetadataHelpers::REQUIREMENT_OPERATOR_PAIRS`);
/// `=`/`==` is an `In` of one value, `!=` a `NotIn` of one.
#[derive(Debug, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `label_selector`: every requirement must hold (labels only, not annotations).
#[derive(Debug, Default)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// The query's selector, or the Cloud Controller's 400 for an empty or unreadable one.
    #[allow(clippy::result_large_err)]
    pub(crate) fn from_query(query: &Query) -> Result<Self, Response> {
        let Some(raw) = query.get("label_selector") else {
            return Ok(Self::default());
        };
        Self::parse(raw).map_err(|detail| {
            cf_error(
                400,
                10005,
                "CF-BadQueryParameter",
                &format!("The query parameter is invalid: {detail}"),
            )
        })
    }

    fn parse(raw: &str) -> Result<Self, &'static str> {
        // Requirements split on commas outside parentheses (`REQUIREMENT_SPLITTER`).
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0usize, 0);
        for (i, c) in raw.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    parts.push(&raw[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&raw[start..]);
        let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        if parts.is_empty() {
            return Err("Missing label_selector value");
        }
        if parts.len() > 50 {
            return Err("Too many label_selector requirements (maximum is 50)");
        }
        parts
            .into_iter()
            .map(|p| Self::requirement(p).ok_or("Invalid label_selector value"))
            .collect::<Result<_, _>>()
            .map(LabelSelector)
    }

    fn requirement(r: &str) -> Option<Requirement> {
        let is_key = |k: &str| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        };
        // A label value: at most 63 of `[A-Za-z0-9-_.]` (`MetadataValidatorHelper`).
        let is_value = |v: &str| {
            v.len() <= 63
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let values = |v: &str| {
            let values: Vec<String> = v.split(',').map(str::to_owned).collect();
            values.iter().all(|v| is_value(v)).then_some(values)
        };
        let set = |r: &str, op: &str| {
            let (key, rest) = r.split_once(op).filter(|(k, _)| is_key(k))?;
            let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
            Some((key.to_owned(), values(inner)))
        };
        if let Some((key, v)) = set(r, " in ") {
            return v.map(|v| Requirement::In(key, v));
        }
        if let Some((key, v)) = set(r, " notin ") {
            return v.map(|v| Requirement::NotIn(key, v));
        }
        if let Some((key, value)) = r.split_once("!=") {
            return (is_key(key) && is_value(value))
                .then(|| Requirement::NotIn(key.into(), vec![value.into()]));
        }
        if let Some((key, value)) = r.split_once('=') {
            let value = value.strip_prefix('=').unwrap_or(value);
            return (is_key(key) && is_value(value))
                .then(|| Requirement::In(key.into(), vec![value.into()]));
        }
        if let Some(key) = r.strip_prefix('!') {
            return is_key(key).then(|| Requirement::NotExists(key.into()));
        }
        is_key(r).then(|| Requirement::Exists(r.into()))
    }

    pub(crate) fn matches(&self, metadata: &Metadata) -> bool {
        let labels = &metadata.labels;
        self.0.iter().all(|r| match r {
            Requirement::In(k, v) => labels.get(k).is_some_and(|l| v.contains(l)),
            Requirement::NotIn(k, v) => labels.get(k).is_none_or(|l| !v.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// The answer of a failing `/details`, by status: what the Cloud Controller (or the load
/// balancer in front of it) sends.
fn details_failure(status: u16) -> Response {
    match status {
        404 => cf_error(
            404,
            10010,
            "CF-ResourceNotFound",
            "Service credential binding not found",
        ),
        502..=504 => html(status),
        403 => cf_error(
            403,
            10003,
            "CF-NotAuthorized",
            "You are not authorized to perform the requested action",
        ),
        status => cf_error(
            status,
            10001,
            "CF-UnknownError",
            "An unknown error occurred.",
        ),
    }
}

/// Spends one answer of the failure the world plants for this key, if any. The write lock is
/// taken only for a counted failure.
fn planted_failure(state: &SimState, guid: &str) -> Option<u16> {
    {
        let world = state.world.read().unwrap_or_else(|e| e.into_inner());
        if let (status, None) = world.details_failure(guid)? {
            return Some(status);
        }
    }
    let mut world = state.world.write().unwrap_or_else(|e| e.into_inner());
    world.take_details_failure(guid)
}

/// `/details`: the failure switched on for this key (the `Switches` one first, then the one
/// planted in the world), else the key's credentials once its creation has succeeded, else
/// 404 (with the Cloud Controller's "Creation of service key in progress" and the like for a
/// key being created or deleted).
async fn details(State(state): State<Arc<SimState>>, Path(guid): Path<String>) -> Response {
    let switched = lock(&state.switches.details_failures).get(&guid).copied();
    if let Some(status) = switched.or_else(|| planted_failure(&state, &guid)) {
        return details_failure(status);
    }
    let world = state.world.read().unwrap_or_else(|e| e.into_inner());
    match world.key_by_guid(&guid) {
        Some(key) if key.create_succeeded() => {
            Json(json!({"credentials": key.credentials})).into_response()
        }
        Some(key) => cf_error(
            404,
            10010,
            "CF-ResourceNotFound",
            &crate::operations::not_ready(key),
        ),
        None => details_failure(404),
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    latency(&state).await;
    if state.switches.uaa_down.load(Ordering::Relaxed) {
        return html(503);
    }
    let accounts = &state.accounts;
    let client_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| pair == format!("{}:{}", accounts.client_id, accounts.client_secret));
    if !client_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad credentials",
        );
    }
    let granted = match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            *lock(&state.stats.last_login_hint) = form.get("login_hint").cloned();
            let origin_ok = match &accounts.origin {
                None => true,
                Some(origin) => form
                    .get("login_hint")
                    .and_then(|h| serde_json::from_str::<Value>(h).ok())
                    .is_some_and(|h| h["origin"] == origin.as_str()),
            };
            form.get("username") == Some(&accounts.username)
                && form.get("password") == Some(&accounts.password)
                && origin_ok
        }
        Some("client_credentials") => true,
        Some("refresh_token") => form
            .get("refresh_token")
            .is_some_and(|t| lock(&state.refresh_tokens).contains(t)),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant type",
            )
        }
    };
    if !granted {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad credentials",
        );
    }
    state.stats.logins.fetch_add(1, Ordering::Relaxed);
    let n = state.token_counter.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let access = format!("sim-access-{n}-{nanos:08x}");
    lock(&state.issued).push(access.clone());
    let ttl = state.switches.token_ttl_secs.load(Ordering::Relaxed);
    lock(&state.tokens).insert(access.clone(), Instant::now() + Duration::from_secs(ttl));
    let mut body = json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": "cloud_controller.read openid",
        "jti": format!("jti-{n}")
    });
    if state.switches.issue_refresh_tokens.load(Ordering::Relaxed) {
        let refresh = format!("sim-refresh-{n}-{nanos:08x}");
        lock(&state.refresh_tokens).insert(refresh.clone());
        lock(&state.issued).push(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One answer: status, headers (lower-case names) and the body, as JSON when it is JSON.
    struct Answer {
        status: u16,
        headers: HashMap<String, String>,
        body: Value,
    }

    /// A plain HTTP/1.1 GET over a fresh connection (the crate has no HTTP client).
    async fn get(sim: &Sim, path: &str, token: Option<&str>) -> Answer {
        let addr = format!(
            "{}:{}",
            sim.api_url.host_str().expect("host"),
            sim.api_url.port().expect("port")
        );
        let auth = token
            .map(|t| format!("Authorization: bearer {t}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
        let raw = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).expect("connect");
            stream.write_all(request.as_bytes()).expect("send");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).expect("receive");
            raw
        })
        .await
        .expect("the request thread");
        let text = String::from_utf8(raw).expect("UTF-8 answer");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        let mut lines = head.lines();
        let status = lines.next().expect("status line")[9..12]
            .parse()
            .expect("a status");
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        assert!(
            !headers.contains_key("transfer-encoding"),
            "a chunked answer to {path}"
        );
        let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.into()));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A token the API accepts, without a trip to the UAA.
    fn token(sim: &Sim) -> &'static str {
        lock(&sim.state.tokens).insert(
            "test-token".into(),
            Instant::now() + Duration::from_secs(3600),
        );
        "test-token"
    }

    fn at(s: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .expect("a test date")
    }

    /// Two orgs of three spaces each, one instance with one key in the first space.
    fn world() -> (World, Vec<String>, Vec<String>) {
        let mut w = World::new();
        let mut orgs = Vec::new();
        let mut spaces = Vec::new();
        for o in 0..2 {
            let org = w.org(&format!("org-{o}"));
            w.org_mut(&org).expect("org").created_at = at(&format!("2024-0{}-01T00:00:00Z", 2 - o));
            for s in 0..3 {
                let space = w.space(&org, &format!("space-{o}-{s}"));
                w.set_label(&space, "team", &format!("team-{s}"));
                spaces.push(space);
            }
            w.set_annotation(&org, "example.com/owner", &format!("owner-{o}@example.com"));
            orgs.push(org);
        }
        let instance = w.instance(&spaces[0], "it-rt", "api", "i");
        w.key(&instance, "k", json!({"secret": "s"}));
        (w, orgs, spaces)
    }

    #[tokio::test]
    async fn spaces_list_by_pages_with_the_orgs_of_each_page() {
        let (w, orgs, spaces) = world();
        let sim = Sim::start(w, Accounts::default()).await.expect("sim");
        let t = token(&sim);
        let a = get(&sim, "/v3/spaces?include=organization&per_page=2", Some(t)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let p = &a.body["pagination"];
        assert_eq!(
            (p["total_results"].as_u64(), p["total_pages"].as_u64()),
            (Some(6), Some(3))
        );
        let next = p["next"]["href"].as_str().expect("next");
        assert!(next.starts_with(sim.api_url.as_str()), "{next}");
        assert!(
            next.contains("include=organization") && next.contains("page=2"),
            "{next}"
        );
        assert!(p["previous"].is_null());
        let first = &a.body["resources"][0];
        assert_eq!(first["guid"], spaces[0]);
        assert_eq!(first["name"], "space-0-0");
        assert_eq!(
            first["relationships"]["organization"]["data"]["guid"],
            orgs[0]
        );
        assert_eq!(first["metadata"]["labels"]["team"], "team-0");
        assert_eq!(first["metadata"]["annotations"], json!({}));
        assert_eq!(first["created_at"], "2025-01-01T00:00:00Z");
        assert_eq!(first["updated_at"], "2025-01-01T00:00:00Z");
        assert!(first["links"]["self"]["href"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!("/v3/spaces/{}", spaces[0]))));
        let included = a.body["included"]["organizations"]
            .as_array()
            .expect("orgs");
        assert_eq!(included.len(), 1, "only the org of this page");
        assert_eq!(included[0]["guid"], orgs[0]);
        assert_eq!(included[0]["name"], "org-0");
        assert_eq!(included[0]["created_at"], "2024-02-01T00:00:00Z");
        assert_eq!(
            included[0]["metadata"]["annotations"]["example.com/owner"],
            "owner-0@example.com"
        );
        assert!(included[0]["links"]["self"]["href"].is_string());

        // The page with both orgs lists them by creation: org-1 was created first.
        let a = get(&sim, "/v3/spaces?include=org&per_page=4", Some(t)).await;
        let names: Vec<_> = a.body["included"]["organizations"]
            .as_array()
            .expect("orgs")
            .iter()
            .map(|o| o["name"].clone())
            .collect();
        assert_eq!(names, [json!("org-1"), json!("org-0")]);

        let last = get(&sim, "/v3/spaces?per_page=2&page=3", Some(t)).await;
        assert!(last.body["pagination"]["next"].is_null());
        assert_eq!(last.body["resources"][1]["guid"], spaces[5]);
        assert!(
            last.body.get("included").is_none(),
            "no include, no included"
        );

        let filtered = get(
            &sim,
            &format!(
                "/v3/spaces?organization_guids={}&names=space-1-2,space-0-0",
                orgs[1]
            ),
            Some(t),
        )
        .await;
        assert_eq!(filtered.body["resources"].as_array().map(Vec::len), Some(1));
        assert_eq!(filtered.body["resources"][0]["name"], "space-1-2");
        let by_guid = get(&sim, &format!("/v3/spaces?guids={}", spaces[3]), Some(t)).await;
        assert_eq!(by_guid.body["resources"][0]["name"], "space-1-0");
        let by_name = get(&sim, "/v3/spaces?order_by=-name&per_page=1", Some(t)).await;
        assert_eq!(by_name.body["resources"][0]["name"], "space-1-2");

        sim.state.switches.set_page_cap(1);
        let capped = get(&sim, "/v3/spaces?per_page=5000", Some(t)).await;
        assert_eq!(capped.body["resources"].as_array().map(Vec::len), Some(1));
        assert_eq!(capped.body["pagination"]["total_pages"], 6);
        assert_eq!(sim.state.stats.count("/v3/spaces"), 7);
    }

    #[tokio::test]
    async fn spaces_refuse_what_the_cloud_controller_refuses() {
        let (w, ..) = world();
        let sim = Sim::start(w, Accounts::default()).await.expect("sim");
        let t = token(&sim);
        let cases = [
            ("include=space", "Invalid included resource: 'space'. Valid included resources are: 'org', 'organization'"),
            ("include=organization,organization", "Duplicate included resource: 'organization'"),
            ("fields[space]=name", "Unknown query parameter(s): 'fields[space]'"),
            ("per_page=5001", "Per page must be between 1 and 5000"),
            ("per_page=0", "Per page must be between 1 and 5000"),
            ("order_by=guid", "Order by can only be: 'created_at', 'updated_at', 'name'"),
            ("label_selector=", "Missing label_selector value"),
            ("label_selector=team%3D%3D%3Dx%20y", "Invalid label_selector value"),
        ];
        for (query, detail) in cases {
            let a = get(&sim, &format!("/v3/spaces?{query}"), Some(t)).await;
            assert_eq!(a.status, 400, "{query}");
            let error = &a.body["errors"][0];
            assert_eq!(
                (error["code"].as_u64(), error["title"].as_str()),
                (Some(10005), Some("CF-BadQueryParameter")),
                "{query}"
            );
            let text = error["detail"].as_str().expect("detail");
            assert!(
                text.starts_with("The query parameter is invalid: "),
                "{text}"
            );
            assert!(text.contains(detail), "{query}: {text}");
        }
        assert_eq!(get(&sim, "/v3/spaces", None).await.status, 401);
        assert_eq!(get(&sim, "/v3/spaces", Some("forged")).await.status, 401);
        sim.state.switches.set_outage(Some(Outage::Html(503)));
        assert_eq!(get(&sim, "/v3/spaces", Some(t)).await.status, 503);
    }

    #[tokio::test]
    async fn label_selectors_filter_the_lists_on_labels() {
        let (mut w, _, spaces) = world();
        let instance = w.instances[0].guid.clone();
        let key = w.keys[0].guid.clone();
        w.set_label(&instance, "tier", "gold");
        w.set_label(&key, "team", "payments");
        w.set_annotation(&key, "tier", "gold");
        let sim = Sim::start(w, Accounts::default()).await.expect("sim");
        let t = token(&sim);
        let count = |a: Answer| a.body["pagination"]["total_results"].as_u64();
        let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        for (selector, expected) in [
            ("team=team-1", 2),
            ("team==team-1", 2),
            ("team!=team-1", 4),
            ("team in (team-0,team-2)", 4),
            ("team notin (team-0,team-2)", 2),
            ("team", 6),
            ("!team", 0),
            ("team=team-1,!team", 0),
            ("example.com/owner", 0),
        ] {
            let a = get(
                &sim,
                &format!("/v3/spaces?label_selector={}", q(selector)),
                Some(t),
            )
            .await;
            assert_eq!(count(a), Some(expected), "{selector}");
        }
        let a = get(
            &sim,
            "/v3/service_instances?label_selector=tier%3Dgold",
            Some(t),
        )
        .await;
        assert_eq!(a.body["resources"][0]["guid"], instance);
        let a = get(
            &sim,
            "/v3/service_credential_bindings?label_selector=team%3Dpayments",
            Some(t),
        )
        .await;
        assert_eq!(count(a), Some(1));
        // Annotations are not labels.
        let a = get(
            &sim,
            "/v3/service_credential_bindings?label_selector=tier",
            Some(t),
        )
        .await;
        assert_eq!(count(a), Some(0));
        let a = get(
            &sim,
            &format!("/v3/service_instances?space_guids={}", spaces[1]),
            Some(t),
        )
        .await;
        assert_eq!(count(a), Some(0));
    }

    #[tokio::test]
    async fn instances_and_bindings_carry_their_metadata_and_creation_time() {
        let (mut w, ..) = world();
        let instance = w.instances[0].guid.clone();
        let key = w.keys[0].guid.clone();
        {
            let i = w.instance_mut(&instance).expect("instance");
            i.created_at = at("2024-05-01T10:00:00Z");
            i.updated_at = at("2024-05-01T10:01:00Z");
            let k = w.key_mut(&key).expect("key");
            k.created_at = at("2024-06-01T08:30:00Z");
            k.updated_at = at("2024-06-01T08:31:00Z");
        }
        let sim = Sim::start(w, Accounts::default()).await.expect("sim");
        let t = token(&sim);
        let bare = get(&sim, "/v3/service_instances", Some(t)).await;
        assert_eq!(
            bare.body["resources"][0]["metadata"],
            json!({"labels": {}, "annotations": {}})
        );

        sim.state.with_world(|w| {
            assert!(w.set_label(&instance, "team", "integration"));
            assert!(w.set_annotation(&instance, "example.com/owner", "i@example.com"));
            assert!(w.set_label(&key, "team", "payments"));
            assert!(w.set_annotation(&key, "note", "rotate in May"));
        });
        let a = get(&sim, "/v3/service_instances", Some(t)).await;
        let i = &a.body["resources"][0];
        assert_eq!(i["created_at"], "2024-05-01T10:00:00Z");
        assert_eq!(
            i["updated_at"], "2024-05-01T10:01:00Z",
            "metadata edits leave updated_at"
        );
        assert_eq!(
            i["metadata"],
            json!({"labels": {"team": "integration"}, "annotations": {"example.com/owner": "i@example.com"}})
        );
        let a = get(&sim, "/v3/service_credential_bindings", Some(t)).await;
        let k = &a.body["resources"][0];
        assert_eq!(k["created_at"], "2024-06-01T08:30:00Z");
        assert_eq!(
            k["updated_at"], "2024-06-01T08:31:00Z",
            "metadata edits leave updated_at"
        );
        assert_eq!(
            k["metadata"],
            json!({"labels": {"team": "payments"}, "annotations": {"note": "rotate in May"}})
        );
        // fields[space] gives names and guids only, never metadata.
        let a = get(
            &sim,
            "/v3/service_instances?fields[space]=guid,name&fields[space.organization]=guid,name",
            Some(t),
        )
        .await;
        assert!(a.body["included"]["spaces"][0].get("metadata").is_none());
        assert!(a.body["included"]["organizations"][0]
            .get("metadata")
            .is_none());
    }

    #[tokio::test]
    async fn details_fail_as_planted_for_as_many_requests_as_planted() {
        let (mut w, ..) = world();
        let key = w.keys[0].guid.clone();
        w.fail_details(&key, 502, Some(2));
        let sim = Sim::start(w, Accounts::default()).await.expect("sim");
        let t = token(&sim);
        let path = format!("/v3/service_credential_bindings/{key}/details");
        for _ in 0..2 {
            let a = get(&sim, &path, Some(t)).await;
            assert_eq!(a.status, 502);
            assert_eq!(a.headers["content-type"], "text/html");
        }
        let a = get(&sim, &path, Some(t)).await;
        assert_eq!(
            (a.status, &a.body["credentials"]["secret"]),
            (200, &json!("s"))
        );

        sim.state.with_world(|w| w.fail_details(&key, 404, None));
        for _ in 0..3 {
            let a = get(&sim, &path, Some(t)).await;
            assert_eq!(a.status, 404);
            assert_eq!(a.body["errors"][0]["title"], "CF-ResourceNotFound");
        }
        // The switch answers first, and leaves the planted failure where it is.
        sim.state.with_world(|w| w.fail_details(&key, 500, Some(1)));
        sim.state.switches.fail_details(&key, 403);
        let a = get(&sim, &path, Some(t)).await;
        assert_eq!(
            (a.status, &a.body["errors"][0]["title"]),
            (403, &json!("CF-NotAuthorized"))
        );
        sim.state.switches.clear_details_failures();
        let a = get(&sim, &path, Some(t)).await;
        assert_eq!(
            (a.status, &a.body["errors"][0]["title"]),
            (500, &json!("CF-UnknownError"))
        );
        assert_eq!(get(&sim, &path, Some(t)).await.status, 200);
        assert_eq!(
            sim.state
                .stats
                .count("/v3/service_credential_bindings/:guid/details"),
            9
        );
    }

    #[tokio::test]
    async fn an_hour_of_a_2000_per_hour_limit_passes_on_the_manual_clock() {
        let (w, ..) = world();
        let sim = Sim::start(w, Accounts::default()).await.expect("sim");
        let t = token(&sim);
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hour = Duration::from_secs(3600);
        sim.state.set_clock(Some(start));
        sim.state
            .switches
            .set_rate_limit(Some(RateLimit::new(2000, hour).with_used(1990)));
        let reset = (1_800_000_000u64 + 3600).to_string();
        for n in 0..10 {
            let a = get(&sim, "/v3/spaces", Some(t)).await;
            assert_eq!(a.status, 200, "request {n}");
            assert_eq!(a.headers["x-ratelimit-limit"], "2000");
            assert_eq!(
                a.headers["x-ratelimit-remaining"], "0",
                "under a tenth left"
            );
            assert_eq!(a.headers["x-ratelimit-reset"], reset);
        }
        assert_eq!(sim.state.switches.rate_limit_used(), Some((2000, 2000)));
        let a = get(&sim, "/v3/spaces", Some(t)).await;
        assert_eq!(a.status, 429);
        assert_eq!(a.headers["retry-after"], "3600", "the clock stands still");
        assert_eq!(a.headers["content-type"], "text/plain");
        assert_eq!(a.headers["x-ratelimit-reset"], reset);

        sim.state
            .advance_clock(Duration::from_secs(1799) + Duration::from_millis(500));
        let a = get(&sim, "/v3/service_instances", Some(t)).await;
        assert_eq!((a.status, a.headers["retry-after"].as_str()), (429, "1801"));
        sim.state
            .advance_clock(Duration::from_secs(1800) + Duration::from_millis(500));
        let a = get(&sim, "/v3/service_instances", Some(t)).await;
        assert_eq!(a.status, 200, "a new window an hour later");
        assert_eq!(a.headers["x-ratelimit-remaining"], "1800");
        let next_reset = start + hour + hour;
        let next_reset = next_reset
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        assert_eq!(a.headers["x-ratelimit-reset"], next_reset.to_string());
        assert_eq!(sim.state.switches.rate_limit_used(), Some((1, 2000)));

        // A whole window of 2,000 requests, then the next hour, without waiting for it.
        sim.state
            .switches
            .set_rate_limit(Some(RateLimit::new(2000, hour)));
        let mut statuses = HashMap::new();
        for _ in 0..2000 {
            *statuses
                .entry(get(&sim, "/v3/spaces?per_page=1", Some(t)).await.status)
                .or_insert(0) += 1;
        }
        assert_eq!(statuses, HashMap::from([(200, 2000)]));
        assert_eq!(get(&sim, "/v3/spaces", Some(t)).await.status, 429);
        sim.state.advance_clock(hour);
        assert_eq!(get(&sim, "/v3/spaces", Some(t)).await.status, 200);

        // Back on the system clock, the window is measured in real time again.
        sim.state.set_clock(None);
        sim.state
            .switches
            .set_rate_limit(Some(RateLimit::new(1, Duration::from_secs(60))));
        assert_eq!(get(&sim, "/v3/spaces", Some(t)).await.status, 200);
        let a = get(&sim, "/v3/spaces", Some(t)).await;
        assert_eq!(a.status, 429);
        let retry: u64 = a.headers["retry-after"].parse().expect("seconds");
        assert!((59..=60).contains(&retry), "{retry}");
    }
}
