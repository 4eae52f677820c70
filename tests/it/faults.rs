//! Fault injection: every misbehaviour of Cloud Foundry and UAA the exporter must survive.
//!
//! Each test does a good refresh first, then switches one fault on, refreshes again and
//! scrapes. It ends the same way: the exporter still serves, the last good values are still
//! there, `refresh_success` says 0 when the refresh failed, and the fault is counted (in
//! `api_requests_total{code}` or `details_errors_total{reason}`) and logged with its reason.
//! Timeouts, retries and body caps are shortened through `FoundationConfig::http`, so no test
//! waits on a production timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::logs::Logs;
use crate::common::{Harness, Scrape};
use cf_service_key_exporter::config::{FoundationConfig, SecretSource};
use cf_sim::{demo, Accounts, Outage, World};
use time::OffsetDateTime;

const F: [(&str, &str); 1] = [("foundation", "test")];
const INSTANCES: &str = "/v3/service_instances";
const BINDINGS: &str = "/v3/service_credential_bindings";
const DETAILS: &str = "/v3/service_credential_bindings/:guid/details";
const TOKEN: &str = "/oauth/token";

/// The demo foundation without its planted failures: every fault here is the test's own.
fn world() -> World {
    let mut w = demo::world(OffsetDateTime::now_utc()).unwrap();
    w.clear_details_failures();
    w
}

/// Short timeouts, one quick retry, and logins retried at once: fast tests.
fn fast(config: &mut FoundationConfig) {
    config.http.connect_timeout = Duration::from_secs(2);
    config.http.read_timeout = Duration::from_millis(300);
    config.http.request_timeout = Duration::from_secs(5);
    config.http.retries = 1;
    config.http.retry_min_delay = Duration::from_millis(10);
    config.http.login_retry_after = Duration::ZERO;
}

async fn harness(world: World) -> Harness {
    Harness::with(world, Accounts::default(), fast).await
}

/// A good refresh and its scrape, before the fault.
async fn good(h: &Harness) -> Scrape {
    let stats = h.refresh().await;
    assert_eq!(stats.details_errors, 0, "{stats:?}");
    let scrape = h.scrape().await;
    assert_eq!(
        scrape.value("cf_service_key_exporter_refresh_success", &F),
        1.0
    );
    assert!(!scrape.all("cf_service_key_info").is_empty());
    scrape
}

/// Every per-key series of `before` is still served with the same value.
#[track_caller]
fn assert_kept(before: &Scrape, after: &Scrape) {
    for name in [
        "cf_service_key_info",
        "cf_service_key_expiry_timestamp_seconds",
    ] {
        let mut was: Vec<_> = before.all(name).into_iter().cloned().collect();
        let mut now: Vec<_> = after.all(name).into_iter().cloned().collect();
        assert!(!was.is_empty());
        let key = |s: &crate::common::Series| format!("{:?}", s.labels);
        was.sort_by_key(key);
        now.sort_by_key(key);
        assert_eq!(was, now, "{name} changed");
    }
    assert_eq!(
        before.value(
            "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
            &F
        ),
        after.value(
            "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
            &F
        )
    );
}

/// The refresh failed, the exporter still serves, and the last good values are kept.
async fn assert_failed_and_kept(h: &Harness, before: &Scrape) -> Scrape {
    assert_eq!(h.get("/healthz").await.status(), 200);
    assert_eq!(h.get("/").await.status(), 200);
    let after = h.scrape().await;
    assert_eq!(
        after.value("cf_service_key_exporter_refresh_success", &F),
        0.0
    );
    assert_kept(before, &after);
    after
}

fn requests(scrape: &Scrape, endpoint: &str, code: &str) -> f64 {
    scrape
        .find(
            "cf_service_key_exporter_api_requests_total",
            &[
                ("foundation", "test"),
                ("endpoint", endpoint),
                ("code", code),
            ],
        )
        .first()
        .map_or(0.0, |s| s.value)
}

/// Requests with `code` to the two listings: (instances, keys). The listings run together and a
/// failure of one cancels the other, so a test can only rely on the one that failed first.
fn list_requests(scrape: &Scrape, code: &str) -> (f64, f64) {
    (
        requests(scrape, INSTANCES, code),
        requests(scrape, BINDINGS, code),
    )
}

