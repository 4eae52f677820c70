//! Specification of `expiry::extract` over every credential shape, with real certificates made by
//! the simulator's factory (`cf_sim::certs`), plus property tests that feed it hostile JSON and
//! check it neither panics nor leaks.

use cf_service_key_exporter::expiry::{extract, Extraction, ReadError};
use cf_service_key_exporter::vocab::ExpirySource;
use cf_sim::certs::{self_signed, Ca};
use proptest::prelude::*;
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Certificates with a chosen notAfter

// The simulator's certificate factory (cf_sim::certs): each valid for 30 days up to its notAfter.

fn only(x: &Extraction) -> &cf_service_key_exporter::expiry::Found {
    assert_eq!(x.found.len(), 1, "{x:#?}");
    &x.found[0]
}

const LEAF_AT: OffsetDateTime = datetime!(2027-03-01 10:00:00 UTC);

// ---------------------------------------------------------------------------------------------
// certificatedetails.validuntil

#[test]
fn the_seed_integration_flow_key_reports_validuntil() {
    let creds = json!({
        "oauth": {"clientid": "sb-xyz", "url": "https://x.it-cpi018-rt.cfapps.eu10.hana.ondemand.com"},
        "certificatedetails": {
            "issuerdn": "CN=SAP PKI Certificate Service Client CA,OU=SAP BTP Clients,O=SAP SE,L=cf-us10,C=DE",
            "subjectdn": "CN=xyz,L=sap-uaa,OU=uvw,OU=SAP Cloud Platform Clients,O=SAP SE,C=DE",
            "validuntil": "2023-06-24T12:56:52.000Z",
            "serialnumber": "0xABCD1234"
        }
    });
    let x = extract(&creds);
    let f = only(&x);
    assert_eq!(f.expires_at, datetime!(2023-06-24 12:56:52 UTC));
    assert_eq!(f.source, ExpirySource::CertificateDetailsValidUntil);
    assert_eq!(f.path, "certificatedetails.validuntil");
    assert!(f.certificate.is_none());
    assert!(x.errors.is_empty());
}

#[test]
fn validuntil_variants_all_read_the_same_instant() {
    for v in [
        "2023-06-24T12:56:52Z",
        "2023-06-24T12:56:52+00:00",
        "2023-06-24T14:56:52+02:00",
        "2023-06-24 12:56:52.000Z",
        "2023-06-24 12:56:52Z",
    ] {
        let x = extract(&json!({"certificatedetails": {"validuntil": v}}));
        assert_eq!(
            only(&x).expires_at,
            datetime!(2023-06-24 12:56:52 UTC),
            "{v}"
        );
    }
}

#[test]
fn a_malformed_validuntil_is_an_invalid_date_not_a_date() {
    for v in [
        json!("2023-06-24T12:56:52"),
        json!("24.06.2023"),
        json!("tomorrow"),
        json!(true),
    ] {
        let x = extract(&json!({"certificatedetails": {"validuntil": v}}));
        assert!(x.found.is_empty(), "{v}");
        assert_eq!(
            x.errors,
            vec![ReadError::InvalidDate {
                path: "certificatedetails.validuntil".into()
            }],
            "{v}"
        );
        assert_eq!(x.errors[0].reason().as_str(), "invalid_date");
        assert_eq!(x.source(), ExpirySource::None);
    }
}

// ---------------------------------------------------------------------------------------------
// PEM certificates

#[test]
fn a_certificate_field_reports_its_notafter_and_public_facts() {
    let pem = self_signed("client-a", LEAF_AT);
    let x = extract(&json!({"clientid": "a", "certificate": pem}));
    let f = only(&x);
    assert_eq!(f.expires_at, LEAF_AT);
    assert_eq!(f.source, ExpirySource::Certificate);
    assert_eq!(f.path, "certificate");
    let c = f.certificate.as_ref().expect("certificate info");
    assert!(c.subject.contains("CN=client-a"), "{c:?}");
    assert!(c.issuer.contains("CN=client-a"), "{c:?}");
    assert_eq!(c.serial, "0x0ABCD1");
    assert!(x.errors.is_empty());
}

#[test]
fn nested_and_array_certificates_are_found_with_their_paths() {
    let root = Ca::expiring("root", datetime!(2040-01-01 0:00 UTC));
    let creds = json!({
        "uaa": {"certificate": root.leaf("uaa-leaf", LEAF_AT)},
        "trust": [{"x": 1}, {"pem": root.leaf("array-leaf", datetime!(2026-05-05 5:05:05 UTC))}],
    });
    let x = extract(&creds);
    let paths: Vec<_> = x.found.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["trust[1].pem", "uaa.certificate"]);
    assert_eq!(x.earliest().map(|f| f.path.as_str()), Some("trust[1].pem"));
}

