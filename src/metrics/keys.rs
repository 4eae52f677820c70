//! The per-key series of one foundation, rendered once per published snapshot.
//!
//! The label sets of 20,000 keys change only when a refresh publishes, so each snapshot is
//! rendered once. The families with extra labels (`info`, `read_error`, `owner_info`,
//! `successor_info`), and the rare `warning_lead_invalid`, are encoded with the official
//! client's text encoder, in one pass through one registry, and kept as finished text that
//! scrapes copy. The five families that carry only a key's labels and a number
//! (`expiry_timestamp_seconds`, `expiry_seconds`, `created_timestamp_seconds`,
//! `valid_from_timestamp_seconds`, `warning_lead_seconds`) share one label set per key, written
//! directly with the client's escaping ([`write_label_set`], tested against the client): a
//! scrape writes the name, that label set and the value, which for `expiry_seconds` moves with
//! the scrape's clock. One label set instead of four halves the memory a rendering holds. Pure
//! CPU work, no I/O.

use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::snapshot::{FoundationSnapshot, KeyLabels, KeyRecord, KEY_LABEL_COUNT};

/// A per-key family, in exposition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    ExpiryTimestamp,
    /// `cf_service_key_expiry_seconds`: the only value that moves with the scrape's clock.
    Countdown,
    Info,
    Created,
    ValidFrom,
    ReadError,
    Owner,
    /// The owner's lead time, where the annotation is valid.
    WarningLead,
    /// 1 where the nearest lead-time annotation is invalid.
    WarningLeadInvalid,
    /// 1 for a key that has a successor, naming it.
    Successor,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::ExpiryTimestamp,
        Family::Countdown,
        Family::Info,
        Family::Created,
        Family::ValidFrom,
        Family::ReadError,
        Family::Owner,
        Family::WarningLead,
        Family::WarningLeadInvalid,
        Family::Successor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::ExpiryTimestamp => "cf_service_key_expiry_timestamp_seconds",
            Family::Countdown => "cf_service_key_expiry_seconds",
            Family::Info => "cf_service_key_info",
            Family::Created => "cf_service_key_created_timestamp_seconds",
            Family::ValidFrom => "cf_service_key_valid_from_timestamp_seconds",
            Family::ReadError => "cf_service_key_read_error",
            Family::Owner => "cf_service_key_owner_info",
            Family::WarningLead => "cf_service_key_warning_lead_seconds",
            Family::WarningLeadInvalid => "cf_service_key_warning_lead_invalid",
            Family::Successor => "cf_service_key_successor_info",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Family::ExpiryTimestamp => "Unix time at which the service key's credentials stop being valid",
            Family::Countdown => "Seconds from the scrape until the service key's credentials expire; negative once expired",
            Family::Info => "One series per service key; expiry_source says where its expiry was read, none, or unread (details never read)",
            Family::Created => "Unix time at which the service key was created",
            Family::ValidFrom => "Unix time from which the service key's expiring credentials are valid",
            Family::ReadError => "1 while the latest attempt to fetch or read the service key's details failed, by reason",
            Family::Owner => "The service key's owners, from Cloud Foundry metadata on the key, its instance, its space or its org (nearest wins)",
            Family::WarningLead => "How long before expiry the service key's owners want to be warned, from the --lead-time-annotation on the key, its instance, its space or its org (nearest wins); only where that value is a valid duration",
            Family::WarningLeadInvalid => "1 while the nearest --lead-time-annotation of the service key is not a valid duration (from 1h to 2y); the default lead applies",
            Family::Successor => "1 while the service key has a successor: a newer key of the same instance, read fine, that expires later and is named as its successor (successor_key, successor_key_guid)",
        }
    }

    /// The descriptor lines that open the family in an exposition.
    pub fn descriptor(self) -> String {
        format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n",
            name = self.name(),
            help = self.help()
        )
    }
}

/// `("foundation", name)` then the key's labels, from the one definition in [`KeyLabels`].
fn base_labels<'a>(
    foundation: &'a str,
    key: &'a KeyRecord,
) -> [(&'static str, &'a str); 1 + KEY_LABEL_COUNT] {
    let mut out = [("foundation", foundation); 1 + KEY_LABEL_COUNT];
    for (slot, pair) in out[1..]
        .iter_mut()
        .zip(KeyLabels::NAMES.into_iter().zip(key.labels.values()))
    {
        *slot = pair;
    }
    out
}

