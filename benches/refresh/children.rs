//! The two child processes of the benchmark, and the parent's handles on them.
//!
//! - **Simulator** (`--serve-sim KEYS LATENCY_MS COUNT`): `COUNT` simulated foundations of
//!   `KEYS` keys each (`cf_sim::demo::large`), each on its own loopback ports, in one process.
//! - **Exporter** (`--serve-exporter`): the exporter's real refreshers (one per simulated
//!   foundation, each refresh in its own task as the supervisor runs them), its store, and on
//!   request the real HTTP router. Its wall clock is a `ManualClock` that stands still unless the
//!   parent advances it.
//!
//! So the peak RSS the parent reads from `/proc/<pid>/status` (VmHWM) is the exporter's alone:
//! the simulators' credentials documents and the scraping clients (in the parent) are
//! elsewhere. Each child takes one command per line on stdin and answers one line on stdout.

use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cf_service_key_exporter::cache::Cache;
use cf_service_key_exporter::config::{self, DemoTarget, FoundationConfig};
use cf_service_key_exporter::metrics::ExporterMetrics;
use cf_service_key_exporter::refresher::{RefreshOutcome, Refresher};
use cf_service_key_exporter::server::{self, AppState};
use cf_service_key_exporter::snapshot::Store;
use cf_service_key_exporter::testing::ManualClock;
use cf_sim::{demo, Accounts, Sim};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

pub const DETAILS_ROUTE: &str = "/v3/service_credential_bindings/:guid/details";
pub const LIST_ROUTES: [&str; 3] = [
    "/v3/service_instances",
    "/v3/service_credential_bindings",
    "/v3/spaces",
];

/// The name of the `i`th foundation.
pub fn foundation_name(i: usize) -> String {
    format!("f{i:02}")
}

/// What the exporter child is to watch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExporterSpec {
    pub apis: Vec<String>,
    /// `--metadata-labels team`.
    pub owners: bool,
    pub concurrency: usize,
    /// The cache file (`CACHE_FILE`), if the exporter keeps one.
    pub cache: Option<String>,
}

/// A fresh cache file path for one exporter process, in the temporary directory.
pub fn cache_path() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir()
        .join(format!("cfske-bench-cache-{}-{n}.json", std::process::id()))
        .to_string_lossy()
        .into_owned()
}

/// A file's size in bytes (0 if it cannot be read).
pub fn file_bytes(path: &str) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// One foundation's refresh, as the exporter child reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Refreshed {
    pub secs: f64,
    pub keys: usize,
    pub details_read: usize,
    pub details_errors: usize,
    pub deferred: usize,
    pub unread: usize,
    pub requests: u64,
    pub error: Option<String>,
}

impl Refreshed {
    pub fn from_outcome(time: Duration, outcome: &RefreshOutcome) -> Self {
        Refreshed {
            secs: time.as_secs_f64(),
            keys: outcome.stats.keys,
            details_read: outcome.stats.details_read,
            details_errors: outcome.stats.details_errors,
            deferred: outcome.stats.deferred,
            unread: outcome.stats.unread,
            requests: outcome.stats.requests,
            error: outcome.error.as_ref().map(|e| e.to_string()),
        }
    }

