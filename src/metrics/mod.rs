//! The Prometheus side: the exporter's own counters, and the exposition of the current
//! [`Snapshot`] at scrape time.
//!
//! Per-key series are not stored as metric objects: each published foundation snapshot is
//! rendered once ([`keys::Rendered`]), right after it is published ([`ExporterMetrics::follow`]
//! follows the store) or else by the first scrape that sees it, and a key deleted from Cloud
//! Foundry simply is not in the next snapshot. A scrape ([`Exposition::scrape`]) is a list
//! of shared byte blocks plus the values of `cf_service_key_expiry_seconds`, computed against
//! the scrape's own clock and written as the body streams out, so concurrent scrapes share the
//! rendered text instead of each building its own copy. No I/O on this path.

pub mod keys;

use std::collections::HashMap;
use std::convert::Infallible;
use std::ops::Range;
use std::sync::{Arc, Mutex, Weak};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::clock::{unix_seconds_f64, Clock, SystemClock};
use crate::snapshot::{FoundationSnapshot, Snapshot, Store};
use crate::vocab::{ApiEvent, RateLimit, Reason, Telemetry};
use keys::{Family, Rendered};

/// The exposition format of one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text, which Prometheus asks for (and the official client writes).
    OpenMetrics,
    /// The classic Prometheus text format (0.0.4), for every other reader.
    Text,
}

impl Format {
    /// OpenMetrics when the `Accept` header asks for it, the classic text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Turns the OpenMetrics text the client library writes into the classic Prometheus text
/// format (0.0.4): a counter's `# HELP`/`# TYPE` name carries its `_total` suffix there, and
/// there is no `# EOF`. Every other line is the same in both formats.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    foundation: String,
    endpoint: &'static str,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetailsErrorLabels {
    foundation: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    config: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FoundationLabel {
    foundation: String,
}

/// The exporter's own live metrics (counters, and the rate limit as Cloud Foundry last
/// announced it), registered once.
#[derive(Debug, Default)]
pub struct ExporterMetrics {
    api_requests: MetricFamily<ApiLabels, Counter>,
    details_errors: MetricFamily<DetailsErrorLabels, Counter>,
    ratelimit_limit: MetricFamily<FoundationLabel, Gauge>,
    ratelimit_remaining: MetricFamily<FoundationLabel, Gauge>,
    ratelimit_reset: MetricFamily<FoundationLabel, Gauge>,
    config_reload_failures: MetricFamily<ReloadLabels, Counter>,
    /// Per foundation, its `api_requests_total` counters by endpoint and code: a request finds
    /// its counter there without building a label set, and [`ExporterMetrics::forget`] finds
    /// the series to remove (the client's families cannot be listed).
    api_series: Mutex<HashMap<String, Arc<Mutex<ApiSeries>>>>,
    /// The rendered per-key series of each foundation, with the snapshot they were rendered
    /// from: reused while that snapshot is the published one.
    rendered: Mutex<RenderCache>,
    /// The status families of the snapshot last scraped, kept while that snapshot is the
    /// published one (a `Weak`: it holds no snapshot, and its address is not reused meanwhile).
    status: Mutex<Option<(Weak<Snapshot>, Bytes)>>,
}

/// Endpoint → the codes counted for it, each with its counter.
type ApiSeries = HashMap<&'static str, Vec<(String, Counter)>>;

/// Per foundation: the snapshot last rendered, and its rendering.
type RenderCache = HashMap<String, (Arc<FoundationSnapshot>, Arc<Rendered>)>;

impl ExporterMetrics {
    /// Registers the live metrics beside the store's snapshot: what `/metrics` serves.
    pub fn exposition(self: &Arc<Self>, store: Arc<Store>) -> Exposition {
        let mut live = Registry::default();
        live.register(
            "cf_service_key_exporter_api_requests",
            "Requests sent to Cloud Foundry and UAA, by route template and HTTP status (`error` when no response came)",
            self.api_requests.clone(),
        );
        live.register(
            "cf_service_key_exporter_details_errors",
            "Attempts to fetch or read a service key's details that failed, by reason",
            self.details_errors.clone(),
        );
        live.register(
            "cf_service_key_exporter_ratelimit_limit",
            "The last X-RateLimit-Limit Cloud Foundry sent: requests allowed per window",
            self.ratelimit_limit.clone(),
        );
        live.register(
            "cf_service_key_exporter_ratelimit_remaining",
            "The last X-RateLimit-Remaining Cloud Foundry sent (floored to tenths of the limit)",
            self.ratelimit_remaining.clone(),
        );
        live.register(
            "cf_service_key_exporter_ratelimit_reset_timestamp_seconds",
            "The last X-RateLimit-Reset Cloud Foundry sent: Unix time at which the window resets",
            self.ratelimit_reset.clone(),
        );
        live.register(
            "cf_service_key_exporter_config_reload_failures",
            "Reloads refused, keeping the running configuration: config=\"file\" the --config file (SIGHUP), config=\"web\" the --web-config-file",
            self.config_reload_failures.clone(),
        );
        Exposition {
            live,
            store,
            clock: Arc::new(SystemClock),
            metrics: self.clone(),
        }
    }

