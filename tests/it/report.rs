//! `cf-service-key-exporter report`, run as the real binary against the built-in demo
//! foundation (`report --demo`), whose planted keys are described in `cf_sim::demo`: among
//! them old-tooling expired 2 days ago, jobs-x509-abandoned (a 7-day certificate) 12 hours
//! left, s4-inbound 3 days, jobs-x509-fresh 6 days, partner-edi 20, x509-client 60, monitoring
//! 200, calm-key 365, legacy-basic and the client-secret keys without expiry, broken-binding
//! never readable (404) and flaky-key failing its first refresh.

use std::process::Output;

use crate::common::exporter;

use cf_sim::demo::DEMO_SECRET;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Planted keys in the order the report must show them, with their hours left.
const PLANTED: [(&str, i64); 8] = [
    ("old-tooling", -48),
    ("jobs-x509-abandoned", 12),
    ("s4-inbound", 72),
    ("jobs-x509-fresh", 144),
    ("partner-edi", 20 * 24),
    ("x509-client", 60 * 24),
    ("monitoring", 200 * 24),
    ("calm-key", 365 * 24),
];
const HOUR: i64 = 3_600;

/// What the demo's failing keys (and its invalid lead time on monitoring) make the report say
/// on stderr, and nothing else.
fn only_the_planted_failures(stderr: &str) {
    for line in stderr.lines() {
        assert!(
            line.contains("cannot read the key's details")
                || line.contains("errors reading key details")
                || (line.contains("lead-time annotation")
                    && line.contains("service_key=\"monitoring\"")),
            "unexpected stderr line: {line}\n{stderr}"
        );
    }
}

