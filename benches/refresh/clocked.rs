//! Scenarios on simulated time: a day of refreshes, and a cold start against a rate limit.
//!
//! Both run in the parent process with an in-process simulator answering at once (latency 0):
//! what they measure is which requests each refresh sends, not how long they take. The
//! exporter's wall clock is a `ManualClock` moved 5 minutes per refresh; for the rate limit the
//! simulator's clock moves with it, so its window, `X-RateLimit-Reset` and `Retry-After` follow
//! the same simulated hours.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cf_service_key_exporter::clock::Clock;
use cf_service_key_exporter::config::{DemoTarget, FoundationConfig};
use cf_service_key_exporter::metrics::{ExporterMetrics, Format};
use cf_service_key_exporter::refresher::Refresher;
use cf_service_key_exporter::snapshot::Store;
use cf_service_key_exporter::testing::ManualClock;
use cf_sim::{demo, Accounts, RateLimit, Sim};

use crate::children::SimStats;

pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
pub const FULL_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 3600);
pub const WINDOW: Duration = Duration::from_secs(3600);

/// A whole second of the system clock: where both simulated clocks start.
fn start_time() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

async fn simulator(keys: usize, at: SystemTime) -> Sim {
    let world = demo::large(keys, time::OffsetDateTime::from(at)).expect("world");
    Sim::start(world, Accounts::default())
        .await
        .expect("simulator")
}

fn foundation(sim: &Sim, name: &str, concurrency: usize) -> FoundationConfig {
    let mut config = DemoTarget::new(&sim.api_url, &Accounts::default()).foundation(name);
    config.refresh_interval = REFRESH_INTERVAL;
    config.full_refresh_interval = FULL_REFRESH_INTERVAL;
    config.details_concurrency = NonZeroUsize::new(concurrency).expect("concurrency > 0");
    config
}

/// A day of refreshes after a cold start.
#[derive(Debug, Clone, Default)]
pub struct Day {
    pub keys: usize,
    /// Refreshes after the cold one.
    pub refreshes: usize,
    /// `keys × refresh_interval ÷ full_refresh_interval`: the due reads one refresh owes.
    pub share: f64,
    /// `/details` requests of each refresh after the cold one.
    pub details: Vec<usize>,
    /// List pages of each refresh after the cold one.
    pub lists: Vec<usize>,
    /// Refreshes that did not complete.
    pub failed: usize,
    /// Keys whose details failed at some point of the day (none in this world).
    pub failing_keys: usize,
    /// Longest time between two readings of one key, seconds (a key not read again at all
    /// counts from its cold reading to the end of the day).
    pub max_gap: i64,
    /// Keys not read again within the day.
    pub not_reread: usize,
    pub wall: Duration,
}

/// A cold refresh, then one refresh every 5 minutes of the exporter's clock for 24 hours
/// (5m refresh interval, 24h full refresh interval), counting what each refresh asks.
pub async fn simulated_day(keys: usize, concurrency: usize) -> Day {
    let started = Instant::now();
    let t0 = start_time();
    let sim = simulator(keys, t0).await;
    let clock = Arc::new(ManualClock::at(t0));
    let store = Arc::new(Store::new());
    let metrics = Arc::new(ExporterMetrics::default());
    let config = foundation(&sim, "day", concurrency);
    store.register(&config.name);
    let telemetry = metrics.recorder(&config.name);
    let refresher = Refresher::new(config, store.clone(), telemetry)
        .expect("refresher")
        .with_clock(clock.clone());
    let cold = refresher.refresh().await;
    assert!(cold.error.is_none(), "cold refresh: {:?}", cold.error);
    assert_eq!(cold.stats.unread, 0, "the cold refresh reads every key");

    let mut last: HashMap<Arc<str>, i64> = HashMap::with_capacity(keys);
    let published = store.foundation("day").expect("published");
    for k in published.keys.iter() {
        let at = k.reading.as_ref().expect("read").read_at;
        last.insert(k.labels.service_key_guid.clone(), at);
    }
    let cold_at = clock.unix_now();
    let refreshes = (FULL_REFRESH_INTERVAL.as_secs() / REFRESH_INTERVAL.as_secs()) as usize;
    let mut day = Day {
        keys,
        refreshes,
        share: keys as f64 * REFRESH_INTERVAL.as_secs_f64() / FULL_REFRESH_INTERVAL.as_secs_f64(),
        ..Day::default()
    };
    let mut failing = std::collections::HashSet::new();
    for _ in 0..refreshes {
        clock.advance(REFRESH_INTERVAL);
        sim.state.stats.reset();
        let outcome = refresher.refresh().await;
        if outcome.error.is_some() {
            day.failed += 1;
        }
        let seen = SimStats::of(&sim);
        day.details.push(seen.details);
        day.lists.push(seen.lists);
        let published = store.foundation("day").expect("published");
        for k in published.keys.iter() {
            if k.failure.is_some() {
                failing.insert(k.labels.service_key_guid.clone());
            }
            let Some(reading) = &k.reading else { continue };
            let before = last.insert(k.labels.service_key_guid.clone(), reading.read_at);
            if let Some(before) = before.filter(|b| *b != reading.read_at) {
                day.max_gap = day.max_gap.max(reading.read_at - before);
            }
        }
    }
    let end = clock.unix_now();
    for at in last.values() {
        if *at <= cold_at {
            day.not_reread += 1;
            day.max_gap = day.max_gap.max(end - at);
        }
    }
    day.failing_keys = failing.len();
    sim.stop();
    day.wall = started.elapsed();
    day
}

