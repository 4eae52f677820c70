//! Shared test harness: a simulated foundation, a refresher the test drives step by step, and
//! the exporter's real HTTP server on a loopback port, scraped over HTTP and parsed with an
//! OpenMetrics parser.

pub mod logs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use cf_service_key_exporter::config::{Config, DemoTarget, FoundationConfig};
use cf_service_key_exporter::metrics::ExporterMetrics;
use cf_service_key_exporter::refresher::{RefreshOutcome, RefreshStats, Refresher};
use cf_service_key_exporter::server::{self, AppState};
use cf_service_key_exporter::snapshot::Store;
use cf_service_key_exporter::testing::ManualClock;
use cf_service_key_exporter::{run, ServeOptions};
use cf_sim::{Accounts, Sim, World};
use tokio_util::sync::CancellationToken;

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` answer.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub series: Vec<Series>,
    /// Metric family name → type, as declared by `# TYPE`.
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses OpenMetrics text with a real exposition-format parser; panics on invalid input.
    pub fn parse(text: String) -> Scrape {
        let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("invalid exposition: {e:?}\n{text}"));
        let mut series = Vec::new();
        let mut types = BTreeMap::new();
        for (family_name, family) in &exposition.families {
            types.insert(
                family_name.clone(),
                format!("{:?}", family.family_type).to_lowercase(),
            );
            for sample in family.iter_samples() {
                let labels: BTreeMap<String, String> = sample
                    .get_labelset()
                    .expect("a parsed sample belongs to its family")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let (name, value) = match &sample.value {
                    openmetrics_parser::OpenMetricsValue::Gauge(v) => {
                        (family_name.clone(), v.as_f64())
                    }
                    openmetrics_parser::OpenMetricsValue::Counter(c) => {
                        (format!("{family_name}_total"), c.value.as_f64())
                    }
                    other => panic!("unexpected metric value {other:?} in {family_name}"),
                };
                series.push(Series {
                    name,
                    labels,
                    value,
                });
            }
        }
        Scrape {
            text,
            series,
            types,
        }
    }

    /// Every series of a metric.
    pub fn all(&self, name: &str) -> Vec<&Series> {
        self.series.iter().filter(|s| s.name == name).collect()
    }

    /// The series of `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Series> {
        self.all(name)
            .into_iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one series matching; panics if there is not exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(
            found.len(),
            1,
            "expected one {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }

    /// The value for a service key by name.
    pub fn key_value(&self, name: &str, key: &str) -> Option<f64> {
        let found = self.find(name, &[("service_key", key)]);
        assert!(found.len() <= 1, "several {name} for key {key}: {found:?}");
        found.first().map(|s| s.value)
    }
}

