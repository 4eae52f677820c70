//! Keeps one foundation's part of the [`Store`] up to date.
//!
//! A refresh lists instances and keys (two paginated calls, run concurrently), reads the
//! `/details` of each key that is new or changed (bounded concurrency), extracts the expiry,
//! and publishes a complete [`FoundationSnapshot`] in one swap. A key whose `updated_at` (and
//! its instance's) is unchanged reuses its last reading, so a refresh in which nothing changed
//! costs only the list pages; every `full_refresh_interval` a key is read again regardless.
//! With a [`Cache`], the readings are also written to the cache file after each refresh that
//! produced a key set (complete or cut short by the deadline: every record in it is a genuine
//! reading), and the store starts seeded from that file, so a restart reuses them too.
//!
//! Nothing is lost to a bad minute: a failed listing keeps the last snapshot and only flips
//! `refresh_success` to 0; a key whose details fail keeps its last reading if it had one (and
//! is counted in `details_errors_total{reason}`); a refresh that runs out of time publishes what
//! it read, keeps the last readings for the rest, and reports itself as failed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::cf::{CfClient, CfError, Instance, Key};
use crate::config::FoundationConfig;
use crate::expiry;
use crate::metrics::ExporterMetrics;
use crate::snapshot::{FoundationSnapshot, KeyExpiry, KeyLabels, KeyRecord, RefreshStatus, Store};

/// The shortest time a refresh is given before it stops and publishes what it has.
const MIN_REFRESH_DEADLINE: Duration = Duration::from_secs(300);

/// What one refresh did, for the log line and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshStats {
    pub keys: usize,
    pub details_read: usize,
    pub reused: usize,
    pub details_errors: usize,
    pub requests: u64,
    /// The deadline stopped the refresh before every key was read.
    pub timed_out: bool,
}

/// Refreshes one foundation.
#[derive(Debug)]
pub struct Refresher {
    config: FoundationConfig,
    client: CfClient,
    store: Arc<Store>,
    metrics: Arc<ExporterMetrics>,
    cache: Option<Arc<Cache>>,
}

impl Refresher {
    pub fn new(
        config: FoundationConfig,
        store: Arc<Store>,
        metrics: Arc<ExporterMetrics>,
    ) -> Result<Self, CfError> {
        let client = CfClient::new(&config, metrics.recorder(&config.name))?;
        Ok(Refresher {
            config,
            client,
            store,
            metrics,
            cache: None,
        })
    }

