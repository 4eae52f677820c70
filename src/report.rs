//! The `report` subcommand: one refresh of every configured foundation, then every key with its
//! expiry, as a table or JSON, soonest expiry first.
//!
//! It reuses the server's path unchanged: one [`Refresher`] per foundation publishing into a
//! private [`Store`], all foundations refreshed concurrently, then one [`Store::load`]; how each
//! refresh went comes from the refresh itself ([`RefreshOutcome`]). Nothing here talks to Cloud
//! Foundry itself, and nothing here sees a credential: only what the snapshot holds (names,
//! guids, dates, owners, public certificate facts). Columns and JSON fields come from the one
//! definition of a key's labels ([`KeyLabels`]). [`select`] holds the filters
//! (`--only-foundation`, `--owner`, `--key`); with `--rotate-plan` the same refresh feeds
//! [`rotate::run`] instead of the table.
//!
//! Output discipline: the table or JSON goes to stdout and nothing else does; errors, warnings,
//! the list of expiring keys and the progress line go to stderr. The progress line is drawn only
//! when stderr is a terminal, and colour only when stdout is one (and `NO_COLOR` is unset).
//!
//! # Exit codes
//! - [`EXIT_OK`] (0): every foundation was read and no key expires within `--expiring-within`.
//! - [`EXIT_EXPIRING`] (1): `--expiring-within` was given and a key expires within it (an expired
//!   key counts); the keys are listed on stderr.
//! - [`EXIT_NOT_READ`] (2): a foundation could not be read at all (login or listing failed, or
//!   its refresh ran out of time before reading a key). The keys of the other foundations are
//!   still printed, but the exit code says the report is incomplete; like `grep`, the error wins
//!   over a match. A foundation that was only partly read (out of time, or reads deferred by the
//!   rate-limit budget) is a warning on stderr, not an error: its keys are printed, those not
//!   read yet as `unread`. When no foundation at all could be read, nothing is printed on stdout
//!   (an empty table or `[]` would read as "no keys").
//! - [`EXIT_RUNTIME`] (3): the report could not be written (stdout closed early is not an error).

pub mod rotate;
pub mod select;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::cf::error::Chain;
use crate::cli::{ExpiringWithin, ReportArgs, ReportOutput};
use crate::clock::Clock;
use crate::config::Config;
use crate::refresher::{RefreshError, RefreshOutcome, RefreshStats, Refresher};
use crate::snapshot::{KeyLabels, KeyRecord, Store, KEY_LABEL_COUNT};
use crate::vocab::NoTelemetry;

/// Every foundation read, nothing expiring within the window.
pub const EXIT_OK: u8 = 0;
/// A key expires within `--expiring-within`.
pub const EXIT_EXPIRING: u8 = 1;
/// A foundation could not be read (also: bad configuration or usage, decided in `main`).
pub const EXIT_NOT_READ: u8 = 2;
/// The report could not be written.
pub const EXIT_RUNTIME: u8 = 3;

/// One service key of one foundation, as the report shows it.
#[derive(Debug, Clone)]
pub struct Row {
    pub foundation: Arc<str>,
    /// The foundation's owner label names (`label_team`, ...), in the order of `key.owners`.
    pub owner_labels: Arc<[String]>,
    pub key: KeyRecord,
}

impl Row {
    /// Seconds from `now` until the key expires (negative once expired); `None` without expiry.
    pub fn seconds_left(&self, now: i64) -> Option<i64> {
        self.key.expiry().map(|e| e.expires_at - now)
    }

    /// The key's whole lifetime (expiry − valid from), when both are known.
    pub fn lifetime(&self) -> Option<i64> {
        let e = self.key.expiry()?;
        Some(e.expires_at - e.valid_from?)
    }

    fn owner(&self, label: &str) -> Option<&str> {
        self.key
            .owner_pairs(&self.owner_labels)
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v)
    }
}

/// How the refresh of one foundation went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every key was listed and read.
    Complete,
    /// Listed, but some keys not read yet (out of time, or deferred by the rate-limit budget):
    /// they are in the report as `unread` or with their last reading.
    Partial(String),
    /// Nothing could be read; why.
    Failed(String),
}

