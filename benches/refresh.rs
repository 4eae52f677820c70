//! The exporter's scale targets, measured against the simulated foundation: `cargo bench`.
//!
//! Prints one table with PASS/FAIL and the measured figure for every target (at 20,000 keys
//! without and with `--metadata-labels team`, at 10 foundations × 20,000 keys, over a simulated
//! day, and for a cold start against a rate limit), then a table of the other figures. How long
//! a run takes with the defaults: docs/performance.md.
//!
//! Options, as arguments after `--` (`cargo bench --bench refresh -- --keys 2000`) or
//! environment variables:
//! - `--keys N` (`BENCH_KEYS`, 20000): keys per foundation;
//! - `--foundations N` (`BENCH_FOUNDATIONS`, 10): foundations of the many-foundations run;
//! - `--latency-ms N` (`BENCH_LATENCY_MS`, 20): the simulator's answer time;
//! - `--concurrency N` (`BENCH_CONCURRENCY`, 16): `details_concurrency`;
//! - `--scrapes N` (`BENCH_SCRAPES`, 100): sequential scrapes per encoding at one foundation;
//! - `--multi-scrapes N` (`BENCH_MULTI_SCRAPES`, 100): sequential scrapes at many foundations;
//! - `--scrapers N` (`BENCH_SCRAPERS`, 32) and `--scraper-rounds N` (`BENCH_SCRAPER_ROUNDS`,
//!   3): the concurrent scrapers (every other one asks for gzip), each scraping N times;
//! - `--manual-keys N` (`BENCH_MANUAL_KEYS`, 1000): keys at which the manual procedure is
//!   measured (scaled to `--keys` by its request count; 0 skips it);
//! - `--budget-limit N` (`BENCH_BUDGET_LIMIT`, 2000): requests per hour of the budgeted start;
//! - `--multi-owners` (`BENCH_MULTI_OWNERS=1`): the many-foundations run with
//!   `--metadata-labels team` too;
//! - `--cache` (`BENCH_CACHE=1`): every exporter process keeps a cache file (in the temporary
//!   directory), as `CACHE_FILE` does in the Kubernetes deployment, so its writes count in the
//!   peak RSS; the file's size after the refreshes is printed (docs/performance.md, "Sizing");
//! - `--only LIST` (`BENCH_ONLY`): some of `single,concurrent,multi,day,budget,manual`.
//!
//! `-- --help` lists them (clap); a count may be written `20_000`.
//!
//! Processes: the simulated foundations run in one child process (`--serve-sim`), the exporter
//! in another (`--serve-exporter`: its real refreshers, store and HTTP router), and this
//! process drives both and scrapes over loopback. So the peak RSS reported (VmHWM from
//! `/proc/<pid>/status`) is the exporter's alone. Every run whose peak RSS has a target gets an
//! exporter process of its own: one scraper, 32 concurrent scrapers and ten foundations never
//! share a high-water mark. See `benches/refresh/children.rs`.
//!
//! The exporter's wall clock is a `ManualClock` held still during the timed refreshes, so the
//! warm refresh right after the cold one owes no periodic re-reads (it would owe
//! `keys × elapsed ÷ 24h` of them, see [`clocked`]); the simulated day and the budgeted cold
//! start move it (and the simulator's) 5 minutes per refresh.

#[path = "refresh/children.rs"]
mod children;
#[path = "refresh/clocked.rs"]
mod clocked;
#[path = "refresh/manual.rs"]
mod manual;
#[path = "refresh/scrape.rs"]
mod scrape;
#[path = "refresh/table.rs"]
mod table;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use children::{ExporterProcess, ExporterSpec, Refreshed, SimProcess, SimStats};
use clocked::{Budget, Day};
use manual::Manual;
use scrape::{Crowd, Latencies, Scraped};

pub const PARTS: [&str; 6] = ["single", "concurrent", "multi", "day", "budget", "manual"];

#[derive(Debug, Clone)]
pub struct Options {
    pub keys: usize,
    pub foundations: usize,
    pub latency_ms: u64,
    pub concurrency: usize,
    pub scrapes: usize,
    pub multi_scrapes: usize,
    pub scrapers: usize,
    pub scraper_rounds: usize,
    pub manual_keys: usize,
    pub budget_limit: u64,
    pub multi_owners: bool,
    pub cache: bool,
    pub only: BTreeSet<String>,
}

