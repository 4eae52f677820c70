//! Entry points of the fuzz targets (`fuzz/`, run with `cargo fuzz`): one per parser of
//! untrusted input, each taking raw bytes and calling the exporter's own code the way production
//! does. `tests/it/fuzz_corpora.rs` feeds every committed corpus file to the same functions on
//! stable Rust, so the corpora are replayed by the ordinary test run.
//!
//! An entry point must never panic, loop without end or allocate without bound on any input:
//! that is what the fuzzer looks for. Not part of the exporter's interface.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::cf::listing::{self, InstancePages, Interner, MetadataKeys, SpaceMetadata};
use crate::cf::model::{CredentialBinding, Page, ServiceInstance, Space};

/// An entry point: raw bytes in, nothing out.
pub type Entry = fn(&[u8]);

/// The targets, by the name of their fuzz target and corpus folder.
pub const TARGETS: [(&str, Entry); 7] = [
    ("date", date),
    ("pem", pem),
    ("list_page", list_page),
    ("config_toml", config_toml),
    ("web_config", web_config),
    ("cache", cache),
    ("authorization", authorization),
];

/// The date parser, through every field name that makes `expiry::extract` read a date, as a
/// string and (when the input is one) as a JSON number.
pub fn date(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut credentials = json!({
        "certificateDetails": { "validUntil": text, "validFrom": text },
        "expires_at": text,
        "expiration": text,
        "notAfter": text,
    });
    if let Ok(number) = serde_json::from_str::<serde_json::Number>(text.trim()) {
        credentials["expiry"] = Value::Number(number);
    }
    let _ = crate::expiry::extract(&credentials);
}

/// The PEM and X.509 walk, through `expiry::extract` on a credential string, as the input is
/// and with its newlines escaped (as some service brokers store certificates).
pub fn pem(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let escaped = text.replace('\n', "\\n");
    let _ = crate::expiry::extract(&json!({ "certificate": text, "nested": { "pem": escaped } }));
    // The rotation's shape reads an x509 key's certificate for its key length.
    let _ =
        crate::rotation::shape::read(&json!({ "credential-type": "x509", "certificate": text }));
}

/// A list page of each kind (service instances, keys, spaces), decoded and joined as a refresh
/// does, with owner labels wanted.
pub fn list_page(data: &[u8]) {
    let owners = MetadataKeys {
        owners: vec!["team".into(), "example.com/owner".into()],
        lead_time: Some("example.com/warning-lead-time".into()),
        successor_of: Some("example.com/successor-of".into()),
    };
    let mut names = Interner::default();
    let mut instances = InstancePages::default();
    if let Ok(page) = serde_json::from_slice::<Page<ServiceInstance>>(data) {
        instances.add(page, &owners, &mut names);
    }
    let keys = serde_json::from_slice::<Page<CredentialBinding>>(data)
        .map(|page| listing::keys(page, &owners, &mut names))
        .unwrap_or_default();
    let mut spaces = SpaceMetadata::default();
    if let Ok(page) = serde_json::from_slice::<Page<Space>>(data) {
        spaces.add(page, &owners, &mut names);
    }
    let instances = instances.finish(&mut names);
    let _ = listing::join(&instances, keys, &spaces, &owners, &mut names);
}

/// The `--config` TOML loader. Relative paths point into a folder that does not exist.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::file::parse(text, Path::new("/nonexistent-fuzz/config.toml"));
}

/// The `--web-config-file` YAML loader (parse and validate; no file is opened).
pub fn web_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::web::config::parse(text, Path::new("/nonexistent-fuzz"));
}

/// The cache file decoder, with two foundations configured (one matching the usual fixture).
pub fn cache(data: &[u8]) {
    let api_urls: HashMap<&str, &str> = [
        ("eu10", "https://api.cf.eu10.hana.ondemand.com"),
        ("demo", "http://127.0.0.1:1"),
    ]
    .into_iter()
    .collect();
    let _ = crate::cache::decode(data, Path::new("cache.json"), &api_urls, 1_750_000_000);
}

/// The `Authorization` header of basic auth.
pub fn authorization(data: &[u8]) {
    let Ok(value) = axum::http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(axum::http::header::AUTHORIZATION, value);
    let _ = crate::web::auth::credentials(&headers);
}