    /// The counter of refused reloads of one configuration (`"file"`: `--config`; `"web"`:
    /// `--web-config-file`), created at zero so the series exists before the first failure.
    pub fn reload_failures(&self, config: &'static str) -> Counter {
        self.config_reload_failures
            .get_or_create(&ReloadLabels { config })
            .clone()
    }

    /// Follows the store until `stop`: renders each published snapshot at once, off the async
    /// workers (CPU work: docs/performance.md), so no scrape waits for it.
    pub fn follow(
        self: Arc<Self>,
        store: Arc<Store>,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut changes = store.subscribe();
        async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                let (metrics, snapshot) = (self.clone(), store.load());
                let rendered = tokio::task::spawn_blocking(move || {
                    metrics.rendered_for(&snapshot);
                });
                if let Err(e) = rendered.await {
                    tracing::error!(error = %e, "rendering the metrics failed");
                }
            }
        }
    }

    /// Each foundation's rendered series, rendering what changed and forgetting foundations
    /// that are gone. The one decision of "changed or not": a foundation's rendering is kept
    /// while its snapshot is the one rendered, or one with the same series (most refreshes:
    /// nothing changed, or only when keys were read). Otherwise the old rendering is dropped
    /// before the new one is built, under the lock: never two renderings of a foundation, and
    /// concurrent scrapes of a snapshot nobody has rendered yet wait for one rendering instead
    /// of each making its own.
    fn rendered_for(&self, snapshot: &Snapshot) -> Vec<Arc<Rendered>> {
        let mut cache = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|name, _| snapshot.foundations.contains_key(name));
        let mut out = Vec::with_capacity(snapshot.foundations.len());
        for (name, f) in &snapshot.foundations {
            if let Some((seen, rendered)) = cache.get_mut(name) {
                if Arc::ptr_eq(seen, f) || keys::same_series(seen, f) {
                    *seen = f.clone();
                    out.push(rendered.clone());
                    continue;
                }
            }
            cache.remove(name);
            let rendered = Arc::new(Rendered::new(name, f));
            cache.insert(name.clone(), (f.clone(), rendered.clone()));
            out.push(rendered);
        }
        out
    }

    /// The status families of `snapshot`: encoded once per published snapshot, then copied.
    fn status_for(&self, snapshot: &Arc<Snapshot>) -> Bytes {
        let mut cached = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((seen, text)) if std::ptr::eq(seen.as_ptr(), Arc::as_ptr(snapshot)) => text.clone(),
            _ => {
                let text = Bytes::from(status_text(snapshot));
                *cached = Some((Arc::downgrade(snapshot), text.clone()));
                text
            }
        }
    }

    /// A handle that counts one foundation's requests; also creates the foundation's
    /// `details_errors_total` series at 0, one per reason, so `increase()` sees the first error.
    pub fn recorder(self: &Arc<Self>, foundation: &str) -> Arc<ApiRecorder> {
        for reason in Reason::ALL {
            // `inc_by(0)` only to create the series; the guard is dropped at once.
            self.details_errors
                .get_or_create(&DetailsErrorLabels {
                    foundation: foundation.to_owned(),
                    reason: reason.as_str(),
                })
                .inc_by(0);
        }
        // A restarted refresher of the same foundation keeps counting the same series.
        let series = self
            .api_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(foundation.to_owned())
            .or_default()
            .clone();
        Arc::new(ApiRecorder {
            metrics: self.clone(),
            foundation: foundation.to_owned(),
            series,
        })
    }

    /// Removes every series of a foundation that is no longer watched (a reload removed it):
    /// its request and error counters and its rate-limit gauges. Call it once its refresher
    /// has stopped, so nothing counts for it again.
    pub fn forget(&self, foundation: &str) {
        let label = FoundationLabel {
            foundation: foundation.to_owned(),
        };
        self.ratelimit_limit.remove(&label);
        self.ratelimit_remaining.remove(&label);
        self.ratelimit_reset.remove(&label);
        for reason in Reason::ALL {
            self.details_errors.remove(&DetailsErrorLabels {
                foundation: foundation.to_owned(),
                reason: reason.as_str(),
            });
        }
        let series = self
            .api_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(foundation);
        let Some(series) = series else { return };
        let series = std::mem::take(&mut *series.lock().unwrap_or_else(|e| e.into_inner()));
        for (endpoint, codes) in series {
            for (code, _) in codes {
                self.api_requests.remove(&ApiLabels {
                    foundation: foundation.to_owned(),
                    endpoint,
                    code,
                });
            }
        }
    }

    /// Counts one failed attempt to fetch or read a key's details.
    pub fn details_error(&self, foundation: &str, reason: Reason) {
        self.details_errors
            .get_or_create(&DetailsErrorLabels {
                foundation: foundation.to_owned(),
                reason: reason.as_str(),
            })
            .inc();
    }
}

