//! Which keys one refresh reads, and which keep their last reading.
//!
//! Pure: the listed keys, the last records, the time and the policy in; a [`Plan`] out. No I/O,
//! no clock of its own, so every rule is unit-tested.
//!
//! A key is read, in this order of priority:
//! 1. **new**: never read (just listed, or never read successfully before);
//! 2. **changed**: its `updated_at` or its instance's moved since the last reading;
//! 3. **retry**: the last attempt to fetch its details failed and its backoff has passed
//!    (failing keys are retried every refresh at first, then less often: see [`backoff`]);
//! 4. **due**: the oldest readings, `keys × elapsed ÷ full_refresh_interval` of them, where
//!    `elapsed` is the time since the previous refresh (the fraction carried to the next one).
//!    Every key is so read again about once per `full_refresh_interval` at a steady rate, about
//!    `keys × refresh_interval ÷ full_refresh_interval` per refresh, instead of all keys coming
//!    due in one refresh a day; and a refresh right after another (a restart, a warm refresh)
//!    owes almost nothing.
//!
//! With a rate-limit budget ([`read_budget`]), reads beyond it are deferred to later refreshes
//! in that order: a cold start of 20,000 keys against 2,000 requests an hour spreads over the
//! hours the budget allows instead of running into 429s.

use std::collections::HashMap;
use std::time::Duration;

use crate::cf::ListedKey;
use crate::snapshot::{KeyRecord, ReadFailure};
use crate::vocab::{RateLimit, Reason};

/// Longest wait between two attempts at a failing key.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What a refresh may do.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Now, Unix seconds.
    pub now: i64,
    pub refresh_interval: Duration,
    pub full_refresh_interval: Duration,
    /// Most `/details` reads this refresh may send; `None`: no limit known.
    pub read_budget: Option<usize>,
    /// Time since the previous refresh was planned (zero for the first): what the due reads
    /// catch up on. At most two refresh intervals count, so a long outage is not paid back in
    /// one burst.
    pub elapsed: Duration,
}

/// Why a key is read this refresh; the order is the priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    New,
    Changed,
    Retry,
    Due,
}

/// One key to read, with what it had.
#[derive(Debug, Clone)]
pub struct Job {
    /// The key as listed now, with its last reading and failure (if any).
    pub record: KeyRecord,
    pub why: Why,
}

/// The outcome of planning.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Keys that keep their last reading (or stay unread) this refresh, with today's labels.
    pub kept: Vec<KeyRecord>,
    /// Keys to read, most important first.
    pub read: Vec<Job>,
    /// Reads the budget pushed to a later refresh.
    pub deferred: usize,
    /// The fraction of a due read carried to the next refresh.
    pub due_credit: f64,
}

/// Plans one refresh. `due_credit` is the previous plan's [`Plan::due_credit`].
pub fn plan(
    listed: Vec<ListedKey>,
    previous: &HashMap<&str, &KeyRecord>,
    policy: &Policy,
    due_credit: f64,
) -> Plan {
    let keys = listed.len();
    let mut out = Plan::default();
    let mut wanted: Vec<Job> = Vec::new();
    let mut due: Vec<KeyRecord> = Vec::new();
    for key in listed {
        let before = previous.get(&*key.labels.service_key_guid).copied();
        let record = KeyRecord {
            labels: key.labels,
            created_at: key.created_at,
            owners: key.owners,
            lead_time: key.lead_time,
            key_updated_at: key.key_updated_at,
            instance_updated_at: key.instance_updated_at,
            reading: before.and_then(|b| b.reading.clone()),
            failure: before.and_then(|b| b.failure.clone()),
            facts: key.facts,
        };
        match why(before, &record, policy.now) {
            Some(Why::Due) => due.push(record),
            Some(why) => wanted.push(Job { record, why }),
            None => out.kept.push(record),
        }
    }

    // The oldest readings first; the guid breaks ties so the order is stable.
    due.sort_by(|a, b| {
        let read_at = |r: &KeyRecord| r.reading.as_ref().map_or(i64::MIN, |r| r.read_at);
        read_at(a)
            .cmp(&read_at(b))
            .then_with(|| a.labels.service_key_guid.cmp(&b.labels.service_key_guid))
    });
    let share = due_share(keys, policy);
    let mut credit = due_credit + share;
    // The epsilon keeps a day of exact fractions (e.g. 288 × 0.3472) from summing to 99.999.
    let due_now = ((credit + 1e-9).floor() as usize).min(due.len());
    credit -= due_now as f64;
    let mut due = due.into_iter();
    wanted.extend(due.by_ref().take(due_now).map(|record| Job {
        record,
        why: Why::Due,
    }));
    out.kept.extend(due);

    wanted.sort_by_key(|job| job.why);
    if let Some(budget) = policy.read_budget {
        if wanted.len() > budget {
            let over = wanted.split_off(budget);
            out.deferred = over.len();
            // A deferred due read is still owed: its credit carries over.
            credit += over.iter().filter(|j| j.why == Why::Due).count() as f64;
            out.kept.extend(over.into_iter().map(|job| job.record));
        }
    }
    out.read = wanted;
    // Owe at most a couple of reads beyond this refresh's share: a backlog deferred by the
    // budget is still found by age, it need not be carried as credit too.
    out.due_credit = credit.min(share + 2.0);
    out
}

