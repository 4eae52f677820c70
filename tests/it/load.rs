//! The load the exporter puts on Cloud Foundry: the full re-read spread over the day, the
//! rate-limit budget respected and shown, a 429 honoured, and restarts and reloads that start
//! from the cache file. Time moves on injected clocks (the refresher's and the simulator's),
//! never by sleeping, except where a real `Retry-After` pause is the behaviour under test.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cf_service_key_exporter::cache::Cache;
use cf_service_key_exporter::config::{DemoTarget, FoundationConfig};
use cf_service_key_exporter::metrics::ExporterMetrics;
use cf_service_key_exporter::snapshot::Store;
use cf_service_key_exporter::supervisor::Supervisor;
use cf_sim::{demo, Accounts, RateLimit, Sim};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::common::Harness;

const DETAILS: &str = "/v3/service_credential_bindings/:guid/details";
const FIVE_MINUTES: Duration = Duration::from_secs(300);
const DAY: Duration = Duration::from_secs(86_400);

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A whole second, so the simulator's and the refresher's clocks agree to the second.
fn whole_second_now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn steady(c: &mut FoundationConfig) {
    c.refresh_interval = FIVE_MINUTES;
    c.full_refresh_interval = DAY;
}

#[tokio::test]
async fn a_simulated_day_re_reads_every_key_once_at_a_steady_rate() {
    const KEYS: usize = 576; // 5 minutes of 24 hours: exactly 2 re-reads a refresh
    let h = Harness::with(
        demo::large(KEYS, now()).unwrap(),
        Accounts::default(),
        steady,
    )
    .await;
    let start = cf_service_key_exporter::clock::Clock::unix_now(&*h.clock);
    let cold = h.refresh().await;
    assert_eq!(cold.details_read, KEYS);

    let mut per_refresh = Vec::new();
    for _ in 0..288 {
        h.clock.advance(FIVE_MINUTES);
        h.sim.state.stats.reset();
        let stats = h.refresh().await;
        assert_eq!(stats.details_read, h.sim.state.stats.count(DETAILS));
        per_refresh.push(stats.details_read);
    }
    // No refresh reads more than its share (2), none is skipped, no spike at the 24th hour.
    assert!(per_refresh.iter().all(|n| *n == 2), "{per_refresh:?}");
    let snapshot = h.store.foundation("test").unwrap();
    let read_again: HashSet<&str> = snapshot
        .keys
        .iter()
        .filter(|k| k.reading.as_ref().is_some_and(|r| r.read_at > start))
        .map(|k| &*k.labels.service_key_guid)
        .collect();
    assert_eq!(
        read_again.len(),
        KEYS,
        "every key was read again within the day"
    );
}

#[tokio::test]
async fn failing_keys_come_on_top_of_the_share_and_nothing_else_does() {
    let h = Harness::with(
        demo::large(576, now()).unwrap(),
        Accounts::default(),
        steady,
    )
    .await;
    h.refresh().await;
    let failing: Vec<String> = h.sim.state.with_world(|w| {
        let guids: Vec<String> = w.keys.iter().take(3).map(|k| k.guid.clone()).collect();
        for g in &guids {
            w.fail_details(g, 404, None);
        }
        guids
    });
    // Make the three keys due for a read, which then fails; from there they are retried.
    h.sim.state.with_world(|w| {
        for g in &failing {
            w.key_mut(g).unwrap().updated_at += time::Duration::minutes(1);
        }
    });
    let mut per_refresh = Vec::new();
    for _ in 0..12 {
        h.clock.advance(FIVE_MINUTES);
        h.sim.state.stats.reset();
        per_refresh.push(
            h.refresh().await.details_read
                + h.sim
                    .state
                    .stats
                    .log()
                    .iter()
                    .filter(|l| l.status == 404)
                    .count(),
        );
    }
    // Each refresh: the share of 2, plus the failing keys whose backoff has passed (3 at
    // first, then after 2, 4, 8 intervals).
    assert!(per_refresh.iter().all(|n| *n <= 2 + 3), "{per_refresh:?}");
    // The failing keys are read when made due, retried at the next refresh, then after two
    // and four intervals.
    let failing_reads: Vec<usize> = per_refresh.iter().map(|n| n - 2).collect();
    assert_eq!(failing_reads[..8], [3, 3, 0, 3, 0, 0, 0, 3]);
}

#[tokio::test]
async fn the_rate_limit_cloud_foundry_announces_is_on_metrics() {
    let t0 = whole_second_now();
    let h = Harness::new(demo::large(50, now()).unwrap()).await;
    h.sim.state.switches.set_clock(Some(t0));
    h.sim
        .state
        .switches
        .set_rate_limit(Some(RateLimit::new(2_000, Duration::from_secs(3_600))));
    h.refresh().await;
    let scrape = h.scrape().await;
    let f = [("foundation", "test")];
    assert_eq!(
        scrape.value("cf_service_key_exporter_ratelimit_limit", &f),
        2_000.0
    );
    // 52 of 2,000 used: Cloud Foundry floors what remains to tenths of the limit.
    assert_eq!(
        scrape.value("cf_service_key_exporter_ratelimit_remaining", &f),
        1_800.0
    );
    let reset = t0.duration_since(UNIX_EPOCH).unwrap().as_secs() + 3_600;
    assert_eq!(
        scrape.value(
            "cf_service_key_exporter_ratelimit_reset_timestamp_seconds",
            &f
        ),
        reset as f64
    );
}

