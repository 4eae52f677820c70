//! Which key succeeds which, within one foundation's snapshot.
//!
//! A service instance often holds several keys for different consumers (a Cloud Integration
//! runtime has one per sender), so "a newer key on the same instance" is not enough. A key
//! `new` succeeds a key `old` when all of these hold:
//! - both are keys of the same service instance (same org, space and instance name: instance
//!   names are unique in a space);
//! - `new` was read fine: it has a reading and its latest read did not fail;
//! - `new` was created after `old`, and expires later (a key that never expires counts as
//!   expiring later than any date; of two that never expire, the newer one counts);
//! - `new` is named as `old`'s successor: `old`'s base name with a date suffix under the
//!   naming scheme ([`crate::rotation::naming`]), or `new` carries the successor annotation naming `old`
//!   (by name or guid).
//!
//! Of several successors the one that expires last wins (then the newest, then the guid), so an
//! old key has at most one. Pure and linear in the number of keys: candidates are found through
//! maps by instance and base name, never by comparing every pair.

use std::collections::HashMap;

use super::KeyRecord;
use crate::rotation::RotationConfig;

/// Each old key's successor, by position in the snapshot's key list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Successors {
    /// `(old, successor)` positions, sorted by `old`.
    pairs: Vec<(u32, u32)>,
}

/// Where a key sits: org, space and instance name.
type Instance<'a> = (&'a str, &'a str, &'a str);

fn instance(k: &KeyRecord) -> Instance<'_> {
    (&k.labels.org, &k.labels.space, &k.labels.service_instance)
}

/// When a key stops working, for "expires later": `None` (never) is later than any date.
fn expiry_rank(k: &KeyRecord) -> (bool, i64) {
    match k.expiry() {
        Some(e) => (false, e.expires_at),
        None => (true, 0),
    }
}

fn read_fine(k: &KeyRecord) -> bool {
    k.reading.is_some() && k.failure.is_none()
}

/// `new` may succeed `old`, names aside.
fn later(old: &KeyRecord, new: &KeyRecord) -> bool {
    let (Some(born), Some(newer)) = (old.created_at, new.created_at) else {
        return false;
    };
    if newer <= born || !read_fine(new) {
        return false;
    }
    let (a, b) = (expiry_rank(old), expiry_rank(new));
    b > a || (a.0 && b.0)
}

impl Successors {
    /// Finds every key's successor among `keys`.
    pub fn find(keys: &[KeyRecord], config: &RotationConfig) -> Successors {
        let names = &config.names;
        // Keys whose name carries a date suffix, by instance and base name; keys that name
        // the key they succeed, by instance and that name (or guid).
        let mut by_base: HashMap<(Instance<'_>, &str), Vec<usize>> = HashMap::new();
        let mut by_annotation: HashMap<(Instance<'_>, &str), Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let (base, Some(_)) = names.split(&k.labels.service_key) {
                by_base.entry((instance(k), base)).or_default().push(i);
            }
            if let Some(named) = &k.facts.successor_of {
                by_annotation
                    .entry((instance(k), named))
                    .or_default()
                    .push(i);
            }
        }
        let mut pairs = Vec::new();
        for (i, old) in keys.iter().enumerate() {
            let at = instance(old);
            let name: &str = &old.labels.service_key;
            let named = by_base
                .get(&(at, names.base(name)))
                .into_iter()
                .flatten()
                .filter(|&&j| names.names_successor(name, &keys[j].labels.service_key));
            let annotated = [name, &old.labels.service_key_guid]
                .into_iter()
                .filter_map(|n| by_annotation.get(&(at, n)))
                .flatten();
            let best = named
                .chain(annotated)
                .copied()
                .filter(|&j| j != i && later(old, &keys[j]))
                .max_by(|&a, &b| {
                    let rank = |j: usize| (expiry_rank(&keys[j]), keys[j].created_at);
                    rank(a).cmp(&rank(b)).then_with(|| {
                        keys[b]
                            .labels
                            .service_key_guid
                            .cmp(&keys[a].labels.service_key_guid)
                    })
                });
            if let Some(j) = best {
                if let (Ok(old), Ok(new)) = (u32::try_from(i), u32::try_from(j)) {
                    pairs.push((old, new));
                }
            }
        }
        Successors { pairs }
    }

    /// The position of the successor of the key at position `old`.
    pub fn of(&self, old: usize) -> Option<usize> {
        let old = u32::try_from(old).ok()?;
        let at = self.pairs.binary_search_by_key(&old, |p| p.0).ok()?;
        Some(self.pairs[at].1 as usize)
    }