impl Outcome {
    /// What `report` makes of a refresh.
    pub fn of(outcome: &RefreshOutcome) -> Outcome {
        let stats = &outcome.stats;
        match &outcome.error {
            Some(RefreshError::List(e)) => Outcome::Failed(Chain(e).to_string()),
            Some(RefreshError::OutOfTime(_)) if stats.details_read == 0 => {
                Outcome::Failed("the refresh ran out of time before reading any key".into())
            }
            Some(e @ RefreshError::OutOfTime(_)) => Outcome::Partial(e.to_string()),
            None if stats.deferred > 0 => Outcome::Partial(format!(
                "the rate-limit budget left {} keys for later; they are shown as unread",
                stats.deferred
            )),
            None => Outcome::Complete,
        }
    }
}

/// What one report run read.
#[derive(Debug, Default)]
pub struct Collected {
    /// Every key, in no particular order (see [`sort`]).
    pub rows: Vec<Row>,
    /// Per foundation, in configuration order.
    pub outcomes: Vec<(String, Outcome, RefreshStats)>,
    /// What the operator should know about the configuration (see [`Config::warnings`]).
    pub warnings: Vec<String>,
}

/// Runs the report: refresh, render to stdout, and return the exit code. The refreshers and the
/// time left read the wall clock from `clock`.
pub async fn run(config: &Config, args: &ReportArgs, clock: Arc<dyn Clock>) -> u8 {
    if let Err(e) = select::check(args, config) {
        eprintln!("error: {}", safe(&e));
        return EXIT_NOT_READ;
    }
    if args.rotate_plan {
        return rotate::run::run(config, args, clock).await;
    }
    let progress = std::io::stderr().is_terminal();
    let collected = collect(config, progress, clock.clone()).await;
    let now = clock.unix_now();
    let colour = crate::logging::colour_allowed(std::io::stdout().is_terminal());
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    finish(collected, args, now, colour, &mut stdout, &mut stderr)
}

/// Renders what was read and decides the exit code; separated from [`run`] for tests.
pub fn finish(
    collected: Collected,
    args: &ReportArgs,
    now: i64,
    colour: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> u8 {
    let (any_read, any_failed) = tell(&collected, err);
    if !any_read {
        let _ = writeln!(err, "error: no foundation could be read");
        return EXIT_NOT_READ;
    }

    let mut rows = collected.rows;
    rows.retain(|row| select::keeps(args, row));
    sort(&mut rows);
    let expiring: Vec<&Row> = match args.expiring_within {
        Some(within) => rows.iter().filter(|r| is_within(r, now, within)).collect(),
        None => Vec::new(),
    };
    let rendered = match args.output {
        ReportOutput::Table => Ok(table(&rows, now, colour, args.expiring_within)),
        ReportOutput::Json => json(&rows, now),
    };
    let written = rendered
        .map_err(std::io::Error::other)
        .and_then(|text| out.write_all(text.as_bytes()).and_then(|()| out.flush()));
    match written {
        Ok(()) => {}
        // `report | head` closes stdout early; that is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let _ = writeln!(err, "error: cannot write the report: {e}");
            return EXIT_RUNTIME;
        }
    }

    if let Some(within) = args.expiring_within {
        if !expiring.is_empty() {
            let _ = writeln!(
                err,
                "{} within {within}:",
                match expiring.len() {
                    1 => "1 key expires".to_owned(),
                    n => format!("{n} keys expire"),
                }
            );
            for row in &expiring {
                let l = &row.key.labels;
                let left = row.seconds_left(now).map_or_else(String::new, time_left);
                let _ = writeln!(
                    err,
                    "  {} {}/{} {} {}: {left} ({})",
                    safe(&row.foundation),
                    safe(&l.org),
                    safe(&l.space),
                    safe(&l.service_instance),
                    safe(&l.service_key),
                    row.key
                        .expiry()
                        .map_or_else(String::new, |e| rfc3339(e.expires_at)),
                );
            }
        }
    }

    if any_failed {
        EXIT_NOT_READ
    } else if !expiring.is_empty() {
        EXIT_EXPIRING
    } else {
        EXIT_OK
    }
}

