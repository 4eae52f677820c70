//! Every listed key is visible, with its lifetime and its owner (issue: unreadable keys,
//! creation and valid-from times, owner labels), proved through a real scrape of the exporter
//! against the simulated foundation. Time moves on the refresher's injected clock; no test
//! sleeps.

use std::time::Duration;

use cf_service_key_exporter::config::metadata_labels;
use cf_sim::credentials::{credentials, Shape};
use cf_sim::World;
use time::macros::datetime;
use time::OffsetDateTime;

use crate::common::{Harness, Scrape};

const DETAILS: &str = "/v3/service_credential_bindings/:guid/details";
const INTERVAL: Duration = Duration::from_secs(300);
const SECRET: &str = "SECRET-MARKER-visibility-4b1e";

fn owners_configured(c: &mut cf_service_key_exporter::config::FoundationConfig) {
    c.metadata_labels =
        metadata_labels("test", &["team".into(), "example.com/owner".into()]).unwrap();
    c.refresh_interval = INTERVAL;
}

/// One org, one space, one instance, and these keys (expiring in a year).
fn small_world(keys: &[&str]) -> (World, Vec<String>) {
    let mut w = World::new();
    let org = w.org("org");
    let space = w.space(&org, "space");
    let inst = w.instance(&space, "it-rt", "integration-flow", "inst");
    let now = OffsetDateTime::now_utc();
    let guids = keys
        .iter()
        .map(|name| {
            let creds = credentials(
                Shape::CloudIntegrationFlow,
                now - time::Duration::days(1),
                now + time::Duration::days(364),
                SECRET,
            )
            .unwrap();
            w.key(&inst, name, creds)
        })
        .collect();
    (w, guids)
}

fn read_error(scrape: &Scrape, key: &str) -> Vec<String> {
    scrape
        .find("cf_service_key_read_error", &[("service_key", key)])
        .iter()
        .map(|s| {
            assert_eq!(s.value, 1.0);
            s.labels["reason"].clone()
        })
        .collect()
}

fn source(scrape: &Scrape, key: &str) -> String {
    let info = scrape.find("cf_service_key_info", &[("service_key", key)]);
    assert_eq!(info.len(), 1, "{key}: {info:?}");
    info[0].labels["expiry_source"].clone()
}

fn errors_total(scrape: &Scrape, reason: &str) -> f64 {
    scrape.value(
        "cf_service_key_exporter_details_errors_total",
        &[("foundation", "test"), ("reason", reason)],
    )
}

#[tokio::test]
async fn a_key_unreadable_from_its_first_read_is_visible_with_its_reason() {
    let (mut w, guids) = small_world(&["good", "forbidden-space"]);
    // Cloud Foundry answers 404 to a user without Space Developer in the key's space.
    w.fail_details(&guids[1], 404, None);
    let h = Harness::with(w, Default::default(), owners_configured).await;
    let stats = h.refresh().await;
    assert_eq!((stats.keys, stats.unread, stats.details_errors), (2, 1, 1));
    let scrape = h.scrape().await;

    assert_eq!(source(&scrape, "forbidden-space"), "unread");
    assert_eq!(read_error(&scrape, "forbidden-space"), ["not_found"]);
    assert!(read_error(&scrape, "good").is_empty());
    // Created comes from the list page, so even an unread key has it; no expiry, no valid-from.
    assert!(scrape
        .key_value(
            "cf_service_key_created_timestamp_seconds",
            "forbidden-space"
        )
        .is_some());
    for name in [
        "cf_service_key_expiry_timestamp_seconds",
        "cf_service_key_valid_from_timestamp_seconds",
    ] {
        assert_eq!(scrape.key_value(name, "forbidden-space"), None, "{name}");
    }
    assert_eq!(errors_total(&scrape, "not_found"), 1.0);
    assert_eq!(
        scrape.value(
            "cf_service_key_exporter_service_keys",
            &[("foundation", "test")]
        ),
        2.0
    );
}