/// Runs the binary with `args`, isolated from the caller's CF_* and logging environment.
fn report(args: &[&str]) -> Output {
    exporter(&["report"])
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("the process exited")
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[test]
fn table_shows_every_demo_key_soonest_first_with_lifetime_owner_and_error_columns() {
    let output = report(&["--demo"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(code(&output), 0, "{stderr}");
    only_the_planted_failures(&stderr);
    assert!(stderr.contains("2 errors reading key details"), "{stderr}");

    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "FOUNDATION",
            "ORG",
            "SPACE",
            "OFFERING",
            "PLAN",
            "INSTANCE",
            "KEY",
            "CREATED",
            "VALID FROM",
            "EXPIRES AT",
            "TIME LEFT",
            "SOURCE",
            "ERROR",
            "TEAM",
            "EXAMPLE_COM_OWNER",
            "SUBJECT",
            "ISSUER",
            "SERIAL"
        ]
    );
    assert!(
        !stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let line_of = |key: &str| {
        lines
            .iter()
            .position(|l| l.split_whitespace().nth(6) == Some(key))
            .unwrap_or_else(|| panic!("{key} is not in the table:\n{stdout}"))
    };
    let positions: Vec<usize> = PLANTED.iter().map(|(key, _)| line_of(key)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "not sorted by expiry: {positions:?}\n{stdout}"
    );
    assert_eq!(positions[0], 1, "the expired key comes first");

    let cells = |key: &str| -> Vec<&str> { lines[line_of(key)].split_whitespace().collect() };
    let expired = lines[line_of("old-tooling")];
    assert!(expired.contains("expired 2d ago"), "{expired}");
    // created, valid from, expires at, time left, source, error, team, owner
    let s4 = cells("s4-inbound");
    assert!(s4[10] == "3d" || s4[10] == "2d", "{s4:?}");
    assert_eq!(
        s4[11 + usize::from(s4[10] == "2d")],
        "certificatedetails.validuntil",
        "{s4:?}"
    );
    let s4_line = lines[line_of("s4-inbound")];
    assert!(
        s4_line.contains(" integration ") && s4_line.contains(" integration@acme.example "),
        "owners from the instance and the space: {s4_line}"
    );
    let payments = lines[line_of("payments-x509")];
    assert!(
        payments.contains(" payments "),
        "the key's own team: {payments}"
    );

    let x509 = lines[line_of("x509-client")];
    assert!(x509.contains(" certificate "), "{x509}");
    assert!(
        x509.contains("SAP Cloud Platform Clients"),
        "the subject: {x509}"
    );
    assert!(x509.contains("0x"), "the serial: {x509}");

    // Keys without an expiry after those with one; keys never read last, with their reason.
    let broken = cells("broken-binding");
    assert!(
        broken.contains(&"unread") && broken.contains(&"not_found"),
        "{broken:?}"
    );
    let flaky = cells("flaky-key");
    assert!(
        flaky.contains(&"unread") && flaky.contains(&"http_5xx"),
        "{flaky:?}"
    );
    assert!(line_of("legacy-basic") > line_of("calm-key"));
    assert!(line_of("broken-binding") > line_of("legacy-basic"));
    assert!(line_of("flaky-key") > line_of("legacy-basic"));
}

#[test]
fn json_carries_the_planted_times_owners_and_errors_with_stable_field_names() {
    let before = unix_now();
    let output = report(&["--demo", "--output", "json"]);
    let after = unix_now();
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout).expect("a JSON array");

    let mut fields = vec![
        "foundation",
        "org",
        "space",
        "service_offering",
        "service_plan",
        "service_instance",
        "service_key",
        "service_key_guid",
        "created_at",
        "valid_from",
        "expires_at",
        "expires_at_unix",
        "seconds_left",
        "expiry_source",
        "read_error",
        "owners",
        "certificate",
    ];
    fields.sort_unstable();
    for row in &rows {
        let mut names: Vec<&str> = row
            .as_object()
            .expect("objects")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, fields);
        assert_eq!(row["foundation"], "demo");
    }

    let find = |key: &str| {
        rows.iter()
            .position(|r| r["service_key"] == key)
            .unwrap_or_else(|| panic!("{key} is not in the JSON"))
    };
    let mut previous = None;
    for (key, hours) in PLANTED {
        let index = find(key);
        assert!(previous < Some(index), "{key} is out of order");
        previous = Some(index);

        let row = &rows[index];
        let unix = row["expires_at_unix"].as_i64().expect("unix seconds");
        let left = row["seconds_left"].as_i64().expect("seconds left");
        // The demo counts its times from its own start, a moment before the report's clock.
        let planted_from = |now: i64| now + hours * HOUR;
        assert!(
            (planted_from(before) - 2..=planted_from(after) + 1).contains(&unix),
            "{key}: expires at {unix}, planted {hours} hours from about {before}"
        );
        assert!(
            (before - 1..=after + 1).contains(&(unix - left)),
            "{key}: seconds_left {left}"
        );
        let rfc = OffsetDateTime::parse(row["expires_at"].as_str().expect("a string"), &Rfc3339)
            .expect("RFC 3339");
        assert_eq!(rfc.unix_timestamp(), unix, "{key}");
    }
    // A 7-day key: created, valid from the same moment, expires 7 days later.
    let fresh = &rows[find("jobs-x509-fresh")];
    let time = |v: &Value| {
        OffsetDateTime::parse(v.as_str().expect("a time"), &Rfc3339)
            .expect("RFC 3339")
            .unix_timestamp()
    };
    assert_eq!(time(&fresh["created_at"]), time(&fresh["valid_from"]));
    assert_eq!(
        time(&fresh["expires_at"]) - time(&fresh["valid_from"]),
        7 * 24 * HOUR
    );
    assert_eq!(fresh["owners"]["label_team"], "jobs");
    assert_eq!(
        rows[find("payments-x509")]["owners"]["label_team"],
        "payments"
    );
    assert_eq!(
        rows[find("s4-inbound")]["owners"]["label_team"],
        "integration"
    );
    assert_eq!(
        rows[find("s4-inbound")]["owners"]["label_example_com_owner"],
        "integration@acme.example"
    );
    assert_eq!(
        rows[find("x509-client")]["owners"]["label_team"],
        "platform"
    );
    assert_eq!(rows[find("legacy-basic")]["owners"], serde_json::json!({}));

    let x509 = &rows[find("x509-client")];
    assert_eq!(x509["expiry_source"], "certificate");
    assert_eq!(x509["read_error"], Value::Null);
    assert!(x509["certificate"]["subject"]
        .as_str()
        .unwrap()
        .contains("SAP Cloud Platform Clients"));
    assert!(x509["certificate"]["serial"]
        .as_str()
        .unwrap()
        .starts_with("0x"));
    assert_eq!(rows[find("s4-inbound")]["certificate"], Value::Null);

    let broken = &rows[find("broken-binding")];
    assert_eq!(broken["expiry_source"], "unread");
    assert_eq!(broken["read_error"], "not_found");
    assert_eq!(broken["expires_at"], Value::Null);
    assert!(broken["created_at"].is_string());
    let none = &rows[find("legacy-basic")];
    assert_eq!(none["expiry_source"], "none");
    assert_eq!(none["valid_from"], Value::Null);
    assert_eq!(none["seconds_left"], Value::Null);
}

#[test]
fn expiring_within_1d_counts_the_expired_key_and_the_12_hour_keys() {
    let output = report(&["--demo", "--expiring-within", "1d"]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 1, "{stderr}");
    assert!(stderr.contains("3 keys expire within 1day"), "{stderr}");
    assert!(stderr.contains("old-tooling: expired 2d ago"), "{stderr}");
    assert!(
        stderr.contains("jobs-x509-abandoned: 11h") || stderr.contains("jobs-x509-abandoned: 12h"),
        "{stderr}"
    );
    assert!(stderr.contains("payments-x509: "), "{stderr}");
    assert!(
        !stderr.contains("s4-inbound:"),
        "3 days is outside 1d: {stderr}"
    );
    assert!(
        text(&output.stdout).contains("legacy-basic"),
        "the full table is still printed"
    );
}

