//! The exposition of a fixed snapshot at a fixed clock, byte for byte: names, help texts, label
//! order and escaping, value formatting, `expiry_source="none"` and `"unread"`, creation and
//! valid-from times, read errors, owners, lead times (valid and invalid), a successor, the
//! self-metrics. A
//! change to
//! any of them shows up here as a diff. `UPDATE_GOLDEN=1 cargo test --test it golden` rewrites the
//! file after a deliberate change (then check it with `promtool check metrics`).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cf_service_key_exporter::expiry::CertificateInfo;
use cf_service_key_exporter::lead_time::LeadTime;
use cf_service_key_exporter::rotation::RotationConfig;
use cf_service_key_exporter::snapshot::Successors;
use cf_service_key_exporter::snapshot::{
    FoundationSnapshot, KeyExpiry, KeyLabels, KeyRecord, ReadFailure, Reading, RefreshStatus,
    Snapshot,
};
use cf_service_key_exporter::testing::encode_snapshot_at;

const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn key(org: &str, instance: &str, name: &str, guid: &str, expiry: Option<KeyExpiry>) -> KeyRecord {
    KeyRecord {
        labels: KeyLabels {
            org: Arc::from(org),
            space: Arc::from("integration"),
            service_offering: Arc::from("it-rt"),
            service_plan: Arc::from("integration-flow"),
            service_instance: Arc::from(instance),
            service_key: Arc::from(name),
            service_key_guid: Arc::from(guid),
        },
        created_at: Some(NOW as i64 - 362 * 86_400),
        owners: Arc::from([Some(Arc::from("payments")), None]),
        lead_time: LeadTime::Unset,
        key_updated_at: Arc::from("2025-01-01T00:00:00Z"),
        instance_updated_at: Arc::from("2025-01-01T00:00:00Z"),
        reading: Some(Reading {
            read_at: NOW as i64,
            expiry,
            shape: None,
        }),
        failure: None,
        facts: Default::default(),
    }
}

fn snapshot() -> Snapshot {
    let keys = vec![
        key(
            "acme",
            "cpi-runtime",
            "s4-inbound",
            "0000000a-0000-4000-8000-000000000001",
            Some(KeyExpiry {
                expires_at: NOW as i64 + 3 * 86_400,
                valid_from: Some(NOW as i64 - 362 * 86_400),
                source: cf_service_key_exporter::vocab::ExpirySource::CertificateDetailsValidUntil,
                certificate: None,
            }),
        ),
        key(
            "acme",
            "xsuaa-app",
            "x509-client",
            "0000000a-0000-4000-8000-000000000002",
            Some(KeyExpiry {
                expires_at: NOW as i64 - 2 * 86_400,
                valid_from: Some(NOW as i64 - 9 * 86_400),
                source: cf_service_key_exporter::vocab::ExpirySource::Certificate,
                certificate: Some(CertificateInfo {
                    subject: "CN=client".into(),
                    issuer: "CN=ca".into(),
                    serial: "0x01".into(),
                }),
            }),
        ),
        key(
            "quote \"q\" back\\slash\nline",
            "legacy",
            "basic",
            "0000000a-0000-4000-8000-000000000003",
            None,
        ),
    ];
    let mut keys = keys;
    // The owner's lead time: 60 days on one key, an invalid value on another.
    keys[0].lead_time = LeadTime::Valid(60 * 86_400);
    keys[2].lead_time = LeadTime::parse("60", "space");
    // A key whose latest read failed keeps its reading beside the error; one never read.
    keys[1].failure = Some(ReadFailure {
        reason: cf_service_key_exporter::vocab::Reason::Http5xx,
        attempts: 2,
        retry_at: Some(NOW as i64 + 600),
    });
    let mut unread = key(
        "acme",
        "xsuaa-app",
        "broken",
        "0000000a-0000-4000-8000-000000000004",
        None,
    );
    unread.reading = None;
    unread.owners = Arc::from([None, Some(Arc::from("ops@example.com"))]);
    unread.failure = Some(ReadFailure {
        reason: cf_service_key_exporter::vocab::Reason::NotFound,
        attempts: 1,
        retry_at: Some(NOW as i64 + 150),
    });
    keys.push(unread);
    // s4-inbound's successor, named under the default scheme: read fine, a year to go.
    let mut successor = key(
        "acme",
        "cpi-runtime",
        "s4-inbound-20251231",
        "0000000a-0000-4000-8000-000000000005",
        Some(KeyExpiry {
            expires_at: NOW as i64 + 364 * 86_400,
            valid_from: Some(NOW as i64 - 86_400),
            source: cf_service_key_exporter::vocab::ExpirySource::CertificateDetailsValidUntil,
            certificate: None,
        }),
    );
    successor.created_at = Some(NOW as i64 - 86_400);
    keys.push(successor);
    let successors = Successors::find(&keys, &RotationConfig::default());
    let eu10 = FoundationSnapshot {
        successors,
        keys: Arc::new(keys),
        owner_labels: Arc::from([
            "label_team".to_owned(),
            "label_example_com_owner".to_owned(),
        ]),
        status: RefreshStatus {
            finished_once: true,
            ready: true,
            success: true,
            last_success_at: Some(UNIX_EPOCH + Duration::from_secs(NOW - 60)),
            last_duration: Some(Duration::from_millis(1500)),
        },
    };
    let us10 = FoundationSnapshot {
        successors: Default::default(),
        keys: Arc::new(Vec::new()),
        owner_labels: Arc::from([]),
        status: RefreshStatus {
            finished_once: true,
            ready: true,
            success: false,
            last_success_at: None,
            last_duration: Some(Duration::from_secs(2)),
        },
    };
    let mut snapshot = Snapshot::default();
    snapshot.foundations.insert("eu10".into(), Arc::new(eu10));
    snapshot.foundations.insert("us10".into(), Arc::new(us10));
    snapshot
}

#[test]
fn the_exposition_of_a_fixed_snapshot_is_the_golden_file() {
    let text = encode_snapshot_at(snapshot(), UNIX_EPOCH + Duration::from_secs(NOW));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/metrics.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path)
        .expect("tests/golden/metrics.txt (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        text, golden,
        "the exposition changed; if on purpose, UPDATE_GOLDEN=1 and review the diff"
    );
}

/// The label vocabularies (`reason`, `expiry_source`) as the exporter writes them, one
/// `label value` pair a line: what the Python checks read (tests/lib/harness.py `vocabulary`)
/// instead of keeping copies.
fn vocabulary() -> String {
    use cf_service_key_exporter::vocab::{ExpirySource, Reason};
    let mut out = String::from(
        "# The label values the exporter writes, from its enums (tests/it/golden.rs checks this\n\
         # file; UPDATE_GOLDEN=1 rewrites it). Read by tests/lib/harness.py.\n",
    );
    for reason in Reason::ALL {
        out.push_str(&format!("reason {}\n", reason.as_str()));
    }
    let sources = ExpirySource::READ
        .into_iter()
        .chain([ExpirySource::None, ExpirySource::Unread]);
    for source in sources {
        out.push_str(&format!("expiry_source {}\n", source.as_str()));
    }
    out
}

#[test]
fn the_label_vocabularies_are_the_golden_file() {
    let text = vocabulary();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/vocabulary.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path)
        .expect("tests/golden/vocabulary.txt (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        text, golden,
        "a reason or source changed; if on purpose, UPDATE_GOLDEN=1 and review the diff"
    );
}