/// Writes the configuration warnings and how each foundation went to `err`; returns whether any
/// foundation was read and whether any failed. Every text is escaped: names and errors come from
/// Cloud Foundry.
fn tell(collected: &Collected, err: &mut impl Write) -> (bool, bool) {
    // Writing to stderr is best effort: if even that fails there is nobody left to tell.
    let mut any_read = false;
    let mut any_failed = false;
    for warning in &collected.warnings {
        let _ = writeln!(err, "warning: {}", safe(warning));
    }
    for (name, outcome, stats) in &collected.outcomes {
        let (read, failed) = tell_outcome(name, outcome, err);
        any_read |= read;
        any_failed |= failed;
        let name = safe(name);
        if stats.details_errors > 0 && !matches!(outcome, Outcome::Failed(_)) {
            let _ = writeln!(
                err,
                "warning: foundation {name}: {} errors reading key details (see the log and the ERROR column); such a key keeps its last reading, or shows as unread",
                stats.details_errors
            );
        }
    }
    (any_read, any_failed)
}

/// Writes how one foundation's refresh went to `err` (nothing when it was complete), escaped;
/// returns whether it was read and whether it failed.
pub(crate) fn tell_outcome(name: &str, outcome: &Outcome, err: &mut impl Write) -> (bool, bool) {
    let name = safe(name);
    match outcome {
        Outcome::Complete => (true, false),
        Outcome::Partial(why) => {
            let _ = writeln!(err, "warning: foundation {name}: {}", safe(why));
            (true, false)
        }
        Outcome::Failed(why) => {
            let _ = writeln!(
                err,
                "error: foundation {name} could not be read: {}",
                safe(why)
            );
            (false, true)
        }
    }
}

/// Every foundation refreshed once: the store they published into, their refreshers (whose
/// clients `report --rotate-plan` reads on with) and how each refresh went.
pub struct Refreshed {
    pub store: Arc<Store>,
    pub refreshers: Vec<Refresher>,
    /// Per foundation, in configuration order.
    pub outcomes: Vec<(String, Outcome, RefreshStats)>,
    /// The wall clock the refreshers read (and what comes after them reads).
    pub clock: Arc<dyn Clock>,
}

/// Refreshes every foundation once, concurrently, and gathers their keys.
pub async fn collect(config: &Config, progress: bool, clock: Arc<dyn Clock>) -> Collected {
    let refreshed = refresh(config, progress, clock).await;
    let snapshot = refreshed.store.load();
    let mut rows = Vec::new();
    for refresher in &refreshed.refreshers {
        if let Some(foundation) = snapshot.foundations.get(refresher.name()) {
            let label: Arc<str> = Arc::from(refresher.name());
            rows.extend(foundation.keys.iter().map(|key| Row {
                foundation: label.clone(),
                owner_labels: foundation.owner_labels.clone(),
                key: key.clone(),
            }));
        }
    }
    Collected {
        rows,
        outcomes: refreshed.outcomes,
        warnings: config.warnings(),
    }
}

/// Refreshes every foundation once, concurrently, on `clock`.
pub async fn refresh(config: &Config, progress: bool, clock: Arc<dyn Clock>) -> Refreshed {
    let store = Arc::new(Store::new());
    let mut outcomes = Vec::new();
    let mut refreshers = Vec::new();
    for foundation in &config.foundations {
        store.register(&foundation.name);
        match Refresher::new(foundation.clone(), store.clone(), Arc::new(NoTelemetry)) {
            // One refresh, not a series: it may spend the whole rate-limit budget left.
            Ok(r) => refreshers.push(
                r.with_clock(clock.clone())
                    .with_budget_window(Duration::MAX),
            ),
            Err(e) => outcomes.push((
                foundation.name.clone(),
                Outcome::Failed(Chain(&e).to_string()),
                RefreshStats::default(),
            )),
        }
    }
    let refreshes = futures::future::join_all(refreshers.iter().map(|r| r.refresh()));
    let results = if progress {
        with_progress(refreshes, &store, || {
            refreshers.iter().map(Refresher::requests_sent).sum()
        })
        .await
    } else {
        refreshes.await
    };

    for (refresher, result) in refreshers.iter().zip(results) {
        let outcome = Outcome::of(&result);
        outcomes.push((refresher.name().to_owned(), outcome, result.stats));
    }
    // Configuration order, whether a foundation failed to start or to refresh.
    outcomes.sort_by_key(|(name, _, _)| {
        config
            .foundations
            .iter()
            .position(|f| &f.name == name)
            .unwrap_or(usize::MAX)
    });
    Refreshed {
        store,
        refreshers,
        outcomes,
        clock,
    }
}

