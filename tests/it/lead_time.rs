//! The owner's warning lead time (`--lead-time-annotation`), from the simulated foundation's
//! metadata through a real scrape: the nearest annotation wins, a valid value is
//! `cf_service_key_warning_lead_seconds`, an invalid one `cf_service_key_warning_lead_invalid`
//! and one escaped log line per key. Time moves on the refresher's injected clock; no test
//! sleeps.

use std::collections::BTreeSet;
use std::time::Duration;

use cf_service_key_exporter::config::FoundationConfig;
use cf_sim::demo::DEMO_LEAD_TIME_ANNOTATION as LEAD;
use time::OffsetDateTime;

use crate::common::logs::Logs;
use crate::common::{clean_demo, golden, Harness, Scrape};

const SECONDS: &str = "cf_service_key_warning_lead_seconds";
const INVALID: &str = "cf_service_key_warning_lead_invalid";
const DETAILS: &str = "/v3/service_credential_bindings/:guid/details";
const INTERVAL: Duration = Duration::from_secs(300);

fn lead_configured(c: &mut FoundationConfig) {
    c.lead_time_annotation = Some(LEAD.to_owned());
    c.refresh_interval = INTERVAL;
}

fn guid_of(h: &Harness, what: &str) -> String {
    h.sim.state.with_world(|w| {
        if let Some(k) = w.find_key(what) {
            return k.guid.clone();
        }
        let i = w.instances.iter().find(|i| i.name == what);
        let s = w.spaces.iter().find(|s| s.name == what);
        let o = w.orgs.iter().find(|o| o.name == what);
        (i.map(|i| i.guid.clone()))
            .or(s.map(|s| s.guid.clone()))
            .or(o.map(|o| o.guid.clone()))
            .unwrap_or_else(|| panic!("nothing named {what}"))
    })
}

fn annotate(h: &Harness, what: &str, value: &str) {
    let guid = guid_of(h, what);
    assert!(h
        .sim
        .state
        .with_world(|w| w.set_annotation(&guid, LEAD, value)));
}

/// Exactly the golden exposition's labels (the key labels) on every series of `name`.
fn assert_key_labels_only(scrape: &Scrape, name: &str) {
    let golden = golden();
    let expected = golden.label_names(name);
    for s in scrape.all(name) {
        let labels: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(labels, expected, "{name}");
    }
}

#[tokio::test]
async fn a_60d_key_is_exported_with_its_lead_and_its_sibling_without_one() {
    let h = Harness::with(
        clean_demo(OffsetDateTime::now_utc()),
        Default::default(),
        lead_configured,
    )
    .await;
    h.refresh().await;
    let scrape = h.scrape().await;
    assert_eq!(scrape.types.get(SECONDS).map(String::as_str), Some("gauge"));
    // The demo's `60d` on x509-client; its siblings on xsuaa-app carry none.
    assert_eq!(scrape.key_value(SECONDS, "x509-client"), Some(5_184_000.0));
    for sibling in ["app-secret", "legacy-secret"] {
        assert_eq!(scrape.key_value(SECONDS, sibling), None, "{sibling}");
        assert_eq!(scrape.key_value(INVALID, sibling), None, "{sibling}");
    }
    // The demo's `60` (no unit) on monitoring: invalid, so no lead of its own.
    assert_eq!(scrape.key_value(INVALID, "monitoring"), Some(1.0));
    assert_eq!(scrape.key_value(SECONDS, "monitoring"), None);
    assert_eq!(scrape.all(SECONDS).len(), 1);
    assert_eq!(scrape.all(INVALID).len(), 1);
    assert_key_labels_only(&scrape, SECONDS);
    assert_key_labels_only(&scrape, INVALID);
}

