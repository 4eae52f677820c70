//! Rotation: `report --rotate-plan` against the simulated foundation, its V3 requests run as
//! the plan's JSON gives them, and successors on `/metrics`.
//!
//! The demo foundation (`cf_sim::demo`) has a key of each kind: XSUAA x509 keys whose broker
//! returns their parameters (`jobs-x509-*`, `x509-client`), one whose broker returns none on
//! an instance whose default is a client secret (`payments-x509`), client secrets, Cloud
//! Integration certificate keys whose offering does not return parameters and whose broker
//! works asynchronously (`s4-inbound`, `partner-edi`, `old-tooling`), and `jobs-x509-fresh`,
//! annotated as the successor of `jobs-x509-rotated`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cf_service_key_exporter::cli::{ExpiringWithin, ReportArgs, ReportOutput};
use cf_service_key_exporter::clock::SystemClock;
use cf_service_key_exporter::config::{Config, DemoTarget, FoundationConfig, MetadataLabel};
use cf_service_key_exporter::report;
use cf_service_key_exporter::report::rotate::{parameters, render, run};
use cf_service_key_exporter::rotation::shape;
use cf_sim::demo::{DEMO_SECRET, DEMO_SUCCESSOR_ANNOTATION};
use cf_sim::{Accounts, Sim};
use serde_json::{json, Value};

use crate::common::{clean_demo, exporter, Harness, Scrape};

const DAY: u64 = 86_400;

/// What the tests configure on top of the simulator's defaults: the demo's owners and its
/// successor annotation, as `--demo` does.
fn tuned(config: &mut FoundationConfig) {
    config.name = "demo".into();
    config.rotation.successor_annotation = Some(DEMO_SUCCESSOR_ANNOTATION.into());
    config.metadata_labels = vec![MetadataLabel {
        key: "team".into(),
        label: "label_team".into(),
    }];
}