#[tokio::test]
async fn a_failing_key_is_retried_at_every_refresh_then_backs_off_and_every_attempt_counts() {
    let (mut w, guids) = small_world(&["good", "broken"]);
    w.fail_details(&guids[1], 404, None);
    let h = Harness::with(w, Default::default(), owners_configured).await;
    let mut reads = Vec::new();
    for _ in 0..6 {
        h.sim.state.stats.reset();
        h.refresh().await;
        reads.push(h.sim.state.stats.count(DETAILS));
        h.clock.advance(INTERVAL);
    }
    // Both keys, then the failing one at the next refresh, then after 2 and 4 intervals.
    assert_eq!(reads, [2, 1, 0, 1, 0, 0]);
    let scrape = h.scrape().await;
    assert_eq!(errors_total(&scrape, "not_found"), 3.0, "one per attempt");
    assert_eq!(read_error(&scrape, "broken"), ["not_found"]);
}

#[tokio::test]
async fn a_key_that_can_be_read_again_leaves_read_error() {
    let (mut w, guids) = small_world(&["flaky"]);
    // A broker error Cloud Foundry passes on as 500 (not retried within the refresh), once.
    w.fail_details(&guids[0], 500, Some(1));
    let h = Harness::with(w, Default::default(), owners_configured).await;
    h.refresh().await;
    let first = h.scrape().await;
    assert_eq!(source(&first, "flaky"), "unread");
    assert_eq!(read_error(&first, "flaky"), ["http_5xx"]);

    h.clock.advance(INTERVAL);
    h.refresh().await;
    let second = h.scrape().await;
    assert_eq!(source(&second, "flaky"), "certificatedetails.validuntil");
    assert!(read_error(&second, "flaky").is_empty());
    assert!(second
        .key_value("cf_service_key_expiry_timestamp_seconds", "flaky")
        .is_some());
    assert_eq!(errors_total(&second, "http_5xx"), 1.0);
}

#[tokio::test]
async fn a_key_that_fails_after_a_good_read_keeps_its_expiry_beside_the_error() {
    let (w, guids) = small_world(&["kept"]);
    let h = Harness::with(w, Default::default(), owners_configured).await;
    h.refresh().await;
    let good = h.scrape().await;
    let expiry = good.key_value("cf_service_key_expiry_timestamp_seconds", "kept");
    assert!(expiry.is_some());

    h.sim.state.with_world(|w| {
        // A newer updated_at makes the next refresh read it, and that read fails.
        w.key_mut(&guids[0]).unwrap().updated_at += time::Duration::minutes(1);
    });
    h.sim.state.switches.fail_details(&guids[0], 503);
    h.refresh().await;
    let failing = h.scrape().await;
    assert_eq!(
        failing.key_value("cf_service_key_expiry_timestamp_seconds", "kept"),
        expiry
    );
    assert_eq!(source(&failing, "kept"), "certificatedetails.validuntil");
    assert_eq!(read_error(&failing, "kept"), ["http_5xx"]);
}

/// org (team=org-team, owner=org-owner) → space (team=space-team) → instance
/// (owner=inst-owner) → key (team=key-team), plus a bare org.
fn owners_world() -> World {
    let mut w = World::new();
    let now = OffsetDateTime::now_utc();
    let creds = |w: &mut World, inst: &str, name: &str| {
        let c = credentials(Shape::Basic, now - time::Duration::days(30), now, SECRET).unwrap();
        w.key(inst, name, c)
    };
    let org = w.org("org");
    w.set_label(&org, "team", "org-team");
    w.set_annotation(&org, "example.com/owner", "org-owner");
    let space = w.space(&org, "space");
    w.set_label(&space, "team", "space-team");
    let inst = w.instance(&space, "xsuaa", "application", "labelled");
    w.set_annotation(&inst, "example.com/owner", "inst-owner");
    let own = creds(&mut w, &inst, "own-team");
    w.set_label(&own, "team", "key-team");
    creds(&mut w, &inst, "instance-owner");
    let plain = w.instance(&space, "xsuaa", "application", "plain");
    creds(&mut w, &plain, "space-team");
    let other_space = w.space(&org, "other");
    let other = w.instance(&other_space, "xsuaa", "application", "other");
    creds(&mut w, &other, "org-only");
    let bare_org = w.org("bare");
    let bare_space = w.space(&bare_org, "bare");
    let bare = w.instance(&bare_space, "xsuaa", "application", "bare");
    creds(&mut w, &bare, "nobody");
    w
}

