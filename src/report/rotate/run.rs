//! `report --rotate-plan`: one refresh of every foundation (as `report` does), then a plan for
//! each selected key.
//!
//! The keys are those the report's filters keep (`--only-foundation`, `--owner`, `--key`) and,
//! with `--expiring-within`, only those within it. Per foundation, the offerings and the
//! parameters of the keys that need a successor are read through that foundation's client
//! ([`super::fetch`]); everything else comes from the refresh's snapshot: each key's place,
//! lifetime, owners, shape and successor. Output as [`crate::report`]: the plan on stdout,
//! errors and warnings on stderr; the exit codes are the report's (1: a key is within
//! `--expiring-within`; 2: a foundation could not be read).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use time::OffsetDateTime;

use super::fetch;
use super::parameters::{self, Known};
use super::plan::{self, Context, KeyPlan, Target};
use super::render;
use crate::cli::{ReportArgs, ReportOutput};
use crate::clock::Clock;
use crate::config::Config;
use crate::refresher::Refresher;
use crate::report::{self, select, Outcome, Refreshed, Row};
use crate::snapshot::{FoundationSnapshot, KeyRecord};

/// Every selected key's plan, soonest expiry first, and how each foundation's refresh went.
#[derive(Debug, Default)]
pub struct Plans {
    pub keys: Vec<KeyPlan>,
    pub outcomes: Vec<(String, Outcome)>,
    /// When the plans were made (Unix seconds).
    pub now: i64,
}

/// Runs `report --rotate-plan`: refresh, plan, print; the exit code.
pub async fn run(config: &Config, args: &ReportArgs, clock: Arc<dyn Clock>) -> u8 {
    let refreshed = report::refresh(config, std::io::stderr().is_terminal(), clock).await;
    let plans = plans(&refreshed, args, refreshed.clock.unix_now()).await;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    finish(&plans, args, &mut stdout, &mut stderr)
}

/// Prints the plans and decides the exit code; separated from [`run`] for tests.
pub fn finish(plans: &Plans, args: &ReportArgs, out: &mut impl Write, err: &mut impl Write) -> u8 {
    let (mut any_read, mut any_failed) = (false, false);
    for (name, outcome) in &plans.outcomes {
        let (read, failed) = report::tell_outcome(name, outcome, err);
        any_read |= read;
        any_failed |= failed;
    }
    if !any_read {
        let _ = writeln!(err, "error: no foundation could be read");
        return report::EXIT_NOT_READ;
    }
    let text = match args.output {
        ReportOutput::Table => Ok(render::text(plans)),
        ReportOutput::Json => render::json(plans),
    };
    let written = text
        .map_err(std::io::Error::other)
        .and_then(|t| out.write_all(t.as_bytes()).and_then(|()| out.flush()));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let _ = writeln!(err, "error: cannot write the plan: {e}");
            return report::EXIT_RUNTIME;
        }
    }
    if any_failed {
        report::EXIT_NOT_READ
    } else if args.expiring_within.is_some() && !plans.keys.is_empty() {
        report::EXIT_EXPIRING
    } else {
        report::EXIT_OK
    }
}

/// The plans of the keys `args` select, read on from a refresh.
pub async fn plans(refreshed: &Refreshed, args: &ReportArgs, now: i64) -> Plans {
    let snapshot = refreshed.store.load();
    let mut keys = Vec::new();
    for refresher in &refreshed.refreshers {
        if let Some(foundation) = snapshot.foundations.get(refresher.name()) {
            keys.extend(foundation_plans(refresher, foundation, args, now).await);
        }
    }
    // Soonest expiry first (keys without one last), then by place and name.
    keys.sort_by_cached_key(|p| {
        (
            p.seconds_left.is_none(),
            p.seconds_left,
            [
                &p.foundation,
                &p.org,
                &p.space,
                &p.service_instance,
                &p.service_key,
            ]
            .map(|s| s.to_owned()),
        )
    });
    let outcomes = (refreshed.outcomes.iter())
        .map(|(name, outcome, _)| (name.clone(), outcome.clone()))
        .collect();
    Plans {
        keys,
        outcomes,
        now,
    }
}

/// The plans of one foundation's selected keys: their parameters read through its client,
/// the rest from its snapshot.
async fn foundation_plans(
    refresher: &Refresher,
    foundation: &FoundationSnapshot,
    args: &ReportArgs,
    now: i64,
) -> Vec<KeyPlan> {
    let selected = select_keys(refresher.name(), foundation, args, now);
    if selected.is_empty() {
        return Vec::new();
    }
    let config = refresher.config();
    let needing: Vec<&KeyRecord> = (selected.iter())
        .filter(|&&i| foundation.successors.of(i).is_none())
        .map(|&i| &foundation.keys[i])
        .collect();
    let concurrency = config.details_concurrency.get();
    let mut fetched = fetch::parameters(refresher.client(), &needing, concurrency, now).await;
    let siblings = siblings(&foundation.keys);
    let today = OffsetDateTime::from_unix_timestamp(now)
        .map(OffsetDateTime::date)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH.date());
    let ctx = Context {
        rotation: &config.rotation,
        today,
        now,
    };
    let mut out = Vec::with_capacity(selected.len());
    for i in selected {
        let key = &foundation.keys[i];
        let name: &str = &key.labels.service_key;
        let target = Target {
            foundation: refresher.name(),
            key,
            owners: (config.metadata_labels.iter())
                .zip(key.owners.iter())
                .filter_map(|(m, v)| Some((m.key.clone(), v.as_deref()?.to_owned())))
                .collect(),
            successor: foundation.successors.of(i).map(|j| &foundation.keys[j]),
            siblings: (siblings.get(&instance(key)).into_iter().flatten())
                .copied()
                .filter(|n| *n != name)
                .collect(),
            parameters: fetched
                .remove(&*key.labels.service_key_guid)
                .map(|f| parameters::decide(f, known(key))),
        };
        out.push(plan::build(target, ctx));
    }
    out
}

/// The positions of the keys of one foundation that the filters (and `--expiring-within`)
/// keep.
fn select_keys(name: &str, f: &FoundationSnapshot, args: &ReportArgs, now: i64) -> Vec<usize> {
    let label: Arc<str> = Arc::from(name);
    (f.keys.iter().enumerate())
        .filter(|(_, key)| {
            let row = Row {
                foundation: label.clone(),
                owner_labels: f.owner_labels.clone(),
                key: (*key).clone(),
            };
            select::keeps(args, &row)
                && (args.expiring_within).is_none_or(|w| report::is_within(&row, now, w))
        })
        .map(|(i, _)| i)
        .collect()
}

/// What the parameters may be derived from.
fn known(key: &KeyRecord) -> Known {
    Known {
        shape: key.reading.as_ref().and_then(|r| r.shape),
        days: key
            .expiry()
            .and_then(|e| parameters::days(e.valid_from?, e.expires_at)),
    }
}

type Instance<'a> = (&'a str, &'a str, &'a str);

fn instance(k: &KeyRecord) -> Instance<'_> {
    (&k.labels.org, &k.labels.space, &k.labels.service_instance)
}

/// The names of every instance's keys.
fn siblings(keys: &[KeyRecord]) -> HashMap<Instance<'_>, Vec<&str>> {
    let mut out: HashMap<Instance<'_>, Vec<&str>> = HashMap::new();
    for k in keys {
        out.entry(instance(k))
            .or_default()
            .push(&k.labels.service_key);
    }
    out
}
