//! What the exporter currently knows: one immutable [`Snapshot`], swapped whole.
//!
//! The model of a service key lives here, and only here: [`KeyLabels`] is the one definition of
//! the labels that identify a key (the metrics, the cache file and the report all derive their
//! names and values from it), and [`KeyRecord`] is everything known about one key.
//!
//! Concurrency model: each foundation's refresher builds a complete [`FoundationSnapshot`] off
//! to the side and publishes it in one atomic swap ([`Store::publish`]); readers (a scrape, a
//! readiness probe, `report`) call [`Store::load`] and get a consistent view without a lock and
//! without waiting on a refresh. Nothing here does I/O, and nothing here holds a credential:
//! only names, guids, dates, metadata values and public certificate facts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::expiry::CertificateInfo;
pub use crate::lead_time::LeadTime;
pub use crate::rotation::{KeyFacts, Shape};
use crate::vocab::{ExpirySource, Reason};
pub use successor::Successors;

mod successor;

/// Defines [`KeyLabels`] from one list: each label's name (the struct field, the Prometheus
/// label, the cache and JSON field) and its column in the report's table (`None`: not shown).
macro_rules! key_labels {
    ($($(#[$doc:meta])* $name:ident => $header:expr,)+) => {
        /// The labels that identify one service key, besides `foundation`, in exposition order.
        /// Names repeated across keys (org, space, plan ...) share one allocation.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct KeyLabels {
            $($(#[$doc])* pub $name: Arc<str>,)+
        }

        impl KeyLabels {
            /// The label names, in exposition order.
            pub const NAMES: [&'static str; KEY_LABEL_COUNT] = [$(stringify!($name)),+];
            /// The report table's column header of each label, in the same order.
            pub const HEADERS: [Option<&'static str>; KEY_LABEL_COUNT] = [$($header),+];

            /// The label values, in the order of [`KeyLabels::NAMES`].
            pub fn values(&self) -> [&str; KEY_LABEL_COUNT] {
                [$(&*self.$name),+]
            }

            /// Every value passed through `f` (to share equal strings between keys).
            pub fn map(self, mut f: impl FnMut(Arc<str>) -> Arc<str>) -> KeyLabels {
                KeyLabels { $($name: f(self.$name)),+ }
            }
        }
    };
}

/// How many labels [`KeyLabels`] has.
pub const KEY_LABEL_COUNT: usize = 7;

key_labels! {
    org => Some("ORG"),
    space => Some("SPACE"),
    service_offering => Some("OFFERING"),
    service_plan => Some("PLAN"),
    service_instance => Some("INSTANCE"),
    service_key => Some("KEY"),
    /// The key's guid: unique within a foundation, so two keys with one name stay apart.
    service_key_guid => None,
}

/// The expiry that counts for a key: the earliest one found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExpiry {
    /// Unix time, seconds.
    pub expires_at: i64,
    /// From when the expiring credential is valid (Unix seconds): see
    /// [`crate::expiry::valid_from`]. `None` only when even the key's creation time is unknown.
    pub valid_from: Option<i64>,
    /// The `expiry_source` label.
    pub source: ExpirySource,
    /// Set when the expiry is a certificate's notAfter.
    pub certificate: Option<CertificateInfo>,
}

/// A successful read of a key's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// When the details were read (Unix seconds), for the periodic full re-read.
    pub read_at: i64,
    /// `None`: read, and nothing in it expires (`expiry_source="none"`).
    pub expiry: Option<KeyExpiry>,
    /// What the credentials showed about how the key was created (for `report --rotate-plan`);
    /// `None` when not known (a reading seeded from the cache file).
    pub shape: Option<Shape>,
}

/// The latest attempt to read a key's details failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    /// The `reason` label.
    pub reason: Reason,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// When the next attempt is due (Unix seconds); `None` for credentials that were fetched
    /// but hold something unreadable, which no retry changes (they are read again with the
    /// periodic full re-read).
    pub retry_at: Option<i64>,
}

/// One service key as listed, with its last reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub labels: KeyLabels,
    /// When the key was created (the binding's `created_at`, Unix seconds).
    pub created_at: Option<i64>,
    /// The owner values found for the foundation's `--metadata-labels`, in the order of
    /// [`FoundationSnapshot::owner_labels`]; read from the list pages at every refresh.
    pub owners: Arc<[Option<Arc<str>>]>,
    /// The owner's warning lead time (`--lead-time-annotation`); read from the list pages at
    /// every refresh, as the owners are.
    pub lead_time: LeadTime,
    /// Change markers of the key and its instance: while both are unchanged, the key's details
    /// need not be read again.
    pub key_updated_at: Arc<str>,
    pub instance_updated_at: Arc<str>,
    /// The last successful reading; `None` = never read (`expiry_source="unread"`).
    pub reading: Option<Reading>,
    /// Set while the latest attempt to read the details failed; the reading is kept beside it.
    pub failure: Option<ReadFailure>,
    /// Its instance's and offering's guids and the successor annotation, from the list pages.
    pub facts: KeyFacts,
}

impl KeyRecord {
    /// The expiry of the last reading, if it had one.
    pub fn expiry(&self) -> Option<&KeyExpiry> {
        self.reading.as_ref().and_then(|r| r.expiry.as_ref())
    }

    /// The `expiry_source` label value: the reading's source, `none`, or `unread`.
    pub fn expiry_source(&self) -> &'static str {
        match &self.reading {
            None => ExpirySource::Unread.as_str(),
            Some(r) => r
                .expiry
                .as_ref()
                .map_or(ExpirySource::None, |e| e.source)
                .as_str(),
        }
    }

    /// The `(label, value)` pairs of the owners found, for `labels` (the foundation's
    /// [`FoundationSnapshot::owner_labels`]).
    pub fn owner_pairs<'a>(
        &'a self,
        labels: &'a [String],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        labels
            .iter()
            .zip(self.owners.iter())
            .filter_map(|(label, value)| Some((label.as_str(), value.as_deref()?)))
    }
}

