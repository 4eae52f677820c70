//! The exporter against the manual procedure, on the simulated foundation with injected latency.
//!
//! Run: `cargo bench --bench refresh` (sizes 2,000 and 20,000 keys, 20 ms per request, about two
//! minutes). Options, as arguments after `--` or environment variables:
//! `--sizes 2000,20000` (`BENCH_SIZES`), `--latency-ms 20` (`BENCH_LATENCY_MS`),
//! `--scrapes 100` (`BENCH_SCRAPES`, per encoding), `--manual-full` (`BENCH_MANUAL_FULL=1`:
//! also run the manual procedure at every size instead of extrapolating from the smallest;
//! 20,000 keys take over 7 minutes).
//!
//! The simulated foundation runs in a child process (this binary with `--serve-sim`), so the
//! peak RSS printed (VmHWM of this process) is the exporter's: neither the simulator's 20,000
//! credentials documents nor the scraping client (which also runs in the child) count. The
//! parent drives the child over stdin/stdout.
//!
//! The exporter side is the real code: [`Refresher`] with the default `details_concurrency`
//! (16), its snapshot store, and the real HTTP server for `/metrics`. The manual side is what
//! an operator's script does: log in, list every key with the default page size (50), then
//! read each key's `/details` one after the other, every time.

use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroUsize;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cf_service_key_exporter::config::{DemoTarget, FoundationConfig};
use cf_service_key_exporter::expiry;
use cf_service_key_exporter::metrics::ExporterMetrics;
use cf_service_key_exporter::refresher::Refresher;
use cf_service_key_exporter::server::{self, AppState};
use cf_service_key_exporter::snapshot::Store;
use cf_sim::{demo, Accounts, Sim};
use url::Url;

const CONCURRENCY: usize = 16;
const MANUAL_PAGE_SIZE: usize = 50;

#[derive(Debug, Clone)]
struct Options {
    sizes: Vec<usize>,
    latency_ms: u64,
    scrapes: usize,
    manual_full: bool,
}

fn options() -> Options {
    let env = |k: &str| std::env::var(k).ok();
    let mut o = Options {
        sizes: env("BENCH_SIZES")
            .map(|s| parse_sizes(&s))
            .unwrap_or(vec![2_000, 20_000]),
        latency_ms: env("BENCH_LATENCY_MS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
        scrapes: env("BENCH_SCRAPES")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
        manual_full: env("BENCH_MANUAL_FULL").is_some_and(|v| v == "1"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--sizes" => o.sizes = parse_sizes(&value),
            "--latency-ms" => o.latency_ms = value.parse().expect("--latency-ms N"),
            "--scrapes" => o.scrapes = value.parse().expect("--scrapes N"),
            "--manual-full" => {
                o.manual_full = true;
                i += 1;
                continue;
            }
            // `cargo bench` adds `--bench`; anything else unknown is ignored too.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o.sizes.sort_unstable();
    o
}

fn parse_sizes(s: &str) -> Vec<usize> {
    s.split(',')
        .map(|n| {
            n.trim()
                .replace('_', "")
                .parse()
                .expect("sizes: 2000,20000")
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-sim") {
        let keys = args[2].parse().expect("--serve-sim KEYS LATENCY_MS");
        let latency = args[3].parse().expect("--serve-sim KEYS LATENCY_MS");
        return serve_sim(keys, latency);
    }
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(options));
}

// ---- The simulator, in a child process ----

/// Serves a large simulated foundation until stdin closes, answering commands on stdin.
fn serve_sim(keys: usize, latency_ms: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let world = demo::large(keys, time::OffsetDateTime::now_utc()).expect("world");
        let sim = Sim::start(world, Accounts::default()).await.expect("sim");
        sim.state
            .switches
            .set_latency(Duration::from_millis(latency_ms));
        println!("{} {}", sim.api_url, sim.uaa_url);
        let state = sim.state.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                let answer = match line.trim() {
                    "reset" => {
                        state.stats.reset();
                        "ok".to_owned()
                    }
                    "stats" => format!(
                        "{} {} {}",
                        state
                            .stats
                            .count("/v3/service_credential_bindings/:guid/details"),
                        state.stats.total(),
                        state
                            .stats
                            .max_in_flight
                            .load(std::sync::atomic::Ordering::SeqCst)
                    ),
                    "rotate" => state.with_world(|w| {
                        let old = w.find_key("key-0").expect("key-0").guid.clone();
                        let creds = w.find_key("key-1").expect("key-1").credentials.clone();
                        w.rotate_key(&old, creds).expect("rotated")
                    }),
                    // `scrape URL N plain|gzip`: the Prometheus side, kept out of the exporter's
                    // process so its memory is not counted as the exporter's.
                    scrape if scrape.starts_with("scrape ") => {
                        let parts: Vec<&str> = scrape.split_whitespace().collect();
                        let n = parts[2].parse().expect("scrape count");
                        let encoding = (parts[3] == "gzip").then_some("gzip");
                        let p = handle.block_on(scrape_times(parts[1], encoding, n));
                        format!(
                            "{} {} {} {}",
                            p.p50.as_nanos(),
                            p.p99.as_nanos(),
                            p.bytes,
                            p.series
                        )
                    }
                    other => format!("unknown command {other}"),
                };
                println!("{answer}");
            }
        })
        .await
        .expect("command loop");
        sim.stop();
    });
}