/// Scrapes `url` as Prometheus does (asking for OpenMetrics) and parses the answer.
pub async fn scrape(client: &reqwest::Client, url: &str) -> Scrape {
    let response = client
        .get(url)
        .header("accept", OPENMETRICS_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    Scrape::parse(response.text().await.unwrap())
}

/// A simulated foundation, a refresher for it, and the exporter's HTTP server.
pub struct Harness {
    pub sim: Sim,
    pub refresher: Refresher,
    /// The refresher's wall clock: starts at the real time and moves only when a test says, or
    /// when the transport waits on it (a `Retry-After`: see `ManualClock`).
    pub clock: Arc<ManualClock>,
    pub store: Arc<Store>,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    cancel: CancellationToken,
}

impl Harness {
    pub async fn new(world: World) -> Harness {
        Harness::with(world, Accounts::default(), |_| {}).await
    }

    /// A harness whose foundation config `tweak` may change.
    pub async fn with(
        world: World,
        accounts: Accounts,
        tweak: impl FnOnce(&mut FoundationConfig),
    ) -> Harness {
        Harness::build(world, accounts, tweak, false).await
    }

    /// A harness whose refresher reads the system clock, so its rate-limit waits take real
    /// time (`clock` then moves nothing): for the few tests whose behaviour is a real pause.
    pub async fn on_system_clock(
        world: World,
        tweak: impl FnOnce(&mut FoundationConfig),
    ) -> Harness {
        Harness::build(world, Accounts::default(), tweak, true).await
    }

    async fn build(
        world: World,
        accounts: Accounts,
        tweak: impl FnOnce(&mut FoundationConfig),
        system_clock: bool,
    ) -> Harness {
        let sim = Sim::start(world, accounts).await.expect("simulator starts");
        let mut config = DemoTarget::from(&sim).foundation("test");
        tweak(&mut config);
        let store = Arc::new(Store::new());
        let metrics = Arc::new(ExporterMetrics::default());
        store.register(&config.name);
        let clock = Arc::new(ManualClock::starting_now());
        let telemetry = metrics.recorder(&config.name);
        let refresher = Refresher::new(config, store.clone(), telemetry).expect("refresher");
        let refresher = if system_clock {
            refresher
        } else {
            refresher.with_clock(clock.clone())
        };
        let app = server::router(AppState::new(
            metrics.exposition(store.clone()),
            store.clone(),
            vec![],
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            server::serve(listener, app, async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        Harness {
            sim,
            refresher,
            clock,
            store,
            addr,
            client: reqwest::Client::new(),
            cancel,
        }
    }

    /// One refresh; what it did (see [`Harness::refresh_outcome`] for how it went).
    pub async fn refresh(&self) -> RefreshStats {
        self.refresher.refresh().await.stats
    }

    pub async fn refresh_outcome(&self) -> RefreshOutcome {
        self.refresher.refresh().await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap()
    }

    /// Scrapes as Prometheus does, asking for OpenMetrics.
    pub async fn scrape(&self) -> Scrape {
        scrape(&self.client, &format!("http://{}/metrics", self.addr)).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The `Accept` header Prometheus sends.
pub const OPENMETRICS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The exporter as `run` serves it (what `main` runs), on a loopback port.
pub struct Served {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    /// Serves `config` with `options`.
    pub async fn start(config: Config, options: ServeOptions) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(run(config, listener, options, async move {
            let _ = stopped.await;
        }));
        Served {
            addr,
            stop: Some(stop),
            served,
        }
    }

    /// Stops the server and checks that it shut down cleanly within `patience`.
    pub async fn shutdown(mut self, patience: std::time::Duration) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(patience, &mut self.served)
            .await
            .expect("the server stops")
            .unwrap()
            .expect("the server ends without error");
    }
}

/// The configuration of one foundation `name` of `sim`, with the cache file `cache_file`.
pub fn one_foundation(sim: &Sim, name: &str, cache_file: Option<std::path::PathBuf>) -> Config {
    Config {
        foundations: vec![DemoTarget::from(sim).foundation(name)],
        file: None,
        cache_file,
    }
}

/// The golden exposition (tests/golden/metrics.txt, which tests/it/golden.rs keeps equal to the
/// exporter's): the one pin of the metric contract's names, types and labels.
pub fn golden() -> Scrape {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/metrics.txt");
    Scrape::parse(std::fs::read_to_string(path).expect("tests/golden/metrics.txt"))
}

impl Scrape {
    /// The label names of `name`'s series: one set, else a panic (the golden's families each have
    /// one).
    pub fn label_names(&self, name: &str) -> std::collections::BTreeSet<&str> {
        let mut sets = self
            .all(name)
            .into_iter()
            .map(|s| s.labels.keys().map(String::as_str).collect())
            .collect::<std::collections::BTreeSet<std::collections::BTreeSet<&str>>>()
            .into_iter();
        let one = sets.next().unwrap_or_else(|| panic!("{name}: no series"));
        assert!(
            sets.next().is_none(),
            "{name}: series of several label sets"
        );
        one
    }
}

/// The credentials of a simulated key valid for the year up to `expires_at`.
pub fn year_key(
    shape: cf_sim::credentials::Shape,
    expires_at: time::OffsetDateTime,
    secret: &str,
) -> Result<serde_json::Value, cf_sim::credentials::CredentialsError> {
    cf_sim::credentials::credentials(
        shape,
        expires_at - time::Duration::days(365),
        expires_at,
        secret,
    )
}

/// The demo foundation without its planted `/details` failures (for tests about other things).
pub fn clean_demo(now: time::OffsetDateTime) -> World {
    let mut w = cf_sim::demo::world(now).expect("the demo world builds");
    w.clear_details_failures();
    w
}

/// The real binary with `args`, without the caller's CF_*, logging and tuning variables (every
/// flag also reads one), so a developer's environment cannot change what a test sees.
pub fn exporter(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"));
    command.args(args);
    for (var, _) in std::env::vars() {
        let tuning = [
            "RUST_LOG",
            "CONFIG_FILE",
            "NO_COLOR",
            "LOG_FORMAT",
            "REFRESH_INTERVAL",
            "FULL_REFRESH_INTERVAL",
            "METADATA_LABELS",
            "LEAD_TIME_ANNOTATION",
            "CACHE_FILE",
            "DETAILS_CONCURRENCY",
            "WEB_MAX_REQUESTS",
        ];
        if var.starts_with("CF_") || tuning.contains(&var.as_str()) {
            command.env_remove(var);
        }
    }
    command
}