#[test]
fn a_chain_whose_intermediate_expires_first_reports_the_intermediate() {
    let root = Ca::expiring("root", datetime!(2040-01-01 0:00 UTC));
    let inter = root.intermediate("intermediate", datetime!(2026-06-30 12:00 UTC));
    let chain = format!(
        "{}{}{}",
        inter.leaf("leaf", LEAF_AT),
        inter.pem(),
        root.pem()
    );
    let x = extract(&json!({"uaa": {"certificate": chain}}));
    let f = only(&x);
    assert_eq!(f.expires_at, datetime!(2026-06-30 12:00 UTC));
    assert_eq!(f.path, "uaa.certificate");
    let subject = &f.certificate.as_ref().expect("info").subject;
    assert!(subject.contains("CN=intermediate"), "{subject}");
}

#[test]
fn backslash_n_escaped_pem_is_read() {
    let pem = self_signed("escaped", LEAF_AT)
        .replace("\r\n", "\n")
        .replace('\n', "\\n");
    assert!(!pem.contains('\n'));
    let x = extract(&json!({"certificate": pem}));
    assert_eq!(only(&x).expires_at, LEAF_AT);
    assert!(x.errors.is_empty());
}

#[test]
fn a_private_key_beside_the_certificate_is_skipped_and_never_copied() {
    let key_pem = cf_sim::certs::private_key_pem();
    let body_line = key_pem.lines().nth(1).expect("a base64 line").to_owned();
    let both = format!("{key_pem}{}", self_signed("with-key", LEAF_AT));
    let x = extract(&json!({"certificate": both, "key": key_pem}));
    assert_eq!(only(&x).expires_at, LEAF_AT);
    assert!(x.errors.is_empty(), "{:?}", x.errors);
    let debug = format!("{x:?}");
    assert!(!debug.contains(&body_line));
    assert!(!debug.contains("PRIVATE KEY"));
}

#[test]
fn an_already_expired_certificate_is_still_reported() {
    let at = datetime!(2019-01-01 0:00 UTC);
    let x = extract(&json!({"certificate": self_signed("old", at)}));
    assert_eq!(only(&x).expires_at, at);
}

#[test]
fn malformed_pem_is_an_invalid_certificate_with_its_path() {
    let good = self_signed("good", LEAF_AT);
    let lines: Vec<&str> = good.lines().collect();
    // Same framing, body cut in half: base64 may still decode, the DER cannot parse.
    let truncated = format!(
        "{}\n{}\n{}\n",
        lines[0],
        lines[1..lines.len() / 2].join("\n"),
        lines[lines.len() - 1]
    );
    let cases = [
        ("truncated", truncated),
        (
            "not base64",
            "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----".into(),
        ),
        (
            "no end",
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgI".into(),
        ),
    ];
    for (name, pem) in cases {
        let x = extract(&json!({"uaa": {"certificate": pem}, "other": good.clone()}));
        assert_eq!(
            x.errors,
            vec![ReadError::InvalidCertificate {
                path: "uaa.certificate".into()
            }],
            "{name}"
        );
        assert_eq!(x.errors[0].reason().as_str(), "invalid_certificate");
        assert_eq!(
            only(&x).path,
            "other",
            "{name}: the good certificate still counts"
        );
    }
}

#[test]
fn a_chain_with_one_broken_certificate_reports_both_the_good_one_and_an_error() {
    let chain = format!(
        "{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        self_signed("fine", LEAF_AT)
    );
    let x = extract(&json!({"certificate": chain}));
    assert_eq!(only(&x).expires_at, LEAF_AT);
    assert_eq!(
        x.errors,
        vec![ReadError::InvalidCertificate {
            path: "certificate".into()
        }]
    );
}