/// How the refreshes of one foundation went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshStatus {
    /// At least one refresh finished (successfully or not).
    pub finished_once: bool,
    /// What is published may be served as the foundation's truth (`/readyz`): it was seeded
    /// from the cache file, or a refresh listed its keys and left none of them unattempted
    /// (for want of rate-limit budget or of time; a key whose read failed was attempted). Once
    /// set it stays set: a later failure shows in `refresh_success`, not in readiness.
    pub ready: bool,
    /// The last refresh completed.
    pub success: bool,
    pub last_success_at: Option<SystemTime>,
    pub last_duration: Option<Duration>,
}

/// Everything known about one foundation.
#[derive(Debug, Clone, Default)]
pub struct FoundationSnapshot {
    /// Keys sorted by guid.
    pub keys: Arc<Vec<KeyRecord>>,
    /// The owner label names (`label_team`, ...) of `--metadata-labels`, in configuration order.
    pub owner_labels: Arc<[String]>,
    pub status: RefreshStatus,
    /// Which key succeeds which ([`Successors::find`]), by position in `keys`.
    pub successors: Successors,
}

/// Everything known, by foundation name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub foundations: BTreeMap<String, Arc<FoundationSnapshot>>,
}

impl Snapshot {
    /// Every foundation is [ready](RefreshStatus::ready).
    #[cfg(test)]
    pub fn ready(&self) -> bool {
        self.foundations.values().all(|f| f.status.ready)
    }
}

impl FoundationSnapshot {
    /// Keys never attempted: no reading and no failed read (deferred by the rate-limit budget,
    /// or cut off by a refresh's deadline).
    pub fn unattempted(&self) -> usize {
        self.keys
            .iter()
            .filter(|k| k.reading.is_none() && k.failure.is_none())
            .count()
    }
}

