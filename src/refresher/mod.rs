//! Keeps one foundation's part of the [`Store`] up to date.
//!
//! A refresh lists the foundation's keys (a few list pages: [`CfClient::list_keys`]), plans which
//! ones to read ([`plan`]: new, changed, failing and a steady share of due keys, within the
//! rate-limit budget), reads their `/details` with bounded concurrency ([`read`]), and publishes
//! a complete [`FoundationSnapshot`] in one swap. So a refresh in which nothing changed costs
//! only the list pages, owner labels edited in Cloud Foundry show at the next refresh without a
//! `/details` request, and the periodic full re-read is spread over every refresh instead of
//! coming due all at once. Publishing is all a refresh does with its result: the metrics are
//! rendered and the cache file written by those who follow the store.
//!
//! Nothing is lost to a bad minute: a failed listing keeps the last snapshot and only flips
//! `refresh_success` to 0; a key whose details fail keeps its last reading beside the failure
//! (and is reported to the foundation's [`Telemetry`], which counts it in
//! `details_errors_total{reason}`); a refresh that runs out of time
//! publishes what it read and keeps the last readings of the rest.
//!
//! The first refresh that lists the keys and leaves none of them unattempted (a failed read
//! counts as an attempt; one the budget deferred does not) marks the foundation
//! [ready](crate::snapshot::RefreshStatus::ready) for `/readyz`. A key whose lead-time
//! annotation turns invalid is logged once, here, where the previous records are at hand.
//!
//! [`Refresher::refresh`] says how it went ([`RefreshOutcome`]); the wall clock comes from an
//! injected [`Clock`] (the transport's rate-limit waits too), so tests step through days of
//! refreshes without sleeping.

pub mod plan;
pub mod read;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cf::error::Chain;
use crate::cf::{CfClient, CfError};
use crate::clock::{Clock, SystemClock};
use crate::config::FoundationConfig;
use crate::snapshot::{FoundationSnapshot, KeyRecord, LeadTime, RefreshStatus, Store};
use crate::vocab::Telemetry;

/// The shortest time a refresh is given before it stops and publishes what it has.
const MIN_REFRESH_DEADLINE: Duration = Duration::from_secs(300);

/// What one refresh did, for the log line, `report` and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshStats {
    /// Keys listed (and published).
    pub keys: usize,
    /// Details fetched successfully.
    pub details_read: usize,
    /// Keys that kept their last reading without a request.
    pub reused: usize,
    /// Failed fetches plus unreadable things in fetched credentials.
    pub details_errors: usize,
    /// Reads the rate-limit budget pushed to a later refresh.
    pub deferred: usize,
    /// Keys never read successfully, after this refresh.
    pub unread: usize,
    /// Requests sent by this refresh (logins and list pages included).
    pub requests: u64,
}

/// Why a refresh did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Logging in or listing failed: nothing new was published, the last keys stay.
    #[error(transparent)]
    List(#[from] CfError),
    /// The deadline stopped the reads: what was read is published, the rest kept.
    #[error(
        "the refresh ran out of time after {0:?}; the keys not read yet keep their last reading"
    )]
    OutOfTime(Duration),
}

/// How one refresh went.
#[derive(Debug)]
pub struct RefreshOutcome {
    pub stats: RefreshStats,
    /// `None`: the refresh completed (`refresh_success` 1).
    pub error: Option<RefreshError>,
}

/// Refreshes one foundation.
#[derive(Debug)]
pub struct Refresher {
    config: FoundationConfig,
    client: CfClient,
    store: Arc<Store>,
    /// Where the reads that failed are reported (the client reports its requests there too).
    telemetry: Arc<dyn Telemetry>,
    clock: Arc<dyn Clock>,
    start_delay: Duration,
    /// How long the rate-limit budget left must last: the refresh interval (the default), or
    /// `Duration::MAX` for a single refresh that may spend all of it (`report`).
    budget_window: Option<Duration>,
    /// The fraction of a due read owed to the next refresh ([`plan::Plan::due_credit`]), and
    /// when the last refresh was planned (Unix seconds).
    due: Mutex<(f64, Option<i64>)>,
}