#[test]
fn certificates_beyond_the_per_key_budget_count_as_unreadable() {
    use cf_service_key_exporter::expiry::MAX_CERTIFICATES;
    let pem = self_signed("many", LEAF_AT);
    let fields: serde_json::Map<String, Value> = (0..=MAX_CERTIFICATES)
        .map(|i| (format!("c{i:03}"), Value::String(pem.clone())))
        .collect();
    let x = extract(&Value::Object(fields));
    assert_eq!(x.found.len(), MAX_CERTIFICATES);
    assert_eq!(
        x.errors,
        vec![ReadError::InvalidCertificate {
            path: format!("c{MAX_CERTIFICATES:03}")
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// Several expiries: the earliest wins

#[test]
fn validuntil_and_certificate_both_present_the_earliest_wins_and_is_named() {
    let cert = self_signed("c", LEAF_AT);
    let later = "2028-01-01T00:00:00.000Z";
    let earlier = "2026-01-01T00:00:00.000Z";

    let x = extract(
        &json!({"oauth": {"certificate": cert}, "certificatedetails": {"validuntil": later}}),
    );
    assert_eq!(x.found.len(), 2);
    assert_eq!(x.source(), ExpirySource::Certificate);
    assert_eq!(x.earliest().map(|f| f.expires_at), Some(LEAF_AT));

    let x = extract(
        &json!({"oauth": {"certificate": cert}, "certificatedetails": {"validuntil": earlier}}),
    );
    assert_eq!(x.source(), ExpirySource::CertificateDetailsValidUntil);
    assert_eq!(
        x.earliest().map(|f| f.expires_at),
        Some(datetime!(2026-01-01 0:00 UTC))
    );
}

#[test]
fn a_valid_expiry_and_a_read_error_are_both_kept() {
    let x = extract(&json!({
        "certificate": self_signed("ok", LEAF_AT),
        "certificatedetails": {"validuntil": "not a date"},
    }));
    assert_eq!(x.source(), ExpirySource::Certificate);
    assert_eq!(x.errors.len(), 1);
    assert_eq!(x.errors[0].reason().as_str(), "invalid_date");
}

// ---------------------------------------------------------------------------------------------
// Explicit expiry fields

#[test]
fn every_field_family_has_its_own_source() {
    let at = datetime!(2026-02-03 04:05:06 UTC);
    let cases = [
        ("expires_at", ExpirySource::ExpiresAt),
        ("expiresAt", ExpirySource::ExpiresAt),
        ("expiration", ExpirySource::Expiration),
        ("expiration_date", ExpirySource::Expiration),
        ("expiry", ExpirySource::Expiry),
        ("valid_until", ExpirySource::ValidUntil),
        ("validUntil", ExpirySource::ValidUntil),
        ("notAfter", ExpirySource::NotAfter),
    ];
    for (field, source) in cases {
        let x = extract(&json!({"uaa": {"clientid": "c", field: "2026-02-03T04:05:06Z"}}));
        let f = only(&x);
        assert_eq!((f.source, f.expires_at), (source, at), "{field}");
        assert_eq!(f.path, format!("uaa.{field}"));
    }
}

#[test]
fn epoch_seconds_and_milliseconds_read_the_same_instant() {
    let at = datetime!(2026-02-03 04:05:06 UTC);
    let secs = at.unix_timestamp();
    for v in [json!(secs), json!(secs * 1000), json!(secs.to_string())] {
        let x = extract(&json!({"expires_at": v}));
        assert_eq!(only(&x).expires_at, at, "{v}");
    }
}

#[test]
fn lifetimes_and_unrelated_numbers_are_not_dates() {
    let x = extract(&json!({
        "expires_in": 3600,
        "createdate": 1_719_233_812,
        "port": 20003,
        "onpremise_proxy_port": "20003",
    }));
    assert_eq!(x, Extraction::default());

    let x = extract(&json!({"expiry": 3600}));
    assert!(x.found.is_empty());
    assert_eq!(
        x.errors,
        vec![ReadError::InvalidDate {
            path: "expiry".into()
        }]
    );
}

#[test]
fn null_and_empty_expiry_fields_mean_no_expiry() {
    let x = extract(
        &json!({"expires_at": null, "expiry": "", "certificatedetails": {"validuntil": null}}),
    );
    assert_eq!(x, Extraction::default());
}

#[test]
fn nothing_readable_gives_an_empty_extraction() {
    for creds in [
        json!({"clientid": "sb-1", "clientsecret": "s", "url": "https://x"}),
        json!({}),
        json!(null),
        json!("just a string"),
        json!([1, 2, 3]),
    ] {
        let x = extract(&creds);
        assert_eq!(x, Extraction::default(), "{creds}");
        assert_eq!(x.source(), ExpirySource::None);
        assert!(x.earliest().is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input: no panic, no leak

const MARKER: &str = "SECRET-MARKER-";

/// Fields whose value is secret; the generator plants a marker in each.
const SECRET_FIELDS: [&str; 4] = ["clientsecret", "password", "key", "private_key"];

/// Object keys: the names the extractor reacts to, secret names, and arbitrary ones.
fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "certificate",
            "certificatedetails",
            "validuntil",
            "expires_at",
            "expiresAt",
            "expiration",
            "expiry",
            "valid_until",
            "notAfter",
            "uaa",
            "oauth",
            "clientid",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(SECRET_FIELDS.to_vec()).prop_map(str::to_owned),
        "[a-zA-Z_-]{0,12}",
    ]
}

/// Arbitrary bytes between PEM markers, in the encodings a broken key could hold.
fn pem_block() -> impl Strategy<Value = String> {
    let label = prop::sample::select(vec![
        "CERTIFICATE",
        "X509 CERTIFICATE",
        "TRUSTED CERTIFICATE",
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "PUBLIC KEY",
        "",
    ]);
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(b)
        }),
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ".{0,80}",
    ];
    (label, body, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(label, body, terminated, escaped, doubled)| {
            let mut s = format!("-----BEGIN {label}-----\n{body}\n");
            if terminated {
                s.push_str(&format!("-----END {label}-----\n"));
            }
            if doubled {
                s = s.repeat(2);
            }
            if escaped {
                s = s.replace('\n', "\\n");
            }
            s
        },
    )
}

fn leaf_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{0,12})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
            .prop_map(Value::String),
        pem_block().prop_map(Value::String),
    ]
}

