//! The benchmark's output: the machine, a table of targets with PASS/FAIL and the measured
//! figure, and a table of the other figures.

use std::time::Duration;

use crate::children::Refreshed;
use crate::scrape::Latencies;
use crate::{Options, Results, Single};

/// Seconds above one, milliseconds below.
pub fn time(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// KiB as decimal megabytes (10^6 bytes), the unit of the targets.
pub fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

fn under_mb(kib: u64, limit_mb: f64) -> bool {
    (kib as f64 * 1024.0) < limit_mb * 1e6
}

/// 20000 → "20,000".
pub fn n(x: impl Into<u128>) -> String {
    let s = x.into().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(x: usize) -> String {
    n(x as u128)
}

/// "min / median / max".
fn spread(v: &[usize]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    format!("{} / {} / {}", s[0], s[s.len() / 2], s[s.len() - 1])
}

fn latencies(l: &Latencies) -> String {
    format!(
        "{} / {} / {} ({} scrapes)",
        time(l.p50()),
        time(l.p99()),
        time(l.max()),
        l.count()
    )
}

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".into(), |m| m.trim().to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{model}, {cpus} vCPUs{memory}")
}

#[derive(Default)]
struct Table {
    targets: Vec<[String; 5]>,
    figures: Vec<[String; 3]>,
    missed: Vec<String>,
}

impl Table {
    fn target(&mut self, setting: &str, measure: &str, target: &str, measured: String, ok: bool) {
        if !ok {
            self.missed.push(format!("{setting}: {measure}"));
        }
        self.targets.push([
            setting.into(),
            measure.into(),
            target.into(),
            measured,
            if ok { "PASS" } else { "FAIL" }.into(),
        ]);
    }

    fn figure(&mut self, setting: &str, measure: &str, value: String) {
        self.figures.push([setting.into(), measure.into(), value]);
    }
}

fn single_rows(t: &mut Table, o: &Options, s: &Single, setting: &str) {
    let bound = o.bound();
    t.target(
        setting,
        "cold refresh",
        &format!("≤ 1.25 × {} = {}", time(bound), time(bound.mul_f64(1.25))),
        time(s.cold.time()),
        s.cold.time() <= bound.mul_f64(1.25),
    );
    t.target(
        setting,
        "warm refresh (right after the cold one)",
        "≤ 10 requests",
        format!(
            "{} requests ({} /details)",
            s.warm.requests, s.warm_seen.details
        ),
        s.warm.requests <= 10 && s.warm.error.is_none(),
    );
    t.target(
        setting,
        "pick up one rotated key",
        "the next refresh publishes it, reading 1 /details",
        format!(
            "{}; {} requests, {} /details, {}",
            if s.rotated_published {
                "published"
            } else {
                "NOT published"
            },
            s.rotate.requests,
            s.rotate_seen.details,
            time(s.rotate.time())
        ),
        s.rotated_published && s.rotate_seen.details == 1 && s.rotate.error.is_none(),
    );
    t.target(
        setting,
        "most requests in flight",
        &format!("≤ {}", o.concurrency),
        s.max_in_flight.to_string(),
        s.max_in_flight <= o.concurrency,
    );
    t.target(
        setting,
        &format!(
            "`/metrics` p99, plain, {} sequential scrapes",
            s.plain.count()
        ),
        "< 25 ms",
        time(s.plain.p99()),
        s.plain.p99() < Duration::from_millis(25) && s.plain.count() >= 100,
    );
    t.target(
        setting,
        &format!(
            "`/metrics` p99, gzip, {} sequential scrapes",
            s.gzip.count()
        ),
        "< 60 ms",
        time(s.gzip.p99()),
        s.gzip.p99() < Duration::from_millis(60) && s.gzip.count() >= 100,
    );
    t.target(
        setting,
        "peak RSS, refreshes + one scraper (own process)",
        "< 100 MB",
        mb(s.rss),
        under_mb(s.rss, 100.0),
    );

    t.figure(
        setting,
        "cold refresh: requests; CPU seconds exporter / simulator",
        format!(
            "{}; {:.1} / {:.1}",
            n(s.cold.requests),
            s.cold_cpu.0,
            s.cold_cpu.1
        ),
    );
    t.figure(setting, "warm refresh: time", time(s.warm.time()));
    t.figure(
        setting,
        "peak RSS after the refreshes, before any scrape",
        mb(s.rss_refreshes),
    );
    t.figure(
        setting,
        "first scrape after the refreshes (new connection)",
        time(s.first_scrape.time),
    );
    t.figure(
        setting,
        &format!(
            "`/metrics` plain, {} series, {} KiB: p50 / p99 / max",
            n(s.first_scrape.series as u128),
            n(s.plain.bytes as u128 / 1024)
        ),
        latencies(&s.plain),
    );
    t.figure(
        setting,
        &format!(
            "`/metrics` gzip, {} KiB: p50 / p99 / max",
            n(s.gzip.bytes as u128 / 1024)
        ),
        latencies(&s.gzip),
    );
    if let Some(bytes) = s.cache_bytes {
        t.figure(
            setting,
            "cache file after the refreshes",
            format!("{} KiB", n(bytes as u128 / 1024)),
        );
    }
}