/// A cold start against a rate limit.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    pub keys: usize,
    pub limit: u64,
    /// `/details` requests of each refresh, until every key was read.
    pub reads: Vec<usize>,
    pub lists: Vec<usize>,
    /// Keys read (not `unread`) after each refresh.
    pub progress: Vec<usize>,
    /// API requests the simulator counted in each rate-limit window (an hour of its clock).
    pub per_window: Vec<usize>,
    /// `429` answers.
    pub throttled: usize,
    /// Refreshes that did not complete.
    pub failed: usize,
    /// Refreshes after which the published snapshot lacked keys, or `/metrics` did not show
    /// every unread key as `expiry_source="unread"`.
    pub unpublished: usize,
    /// The refresh (0 = the first) after which no key was unread.
    pub all_read_after: Option<usize>,
    pub wall: Duration,
}

/// Refreshes every 5 minutes of simulated time (both clocks) from an empty store, against
/// `limit` requests per hour, until every key has been read or `max_hours` have passed.
pub async fn budgeted_cold_start(
    keys: usize,
    limit: u64,
    concurrency: usize,
    max_hours: u64,
) -> Budget {
    let started = Instant::now();
    let t0 = start_time();
    let sim = simulator(keys, t0).await;
    sim.state.switches.set_clock(Some(t0));
    sim.state
        .switches
        .set_rate_limit(Some(RateLimit::new(limit, WINDOW)));
    let clock = Arc::new(ManualClock::at(t0));
    let store = Arc::new(Store::new());
    let metrics = Arc::new(ExporterMetrics::default());
    let exposition = metrics.exposition(store.clone()).with_clock(clock.clone());
    let config = foundation(&sim, "budget", concurrency);
    store.register(&config.name);
    let telemetry = metrics.recorder(&config.name);
    let refresher = Refresher::new(config, store.clone(), telemetry)
        .expect("refresher")
        .with_clock(clock.clone());
    let mut out = Budget {
        keys,
        limit,
        ..Budget::default()
    };
    let per_hour = (WINDOW.as_secs() / REFRESH_INTERVAL.as_secs()) as usize;
    for i in 0..(max_hours as usize * per_hour) {
        sim.state.stats.reset();
        let outcome = refresher.refresh().await;
        let seen = SimStats::of(&sim);
        let window = i / per_hour;
        if out.per_window.len() <= window {
            out.per_window.push(0);
        }
        out.per_window[window] += seen.total;
        out.reads.push(seen.details);
        out.lists.push(seen.lists);
        out.throttled += seen.throttled;
        if outcome.error.is_some() {
            out.failed += 1;
        }
        let published = store.foundation("budget").expect("published");
        let text = exposition.encode(Format::OpenMetrics);
        let shown_unread = text
            .lines()
            .filter(|l| {
                l.starts_with("cf_service_key_info{") && l.contains("expiry_source=\"unread\"")
            })
            .count();
        let unread = published
            .keys
            .iter()
            .filter(|k| k.reading.is_none())
            .count();
        if published.keys.len() != keys || shown_unread != unread {
            out.unpublished += 1;
        }
        out.progress.push(keys - unread);
        if unread == 0 {
            out.all_read_after = Some(i);
            break;
        }
        clock.advance(REFRESH_INTERVAL);
        sim.state.switches.advance_clock(REFRESH_INTERVAL);
    }
    sim.stop();
    out.wall = started.elapsed();
    out
}
