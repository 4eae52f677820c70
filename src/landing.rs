//! The landing page (`/`): what needs doing, for someone without Grafana.
//!
//! Per foundation: its status, then the keys expiring soonest and the keys that cannot be read,
//! each with its owners, time left, lifetime, successor and the `report --rotate-plan` command
//! that prints its rotation. Each table is bounded ([`ROWS`] rows, then the count of the rest),
//! so the page stays small at 20,000 keys. Server-rendered HTML: every value from Cloud Foundry
//! is escaped, there is no script and nothing is loaded from elsewhere (the style is inline).
//! Pure: a snapshot and a clock in, a page out; the server puts it behind the same
//! `--web-config-file` protection as every endpoint.

use std::fmt::Write as _;

use crate::report::{rfc3339, time_left};
use crate::snapshot::{FoundationSnapshot, KeyRecord, Snapshot};

/// Most rows of each table per foundation.
pub const ROWS: usize = 20;

/// How the page shows the command that prints a key's rotation plan.
#[derive(Debug, Clone)]
pub struct PlanCommand {
    /// The command up to its filters, e.g. `cf-service-key-exporter report --demo`, or with
    /// `--config PATH`.
    pub prefix: String,
    /// Shown under the tables when the command needs more (the connection flags).
    pub hint: Option<String>,
}

impl Default for PlanCommand {
    fn default() -> Self {
        PlanCommand {
            prefix: "cf-service-key-exporter report".into(),
            hint: Some("add the exporter's connection flags (--cf-api-url ...) or --config".into()),
        }
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters would be invisible or garble the text: show them escaped.
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#f2f2f2}td.left{white-space:nowrap}tr.expired td.left,tr.critical td.left{color:#b00;font-weight:bold}\
code{font-size:.85em;background:#f6f6f6;padding:.1em .3em}code span{white-space:nowrap}td:first-child{min-width:11em}td small,th small{color:#555;font-weight:normal}.warning{color:#b00}.more{color:#555}";

/// The whole page at `now` (Unix seconds).
pub fn page(snapshot: &Snapshot, warnings: &[String], command: &PlanCommand, now: i64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cf-service-key-exporter</title><style>{STYLE}</style></head>\
<body><h1>cf-service-key-exporter {}</h1>",
        env!("CARGO_PKG_VERSION")
    );
    for w in warnings {
        let _ = write!(
            out,
            "<p class=\"warning\"><strong>Warning:</strong> {}</p>",
            escape(w)
        );
    }
    out.push_str("<p><a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></p>");
    out.push_str(&summary(snapshot));
    for (name, f) in &snapshot.foundations {
        foundation(&mut out, name, f, command, now);
    }
    if let Some(hint) = &command.hint {
        let _ = write!(
            out,
            "<p class=\"more\">Rotate-plan commands: {}.</p>",
            escape(hint)
        );
    }
    out.push_str("</body></html>");
    out
}

fn status(f: &FoundationSnapshot) -> &'static str {
    match (f.status.finished_once, f.status.success, f.status.ready) {
        (false, _, false) => "first refresh running",
        (false, _, true) => "seeded from the cache file; first refresh running",
        (true, true, true) => "ok",
        (true, true, false) => "reading keys within the rate-limit budget (not ready yet)",
        (true, false, _) => "last refresh failed",
    }
}

fn summary(snapshot: &Snapshot) -> String {
    let mut rows = String::new();
    for (name, f) in &snapshot.foundations {
        let unread = f.keys.iter().filter(|k| k.reading.is_none()).count();
        let failing = f.keys.iter().filter(|k| k.failure.is_some()).count();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{unread}</td><td>{failing}</td><td>{}</td></tr>",
            escape(name),
            f.keys.len(),
            status(f)
        );
    }
    format!("<table><tr><th>foundation</th><th>service keys</th><th>never read</th><th>latest read failed</th><th>status</th></tr>{rows}</table>")
}

/// One foundation's two tables.
fn foundation(
    out: &mut String,
    name: &str,
    f: &FoundationSnapshot,
    command: &PlanCommand,
    now: i64,
) {
    let _ = write!(out, "<h2>{}</h2>", escape(name));
    let mut expiring: Vec<usize> = (0..f.keys.len())
        .filter(|&i| f.keys[i].expiry().is_some())
        .collect();
    expiring.sort_by_key(|&i| (f.keys[i].expiry().map(|e| e.expires_at), i));
    let rows = Rows {
        f,
        command,
        now,
        column: Column::TimeLeft,
    };
    let _ = write!(out, "<h3>Expiring soonest</h3>");
    rows.table(out, &expiring);
    let unreadable: Vec<usize> = (0..f.keys.len())
        .filter(|&i| f.keys[i].reading.is_none() || f.keys[i].failure.is_some())
        .collect();
    let _ = write!(out, "<h3>Cannot be read</h3>");
    Rows {
        column: Column::Reason,
        ..rows
    }
    .table(out, &unreadable);
}

/// The column that differs between the two tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    TimeLeft,
    Reason,
}

/// One table of one foundation's keys.
#[derive(Clone, Copy)]
struct Rows<'a> {
    f: &'a FoundationSnapshot,
    command: &'a PlanCommand,
    now: i64,
    column: Column,
}