impl Options {
    pub fn runs(&self, part: &str) -> bool {
        self.only.contains(part)
    }

    /// keys × latency ÷ concurrency: the cold refresh with no overhead at all.
    pub fn bound(&self) -> Duration {
        Duration::from_millis(self.latency_ms) * self.keys as u32 / self.concurrency as u32
    }
}

/// The options, as arguments after `--` or environment variables (the file's header).
#[derive(Debug, clap::Parser)]
#[command(name = "refresh", about = "The exporter's scale targets, measured")]
struct Args {
    #[arg(long, env = "BENCH_KEYS", default_value = "20000", value_parser = count)]
    keys: u64,
    #[arg(long, env = "BENCH_FOUNDATIONS", default_value = "10", value_parser = count)]
    foundations: u64,
    #[arg(long, env = "BENCH_LATENCY_MS", default_value = "20", value_parser = count)]
    latency_ms: u64,
    #[arg(long, env = "BENCH_CONCURRENCY", default_value = "16", value_parser = count)]
    concurrency: u64,
    #[arg(long, env = "BENCH_SCRAPES", default_value = "100", value_parser = count)]
    scrapes: u64,
    #[arg(long, env = "BENCH_MULTI_SCRAPES", default_value = "100", value_parser = count)]
    multi_scrapes: u64,
    #[arg(long, env = "BENCH_SCRAPERS", default_value = "32", value_parser = count)]
    scrapers: u64,
    #[arg(long, env = "BENCH_SCRAPER_ROUNDS", default_value = "3", value_parser = count)]
    scraper_rounds: u64,
    #[arg(long, env = "BENCH_MANUAL_KEYS", default_value = "1000", value_parser = count)]
    manual_keys: u64,
    #[arg(long, env = "BENCH_BUDGET_LIMIT", default_value = "2000", value_parser = count)]
    budget_limit: u64,
    #[arg(long, env = "BENCH_MULTI_OWNERS")]
    multi_owners: bool,
    #[arg(long, env = "BENCH_CACHE")]
    cache: bool,
    /// Some of the parts (comma-separated); all by default.
    #[arg(long, env = "BENCH_ONLY", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(PARTS))]
    only: Vec<String>,
    /// What `cargo bench` adds.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A count, `_` allowed between digits (`20_000`).
fn count(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|e| format!("{text:?} is not a count: {e}"))
}

fn options() -> Options {
    let a = <Args as clap::Parser>::parse();
    let only: BTreeSet<String> = if a.only.is_empty() {
        PARTS.iter().map(|p| p.to_string()).collect()
    } else {
        a.only.into_iter().collect()
    };
    let o = Options {
        keys: a.keys as usize,
        foundations: a.foundations as usize,
        latency_ms: a.latency_ms,
        concurrency: a.concurrency as usize,
        scrapes: a.scrapes as usize,
        multi_scrapes: a.multi_scrapes as usize,
        scrapers: a.scrapers as usize,
        scraper_rounds: a.scraper_rounds as usize,
        manual_keys: a.manual_keys as usize,
        budget_limit: a.budget_limit,
        multi_owners: a.multi_owners,
        cache: a.cache,
        only,
    };
    assert!(
        o.keys >= 10 && o.concurrency > 0,
        "at least 10 keys, 1 reader"
    );
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve-sim") => {
            let n = |i: usize| args[i].parse().expect("--serve-sim KEYS LATENCY_MS COUNT");
            return children::serve_sim(n(2) as usize, n(3), n(4) as usize);
        }
        Some("--serve-exporter") => return children::serve_exporter(),
        _ => {}
    }
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(options));
}

// ---- Results ----

/// One exporter process, one foundation, one sequential scraper.
#[derive(Debug, Clone)]
pub struct Single {
    pub owners: bool,
    pub cold: Refreshed,
    /// Exporter and simulator CPU seconds during the cold refresh.
    pub cold_cpu: (f64, f64),
    pub max_in_flight: usize,
    pub warm: Refreshed,
    pub warm_seen: SimStats,
    pub rotate: Refreshed,
    pub rotate_seen: SimStats,
    pub rotated_published: bool,
    /// Peak RSS after the three refreshes, before any scrape (KiB).
    pub rss_refreshes: u64,
    /// The first scrape after the refreshes (a new connection; the snapshot is rendered already
    /// if the refresh renders at publish, else this scrape renders it).
    pub first_scrape: Scraped,
    pub plain: Latencies,
    pub gzip: Latencies,
    pub rss: u64,
    /// The cache file's size after the refreshes (bytes), with `--cache`.
    pub cache_bytes: Option<u64>,
}

