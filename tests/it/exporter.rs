//! The exporter end to end against the simulated foundation: real HTTP scrapes parsed with an
//! OpenMetrics parser. One test per behaviour of the contract.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::year_key;
use crate::common::{clean_demo, golden, Harness, Scrape};
use cf_sim::credentials::Shape;
use cf_sim::{demo, Outage, World};
use serde_json::json;
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    // Whole seconds: expiry timestamps are exported in seconds.
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn key_count(scrape: &Scrape) -> usize {
    scrape.all("cf_service_key_info").len()
}

#[tokio::test]
async fn every_contract_metric_and_label_is_served_with_the_planted_values() {
    let start = now();
    let h = Harness::new(clean_demo(start)).await;
    let stats = h.refresh().await;
    assert_eq!(stats.details_errors, 0);
    let scrape = h.scrape().await;

    // The families of the golden exposition (the contract's pin), each with the golden's type
    // and, on every series, the golden's label names. The clean demo has no read errors, owner
    // labels (no --metadata-labels here), lead times or successors.
    let golden = golden();
    let absent = [
        "cf_service_key_read_error",
        "cf_service_key_owner_info",
        "cf_service_key_warning_lead_seconds",
        "cf_service_key_warning_lead_invalid",
        "cf_service_key_successor_info",
    ];
    for (name, kind) in &golden.types {
        if absent.contains(&name.as_str()) {
            assert!(scrape.all(name).is_empty(), "{name}");
            continue;
        }
        assert_eq!(scrape.types.get(name), Some(kind), "{name}");
        let want = golden.label_names(name);
        for s in scrape.all(name) {
            let labels: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
            assert_eq!(labels, want, "{name}");
        }
    }
    // Every reason of details_errors_total exists at 0 from the start, so increase() sees the
    // first error.
    let reasons = scrape.find(
        "cf_service_key_exporter_details_errors_total",
        &[("foundation", "test")],
    );
    assert_eq!(
        reasons.len(),
        cf_service_key_exporter::vocab::Reason::ALL.len()
    );
    assert!(reasons.iter().all(|s| s.value == 0.0), "{reasons:?}");
    assert_eq!(
        scrape
            .types
            .get("cf_service_key_exporter_api_requests")
            .map(String::as_str),
        Some("counter")
    );

    for s in scrape.all("cf_service_key_info") {
        assert_eq!(s.value, 1.0);
    }

    // Values exactly as planted.
    let planted = [
        ("s4-inbound", 3),
        ("partner-edi", 20),
        ("monitoring", 200),
        ("old-tooling", -2),
        ("calm-key", 365),
    ];
    for (key, days) in planted {
        let at = (start + time::Duration::days(days)).unix_timestamp() as f64;
        assert_eq!(
            scrape.key_value("cf_service_key_expiry_timestamp_seconds", key),
            Some(at),
            "{key}"
        );
        let left = scrape
            .key_value("cf_service_key_expiry_seconds", key)
            .unwrap();
        assert!((left - (at - unix_now())).abs() < 5.0, "{key}: {left}");
    }
    assert!(
        scrape
            .key_value("cf_service_key_expiry_seconds", "old-tooling")
            .unwrap()
            < 0.0
    );
    let s4 = scrape.find(
        "cf_service_key_expiry_timestamp_seconds",
        &[("service_key", "s4-inbound")],
    )[0];
    assert_eq!(s4.labels["foundation"], "test");
    assert_eq!(s4.labels["org"], "acme-prod");
    assert_eq!(s4.labels["space"], "integration");
    assert_eq!(s4.labels["service_offering"], "it-rt");
    assert_eq!(s4.labels["service_plan"], "integration-flow");
    assert_eq!(s4.labels["service_instance"], "cpi-runtime");
    let planted_guid = h
        .sim
        .state
        .with_world(|w| w.find_key("s4-inbound").unwrap().guid.clone());
    assert_eq!(s4.labels["service_key_guid"], planted_guid);

    // A key without a readable expiry has only the info series, with source none.
    assert_eq!(
        scrape.key_value("cf_service_key_expiry_timestamp_seconds", "legacy-basic"),
        None
    );
    assert_eq!(
        scrape.key_value("cf_service_key_expiry_seconds", "legacy-basic"),
        None
    );
    let info = scrape.find("cf_service_key_info", &[("service_key", "legacy-basic")]);
    assert_eq!(info[0].labels["expiry_source"], "none");
    let info = scrape.find("cf_service_key_info", &[("service_key", "s4-inbound")]);
    assert_eq!(
        info[0].labels["expiry_source"],
        "certificatedetails.validuntil"
    );

    // Self metrics.
    let keys = h.sim.state.with_world(|w| w.keys.len());
    let f = [("foundation", "test")];
    assert_eq!(
        scrape.value("cf_service_key_exporter_service_keys", &f),
        keys as f64
    );
    assert_eq!(key_count(&scrape), keys);
    assert_eq!(
        scrape.value("cf_service_key_exporter_refresh_success", &f),
        1.0
    );
    let last = scrape.value(
        "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
        &f,
    );
    assert!((unix_now() - last).abs() < 30.0, "{last}");
    assert!(scrape.value("cf_service_key_exporter_refresh_duration_seconds", &f) > 0.0);
    assert_eq!(
        scrape.value(
            "cf_service_key_exporter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let details = [
        ("foundation", "test"),
        ("endpoint", "/v3/service_credential_bindings/:guid/details"),
        ("code", "200"),
    ];
    assert_eq!(
        scrape.value("cf_service_key_exporter_api_requests_total", &details),
        keys as f64
    );
    for endpoint in [
        "/",
        "/oauth/token",
        "/v3/service_instances",
        "/v3/service_credential_bindings",
    ] {
        let labels = [
            ("foundation", "test"),
            ("endpoint", endpoint),
            ("code", "200"),
        ];
        assert_eq!(
            scrape.value("cf_service_key_exporter_api_requests_total", &labels),
            1.0,
            "{endpoint}"
        );
    }
    // Route templates only: no guid ever becomes a label value.
    for s in scrape.all("cf_service_key_exporter_api_requests_total") {
        assert!(!s.labels["endpoint"].contains("-4000-"), "{s:?}");
    }
}

#[tokio::test]
async fn pagination_reads_every_key_across_many_pages() {
    let h = Harness::new(demo::large(12_000, now()).unwrap()).await;
    // The first refresh reads every key's details at the largest page size; the second lists
    // the same 12,000 keys 50 at a time (240 pages) and reuses the readings, so each key
    // still on /metrics proves its page was read.
    for page_cap in [5000, 50] {
        h.sim.state.stats.reset();
        h.sim.state.switches.set_page_cap(page_cap);
        let stats = h.refresh().await;
        assert_eq!(stats.keys, 12_000, "page cap {page_cap}");
        let known = h.store.foundation("test").unwrap();
        let guids: BTreeSet<&str> = known
            .keys
            .iter()
            .map(|k| &*k.labels.service_key_guid)
            .collect();
        assert_eq!(guids.len(), 12_000, "page cap {page_cap}");
        assert!(known.keys.iter().all(|k| k.expiry().is_some()));
        assert_eq!(
            h.sim.state.stats.count("/v3/service_credential_bindings"),
            12_000usize.div_ceil(page_cap)
        );
        assert_eq!(
            h.sim.state.stats.count("/v3/service_instances"),
            1_200usize.div_ceil(page_cap)
        );
    }
    // What a scraper sees after the 240-page listing. (Parsed once: the OpenMetrics parser is
    // quadratic in the series of a family, about 20 s at 12,000 keys.)
    let scrape = h.scrape().await;
    assert_eq!(key_count(&scrape), 12_000);
    assert_eq!(
        scrape.all("cf_service_key_expiry_timestamp_seconds").len(),
        12_000
    );
    let guids: BTreeSet<&str> = scrape
        .all("cf_service_key_info")
        .iter()
        .map(|s| s.labels["service_key_guid"].as_str())
        .collect();
    assert_eq!(guids.len(), 12_000);
    // Names resolved through `included` on every page.
    assert!(scrape
        .find("cf_service_key_info", &[("org", "unknown")])
        .is_empty());
    assert!(scrape
        .find("cf_service_key_info", &[("service_plan", "unknown")])
        .is_empty());
}

#[tokio::test]
async fn service_plans_filter_keeps_only_keys_of_those_plans() {
    let h = Harness::with(clean_demo(now()), Default::default(), |c| {
        c.service_plans = vec!["integration-flow".into()];
    })
    .await;
    h.refresh().await;
    let scrape = h.scrape().await;
    let plans: BTreeSet<&str> = scrape
        .all("cf_service_key_info")
        .iter()
        .map(|s| s.labels["service_plan"].as_str())
        .collect();
    assert_eq!(plans, BTreeSet::from(["integration-flow"]));
    assert!(scrape
        .key_value("cf_service_key_expiry_timestamp_seconds", "s4-inbound")
        .is_some());
    assert!(scrape
        .find("cf_service_key_info", &[("service_key", "old-tooling")])
        .is_empty());
    // The filter is applied by Cloud Foundry, not by reading everything: only the filtered
    // keys' details were requested.
    assert_eq!(
        h.sim
            .state
            .stats
            .count("/v3/service_credential_bindings/:guid/details"),
        key_count(&scrape)
    );
}

#[tokio::test]
async fn an_expired_token_mid_refresh_leads_to_one_new_login_and_a_complete_refresh() {
    let h = Harness::new(demo::large(400, now()).unwrap()).await;
    h.sim.state.switches.set_latency(Duration::from_millis(5));
    let state = h.sim.state.clone();
    let expire = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        state.expire_tokens();
    });
    let stats = h.refresh().await;
    expire.await.unwrap();
    assert_eq!(stats.keys, 400);
    assert_eq!(stats.details_errors, 0);
    let scrape = h.scrape().await;
    assert_eq!(
        scrape.value(
            "cf_service_key_exporter_refresh_success",
            &[("foundation", "test")]
        ),
        1.0
    );
    let rejected = scrape.find(
        "cf_service_key_exporter_api_requests_total",
        &[("code", "401")],
    );
    assert!(
        !rejected.is_empty(),
        "the API should have rejected the expired token"
    );
    // Concurrent requests that hit the expiry share one new login (refresh-token grant or password).
    let logins = h
        .sim
        .state
        .stats
        .logins
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!((2..=3).contains(&logins), "logins: {logins}");
}