#[tokio::test]
async fn without_rate_limit_headers_there_are_no_rate_limit_gauges() {
    let h = Harness::new(demo::large(10, now()).unwrap()).await;
    h.refresh().await;
    let scrape = h.scrape().await;
    assert!(scrape
        .all("cf_service_key_exporter_ratelimit_limit")
        .is_empty());
    assert!(scrape
        .all("cf_service_key_exporter_ratelimit_remaining")
        .is_empty());
}

#[tokio::test]
async fn a_cold_start_larger_than_the_budget_spreads_over_the_hours_without_a_429() {
    // Scaled down forty times from 20,000 keys against 2,000 requests an hour, so the same
    // ten-hour cold start runs in seconds.
    const KEYS: usize = 500;
    const LIMIT: u64 = 100;
    let t0 = whole_second_now();
    let h = Harness::with(
        demo::large(KEYS, now()).unwrap(),
        Accounts::default(),
        steady,
    )
    .await;
    h.clock.set(t0);
    h.sim.state.switches.set_clock(Some(t0));
    h.sim
        .state
        .switches
        .set_rate_limit(Some(RateLimit::new(LIMIT, Duration::from_secs(3_600))));

    let mut unread = Vec::new();
    let mut requests_this_hour = 0;
    let mut hours = Vec::new();
    for refresh in 0..400 {
        let outcome = h.refresh_outcome().await;
        assert!(
            outcome.error.is_none(),
            "refresh {refresh}: {:?}",
            outcome.error
        );
        // Every refresh publishes every key, read or not yet.
        assert_eq!(outcome.stats.keys, KEYS);
        unread.push(outcome.stats.unread);
        requests_this_hour += h.sim.state.stats.total();
        h.sim.state.stats.reset();
        if refresh % 12 == 11 {
            hours.push(requests_this_hour);
            requests_this_hour = 0;
        }
        if outcome.stats.unread == 0 {
            break;
        }
        if refresh == 3 {
            // How far it is, on /metrics: the keys not read yet are there, as unread.
            let scrape = h.scrape().await;
            let shown = scrape
                .find("cf_service_key_info", &[("expiry_source", "unread")])
                .len();
            assert_eq!(shown, outcome.stats.unread);
            assert!(shown > 0 && shown < KEYS);
        }
        h.clock.advance(FIVE_MINUTES);
        h.sim.state.switches.advance_clock(FIVE_MINUTES);
    }
    assert_eq!(
        unread.last(),
        Some(&0),
        "every key was read in the end: {unread:?}"
    );
    assert!(
        unread.windows(2).all(|w| w[1] < w[0]),
        "progress at every refresh: {unread:?}"
    );
    assert!(
        hours.iter().all(|n| *n <= LIMIT as usize),
        "requests per hour: {hours:?}"
    );
    let throttled = h
        .sim
        .state
        .stats
        .log()
        .iter()
        .filter(|l| l.status == 429)
        .count();
    assert_eq!(throttled, 0);
    // It takes the hours the budget allows, not one refresh.
    assert!(
        hours.len() >= KEYS / LIMIT as usize,
        "{} hours: {hours:?}",
        hours.len()
    );
}

#[tokio::test]
async fn a_429_with_retry_after_2_stops_every_request_for_2_s_and_the_refresh_completes() {
    // One key at a time, so besides the throttled request at most one other (the lists run
    // together) can already be on its way when the 429 arrives.
    // On the system clock: the pause itself is the behaviour under test here.
    let h = Harness::on_system_clock(demo::large(40, now()).unwrap(), |c| {
        c.details_concurrency = std::num::NonZeroUsize::new(1).unwrap()
    })
    .await;
    h.sim.state.switches.throttle(1, 2);
    let outcome = h.refresh_outcome().await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(outcome.stats.keys, 40);

    let log = h.sim.state.stats.log();
    let throttled = log.iter().find(|l| l.status == 429).expect("one 429").at;
    let within: Vec<_> = log
        .iter()
        .filter(|l| l.received > throttled && l.received < throttled + Duration::from_secs(2))
        .collect();
    // Sent before the exporter could see the 429: arrives at once, not later in the pause.
    let in_flight =
        |l: &&cf_sim::server::Logged| l.received < throttled + Duration::from_millis(200);
    assert!(
        within.len() <= 1 && within.iter().all(in_flight),
        "requests within 2 s of the 429: {within:?}"
    );
    assert!(log
        .iter()
        .any(|l| l.received >= throttled + Duration::from_secs(2)));
    assert_eq!(log.iter().filter(|l| l.status == 429).count(), 1);
    assert_eq!(h.scrape().await.all("cf_service_key_info").len(), 40);
}