#[test]
fn expiring_within_a_share_of_the_lifetime_tells_a_fresh_short_key_from_an_abandoned_one() {
    // 10 %: a 7-day key in its last 16.8 hours, a 1-year key in its last 36.5 days.
    let output = report(&["--demo", "--output", "json", "--expiring-within", "10%"]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 1, "{stderr}");
    for key in [
        "old-tooling",
        "jobs-x509-abandoned",
        "payments-x509",
        "s4-inbound",
        "partner-edi",
    ] {
        assert!(
            stderr.contains(&format!(" {key}: ")),
            "{key} missing: {stderr}"
        );
    }
    for key in [
        "jobs-x509-fresh",
        "jobs-x509-rotated",
        "x509-client",
        "monitoring",
    ] {
        assert!(
            !stderr.contains(&format!(" {key}: ")),
            "{key} listed: {stderr}"
        );
    }
    assert!(stderr.contains("within 10% of their lifetime"), "{stderr}");
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("stdout stays pure JSON");
}

#[test]
fn expiring_within_30d_lists_every_key_inside_the_window() {
    let output = report(&["--demo", "--output", "json", "--expiring-within", "30d"]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 1, "{stderr}");
    for key in [
        "old-tooling",
        "s4-inbound",
        "partner-edi",
        "jobs-x509-fresh",
    ] {
        assert!(
            stderr.contains(&format!(" {key}: ")),
            "{key} missing: {stderr}"
        );
    }
    assert!(!stderr.contains(" x509-client: "), "{stderr}");
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("stdout stays pure JSON");
}

#[test]
fn expiring_within_1d_on_the_api_plan_exits_0() {
    let output = report(&[
        "--demo",
        "--service-plans",
        "api",
        "--expiring-within",
        "1d",
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    // old-tooling (api) is expired: within any window.
    assert_eq!(code(&output), 1, "{stderr}");
    let keys: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6))
        .collect();
    assert!(
        keys.iter()
            .all(|k| ["old-tooling", "legacy-basic", "broken-binding", "flaky-key"].contains(k)),
        "{stdout}"
    );
    let output = report(&[
        "--demo",
        "--service-plans",
        "integration-flow",
        "--expiring-within",
        "1d",
    ]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["--demo", "--output", "yaml"][..],
        &["--demo", "--expiring-within", "soon"],
        &["--demo", "--no-such-flag"],
    ] {
        let output = report(args);
        assert_eq!(code(&output), 2, "{args:?}: {}", text(&output.stderr));
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_unreachable_foundation_exits_2_and_prints_nothing_on_stdout() {
    // Port 1 on loopback refuses connections; the refresher's retries make this take a moment.
    let output = report(&["--cf-api-url", "http://127.0.0.1:1", "--foundation", "gone"]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 2, "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "no table that would read as `no keys`"
    );
    assert!(
        stderr.contains("foundation gone could not be read"),
        "{stderr}"
    );
}

#[test]
fn the_report_never_prints_a_credential() {
    for format in ["table", "json"] {
        let output = report(&["--demo", "--output", format, "--expiring-within", "400d"]);
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(!all.contains(DEMO_SECRET), "{format}");
        assert!(!all.contains("PRIVATE KEY"), "{format}");
        assert!(!all.contains("BEGIN CERTIFICATE"), "{format}");
    }
}

/// The report's refreshers read the wall clock it is given, not the system's: every key read
/// carries the injected moment as its reading time.
#[tokio::test]
async fn the_report_reads_the_wall_clock_it_is_given() {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use cf_service_key_exporter::config::{Config, DemoTarget};
    use cf_service_key_exporter::testing::ManualClock;
    use cf_sim::{demo, Accounts, Sim};

    let sim = Sim::start(
        demo::world(OffsetDateTime::now_utc()).unwrap(),
        Accounts::default(),
    )
    .await
    .unwrap();
    let config = Config {
        foundations: vec![DemoTarget::from(&sim).foundation("demo")],
        file: None,
        cache_file: None,
    };
    // A moment days away from the system clock.
    let at = unix_now() + 5 * 86_400;
    let clock = Arc::new(ManualClock::at(
        UNIX_EPOCH + Duration::from_secs(at.try_into().unwrap()),
    ));
    let collected = cf_service_key_exporter::report::collect(&config, false, clock).await;
    let read_at: Vec<i64> = (collected.rows.iter())
        .filter_map(|row| row.key.reading.as_ref().map(|r| r.read_at))
        .collect();
    assert!(read_at.len() > 10, "{} keys read", read_at.len());
    assert!(
        read_at.iter().all(|&t| t == at),
        "{read_at:?} (expected {at})"
    );
}
