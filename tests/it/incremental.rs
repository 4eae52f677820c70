//! Incremental refresh, rate-limit pacing and the cache file, against the simulated foundation.
//!
//! Each test names the behaviour it proves; requests are counted and timed in the simulator's
//! own log (`Stats`), never inferred from the exporter's side.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{one_foundation, Harness, Scrape, Served};
use cf_service_key_exporter::cache::Cache;
use cf_service_key_exporter::config::DemoTarget;
use cf_service_key_exporter::refresher::Refresher;
use cf_service_key_exporter::snapshot::{KeyRecord, Store};
use cf_service_key_exporter::testing::ManualClock;
use cf_service_key_exporter::vocab::NoTelemetry;
use cf_sim::{demo, Accounts, Sim};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const DETAILS: &str = "/v3/service_credential_bindings/:guid/details";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A fresh, empty directory for one test's cache file.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cfske-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn key_guids(scrape: &Scrape) -> Vec<String> {
    let mut guids: Vec<String> = scrape
        .all("cf_service_key_info")
        .iter()
        .map(|s| s.labels["service_key_guid"].clone())
        .collect();
    guids.sort();
    guids
}

// ---- Incremental refresh ----

#[tokio::test]
async fn a_warm_refresh_sends_no_details_calls() {
    let h = Harness::new(demo::large(200, now()).unwrap()).await;
    let cold = h.refresh().await;
    assert_eq!(cold.details_read, 200);
    assert_eq!(h.sim.state.stats.count(DETAILS), 200);

    h.sim.state.stats.reset();
    let warm = h.refresh().await;
    assert_eq!(warm.reused, 200);
    assert_eq!(warm.details_read, 0);
    assert_eq!(h.sim.state.stats.count(DETAILS), 0);
    // One page of instances and one of keys.
    assert_eq!(h.sim.state.stats.total(), 2);
    assert_eq!(h.scrape().await.all("cf_service_key_info").len(), 200);
}

#[tokio::test]
async fn a_rotated_key_is_read_and_the_old_one_vanishes() {
    let h = Harness::new(demo::large(50, now()).unwrap()).await;
    h.refresh().await;
    let old = h
        .sim
        .state
        .with_world(|w| w.find_key("key-7").unwrap().guid.clone());
    let credentials = h
        .sim
        .state
        .with_world(|w| w.find_key("key-8").unwrap().credentials.clone());
    let new = h
        .sim
        .state
        .with_world(|w| w.rotate_key(&old, credentials))
        .unwrap();

    h.sim.state.stats.reset();
    let stats = h.refresh().await;
    assert_eq!(stats.details_read, 1);
    assert_eq!(h.sim.state.stats.count(DETAILS), 1);
    let scrape = h.scrape().await;
    let guids = key_guids(&scrape);
    assert!(guids.contains(&new) && !guids.contains(&old));
    assert_eq!(guids.len(), 50);
    // The new key carries key-8's credentials, so key-8's expiry.
    assert_eq!(
        scrape.value(
            "cf_service_key_expiry_timestamp_seconds",
            &[("service_key_guid", &new)]
        ),
        scrape
            .key_value("cf_service_key_expiry_timestamp_seconds", "key-8")
            .unwrap()
    );
}

#[tokio::test]
async fn a_key_with_a_newer_updated_at_is_read_again() {
    let h = Harness::new(demo::large(30, now()).unwrap()).await;
    h.refresh().await;
    h.sim.state.with_world(|w| {
        let guid = w.find_key("key-3").unwrap().guid.clone();
        w.key_mut(&guid).unwrap().updated_at += time::Duration::hours(1);
    });
    h.sim.state.stats.reset();
    let stats = h.refresh().await;
    assert_eq!((stats.details_read, stats.reused), (1, 29));
    assert_eq!(h.sim.state.stats.count(DETAILS), 1);
}