#[tokio::test]
async fn a_token_is_reused_until_shortly_before_it_expires() {
    let h = Harness::new(clean_demo(now())).await;
    h.refresh().await;
    h.refresh().await;
    assert_eq!(
        h.sim
            .state
            .stats
            .logins
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_known_key_whose_details_fail_later_keeps_its_last_reading() {
    let h = Harness::new(clean_demo(now())).await;
    h.refresh().await;
    let before = h
        .scrape()
        .await
        .key_value("cf_service_key_expiry_timestamp_seconds", "partner-edi");
    let guid = h.sim.state.with_world(|w| {
        let k = w
            .key_mut(&w.find_key("partner-edi").unwrap().guid.clone())
            .unwrap();
        // A change marker forces a new read, which then fails.
        k.updated_at += time::Duration::minutes(1);
        k.guid.clone()
    });
    h.sim.state.switches.fail_details(&guid, 500);
    let stats = h.refresh().await;
    assert_eq!(stats.details_errors, 1);
    let scrape = h.scrape().await;
    assert_eq!(
        scrape.key_value("cf_service_key_expiry_timestamp_seconds", "partner-edi"),
        before
    );
    assert_eq!(
        scrape.value(
            "cf_service_key_exporter_details_errors_total",
            &[("foundation", "test"), ("reason", "http_5xx")]
        ),
        1.0
    );
}

#[tokio::test]
async fn when_the_api_goes_down_the_last_values_stay_and_update_after_recovery() {
    let start = now();
    let h = Harness::new(clean_demo(start)).await;
    h.refresh().await;
    let good = h.scrape().await;
    let f = [("foundation", "test")];
    let last_success = good.value(
        "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
        &f,
    );

    h.sim.state.switches.set_outage(Some(Outage::Html(503)));
    h.refresh().await;
    let down = h.scrape().await;
    assert_eq!(
        down.value("cf_service_key_exporter_refresh_success", &f),
        0.0
    );
    assert_eq!(
        down.value(
            "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
            &f
        ),
        last_success
    );
    assert_eq!(key_count(&down), key_count(&good));
    assert_eq!(
        down.key_value("cf_service_key_expiry_timestamp_seconds", "s4-inbound"),
        good.key_value("cf_service_key_expiry_timestamp_seconds", "s4-inbound")
    );
    assert!(!down
        .find(
            "cf_service_key_exporter_api_requests_total",
            &[("code", "503")]
        )
        .is_empty());

    // Recovery, with the key rotated meanwhile.
    h.sim.state.switches.set_outage(None);
    let rotated_at = start + time::Duration::days(400);
    h.sim.state.with_world(|w| {
        let old = w.find_key("s4-inbound").unwrap().guid.clone();
        w.rotate_key(
            &old,
            year_key(Shape::CloudIntegrationFlow, rotated_at, "x").unwrap(),
        )
    });
    h.refresh().await;
    let up = h.scrape().await;
    assert_eq!(up.value("cf_service_key_exporter_refresh_success", &f), 1.0);
    assert!(
        up.value(
            "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
            &f
        ) >= last_success
    );
    assert_eq!(
        up.key_value("cf_service_key_expiry_timestamp_seconds", "s4-inbound"),
        Some(rotated_at.unix_timestamp() as f64)
    );
}

#[tokio::test]
async fn a_deleted_key_disappears_at_the_next_refresh() {
    let h = Harness::new(clean_demo(now())).await;
    h.refresh().await;
    assert!(h
        .scrape()
        .await
        .key_value("cf_service_key_expiry_seconds", "old-tooling")
        .is_some());
    h.sim.state.with_world(|w| {
        let guid = w.find_key("old-tooling").unwrap().guid.clone();
        assert!(w.delete_key(&guid));
    });
    h.refresh().await;
    let scrape = h.scrape().await;
    assert!(scrape
        .find("cf_service_key_info", &[("service_key", "old-tooling")])
        .is_empty());
    assert!(scrape
        .key_value("cf_service_key_expiry_seconds", "old-tooling")
        .is_none());
}

#[tokio::test]
async fn names_with_quotes_backslashes_newlines_and_unicode_survive_a_round_trip() {
    let odd = [
        "acme \"prod\"",
        "back\\slash",
        "line\nbreak",
        "Zürich – 東京 🚀",
        "brace}{=,",
    ];
    let mut w = World::new();
    let org = w.org(odd[0]);
    let space = w.space(&org, odd[1]);
    let inst = w.instance(&space, odd[4], "plan", odd[2]);
    w.key(
        &inst,
        odd[3],
        year_key(
            Shape::CloudIntegrationFlow,
            now() + time::Duration::days(9),
            "s",
        )
        .unwrap(),
    );
    let h = Harness::new(w).await;
    h.refresh().await;
    let scrape = h.scrape().await;
    let s = &scrape.all("cf_service_key_expiry_seconds")[0];
    assert_eq!(s.labels["org"], odd[0]);
    assert_eq!(s.labels["space"], odd[1]);
    assert_eq!(s.labels["service_instance"], odd[2]);
    assert_eq!(s.labels["service_key"], odd[3]);
    assert_eq!(s.labels["service_offering"], odd[4]);
}

#[tokio::test]
async fn metrics_are_gzipped_when_the_scraper_asks() {
    let h = Harness::new(clean_demo(now())).await;
    h.refresh().await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = client
        .get(format!("http://{}/metrics", h.addr))
        .header("accept-encoding", "gzip")
        .header("accept", crate::common::OPENMETRICS_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let body = response.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
    let scrape = Scrape::parse(text);
    assert!(scrape
        .key_value("cf_service_key_expiry_seconds", "s4-inbound")
        .is_some());
}

#[tokio::test]
async fn a_user_provided_instance_and_keys_still_being_created_are_not_errors() {
    let mut w = clean_demo(now());
    let creating = {
        let inst = w
            .instances
            .iter()
            .find(|i| i.name == "cpi-runtime")
            .unwrap()
            .guid
            .clone();
        let g = w.key(&inst, "being-created", json!({}));
        w.key_mut(&g).unwrap().state = "in progress";
        g
    };
    let h = Harness::new(w).await;
    h.sim.state.switches.fail_details(&creating, 404);
    let stats = h.refresh().await;
    assert_eq!(stats.details_errors, 0);
    let scrape = h.scrape().await;
    assert!(scrape
        .find("cf_service_key_info", &[("service_key", "being-created")])
        .is_empty());
}

#[tokio::test]
async fn a_reader_that_does_not_ask_for_openmetrics_gets_the_classic_text_format() {
    let h = Harness::new(clean_demo(now())).await;
    h.refresh().await;
    let response = h.get("/metrics").await;
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(!text.contains("# EOF"));
    assert!(text.contains("# TYPE cf_service_key_exporter_api_requests_total counter"));
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("invalid Prometheus text: {e:?}\n{text}"));
    let family = &parsed.families["cf_service_key_expiry_seconds"];
    assert_eq!(
        family.iter_samples().count(),
        h.scrape().await.all("cf_service_key_expiry_seconds").len()
    );
}