/// `{foundation="…",org="…",…,service_key_guid="…"}`: a key's base label set as the client's
/// text encoder writes it (label values escaped the same way: `\\`, `\"`, `\n`).
fn write_label_set(out: &mut String, foundation: &str, key: &KeyRecord) {
    out.push('{');
    for (i, (name, value)) in base_labels(foundation, key).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        let mut rest = value;
        while let Some(at) = rest.find(['\\', '"', '\n']) {
            out.push_str(&rest[..at]);
            out.push_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            });
            rest = &rest[at + 1..];
        }
        out.push_str(rest);
        out.push('"');
    }
    out.push('}');
}

/// Encodes the text families of one foundation with the official encoder, in
/// [`Family::ALL`]'s order.
#[derive(Debug)]
struct TextFamilies {
    foundation: String,
    snapshot: Arc<FoundationSnapshot>,
}

impl Collector for TextFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for f in Family::ALL.into_iter().filter(|f| f.carries_text()) {
            self.encode_family(&mut encoder, f)?;
        }
        Ok(())
    }
}

impl TextFamilies {
    fn encode_family(&self, encoder: &mut DescriptorEncoder, f: Family) -> std::fmt::Result {
        let mut m = encoder.encode_descriptor(f.name(), f.help(), None, MetricType::Gauge)?;
        let owner_labels = &self.snapshot.owner_labels;
        let keys = &self.snapshot.keys;
        for (i, key) in keys.iter().enumerate() {
            let base = base_labels(&self.foundation, key);
            match f {
                Family::Info => {
                    let labels = (base, [("expiry_source", key.expiry_source())]);
                    ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
                }
                Family::ReadError => {
                    if let Some(failure) = &key.failure {
                        let labels = (base, [("reason", failure.reason.as_str())]);
                        ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
                    }
                }
                Family::WarningLeadInvalid => {
                    if key.lead_time.is_invalid() {
                        ConstGauge::new(1i64).encode(m.encode_family(&base)?)?;
                    }
                }
                Family::Successor => {
                    if let Some(next) = self.snapshot.successors.of(i).and_then(|j| keys.get(j)) {
                        let successor = [
                            ("successor_key", &*next.labels.service_key),
                            ("successor_key_guid", &*next.labels.service_key_guid),
                        ];
                        ConstGauge::new(1i64).encode(m.encode_family(&(base, successor))?)?;
                    }
                }
                // The valued families are written per scrape (`Rendered::write`).
                Family::ExpiryTimestamp
                | Family::Countdown
                | Family::Created
                | Family::ValidFrom
                | Family::WarningLead => {}
                Family::Owner => {
                    if !owner_labels.is_empty() {
                        // Every owner label on every series, empty where none was found: the
                        // same as absent to Prometheus, and one label set for strict parsers.
                        let owners: Vec<(&str, &str)> = owner_labels
                            .iter()
                            .zip(key.owners.iter())
                            .map(|(label, value)| (label.as_str(), value.as_deref().unwrap_or("")))
                            .collect();
                        ConstGauge::new(1i64).encode(m.encode_family(&(base, owners))?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Bytes reserved per sample line when rendering or writing a family: enough for the usual
/// line, so a family is one allocation (line sizes: docs/performance.md, "Sizing").
pub(crate) const LINE_CAPACITY: usize = 320;

/// The sample lines of each text family of one foundation (descriptor lines left out: the
/// scrape writes them once per family, not once per foundation), from one encoding.
fn render_text_families(
    foundation: &str,
    snapshot: &Arc<FoundationSnapshot>,
) -> Vec<(Family, Bytes)> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(TextFamilies {
        foundation: foundation.to_owned(),
        snapshot: snapshot.clone(),
    }));
    let mut text = String::with_capacity(snapshot.keys.len() * LINE_CAPACITY);
    prometheus_client::encoding::text::encode_registry(&mut text, &registry)
        .expect("encoding into a String cannot fail");
    // Each family opens with its `# HELP` and `# TYPE` lines. Label values are escaped, so a
    // line break only ever ends a line and no sample line starts with `#`. A family's sample
    // lines are contiguous: each block is a slice of the one encoded text, not a copy (a copy
    // doubled the rendering's peak memory).
    let mut ranges: Vec<(Family, usize, usize)> = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let end = at + line.len();
        if let Some(described) = line.strip_prefix("# HELP ") {
            let family = Family::ALL
                .into_iter()
                .find(|f| described.starts_with(f.name()) && described[f.name().len()..].starts_with(' '))
                .expect("the collector writes only per-key families");
            ranges.push((family, end, end));
        } else if line.starts_with("# ") {
            let (_, start, stop) = ranges.last_mut().expect("a descriptor follows # HELP");
            (*start, *stop) = (end, end);
        } else {
            let (_, _, stop) = ranges.last_mut().expect("a sample line follows its descriptor");
            *stop = end;
        }
        at = end;
    }
    // Kept until the next snapshot: no spare capacity (sizes: docs/performance.md, "Sizing").
    let mut text = text.into_bytes();
    text.shrink_to_fit();
    let text = Bytes::from(text);
    ranges
        .into_iter()
        .map(|(family, start, stop)| (family, text.slice(start..stop)))
        .collect()
}

/// Whether two snapshots of a foundation render to the same per-key series: the same keys with
/// the same labels, owners, times, expiry sources, failure reasons and lead times (when a key
/// was read, how often it failed, or why its lead time is invalid, is not on /metrics).
pub fn same_series(a: &FoundationSnapshot, b: &FoundationSnapshot) -> bool {
    fn same(x: &KeyRecord, y: &KeyRecord) -> bool {
        x.labels == y.labels
            && x.owners == y.owners
            && x.created_at == y.created_at
            && x.expiry() == y.expiry()
            && x.expiry_source() == y.expiry_source()
            && x.failure.as_ref().map(|f| f.reason) == y.failure.as_ref().map(|f| f.reason)
            && x.lead_time.seconds() == y.lead_time.seconds()
            && x.lead_time.is_invalid() == y.lead_time.is_invalid()
    }
    a.owner_labels == b.owner_labels
        && a.successors == b.successors
        && a.keys.len() == b.keys.len()
        && a.keys.iter().zip(b.keys.iter()).all(|(x, y)| same(x, y))
}

/// One foundation's per-key series, ready to be copied into scrapes.
#[derive(Debug)]
pub struct Rendered {
    /// The finished lines of the families with extra labels ([`Family::carries_text`]).
    blocks: Vec<(Family, Bytes)>,
    /// Every key's base label set (`{foundation="…",…,service_key_guid="…"}`), concatenated.
    labels: Bytes,
    /// Per key: where its label set ends in `labels`, and the numbers of the valued families.
    keys: Vec<Numbers>,
    /// The families with at least one series here, found once per snapshot rather than per
    /// scrape.
    present: Vec<Family>,
}

/// The numbers of one key's valued families; `None` where the key has no such series.
#[derive(Debug, Clone, Copy)]
struct Numbers {
    labels_end: usize,
    expires_at: Option<i64>,
    created_at: Option<i64>,
    valid_from: Option<i64>,
    /// At most 2 years of seconds (see [`crate::lead_time::MAX`]): 4 bytes are enough.
    lead: Option<u32>,
}

impl Family {
    /// Kept as finished text (it has labels beyond the key's), rather than written per scrape.
    pub fn carries_text(self) -> bool {
        matches!(
            self,
            Family::Info
                | Family::ReadError
                | Family::Owner
                | Family::WarningLeadInvalid
                | Family::Successor
        )
    }
}

impl Rendered {
    pub fn new(foundation: &str, snapshot: &Arc<FoundationSnapshot>) -> Rendered {
        let blocks = render_text_families(foundation, snapshot);
        let mut labels = String::with_capacity(snapshot.keys.len() * LINE_CAPACITY);
        let mut keys = Vec::with_capacity(snapshot.keys.len());
        for key in snapshot.keys.iter() {
            write_label_set(&mut labels, foundation, key);
            let expiry = key.expiry();
            keys.push(Numbers {
                labels_end: labels.len(),
                expires_at: expiry.map(|e| e.expires_at),
                created_at: key.created_at,
                valid_from: expiry.and_then(|e| e.valid_from),
                lead: (key.lead_time.seconds()).and_then(|s| u32::try_from(s).ok()),
            });
        }
        labels.shrink_to_fit();
        let present = Family::ALL
            .into_iter()
            .filter(|&f| {
                if f.carries_text() {
                    blocks.iter().any(|(b, text)| *b == f && !text.is_empty())
                } else {
                    keys.iter().any(|k| value(f, k, 0.0).is_some())
                }
            })
            .collect();
        Rendered {
            blocks,
            labels: Bytes::from(labels),
            keys,
            present,
        }
    }

    /// The finished lines of a family that [carries text](Family::carries_text) (else empty).
    pub fn block(&self, family: Family) -> Bytes {
        self.blocks
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }

    /// How many keys this foundation has (the range [`Rendered::write`] takes).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Whether any key has a series of `family`.
    pub fn has(&self, family: Family) -> bool {
        self.present.contains(&family)
    }

    /// Writes the lines of a valued family for `keys`, with `now` (Unix seconds) as the
    /// scrape's clock.
    pub fn write(&self, family: Family, keys: Range<usize>, now: f64, out: &mut BytesMut) {
        let (mut float, mut integer) = (dtoa::Buffer::new(), itoa::Buffer::new());
        let name = family.name().as_bytes();
        for i in keys {
            let k = &self.keys[i];
            let Some(v) = value(family, k, now) else {
                continue;
            };
            let start = if i == 0 {
                0
            } else {
                self.keys[i - 1].labels_end
            };
            out.extend_from_slice(name);
            out.extend_from_slice(&self.labels[start..k.labels_end]);
            out.put_u8(b' ');
            match v {
                // As the client library writes a whole f64 (`1795720582.0`), faster
                // (docs/performance.md, "Figures the code refers to").
                Value::Whole(t) => {
                    out.extend_from_slice(integer.format(t).as_bytes());
                    out.extend_from_slice(b".0");
                }
                Value::Float(x) => out.extend_from_slice(float.format(x).as_bytes()),
            }
            out.put_u8(b'\n');
        }
    }
}

/// A series' value: Unix seconds (whole), or seconds left at the scrape (fractional).
enum Value {
    Whole(i64),
    Float(f64),
}

/// The value of a valued family's series for one key.
fn value(family: Family, k: &Numbers, now: f64) -> Option<Value> {
    match family {
        Family::ExpiryTimestamp => k.expires_at.map(Value::Whole),
        Family::Countdown => k.expires_at.map(|t| Value::Float(t as f64 - now)),
        Family::Created => k.created_at.map(Value::Whole),
        Family::ValidFrom => k.valid_from.map(Value::Whole),
        Family::WarningLead => k.lead.map(|s| Value::Whole(i64::from(s))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_record;
    use proptest::prelude::*;

    /// One key's line as the client's text encoder writes it.
    #[derive(Debug)]
    struct ClientLine(String, KeyRecord);

    impl Collector for ClientLine {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let mut m = encoder.encode_descriptor("x", "x", None, MetricType::Gauge)?;
            ConstGauge::new(1i64).encode(m.encode_family(&base_labels(&self.0, &self.1))?)
        }
    }

    fn client_line(foundation: &str, key: &KeyRecord) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ClientLine(foundation.to_owned(), key.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &registry).unwrap();
        text.lines().nth(2).expect("a sample line").to_owned()
    }

    proptest! {
        #[test]
        fn label_sets_are_written_as_the_client_encodes_them(
            foundation in "\\PC*",
            org in "(\\PC|[\\\\\"\n])*",
            key in "[a-z\\\\\"\n{}=, ]*",
        ) {
            let mut record = test_record("guid");
            record.labels.org = org.into();
            record.labels.service_key = key.into();
            let mut ours = String::from("x");
            write_label_set(&mut ours, &foundation, &record);
            ours.push_str(" 1");
            prop_assert_eq!(ours, client_line(&foundation, &record));
        }
    }
}