#[tokio::test]
async fn a_failing_key_whose_updated_at_moves_is_read_at_the_next_refresh_despite_its_backoff() {
    const INTERVAL: Duration = Duration::from_secs(300);
    let h = Harness::with(demo::large(30, now()).unwrap(), Accounts::default(), |c| {
        c.refresh_interval = INTERVAL
    })
    .await;
    // A key that answers 404 while its creation is in progress.
    let guid = h.sim.state.with_world(|w| {
        let guid = w.find_key("key-3").unwrap().guid.clone();
        w.fail_details(&guid, 404, None);
        guid
    });
    // Failing at the first refresh, retried at the next, then two intervals on; after that
    // third failure it waits four intervals.
    let mut attempts = Vec::new();
    for _ in 0..5 {
        h.sim.state.stats.reset();
        h.refresh().await;
        attempts.push(h.sim.state.stats.count(DETAILS));
        h.clock.advance(INTERVAL);
    }
    assert_eq!(attempts, [30, 1, 0, 1, 0]);

    // The creation succeeds: `/details` answers, and the key's `updated_at` moves.
    h.sim.state.with_world(|w| {
        w.fail_details(&guid, 404, Some(0));
        w.key_mut(&guid).unwrap().updated_at += time::Duration::minutes(12);
    });
    h.sim.state.stats.reset();
    let stats = h.refresh().await;
    assert_eq!((stats.details_read, stats.unread), (1, 0), "{stats:?}");
    assert_eq!(h.sim.state.stats.count(DETAILS), 1);
    let scrape = h.scrape().await;
    assert!(scrape
        .key_value("cf_service_key_expiry_timestamp_seconds", "key-3")
        .is_some());
    assert!(scrape
        .find("cf_service_key_read_error", &[("service_key", "key-3")])
        .is_empty());
}

#[tokio::test]
async fn every_key_of_an_instance_with_a_newer_updated_at_is_read_again() {
    // Ten keys per instance in the large world.
    let h = Harness::new(demo::large(30, now()).unwrap()).await;
    h.refresh().await;
    h.sim.state.with_world(|w| {
        let instance = w.find_key("key-12").unwrap().instance_guid.clone();
        let i = w.instances.iter_mut().find(|i| i.guid == instance).unwrap();
        i.updated_at += time::Duration::hours(1);
    });
    h.sim.state.stats.reset();
    let stats = h.refresh().await;
    assert_eq!((stats.details_read, stats.reused), (10, 20));
    assert_eq!(h.sim.state.stats.count(DETAILS), 10);
}

#[tokio::test]
async fn a_deleted_key_vanishes_without_any_details_call() {
    let h = Harness::new(demo::large(20, now()).unwrap()).await;
    h.refresh().await;
    let gone = h.sim.state.with_world(|w| {
        let guid = w.find_key("key-5").unwrap().guid.clone();
        assert!(w.delete_key(&guid));
        guid
    });
    h.sim.state.stats.reset();
    h.refresh().await;
    assert_eq!(h.sim.state.stats.count(DETAILS), 0);
    let guids = key_guids(&h.scrape().await);
    assert_eq!(guids.len(), 19);
    assert!(!guids.contains(&gone));
}

// ---- Rate limits and concurrency ----

#[tokio::test]
async fn details_requests_in_flight_never_exceed_details_concurrency() {
    let h = Harness::with(demo::large(120, now()).unwrap(), Accounts::default(), |c| {
        c.details_concurrency = std::num::NonZeroUsize::new(5).unwrap()
    })
    .await;
    h.sim.state.switches.set_latency(Duration::from_millis(20));
    let stats = h.refresh().await;
    assert_eq!(stats.details_read, 120);
    let max = h
        .sim
        .state
        .stats
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=5).contains(&max), "max in flight {max}, concurrency 5");
}

// ---- Cache file ----

/// A refresher for the harness's simulator, and the writer of a cache file at `path` (seeded
/// from it) following its store: stop the writer to have the last refresh written.
fn cached_refresher(sim: &Sim, path: &Path) -> (Refresher, Arc<Store>, CacheWriter) {
    let config = DemoTarget::from(sim).foundation("test");
    let store = Arc::new(Store::new());
    let cache = Arc::new(Cache::open(path, std::slice::from_ref(&config), &store));
    store.register(&config.name);
    let writer = CacheWriter::start(cache, &store);
    let refresher = Refresher::new(config, store.clone(), Arc::new(NoTelemetry)).unwrap();
    (refresher, store, writer)
}

/// A cache file's writer following a store, as the supervisor runs it.
struct CacheWriter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl CacheWriter {
    fn start(cache: Arc<Cache>, store: &Arc<Store>) -> CacheWriter {
        let stop = CancellationToken::new();
        let task = tokio::spawn(cache.follow(store.clone(), stop.clone()));
        CacheWriter { stop, task }
    }