/// The refresher's failure line with its bounded reason.
#[track_caller]
fn assert_refresh_failed_with(logs: &Logs, reason: &str) -> String {
    logs.assert_line(&["refresh failed", &format!("reason=\"{reason}\"")])
}

#[tokio::test]
async fn connection_refused_keeps_the_last_values() {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    let before = good(&h).await;
    // The foundation's API and UAA stop listening: their ports are closed now.
    h.sim.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.refresh().await;
    let after = assert_failed_and_kept(&h, &before).await;
    let (instances, keys) = list_requests(&after, "error");
    assert!(instances + keys >= 1.0);
    let line = assert_refresh_failed_with(&logs, "connection");
    assert!(line.contains("no response"), "{line}");
}

#[tokio::test]
async fn a_body_that_stalls_mid_way_times_out_and_keeps_the_last_values() {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    let before = good(&h).await;
    h.sim.state.switches.set_outage(Some(Outage::StallBody));
    let started = std::time::Instant::now();
    h.refresh().await;
    // Two tries of 300 ms of silence each, not the 60 s of a whole request.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let after = assert_failed_and_kept(&h, &before).await;
    // The status line said 200, but no usable answer came: counted as an error.
    let (instances, keys) = list_requests(&after, "error");
    assert!(instances + keys >= 1.0);
    assert_eq!(list_requests(&after, "200"), list_requests(&before, "200"));
    assert_refresh_failed_with(&logs, "timeout");
}

async fn html_error_page(status: u16) {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    let before = good(&h).await;
    h.sim.state.switches.set_outage(Some(Outage::Html(status)));
    h.refresh().await;
    let after = assert_failed_and_kept(&h, &before).await;
    let code = status.to_string();
    let expected_tries = if status == 500 { 1.0 } else { 2.0 }; // 502/503 are retried once
    let (instances, keys) = list_requests(&after, &code);
    assert_eq!(instances.max(keys), expected_tries);
    let line = assert_refresh_failed_with(&logs, "http_5xx");
    assert!(line.contains(&format!("HTTP {status}")), "{line}");
    // The HTML page itself is not dumped into the log line.
    assert!(!line.contains("<html>"), "{line}");
}

#[tokio::test]
async fn html_500_page_keeps_the_last_values() {
    html_error_page(500).await;
}

#[tokio::test]
async fn html_502_page_keeps_the_last_values() {
    html_error_page(502).await;
}

#[tokio::test]
async fn html_503_page_keeps_the_last_values() {
    html_error_page(503).await;
}

#[tokio::test]
async fn a_10_mb_list_body_is_cut_off_at_the_cap() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::with(world(), Accounts::default(), |c| {
        fast(c);
        c.http.list_body_limit = 1024 * 1024;
    })
    .await;
    let before = good(&h).await;
    h.sim
        .state
        .switches
        .set_outage(Some(Outage::HugeBody(10 * 1024 * 1024)));
    h.refresh().await;
    let after = assert_failed_and_kept(&h, &before).await;
    let (instances, keys) = list_requests(&after, "error");
    assert!(instances + keys >= 1.0);
    let line = assert_refresh_failed_with(&logs, "body_too_large");
    assert!(line.contains("larger than 1048576 bytes"), "{line}");
}

#[tokio::test]
async fn a_key_whose_details_exceed_the_default_cap_keeps_its_last_reading() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::with(world(), Accounts::default(), |c| {
        fast(c);
        // The simulator takes a moment to serialise 5 MB in a debug build.
        c.http.read_timeout = Duration::from_secs(10);
        c.http.request_timeout = Duration::from_secs(20);
    })
    .await;
    let before = good(&h).await;
    // 5 MB of credentials: over the default 4 MiB cap for `/details`.
    h.sim.state.with_world(|w| {
        let guid = w.find_key("partner-edi").unwrap().guid.clone();
        let key = w.key_mut(&guid).unwrap();
        key.credentials["padding"] = serde_json::Value::String("x".repeat(5 * 1024 * 1024));
        key.updated_at += time::Duration::minutes(1);
    });
    let stats = h.refresh().await;
    assert_eq!(stats.details_errors, 1);
    let after = h.scrape().await;
    // A key's failure does not fail the refresh.
    assert_eq!(
        after.value("cf_service_key_exporter_refresh_success", &F),
        1.0
    );
    assert_eq!(
        after.key_value("cf_service_key_expiry_timestamp_seconds", "partner-edi"),
        before.key_value("cf_service_key_expiry_timestamp_seconds", "partner-edi")
    );
    assert_eq!(
        after.value(
            "cf_service_key_exporter_details_errors_total",
            &[("foundation", "test"), ("reason", "body_too_large")]
        ),
        1.0
    );
    assert_eq!(
        requests(&after, DETAILS, "error"),
        1.0,
        "{}",
        logs.lines_with(&["details"]).join("\n")
    );
    logs.assert_line(&["cannot read the key's details", "larger than 4194304 bytes"]);
}

