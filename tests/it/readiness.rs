//! `/readyz` does not publish a cold, half-read estate as the truth: it answers 200 once every
//! foundation was seeded from the cache file or had a refresh that attempted every listed key
//! (one whose read failed counts), and a refresh that fails outright does not make it ready.
//! Time moves on injected clocks; the waits for the real server are bounded polls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cf_service_key_exporter::cache::Cache;
use cf_service_key_exporter::config::DemoTarget;
use cf_service_key_exporter::refresher::Refresher;
use cf_service_key_exporter::snapshot::Store;
use cf_service_key_exporter::vocab::NoTelemetry;
use cf_sim::{demo, Accounts, Outage, RateLimit, Sim};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::common::{clean_demo, one_foundation, scrape, Harness, Served};

const FIVE_MINUTES: Duration = Duration::from_secs(300);

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

#[tokio::test]
async fn readiness_waits_for_the_first_refresh() {
    let h = Harness::new(clean_demo(now())).await;
    assert_eq!(h.get("/readyz").await.status(), 503);
    assert_eq!(h.get("/healthz").await.status(), 200);
    h.refresh().await;
    assert_eq!(h.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn a_rate_limited_cold_start_stays_unready_until_the_budget_allowed_every_read() {
    const KEYS: usize = 40;
    let t0 = whole_second_now();
    let mut world = demo::large(KEYS, now()).unwrap();
    // A key nobody may read: attempted at the first refresh, failing ever after.
    let forbidden = world.keys[KEYS - 1].guid.clone();
    world.fail_details(&forbidden, 404, None);
    let h = Harness::with(world, Accounts::default(), |c| {
        c.refresh_interval = FIVE_MINUTES
    })
    .await;
    h.clock.set(t0);
    h.sim.state.switches.set_clock(Some(t0));
    h.sim
        .state
        .switches
        .set_rate_limit(Some(RateLimit::new(100, Duration::from_secs(3_600))));

    let mut answers = Vec::new();
    for refresh in 0..100 {
        let outcome = h.refresh_outcome().await;
        assert!(
            outcome.error.is_none(),
            "refresh {refresh}: {:?}",
            outcome.error
        );
        let response = h.get("/readyz").await;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        // Every key is on /metrics from the first refresh, read or not yet.
        assert_eq!(outcome.stats.keys, KEYS);
        if outcome.stats.deferred > 0 {
            assert_eq!(status, 503, "refresh {refresh}: {body}");
            assert!(body.contains("keys not read yet"), "{body}");
        }
        answers.push(status);
        if status == 200 {
            // Every key attempted; the forbidden one failed and counts.
            assert_eq!(outcome.stats.unread, 1);
            break;
        }
        h.clock.advance(FIVE_MINUTES);
        h.sim.state.switches.advance_clock(FIVE_MINUTES);
    }
    assert_eq!(answers.last(), Some(&200), "{answers:?}");
    assert!(
        answers.len() >= 3 && answers[..answers.len() - 1].iter().all(|s| *s == 503),
        "several refreshes within the budget before ready: {answers:?}"
    );
    // Once ready it stays so, even when a refresh fails.
    h.sim.state.switches.set_outage(Some(Outage::Html(500)));
    h.refresh().await;
    assert_eq!(h.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn a_failed_first_refresh_does_not_make_it_ready() {
    let h = Harness::new(clean_demo(now())).await;
    h.sim.state.switches.set_outage(Some(Outage::Html(500)));
    h.refresh().await;
    let response = h.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("test"));
    let scrape = h.scrape().await;
    let f = [("foundation", "test")];
    assert_eq!(
        scrape.value("cf_service_key_exporter_refresh_success", &f),
        0.0
    );
    // The API is back: the next refresh reads everything.
    h.sim.state.switches.set_outage(None);
    h.refresh().await;
    assert_eq!(h.get("/readyz").await.status(), 200);
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cfske-ready-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The exporter as `main` runs it, against `sim` (in an outage), with or without a cache file;
/// the `/readyz` status it answers first and, once its first refresh has finished, again.
async fn readiness_of_a_start(sim: &Sim, cache_file: Option<PathBuf>) -> (u16, u16) {
    let served = Served::start(one_foundation(sim, "test", cache_file), Default::default()).await;
    let base = format!("http://{}", served.addr);
    let client = reqwest::Client::new();
    let ready = || async {
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        r.status().as_u16()
    };
    let first = ready().await;
    // The first refresh has finished once it has a duration (it fails: the API is down).
    let mut refreshed = false;
    for _ in 0..400 {
        let s = scrape(&client, &format!("{base}/metrics")).await;
        let f = [("foundation", "test")];
        if s.value("cf_service_key_exporter_refresh_duration_seconds", &f) > 0.0 {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refreshed, "the first refresh never finished");
    let after = ready().await;
    served.shutdown(Duration::from_secs(30)).await;
    (first, after)
}

#[tokio::test]
async fn a_start_seeded_from_the_cache_file_is_ready_at_once() {
    let dir = temp_dir("seeded");
    let path = dir.join("cache.json");
    let sim = Sim::start(demo::large(30, now()).unwrap(), Accounts::default())
        .await
        .unwrap();
    // An earlier run read every key and kept the readings.
    {
        let config = DemoTarget::from(&sim).foundation("test");
        let store = Arc::new(Store::new());
        let cache = Arc::new(Cache::open(&path, std::slice::from_ref(&config), &store));
        store.register("test");
        let stop = CancellationToken::new();
        let writer = tokio::spawn(cache.follow(store.clone(), stop.clone()));
        let refresher = Refresher::new(config, store, Arc::new(NoTelemetry)).unwrap();
        assert!(refresher.refresh().await.error.is_none());
        stop.cancel();
        writer.await.unwrap();
    }
    // Cloud Foundry is down when the exporter restarts: its refreshes fail outright.
    sim.state.switches.set_outage(Some(Outage::Html(503)));
    assert_eq!(readiness_of_a_start(&sim, Some(path)).await, (200, 200));
    // The control: the same start without the cache file is not ready, before or after.
    assert_eq!(readiness_of_a_start(&sim, None).await, (503, 503));
    std::fs::remove_dir_all(&dir).unwrap();
}
