//! `cf-service-key-exporter report`, run as the real binary against the built-in demo
//! foundation (`report --demo`), whose planted keys are described in `sim::demo`:
//! s4-inbound 3 days, partner-edi 20, x509-client 60 (a certificate), monitoring 200,
//! calm-key 365, old-tooling expired 2 days ago, legacy-basic without expiry.

use std::process::{Command, Output};

use cf_sim::demo::DEMO_SECRET;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const DAY: i64 = 86_400;

/// The planted keys in the order the report must show them, with their days left.
const PLANTED: [(&str, i64); 6] = [
    ("old-tooling", -2),
    ("s4-inbound", 3),
    ("partner-edi", 20),
    ("x509-client", 60),
    ("monitoring", 200),
    ("calm-key", 365),
];

/// Runs the binary with `args`, isolated from the caller's CF_* and logging environment.
fn report(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cf-service-key-exporter"));
    command.arg("report").args(args);
    for (var, _) in std::env::vars() {
        if var.starts_with("CF_") || var == "RUST_LOG" || var == "CONFIG_FILE" {
            command.env_remove(var);
        }
    }
    command.output().expect("the binary runs")
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
fn table_shows_every_demo_key_soonest_first_and_the_key_without_expiry_last() {
    let output = report(&["--demo"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(code(&output), 0, "{stderr}");
    assert_eq!(
        stderr, "",
        "logs default to warn and the demo warns about nothing"
    );

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
            "INSTANCE",
            "PLAN",
            "KEY",
            "EXPIRES AT",
            "TIME LEFT",
            "SOURCE",
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
            .position(|l| l.split_whitespace().nth(5) == Some(key))
            .unwrap_or_else(|| panic!("{key} is not in the table:\n{stdout}"))
    };
    let positions: Vec<usize> = PLANTED.iter().map(|(key, _)| line_of(key)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "not sorted by expiry: {positions:?}\n{stdout}"
    );
    assert_eq!(positions[0], 1, "the expired key comes first");

    let expired = lines[line_of("old-tooling")];
    assert!(expired.contains("expired 2d ago"), "{expired}");
    let soon = lines[line_of("s4-inbound")];
    assert!(soon.contains(" 3d ") || soon.contains(" 2d 23h "), "{soon}");
    assert!(soon.contains("certificatedetails.validuntil"), "{soon}");

    let x509 = lines[line_of("x509-client")];
    assert!(x509.contains(" certificate "), "{x509}");
    assert!(
        x509.contains("SAP Cloud Platform Clients"),
        "the subject is shown: {x509}"
    );
    assert!(x509.contains("0x"), "the serial is shown: {x509}");

    let last = lines.last().expect("a table");
    assert_eq!(
        line_of("legacy-basic"),
        lines.len() - 1,
        "the key without expiry is last"
    );
    let cells: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(&cells[6..9], ["-", "-", "none"], "{last}");
}

#[test]
fn json_carries_the_planted_expiries_with_stable_field_names() {
    let before = unix_now();
    let output = report(&["--demo", "--output", "json"]);
    let after = unix_now();
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout).expect("a JSON array");

    let fields = [
        "foundation",
        "org",
        "space",
        "service_offering",
        "service_plan",
        "service_instance",
        "service_key",
        "service_key_guid",
        "expires_at",
        "expires_at_unix",
        "seconds_left",
        "expiry_source",
        "certificate",
    ];
    for row in &rows {
        let mut names: Vec<&str> = row
            .as_object()
            .expect("objects")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut expected = fields.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(row["foundation"], "demo");
    }

    let find = |key: &str| {
        rows.iter()
            .position(|r| r["service_key"] == key)
            .unwrap_or_else(|| panic!("{key} is not in the JSON"))
    };
    let mut previous = None;
    for (key, days) in PLANTED {
        let index = find(key);
        assert!(previous < Some(index), "{key} is out of order");
        previous = Some(index);

        let row = &rows[index];
        let unix = row["expires_at_unix"].as_i64().expect("unix seconds");
        let left = row["seconds_left"].as_i64().expect("seconds left");
        // The demo counts its expiries from its own start, a moment before the report's clock.
        let planted_from = |now: i64| now + days * DAY;
        assert!(
            (planted_from(before) - 2..=planted_from(after) + 1).contains(&unix),
            "{key}: expires at {unix}, planted {days} days from about {before}"
        );
        assert!(
            (before - 1..=after + 1).contains(&(unix - left)),
            "{key}: seconds_left {left}"
        );
        let rfc = OffsetDateTime::parse(row["expires_at"].as_str().expect("a string"), &Rfc3339)
            .expect("RFC 3339");
        assert_eq!(rfc.unix_timestamp(), unix, "{key}");
        assert!(row["expires_at"].as_str().unwrap().ends_with('Z'), "UTC");
    }
    assert!(rows[find("old-tooling")]["seconds_left"].as_i64().unwrap() < 0);

    let x509 = &rows[find("x509-client")];
    assert_eq!(x509["expiry_source"], "certificate");
    assert_eq!(x509["service_plan"], "application");
    assert!(x509["certificate"]["subject"]
        .as_str()
        .unwrap()
        .contains("SAP Cloud Platform Clients"));
    assert!(x509["certificate"]["issuer"]
        .as_str()
        .unwrap()
        .contains("CN="));
    assert!(x509["certificate"]["serial"]
        .as_str()
        .unwrap()
        .starts_with("0x"));
    assert_eq!(rows[find("s4-inbound")]["certificate"], Value::Null);

    let none = rows.last().expect("rows");
    assert_eq!(none["service_key"], "legacy-basic");
    assert_eq!(none["expiry_source"], "none");
    assert_eq!(none["expires_at"], Value::Null);
    assert_eq!(none["expires_at_unix"], Value::Null);
    assert_eq!(none["seconds_left"], Value::Null);
}

#[test]
fn expiring_within_1d_exits_1_because_an_expired_key_counts() {
    let output = report(&["--demo", "--expiring-within", "1d"]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 1, "{stderr}");
    assert!(stderr.contains("1 key expires within"), "{stderr}");
    assert!(stderr.contains("old-tooling: expired 2d ago"), "{stderr}");
    assert!(
        !stderr.contains("s4-inbound"),
        "3 days is outside 1d: {stderr}"
    );
    assert!(
        text(&output.stdout).contains("legacy-basic"),
        "the full table is still printed"
    );
}

#[test]
fn expiring_within_30d_lists_every_key_inside_the_window() {
    let output = report(&["--demo", "--output", "json", "--expiring-within", "30d"]);
    let stderr = text(&output.stderr);
    assert_eq!(code(&output), 1, "{stderr}");
    for key in ["old-tooling", "s4-inbound", "partner-edi"] {
        assert!(
            stderr.contains(&format!(" {key}: ")),
            "{key} missing: {stderr}"
        );
    }
    assert!(!stderr.contains("x509-client"), "{stderr}");
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("stdout stays pure JSON");
}

#[test]
fn expiring_within_1d_on_the_application_plan_exits_0() {
    let output = report(&[
        "--demo",
        "--service-plans",
        "application",
        "--expiring-within",
        "1d",
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(code(&output), 0, "{stderr}");
    assert_eq!(stderr, "");
    let keys: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    assert_eq!(keys, ["x509-client"], "{stdout}");
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