fn json_tree() -> impl Strategy<Value = Value> {
    leaf_value().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A secret value: bare, or hidden in and around PEM private-key and certificate blocks.
fn secret_value() -> impl Strategy<Value = String> {
    ("[A-Za-z0-9]{1,16}", 0..5u8).prop_map(|(tail, form)| {
        let secret = format!("{MARKER}{tail}");
        match form {
            0 => secret,
            1 => format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
            2 => format!("Proc-Type: {secret}\n-----BEGIN RSA PRIVATE KEY-----\n{secret}\n"),
            3 => format!("-----BEGIN CERTIFICATE-----\n{secret}\n-----END CERTIFICATE-----"),
            _ => format!("-----BEGIN PRIVATE KEY-----\\n{secret}\\n-----END PRIVATE KEY-----\\n-----BEGIN CERTIFICATE-----\\n{secret}"),
        }
    })
}

/// Replaces the value of every secret field in `tree` with a fresh secret.
fn plant_secrets(tree: &mut Value, secrets: &mut impl Iterator<Item = String>) {
    match tree {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SECRET_FIELDS.contains(&k.as_str()) {
                    *v = Value::String(secrets.next().unwrap_or_else(|| format!("{MARKER}x")));
                } else {
                    plant_secrets(v, secrets);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| plant_secrets(v, secrets)),
        _ => {}
    }
}

fn assert_no_leak(x: &Extraction) {
    let debug = format!("{x:?}");
    assert!(!debug.contains(MARKER), "leak in {debug}");
    for e in &x.errors {
        assert!(!e.to_string().contains(MARKER), "leak in {e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_trees_neither_panic_nor_leak_secrets(
        mut tree in json_tree(),
        secrets in prop::collection::vec(secret_value(), 32),
        wrap_in in prop::sample::select(vec!["", "uaa", "oauth", "certificatedetails"]),
    ) {
        if !wrap_in.is_empty() {
            tree = json!({ wrap_in: tree, "clientsecret": null });
        }
        plant_secrets(&mut tree, &mut secrets.into_iter());
        let x = extract(&tree);
        assert_no_leak(&x);
        // Whatever is found is self-consistent.
        for f in &x.found {
            prop_assert_eq!(f.certificate.is_some(), f.source == ExpirySource::Certificate);
        }
    }

    #[test]
    fn arbitrary_bytes_between_pem_markers_are_unreadable_never_a_panic(block in pem_block()) {
        let x = extract(&json!({"uaa": {"certificate": block}}));
        // Random bytes are never a certificate; at most one error, for that field, by path only.
        prop_assert!(x.found.is_empty());
        prop_assert!(x.errors.len() <= 1);
        for e in &x.errors {
            prop_assert_eq!(e.to_string(), "uaa.certificate: not a readable certificate");
        }
    }

    #[test]
    fn any_string_or_number_in_an_expiry_field_is_a_date_or_an_invalid_date(
        v in leaf_value(),
        field in prop::sample::select(vec!["expires_at", "expiry", "notAfter", "validuntil"]),
    ) {
        let x = extract(&json!({"certificatedetails": { field: v.clone() }}));
        let outcomes = x.found.len() + x.errors.len();
        let blank = v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty());
        prop_assert_eq!(outcomes, usize::from(!blank), "{:?}", x);
    }
}