impl Rows<'_> {
    fn table(self, out: &mut String, keys: &[usize]) {
        if keys.is_empty() {
            out.push_str("<p class=\"more\">none</p>");
            return;
        }
        let middle = match self.column {
            Column::TimeLeft => "<th>time left</th>",
            Column::Reason => "<th>why</th><th>time left</th>",
        };
        let _ = write!(
            out,
            "<table><tr><th>key<br><small>org / space / instance</small></th><th>owner</th>{middle}<th>lifetime</th><th>successor</th><th>rotate plan</th></tr>"
        );
        for &i in keys.iter().take(ROWS) {
            self.row(out, i);
        }
        out.push_str("</table>");
        if keys.len() > ROWS {
            let _ = write!(out, "<p class=\"more\">and {} more</p>", keys.len() - ROWS);
        }
    }

    fn row(self, out: &mut String, i: usize) {
        let (f, k) = (self.f, &self.f.keys[i]);
        let l = &k.labels;
        let left = k.expiry().map(|e| e.expires_at - self.now);
        let class = match left {
            Some(s) if s <= 0 => "expired",
            Some(s) if s < 7 * 86_400 => "critical",
            _ => "",
        };
        let left_text = escape(&left.map_or_else(|| "-".to_owned(), time_left));
        let expires = k
            .expiry()
            .map_or_else(|| "-".into(), |e| rfc3339(e.expires_at));
        let middle = match self.column {
            Column::TimeLeft => format!("<td class=\"left\" title=\"{expires}\">{left_text}</td>"),
            Column::Reason => format!(
                "<td>{}</td><td class=\"left\" title=\"{expires}\">{left_text}</td>",
                escape(&why_unreadable(k)),
            ),
        };
        let owners: Vec<String> = k
            .owner_pairs(&f.owner_labels)
            .map(|(label, v)| format!("{}={v}", label.strip_prefix("label_").unwrap_or(label)))
            .collect();
        let lifetime = k
            .expiry()
            .and_then(|e| Some(e.expires_at - e.valid_from?))
            .filter(|s| *s > 0)
            .map_or_else(|| "-".to_owned(), time_left);
        let successor = f.successors.of(i).and_then(|j| f.keys.get(j)).map_or_else(
            || "-".to_owned(),
            |s| {
                let since = s.created_at.map(rfc3339).unwrap_or_default();
                format!("{} (since {since})", s.labels.service_key)
            },
        );
        // A key's guid is unique across foundations: it alone selects the key.
        let plan = format!(
            "{} --rotate-plan --key {}",
            self.command.prefix,
            crate::report::rotate::plan::command(&[&l.service_key_guid]),
        );
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{}<br><small>{} / {} / {}</small></td><td>{}</td>{middle}<td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&l.service_key),
            escape(&l.org),
            escape(&l.space),
            escape(&l.service_instance),
            escape(&if owners.is_empty() { "-".to_owned() } else { owners.join(", ") }),
            escape(&lifetime),
            escape(&successor),
            // Lines break between the words only, never inside a guid.
            plan.split(' ')
                .map(|w| format!("<span>{}</span>", escape(w)))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
}

fn why_unreadable(k: &KeyRecord) -> String {
    match (&k.failure, &k.reading) {
        (Some(f), Some(_)) => format!("{} (keeps its last reading)", f.reason),
        (Some(f), None) => format!("{} (never read)", f.reason),
        (None, None) => "not read yet".to_owned(),
        (None, Some(_)) => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{test_record, KeyExpiry, Reading};
    use std::sync::Arc;

    const NOW: i64 = 1_800_000_000;

    fn snapshot(keys: Vec<KeyRecord>) -> Snapshot {
        let mut s = Snapshot::default();
        let f = FoundationSnapshot {
            keys: Arc::new(keys),
            ..Default::default()
        };
        s.foundations.insert("eu<10>".into(), Arc::new(f));
        s
    }

    fn expiring(guid: &str, days: i64) -> KeyRecord {
        let mut k = test_record(guid);
        k.reading = Some(Reading {
            read_at: NOW,
            expiry: Some(KeyExpiry {
                expires_at: NOW + days * 86_400,
                valid_from: Some(NOW - 86_400),
                source: crate::vocab::ExpirySource::Certificate,
                certificate: None,
            }),
            shape: None,
        });
        k
    }

    #[test]
    fn names_are_escaped_and_there_is_no_script() {
        let mut k = expiring("g", 1);
        k.labels.service_key = "<script>alert('x')</script>\n".into();
        let html = page(
            &snapshot(vec![k]),
            &["<b>".into()],
            &PlanCommand::default(),
            NOW,
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\\n"));
        assert!(html.contains("<h2>eu&lt;10&gt;</h2>"));
        assert!(html.contains("&lt;b&gt;"));
        assert!(!html.contains("src=") && !html.contains("href=\"http"));
    }

    #[test]
    fn each_table_is_bounded_and_counts_the_rest() {
        let keys: Vec<KeyRecord> = (0..25)
            .map(|i| expiring(&format!("g{i:02}"), 30 - i))
            .collect();
        let html = page(&snapshot(keys), &[], &PlanCommand::default(), NOW);
        assert_eq!(html.matches("--rotate-plan").count(), ROWS);
        assert!(html.contains("and 5 more"), "{html}");
        // Soonest first: the key with 6 days left leads.
        let first = html.find("key-g24").unwrap();
        assert!(first < html.find("key-g23").unwrap());
        assert!(html.contains("<span>--key</span> <span>g24</span>"));
    }
}