    /// Stops it once what the store holds is written.
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn a_cache_file_holds_no_credentials() {
    let dir = temp_dir("no-credentials");
    let path = dir.join("cache.json");
    // The demo world carries every credential shape, secrets and private keys included.
    let sim = Sim::start(demo::world(now()).unwrap(), Accounts::default())
        .await
        .unwrap();
    let (refresher, _, writer) = cached_refresher(&sim, &path);
    let stats = refresher.refresh().await.stats;
    assert!(stats.keys > 10);
    writer.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(demo::DEMO_SECRET), "secret in the cache");
    assert!(!text.contains("-----BEGIN"), "PEM block in the cache");
    assert!(!text.contains("clientsecret") && !text.contains("private"));
    // And it does hold what the metrics need.
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], "cf-service-key-exporter/cache");
    assert_eq!(json["version"], 2);
    assert_eq!(
        json["foundations"]["test"]["keys"]
            .as_array()
            .unwrap()
            .len(),
        stats.keys
    );
    assert!(text.contains("s4-inbound") && text.contains("certificatedetails.validuntil"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_new_refresher_seeded_from_the_cache_sends_no_details_calls() {
    let dir = temp_dir("seeded");
    let path = dir.join("cache.json");
    let sim = Sim::start(demo::large(100, now()).unwrap(), Accounts::default())
        .await
        .unwrap();
    let (first, first_store, writer) = cached_refresher(&sim, &path);
    first.refresh().await;
    writer.stop().await;
    drop(first);

    sim.state.stats.reset();
    let (second, store, _writer) = cached_refresher(&sim, &path);
    // Seeded: the keys are there before any refresh, which has not happened yet.
    let seeded = store.foundation("test").unwrap();
    assert_eq!(seeded.keys.len(), 100);
    assert!(!seeded.status.finished_once && !seeded.status.success);
    // The list pages' facts (instance and offering guids, the successor annotation) come with
    // the first refresh, as the owners do.
    let without_facts = |keys: &[KeyRecord]| -> Vec<KeyRecord> {
        keys.iter()
            .cloned()
            .map(|mut k| {
                k.facts = Default::default();
                k
            })
            .collect()
    };
    assert_eq!(
        without_facts(&seeded.keys),
        without_facts(&first_store.foundation("test").unwrap().keys),
        "the cache round-trips every reading"
    );
    assert!(seeded
        .keys
        .iter()
        .all(|k| k.reading.as_ref().is_some_and(|r| r.shape.is_some())));

    let stats = second.refresh().await.stats;
    assert_eq!((stats.reused, stats.details_read), (100, 0));
    assert_eq!(sim.state.stats.count(DETAILS), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_corrupt_foreign_or_other_foundation_cache_file_is_ignored_and_rewritten() {
    let dir = temp_dir("corrupt");
    let path = dir.join("cache.json");
    let sim = Sim::start(demo::large(20, now()).unwrap(), Accounts::default())
        .await
        .unwrap();
    let other_foundation = r#"{"format": "cf-service-key-exporter/cache", "version": 1, "foundations": {"test": {"api_url": "https://api.elsewhere.example", "keys": [
        {"service_key_guid": "g", "service_key": "k", "service_instance": "i", "service_plan": "p",
         "service_offering": "o", "space": "s", "org": "o", "expiry": null,
         "key_updated_at": "2025-01-01T00:00:00Z", "instance_updated_at": "2025-01-01T00:00:00Z", "read_at": 1}]}}}"#;
    for content in [
        &b"\x00\x01 definitely not json"[..],
        b"{\"format\": \"cf-service-key-exporter/cache\", \"version\": 1, \"foundations\": {\"test\": {\"api_url\": 5",
        br#"{"format": "cf-service-key-exporter/cache", "version": 99, "foundations": {}}"#,
        br#"{"some": "other program's file"}"#,
        other_foundation.as_bytes(),
    ] {
        std::fs::write(&path, content).unwrap();
        sim.state.stats.reset();
        let (refresher, store, writer) = cached_refresher(&sim, &path);
        assert!(
            store.foundation("test").unwrap().keys.is_empty(),
            "nothing seeded from {:?}",
            String::from_utf8_lossy(content)
        );
        let stats = refresher.refresh().await.stats;
        writer.stop().await;
        assert_eq!(stats.details_read, 20);
        assert_eq!(sim.state.stats.count(DETAILS), 20);
        let rewritten: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            rewritten["foundations"]["test"]["keys"]
                .as_array()
                .unwrap()
                .len(),
            20
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_cache_file_written_on_an_injected_clock_seeds_a_restart_on_that_clock() {
    let dir = temp_dir("clocked");
    let path = dir.join("cache.json");
    let sim = Sim::start(demo::large(20, now()).unwrap(), Accounts::default())
        .await
        .unwrap();
    let config = DemoTarget::from(&sim).foundation("test");
    let configs = std::slice::from_ref(&config);
    // Two simulated days on, as a test stepping through refreshes gets.
    let clock = Arc::new(ManualClock::starting_now());
    clock.advance(Duration::from_secs(2 * 86_400));
    {
        let store = Arc::new(Store::new());
        let cache = Cache::open_with_clock(&path, configs, &store, clock.clone());
        store.register("test");
        let writer = CacheWriter::start(Arc::new(cache), &store);
        let refresher = Refresher::new(config.clone(), store, Arc::new(NoTelemetry))
            .unwrap()
            .with_clock(clock.clone());
        assert_eq!(refresher.refresh().await.stats.details_read, 20);
        writer.stop().await;
    }
    // Read back on the same clock, every reading seeds the store.
    let store = Store::new();
    Cache::open_with_clock(&path, configs, &store, clock.clone());
    let seeded = store.foundation("test").expect("seeded");
    assert_eq!(
        seeded.keys.iter().filter(|k| k.reading.is_some()).count(),
        20
    );
    // The system clock takes them for readings from the future, and drops them.
    let store = Store::new();
    Cache::open(&path, configs, &store);
    assert!(store.foundation("test").unwrap().keys.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- The whole exporter, restarted ----

struct Exporter {
    addr: std::net::SocketAddr,
    served: Served,
}

impl Exporter {
    async fn start(sim: &Sim, cache_file: &Path) -> Exporter {
        let config = one_foundation(sim, "test", Some(cache_file.to_owned()));
        let served = Served::start(config, Default::default()).await;
        Exporter {
            addr: served.addr,
            served,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap()
    }

    async fn scrape(&self) -> Scrape {
        crate::common::scrape(
            &reqwest::Client::new(),
            &format!("http://{}/metrics", self.addr),
        )
        .await
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").await.status() != 200 {
            assert!(Instant::now() < deadline, "not ready within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a refresh has completed.
    async fn wait_refreshed(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let f = [("foundation", "test")];
        while self
            .scrape()
            .await
            .value("cf_service_key_exporter_refresh_success", &f)
            != 1.0
        {
            assert!(Instant::now() < deadline, "no refresh within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.served.shutdown(Duration::from_secs(30)).await;
    }
}

/// Waits until the cache file holds `keys` keys (it is written just after the publish).
async fn wait_for_cache(path: &Path, keys: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["foundations"]["test"]["keys"].as_array().map(Vec::len));
        if count == Some(keys) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cache file not written: {count:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_restart_with_a_cache_file_serves_the_keys_at_once_and_reads_no_details() {
    let dir = temp_dir("restart");
    let path = dir.join("cache.json");
    let sim = Sim::start(demo::large(300, now()).unwrap(), Accounts::default())
        .await
        .unwrap();
    let first = Exporter::start(&sim, &path).await;
    first.wait_ready().await;
    wait_for_cache(&path, 300).await;
    let before = key_guids(&first.scrape().await);
    first.stop().await;

    // The restarted exporter's first refresh takes a while: what does it serve meanwhile?
    sim.state.stats.reset();
    sim.state.switches.set_latency(Duration::from_millis(1500));
    let second = Exporter::start(&sim, &path).await;
    let early = second.scrape().await;
    assert_eq!(key_guids(&early), before, "seeded keys are served at once");
    assert_eq!(
        early.value(
            "cf_service_key_exporter_refresh_success",
            &[("foundation", "test")]
        ),
        0.0,
        "seeded keys are not a successful refresh"
    );
    assert_eq!(
        early.value(
            "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
            &[("foundation", "test")]
        ),
        0.0
    );
    // Seeded from the cache file: the last truth a refresh read, so ready at once.
    assert_eq!(second.get("/readyz").await.status(), 200);

    second.wait_refreshed().await;
    let after = second.scrape().await;
    assert_eq!(
        after.value(
            "cf_service_key_exporter_refresh_success",
            &[("foundation", "test")]
        ),
        1.0
    );
    assert_eq!(key_guids(&after), before);
    assert_eq!(sim.state.stats.count(DETAILS), 0);
    assert!(sim.state.stats.total() >= 2, "the lists were read");
    second.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
