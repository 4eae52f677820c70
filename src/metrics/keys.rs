//! The per-key series of one foundation, rendered once per published snapshot.
//!
//! The label sets of 20,000 keys change only when a refresh publishes, so the first scrape of a
//! new snapshot renders every per-key line with the official client's text encoder (its label
//! escaping and number formatting), and later scrapes copy those bytes. The one series whose
//! value moves with the clock, `cf_service_key_expiry_seconds`, is kept as rendered line
//! prefixes (`name{labels} `) beside the expiry each counts down to; a scrape writes only the
//! values. Pure CPU work, no I/O.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
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
    /// `cf_service_key_expiry_seconds`: the only one rendered per scrape.
    Countdown,
    Info,
    Created,
    ValidFrom,
    ReadError,
    Owner,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::ExpiryTimestamp,
        Family::Countdown,
        Family::Info,
        Family::Created,
        Family::ValidFrom,
        Family::ReadError,
        Family::Owner,
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

/// Encodes one family of one foundation with the official encoder.
#[derive(Debug)]
struct FamilyOf {
    foundation: String,
    snapshot: Arc<FoundationSnapshot>,
    family: Family,
}

impl Collector for FamilyOf {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let f = self.family;
        let mut m = encoder.encode_descriptor(f.name(), f.help(), None, MetricType::Gauge)?;
        let owner_labels = &self.snapshot.owner_labels;
        for key in self.snapshot.keys.iter() {
            let base = base_labels(&self.foundation, key);
            match f {
                Family::ExpiryTimestamp => {
                    if let Some(e) = key.expiry() {
                        ConstGauge::new(e.expires_at as f64).encode(m.encode_family(&base)?)?;
                    }
                }
                Family::Countdown => {
                    if key.expiry().is_some() {
                        ConstGauge::new(0.0).encode(m.encode_family(&base)?)?;
                    }
                }
                Family::Info => {
                    let labels = (base, [("expiry_source", key.expiry_source())]);
                    ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
                }
                Family::Created => {
                    if let Some(created) = key.created_at {
                        ConstGauge::new(created as f64).encode(m.encode_family(&base)?)?;
                    }
                }
                Family::ValidFrom => {
                    if let Some(from) = key.expiry().and_then(|e| e.valid_from) {
                        ConstGauge::new(from as f64).encode(m.encode_family(&base)?)?;
                    }
                }
                Family::ReadError => {
                    if let Some(failure) = &key.failure {
                        let labels = (base, [("reason", failure.reason)]);
                        ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
                    }
                }
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

/// The sample lines of one family of one foundation (descriptor lines removed).
fn render(foundation: &str, snapshot: &Arc<FoundationSnapshot>, family: Family) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(FamilyOf {
        foundation: foundation.to_owned(),
        snapshot: snapshot.clone(),
        family,
    }));
    // About 300 bytes a line: one allocation in the usual case.
    let mut text = String::with_capacity(snapshot.keys.len() * 320);
    prometheus_client::encoding::text::encode_registry(&mut text, &registry)
        .expect("encoding into a String cannot fail");
    // The descriptor is written once per family by the scrape, not once per foundation. Label
    // values are escaped, so a line break only ever ends a line.
    let descriptor: usize = text
        .split_inclusive('\n')
        .take_while(|line| line.starts_with("# "))
        .map(str::len)
        .sum();
    text.drain(..descriptor);
    // Kept until the next snapshot: no spare capacity (at 20,000 keys it would be megabytes).
    text.shrink_to_fit();
    text
}

/// One foundation's per-key series, ready to be copied into scrapes.
#[derive(Debug)]
pub struct Rendered {
    /// The sample lines of each family of [`Family::ALL`] but the countdown (empty for it).
    blocks: Vec<Bytes>,
    /// `cf_service_key_expiry_seconds{...} ` prefixes, concatenated.
    prefixes: Bytes,
    /// Per key with an expiry: where its prefix ends in `prefixes`, and its expiry.
    countdown: Vec<(usize, i64)>,
}

impl Rendered {
    pub fn new(foundation: &str, snapshot: &Arc<FoundationSnapshot>) -> Rendered {
        let blocks = Family::ALL
            .iter()
            .map(|&f| match f {
                Family::Countdown => Bytes::new(),
                f => Bytes::from(render(foundation, snapshot, f)),
            })
            .collect();
        // Each countdown line is `name{labels} 0.0`: keep everything up to the value.
        let lines = render(foundation, snapshot, Family::Countdown);
        let mut prefixes = String::with_capacity(lines.len());
        let mut countdown = Vec::new();
        let expiries = snapshot.keys.iter().filter_map(|k| k.expiry());
        for (line, expiry) in lines.lines().zip(expiries) {
            let cut = line.rfind(' ').map_or(line.len(), |i| i + 1);
            prefixes.push_str(&line[..cut]);
            countdown.push((prefixes.len(), expiry.expires_at));
        }
        prefixes.shrink_to_fit();
        Rendered {
            blocks,
            prefixes: Bytes::from(prefixes),
            countdown,
        }
    }

    /// The rendered lines of `family` (empty for the countdown).
    pub fn block(&self, family: Family) -> Bytes {
        let i = Family::ALL.iter().position(|f| *f == family).unwrap_or(0);
        self.blocks[i].clone()
    }

    /// Keys with an expiry: the countdown's lines.
    pub fn countdown_len(&self) -> usize {
        self.countdown.len()
    }

    /// Writes the countdown lines of `keys` with `now` (Unix seconds) as the scrape's clock.
    pub fn write_countdown(&self, keys: Range<usize>, now: f64, out: &mut Vec<u8>) {
        let mut number = dtoa::Buffer::new();
        for i in keys {
            let start = if i == 0 { 0 } else { self.countdown[i - 1].0 };
            let (end, expires_at) = self.countdown[i];
            out.extend_from_slice(&self.prefixes[start..end]);
            out.extend_from_slice(number.format(expires_at as f64 - now).as_bytes());
            out.push(b'\n');
        }
    }
}
