//! The Prometheus side: the exporter's own counters and the collector that renders the current
//! [`Snapshot`] at scrape time.
//!
//! Per-key series are not stored as metric objects: [`SnapshotCollector`] walks the snapshot on
//! each scrape, so a key deleted from Cloud Foundry simply is not encoded next time, and
//! `cf_service_key_expiry_seconds` is computed against the scrape's own clock. No I/O and no
//! locks on this path beyond the counters' own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::expiry::SOURCE_NONE;
use crate::snapshot::{KeyRecord, Snapshot, Store};

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

/// Every `reason` of `details_errors_total` (fetch failures from `CfError::reason`, read
/// failures from `ReadError::reason`), created at 0 for each foundation so `increase()` sees the
/// first error and dashboards have a series from the start.
pub const DETAILS_ERROR_REASONS: [&str; 13] = [
    "not_found",
    "forbidden",
    "unauthorized",
    "http_4xx",
    "http_5xx",
    "rate_limited",
    "timeout",
    "connection",
    "invalid_json",
    "body_too_large",
    "login",
    "invalid_certificate",
    "invalid_date",
];

/// The exporter's own counters, registered once.
#[derive(Debug, Default)]
pub struct ExporterMetrics {
    api_requests: Family<ApiLabels, Counter>,
    /// Every request of every foundation, for progress lines.
    requests_sent: std::sync::atomic::AtomicU64,
    details_errors: Family<DetailsErrorLabels, Counter>,
}

impl ExporterMetrics {
    /// Registers the counters and the snapshot collector: what `/metrics` serves.
    pub fn exposition(self: &Arc<Self>, store: Arc<Store>) -> Exposition {
        let mut counters = Registry::default();
        counters.register(
            "cf_service_key_exporter_api_requests",
            "Requests sent to Cloud Foundry and UAA, by route template and HTTP status (`error` when no response came)",
            self.api_requests.clone(),
        );
        counters.register(
            "cf_service_key_exporter_details_errors",
            "Service keys whose details could not be fetched or read, by reason",
            self.details_errors.clone(),
        );
        let mut snapshot = Registry::default();
        snapshot.register_collector(Box::new(SnapshotCollector { store }));
        Exposition {
            counters,
            snapshot,
            size_hint: AtomicUsize::new(0),
        }
    }

    /// A handle that counts one foundation's requests; also creates the foundation's
    /// `details_errors_total` series at 0.
    pub fn recorder(self: &Arc<Self>, foundation: &str) -> ApiRecorder {
        for reason in DETAILS_ERROR_REASONS {
            // `inc_by(0)` only to create the series; the guard is dropped at once.
            self.details_errors
                .get_or_create(&DetailsErrorLabels {
                    foundation: foundation.to_owned(),
                    reason,
                })
                .inc_by(0);
        }
        ApiRecorder {
            metrics: self.clone(),
            foundation: foundation.to_owned(),
            sent: Default::default(),
        }
    }

    /// Requests sent to every foundation since start.
    pub fn requests_sent(&self) -> u64 {
        self.requests_sent.load(Ordering::Relaxed)
    }

    /// Counts one key whose details could not be fetched or read.
    pub fn details_error(&self, foundation: &str, reason: &'static str) {
        self.details_errors
            .get_or_create(&DetailsErrorLabels {
                foundation: foundation.to_owned(),
                reason,
            })
            .inc();
    }
}