    /// Writes the readings to this cache file after each refresh that produced a key set.
    pub fn with_cache(mut self, cache: Option<Arc<Cache>>) -> Self {
        self.cache = cache;
        self
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Refreshes now, then every refresh interval, until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let started = Instant::now();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.refresh() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(started + self.config.refresh_interval) => {}
            }
        }
    }

    /// One refresh, published to the store. Never fails: a failure is recorded in the snapshot.
    pub async fn refresh(&self) -> RefreshStats {
        let name = self.config.name.as_str();
        let started = Instant::now();
        let requests_before = self.client.requests_sent();
        let previous = self.store.foundation(name).unwrap_or_default();
        let deadline = started + self.config.refresh_interval.max(MIN_REFRESH_DEADLINE);
        let result = self.read_keys(&previous.keys, deadline).await;
        let duration = started.elapsed();
        let mut status = RefreshStatus {
            finished_once: true,
            success: false,
            last_success_at: previous.status.last_success_at,
            last_duration: Some(duration),
        };
        let requests = self.client.requests_sent() - requests_before;
        match result {
            Ok((keys, mut stats)) => {
                stats.requests = requests;
                status.success = !stats.timed_out;
                if status.success {
                    status.last_success_at = Some(SystemTime::now());
                    tracing::info!(
                        foundation = name,
                        keys = stats.keys,
                        details_read = stats.details_read,
                        reused = stats.reused,
                        details_errors = stats.details_errors,
                        requests,
                        duration = ?duration,
                        "refresh completed"
                    );
                } else {
                    tracing::warn!(
                        foundation = name,
                        keys = stats.keys,
                        details_read = stats.details_read,
                        requests,
                        duration = ?duration,
                        "refresh ran out of time; published what it read and kept the last readings of the rest"
                    );
                }
                self.store.publish(
                    name,
                    FoundationSnapshot {
                        keys: Arc::new(keys),
                        status,
                    },
                );
                if let Some(cache) = &self.cache {
                    cache.save(&self.store).await;
                }
                stats
            }
            Err(error) => {
                tracing::error!(
                    foundation = name,
                    %error,
                    reason = error.reason(),
                    requests,
                    duration = ?duration,
                    "refresh failed; keeping the last known keys"
                );
                self.store.publish(
                    name,
                    FoundationSnapshot {
                        keys: previous.keys.clone(),
                        status,
                    },
                );
                RefreshStats {
                    requests,
                    ..Default::default()
                }
            }
        }
    }

    async fn read_keys(
        &self,
        previous: &[KeyRecord],
        deadline: Instant,
    ) -> Result<(Vec<KeyRecord>, RefreshStats), CfError> {
        let plans = &self.config.service_plans;
        let (instances, keys) = tokio::try_join!(
            self.client.list_instances(plans),
            self.client.list_keys(plans)
        )?;
        let previous: HashMap<&str, &KeyRecord> = previous
            .iter()
            .map(|k| (&*k.labels.service_key_guid, k))
            .collect();
        let now = crate::snapshot::unix_now();
        let full_reread =
            i64::try_from(self.config.full_refresh_interval.as_secs()).unwrap_or(i64::MAX);
        let mut stats = RefreshStats::default();
        let mut records = Vec::with_capacity(keys.len());
        let mut to_read = Vec::new();

        for key in keys {
            // A key of an instance outside the listing (another plan, or created between the two
            // calls) is picked up by the next refresh.
            let Some(instance) = key.instance_guid.as_deref().and_then(|g| instances.get(g)) else {
                continue;
            };
            if !key.ready {
                continue;
            }
            let labels = labels(instance, &key);
            match previous.get(key.guid.as_str()) {
                Some(old)
                    if *old.key_updated_at == *key.updated_at
                        && old.instance_updated_at == instance.updated_at
                        && now - old.read_at < full_reread =>
                {
                    stats.reused += 1;
                    records.push(KeyRecord {
                        labels,
                        ..(*old).clone()
                    });
                }
                old => to_read.push((
                    key,
                    instance.updated_at.clone(),
                    labels,
                    old.map(|o| (*o).clone()),
                )),
            }
        }

        // Keys with a last reading, until their read completes: what a deadline leaves unread
        // keeps that reading.
        let mut unread: HashMap<String, KeyRecord> = to_read
            .iter()
            .filter_map(|(key, _, labels, old)| {
                old.as_ref().map(|o| {
                    (
                        key.guid.clone(),
                        KeyRecord {
                            labels: labels.clone(),
                            ..o.clone()
                        },
                    )
                })
            })
            .collect();
        let name = self.config.name.as_str();
        let concurrency = self.config.details_concurrency.get();
        let client = &self.client;
        let mut reads = stream::iter(to_read)
            .map(|(key, instance_updated_at, labels, old)| async move {
                let result = client.key_details(&key.guid).await;
                (key, instance_updated_at, labels, old, result)
            })
            .buffer_unordered(concurrency);
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            let next = tokio::select! {
                next = reads.next() => next,
                _ = &mut sleep => { stats.timed_out = true; None }
            };
            let Some((key, instance_updated_at, labels, old, result)) = next else {
                break;
            };
            unread.remove(&key.guid);
            match result {
                Ok(credentials) => {
                    stats.details_read += 1;
                    let extraction = expiry::extract(&credentials);
                    drop(credentials);
                    for error in &extraction.errors {
                        stats.details_errors += 1;
                        self.metrics.details_error(name, error.reason());
                        tracing::warn!(foundation = name, key = %key.guid, %error, "expiry not readable");
                    }
                    records.push(KeyRecord {
                        labels,
                        expiry: extraction.earliest().map(|f| KeyExpiry {
                            expires_at: f.expires_at.unix_timestamp(),
                            source: f.source,
                            certificate: f.certificate.clone(),
                        }),
                        key_updated_at: Arc::from(key.updated_at.as_str()),
                        instance_updated_at,
                        read_at: now,
                    });
                }
                Err(error) => {
                    stats.details_errors += 1;
                    self.metrics.details_error(name, error.reason());
                    tracing::warn!(foundation = name, key = %key.guid, %error, "cannot read the key's details");
                    if let Some(old) = old {
                        records.push(KeyRecord { labels, ..old });
                    }
                }
            }
        }
        if stats.timed_out {
            records.extend(unread.into_values());
        }
        records.sort_by(|a, b| a.labels.service_key_guid.cmp(&b.labels.service_key_guid));
        stats.keys = records.len();
        Ok((records, stats))
    }
}

fn labels(instance: &Instance, key: &Key) -> KeyLabels {
    KeyLabels {
        org: instance.org.clone(),
        space: instance.space.clone(),
        service_offering: instance.offering.clone(),
        service_plan: instance.plan.clone(),
        service_instance: instance.name.clone(),
        service_key: Arc::from(key.name.as_str()),
        service_key_guid: Arc::from(key.guid.as_str()),
    }
}
