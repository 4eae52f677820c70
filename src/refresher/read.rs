//! Reads the details of the planned keys and turns each answer into the key's new record.
//!
//! At most `details_concurrency` requests are in flight; when the refresh's deadline comes,
//! the reads still running are dropped and their keys keep what they had. Credentials live only
//! for the moment their expiry ([`crate::expiry::extract`]) and shape
//! ([`crate::rotation::shape::read`]) are read, then are dropped.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use super::plan::{self, Job};
use crate::cf::{CfClient, CfError};
use crate::expiry::{self, Extraction};
use crate::rotation::shape;
use crate::snapshot::{KeyExpiry, KeyRecord, Reading};
use crate::vocab::{ApiEvent, Telemetry};

/// What reading the planned keys gave.
#[derive(Debug, Default)]
pub struct Read {
    /// One record per job, read or not.
    pub records: Vec<KeyRecord>,
    /// Details fetched successfully.
    pub fetched: usize,
    /// Failed fetches plus unreadable things in fetched credentials.
    pub errors: usize,
    /// The deadline stopped the reads before every job was done.
    pub timed_out: bool,
}

/// Reads the jobs' details for one foundation.
pub struct Reader<'a> {
    pub client: &'a CfClient,
    pub telemetry: &'a dyn Telemetry,
    pub foundation: &'a str,
    pub concurrency: usize,
    /// Unix seconds: the time written into each reading.
    pub now: i64,
    pub refresh_interval: Duration,
}

impl Reader<'_> {
    pub async fn read(&self, jobs: Vec<Job>, deadline: Instant) -> Read {
        let mut out = Read::default();
        // Each job's record, until its read completes: what the deadline leaves keeps it.
        let mut pending: HashMap<usize, KeyRecord> = HashMap::with_capacity(jobs.len());
        let requests: Vec<(usize, String)> = jobs
            .into_iter()
            .enumerate()
            .map(|(i, job)| {
                let guid = job.record.labels.service_key_guid.to_string();
                pending.insert(i, job.record);
                (i, guid)
            })
            .collect();
        let client = self.client;
        let mut reads = stream::iter(requests)
            .map(|(i, guid)| async move {
                let result = client.key_details(&guid).await.map(|credentials| {
                    // The credentials are dropped here, once their expiry and shape are read.
                    (expiry::extract(&credentials), shape::read(&credentials))
                });
                (i, result)
            })
            .buffer_unordered(self.concurrency.max(1));
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            let next = tokio::select! {
                next = reads.next() => next,
                _ = &mut sleep => { out.timed_out = true; None }
            };
            let Some((i, result)) = next else { break };
            let (result, shape) = match result {
                Ok((extraction, shape)) => (Ok(extraction), Some(shape)),
                Err(e) => (Err(e), None),
            };
            let Some(record) = pending.remove(&i) else {
                continue;
            };
            let guid = record.labels.service_key_guid.clone();
            match &result {
                Ok(extraction) => {
                    out.fetched += 1;
                    for error in &extraction.errors {
                        out.errors += 1;
                        self.telemetry
                            .record(ApiEvent::DetailsError(error.reason()));
                        tracing::warn!(foundation = self.foundation, key = %guid, %error, "expiry not readable");
                    }
                }
                Err(error) => {
                    out.errors += 1;
                    self.telemetry
                        .record(ApiEvent::DetailsError(error.reason()));
                    tracing::warn!(foundation = self.foundation, key = %guid, %error, "cannot read the key's details");
                }
            }
            let mut record = after_read(record, result, self.now, self.refresh_interval);
            // Only a fetch that succeeded has a shape, and it gave the record a new reading.
            if let (Some(reading), Some(shape)) = (record.reading.as_mut(), shape) {
                reading.shape = Some(shape);
            }
            out.records.push(record);
        }
        out.records.extend(pending.into_values());
        out
    }
}

/// A key's record after an attempt to read its details. A fetch that failed keeps the last
/// reading beside the failure, with a backoff before the next attempt; fetched credentials
/// give a new reading, and what could not be read in them is a failure no retry changes.
pub fn after_read(
    mut record: KeyRecord,
    result: Result<Extraction, CfError>,
    now: i64,
    refresh_interval: Duration,
) -> KeyRecord {
    let before = record.failure.take();
    match result {
        Ok(extraction) => {
            record.reading = Some(Reading {
                read_at: now,
                expiry: extraction.earliest().map(|found| KeyExpiry {
                    expires_at: found.expires_at.unix_timestamp(),
                    valid_from: expiry::valid_from(found, record.created_at),
                    source: found.source,
                    certificate: found.certificate.clone(),
                }),
                shape: None,
            });
            record.failure = extraction
                .errors
                .first()
                .map(|e| plan::failed(before.as_ref(), e.reason(), None));
        }
        Err(error) => {
            let attempts = before.as_ref().map_or(0, |f| f.attempts) + 1;
            let retry_at = plan::backoff(now, attempts, refresh_interval);
            record.failure = Some(plan::failed(
                before.as_ref(),
                error.reason(),
                Some(retry_at),
            ));
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ReadFailure;
    use crate::vocab::Reason;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const RI: Duration = Duration::from_secs(300);

    fn record() -> KeyRecord {
        crate::snapshot::test_record("g")
    }

    fn not_found() -> CfError {
        CfError::Status {
            endpoint: "/x",
            status: 404,
            api: None,
            retry_after: None,
        }
    }

    #[test]
    fn a_first_read_that_fails_leaves_the_key_unread_with_its_reason() {
        let r = after_read(record(), Err(not_found()), NOW, RI);
        assert!(r.reading.is_none());
        assert_eq!(r.expiry_source(), "unread");
        let f = r.failure.unwrap();
        assert_eq!((f.reason, f.attempts), (Reason::NotFound, 1));
        assert_eq!(f.retry_at, Some(NOW + 150));
    }

    #[test]
    fn a_failure_after_a_good_read_keeps_the_reading_and_counts_attempts() {
        let good = after_read(
            record(),
            Ok(expiry::extract(&json!({"expires_at": 1_900_000_000}))),
            NOW,
            RI,
        );
        assert_eq!(good.expiry().map(|e| e.expires_at), Some(1_900_000_000));
        // No start of validity in the credentials: the key's creation time.
        assert_eq!(
            good.expiry().and_then(|e| e.valid_from),
            Some(1_700_000_000)
        );
        let bad = after_read(good.clone(), Err(not_found()), NOW + 300, RI);
        let bad = after_read(bad, Err(not_found()), NOW + 600, RI);
        assert_eq!(bad.reading, good.reading);
        assert_eq!(bad.failure.as_ref().map(|f| f.attempts), Some(2));
        // And a good read clears it.
        let healed = after_read(
            bad,
            Ok(expiry::extract(&json!({"expires_at": 1_900_000_000}))),
            NOW + 900,
            RI,
        );
        assert_eq!(healed.failure, None);
        assert_eq!(healed.reading.map(|r| r.read_at), Some(NOW + 900));
    }

    #[test]
    fn unreadable_credentials_are_a_failure_that_waits_for_the_full_re_read() {
        let r = after_read(
            record(),
            Ok(expiry::extract(&json!({"expiry": "next tuesday"}))),
            NOW,
            RI,
        );
        assert_eq!(r.expiry_source(), "none");
        assert_eq!(
            r.failure,
            Some(ReadFailure {
                reason: Reason::InvalidDate,
                attempts: 1,
                retry_at: None
            })
        );
    }
}