/// Counts the requests of one foundation in `api_requests_total`.
#[derive(Debug, Clone)]
pub struct ApiRecorder {
    metrics: Arc<ExporterMetrics>,
    foundation: String,
    /// The series counted for this foundation (shared with [`ExporterMetrics`]).
    series: Arc<Mutex<ApiSeries>>,
}

impl ApiRecorder {
    fn request(&self, endpoint: &'static str, code: &str) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let codes = series.entry(endpoint).or_default();
        // A handful of codes per endpoint: a scan beats hashing.
        match codes.iter().find(|(c, _)| c == code) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                let counter = self
                    .metrics
                    .api_requests
                    .get_or_create(&ApiLabels {
                        foundation: self.foundation.clone(),
                        endpoint,
                        code: code.to_owned(),
                    })
                    .clone();
                counter.inc();
                codes.push((code.to_owned(), counter));
            }
        }
    }

    /// Records the rate limit an answer announced.
    fn rate_limit(&self, rate: RateLimit) {
        let label = FoundationLabel {
            foundation: self.foundation.clone(),
        };
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let m = &self.metrics;
        m.ratelimit_limit
            .get_or_create(&label)
            .set(as_i64(rate.limit));
        m.ratelimit_remaining
            .get_or_create(&label)
            .set(as_i64(rate.remaining));
        m.ratelimit_reset.get_or_create(&label).set(rate.reset);
    }
}

impl Telemetry for ApiRecorder {
    fn record(&self, event: ApiEvent<'_>) {
        match event {
            ApiEvent::Request { endpoint, code } => self.request(endpoint, code),
            ApiEvent::RateLimit(rate) => self.rate_limit(rate),
            ApiEvent::DetailsError(reason) => self.metrics.details_error(&self.foundation, reason),
        }
    }
}

/// What `/metrics` serves: the live metrics (a few series, the only ones whose names differ
/// between the two formats) and the store's snapshot (gauges only, the same text in both).
#[derive(Debug)]
pub struct Exposition {
    live: Registry,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    /// Holds the renderings (shared with [`ExporterMetrics::follow`], which renders ahead).
    metrics: Arc<ExporterMetrics>,
}

/// One scrape's body: shared blocks, and the countdown values written as it streams.
#[derive(Debug)]
pub struct Scrape {
    parts: Vec<Part>,
    /// The scrape's clock, Unix seconds.
    now: f64,
}