/// Awaits `work` while drawing a spinner line on stderr: foundations done, requests sent so far
/// (about one per key on a first read).
async fn with_progress<F: Future>(
    work: F,
    store: &Store,
    requests_sent: impl Fn() -> u64,
) -> F::Output {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(work);
    let mut frame = 0;
    loop {
        tokio::select! {
            out = &mut work => {
                eprint!("\r\x1b[2K");
                return out;
            }
            _ = tick.tick() => {
                let snapshot = store.load();
                let total = snapshot.foundations.len();
                let done = snapshot.foundations.values().filter(|f| f.status.finished_once).count();
                let sent = requests_sent();
                eprint!(
                    "\r\x1b[2K{} reading {total} {}: {done} done, {sent} requests, {}s",
                    FRAMES[frame % FRAMES.len()],
                    if total == 1 { "foundation" } else { "foundations" },
                    started.elapsed().as_secs(),
                );
                let _ = std::io::stderr().flush();
                frame += 1;
            }
        }
    }
}

/// Soonest expiry first (expired keys first of all), keys without expiry last, unread keys
/// after them; ties by foundation and the key's labels so the order is stable across runs.
pub fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        let expiry = |r: &Row| match (r.key.expiry(), &r.key.reading) {
            (Some(e), _) => (0, e.expires_at),
            (None, Some(_)) => (1, 0),
            (None, None) => (2, 0),
        };
        expiry(a)
            .cmp(&expiry(b))
            .then_with(|| a.foundation.cmp(&b.foundation))
            .then_with(|| a.key.labels.values().cmp(&b.key.labels.values()))
    });
}

/// Within the window: time left up to the duration, or up to the fraction of the key's
/// lifetime. Expired keys always are; keys without an expiry never are.
pub(crate) fn is_within(row: &Row, now: i64, within: ExpiringWithin) -> bool {
    let Some(left) = row.seconds_left(now) else {
        return false;
    };
    match within {
        ExpiringWithin::Duration(d) => left <= i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        ExpiringWithin::Fraction(f) => {
            left <= 0
                || row
                    .lifetime()
                    .is_some_and(|life| (left as f64) <= f * life as f64)
        }
    }
}

/// Time left as people say it: the two largest units (`2d 3h`, `5h 12m`, `40s`), and
/// `expired 2d ago` once the key has expired (at its expiry second it counts as expired).
pub(crate) fn time_left(seconds_left: i64) -> String {
    if seconds_left > 0 {
        span(seconds_left.unsigned_abs())
    } else if seconds_left == 0 {
        "expired just now".to_owned()
    } else {
        format!("expired {} ago", span(seconds_left.unsigned_abs()))
    }
}

/// Truncates rather than rounds: a key with 2d 23h 59m left shows `2d 23h`, never `3d`.
fn span(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit} {small}{small_unit}")
        }
    };
    if d > 0 {
        pair(d, "d", h, "h")
    } else if h > 0 {
        pair(h, "h", m, "m")
    } else if m > 0 {
        pair(m, "m", s, "s")
    } else {
        format!("{s}s")
    }
}

/// RFC 3339 in UTC (`2025-03-01T12:00:00Z`); the bare number if the year is out of range.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Columns after the key's labels, before the owners.
const READING_HEADERS: [&str; 6] = [
    "CREATED",
    "VALID FROM",
    "EXPIRES AT",
    "TIME LEFT",
    "SOURCE",
    "ERROR",
];
/// Columns at the end.
const CERTIFICATE_HEADERS: [&str; 3] = ["SUBJECT", "ISSUER", "SERIAL"];

/// Every owner label of the rows, in the order foundations configure them.
fn owner_columns(rows: &[Row]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for label in rows.iter().flat_map(|r| r.owner_labels.iter()) {
        if !out.contains(label) {
            out.push(label.clone());
        }
    }
    out
}

/// `label_example_com_owner` → `EXAMPLE_COM_OWNER`.
fn owner_header(label: &str) -> String {
    label.strip_prefix("label_").unwrap_or(label).to_uppercase()
}