impl Refresher {
    pub fn new(
        config: FoundationConfig,
        store: Arc<Store>,
        telemetry: Arc<dyn Telemetry>,
    ) -> Result<Self, CfError> {
        let client = CfClient::new(&config, telemetry.clone())?;
        Ok(Refresher {
            config,
            client,
            store,
            telemetry,
            clock: Arc::new(SystemClock),
            start_delay: Duration::ZERO,
            budget_window: None,
            due: Mutex::new((0.0, None)),
        })
    }

    /// Reads the wall clock from `clock` instead of the system (the transport's rate-limit
    /// waits too).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.client.set_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Waits this long before the first refresh (so foundations started together do not all
    /// refresh in the same second).
    pub fn with_start_delay(mut self, delay: Duration) -> Self {
        self.start_delay = delay;
        self
    }

    /// Spreads the rate-limit budget left over `window` instead of the refresh interval
    /// (`Duration::MAX`: a single refresh may spend all of it, less its own list pages).
    pub fn with_budget_window(mut self, window: Duration) -> Self {
        self.budget_window = Some(window);
        self
    }

    /// Requests this refresher's client sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.client.requests_sent()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The foundation's configuration.
    pub fn config(&self) -> &FoundationConfig {
        &self.config
    }

    /// The foundation's client: its transport, pacer and rate-limit reading, which further
    /// reads (`report --rotate-plan`) share.
    pub fn client(&self) -> &CfClient {
        &self.client
    }

    /// How long [`Refresher::run`] waits before the first refresh.
    #[cfg(test)]
    pub fn start_delay(&self) -> Duration {
        self.start_delay
    }