#[tokio::test]
async fn invalid_json_keeps_the_last_values() {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    let before = good(&h).await;
    h.sim.state.switches.set_outage(Some(Outage::InvalidJson));
    h.refresh().await;
    let after = assert_failed_and_kept(&h, &before).await;
    // The answer came (200) but could not be read: not retried.
    let (instances, keys) = list_requests(&after, "200");
    let (instances_before, keys_before) = list_requests(&before, "200");
    assert!(instances - instances_before <= 1.0 && keys - keys_before <= 1.0);
    assert!(instances + keys > instances_before + keys_before);
    let line = assert_refresh_failed_with(&logs, "invalid_json");
    assert!(line.contains("invalid response (HTTP 200"), "{line}");
}

/// A listener that only counts the connections made to it.
async fn recording_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (origin, connections)
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_gets_no_request() {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    h.sim.state.switches.set_page_cap(5);
    let before = good(&h).await;
    let (foreign, connections) = recording_listener().await;
    *h.sim.state.switches.foreign_next.lock().unwrap() = Some(foreign.clone());
    h.refresh().await;
    assert_failed_and_kept(&h, &before).await;
    // Not a single connection, so certainly no Authorization header, reached the other origin.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    let line = assert_refresh_failed_with(&logs, "foreign_origin");
    assert!(line.contains(&foreign), "{line}");
}

#[tokio::test]
async fn a_pagination_loop_stops_and_keeps_the_last_values() {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    h.sim.state.switches.set_page_cap(5);
    let before = good(&h).await;
    h.sim.state.stats.reset();
    h.sim
        .state
        .switches
        .loop_pages
        .store(true, Ordering::Relaxed);
    h.refresh().await;
    assert_failed_and_kept(&h, &before).await;
    // The loop is seen within a couple of pages, not after `total_pages`.
    assert!(h.sim.state.stats.count(INSTANCES) <= 3);
    assert!(h.sim.state.stats.count(BINDINGS) <= 3);
    assert_refresh_failed_with(&logs, "pagination");
}