/// An aligned table, one key per line, `-` in empty cells. With `colour`, expired keys are red
/// and keys within `warn_within` yellow (whole lines, so alignment is unaffected).
pub fn table(rows: &[Row], now: i64, colour: bool, warn_within: Option<ExpiringWithin>) -> String {
    let shown: Vec<usize> = (0..KEY_LABEL_COUNT)
        .filter(|i| KeyLabels::HEADERS[*i].is_some())
        .collect();
    let owners = owner_columns(rows);
    let mut header: Vec<String> = vec!["FOUNDATION".to_owned()];
    header.extend(
        shown
            .iter()
            .filter_map(|i| KeyLabels::HEADERS[*i])
            .map(str::to_owned),
    );
    header.extend(READING_HEADERS.iter().map(|h| (*h).to_owned()));
    header.extend(owners.iter().map(|l| owner_header(l)));
    header.extend(CERTIFICATE_HEADERS.iter().map(|h| (*h).to_owned()));

    let dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    let date = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), rfc3339);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let values = row.key.labels.values();
            let e = row.key.expiry();
            let cert = e.and_then(|e| e.certificate.as_ref());
            let mut line = vec![row.foundation.to_string()];
            line.extend(shown.iter().map(|i| values[*i].to_owned()));
            line.extend([
                date(row.key.created_at),
                date(e.and_then(|e| e.valid_from)),
                date(e.map(|e| e.expires_at)),
                row.seconds_left(now)
                    .map_or_else(|| "-".to_owned(), time_left),
                row.key.expiry_source().to_owned(),
                dash(row.key.failure.as_ref().map(|f| f.reason.as_str())),
            ]);
            line.extend(owners.iter().map(|l| dash(row.owner(l))));
            line.extend([
                dash(cert.map(|c| c.subject.as_str())),
                dash(cert.map(|c| c.issuer.as_str())),
                dash(cert.map(|c| c.serial.as_str())),
            ]);
            line.into_iter()
                .map(|cell| safe(&cell).into_owned())
                .collect::<Vec<String>>()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String], paint: Option<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        match paint {
            Some(code) => {
                let _ = writeln!(out, "\x1b[{code}m{}\x1b[0m", text.trim_end());
            }
            None => {
                let _ = writeln!(out, "{}", text.trim_end());
            }
        }
    };
    line(&header, colour.then_some("1"));
    for (row, cells) in rows.iter().zip(&cells) {
        let paint = match row.seconds_left(now) {
            _ if !colour => None,
            Some(left) if left <= 0 => Some("31"),
            Some(_) if warn_within.is_some_and(|w| is_within(row, now, w)) => Some("33"),
            _ => None,
        };
        line(cells, paint);
    }
    out
}

/// One object in the JSON array; the field names are part of the interface.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    foundation: &'a str,
    #[serde(flatten)]
    labels: &'a KeyLabels,
    /// RFC 3339, UTC; `null` when unknown.
    created_at: Option<String>,
    /// RFC 3339, UTC; `null` without expiry.
    valid_from: Option<String>,
    /// RFC 3339, UTC; `null` without expiry.
    expires_at: Option<String>,
    /// Unix seconds; `null` without expiry.
    expires_at_unix: Option<i64>,
    /// Negative once expired; `null` without expiry.
    seconds_left: Option<i64>,
    expiry_source: &'static str,
    /// The reason the latest read failed; `null` when it did not.
    read_error: Option<&'static str>,
    /// Owner label → value, for the owners found.
    owners: BTreeMap<&'a str, &'a str>,
    certificate: Option<&'a crate::expiry::CertificateInfo>,
}

/// A pretty-printed JSON array, one object per key, in the order given.
pub fn json(rows: &[Row], now: i64) -> Result<String, serde_json::Error> {
    let objects: Vec<JsonRow> = rows
        .iter()
        .map(|row| {
            let e = row.key.expiry();
            JsonRow {
                foundation: &row.foundation,
                labels: &row.key.labels,
                created_at: row.key.created_at.map(rfc3339),
                valid_from: e.and_then(|e| e.valid_from).map(rfc3339),
                expires_at: e.map(|e| rfc3339(e.expires_at)),
                expires_at_unix: e.map(|e| e.expires_at),
                seconds_left: row.seconds_left(now),
                expiry_source: row.key.expiry_source(),
                read_error: row.key.failure.as_ref().map(|f| f.reason.as_str()),
                owners: row.key.owner_pairs(&row.owner_labels).collect(),
                certificate: e.and_then(|e| e.certificate.as_ref()),
            }
        })
        .collect();
    safe_json(&objects)
}