/// One exporter process, one foundation, a crowd of concurrent scrapers.
#[derive(Debug, Clone)]
pub struct Concurrent {
    pub owners: bool,
    pub rss_refreshes: u64,
    pub crowd: Crowd,
    pub rss: u64,
}

/// One exporter process, many foundations refreshing at once.
#[derive(Debug, Clone)]
pub struct Multi {
    pub foundations: usize,
    pub owners: bool,
    pub cold: Vec<Refreshed>,
    pub cold_wall: Duration,
    pub cold_cpu: (f64, f64),
    pub max_in_flight: Vec<usize>,
    pub warm: Vec<Refreshed>,
    pub warm_seen: Vec<SimStats>,
    pub rss_refreshes: u64,
    pub first_scrape: Scraped,
    pub plain: Latencies,
    pub rss: u64,
}

#[derive(Debug, Default)]
pub struct Results {
    pub single: Vec<Single>,
    pub concurrent: Vec<Concurrent>,
    pub multi: Option<Multi>,
    pub day: Option<Day>,
    pub budget: Option<Budget>,
    /// Measured at `--manual-keys`, and scaled to `--keys`.
    pub manual: Option<(Manual, Manual)>,
    pub wall: Duration,
}

fn check_cold(r: &Refreshed, keys: usize) {
    assert!(r.error.is_none(), "cold refresh failed: {:?}", r.error);
    assert_eq!(r.keys, keys, "cold refresh listed every key");
    assert_eq!(r.unread, 0, "cold refresh read every key");
}

fn spec(sim: &SimProcess, o: &Options, owners: bool) -> ExporterSpec {
    ExporterSpec {
        apis: sim.api_urls.clone(),
        owners,
        concurrency: o.concurrency,
        cache: o.cache.then(children::cache_path),
    }
}

/// Cold, warm and rotation refreshes, then sequential scrapes, in a fresh exporter process.
async fn run_single(sim: &mut SimProcess, o: &Options, owners: bool) -> Single {
    let tag = if owners { "owners" } else { "no owners" };
    let spec = spec(sim, o, owners);
    let mut exporter = ExporterProcess::start(&spec);
    sim.reset();
    let cpu = (exporter.process.cpu_secs(), sim.process.cpu_secs());
    let cold = exporter.refresh().remove(0);
    let cold_cpu = (
        exporter.process.cpu_secs() - cpu.0,
        sim.process.cpu_secs() - cpu.1,
    );
    check_cold(&cold, sim.keys);
    let max_in_flight = sim.stats()[0].max_in_flight;
    eprintln!("  [{tag}] cold refresh {:.2} s", cold.secs);

    sim.reset();
    let warm = exporter.refresh().remove(0);
    let warm_seen = sim.stats()[0];
    let guid = sim.rotate(0);
    sim.reset();
    let rotate = exporter.refresh().remove(0);
    let rotate_seen = sim.stats()[0];
    let rotated_published = exporter.has(0, &guid);
    let rss_refreshes = exporter.process.peak_rss_kib();
    let cache_bytes = spec.cache.as_deref().map(children::file_bytes);

    let url = exporter.serve();
    let first_scrape = scrape::scrape(&scrape::client(), &url, false, true).await;
    assert_eq!(first_scrape.status, 200);
    let plain = scrape::sequential(&url, o.scrapes, false).await;
    let gzip = scrape::sequential(&url, o.scrapes, true).await;
    let rss = exporter.process.peak_rss_kib();
    eprintln!(
        "  [{tag}] /metrics p99 {:.1?} plain, {:.1?} gzip; peak RSS {} KiB",
        plain.p99(),
        gzip.p99(),
        rss
    );
    Single {
        owners,
        cold,
        cold_cpu,
        max_in_flight,
        warm,
        warm_seen,
        rotate,
        rotate_seen,
        rotated_published,
        rss_refreshes,
        first_scrape,
        plain,
        gzip,
        rss,
        cache_bytes,
    }
}