fn password_file(dir: &std::path::Path, password: &str) -> std::path::PathBuf {
    let path = dir.join("password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-ske-faults-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn uaa_refusing_a_wrong_password_is_logged_without_it_and_tried_once() {
    let (logs, _guard) = Logs::capture();
    let dir = temp_dir("password");
    let path = password_file(&dir, &Accounts::default().password);
    let file = path.clone();
    let h = Harness::with(world(), Accounts::default(), move |c| {
        fast(c);
        c.http.login_retry_after = Duration::from_millis(300);
        if let cf_service_key_exporter::config::Grant::Password { password, .. } = &mut c.grant {
            *password = SecretSource::File(file);
        }
    })
    .await;
    let before = good(&h).await;

    let wrong = "wrong-password-marker-31337";
    password_file(&dir, wrong);
    h.sim.state.expire_tokens();
    h.refresh().await;
    let after = assert_failed_and_kept(&h, &before).await;
    // Both listings needed a token; only one login was tried.
    assert_eq!(requests(&after, TOKEN, "401"), 1.0);
    let line = assert_refresh_failed_with(&logs, "login");
    let accounts = Accounts::default();
    assert!(line.contains(&accounts.username), "{line}");
    assert!(
        line.contains(&format!(
            "{}/oauth/token",
            h.sim.uaa_url.as_str().trim_end_matches('/')
        )),
        "{line}"
    );
    assert!(
        line.contains("HTTP 401") && line.contains("Bad credentials"),
        "{line}"
    );
    let text = logs.text();
    assert!(!text.contains(wrong), "the wrong password is in the log");
    assert!(
        !text.contains(&accounts.password),
        "the password is in the log"
    );

    // The password file is corrected: the next refresh after the pause logs in with it.
    password_file(&dir, &accounts.password);
    tokio::time::sleep(Duration::from_millis(350)).await;
    h.refresh().await;
    assert_eq!(
        h.scrape()
            .await
            .value("cf_service_key_exporter_refresh_success", &F),
        1.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_token_expiring_mid_refresh_with_a_wrong_password_costs_one_failed_login() {
    // Many `/details` requests are in flight when the token dies and the password is wrong:
    // they share one failed login instead of each locking the account a bit more.
    let (logs, _guard) = Logs::capture();
    let dir = temp_dir("lockout");
    let path = password_file(&dir, &Accounts::default().password);
    let file = path.clone();
    let h = Harness::with(
        demo::large(300, OffsetDateTime::now_utc()).unwrap(),
        Accounts::default(),
        move |c| {
            fast(c);
            c.http.login_retry_after = Duration::from_secs(30);
            if let cf_service_key_exporter::config::Grant::Password { password, .. } = &mut c.grant
            {
                *password = SecretSource::File(file);
            }
        },
    )
    .await;
    let before = good(&h).await;
    h.sim.state.with_world(|w| {
        for k in &mut w.keys {
            k.updated_at += time::Duration::minutes(1);
        }
    });
    h.sim.state.switches.set_latency(Duration::from_millis(5));
    let state = h.sim.state.clone();
    let dir2 = dir.clone();
    let expire = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        password_file(&dir2, "wrong");
        state.expire_tokens();
    });
    let stats = h.refresh().await;
    expire.await.unwrap();
    assert!(stats.details_errors > 0, "{stats:?}");
    let after = h.scrape().await;
    assert_eq!(requests(&after, TOKEN, "401"), 1.0);
    assert!(
        after.value(
            "cf_service_key_exporter_details_errors_total",
            &[("foundation", "test"), ("reason", "login")]
        ) >= 1.0
    );
    // Keys whose re-read failed keep their last reading.
    assert_eq!(
        after.all("cf_service_key_info").len(),
        before.all("cf_service_key_info").len()
    );
    logs.assert_line(&["cannot read the key's details", "not retried for 30s"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn uaa_down_keeps_the_last_values_and_recovers() {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    let before = good(&h).await;
    h.sim.state.switches.uaa_down.store(true, Ordering::Relaxed);
    h.sim.state.expire_tokens();
    h.refresh().await;
    let after = assert_failed_and_kept(&h, &before).await;
    assert!(requests(&after, TOKEN, "503") >= 1.0);
    let line = assert_refresh_failed_with(&logs, "login");
    assert!(
        line.contains(h.sim.uaa_url.as_str().trim_end_matches('/')),
        "{line}"
    );
    assert!(line.contains("HTTP 503"), "{line}");

    h.sim
        .state
        .switches
        .uaa_down
        .store(false, Ordering::Relaxed);
    h.refresh().await;
    assert_eq!(
        h.scrape()
            .await
            .value("cf_service_key_exporter_refresh_success", &F),
        1.0
    );
}

#[tokio::test]
async fn an_expired_token_gets_exactly_one_new_login() {
    let (_logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    good(&h).await;
    let logins = || h.sim.state.stats.logins.load(Ordering::Relaxed);
    assert_eq!(logins(), 1);
    h.sim.state.expire_tokens();
    h.refresh().await;
    let after = h.scrape().await;
    assert_eq!(
        after.value("cf_service_key_exporter_refresh_success", &F),
        1.0
    );
    assert_eq!(logins(), 2);
    assert!(requests(&after, INSTANCES, "401") + requests(&after, BINDINGS, "401") >= 1.0);
}

#[tokio::test]
async fn an_api_refusing_every_token_gets_one_new_login_not_a_loop() {
    let (logs, _guard) = Logs::capture();
    let h = harness(world()).await;
    let before = good(&h).await;
    let logins = || h.sim.state.stats.logins.load(Ordering::Relaxed);
    h.sim
        .state
        .switches
        .refuse_tokens
        .store(true, Ordering::Relaxed);
    h.refresh().await;
    let after = assert_failed_and_kept(&h, &before).await;
    // One fresh login shared by both listings, one more try each, then the refresh gives up.
    assert_eq!(logins(), 2);
    let (instances, keys) = list_requests(&after, "401");
    assert_eq!(instances.max(keys), 2.0);
    let line = assert_refresh_failed_with(&logs, "unauthorized");
    assert!(line.contains("CF-InvalidAuthToken"), "{line}");
}