/// The published snapshot: the one meeting point. Writers are the refreshers ([`Store::publish`])
/// and the supervisor, which registers, seeds (from the cache file) and removes foundations
/// through this API; readers never block them. Every change is announced to the subscribers
/// ([`Store::subscribe`]: the metrics renderer and the cache-file writer), which then read the
/// current snapshot.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    changes: watch::Sender<()>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            current: ArcSwap::default(),
            changes: watch::Sender::new(()),
        }
    }
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces each later change of the snapshot (changes in quick succession may be
    /// announced once: read [`Store::load`] after each).
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_replace(());
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current state of one foundation.
    pub fn foundation(&self, name: &str) -> Option<Arc<FoundationSnapshot>> {
        self.current.load().foundations.get(name).cloned()
    }

    /// Replaces one foundation's state, leaving the others untouched; returns what is now
    /// published for it.
    pub fn publish(&self, name: &str, foundation: FoundationSnapshot) -> Arc<FoundationSnapshot> {
        let foundation = Arc::new(foundation);
        self.current.rcu(|snapshot| {
            let mut next = Snapshot::clone(snapshot);
            next.foundations.insert(name.to_owned(), foundation.clone());
            next
        });
        self.changed();
        foundation
    }

    /// Publishes readings kept from an earlier run (the cache file) for a foundation that has
    /// not refreshed yet, ready to be served: the last truth a refresh read, rather than nothing
    /// or a half-read estate. Owner labels and successors come with its first refresh.
    pub fn seed(&self, name: &str, keys: Vec<KeyRecord>) {
        self.publish(
            name,
            FoundationSnapshot {
                keys: Arc::new(keys),
                owner_labels: Arc::from([]),
                successors: Successors::default(),
                status: RefreshStatus {
                    ready: true,
                    ..Default::default()
                },
            },
        );
    }

    /// Adds a foundation that has not refreshed yet (keeps its state if it is already known).
    pub fn register(&self, name: &str) {
        self.current.rcu(|snapshot| {
            let mut next = Snapshot::clone(snapshot);
            next.foundations.entry(name.to_owned()).or_default();
            next
        });
        self.changed();
    }

    /// Forgets a foundation (removed from the config).
    pub fn remove(&self, name: &str) {
        self.current.rcu(|snapshot| {
            let mut next = Snapshot::clone(snapshot);
            next.foundations.remove(name);
            next
        });
        self.changed();
    }
}

/// A key record for unit tests: listed as `key-<guid>` in org `o`, space `s`, never read.
#[cfg(test)]
pub(crate) fn test_record(guid: &str) -> KeyRecord {
    KeyRecord {
        labels: KeyLabels {
            org: "o".into(),
            space: "s".into(),
            service_offering: "off".into(),
            service_plan: "p".into(),
            service_instance: "i".into(),
            service_key: format!("key-{guid}").into(),
            service_key_guid: guid.into(),
        },
        created_at: Some(1_700_000_000),
        owners: Arc::from([]),
        lead_time: LeadTime::Unset,
        key_updated_at: "u".into(),
        instance_updated_at: "i-1".into(),
        reading: None,
        failure: None,
        facts: KeyFacts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished() -> FoundationSnapshot {
        FoundationSnapshot {
            status: RefreshStatus {
                finished_once: true,
                ready: true,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn ready_only_when_every_foundation_is() {
        let store = Store::new();
        store.register("a");
        store.register("b");
        assert!(!store.load().ready());
        store.publish("a", finished());
        assert!(!store.load().ready());
        // A refresh finished, but it left keys unread: not yet.
        let mut half_read = finished();
        half_read.status.ready = false;
        store.publish("b", half_read);
        assert!(!store.load().ready());
        store.publish("b", finished());
        assert!(store.load().ready());
    }

    #[test]
    fn a_reader_keeps_its_snapshot_while_a_writer_publishes() {
        let store = Store::new();
        store.register("a");
        let before = store.load();
        store.publish("a", finished());
        assert!(!before.foundations["a"].status.finished_once);
        assert!(store.load().foundations["a"].status.finished_once);
    }

    #[test]
    fn label_names_values_and_headers_come_from_one_list() {
        let labels = test_record("g").labels;
        let named: Vec<(&str, &str)> = KeyLabels::NAMES.into_iter().zip(labels.values()).collect();
        assert_eq!(named[0], ("org", "o"));
        assert_eq!(named[5], ("service_key", "key-g"));
        assert_eq!(named[6], ("service_key_guid", "g"));
        // The JSON of the cache file and the report uses the same names.
        let json = serde_json::to_value(&labels).unwrap();
        for (name, value) in named {
            assert_eq!(json[name], value);
        }
        assert_eq!(KeyLabels::HEADERS[5], Some("KEY"));
    }
}