    pub fn time(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

/// What one simulated foundation was asked since its last reset.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SimStats {
    pub details: usize,
    /// List pages: instances, bindings and spaces.
    pub lists: usize,
    pub total: usize,
    /// `429 Too Many Requests` answers.
    pub throttled: usize,
    pub max_in_flight: usize,
}

impl SimStats {
    pub fn of(sim: &Sim) -> SimStats {
        let log = sim.state.stats.log();
        let on = |route: &str| log.iter().filter(|l| l.route == route).count();
        SimStats {
            details: on(DETAILS_ROUTE),
            lists: LIST_ROUTES.iter().map(|r| on(r)).sum(),
            total: log.len(),
            throttled: log.iter().filter(|l| l.status == 429).count(),
            max_in_flight: sim
                .state
                .stats
                .max_in_flight
                .load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// Reads stdin lines on a thread of its own and hands them to the async side.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn reply(answer: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{answer}").expect("stdout");
    out.flush().expect("stdout");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---- The simulator child ----

/// `--serve-sim KEYS LATENCY_MS COUNT`: serves until stdin closes.
pub fn serve_sim(keys: usize, latency_ms: u64, count: usize) {
    runtime().block_on(async {
        let world = demo::large(keys, time::OffsetDateTime::now_utc()).expect("world");
        let mut sims = Vec::with_capacity(count);
        for _ in 0..count {
            let sim = Sim::start(world.clone(), Accounts::default())
                .await
                .expect("simulator");
            sim.state
                .switches
                .set_latency(Duration::from_millis(latency_ms));
            sims.push(sim);
        }
        drop(world);
        let urls: Vec<String> = sims.iter().map(|s| s.api_url.to_string()).collect();
        reply(serde_json::to_string(&urls).expect("json"));
        let mut lines = stdin_lines();
        while let Some(line) = lines.recv().await {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["reset"] => {
                    sims.iter().for_each(|s| s.state.stats.reset());
                    reply("ok");
                }
                ["stats"] => {
                    let stats: Vec<SimStats> = sims.iter().map(SimStats::of).collect();
                    reply(serde_json::to_string(&stats).expect("json"));
                }
                // A user rotates `key-0`: a new key (new guid) with the same name.
                ["rotate", i] => {
                    let sim = &sims[i.parse::<usize>().expect("index")];
                    let guid = sim.state.with_world(|w| {
                        let old = w.find_key("key-0").expect("key-0").guid.clone();
                        let creds = w.find_key("key-1").expect("key-1").credentials.clone();
                        w.rotate_key(&old, creds).expect("rotated")
                    });
                    reply(guid);
                }
                ["quit"] => break,
                other => reply(format!("unknown command {other:?}")),
            }
        }
        sims.iter().for_each(Sim::stop);
    });
}

/// A line-command child process.
pub struct ChildProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ChildProcess {
    fn spawn(args: &[String]) -> ChildProcess {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("child process starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        ChildProcess {
            child,
            stdin,
            stdout,
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("answer");
        assert!(!line.is_empty(), "the child process ended");
        line.trim().to_owned()
    }

    pub fn command(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("command sent");
        self.stdin.flush().expect("command sent");
        self.read_line()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// CPU time used so far (user + system, every thread), seconds.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parent's handle on a simulator child.
pub struct SimProcess {
    pub process: ChildProcess,
    pub api_urls: Vec<String>,
    pub keys: usize,
}

impl SimProcess {
    pub fn start(keys: usize, latency_ms: u64, count: usize) -> SimProcess {
        let started = Instant::now();
        let mut process = ChildProcess::spawn(&[
            "--serve-sim".into(),
            keys.to_string(),
            latency_ms.to_string(),
            count.to_string(),
        ]);
        let api_urls: Vec<String> =
            serde_json::from_str(&process.read_line()).expect("simulator urls");
        eprintln!(
            "  {count} simulated foundation(s) of {keys} keys ready in {:.1?}",
            started.elapsed()
        );
        SimProcess {
            process,
            api_urls,
            keys,
        }
    }

    pub fn reset(&mut self) {
        assert_eq!(self.process.command("reset"), "ok");
    }

    pub fn stats(&mut self) -> Vec<SimStats> {
        serde_json::from_str(&self.process.command("stats")).expect("stats")
    }

    /// Rotates `key-0` of foundation `i`; the new key's guid.
    pub fn rotate(&mut self, i: usize) -> String {
        self.process.command(&format!("rotate {i}"))
    }
}

// ---- The exporter child ----

/// `--serve-exporter`: the first stdin line is an [`ExporterSpec`]; then commands until stdin
/// closes: `refresh` (every foundation at once; one [`Refreshed`] each), `advance SECS` (the
/// exporter's clock), `serve` (starts `/metrics`; its URL), `has I GUID` (the key is published).
pub fn serve_exporter() {
    runtime().block_on(async {
        let mut lines = stdin_lines();
        let spec: ExporterSpec =
            serde_json::from_str(&lines.recv().await.expect("spec")).expect("spec");
        let clock = Arc::new(ManualClock::starting_now());
        let store = Arc::new(Store::new());
        let metrics = Arc::new(ExporterMetrics::default());
        let owners = if spec.owners {
            config::metadata_labels("--metadata-labels", &["team".into()]).expect("labels")
        } else {
            Vec::new()
        };
        let configs: Vec<FoundationConfig> = spec
            .apis
            .iter()
            .enumerate()
            .map(|(i, api)| {
                let url = Url::parse(api).expect("api url");
                let mut config =
                    DemoTarget::new(&url, &Accounts::default()).foundation(&foundation_name(i));
                config.refresh_interval = Duration::from_secs(300);
                config.full_refresh_interval = Duration::from_secs(24 * 3600);
                config.details_concurrency =
                    NonZeroUsize::new(spec.concurrency).expect("concurrency > 0");
                config.metadata_labels = owners.clone();
                config
            })
            .collect();
        // As `run` opens it: before the first refresh (a fresh file: nothing to seed).
        let cache = spec.cache.as_ref().map(|path| {
            let _ = std::fs::remove_file(path);
            Arc::new(Cache::open(Path::new(path), &configs, &store))
        });
        // As `run` has them follow the store: the metrics render each published snapshot, the
        // cache file is rewritten when a refresh published new keys.
        let followers = CancellationToken::new();
        tokio::spawn(metrics.clone().follow(store.clone(), followers.clone()));
        if let Some(cache) = &cache {
            tokio::spawn(cache.clone().follow(store.clone(), followers.clone()));
        }
        let refreshers: Vec<Arc<Refresher>> = configs
            .into_iter()
            .map(|config| {
                store.register(&config.name);
                let telemetry = metrics.recorder(&config.name);
                let refresher = Refresher::new(config, store.clone(), telemetry)
                    .expect("refresher")
                    .with_clock(clock.clone());
                Arc::new(refresher)
            })
            .collect();
        reply("ready");
        let mut servers = Vec::new();
        while let Some(line) = lines.recv().await {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["refresh"] => {
                    // Each refresh in its own task, as the supervisor runs them: all at once.
                    let tasks: Vec<_> = refreshers
                        .iter()
                        .map(|r| {
                            let r = r.clone();
                            tokio::spawn(async move {
                                let start = Instant::now();
                                let outcome = r.refresh().await;
                                Refreshed::from_outcome(start.elapsed(), &outcome)
                            })
                        })
                        .collect();
                    let mut out = Vec::with_capacity(tasks.len());
                    for task in tasks {
                        out.push(task.await.expect("refresh task"));
                    }
                    reply(serde_json::to_string(&out).expect("json"));
                }
                ["advance", secs] => {
                    clock.advance(Duration::from_secs(secs.parse().expect("seconds")));
                    reply("ok");
                }
                // As `cf_service_key_exporter::run` serves it.
                ["serve"] => {
                    let app = server::router(AppState::new(
                        metrics.exposition(store.clone()),
                        store.clone(),
                        vec![],
                    ));
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let addr = listener.local_addr().expect("addr");
                    servers.push(tokio::spawn(server::serve(
                        listener,
                        app,
                        std::future::pending(),
                    )));
                    reply(format!("http://{addr}/metrics"));
                }
                ["has", i, guid] => {
                    let name = foundation_name(i.parse().expect("index"));
                    let found = store.foundation(&name).is_some_and(|f| {
                        f.keys.iter().any(|k| &*k.labels.service_key_guid == *guid)
                    });
                    reply(found);
                }
                ["quit"] => break,
                other => reply(format!("unknown command {other:?}")),
            }
        }
        servers.iter().for_each(|s| s.abort());
        if let Some(path) = &spec.cache {
            let _ = std::fs::remove_file(path);
        }
    });
}

/// The parent's handle on an exporter child.
pub struct ExporterProcess {
    pub process: ChildProcess,
}

impl ExporterProcess {
    pub fn start(spec: &ExporterSpec) -> ExporterProcess {
        let mut process = ChildProcess::spawn(&["--serve-exporter".into()]);
        let answer = process.command(&serde_json::to_string(spec).expect("json"));
        assert_eq!(answer, "ready");
        ExporterProcess { process }
    }

    /// Refreshes every foundation at once.
    pub fn refresh(&mut self) -> Vec<Refreshed> {
        serde_json::from_str(&self.process.command("refresh")).expect("refresh answer")
    }

    pub fn serve(&mut self) -> String {
        self.process.command("serve")
    }

    pub fn has(&mut self, i: usize, guid: &str) -> bool {
        self.process.command(&format!("has {i} {guid}")) == "true"
    }
}

// ---- /proc ----

/// A `/proc/<pid>/status` field in KiB (0 if unreadable).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of a process, every thread (`/proc/<pid>/stat`, at the usual 100
/// clock ticks a second).
pub fn cpu_secs(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses: utime and stime are
            // the 14th and 15th fields of the line, the 12th and 13th after the name.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}