fn args(output: ReportOutput, within: Option<u64>) -> ReportArgs {
    ReportArgs {
        output,
        expiring_within: within.map(|s| ExpiringWithin::Duration(Duration::from_secs(s))),
        rotate_plan: true,
        only_foundation: Vec::new(),
        owner: Vec::new(),
        keys: Vec::new(),
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// One refresh of the simulator as `report` does it, then the plans `args` select, rendered.
async fn plan(sim: &Sim, args: &ReportArgs) -> String {
    let mut foundation = DemoTarget::from(sim).foundation("demo");
    tuned(&mut foundation);
    let config = Config {
        foundations: vec![foundation],
        file: None,
        cache_file: None,
    };
    let refreshed = report::refresh(&config, false, Arc::new(SystemClock)).await;
    let plans = run::plans(&refreshed, args, unix_now()).await;
    match args.output {
        ReportOutput::Json => render::json(&plans).expect("JSON"),
        ReportOutput::Table => render::text(&plans),
    }
}

async fn token(sim: &Sim) -> String {
    let accounts = Accounts::default();
    let answer: Value = reqwest::Client::new()
        .post(sim.uaa_url.join("/oauth/token").unwrap())
        .basic_auth("cf", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", accounts.username.as_str()),
            ("password", accounts.password.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

/// Runs every request of every step of the plan, in order, as a script would: a creation or
/// deletion answers 202 with a job, which is polled until COMPLETE (the simulator's clock is
/// moved on while an asynchronous broker works, so nothing sleeps).
async fn execute(sim: &Sim, plan: &Value) {
    let client = reqwest::Client::new();
    let bearer = format!("bearer {}", token(sim).await);
    let api = sim.api_url.as_str().trim_end_matches('/');
    for key in plan["keys"].as_array().unwrap() {
        for step in key["steps"].as_array().unwrap() {
            let request = &step["request"];
            if request.is_null() {
                continue;
            }
            let method = request["method"].as_str().unwrap();
            let url = format!("{api}{}", request["path"].as_str().unwrap());
            let mut call = client
                .request(method.parse().unwrap(), &url)
                .header("authorization", &bearer);
            if !request["body"].is_null() {
                call = call.json(&request["body"]);
            }
            let answer = call.send().await.unwrap();
            let status = answer.status().as_u16();
            if method == "GET" {
                assert_eq!(status, 200, "{method} {url}");
                let found: Value = answer.json().await.unwrap();
                assert_eq!(found["resources"].as_array().unwrap().len(), 1, "{url}");
                continue;
            }
            let location = answer.headers().get("location").cloned();
            assert_eq!(
                status,
                202,
                "{method} {url}: {}",
                answer.text().await.unwrap()
            );
            let job = location.unwrap().to_str().unwrap().to_owned();
            let mut state = String::new();
            for _ in 0..10 {
                let answer: Value = client
                    .get(&job)
                    .header("authorization", &bearer)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                state = answer["state"].as_str().unwrap().to_owned();
                if state != "POLLING" {
                    break;
                }
                sim.state.advance_clock(Duration::from_secs(5));
            }
            assert_eq!(state, "COMPLETE", "{method} {url}");
        }
    }
}

/// A key as the simulator holds it.
#[derive(Debug, Clone)]
struct Held {
    name: String,
    instance: String,
    credentials: Value,
    parameters: Option<Value>,
    created: i64,
}

fn held(sim: &Sim) -> HashMap<String, Held> {
    sim.state.with_world(|w| {
        w.keys
            .iter()
            .map(|k| {
                let held = Held {
                    name: k.name.clone(),
                    instance: k.instance_guid.clone(),
                    credentials: k.credentials.clone(),
                    parameters: k.parameters.clone(),
                    created: k.created_at.unix_timestamp(),
                };
                (k.guid.clone(), held)
            })
            .collect()
    })
}

/// The lifetime in days of a key's credentials as the exporter reads them.
fn lifetime_days(credentials: &Value, created: i64) -> Option<i64> {
    let extraction = cf_service_key_exporter::expiry::extract(credentials);
    let found = extraction.earliest()?;
    let from = cf_service_key_exporter::expiry::valid_from(found, Some(created))?;
    parameters::days(from, found.expires_at.unix_timestamp())
}

/// The plan's keys by name, with their status.
fn statuses(plan: &Value) -> BTreeMap<String, String> {
    plan["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["service_key"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn running_the_plans_requests_replaces_every_expiring_key_with_an_equal_successor_that_nothing_alerts_on(
) {
    let h = Harness::with(
        clean_demo(time::OffsetDateTime::now_utc()),
        Accounts::default(),
        tuned,
    )
    .await;
    h.refresh().await;
    let before = h.scrape().await;
    let text = plan(&h.sim, &args(ReportOutput::Json, Some(30 * DAY))).await;
    let plan: Value = serde_json::from_str(&text).unwrap();
    let expected = [
        ("old-tooling", "rotate"),
        ("jobs-x509-abandoned", "rotate"),
        ("payments-x509", "rotate"),
        ("s4-inbound", "rotate"),
        ("jobs-x509-rotated", "successor_exists"),
        ("jobs-x509-fresh", "rotate"),
        ("partner-edi", "rotate"),
    ];
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect();
    assert_eq!(statuses(&plan), expected, "{text}");

    let old = held(&h.sim);
    let planned: Vec<&Value> = plan["keys"].as_array().unwrap().iter().collect();
    execute(&h.sim, &plan).await;
    let now = held(&h.sim);

    let mut successors = HashSet::new();
    for key in &planned {
        let guid = key["service_key_guid"].as_str().unwrap();
        assert!(!now.contains_key(guid), "{guid} was not deleted");
        if key["status"] != "rotate" {
            continue;
        }
        let before = &old[guid];
        let name = key["successor"]["name"].as_str().unwrap();
        let (new_guid, after) = now
            .iter()
            .find(|(_, k)| k.name == name && k.instance == before.instance)
            .unwrap_or_else(|| panic!("no successor {name}"));
        successors.insert(new_guid.clone());
        // The same kind of key: credential type and certificate key length, and lifetime.
        assert_eq!(
            shape::read(&after.credentials),
            shape::read(&before.credentials),
            "{name}"
        );
        let days = |k: &Held| lifetime_days(&k.credentials, k.created);
        assert!(days(before).is_some(), "{name}");
        assert_eq!(days(after), days(before), "{name}: lifetime");
        // And the parameters it was created with, where the old key's are known.
        if let Some(p) = before.parameters.as_ref().filter(|p| *p != &json!({})) {
            assert_eq!(after.parameters.as_ref(), Some(p), "{name}: parameters");
        }
    }

    h.refresh().await;
    let after = h.scrape().await;
    let guids = |s: &Scrape| -> HashSet<String> {
        s.all("cf_service_key_info")
            .iter()
            .map(|s| s.labels["service_key_guid"].clone())
            .collect()
    };
    let listed = guids(&after);
    for key in &planned {
        let guid = key["service_key_guid"].as_str().unwrap();
        assert!(!listed.contains(guid), "{guid} still on /metrics");
        if key["status"] != "rotate" {
            continue;
        }
        let old_expiry = before.value(
            "cf_service_key_expiry_timestamp_seconds",
            &[("service_key_guid", guid)],
        );
        let name = key["successor"]["name"].as_str().unwrap();
        let new_expiry = after.value(
            "cf_service_key_expiry_timestamp_seconds",
            &[("service_key", name)],
        );
        assert!(
            new_expiry > old_expiry,
            "{name}: {new_expiry} <= {old_expiry}"
        );
    }
    assert!(successors.iter().all(|g| listed.contains(g)));

    // The shipped rules fire nothing for the successors; on the old keys they did.
    let old_guids: HashSet<String> = planned
        .iter()
        .map(|k| k["service_key_guid"].as_str().unwrap().to_owned())
        .collect();
    let quiet = promtool_quiet(&after, &successors);
    assert!(quiet.0, "the successors alert:\n{}", quiet.1);
    let control = promtool_quiet(&before, &old_guids);
    assert!(
        !control.0,
        "the old keys should have alerted:\n{}",
        control.1
    );
}

/// Runs the shipped rules on the per-key series of `guids` from `scrape` (`promtool test
/// rules`), the scrape's moment moved to the test's time 0, and expects none of the key alerts
/// to fire within two hours: whether that held, and promtool's output.
fn promtool_quiet(scrape: &Scrape, guids: &HashSet<String>) -> (bool, String) {
    let t0 = unix_now() as f64;
    let mut series = String::new();
    for s in &scrape.series {
        // The keys' series, and the exporter's own gauges of their foundation (the rules count
        // a replica's keys only while its refreshes are recent).
        let key = s.labels.get("service_key_guid");
        let exporter = key.is_none()
            && s.labels.contains_key("foundation")
            && s.name.starts_with("cf_service_key_exporter_")
            && !s.name.ends_with("_total");
        if !exporter && !key.is_some_and(|g| guids.contains(g)) {
            continue;
        }
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
            .collect();
        let value = if s.name.ends_with("_timestamp_seconds") {
            s.value - t0
        } else {
            s.value
        };
        // The last refresh stays as recent as it was at the scrape, minute after minute.
        let step = match s.name.as_str() {
            "cf_service_key_exporter_last_refresh_success_timestamp_seconds" => 60,
            _ => 0,
        };
        let selector = format!("{}{{{}}}", s.name, labels.join(",")).replace('\'', "''");
        series.push_str(&format!(
            "      - series: '{selector}'\n        values: '{value}+{step}x180'\n"
        ));
    }
    assert!(!series.is_empty(), "no series of {guids:?} in the scrape");
    let mut tests = String::new();
    for alert in [
        "CfServiceKeyExpiringSoon",
        "CfServiceKeyExpired",
        "CfServiceKeyUnreadable",
    ] {
        for at in ["1m", "1h", "2h"] {
            tests.push_str(&format!(
                "      - eval_time: {at}\n        alertname: {alert}\n        exp_alerts: []\n"
            ));
        }
    }
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/alerts/rules.yml");
    let file = format!(
        "rule_files:\n  - {rules}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n{tests}"
    );
    let dir = std::env::temp_dir().join(format!("cfske-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("quiet-{}.yml", guids.len()));
    std::fs::write(&path, &file).unwrap();
    let output = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/install-test-deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_x509_key_whose_broker_returns_no_parameters_gets_an_x509_successor_of_its_length_and_validity(
) {
    let h = Harness::with(
        clean_demo(time::OffsetDateTime::now_utc()),
        Accounts::default(),
        tuned,
    )
    .await;
    let mut only = args(ReportOutput::Json, None);
    only.keys = vec!["payments-x509".into()];
    let plan: Value = serde_json::from_str(&plan(&h.sim, &only).await).unwrap();
    let key = &plan["keys"][0];
    assert_eq!(plan["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["parameters_source"], "derived", "{key}");
    assert_eq!(
        key["parameters"],
        json!({"credential-type": "x509", "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}})
    );
    // What the broker says, and what the instance would give without parameters.
    let (instance, default) = h.sim.state.with_world(|w| {
        let k = w.find_key("payments-x509").unwrap();
        let i = w
            .instances
            .iter()
            .find(|i| i.guid == k.instance_guid)
            .unwrap();
        (i.guid.clone(), i.default_credential_type.clone())
    });
    assert_eq!(default, None, "the instance defaults to a client secret");
    assert_eq!(key["service_instance_guid"], instance.as_str());

    execute(&h.sim, &plan).await;
    let name = key["successor"]["name"].as_str().unwrap();
    let new = held(&h.sim)
        .into_values()
        .find(|k| k.name == name)
        .expect("the successor");
    assert_eq!(
        new.credentials["credential-type"], "x509",
        "the successor must not be a client-secret key"
    );
    assert_eq!(
        shape::read(&new.credentials),
        shape::Shape::Typed(shape::CredentialType::X509 {
            rsa_bits: Some(2048)
        })
    );
    assert_eq!(lifetime_days(&new.credentials, new.created), Some(7));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credential_value_reaches_a_plan_as_text_or_json() {
    // Every secret-bearing field of every demo key holds DEMO_SECRET; certificates and private
    // keys are credentials too.
    let h = Harness::with(
        cf_sim::demo::world(time::OffsetDateTime::now_utc()).unwrap(),
        Accounts::default(),
        tuned,
    )
    .await;
    let mut secrets: Vec<String> = vec![DEMO_SECRET.into()];
    h.sim.state.with_world(|w| {
        for k in &w.keys {
            collect_strings(&k.credentials, &mut secrets);
        }
    });
    for output in [ReportOutput::Json, ReportOutput::Table] {
        let text = plan(&h.sim, &args(output, None)).await;
        assert!(text.contains("payments-x509"), "{text}");
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{output:?} holds a credential value: {secret}"
            );
        }
        assert!(!text.contains("-----BEGIN"), "{output:?} holds a PEM block");
    }
}

/// Every string in the credentials long enough to be a secret, a client id, a certificate or
/// a key (short values such as `x509` or `dedicated` name kinds, not credentials).
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() >= 24 && !s.starts_with("https://") => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_successor_shows_on_metrics_until_the_old_key_is_deleted_and_unrelated_keys_never_succeed(
) {
    let now = time::OffsetDateTime::now_utc();
    let mut world = clean_demo(now);
    // s4-inbound's successor by name, created now for a year.
    let runtime = world.find_key("s4-inbound").unwrap().instance_guid.clone();
    let credentials = crate::common::year_key(
        cf_sim::credentials::Shape::CloudIntegrationFlow,
        now + time::Duration::days(365),
        "s",
    )
    .unwrap();
    let new = world.key(&runtime, "s4-inbound-20260101", credentials);
    let k = world.key_mut(&new).unwrap();
    (k.created_at, k.updated_at) = (now, now);
    let h = Harness::with(world, Accounts::default(), tuned).await;
    h.refresh().await;
    let scrape = h.scrape().await;
    let pairs: BTreeMap<String, (String, String)> = scrape
        .all("cf_service_key_successor_info")
        .iter()
        .map(|s| {
            assert_eq!(s.value, 1.0);
            (
                s.labels["service_key"].clone(),
                (
                    s.labels["successor_key"].clone(),
                    s.labels["successor_key_guid"].clone(),
                ),
            )
        })
        .collect();
    let guid_of = |name: &str| {
        h.sim
            .state
            .with_world(|w| w.find_key(name).unwrap().guid.clone())
    };
    let expected = BTreeMap::from([
        (
            "jobs-x509-rotated".to_owned(),
            ("jobs-x509-fresh".to_owned(), guid_of("jobs-x509-fresh")),
        ),
        (
            "s4-inbound".to_owned(),
            ("s4-inbound-20260101".to_owned(), new.clone()),
        ),
    ]);
    // partner-edi and monitoring share s4-inbound's instance, the jobs keys theirs: no other
    // pair is a succession.
    assert_eq!(pairs, expected);
    let series = scrape.find(
        "cf_service_key_successor_info",
        &[("service_key", "s4-inbound")],
    );
    let labels: std::collections::BTreeSet<&str> =
        series[0].labels.keys().map(String::as_str).collect();
    let golden = crate::common::golden();
    assert_eq!(labels, golden.label_names("cf_service_key_successor_info"));

    // The old key deleted: its successor series goes with it.
    let old = guid_of("s4-inbound");
    h.sim.state.with_world(|w| w.delete_key(&old));
    h.refresh().await;
    let scrape = h.scrape().await;
    assert!(scrape
        .find(
            "cf_service_key_successor_info",
            &[("service_key", "s4-inbound")]
        )
        .is_empty());
    assert_eq!(scrape.all("cf_service_key_successor_info").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_being_deleted_is_not_read_and_leaves_metrics_without_a_read_error() {
    let h = Harness::with(
        clean_demo(time::OffsetDateTime::now_utc()),
        Accounts::default(),
        tuned,
    )
    .await;
    h.refresh().await;
    // it-rt works asynchronously: the deletion stays in progress, /details answers 404.
    let guid = h
        .sim
        .state
        .with_world(|w| w.find_key("partner-edi").unwrap().guid.clone());
    let bearer = format!("bearer {}", token(&h.sim).await);
    let answer = reqwest::Client::new()
        .delete(format!(
            "{}/v3/service_credential_bindings/{guid}",
            h.sim.api_url.as_str().trim_end_matches('/')
        ))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let in_progress = h.sim.state.with_world(|w| {
        let k = w.key_by_guid(&guid).unwrap();
        (k.operation, k.state)
    });
    assert_eq!(in_progress, ("delete", "in progress"));
    let details = h
        .sim
        .state
        .stats
        .count("/v3/service_credential_bindings/:guid/details");
    let stats = h.refresh().await;
    assert_eq!(stats.details_errors, 0);
    assert_eq!(
        h.sim
            .state
            .stats
            .count("/v3/service_credential_bindings/:guid/details"),
        details,
        "no /details request for a key being deleted"
    );
    let scrape = h.scrape().await;
    assert!(scrape
        .find("cf_service_key_info", &[("service_key", "partner-edi")])
        .is_empty());
    assert!(scrape.all("cf_service_key_read_error").is_empty());
}

#[test]
fn the_binary_plans_the_demo_keys_an_owner_has_and_refuses_an_owner_nobody_reads() {
    let output = exporter(&[
        "report",
        "--demo",
        "--rotate-plan",
        "--owner",
        "team=payments",
        "--output",
        "json",
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        statuses(&plan),
        BTreeMap::from([("payments-x509".to_owned(), "rotate".to_owned())])
    );
    let output = exporter(&[
        "report",
        "--demo",
        "--rotate-plan",
        "--owner",
        "cost-center=1",
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--owner cost-center"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// The XSUAA keys of the demo (its only offering that returns parameters) that need a
/// successor: all seven but jobs-x509-rotated, whose successor exists.
const XSUAA_KEYS: usize = 6;
const PARAMETERS: &str = "/v3/service_credential_bindings/:guid/parameters";

#[tokio::test(flavor = "multi_thread")]
async fn parameter_reads_go_through_the_rate_limit_budget_and_stop_when_it_is_spent() {
    let h = Harness::with(
        clean_demo(time::OffsetDateTime::now_utc()),
        Accounts::default(),
        tuned,
    )
    .await;
    // Plenty left: one offerings page, and /parameters for each XSUAA key, none for the rest.
    let planned: Value =
        serde_json::from_str(&plan(&h.sim, &args(ReportOutput::Json, None)).await).unwrap();
    assert_eq!(h.sim.state.stats.count(PARAMETERS), XSUAA_KEYS);
    assert_eq!(h.sim.state.stats.count("/v3/service_offerings"), 1);
    let fetched = planned["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["parameters_source"] == "fetched")
        .count();
    assert!(fetched > 0, "{planned}");

    // The window nearly spent by the time the plans are made (after the refresh): what is
    // left is under the tenth of the limit that is never spent.
    h.sim.state.stats.reset();
    let mut foundation = DemoTarget::from(&h.sim).foundation("demo");
    tuned(&mut foundation);
    let config = Config {
        foundations: vec![foundation],
        file: None,
        cache_file: None,
    };
    let refreshed = report::refresh(&config, false, Arc::new(SystemClock)).await;
    h.sim.state.switches.set_rate_limit(Some(
        cf_sim::RateLimit::new(100, Duration::from_secs(3600)).with_used(95),
    ));
    let plans = run::plans(&refreshed, &args(ReportOutput::Json, None), unix_now()).await;
    let planned: Value = serde_json::from_str(&render::json(&plans).unwrap()).unwrap();
    assert_eq!(h.sim.state.stats.count("/v3/service_offerings"), 1);
    assert_eq!(h.sim.state.stats.count(PARAMETERS), 0);
    let xsuaa: Vec<&Value> = planned["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["service_offering"] == "xsuaa" && k["status"] == "rotate")
        .collect();
    assert_eq!(xsuaa.len(), XSUAA_KEYS);
    for k in xsuaa {
        assert_eq!(k["parameters_source"], "derived", "{k}");
        let basis = k["parameters_basis"].as_str().unwrap();
        assert!(basis.contains("the rate-limit budget is spent"), "{basis}");
    }
}