    /// `(old, successor)` positions, by old.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.pairs.iter().map(|&(a, b)| (a as usize, b as usize))
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{test_record, KeyExpiry, Reading};

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    /// A key on instance `i`, created `created` days from now, expiring after `expires` days
    /// (`None`: never).
    fn key(name: &str, instance: &str, created: i64, expires: Option<i64>) -> KeyRecord {
        let mut k = test_record(&format!("guid-{name}-{instance}"));
        k.labels.service_key = name.into();
        k.labels.service_instance = instance.into();
        k.created_at = Some(NOW + created * DAY);
        k.reading = Some(Reading {
            read_at: NOW,
            expiry: expires.map(|d| KeyExpiry {
                expires_at: NOW + d * DAY,
                valid_from: Some(NOW + created * DAY),
                source: crate::vocab::ExpirySource::Certificate,
                certificate: None,
            }),
            shape: None,
        });
        k
    }

    fn names(keys: &[KeyRecord], config: &RotationConfig) -> Vec<(String, String)> {
        let found = Successors::find(keys, config);
        found
            .iter()
            .map(|(a, b)| {
                (
                    keys[a].labels.service_key.to_string(),
                    keys[b].labels.service_key.to_string(),
                )
            })
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    #[test]
    fn a_newer_key_of_the_same_base_that_expires_later_succeeds() {
        let keys = [
            key("it-sender-20260101", "cpi", -360, Some(5)),
            key("it-sender-20261204", "cpi", -1, Some(364)),
        ];
        assert_eq!(
            names(&keys, &RotationConfig::default()),
            [pair("it-sender-20260101", "it-sender-20261204")]
        );
    }

    #[test]
    fn unrelated_keys_on_one_instance_are_never_each_others_successor() {
        let keys = [
            key("s4-inbound", "cpi", -360, Some(5)),
            key("partner-edi", "cpi", -1, Some(364)),
            key("jobs-x509-rotated", "cpi", -4, Some(3)),
            key("jobs-x509-fresh", "cpi", -1, Some(6)),
        ];
        assert!(Successors::find(&keys, &RotationConfig::default()).is_empty());
    }

    #[test]
    fn the_successor_must_be_newer_read_fine_later_and_on_the_same_instance() {
        let config = RotationConfig::default();
        // Expires earlier.
        let keys = [
            key("k", "cpi", -360, Some(50)),
            key("k-20261204", "cpi", -1, Some(6)),
        ];
        assert!(Successors::find(&keys, &config).is_empty());
        // Older.
        let keys = [
            key("k", "cpi", -1, Some(5)),
            key("k-20261204", "cpi", -2, Some(300)),
        ];
        assert!(Successors::find(&keys, &config).is_empty());
        // Another instance.
        let keys = [
            key("k", "cpi", -360, Some(5)),
            key("k-20261204", "other", -1, Some(364)),
        ];
        assert!(Successors::find(&keys, &config).is_empty());
        // Not read fine: never read, or the latest read failed.
        let mut unread = key("k-20261204", "cpi", -1, Some(364));
        unread.reading = None;
        let mut failing = key("k-20261205", "cpi", -1, Some(364));
        failing.failure = Some(crate::snapshot::ReadFailure {
            reason: crate::vocab::Reason::NotFound,
            attempts: 1,
            retry_at: None,
        });
        let keys = [key("k", "cpi", -360, Some(5)), unread, failing];
        assert!(Successors::find(&keys, &config).is_empty());
    }

    #[test]
    fn an_annotation_names_the_old_key_by_name_or_guid() {
        let config = RotationConfig {
            successor_annotation: Some("example.com/successor-of".into()),
            ..RotationConfig::default()
        };
        let mut by_name = key("sender-b", "cpi", -1, Some(364));
        by_name.facts.successor_of = Some("sender-a".into());
        let keys = [key("sender-a", "cpi", -360, Some(5)), by_name];
        assert_eq!(names(&keys, &config), [pair("sender-a", "sender-b")]);
        let old = key("x", "cpi", -360, Some(5));
        let mut by_guid = key("y", "cpi", -1, Some(364));
        by_guid.facts.successor_of = Some(old.labels.service_key_guid.clone());
        assert_eq!(names(&[old, by_guid], &config), [pair("x", "y")]);
    }

    #[test]
    fn of_several_successors_the_latest_expiry_wins_and_secrets_count_as_never_expiring() {
        let keys = [
            key("k", "cpi", -360, Some(5)),
            key("k-20261101", "cpi", -30, Some(335)),
            key("k-20261204", "cpi", -1, Some(364)),
        ];
        let found = names(&keys, &RotationConfig::default());
        assert_eq!(
            found,
            [pair("k", "k-20261204"), pair("k-20261101", "k-20261204")]
        );
        let secrets = [
            key("secret", "x", -400, None),
            key("secret-20261204", "x", -1, None),
        ];
        assert_eq!(
            names(&secrets, &RotationConfig::default()),
            [pair("secret", "secret-20261204")]
        );
        let s = Successors::find(&secrets, &RotationConfig::default());
        assert_eq!((s.of(0), s.of(1)), (Some(1), None));
    }
}