pub fn print(o: &Options, r: &Results) {
    let mut t = Table::default();
    let keys = us(o.keys);
    let setting = |owners: bool| {
        if owners {
            format!("{keys} keys, `--metadata-labels team`")
        } else {
            format!("{keys} keys")
        }
    };

    for owners in [false, true] {
        let name = setting(owners);
        if let Some(s) = r.single.iter().find(|s| s.owners == owners) {
            single_rows(&mut t, o, s, &name);
        }
        if let Some(c) = r.concurrent.iter().find(|c| c.owners == owners) {
            let gz = o.scrapers / 2;
            t.target(
                &name,
                &format!(
                    "{} concurrent scrapers ({gz} gzip), {} scrapes each",
                    o.scrapers, o.scraper_rounds
                ),
                "all answered 200",
                format!(
                    "{} of {}{}",
                    c.crowd.ok,
                    c.crowd.total,
                    c.crowd
                        .refused
                        .iter()
                        .map(|(code, k)| format!(", {k} × {code}"))
                        .collect::<String>()
                ),
                c.crowd.ok == c.crowd.total,
            );
            t.target(
                &name,
                "peak RSS, refreshes + concurrent scrapers (own process)",
                "< 150 MB",
                mb(c.rss),
                under_mb(c.rss, 150.0),
            );
            t.figure(
                &name,
                "concurrent scrapers, plain: p50 / p99 / max",
                latencies(&c.crowd.plain),
            );
            t.figure(
                &name,
                "concurrent scrapers, gzip: p50 / p99 / max",
                latencies(&c.crowd.gzip),
            );
            t.figure(
                &name,
                "concurrent scrapers: all done in; peak RSS before them",
                format!("{}; {}", time(c.crowd.wall), mb(c.rss_refreshes)),
            );
        }
    }

    if let Some((measured, scaled)) = &r.manual {
        if let Some(s) = r.single.iter().find(|s| !s.owners) {
            let speedup = scaled.time.as_secs_f64() / s.cold.secs;
            t.target(
                &setting(false),
                "cold refresh against the manual procedure",
                "> 12 × faster",
                format!(
                    "{speedup:.1} × (manual {}, scaled from {} keys)",
                    time(scaled.time),
                    us(measured.keys)
                ),
                speedup > 12.0,
            );
        }
        t.figure(
            &format!("manual procedure, {} keys", us(measured.keys)),
            "one pass: time / requests (measured)",
            format!("{} / {}", time(measured.time), n(measured.requests)),
        );
        t.figure(
            &format!("manual procedure, {} keys", us(scaled.keys)),
            "one pass: time / requests (scaled by requests)",
            format!("{} / {}", time(scaled.time), n(scaled.requests)),
        );
    }

    if let Some(m) = &r.multi {
        let name = format!(
            "{} × {keys} keys{}",
            m.foundations,
            if m.owners {
                ", `--metadata-labels team`"
            } else {
                ""
            }
        );
        let bound = o.bound();
        let slowest = m.cold.iter().map(Refreshed::time).max().unwrap_or_default();
        let fastest = m.cold.iter().map(Refreshed::time).min().unwrap_or_default();
        let within = m
            .cold
            .iter()
            .filter(|c| c.time() <= bound.mul_f64(1.25))
            .count();
        t.target(
            &name,
            "every foundation's cold refresh, all at once",
            &format!(
                "each ≤ 1.25 × {} = {}",
                time(bound),
                time(bound.mul_f64(1.25))
            ),
            format!(
                "{within} of {} within; slowest {}, fastest {}",
                m.cold.len(),
                time(slowest),
                time(fastest)
            ),
            within == m.cold.len(),
        );
        let warm_max = m.warm.iter().map(|w| w.requests).max().unwrap_or(0);
        t.target(
            &name,
            "warm refresh (right after the cold ones)",
            "≤ 10 requests per foundation",
            format!("at most {warm_max} requests"),
            warm_max <= 10 && m.warm.iter().all(|w| w.error.is_none()),
        );
        let in_flight = m.max_in_flight.iter().copied().max().unwrap_or(0);
        t.target(
            &name,
            "most requests in flight, per foundation",
            &format!("≤ {}", o.concurrency),
            in_flight.to_string(),
            in_flight <= o.concurrency,
        );
        t.target(
            &name,
            "peak RSS (own process)",
            "< 600 MB",
            mb(m.rss),
            under_mb(m.rss, 600.0),
        );
        t.target(
            &name,
            &format!(
                "`/metrics` p99, plain, {} sequential scrapes",
                m.plain.count()
            ),
            "< 250 ms",
            time(m.plain.p99()),
            m.plain.p99() < Duration::from_millis(250) && m.plain.count() >= 100,
        );
        t.figure(
            &name,
            "cold refreshes: all done in; CPU seconds exporter / simulators",
            format!(
                "{}; {:.1} / {:.1} (2 CPUs give {:.1})",
                time(m.cold_wall),
                m.cold_cpu.0,
                m.cold_cpu.1,
                m.cold_wall.as_secs_f64()
                    * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
            ),
        );
        t.figure(
            &name,
            "cold refresh of each foundation",
            m.cold
                .iter()
                .map(|c| format!("{:.1}", c.secs))
                .collect::<Vec<_>>()
                .join(", ")
                + " s",
        );
        t.figure(
            &name,
            "warm refresh: /details seen by the simulators",
            m.warm_seen
                .iter()
                .map(|s| s.details)
                .sum::<usize>()
                .to_string(),
        );
        t.figure(
            &name,
            "peak RSS after the refreshes, before any scrape",
            mb(m.rss_refreshes),
        );
        t.figure(
            &name,
            "first scrape after the refreshes (new connection)",
            time(m.first_scrape.time),
        );
        t.figure(
            &name,
            &format!(
                "`/metrics` plain, {} series, {} KiB: p50 / p99 / max",
                n(m.first_scrape.series as u128),
                n(m.plain.bytes as u128 / 1024)
            ),
            latencies(&m.plain),
        );
    }

    if let Some(d) = &r.day {
        let name = format!("a simulated day, {} keys (5m / 24h)", us(d.keys));
        let ceiling = d.share.ceil() as usize + d.failing_keys;
        let most = d.details.iter().copied().max().unwrap_or(0);
        t.target(
            &name,
            &format!("/details per refresh, {} refreshes", d.refreshes),
            &format!(
                "≤ ⌈{:.1}⌉ + {} failing = {ceiling}",
                d.share, d.failing_keys
            ),
            format!("{} (min / median / max)", spread(&d.details)),
            most <= ceiling && d.failed == 0,
        );
        t.target(
            &name,
            "every key read again within the day",
            "longest gap between readings ≤ 24 h",
            format!(
                "{} h {} m; {} keys not read again",
                d.max_gap / 3600,
                d.max_gap % 3600 / 60,
                d.not_reread
            ),
            d.not_reread == 0 && d.max_gap <= 24 * 3600,
        );
        t.figure(
            &name,
            "list pages per refresh: min / median / max",
            spread(&d.lists),
        );
        t.figure(
            &name,
            "/details over the day; refreshes that failed; run time",
            format!(
                "{}; {}; {}",
                us(d.details.iter().sum()),
                d.failed,
                time(d.wall)
            ),
        );
    }

    if let Some(b) = &r.budget {
        let name = format!(
            "budgeted cold start, {} keys, {} requests/hour",
            us(b.keys),
            n(b.limit)
        );
        let refreshes = b.reads.len();
        t.target(
            &name,
            "429 answers",
            "none",
            b.throttled.to_string(),
            b.throttled == 0,
        );
        let worst = b.per_window.iter().copied().max().unwrap_or(0);
        t.target(
            &name,
            "requests per rate-limit window (1 h)",
            &format!("≤ {}", n(b.limit)),
            format!("at most {}", us(worst)),
            worst as u64 <= b.limit,
        );
        t.target(
            &name,
            "every refresh published, keys not read yet shown as unread",
            "every refresh",
            format!("{} of {refreshes}", refreshes - b.unpublished.max(b.failed)),
            b.unpublished == 0 && b.failed == 0,
        );
        t.target(
            &name,
            "every key read",
            "within 48 simulated hours",
            match b.all_read_after {
                Some(i) => format!("after {:.2} h ({} refreshes)", i as f64 * 5.0 / 60.0, i + 1),
                None => "not within 48 h".into(),
            },
            b.all_read_after.is_some(),
        );
        t.figure(
            &name,
            "/details per refresh: min / median / max",
            spread(&b.reads),
        );
        t.figure(
            &name,
            "list pages per refresh: min / median / max",
            spread(&b.lists),
        );
        t.figure(
            &name,
            "requests in each window",
            b.per_window
                .iter()
                .map(|w| us(*w))
                .collect::<Vec<_>>()
                .join(", "),
        );
        t.figure(
            &name,
            "keys read after 1 h, 2 h, 4 h",
            [12, 24, 48]
                .iter()
                .map(|i| {
                    b.progress
                        .get(i - 1)
                        .or(b.progress.last())
                        .map_or("-".into(), |p| us(*p))
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        t.figure(&name, "run time", time(b.wall));
    }

    println!();
    println!("Machine: {}", machine());
    println!(
        "Simulated latency {} ms per request; details_concurrency {}; release build; run time {:.0} s",
        o.latency_ms,
        o.concurrency,
        r.wall.as_secs_f64()
    );
    println!();
    println!("| setting | target | bound | measured | result |");
    println!("| --- | --- | --- | --- | --- |");
    for row in &t.targets {
        println!("| {} |", row.join(" | "));
    }
    println!();
    println!("| setting | figure | value |");
    println!("| --- | --- | --- |");
    for row in &t.figures {
        println!("| {} |", row.join(" | "));
    }
    println!();
    if t.missed.is_empty() {
        println!("All {} targets met.", t.targets.len());
    } else {
        println!(
            "{} of {} targets missed: {}",
            t.missed.len(),
            t.targets.len(),
            t.missed.join("; ")
        );
    }
}