#[derive(Debug)]
enum Part {
    Text(Bytes),
    /// Lines of a family written at the scrape, for a range of a foundation's keys.
    Valued(Arc<Rendered>, Family, Range<usize>),
}

/// Keys whose lines are written per chunk of a streamed body.
const CHUNK_KEYS: usize = 2048;

impl Exposition {
    /// Reads the scrape's clock from `clock` (tests and benchmarks).
    #[cfg(any(test, feature = "testing"))]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The body of one scrape in `format`. Renders the per-key series of a foundation whose
    /// snapshot is new (CPU work: call it off the async workers); everything else is shared.
    pub fn scrape(&self, format: Format) -> Scrape {
        let snapshot = self.store.load();
        let rendered = self.metrics.rendered_for(&snapshot);
        let mut live = String::new();
        prometheus_client::encoding::text::encode_registry(&mut live, &self.live)
            .expect("encoding into a String cannot fail");
        let live = match format {
            Format::OpenMetrics => live,
            Format::Text => to_prometheus_text(&live),
        };
        let mut scrape = Scrape {
            parts: vec![Part::Text(Bytes::from(live))],
            now: unix_seconds_f64(self.clock.now()),
        };
        scrape.add_key_families(&rendered);
        scrape
            .parts
            .push(Part::Text(self.metrics.status_for(&snapshot)));
        if format == Format::OpenMetrics {
            scrape
                .parts
                .push(Part::Text(Bytes::from_static(b"# EOF\n")));
        }
        scrape
    }

    /// Every metric in `format`, as one string (tests, the report of a benchmark).
    #[cfg(any(test, feature = "testing"))]
    pub fn encode(&self, format: Format) -> String {
        self.scrape(format).into_string()
    }
}

impl Scrape {
    fn add_key_families(&mut self, foundations: &[Arc<Rendered>]) {
        for family in Family::ALL {
            // A family without samples is left out entirely, as Prometheus' own clients do.
            if !foundations.iter().any(|r| r.has(family)) {
                continue;
            }
            self.parts
                .push(Part::Text(Bytes::from(family.descriptor())));
            for rendered in foundations {
                if family.carries_text() {
                    self.parts.push(Part::Text(rendered.block(family)));
                    continue;
                }
                let len = rendered.keys();
                for start in (0..len).step_by(CHUNK_KEYS) {
                    let end = (start + CHUNK_KEYS).min(len);
                    self.parts
                        .push(Part::Valued(rendered.clone(), family, start..end));
                }
            }
        }
    }

    /// A part's bytes. Valued chunks are written into `buf` and split off it: once the
    /// previous chunk has been sent and dropped, `reserve` reuses its memory, so a scrape
    /// writes its values into one buffer instead of faulting in fresh pages for every chunk.
    fn render(part: Part, now: f64, buf: &mut BytesMut) -> Bytes {
        match part {
            Part::Text(bytes) => bytes,
            Part::Valued(rendered, family, keys) => {
                buf.reserve(keys.len() * keys::LINE_CAPACITY);
                rendered.write(family, keys, now, buf);
                buf.split().freeze()
            }
        }
    }

    /// The body as a stream of chunks: shared blocks as they are, countdown values written
    /// chunk by chunk as the client reads, so no scrape holds a copy of the whole body.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        let now = self.now;
        let mut buf = BytesMut::new();
        futures::stream::iter(
            self.parts
                .into_iter()
                .map(move |part| Ok(Scrape::render(part, now, &mut buf))),
        )
    }

    /// The whole body in one string.
    #[cfg(any(test, feature = "testing"))]
    pub fn into_string(self) -> String {
        let now = self.now;
        let (mut out, mut buf) = (Vec::new(), BytesMut::new());
        for part in self.parts {
            out.extend_from_slice(&Scrape::render(part, now, &mut buf));
        }
        String::from_utf8(out).expect("the exposition is UTF-8")
    }
}