fn owners_of(scrape: &Scrape, key: &str) -> (Option<String>, Option<String>) {
    let found = scrape.find("cf_service_key_owner_info", &[("service_key", key)]);
    assert_eq!(found.len(), 1, "{key}: {found:?}");
    let s = found[0];
    assert_eq!(s.value, 1.0);
    // An owner not found is an empty label, which Prometheus treats as absent.
    let get = |l: &str| s.labels.get(l).filter(|v| !v.is_empty()).cloned();
    (get("label_team"), get("label_example_com_owner"))
}

#[tokio::test]
async fn owners_come_from_the_key_else_its_instance_else_its_space_else_its_org() {
    let h = Harness::with(owners_world(), Default::default(), owners_configured).await;
    h.refresh().await;
    let scrape = h.scrape().await;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        owners_of(&scrape, "own-team"),
        (s("key-team"), s("inst-owner"))
    );
    assert_eq!(
        owners_of(&scrape, "instance-owner"),
        (s("space-team"), s("inst-owner"))
    );
    assert_eq!(
        owners_of(&scrape, "space-team"),
        (s("space-team"), s("org-owner"))
    );
    assert_eq!(
        owners_of(&scrape, "org-only"),
        (s("org-team"), s("org-owner"))
    );
    assert_eq!(owners_of(&scrape, "nobody"), (None, None));
    // The contract's labels plus the owners, nothing else.
    let labels: Vec<&str> = scrape
        .find("cf_service_key_owner_info", &[("service_key", "own-team")])[0]
        .labels
        .keys()
        .map(String::as_str)
        .filter(|l| l.starts_with("label_"))
        .collect();
    assert_eq!(labels, ["label_example_com_owner", "label_team"]);
    // Owners cost list pages only: one page of spaces (with their orgs) per refresh.
    assert_eq!(h.sim.state.stats.count("/v3/spaces"), 1);
}

#[tokio::test]
async fn without_metadata_labels_there_is_no_owner_series_and_no_spaces_request() {
    let h = Harness::new(owners_world()).await;
    h.refresh().await;
    let scrape = h.scrape().await;
    assert!(scrape.all("cf_service_key_owner_info").is_empty());
    assert_eq!(h.sim.state.stats.count("/v3/spaces"), 0);
}

#[tokio::test]
async fn a_label_edited_in_cloud_foundry_shows_at_the_next_refresh_without_a_details_request() {
    let h = Harness::with(owners_world(), Default::default(), owners_configured).await;
    h.refresh().await;
    let space = h.sim.state.with_world(|w| {
        let g = w
            .spaces
            .iter()
            .find(|s| s.name == "space")
            .unwrap()
            .guid
            .clone();
        // A metadata edit does not move updated_at, in Cloud Foundry as here.
        w.set_label(&g, "team", "renamed-team");
        g
    });
    h.sim.state.stats.reset();
    h.refresh().await;
    assert_eq!(h.sim.state.stats.count(DETAILS), 0, "no key was read again");
    let scrape = h.scrape().await;
    assert_eq!(
        owners_of(&scrape, "space-team").0.as_deref(),
        Some("renamed-team")
    );
    assert_eq!(
        owners_of(&scrape, "own-team").0.as_deref(),
        Some("key-team")
    );
    h.sim.state.with_world(|w| w.remove_label(&space, "team"));
    h.refresh().await;
    assert_eq!(
        owners_of(&h.scrape().await, "space-team").0.as_deref(),
        Some("org-team")
    );
}