/// Cold and warm refreshes, then a crowd of scrapers on the snapshot the warm refresh
/// published, in a fresh exporter process.
async fn run_concurrent(sim: &mut SimProcess, o: &Options, owners: bool) -> Concurrent {
    let tag = if owners { "owners" } else { "no owners" };
    let mut exporter = ExporterProcess::start(&spec(sim, o, owners));
    sim.reset();
    let cold = exporter.refresh().remove(0);
    check_cold(&cold, sim.keys);
    let warm = exporter.refresh().remove(0);
    assert!(warm.error.is_none());
    let rss_refreshes = exporter.process.peak_rss_kib();
    let url = exporter.serve();
    let crowd = scrape::concurrent(&url, o.scrapers, o.scraper_rounds).await;
    let rss = exporter.process.peak_rss_kib();
    eprintln!(
        "  [{tag}] {} concurrent scrapers: {}/{} answered 200; peak RSS {} KiB",
        o.scrapers, crowd.ok, crowd.total, rss
    );
    Concurrent {
        owners,
        rss_refreshes,
        crowd,
        rss,
    }
}

async fn run_multi(o: &Options) -> Multi {
    let mut sim = SimProcess::start(o.keys, o.latency_ms, o.foundations);
    let mut exporter = ExporterProcess::start(&spec(&sim, o, o.multi_owners));
    sim.reset();
    let cpu = (exporter.process.cpu_secs(), sim.process.cpu_secs());
    let start = Instant::now();
    let cold = exporter.refresh();
    let cold_wall = start.elapsed();
    let cold_cpu = (
        exporter.process.cpu_secs() - cpu.0,
        sim.process.cpu_secs() - cpu.1,
    );
    cold.iter().for_each(|r| check_cold(r, o.keys));
    let max_in_flight = sim.stats().iter().map(|s| s.max_in_flight).collect();
    eprintln!(
        "  cold refreshes of {} foundations at once: {:.2?}",
        o.foundations, cold_wall
    );
    sim.reset();
    let warm = exporter.refresh();
    let warm_seen = sim.stats();
    let rss_refreshes = exporter.process.peak_rss_kib();
    let url = exporter.serve();
    let first_scrape = scrape::scrape(&scrape::client(), &url, false, true).await;
    assert_eq!(first_scrape.status, 200);
    let plain = scrape::sequential(&url, o.multi_scrapes, false).await;
    let rss = exporter.process.peak_rss_kib();
    eprintln!("  /metrics p99 {:.1?}; peak RSS {} KiB", plain.p99(), rss);
    Multi {
        foundations: o.foundations,
        owners: o.multi_owners,
        cold,
        cold_wall,
        cold_cpu,
        max_in_flight,
        warm,
        warm_seen,
        rss_refreshes,
        first_scrape,
        plain,
        rss,
    }
}

async fn bench(o: Options) {
    let started = Instant::now();
    let mut results = Results::default();
    eprintln!("Benchmark options: {o:?}");

    if o.runs("single") || o.runs("concurrent") {
        eprintln!("{} keys, one foundation", o.keys);
        let mut sim = SimProcess::start(o.keys, o.latency_ms, 1);
        for owners in [false, true] {
            if o.runs("single") {
                results.single.push(run_single(&mut sim, &o, owners).await);
            }
            if o.runs("concurrent") {
                results
                    .concurrent
                    .push(run_concurrent(&mut sim, &o, owners).await);
            }
        }
    }
    if o.runs("multi") && o.foundations > 0 {
        eprintln!("{} foundations × {} keys", o.foundations, o.keys);
        results.multi = Some(run_multi(&o).await);
    }
    if o.runs("day") {
        eprintln!("A simulated day at {} keys", o.keys);
        let day = clocked::simulated_day(o.keys, o.concurrency).await;
        eprintln!("  done in {:.1?}", day.wall);
        results.day = Some(day);
    }
    if o.runs("budget") {
        eprintln!(
            "A cold start of {} keys against {} requests per hour",
            o.keys, o.budget_limit
        );
        let budget = clocked::budgeted_cold_start(o.keys, o.budget_limit, o.concurrency, 48).await;
        eprintln!("  done in {:.1?}", budget.wall);
        results.budget = Some(budget);
    }
    if o.runs("manual") && o.manual_keys > 0 {
        eprintln!("The manual procedure at {} keys", o.manual_keys);
        let sim = SimProcess::start(o.manual_keys, o.latency_ms, 1);
        let measured = manual::manual_pass(&sim.api_urls[0]).await;
        results.manual = Some((measured, measured.extrapolate(o.keys)));
    }
    results.wall = started.elapsed();
    table::print(&o, &results);
}