/// Per-foundation refresh status and the build info (a few series, encoded once per published
/// snapshot).
fn status_text(snapshot: &Arc<Snapshot>) -> String {
    #[derive(Debug)]
    struct Status<'a>(&'a Snapshot);
    impl Status<'_> {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let per_foundation = |encoder: &mut DescriptorEncoder,
                                  name: &str,
                                  help: &str,
                                  value: &dyn Fn(&FoundationSnapshot) -> f64|
             -> std::fmt::Result {
                let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for (foundation, f) in &self.0.foundations {
                    ConstGauge::new(value(f))
                        .encode(m.encode_family(&[("foundation", foundation.as_str())])?)?;
                }
                Ok(())
            };
            per_foundation(
                &mut encoder,
                "cf_service_key_exporter_refresh_success",
                "1 if the last refresh of the foundation completed, else 0",
                &|f| if f.status.success { 1.0 } else { 0.0 },
            )?;
            per_foundation(
                &mut encoder,
                "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
                "Unix time at which a refresh of the foundation last completed (0: never)",
                &|f| f.status.last_success_at.map_or(0.0, unix_seconds_f64),
            )?;
            per_foundation(
                &mut encoder,
                "cf_service_key_exporter_refresh_duration_seconds",
                "How long the last refresh of the foundation took",
                &|f| f.status.last_duration.map_or(0.0, |d| d.as_secs_f64()),
            )?;
            per_foundation(
                &mut encoder,
                "cf_service_key_exporter_service_keys",
                "Service keys currently known in the foundation",
                &|f| f.keys.len() as f64,
            )?;
            let mut m = encoder.encode_descriptor(
                "cf_service_key_exporter_build_info",
                "Build of the exporter; always 1",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(1i64)
                .encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)
        }
    }
    // The encoder is only handed out through a registry, which wants an owned collector.
    #[derive(Debug)]
    struct Owned(Arc<Snapshot>);
    impl Collector for Owned {
        fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
            Status(&self.0).encode(encoder)
        }
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Owned(snapshot.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)
        .expect("encoding into a String cannot fail");
    out
}

/// An exposition of `store` alone (no live metrics) at `clock`: see
/// [`crate::testing::encode_snapshot_at`].
#[cfg(any(test, feature = "testing"))]
pub(crate) fn snapshot_only(store: Arc<Store>, clock: Arc<dyn Clock>) -> Exposition {
    Exposition {
        live: Registry::default(),
        store,
        clock,
        metrics: Arc::new(ExporterMetrics::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total_and_has_no_eof() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"# TYPE y\"} 1\n# HELP g A gauge.\n# TYPE g gauge\ng 2.0\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"# TYPE y\"} 1\n# HELP g A gauge.\n# TYPE g gauge\ng 2.0\n"
        );
    }

    #[test]
    fn a_forgotten_foundation_leaves_no_series_and_the_others_keep_theirs() {
        let metrics = Arc::new(ExporterMetrics::default());
        let exposition = metrics.exposition(Arc::new(Store::new()));
        for name in ["gone", "kept"] {
            let recorder = metrics.recorder(name);
            for (endpoint, code) in [
                ("/v3/service_instances", "200"),
                ("/v3/service_instances", "429"),
                ("/oauth/token", "error"),
            ] {
                recorder.record(ApiEvent::Request { endpoint, code });
            }
            recorder.record(ApiEvent::RateLimit(RateLimit {
                limit: 2_000,
                remaining: 1_800,
                reset: 1_750_000_000,
            }));
            metrics.details_error(name, Reason::Timeout);
        }
        metrics.forget("gone");
        let text = exposition.encode(Format::Text);
        assert!(!text.contains("foundation=\"gone\""), "{text}");
        let reasons = Reason::ALL.len();
        // Three request series, three rate-limit gauges, every error reason.
        assert_eq!(
            text.matches("foundation=\"kept\"").count(),
            3 + 3 + reasons,
            "{text}"
        );
        // Counted again from zero if a reload brings it back.
        metrics.recorder("gone").request("/oauth/token", "200");
        let text = exposition.encode(Format::Text);
        assert!(text.contains(
            "cf_service_key_exporter_api_requests_total{foundation=\"gone\",endpoint=\"/oauth/token\",code=\"200\"} 1"
        ), "{text}");
    }

    #[test]
    fn openmetrics_only_when_asked() {
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }
}