#[test]
fn metadata_keys_become_sanitised_label_names_and_colliding_keys_are_refused() {
    let labels = metadata_labels(
        "--metadata-labels",
        &[
            " team".into(),
            "".into(),
            "example.com/owner".into(),
            "cost-center".into(),
        ],
    )
    .unwrap();
    let names: Vec<&str> = labels.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(
        names,
        ["label_team", "label_example_com_owner", "label_cost_center"]
    );

    let err = metadata_labels("--metadata-labels", &["team-a".into(), "team_a".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"team-a\"") && err.contains("\"team_a\"") && err.contains("label_team_a"),
        "{err}"
    );
    for bad in ["a b", "x/y/z", "prefix/"] {
        let err = metadata_labels("metadata_labels", &[bad.into()]).unwrap_err();
        assert!(err.to_string().starts_with("metadata_labels: "), "{err}");
    }
}

#[tokio::test]
async fn created_and_valid_from_are_exactly_as_planted() {
    let mut w = World::new();
    let org = w.org("org");
    let space = w.space(&org, "space");
    let inst = w.instance(&space, "it-rt", "integration-flow", "inst");
    let created = datetime!(2026-01-10 08:00:00 UTC);
    let not_before = datetime!(2026-01-09 12:34:56 UTC);
    let expires = datetime!(2026-01-16 12:34:56 UTC);
    let mut plant = |name: &str, shape: Shape| {
        let guid = w.key(
            &inst,
            name,
            credentials(shape, not_before, expires, SECRET).unwrap(),
        );
        w.key_mut(&guid).unwrap().created_at = created;
    };
    plant("certificate", Shape::XsuaaX509);
    plant("validuntil", Shape::CloudIntegrationFlow);
    plant("fields-only", Shape::Destination);
    plant("secret-only", Shape::XsuaaClientSecret);
    let h = Harness::with(w, Default::default(), owners_configured).await;
    h.refresh().await;
    let scrape = h.scrape().await;
    let value = |name: &str, key: &str| scrape.key_value(name, key);
    let t = |at: OffsetDateTime| Some(at.unix_timestamp() as f64);
    for key in ["certificate", "validuntil", "fields-only", "secret-only"] {
        assert_eq!(
            value("cf_service_key_created_timestamp_seconds", key),
            t(created),
            "{key}"
        );
    }
    let valid_from = "cf_service_key_valid_from_timestamp_seconds";
    // The certificate's notBefore; validuntil carries no start: the key's creation time;
    // the destination key's validFrom beside its validUntil.
    assert_eq!(value(valid_from, "certificate"), t(not_before));
    assert_eq!(value(valid_from, "validuntil"), t(created));
    assert_eq!(value(valid_from, "fields-only"), t(not_before));
    assert_eq!(
        value(valid_from, "secret-only"),
        None,
        "no expiry, no valid-from"
    );
    for key in ["certificate", "validuntil", "fields-only"] {
        assert_eq!(
            value("cf_service_key_expiry_timestamp_seconds", key),
            t(expires),
            "{key}"
        );
    }
    assert_eq!(source(&scrape, "secret-only"), "none");
}

#[tokio::test]
async fn no_credential_reaches_the_new_series() {
    let h = Harness::with(owners_world(), Default::default(), owners_configured).await;
    h.sim.state.with_world(|w| {
        let inst = w.instances[0].guid.clone();
        w.key(
            &inst,
            "marked",
            serde_json::json!({"clientsecret": SECRET, "uaa": {"key": SECRET}, "expires_at": "broken"}),
        );
    });
    h.refresh().await;
    let scrape = h.scrape().await;
    assert!(!scrape.all("cf_service_key_owner_info").is_empty());
    assert_eq!(read_error(&scrape, "marked"), ["invalid_date"]);
    assert!(
        !scrape.text.contains(SECRET),
        "a credential reached /metrics"
    );
}
