//! What the exporter currently knows: one immutable [`Snapshot`], swapped whole.
//!
//! Concurrency model: each foundation's refresher builds a complete [`FoundationSnapshot`] off
//! to the side and publishes it in one atomic swap ([`Store::publish`]); readers (a scrape, a
//! readiness probe, `report`) call [`Store::load`] and get a consistent view without a lock and
//! without waiting on a refresh. Nothing here does I/O, and nothing here holds a credential:
//! only names, guids, dates and public certificate facts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::expiry::CertificateInfo;

/// Label values of one service key. Names repeated across keys (org, space, plan ...) share
/// one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLabels {
    pub org: Arc<str>,
    pub space: Arc<str>,
    pub service_offering: Arc<str>,
    pub service_plan: Arc<str>,
    pub service_instance: Arc<str>,
    pub service_key: Arc<str>,
    pub service_key_guid: Arc<str>,
}

/// The expiry that counts for a key: the earliest one found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExpiry {
    /// Unix time, seconds.
    pub expires_at: i64,
    /// The `expiry_source` label value.
    pub source: &'static str,
    /// Set when the expiry is a certificate's notAfter.
    pub certificate: Option<CertificateInfo>,
}

/// One service key as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub labels: KeyLabels,
    /// `None` = no readable expiry (`expiry_source="none"`).
    pub expiry: Option<KeyExpiry>,
    /// Change markers of the key and its instance: while both are unchanged, the key's details
    /// need not be read again.
    pub key_updated_at: Arc<str>,
    pub instance_updated_at: Arc<str>,
    /// When the details were last read (Unix seconds), for the periodic full re-read.
    pub read_at: i64,
}

/// How the refreshes of one foundation went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshStatus {
    /// At least one refresh finished (successfully or not): the foundation counts as ready.
    pub finished_once: bool,
    /// The last refresh completed.
    pub success: bool,
    pub last_success_at: Option<SystemTime>,
    pub last_duration: Option<Duration>,
}

/// Everything known about one foundation.
#[derive(Debug, Clone, Default)]
pub struct FoundationSnapshot {
    /// Keys sorted by guid, as last read successfully.
    pub keys: Arc<Vec<KeyRecord>>,
    pub status: RefreshStatus,
}

/// Everything known, by foundation name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub foundations: BTreeMap<String, Arc<FoundationSnapshot>>,
}

impl Snapshot {
    /// Every foundation has finished its first refresh.
    pub fn ready(&self) -> bool {
        self.foundations.values().all(|f| f.status.finished_once)
    }
}

/// Now, in Unix seconds (the unit of [`KeyRecord::read_at`] and [`KeyExpiry::expires_at`]).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The published snapshot. Writers are the refreshers; readers never block them.
#[derive(Debug, Default)]
pub struct Store {
    current: ArcSwap<Snapshot>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current state of one foundation.
    pub fn foundation(&self, name: &str) -> Option<Arc<FoundationSnapshot>> {
        self.current.load().foundations.get(name).cloned()
    }

    /// Replaces one foundation's state, leaving the others untouched.
    pub fn publish(&self, name: &str, foundation: FoundationSnapshot) {
        let foundation = Arc::new(foundation);
        self.current.rcu(|snapshot| {
            let mut next = Snapshot::clone(snapshot);
            next.foundations.insert(name.to_owned(), foundation.clone());
            next
        });
    }

    /// Adds a foundation that has not refreshed yet (keeps its state if it is already known).
    pub fn register(&self, name: &str) {
        self.current.rcu(|snapshot| {
            let mut next = Snapshot::clone(snapshot);
            next.foundations.entry(name.to_owned()).or_default();
            next
        });
    }

    /// Forgets a foundation (removed from the config).
    pub fn remove(&self, name: &str) {
        self.current.rcu(|snapshot| {
            let mut next = Snapshot::clone(snapshot);
            next.foundations.remove(name);
            next
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_foundation_finished_once() {
        let store = Store::new();
        store.register("a");
        store.register("b");
        assert!(!store.load().ready());
        let done = FoundationSnapshot {
            status: RefreshStatus {
                finished_once: true,
                ..Default::default()
            },
            ..Default::default()
        };
        store.publish("a", done.clone());
        assert!(!store.load().ready());
        store.publish("b", done);
        assert!(store.load().ready());
    }

    #[test]
    fn a_reader_keeps_its_snapshot_while_a_writer_publishes() {
        let store = Store::new();
        store.register("a");
        let before = store.load();
        store.publish(
            "a",
            FoundationSnapshot {
                status: RefreshStatus {
                    finished_once: true,
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        assert!(!before.foundations["a"].status.finished_once);
        assert!(store.load().foundations["a"].status.finished_once);
    }
}