    /// Refreshes after the start delay, then every refresh interval (start to start), until
    /// `cancel` fires. Cancellation wins over a refresh in progress.
    pub async fn run(self, cancel: CancellationToken) {
        let mut next = Instant::now() + self.start_delay;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            next = Instant::now() + self.config.refresh_interval;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = self.refresh() => {}
            }
        }
    }

    /// One refresh, published to the store; how it went is returned (and logged).
    pub async fn refresh(&self) -> RefreshOutcome {
        let name = self.config.name.as_str();
        let started = Instant::now();
        let requests_before = self.client.requests_sent();
        let previous = self.store.foundation(name).unwrap_or_default();
        let deadline = started + self.config.refresh_interval.max(MIN_REFRESH_DEADLINE);

        let result = self
            .read_keys(&previous.keys, deadline, requests_before)
            .await;
        let duration = started.elapsed();
        let requests = self.client.requests_sent() - requests_before;
        let mut status = RefreshStatus {
            finished_once: true,
            ready: previous.status.ready,
            success: false,
            last_success_at: previous.status.last_success_at,
            last_duration: Some(duration),
        };
        let owner_labels: Arc<[String]> = self
            .config
            .metadata_labels
            .iter()
            .map(|m| m.label.clone())
            .collect();
        let (keys, mut stats, error) = match result {
            Ok((keys, stats, timed_out)) => (
                Arc::new(keys),
                stats,
                timed_out.then_some(RefreshError::OutOfTime(duration)),
            ),
            Err(e) => (
                previous.keys.clone(),
                RefreshStats::default(),
                Some(RefreshError::List(e)),
            ),
        };
        stats.requests = requests;
        if error.is_none() {
            status.success = true;
            status.last_success_at = Some(self.clock.now());
        }
        self.log(&stats, error.as_ref(), duration);
        let produced_keys = !matches!(error, Some(RefreshError::List(_)));
        // A listing that failed says nothing of the estate; one that left keys unattempted
        // (the budget or the deadline stopped it) is not yet the whole truth.
        status.ready |= produced_keys
            && keys
                .iter()
                .all(|k| k.reading.is_some() || k.failure.is_some());
        let successors = crate::snapshot::Successors::find(&keys, &self.config.rotation);
        self.store.publish(
            name,
            FoundationSnapshot {
                keys,
                owner_labels,
                status,
                successors,
            },
        );
        RefreshOutcome { stats, error }
    }

    /// Lists, plans and reads; the records (sorted by guid), the stats and whether the
    /// deadline cut the reads short.
    async fn read_keys(
        &self,
        previous: &[KeyRecord],
        deadline: Instant,
        requests_before: u64,
    ) -> Result<(Vec<KeyRecord>, RefreshStats, bool), CfError> {
        let listed = self.client.list_keys(&self.config.service_plans).await?;
        let list_requests = self.client.requests_sent() - requests_before;
        let now = self.clock.unix_now();
        let previous: HashMap<&str, &KeyRecord> = previous
            .iter()
            .map(|k| (&*k.labels.service_key_guid, k))
            .collect();
        let (credit, last_planned) = *self.due.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = last_planned.map_or(0, |at| (now - at).max(0));
        let policy = plan::Policy {
            now,
            elapsed: Duration::from_secs(u64::try_from(elapsed).unwrap_or(0)),
            refresh_interval: self.config.refresh_interval,
            full_refresh_interval: self.config.full_refresh_interval,
            read_budget: plan::read_budget(
                self.client.rate_limit(),
                now,
                self.budget_window.unwrap_or(self.config.refresh_interval),
                list_requests,
            ),
        };
        let plan = plan::plan(listed, &previous, &policy, credit);
        *self.due.lock().unwrap_or_else(|e| e.into_inner()) = (plan.due_credit, Some(now));

        let reader = read::Reader {
            client: &self.client,
            telemetry: &*self.telemetry,
            foundation: &self.config.name,
            concurrency: self.config.details_concurrency.get(),
            now,
            refresh_interval: self.config.refresh_interval,
        };
        let reused = plan.kept.len();
        let read = reader.read(plan.read, deadline).await;
        let mut records = plan.kept;
        records.extend(read.records);
        records.sort_by(|a, b| a.labels.service_key_guid.cmp(&b.labels.service_key_guid));
        self.log_invalid_lead_times(&previous, &records);
        let stats = RefreshStats {
            keys: records.len(),
            details_read: read.fetched,
            reused,
            details_errors: read.errors,
            deferred: plan.deferred,
            unread: records.iter().filter(|r| r.reading.is_none()).count(),
            requests: 0,
        };
        Ok((records, stats, read.timed_out))
    }

    /// One warning per key whose lead-time annotation turned invalid (the next refreshes stay
    /// quiet while it stays so). The key's identity and the reason, and of the value (untrusted
    /// text) only its escaped excerpt.
    fn log_invalid_lead_times(&self, previous: &HashMap<&str, &KeyRecord>, records: &[KeyRecord]) {
        let Some(annotation) = self.config.lead_time_annotation.as_deref() else {
            return;
        };
        for key in records {
            let LeadTime::Invalid(invalid) = &key.lead_time else {
                continue;
            };
            let before = previous.get(&*key.labels.service_key_guid);
            if before.is_some_and(|b| b.lead_time.is_invalid()) {
                continue;
            }
            let l = &key.labels;
            tracing::warn!(
                foundation = self.config.name.as_str(),
                // Names are free text: Debug escapes them, as the excerpt is escaped.
                org = ?l.org,
                space = ?l.space,
                service_instance = ?l.service_instance,
                service_key = ?l.service_key,
                service_key_guid = %l.service_key_guid,
                annotation,
                on = invalid.level,
                reason = invalid.reason,
                // Escaped already (quotes and backslashes too), so quoting it is unambiguous.
                value = %format_args!("\"{}\"", invalid.excerpt),
                "ignoring the key's lead-time annotation; the default lead applies"
            );
        }
    }

    fn log(&self, stats: &RefreshStats, error: Option<&RefreshError>, duration: Duration) {
        // The figures every outcome reports, once, in the span around the line.
        let _figures = tracing::info_span!(
            "refresh",
            foundation = self.config.name.as_str(),
            keys = stats.keys,
            details_read = stats.details_read,
            reused = stats.reused,
            details_errors = stats.details_errors,
            unread = stats.unread,
            deferred = stats.deferred,
            requests = stats.requests,
            duration = ?duration,
        )
        .entered();
        match error {
            None if stats.deferred > 0 => tracing::info!(
                "refresh completed within the rate-limit budget; {} of {} keys read so far, the rest in later refreshes",
                stats.keys - stats.unread,
                stats.keys,
            ),
            None => tracing::info!("refresh completed"),
            Some(RefreshError::OutOfTime(_)) => tracing::warn!(
                "refresh ran out of time; published what it read and kept the last readings of the rest"
            ),
            Some(RefreshError::List(error)) => tracing::error!(
                error = %Chain(error),
                reason = error.reason().as_str(),
                "refresh failed; keeping the last known keys"
            ),
        }
    }
}