#[tokio::test]
async fn a_rate_limit_reading_past_its_reset_no_longer_holds_back_reads() {
    let t0 = whole_second_now();
    let h = Harness::with(demo::large(20, now()).unwrap(), Accounts::default(), steady).await;
    h.clock.set(t0);
    h.sim.state.switches.set_clock(Some(t0));
    assert_eq!(h.refresh().await.unread, 0);

    // Five minutes on, the API refuses: 429s carrying `X-RateLimit-Remaining: 0` and a reset
    // 2 s later. Meanwhile a key is created.
    h.clock.advance(FIVE_MINUTES);
    h.sim.state.switches.advance_clock(FIVE_MINUTES);
    h.sim.state.switches.set_rate_limit(Some(
        RateLimit::new(100, Duration::from_secs(2)).with_used(100),
    ));
    h.sim.state.with_world(|w| {
        let template = w.keys[0].clone();
        let guid = w.key(
            &template.instance_guid,
            "created-meanwhile",
            template.credentials,
        );
        let key = w.key_mut(&guid).unwrap();
        key.created_at = time::OffsetDateTime::from(t0 + FIVE_MINUTES);
        key.updated_at = key.created_at;
    });
    h.sim.state.stats.reset();
    h.refresh().await;
    let refused = h.sim.state.stats.log();
    assert!(refused.iter().any(|l| l.status == 429));
    assert!(refused.iter().all(|l| l.status == 429), "{refused:?}");
    // The pacer held the retries for `Retry-After` on the injected clock, not in real time.
    assert!(
        h.clock.waited() >= Duration::from_secs(2),
        "{:?}",
        h.clock.waited()
    );

    // Its later answers carry no rate-limit headers (a limiter that only speaks when it
    // refuses, or a proxy that drops them). The first refresh after the reset reads the key.
    h.sim.state.switches.set_rate_limit(None);
    h.clock.advance(FIVE_MINUTES);
    h.sim.state.switches.advance_clock(FIVE_MINUTES);
    h.sim.state.stats.reset();
    let stats = h.refresh().await;
    assert_eq!((stats.deferred, stats.unread), (0, 0), "{stats:?}");
    assert_eq!(h.sim.state.stats.count(DETAILS), 1);
    let scrape = h.scrape().await;
    assert!(scrape
        .key_value(
            "cf_service_key_expiry_timestamp_seconds",
            "created-meanwhile"
        )
        .is_some());
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cfske-load-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn named(sim: &Sim, name: &str) -> FoundationConfig {
    let mut f = DemoTarget::from(sim).foundation(name);
    f.refresh_interval = Duration::from_secs(2);
    f
}

/// Waits (bounded) until the cache file at `path` holds `keys` keys of foundation `name`.
async fn saved(path: &Path, name: &str, keys: usize) {
    for _ in 0..200 {
        let held = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["foundations"][name]["keys"].as_array().map(Vec::len));
        if held == Some(keys) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cache file never held {keys} keys of {name}");
}

/// Waits (bounded) until `name` has finished a refresh in `store`.
async fn refreshed(store: &Store, name: &str) {
    for _ in 0..200 {
        if store
            .foundation(name)
            .is_some_and(|f| f.status.finished_once)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never refreshed");
}

#[tokio::test]
async fn a_foundation_added_by_a_reload_starts_from_the_cache_file() {
    let dir = temp_dir("reload");
    let path = dir.join("cache.json");
    let a = Sim::start(demo::large(20, now()).unwrap(), Accounts::default())
        .await
        .unwrap();
    let b = Sim::start(demo::large(30, now()).unwrap(), Accounts::default())
        .await
        .unwrap();

    // An earlier run watched b and kept its readings.
    {
        let store = Arc::new(Store::new());
        let cache = Arc::new(Cache::open(&path, &[named(&b, "b")], &store));
        let mut supervisor = Supervisor::new(
            store.clone(),
            Arc::new(ExporterMetrics::default()),
            CancellationToken::new(),
        )
        .with_cache(Some(cache));
        supervisor.apply(vec![named(&b, "b")]).await.unwrap();
        refreshed(&store, "b").await;
        // The file is written once the refresh has published: it holds b before the stop.
        saved(&path, "b", 30).await;
        supervisor.shutdown().await;
    }

    // This run starts without b (its readings stay in the file), and a reload adds it.
    let store = Arc::new(Store::new());
    let cache = Arc::new(Cache::open(&path, &[named(&a, "a")], &store));
    let mut supervisor = Supervisor::new(
        store.clone(),
        Arc::new(ExporterMetrics::default()),
        CancellationToken::new(),
    )
    .with_cache(Some(cache));
    supervisor.apply(vec![named(&a, "a")]).await.unwrap();
    refreshed(&store, "a").await;
    b.state.stats.reset();
    supervisor
        .apply(vec![named(&a, "a"), named(&b, "b")])
        .await
        .unwrap();
    let seeded = store.foundation("b").expect("b is in the store at once");
    assert_eq!(seeded.keys.len(), 30, "seeded from the cache file");
    assert!(!seeded.status.finished_once);
    refreshed(&store, "b").await;
    assert_eq!(
        b.state.stats.count(DETAILS),
        0,
        "its first refresh read no details"
    );
    supervisor.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