/// Pretty-printed JSON with every unsafe character escaped ([`SafeJson`]), and a final newline.
pub(crate) fn safe_json(value: &impl Serialize) -> Result<String, serde_json::Error> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, SafeJson::default());
    value.serialize(&mut serializer)?;
    let mut text = String::from_utf8(bytes).map_err(serde::ser::Error::custom)?;
    text.push('\n');
    Ok(text)
}

/// Characters that must not reach a terminal raw: C0 and C1 controls (escape sequences, OSC
/// titles and hyperlinks), DEL, and the bidirectional overrides that reorder what is shown.
/// Any space developer can put them in a name or an annotation.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as a visible `\u{..}` escape.
pub(crate) fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// serde_json's pretty printer, writing every unsafe character as a `\uXXXX` escape (serde_json
/// escapes only C0 controls): the JSON means the same, and a terminal shows it inertly.
#[derive(Default)]
struct SafeJson(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for SafeJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(is_unsafe) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(writer, "\\u{:04x}", c as u32)?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::CertificateInfo;
    use crate::snapshot::{KeyExpiry, Reading};

    const NOW: i64 = 1_700_000_000;
    const DAY: i64 = 86_400;

    fn row(foundation: &str, key: &str, expires_in: Option<i64>) -> Row {
        let name = |s: &str| Arc::<str>::from(s);
        Row {
            foundation: name(foundation),
            owner_labels: Arc::from([]),
            key: KeyRecord {
                labels: KeyLabels {
                    org: name("org"),
                    space: name("space"),
                    service_offering: name("offering"),
                    service_plan: name("plan"),
                    service_instance: name("instance"),
                    service_key: name(key),
                    service_key_guid: name(&format!("guid-{key}")),
                },
                created_at: Some(NOW - 100 * DAY),
                owners: Arc::from([]),
                lead_time: Default::default(),
                key_updated_at: name(""),
                instance_updated_at: name(""),
                reading: Some(Reading {
                    read_at: NOW,
                    expiry: expires_in.map(|s| KeyExpiry {
                        expires_at: NOW + s,
                        valid_from: Some(NOW - 100 * DAY),
                        source: crate::vocab::ExpirySource::ExpiresAt,
                        certificate: None,
                    }),
                    shape: None,
                }),
                failure: None,
                facts: Default::default(),
            },
        }
    }

    fn keys(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| &*r.key.labels.service_key).collect()
    }

    /// `finish` with this output and window (in seconds), at `NOW`, without colour: the exit
    /// code, stdout and stderr.
    fn finished(
        collected: Collected,
        output: ReportOutput,
        within: Option<i64>,
    ) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let within = within.map(|s| Duration::from_secs(s as u64));
        let code = finish(
            collected,
            &args(output, within),
            NOW,
            false,
            &mut out,
            &mut err,
        );
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (code, text(out), text(err))
    }

    fn args(output: ReportOutput, within: Option<Duration>) -> ReportArgs {
        let within = within.map(ExpiringWithin::Duration);
        ReportArgs {
            output,
            expiring_within: within,
            rotate_plan: false,
            only_foundation: Vec::new(),
            owner: Vec::new(),
            keys: Vec::new(),
        }
    }

    #[test]
    fn time_left_names_the_two_largest_units_and_truncates() {
        assert_eq!(time_left(2 * DAY + 3 * 3600 + 59 * 60), "2d 3h");
        assert_eq!(time_left(3 * DAY - 1), "2d 23h");
        assert_eq!(time_left(365 * DAY), "365d");
        assert_eq!(time_left(5 * 3600 + 12 * 60 + 7), "5h 12m");
        assert_eq!(time_left(3600), "1h");
        assert_eq!(time_left(61), "1m 1s");
        assert_eq!(time_left(40), "40s");
        assert_eq!(time_left(1), "1s");
    }

    #[test]
    fn time_left_of_an_expired_key_says_how_long_ago() {
        assert_eq!(time_left(-2 * DAY), "expired 2d ago");
        assert_eq!(time_left(-(2 * DAY + 5)), "expired 2d ago");
        assert_eq!(time_left(-90), "expired 1m 30s ago");
        assert_eq!(time_left(0), "expired just now");
        assert_eq!(time_left(i64::MIN), "expired 106751991167300d 15h ago");
    }

    #[test]
    fn sort_puts_the_soonest_expiry_first_and_keys_without_expiry_last() {
        let mut rows = vec![
            row("a", "none-1", None),
            row("a", "year", Some(365 * DAY)),
            row("a", "expired", Some(-2 * DAY)),
            row("a", "days", Some(3 * DAY)),
            row("a", "none-0", None),
        ];
        sort(&mut rows);
        assert_eq!(keys(&rows), ["expired", "days", "year", "none-0", "none-1"]);
    }

    #[test]
    fn sort_breaks_ties_by_names_so_the_order_is_stable() {
        let mut rows = vec![
            row("b", "k", Some(DAY)),
            row("a", "z", Some(DAY)),
            row("a", "k", Some(DAY)),
        ];
        sort(&mut rows);
        let order: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (&*r.foundation, &*r.key.labels.service_key))
            .collect();
        assert_eq!(order, [("a", "k"), ("a", "z"), ("b", "k")]);
    }

    #[test]
    fn table_aligns_columns_without_colour_and_dashes_empty_cells() {
        let mut with_cert = row("f", "cert", Some(60 * DAY));
        let reading = with_cert.key.reading.as_mut().unwrap();
        reading.expiry.as_mut().unwrap().certificate = Some(CertificateInfo {
            subject: "CN=client".into(),
            issuer: "CN=ca".into(),
            serial: "0x0A".into(),
        });
        let text = table(&[with_cert, row("f", "plain", None)], NOW, false, None);
        assert!(!text.contains('\x1b'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let column = |line: &str, name: &str| line.find(name).unwrap();
        let at = column(lines[0], "TIME LEFT");
        assert_eq!(&lines[1][at..at + 3], "60d");
        assert_eq!(&lines[2][at..at + 1], "-");
        assert!(
            lines[1].ends_with("CN=client  CN=ca   0x0A"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains(" none "));
        assert!(lines[2].ends_with('-'));
    }

    #[test]
    fn table_colours_expired_and_expiring_lines_only_when_asked() {
        let rows = [
            row("f", "gone", Some(-DAY)),
            row("f", "soon", Some(DAY)),
            row("f", "fine", Some(90 * DAY)),
        ];
        let within = ExpiringWithin::Duration(Duration::from_secs(7 * DAY as u64));
        let text = table(&rows, NOW, true, Some(within));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("\x1b[31m"));
        assert!(lines[2].starts_with("\x1b[33m"));
        assert!(!lines[3].contains('\x1b'));
    }

    #[test]
    fn json_has_stable_fields_and_null_for_a_key_without_expiry() {
        let text = json(&[row("f", "k", Some(-DAY)), row("f", "n", None)], NOW).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = &value[0];
        assert_eq!(first["expires_at"], "2023-11-13T22:13:20Z");
        assert_eq!(first["expires_at_unix"], NOW - DAY);
        assert_eq!(first["seconds_left"], -DAY);
        assert_eq!(first["expiry_source"], "expires_at");
        assert_eq!(first["certificate"], serde_json::Value::Null);
        assert_eq!(value[1]["expires_at"], serde_json::Value::Null);
        assert_eq!(value[1]["expiry_source"], "none");
    }

    #[test]
    fn an_expired_key_counts_as_expiring_and_exits_1() {
        let collected = Collected {
            rows: vec![
                row("f", "gone", Some(-DAY)),
                row("f", "fine", Some(90 * DAY)),
            ],
            outcomes: vec![("f".into(), Outcome::Complete, RefreshStats::default())],
            warnings: Vec::new(),
        };
        let (code, out, err) = finished(collected, ReportOutput::Table, Some(DAY));
        assert_eq!(code, EXIT_EXPIRING);
        assert!(out.contains(" fine "), "the whole table is printed: {out}");
        assert!(err.contains("1 key expires within 1day:"), "{err}");
        assert!(err.contains("gone: expired 1d ago"), "{err}");
        assert!(!err.contains("fine"), "{err}");
    }

    #[test]
    fn a_failed_foundation_exits_2_but_the_others_are_still_printed() {
        let collected = Collected {
            rows: vec![row("ok", "k", Some(-DAY))],
            outcomes: vec![
                ("ok".into(), Outcome::Complete, RefreshStats::default()),
                (
                    "down".into(),
                    Outcome::Failed("login refused".into()),
                    RefreshStats::default(),
                ),
            ],
            warnings: Vec::new(),
        };
        let (code, out, err) = finished(collected, ReportOutput::Table, Some(DAY));
        assert_eq!(code, EXIT_NOT_READ);
        assert!(out.contains(" k "));
        assert!(
            err.contains("foundation down could not be read: login refused"),
            "{err}"
        );
    }

    #[test]
    fn nothing_read_prints_nothing_and_exits_2() {
        let collected = Collected {
            rows: Vec::new(),
            outcomes: vec![(
                "down".into(),
                Outcome::Failed("x".into()),
                RefreshStats::default(),
            )],
            warnings: Vec::new(),
        };
        let (code, out, err) = finished(collected, ReportOutput::Json, None);
        assert_eq!(code, EXIT_NOT_READ);
        assert!(out.is_empty());
        assert!(err.contains("error: no foundation could be read"), "{err}");
    }

    #[test]
    fn a_partly_read_foundation_is_a_warning() {
        let collected = Collected {
            rows: vec![row("slow", "k", Some(90 * DAY))],
            outcomes: vec![(
                "slow".into(),
                Outcome::Partial("the refresh ran out of time".into()),
                RefreshStats {
                    keys: 1,
                    ..Default::default()
                },
            )],
            warnings: Vec::new(),
        };
        let (code, out, err) = finished(collected, ReportOutput::Table, None);
        assert_eq!(code, EXIT_OK);
        assert!(out.contains(" k "), "its keys are printed: {out}");
        assert!(err.contains("warning: foundation slow: the refresh ran out of time"));
    }

    #[test]
    fn control_characters_in_every_field_are_escaped_in_the_table_and_the_json() {
        let evil = [
            "\x1b[2J",
            "\x1b]8;;http://x\x07",
            "\u{9b}31m",
            "\u{202e}",
            "\x7f",
        ];
        let mut r = row("f\x1b[2J", "k\x1b]0;title\x07", Some(-DAY));
        r.key.labels.org = Arc::from("org\u{9b}31m");
        r.key.labels.space = Arc::from("sp\u{202e}ace");
        r.key.labels.service_instance = Arc::from("i\x7f");
        r.key
            .reading
            .as_mut()
            .unwrap()
            .expiry
            .as_mut()
            .unwrap()
            .certificate = Some(CertificateInfo {
            subject: "CN=a\x1b[31m".into(),
            issuer: "CN=b\r\n".into(),
            serial: "01".into(),
        });
        let rows = vec![r];
        let table = table(&rows, NOW, false, None);
        let json = json(&rows, NOW).unwrap();
        let mut err = Vec::new();
        let code = finish(
            Collected {
                rows: rows.clone(),
                outcomes: vec![(
                    "f\x1b[2J".into(),
                    Outcome::Complete,
                    RefreshStats::default(),
                )],
                warnings: vec!["w\x1b[2J".into()],
            },
            &args(ReportOutput::Table, Some(Duration::from_secs(DAY as u64))),
            NOW,
            false,
            &mut Vec::new(),
            &mut err,
        );
        assert_eq!(code, EXIT_EXPIRING);
        let err = String::from_utf8(err).unwrap();
        for text in [&table, &json, &err] {
            for bad in evil.iter().chain(&["\r"]) {
                assert!(!text.contains(bad), "{bad:?} in {text:?}");
            }
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
        assert!(table.contains("org\\u{9b}31m"), "{table}");
        // The JSON still means the same text.
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[0]["org"], "org\u{9b}31m");
        assert_eq!(parsed[0]["space"], "sp\u{202e}ace");
    }
}