/// Counts the requests of one foundation in `api_requests_total`.
#[derive(Debug, Clone)]
pub struct ApiRecorder {
    metrics: Arc<ExporterMetrics>,
    foundation: String,
    /// Requests sent by this foundation since start, for the refresh log line.
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl ApiRecorder {
    pub fn request(&self, endpoint: &'static str, code: &str) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.metrics.requests_sent.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .api_requests
            .get_or_create(&ApiLabels {
                foundation: self.foundation.clone(),
                endpoint,
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn foundation(&self) -> &str {
        &self.foundation
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// What `/metrics` serves, in two registries: the counters (a few series, the only ones whose
/// names differ between the two formats) and the snapshot collector (gauges only, the same text
/// in both formats). So the classic format rewrites a few lines and never copies the large
/// per-key part.
#[derive(Debug)]
pub struct Exposition {
    counters: Registry,
    snapshot: Registry,
    /// The last exposition's size, so a large one is built without repeated reallocation.
    size_hint: AtomicUsize,
}

impl Exposition {
    /// Encodes every metric in `format`.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut counters = String::new();
        encode_registry(&mut counters, &self.counters)?;
        let mut out = String::with_capacity(self.size_hint.load(Ordering::Relaxed) + 1024);
        match format {
            Format::OpenMetrics => out.push_str(&counters),
            Format::Text => out.push_str(&to_prometheus_text(&counters)),
        }
        encode_registry(&mut out, &self.snapshot)?;
        if format == Format::OpenMetrics {
            encode_eof(&mut out)?;
        }
        self.size_hint.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }
}

/// Renders the current snapshot on each scrape.
#[derive(Debug)]
pub struct SnapshotCollector {
    store: Arc<Store>,
}

type KeyLabelSet<'a> = [(&'static str, &'a str); 8];

fn key_labels<'a>(foundation: &'a str, key: &'a KeyRecord) -> KeyLabelSet<'a> {
    let l = &key.labels;
    [
        ("foundation", foundation),
        ("org", &l.org),
        ("space", &l.space),
        ("service_offering", &l.service_offering),
        ("service_plan", &l.service_plan),
        ("service_instance", &l.service_instance),
        ("service_key", &l.service_key),
        ("service_key_guid", &l.service_key_guid),
    ]
}

fn gauge<'a>(
    encoder: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
) -> Result<prometheus_client::encoding::MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.store.load();
        let now = unix_seconds(SystemTime::now());
        encode_snapshot(&snapshot, now, &mut encoder)
    }
}

/// Encodes every series derived from `snapshot`, with `now` as the scrape's clock.
fn encode_snapshot(
    snapshot: &Snapshot,
    now: f64,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let any_key = snapshot.foundations.values().any(|f| !f.keys.is_empty());
    let with_expiry = || {
        snapshot.foundations.iter().flat_map(|(name, f)| {
            f.keys
                .iter()
                .filter_map(move |k| k.expiry.as_ref().map(|e| (name.as_str(), k, e)))
        })
    };

    // A family without samples is left out entirely, as Prometheus' own clients do.
    if with_expiry().next().is_some() {
        encode_expiry(encoder, now, with_expiry)?;
    }
    if any_key {
        let mut m = gauge(
            encoder,
            "cf_service_key_info",
            "One series per service key seen; expiry_source says where its expiry was read, or none",
        )?;
        for (foundation, f) in &snapshot.foundations {
            for key in f.keys.iter() {
                let source = key.expiry.as_ref().map_or(SOURCE_NONE, |e| e.source);
                let labels = (key_labels(foundation, key), [("expiry_source", source)]);
                ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
            }
        }
    }
    encode_status(snapshot, encoder)
}

fn encode_expiry<'a, I>(
    encoder: &mut DescriptorEncoder,
    now: f64,
    with_expiry: impl Fn() -> I,
) -> Result<(), std::fmt::Error>
where
    I: Iterator<Item = (&'a str, &'a KeyRecord, &'a crate::snapshot::KeyExpiry)>,
{
    let mut m = gauge(
        encoder,
        "cf_service_key_expiry_timestamp_seconds",
        "Unix time at which the service key's credentials stop being valid",
    )?;
    for (foundation, key, expiry) in with_expiry() {
        ConstGauge::new(expiry.expires_at as f64)
            .encode(m.encode_family(&key_labels(foundation, key))?)?;
    }

    let mut m = gauge(
        encoder,
        "cf_service_key_expiry_seconds",
        "Seconds from the scrape until the service key's credentials expire; negative once expired",
    )?;
    for (foundation, key, expiry) in with_expiry() {
        ConstGauge::new(expiry.expires_at as f64 - now)
            .encode(m.encode_family(&key_labels(foundation, key))?)?;
    }
    Ok(())
}

/// Per-foundation refresh status and the build info.
fn encode_status(
    snapshot: &Snapshot,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let per_foundation = |encoder: &mut DescriptorEncoder,
                          name: &str,
                          help: &str,
                          value: &dyn Fn(&crate::snapshot::FoundationSnapshot) -> f64|
     -> Result<(), std::fmt::Error> {
        let mut m = gauge(encoder, name, help)?;
        for (foundation, f) in &snapshot.foundations {
            ConstGauge::new(value(f))
                .encode(m.encode_family(&[("foundation", foundation.as_str())])?)?;
        }
        Ok(())
    };
    per_foundation(
        encoder,
        "cf_service_key_exporter_refresh_success",
        "1 if the last refresh of the foundation completed, else 0",
        &|f| if f.status.success { 1.0 } else { 0.0 },
    )?;
    per_foundation(
        encoder,
        "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
        "Unix time at which a refresh of the foundation last completed (0: never)",
        &|f| f.status.last_success_at.map_or(0.0, unix_seconds),
    )?;
    per_foundation(
        encoder,
        "cf_service_key_exporter_refresh_duration_seconds",
        "How long the last refresh of the foundation took",
        &|f| f.status.last_duration.map_or(0.0, |d| d.as_secs_f64()),
    )?;
    per_foundation(
        encoder,
        "cf_service_key_exporter_service_keys",
        "Service keys currently known in the foundation",
        &|f| f.keys.len() as f64,
    )?;

    let mut m = gauge(
        encoder,
        "cf_service_key_exporter_build_info",
        "Build of the exporter; always 1",
    )?;
    ConstGauge::new(1i64).encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
    Ok(())
}

/// Renders one snapshot alone at a fixed clock (golden tests and benchmarks).
pub fn encode_snapshot_at(snapshot: Snapshot, now: SystemTime) -> String {
    #[derive(Debug)]
    struct Fixed(Snapshot, f64);
    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_snapshot(&self.0, self.1, &mut encoder)
        }
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Fixed(snapshot, unix_seconds(now))));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("encoding into a String cannot fail");
    out
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
    fn openmetrics_only_when_asked() {
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }
}