/// Why a listed key (`record`, with what it had) would be read this refresh; `Due` when only its
/// age can make it due, `None` while a failure's backoff runs and nothing changed.
fn why(before: Option<&KeyRecord>, record: &KeyRecord, now: i64) -> Option<Why> {
    let Some(before) = before else {
        return Some(Why::New);
    };
    let changed = before.key_updated_at != record.key_updated_at
        || before.instance_updated_at != record.instance_updated_at;
    let retry_at = record.failure.as_ref().and_then(|f| f.retry_at);
    // Before the backoff: a change may be what mends a failing key (one answers 404 while its
    // creation runs, and its `updated_at` moves when that succeeds).
    if changed {
        return Some(match record.reading {
            None => Why::New,
            Some(_) => Why::Changed,
        });
    }
    if retry_at.is_some_and(|at| at > now) {
        None
    } else if record.reading.is_none() {
        Some(Why::New)
    } else if retry_at.is_some() {
        Some(Why::Retry)
    } else {
        Some(Why::Due)
    }
}

/// How many due reads one refresh owes: `keys × elapsed ÷ full_refresh_interval`, with at most
/// two refresh intervals of `elapsed` counted.
pub fn due_share(keys: usize, policy: &Policy) -> f64 {
    let full = policy.full_refresh_interval.as_secs_f64().max(1.0);
    let elapsed = policy.elapsed.min(policy.refresh_interval * 2);
    keys as f64 * elapsed.as_secs_f64() / full
}

/// When to try a failing key again after `attempts` failures in a row: at the next refresh
/// after the first failure, then after 2, 4, 8 ... refresh intervals, at most [`MAX_BACKOFF`]
/// (and never less than one interval). Half an interval of slack so "the next refresh" is never
/// missed by a second of drift.
pub fn backoff(now: i64, attempts: u32, refresh_interval: Duration) -> i64 {
    let interval = refresh_interval.as_secs().max(1);
    let factor = 1u64 << attempts.saturating_sub(1).min(20);
    let wait = interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.as_secs().max(interval));
    now + i64::try_from(wait - interval / 2).unwrap_or(i64::MAX / 2)
}

/// The failure to record after an attempt that failed with `reason`.
pub fn failed(before: Option<&ReadFailure>, reason: Reason, retry_at: Option<i64>) -> ReadFailure {
    ReadFailure {
        reason,
        attempts: before.map_or(0, |f| f.attempts).saturating_add(1),
        retry_at,
    }
}