/// The parent's handle on a simulator child.
struct SimProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    api_url: Url,
    uaa_url: Url,
}

#[derive(Debug, Clone, Copy)]
struct SimStats {
    details: usize,
    total: usize,
    max_in_flight: usize,
}

impl SimProcess {
    fn start(keys: usize, latency_ms: u64) -> SimProcess {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(["--serve-sim", &keys.to_string(), &latency_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("simulator child starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("simulator urls");
        let mut urls = line.split_whitespace();
        let api_url = Url::parse(urls.next().expect("api url")).expect("api url");
        let uaa_url = Url::parse(urls.next().expect("uaa url")).expect("uaa url");
        SimProcess {
            child,
            stdin,
            stdout,
            api_url,
            uaa_url,
        }
    }

    fn command(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("command sent");
        self.stdin.flush().expect("command sent");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("answer");
        line.trim().to_owned()
    }

    fn stats(&mut self) -> SimStats {
        let answer = self.command("stats");
        let n: Vec<usize> = answer
            .split_whitespace()
            .map(|v| v.parse().expect("stats"))
            .collect();
        SimStats {
            details: n[0],
            total: n[1],
            max_in_flight: n[2],
        }
    }

    fn scrape(&mut self, url: &str, n: usize, encoding: &str) -> Percentiles {
        let answer = self.command(&format!("scrape {url} {n} {encoding}"));
        let v: Vec<u64> = answer
            .split_whitespace()
            .map(|v| v.parse().expect("scrape answer"))
            .collect();
        Percentiles {
            p50: Duration::from_nanos(v[0]),
            p99: Duration::from_nanos(v[1]),
            bytes: v[2] as usize,
            series: v[3] as usize,
        }
    }

    fn foundation_config(&self) -> FoundationConfig {
        let mut config = DemoTarget::new(&self.api_url, &Accounts::default()).foundation("bench");
        // A refresh interval longer than any cold refresh here, so no deadline cuts one short.
        config.refresh_interval = Duration::from_secs(300);
        config.details_concurrency = NonZeroUsize::new(CONCURRENCY).expect("not zero");
        config
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Measurements ----

#[derive(Debug, Default, Clone)]
struct Run {
    time: Duration,
    requests: u64,
}

#[derive(Debug, Default, Clone)]
struct ExporterResult {
    keys: usize,
    cold: Run,
    warm: Run,
    rotate: Run,
    max_in_flight: usize,
    plain: Option<Percentiles>,
    gzip: Option<Percentiles>,
    series: usize,
}

#[derive(Debug, Clone, Copy)]
struct Percentiles {
    p50: Duration,
    p99: Duration,
    bytes: usize,
    /// Samples in the uncompressed exposition (0 for gzip).
    series: usize,
}

#[derive(Debug, Clone)]
struct ManualResult {
    pass: Run,
    extrapolated: bool,
}

async fn bench_exporter(keys: usize, options: &Options, scrape: bool) -> ExporterResult {
    let setup = Instant::now();
    let mut sim = SimProcess::start(keys, options.latency_ms);
    eprintln!("[{keys} keys] simulator ready in {:.1?}", setup.elapsed());
    let store = Arc::new(Store::new());
    let metrics = Arc::new(ExporterMetrics::default());
    let config = sim.foundation_config();
    store.register(&config.name);
    let refresher = Refresher::new(config, store.clone(), metrics.clone()).expect("refresher");
    let mut result = ExporterResult {
        keys,
        ..Default::default()
    };

    let timed = |outcome: &cf_service_key_exporter::refresher::RefreshOutcome, start: Instant| {
        assert!(
            outcome.error.is_none(),
            "refresh failed: {:?}",
            outcome.error
        );
        Run {
            time: start.elapsed(),
            requests: outcome.stats.requests,
        }
    };
    let start = Instant::now();
    let outcome = refresher.refresh().await;
    assert_eq!(outcome.stats.keys, keys, "cold refresh read every key");
    result.cold = timed(&outcome, start);
    result.max_in_flight = sim.stats().max_in_flight;
    eprintln!(
        "[{keys} keys] exporter cold {:.2?}; peak RSS so far {} KiB",
        result.cold.time,
        vm_hwm_kib()
    );

    sim.command("reset");
    let start = Instant::now();
    let outcome = refresher.refresh().await;
    assert_eq!(
        outcome.stats.details_read, 0,
        "warm refresh reads no details"
    );
    result.warm = timed(&outcome, start);
    let seen = sim.stats();
    assert_eq!(seen.details, 0, "the simulator saw no /details call");
    assert!(seen.total as u64 <= result.warm.requests);

    eprintln!(
        "[{keys} keys] warm done; peak RSS so far {} KiB",
        vm_hwm_kib()
    );
    let new_guid = sim.command("rotate");
    let start = Instant::now();
    let outcome = refresher.refresh().await;
    result.rotate = timed(&outcome, start);
    let snapshot = store.foundation("bench").expect("published");
    assert!(
        snapshot
            .keys
            .iter()
            .any(|k| *k.labels.service_key_guid == *new_guid),
        "the rotated key was picked up"
    );

    if scrape {
        let app = server::router(AppState::new(
            metrics.exposition(store.clone()),
            store.clone(),
            vec![],
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}/metrics");
        let n = options.scrapes;
        let plain = sim.scrape(&url, n, "plain");
        result.series = plain.series;
        result.plain = Some(plain);
        eprintln!(
            "[{keys} keys] plain scrapes done; peak RSS so far {} KiB",
            vm_hwm_kib()
        );
        result.gzip = Some(sim.scrape(&url, n, "gzip"));
        eprintln!(
            "[{keys} keys] gzip scrapes done; peak RSS so far {} KiB",
            vm_hwm_kib()
        );
        server.abort();
    }
    result
}

async fn scrape_times(url: &str, encoding: Option<&str>, n: usize) -> Percentiles {
    // No automatic decompression: the time is the exporter's answer, the size what travels.
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    let mut series = 0;
    for _ in 0..n.max(1) {
        // Scrape as Prometheus does: it asks for OpenMetrics.
        let mut request = client.get(url).header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        );
        if let Some(e) = encoding {
            request = request.header("accept-encoding", e);
        }
        let start = Instant::now();
        let response = request.send().await.expect("scrape");
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        times.push(start.elapsed());
        bytes = body.len();
        if encoding.is_none() {
            series = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
                .count();
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        bytes,
        series,
    }
}

/// The manual procedure: log in, list every key (default page size), read each key's details
/// one after the other, extract the expiry. Returns the time and the requests sent.
async fn manual_pass(sim: &SimProcess) -> (Run, usize) {
    let client = reqwest::Client::new();
    let accounts = Accounts::default();
    let start = Instant::now();
    let mut requests = 0u64;
    let token: serde_json::Value = client
        .post(sim.uaa_url.join("/oauth/token").expect("url"))
        .basic_auth(&accounts.client_id, Some(&accounts.client_secret))
        .form(&[
            ("grant_type", "password"),
            ("username", accounts.username.as_str()),
            ("password", accounts.password.as_str()),
        ])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("token");
    requests += 1;
    let bearer = format!("bearer {}", token["access_token"].as_str().expect("token"));

    let mut guids = Vec::new();
    let mut next = Some(format!(
        "{}v3/service_credential_bindings?type=key",
        sim.api_url
    ));
    while let Some(url) = next {
        let page: serde_json::Value = client
            .get(&url)
            .header("authorization", &bearer)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("page");
        requests += 1;
        for r in page["resources"].as_array().expect("resources") {
            guids.push(r["guid"].as_str().expect("guid").to_owned());
        }
        next = page["pagination"]["next"]["href"]
            .as_str()
            .map(str::to_owned);
    }
    let mut read = 0;
    for guid in &guids {
        let details: serde_json::Value = client
            .get(format!(
                "{}v3/service_credential_bindings/{guid}/details",
                sim.api_url
            ))
            .header("authorization", &bearer)
            .send()
            .await
            .expect("details")
            .json()
            .await
            .expect("details body");
        requests += 1;
        if expiry::extract(&details["credentials"])
            .earliest()
            .is_some()
        {
            read += 1;
        }
    }
    (
        Run {
            time: start.elapsed(),
            requests,
        },
        read,
    )
}

async fn bench_manual(keys: usize, options: &Options) -> ManualResult {
    let sim = SimProcess::start(keys, options.latency_ms);
    let (pass, read) = manual_pass(&sim).await;
    assert_eq!(read, keys, "the manual procedure read every key");
    eprintln!("[{keys} keys] manual pass {:.1?}", pass.time);
    ManualResult {
        pass,
        extrapolated: false,
    }
}

/// The manual procedure's cost at `keys`, scaled from a measured pass by its request count
/// (every request is one round trip, one after the other).
fn extrapolate(measured: &ManualResult, keys: usize) -> ManualResult {
    let requests = 1 + keys.div_ceil(MANUAL_PAGE_SIZE) as u64 + keys as u64;
    let per_request = measured.pass.time.as_secs_f64() / measured.pass.requests as f64;
    ManualResult {
        pass: Run {
            time: Duration::from_secs_f64(per_request * requests as f64),
            requests,
        },
        extrapolated: true,
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, {model}")
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

async fn bench(options: Options) {
    let started = Instant::now();
    let largest = *options.sizes.last().expect("at least one size");
    let mut exporter = Vec::new();
    for &keys in &options.sizes {
        exporter.push(bench_exporter(keys, &options, keys == largest).await);
    }
    let hwm = vm_hwm_kib();

    let mut manual: Vec<ManualResult> = Vec::new();
    for &keys in &options.sizes {
        if options.manual_full || manual.is_empty() {
            manual.push(bench_manual(keys, &options).await);
        } else {
            manual.push(extrapolate(&manual[0], keys));
        }
    }

    let lat = options.latency_ms;
    println!();
    println!(
        "Machine: {}; simulated latency {lat} ms per request; exporter details_concurrency {CONCURRENCY}; manual page size {MANUAL_PAGE_SIZE}",
        machine()
    );
    println!();
    println!("| keys | measure | exporter | manual procedure |");
    println!("| ---: | --- | ---: | ---: |");
    for (e, m) in exporter.iter().zip(&manual) {
        let note = if m.extrapolated {
            " (extrapolated)"
        } else {
            ""
        };
        let k = e.keys;
        let manual_pass = format!("{}{note}", secs(m.pass.time));
        let manual_requests = format!("{}{note}", m.pass.requests);
        println!(
            "| {k} | cold refresh: time | {} | {manual_pass} |",
            secs(e.cold.time)
        );
        println!(
            "| {k} | cold refresh: requests | {} | {manual_requests} |",
            e.cold.requests
        );
        println!(
            "| {k} | warm refresh (nothing changed): time | {} | {manual_pass} (every pass reads every key) |",
            secs(e.warm.time)
        );
        println!(
            "| {k} | warm refresh: requests | {} | {manual_requests} |",
            e.warm.requests
        );
        println!(
            "| {k} | pick up one rotated key (one refresh) | {} ({} requests) | {manual_pass} |",
            secs(e.rotate.time),
            e.rotate.requests
        );
        println!(
            "| {k} | most requests in flight | {} | 1 |",
            e.max_in_flight
        );
        if let (Some(p), Some(g)) = (e.plain, e.gzip) {
            println!(
                "| {k} | `/metrics` over HTTP, {} series, {} KiB: p50 / p99 | {} / {} | n/a |",
                e.series,
                p.bytes / 1024,
                secs(p.p50),
                secs(p.p99)
            );
            println!(
                "| {k} | `/metrics` gzip, {} KiB: p50 / p99 | {} / {} | n/a |",
                g.bytes / 1024,
                secs(g.p50),
                secs(g.p99)
            );
        }
    }
    println!(
        "| {largest} | peak RSS of the exporter process (VmHWM) | {:.1} MB | n/a |",
        hwm as f64 / 1024.0
    );

    println!();
    println!("Targets:");
    let mut all = true;
    let mut check = |ok: bool, what: String| {
        all &= ok;
        println!("- {} {what}", if ok { "PASS" } else { "FAIL" });
    };
    let big = exporter.last().expect("largest size");
    let manual_big = manual.last().expect("largest size");
    check(
        big.warm.requests <= 10,
        format!(
            "warm refresh at {} keys: {} requests (target <= 10)",
            big.keys, big.warm.requests
        ),
    );
    for e in &exporter {
        let bound = Duration::from_millis(lat) * e.keys as u32 / CONCURRENCY as u32;
        check(
            e.cold.time.as_secs_f64() <= 1.25 * bound.as_secs_f64(),
            format!(
                "cold refresh at {} keys: {} (target <= 1.25 x {} = {})",
                e.keys,
                secs(e.cold.time),
                secs(bound),
                secs(bound.mul_f64(1.25))
            ),
        );
        check(
            e.max_in_flight <= CONCURRENCY,
            format!(
                "at {} keys never more than {CONCURRENCY} requests in flight: {}",
                e.keys, e.max_in_flight
            ),
        );
    }
    let speedup = manual_big.pass.time.as_secs_f64() / big.cold.time.as_secs_f64();
    check(
        speedup > 12.0,
        format!(
            "cold refresh at {} keys {speedup:.1}x faster than the manual procedure{} (target > 12x)",
            big.keys,
            if manual_big.extrapolated {
                " (extrapolated)"
            } else {
                ""
            }
        ),
    );
    if let (Some(p), Some(g)) = (big.plain, big.gzip) {
        check(
            p.p99 < Duration::from_millis(50),
            format!(
                "/metrics p99 at {} keys, uncompressed: {} (target < 50 ms)",
                big.keys,
                secs(p.p99)
            ),
        );
        check(
            g.p99 < Duration::from_millis(200),
            format!(
                "/metrics p99 at {} keys, gzip: {} (target < 200 ms)",
                big.keys,
                secs(g.p99)
            ),
        );
    }
    check(
        hwm < 100 * 1024,
        format!(
            "peak RSS at {} keys: {:.1} MB (target < 100 MB)",
            big.keys,
            hwm as f64 / 1024.0
        ),
    );
    println!();
    println!(
        "{} in {:.0?}",
        if all {
            "All targets met"
        } else {
            "Some targets missed"
        },
        started.elapsed()
    );
}