#[tokio::test]
async fn the_nearest_annotation_wins_and_an_edit_shows_at_the_next_refresh_without_a_details_read()
{
    let h = Harness::with(
        clean_demo(OffsetDateTime::now_utc()),
        Default::default(),
        lead_configured,
    )
    .await;
    h.refresh().await;
    // Further out: the instance says 8 weeks, the org 90 days.
    annotate(&h, "xsuaa-app", "8w");
    annotate(&h, "acme-prod", "90d");
    h.clock.advance(INTERVAL);
    h.sim.state.stats.reset();
    h.refresh().await;
    let scrape = h.scrape().await;
    assert_eq!(
        h.sim.state.stats.count(DETAILS),
        0,
        "metadata from list pages only"
    );
    // The key's own 60d over the instance's; the siblings take the instance's over the org's.
    assert_eq!(scrape.key_value(SECONDS, "x509-client"), Some(5_184_000.0));
    assert_eq!(scrape.key_value(SECONDS, "app-secret"), Some(4_838_400.0));
    // Elsewhere in the org, the org's; the key's own invalid value still wins over it.
    assert_eq!(scrape.key_value(SECONDS, "s4-inbound"), Some(7_776_000.0));
    assert_eq!(scrape.key_value(INVALID, "monitoring"), Some(1.0));
    assert_eq!(scrape.key_value(SECONDS, "monitoring"), None);
    // Another org: nothing.
    assert_eq!(scrape.key_value(SECONDS, "old-tooling"), None);

    // The key's annotation removed: the instance's applies.
    let client = guid_of(&h, "x509-client");
    h.sim
        .state
        .with_world(|w| assert!(w.remove_annotation(&client, LEAD)));
    h.clock.advance(INTERVAL);
    h.refresh().await;
    let scrape = h.scrape().await;
    assert_eq!(scrape.key_value(SECONDS, "x509-client"), Some(4_838_400.0));
}

#[tokio::test]
async fn an_invalid_value_is_logged_once_per_key_escaped_and_never_stops_a_refresh() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::with(
        clean_demo(OffsetDateTime::now_utc()),
        Default::default(),
        lead_configured,
    )
    .await;
    // A value that tries to forge a log line and hide itself; on the instance, so it is the
    // nearest for x509-client's siblings only.
    annotate(
        &h,
        "xsuaa-app",
        "1d\nINFO refresh completed \u{1b}[2J\u{202e}",
    );
    for _ in 0..3 {
        let outcome = h.refresh_outcome().await;
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        h.clock.advance(INTERVAL);
    }
    let warned = |key: &str| logs.lines_with(&["lead-time annotation", &format!("\"{key}\"")]);
    // Once per key, not per refresh; x509-client's own valid 60d wins over the instance's.
    assert_eq!(warned("monitoring").len(), 1, "{}", logs.text());
    assert_eq!(warned("app-secret").len(), 1);
    assert_eq!(warned("legacy-secret").len(), 1);
    assert!(warned("x509-client").is_empty());
    let line = &warned("app-secret")[0];
    for needle in ["WARN", "on=\"service instance\"", "reason=\"not a duration"] {
        assert!(line.contains(needle), "{needle}: {line}");
    }
    // The value only as an escaped excerpt: no forged line, no raw control character.
    assert!(
        line.contains(r#"value="1d\nINFO refresh completed \u{1b}[2J\u{202e}""#),
        "{line}"
    );
    let text = logs.text();
    assert!(!text
        .lines()
        .any(|l| l.starts_with("INFO refresh completed")));
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));
    let scrape = h.scrape().await;
    assert_eq!(scrape.key_value(INVALID, "app-secret"), Some(1.0));
    assert_eq!(scrape.all(INVALID).len(), 3);

    // Mended, then broken again: logged again, once.
    annotate(&h, "xsuaa-app", "8w");
    h.refresh().await;
    annotate(&h, "xsuaa-app", "eight weeks");
    h.clock.advance(INTERVAL);
    h.refresh().await;
    h.clock.advance(INTERVAL);
    h.refresh().await;
    assert_eq!(warned("app-secret").len(), 2);
}

#[tokio::test]
async fn without_the_flag_no_lead_time_is_read() {
    let h = Harness::new(clean_demo(OffsetDateTime::now_utc())).await;
    h.refresh().await;
    let scrape = h.scrape().await;
    assert!(scrape.all(SECONDS).is_empty() && scrape.all(INVALID).is_empty());
    // Nor the spaces listing it would need.
    assert_eq!(h.sim.state.stats.count("/v3/spaces"), 0);
}