/// How many `/details` reads this refresh may send so that the rest of the rate-limit window
/// still has room for every later refresh: what remains, less the list pages each refresh of
/// the window will need and a tenth of the limit, shared evenly by the refreshes left in it.
/// The tenth is never spent: Cloud Foundry reports what remains floored to tenths (0 means
/// "under 10 % left"), other clients of the same user need room, and below it the transport
/// starts spacing requests out. `None`: no limit known.
pub fn read_budget(
    rate: Option<RateLimit>,
    now: i64,
    refresh_interval: Duration,
    list_requests: u64,
) -> Option<usize> {
    let rate = rate?;
    let interval = refresh_interval.as_secs().max(1);
    let left = u64::try_from(rate.reset.saturating_sub(now)).unwrap_or(0);
    let refreshes = left.div_ceil(interval).max(1);
    let spendable = rate
        .remaining
        .saturating_sub(list_requests.saturating_mul(refreshes))
        .saturating_sub(rate.limit / 10);
    Some(usize::try_from(spendable / refreshes).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Reading;

    const NOW: i64 = 1_800_000_000;
    const MIN: u64 = 60;

    fn listed(guid: &str, updated: &str) -> ListedKey {
        let r = record(guid, updated, None);
        ListedKey {
            labels: r.labels,
            created_at: r.created_at,
            key_updated_at: r.key_updated_at,
            instance_updated_at: r.instance_updated_at,
            owners: r.owners,
            lead_time: r.lead_time,
            facts: r.facts,
        }
    }

    fn record(guid: &str, updated: &str, read_at: Option<i64>) -> KeyRecord {
        KeyRecord {
            key_updated_at: updated.into(),
            reading: read_at.map(|read_at| Reading {
                read_at,
                expiry: None,
                shape: None,
            }),
            ..crate::snapshot::test_record(guid)
        }
    }

    fn policy(budget: Option<usize>) -> Policy {
        Policy {
            now: NOW,
            refresh_interval: Duration::from_secs(5 * MIN),
            full_refresh_interval: Duration::from_secs(24 * 60 * MIN),
            read_budget: budget,
            elapsed: Duration::from_secs(5 * MIN),
        }
    }

    fn reasons(p: &Plan) -> Vec<(&str, Why)> {
        p.read
            .iter()
            .map(|j| (&*j.record.labels.service_key_guid, j.why))
            .collect()
    }

    #[test]
    fn new_changed_and_failing_keys_are_read_in_that_order_and_the_rest_kept() {
        let mut failing = record("d", "u", Some(NOW - 600));
        failing.failure = Some(ReadFailure {
            reason: Reason::Http5xx,
            attempts: 1,
            retry_at: Some(NOW - 1),
        });
        let mut waiting = record("e", "u", Some(NOW - 600));
        waiting.failure = Some(ReadFailure {
            reason: Reason::Http5xx,
            attempts: 3,
            retry_at: Some(NOW + 60),
        });
        let unchanged = record("c", "u", Some(NOW - 600));
        let changed = record("b", "old", Some(NOW - 600));
        let before = [&failing, &waiting, &unchanged, &changed];
        let previous: HashMap<&str, &KeyRecord> = before
            .iter()
            .map(|r| (&*r.labels.service_key_guid, *r))
            .collect();
        let now = ["d", "e", "c", "b", "a"]
            .iter()
            .map(|g| listed(g, "u"))
            .collect();
        let p = plan(now, &previous, &policy(None), 0.0);
        assert_eq!(
            reasons(&p),
            [("a", Why::New), ("b", Why::Changed), ("d", Why::Retry)]
        );
        let kept: Vec<&str> = p.kept.iter().map(|r| &*r.labels.service_key_guid).collect();
        assert_eq!(kept, ["e", "c"]);
        // A kept key keeps its reading and its failure beside it.
        assert!(p.kept[0].failure.is_some() && p.kept[0].reading.is_some());
    }

    #[test]
    fn a_failing_key_whose_updated_at_moved_is_read_despite_its_backoff() {
        // Never read: it answered 404 three times while being created.
        let mut creating = record("a", "u-1", None);
        creating.failure = Some(ReadFailure {
            reason: Reason::NotFound,
            attempts: 3,
            retry_at: Some(NOW + 1800),
        });
        // Read once, failing since; its instance changed.
        let mut instance_moved = record("b", "u", Some(NOW - 600));
        instance_moved.failure = Some(ReadFailure {
            reason: Reason::Http5xx,
            attempts: 4,
            retry_at: Some(NOW + 3000),
        });
        // The control: failing, nothing moved.
        let mut unchanged = record("c", "u", None);
        unchanged.failure = creating.failure.clone();
        let before = [&creating, &instance_moved, &unchanged];
        let previous: HashMap<&str, &KeyRecord> = before
            .iter()
            .map(|r| (&*r.labels.service_key_guid, *r))
            .collect();
        let mut moved = listed("b", "u");
        moved.instance_updated_at = "i-2".into();
        let now = vec![listed("a", "u-2"), moved, listed("c", "u")];
        let p = plan(now, &previous, &policy(None), 0.0);
        assert_eq!(reasons(&p), [("a", Why::New), ("b", Why::Changed)]);
        let kept: Vec<&str> = p.kept.iter().map(|r| &*r.labels.service_key_guid).collect();
        assert_eq!(kept, ["c"]);
        // The read starts from the failure, so a new one still counts the attempts.
        assert_eq!(
            p.read[0].record.failure.as_ref().map(|f| f.attempts),
            Some(3)
        );
    }

    #[test]
    fn due_reads_are_spread_oldest_first_with_the_fraction_carried() {
        // 2,880 keys, 5m of 24h: exactly 10 due per refresh, the oldest readings first.
        let records: Vec<KeyRecord> = (0..2880)
            .map(|i| record(&format!("{i:05}"), "u", Some(NOW - 86_400 + i)))
            .collect();
        let previous: HashMap<&str, &KeyRecord> = records
            .iter()
            .map(|r| (&*r.labels.service_key_guid, r))
            .collect();
        let listed_now =
            || -> Vec<ListedKey> { (0..2880).map(|i| listed(&format!("{i:05}"), "u")).collect() };
        let p = plan(listed_now(), &previous, &policy(None), 0.0);
        assert_eq!(p.read.len(), 10);
        assert!(p.read.iter().all(|j| j.why == Why::Due));
        assert_eq!(&*p.read[0].record.labels.service_key_guid, "00000");
        assert_eq!(&*p.read[9].record.labels.service_key_guid, "00009");
        assert_eq!(p.kept.len(), 2870);

        // 100 keys owe 100 × 300 / 86,400 = 0.35 reads a refresh: one read every ~3 refreshes.
        let few: Vec<KeyRecord> = (0..100)
            .map(|i| record(&format!("{i:03}"), "u", Some(NOW - i)))
            .collect();
        let previous: HashMap<&str, &KeyRecord> = few
            .iter()
            .map(|r| (&*r.labels.service_key_guid, r))
            .collect();
        let mut credit = 0.0;
        let mut reads = 0;
        for _ in 0..288 {
            let listed = (0..100).map(|i| listed(&format!("{i:03}"), "u")).collect();
            let p = plan(listed, &previous, &policy(None), credit);
            reads += p.read.len();
            credit = p.due_credit;
        }
        assert_eq!(reads, 100, "one day of refreshes reads every key once");

        // A refresh right after another owes nothing; a long gap at most two intervals' worth.
        let at = |elapsed| Policy {
            elapsed,
            ..policy(None)
        };
        let listed = || (0..100).map(|i| listed(&format!("{i:03}"), "u")).collect();
        assert!(plan(listed(), &previous, &at(Duration::ZERO), 0.0)
            .read
            .is_empty());
        let after_outage = plan(listed(), &previous, &at(Duration::from_secs(86_400)), 0.0);
        assert_eq!(after_outage.read.len(), 0, "0.69 of a read owed, not 100");
    }

    #[test]
    fn the_budget_defers_the_least_urgent_reads() {
        let old = record("z", "u", Some(NOW - 86_400 * 2));
        let previous: HashMap<&str, &KeyRecord> = [(&*old.labels.service_key_guid, &old)].into();
        let listed: Vec<ListedKey> = ["a", "b", "c", "z"]
            .iter()
            .map(|g| listed(g, "u"))
            .collect();
        let p = plan(listed, &previous, &policy(Some(2)), 1.0);
        assert_eq!(reasons(&p), [("a", Why::New), ("b", Why::New)]);
        assert_eq!(p.deferred, 2);
        assert_eq!(p.kept.len(), 2);
        // The deferred due read is still owed.
        assert!(p.due_credit >= 1.0, "{}", p.due_credit);
        let unread = p
            .kept
            .iter()
            .find(|r| &*r.labels.service_key_guid == "c")
            .unwrap();
        assert!(unread.reading.is_none());
    }

    #[test]
    fn a_failing_key_is_retried_at_the_next_refresh_then_less_often() {
        let ri = Duration::from_secs(5 * MIN);
        let next = |attempts| backoff(NOW, attempts, ri) - NOW;
        assert_eq!(next(1), 150, "the next refresh (5 minutes on) is past it");
        assert_eq!(next(2), 450);
        assert_eq!(next(3), 1050);
        assert_eq!(next(10), 3600 - 150, "at most an hour");
        assert_eq!(next(u32::MAX), 3600 - 150);
        // A refresh interval longer than the cap: every refresh.
        assert_eq!(backoff(NOW, 5, Duration::from_secs(7200)) - NOW, 3600);
    }

    #[test]
    fn the_budget_shares_what_remains_over_the_refreshes_left_in_the_window() {
        let ri = Duration::from_secs(5 * MIN);
        let rate = |remaining, reset_in| RateLimit {
            limit: 2000,
            remaining,
            reset: NOW + reset_in,
        };
        // A fresh hour: 12 refreshes, 6 list pages each and a tenth of 2,000 kept back.
        assert_eq!(read_budget(Some(rate(1800, 3600)), NOW, ri, 6), Some(127));
        // The last refresh of the window may spend what is left above the tenth.
        assert_eq!(read_budget(Some(rate(400, 100)), NOW, ri, 6), Some(194));
        // Down to the tenth, or under it (Cloud Foundry reports 0): lists only.
        assert_eq!(read_budget(Some(rate(200, 100)), NOW, ri, 6), Some(0));
        assert_eq!(read_budget(Some(rate(0, 1800)), NOW, ri, 6), Some(0));
        // A reset in the past (clock skew): this refresh is the window's last.
        assert_eq!(read_budget(Some(rate(600, -5)), NOW, ri, 6), Some(394));
        assert_eq!(read_budget(None, NOW, ri, 6), None);
    }
}
