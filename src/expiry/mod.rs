//! Reads when a service key's credentials stop being valid.
//!
//! One pure function, [`extract`], from a key's `credentials` JSON to every expiry it carries,
//! the earliest of them, and what could not be read. No network, no logging, no clock, and no
//! credential value is ever copied into the result or an error: only JSON paths
//! (`uaa.certificate`), source labels, instants and the public names of certificates.
//!
//! # Where an expiry is read, and the `expiry_source` label each place gets
//!
//! | source | read from |
//! | --- | --- |
//! | `certificatedetails.validuntil` | `validuntil` inside a `certificatedetails` object (SAP Cloud Integration `integration-flow` keys) |
//! | `certificate` | the notAfter of any PEM certificate in any string (`certificate`, `uaa.certificate`, chains, arrays) |
//! | `expires_at` | a field named `expires_at` or `expires_on` |
//! | `expiration` | a field named `expiration`, `expiration_date` or `expiration_time` |
//! | `expiry` | a field named `expiry`, `expiry_date` or `expiry_time` |
//! | `valid_until` | a field named `valid_until` or `valid_to` (outside `certificatedetails`) |
//! | `not_after` | a field named `not_after` |
//! | `none` | nothing readable; never produced by [`extract`], used by callers |
//! | `unread` | the details were never read; used by callers |
//!
//! The label texts are [`ExpirySource`]'s.
//!
//! Field names match case-insensitively and ignore `_` and `-`, so `expiresAt`, `expires-at` and
//! `EXPIRES_AT` are all `expires_at`. They match at any depth. The list is deliberately short:
//! an arbitrary numeric field is never taken for a date, and `expires_in` (an OAuth lifetime in
//! seconds, relative to an unknown moment) is deliberately absent.
//!
//! # Values
//! - Strings: ISO 8601 / RFC 3339 with an explicit zone (`2023-06-24T12:56:52.000Z`,
//!   `2023-06-24 14:56:52+02:00`, no seconds or fraction needed). No zone, a date alone, or any
//!   other format is an [`ReadError::InvalidDate`], never a guess. A string of digits is read as a
//!   number.
//! - Numbers: Unix time. From 10^9 to below 10^11 they are seconds, from 10^12 to below 10^14
//!   milliseconds; both ranges span 2001-09-09 to the year 5138. Anything else (negative, small
//!   enough to be a lifetime such as `3600`, or in the gap between) is an `InvalidDate`.
//! - `null` and the empty string mean "no expiry" and are ignored; objects and arrays under an
//!   expiry name are searched like any other; a boolean is an `InvalidDate`.
//! - Certificates: every block labelled `CERTIFICATE` in a string is read, also when the string's
//!   line breaks are escaped as the two characters `\n`. One [`Found`] per string: its earliest
//!   notAfter, so a chain whose intermediate expires first reports the intermediate. Any block
//!   that cannot be read adds one [`ReadError::InvalidCertificate`] for that string. Other blocks
//!   (`PRIVATE KEY`, `RSA PRIVATE KEY`, ...) are skipped by their markers without being decoded.
//!
//! A key may have findings and errors at once; [`Extraction::earliest`] picks what counts.
//!
//! # Start of validity
//! Each [`Found`] also says from when the credential it expires is valid, if the credentials
//! tell: the notBefore of the certificate that gives the expiry, else a validity-start field
//! beside the expiry field (a sibling in the same object) named `valid_from` / `validFrom`,
//! `not_before` / `notBefore` or `issued_at` / `issuedAt` (the same name matching and the same
//! value rules as expiry fields; several: the earliest). [`valid_from`] falls back to the key's
//! creation time when the credentials say nothing, so every key with an expiry has a start of
//! validity, and its lifetime is known.
//!
//! # Limits against hostile input
//! Objects and arrays nested deeper than [`MAX_DEPTH`] are not searched, at most [`MAX_NODES`]
//! JSON values are visited, strings over [`MAX_PEM_STRING_BYTES`] or holding more than
//! [`MAX_CERTIFICATES_PER_STRING`] certificates count as unreadable, as do certificates beyond
//! the [`MAX_CERTIFICATES`]th of a key, and at most [`MAX_FOUND`] findings and [`MAX_ERRORS`]
//! errors are kept. Path segments are cut to [`MAX_PATH_SEGMENT_CHARS`] characters. Real service
//! keys are far below every limit (they nest two or three levels and hold one chain). The
//! caller should still cap the size of the `/details` body it parses.
//!
//! # Cost
//! A key holding certificates costs far more than one without (most of it DER parsing); the
//! figures are in docs/performance.md.

mod date;
mod pem;

use serde_json::Value;
use time::OffsetDateTime;

use crate::vocab::{ExpirySource, Reason};

/// Objects and arrays nested deeper than this are not searched (real keys nest 2 or 3 levels).
pub const MAX_DEPTH: usize = 32;
/// At most this many JSON values are visited per key.
pub const MAX_NODES: usize = 10_000;
/// At most this many certificate blocks are parsed per key; later ones count as unreadable.
pub const MAX_CERTIFICATES: usize = 64;
/// At most this many [`Found`] are kept per key.
pub const MAX_FOUND: usize = 64;
/// At most this many [`ReadError`] are kept per key.
pub const MAX_ERRORS: usize = 64;
/// Longer object keys are cut (with `…`) when they become part of a path.
pub const MAX_PATH_SEGMENT_CHARS: usize = 64;

/// One expiry found in a key's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The instant the credential stops being valid, in UTC.
    pub expires_at: OffsetDateTime,
    /// Where it was read (the `expiry_source` label).
    pub source: ExpirySource,
    /// Where in the credentials it was found (JSON path such as `uaa.certificate` or
    /// `certificates[1]`).
    pub path: String,
    /// Set when the expiry is a certificate's notAfter.
    pub certificate: Option<CertificateInfo>,
    /// From when the credential is valid, when the credentials say: the certificate's notBefore,
    /// or a validity-start field beside the expiry field.
    pub valid_from: Option<OffsetDateTime>,
}

/// From when a key's expiring credential is valid (Unix seconds): what the credentials say
/// ([`Found::valid_from`]), else the key's creation time. Never after the expiry itself: a start
/// of validity later than the expiry is nonsense, and the creation time is used instead.
pub fn valid_from(found: &Found, created_at: Option<i64>) -> Option<i64> {
    let expires_at = found.expires_at.unix_timestamp();
    found
        .valid_from
        .map(OffsetDateTime::unix_timestamp)
        .filter(|from| *from <= expires_at)
        .or(created_at)
}

/// Public facts of a certificate (never the key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertificateInfo {
    /// Subject distinguished name, e.g. `CN=xyz, O=SAP SE, C=DE` (cut at 256 characters).
    pub subject: String,
    /// Issuer distinguished name, same form.
    pub issuer: String,
    /// Serial number as `0x` and upper-case hex, like SAP's `certificatedetails.serialnumber`.
    pub serial: String,
}

/// Something in the credentials that looked like an expiry but could not be read.
///
/// Carries only the path, never the value: the value may be a secret put in the wrong field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// A string holds a certificate block that could not be read.
    #[error("{path}: not a readable certificate")]
    InvalidCertificate {
        /// JSON path of the string.
        path: String,
    },
    /// An expiry field holds something that is not an unambiguous date.
    #[error("{path}: not a readable date")]
    InvalidDate {
        /// JSON path of the field.
        path: String,
    },
}

impl ReadError {
    /// Every value [`ReadError::reason`] returns.
    /// The `reason` label of `cf_service_key_exporter_details_errors_total`.
    pub fn reason(&self) -> Reason {
        match self {
            ReadError::InvalidCertificate { .. } => Reason::InvalidCertificate,
            ReadError::InvalidDate { .. } => Reason::InvalidDate,
        }
    }

    /// The JSON path the error is about.
    #[cfg(test)]
    pub fn path(&self) -> &str {
        match self {
            ReadError::InvalidCertificate { path } | ReadError::InvalidDate { path } => path,
        }
    }
}

/// Everything read from one key's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// Every expiry found, in document order (object keys sorted).
    pub found: Vec<Found>,
    /// Everything that looked like an expiry but could not be read.
    pub errors: Vec<ReadError>,
}

impl Extraction {
    /// The expiry that counts: the earliest one found (the first in document order on a tie).
    pub fn earliest(&self) -> Option<&Found> {
        self.found.iter().min_by_key(|f| f.expires_at)
    }

    /// The `expiry_source` label value: the earliest finding's source, or [`ExpirySource::None`].
    #[cfg(any(test, feature = "testing"))]
    pub fn source(&self) -> ExpirySource {
        self.earliest().map_or(ExpirySource::None, |f| f.source)
    }
}

/// Reads every expiry in a key's `credentials` object.
pub fn extract(credentials: &Value) -> Extraction {
    let mut walker = Walker {
        out: Extraction::default(),
        nodes: 0,
        certificates_left: MAX_CERTIFICATES,
        path: Vec::new(),
    };
    walker.visit(credentials, 0);
    walker.out
}

/// One step of a JSON path, borrowed from the tree so nothing is rendered until it is needed.
#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Walker<'a> {
    out: Extraction,
    nodes: usize,
    certificates_left: usize,
    path: Vec<Segment<'a>>,
}

impl<'a> Walker<'a> {
    fn visit(&mut self, value: &'a Value, depth: usize) {
        if self.nodes >= MAX_NODES {
            return;
        }
        self.nodes += 1;
        match value {
            Value::Object(map) if depth < MAX_DEPTH => {
                // Looked up once per object, and only in objects that hold an expiry field.
                let mut start = None;
                for (key, child) in map {
                    let source = field_source(self.last_key(), key);
                    self.path.push(Segment::Key(key));
                    match source {
                        Some(source) => {
                            let from = *start.get_or_insert_with(|| validity_start(map));
                            self.read_date_field(child, source, depth, from)
                        }
                        None => self.visit(child, depth + 1),
                    }
                    self.path.pop();
                }
            }
            Value::Array(items) if depth < MAX_DEPTH => {
                for (i, child) in items.iter().enumerate() {
                    self.path.push(Segment::Index(i));
                    self.visit(child, depth + 1);
                    self.path.pop();
                }
            }
            Value::String(s) if pem::may_hold_certificate(s) => self.read_certificates(s),
            _ => {}
        }
    }

    /// The object key the current value sits under, if it sits directly under one.
    fn last_key(&self) -> Option<&'a str> {
        match self.path.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    fn read_date_field(
        &mut self,
        value: &'a Value,
        source: ExpirySource,
        depth: usize,
        valid_from: Option<OffsetDateTime>,
    ) {
        let at = match value {
            Value::Null => return,
            Value::String(s) if s.trim().is_empty() => return,
            Value::String(s) => date::from_str(s),
            Value::Number(n) => date::from_epoch_number(n),
            Value::Bool(_) => None,
            Value::Object(_) | Value::Array(_) => return self.visit(value, depth + 1),
        };
        self.nodes += 1;
        match at {
            Some(expires_at) => self.push_found(Found {
                expires_at,
                source,
                path: self.render_path(),
                certificate: None,
                valid_from,
            }),
            None => self.push_error(ReadError::InvalidDate {
                path: self.render_path(),
            }),
        }
    }

    fn read_certificates(&mut self, s: &str) {
        let scan = pem::scan(s, self.certificates_left);
        self.certificates_left -= scan.certificates;
        if let Some(earliest) = scan.earliest {
            self.push_found(Found {
                expires_at: earliest.not_after,
                source: ExpirySource::Certificate,
                path: self.render_path(),
                certificate: Some(earliest.info),
                valid_from: Some(earliest.not_before),
            });
        }
        if scan.unreadable {
            self.push_error(ReadError::InvalidCertificate {
                path: self.render_path(),
            });
        }
    }

    fn push_found(&mut self, found: Found) {
        if self.out.found.len() < MAX_FOUND {
            self.out.found.push(found);
        }
    }

    fn push_error(&mut self, error: ReadError) {
        if self.out.errors.len() < MAX_ERRORS {
            self.out.errors.push(error);
        }
    }

    /// `uaa.certificate`, `chain[2]`; the root object has the empty path.
    fn render_path(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    match key.char_indices().nth(MAX_PATH_SEGMENT_CHARS) {
                        Some((cut, _)) => {
                            out.push_str(&key[..cut]);
                            out.push('…');
                        }
                        None => out.push_str(key),
                    }
                }
                Segment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

/// The source label of an expiry field, from its name and the name of the object holding it.
fn field_source(parent: Option<&str>, key: &str) -> Option<ExpirySource> {
    // No expiry name is longer than 20 characters; don't normalise hostile megabyte keys.
    if key.len() > 32 {
        return None;
    }
    let name = normalise(key);
    Some(match name.as_str() {
        "validuntil"
            if parent.is_some_and(|p| p.len() <= 32 && normalise(p) == "certificatedetails") =>
        {
            ExpirySource::CertificateDetailsValidUntil
        }
        "expiresat" | "expireson" => ExpirySource::ExpiresAt,
        "expiration" | "expirationdate" | "expirationtime" => ExpirySource::Expiration,
        "expiry" | "expirydate" | "expirytime" => ExpirySource::Expiry,
        "validuntil" | "validto" => ExpirySource::ValidUntil,
        "notafter" => ExpirySource::NotAfter,
        _ => return None,
    })
}

/// The earliest readable validity-start field among an object's own fields (`valid_from`,
/// `not_before`, `issued_at` in any spelling); unreadable ones are ignored, as the start is an
/// extra, never a reason to distrust the expiry.
fn validity_start(map: &serde_json::Map<String, Value>) -> Option<OffsetDateTime> {
    map.iter()
        .filter(|(key, _)| key.len() <= 32 && is_validity_start(&normalise(key)))
        .filter_map(|(_, value)| match value {
            Value::String(s) => date::from_str(s),
            Value::Number(n) => date::from_epoch_number(n),
            _ => None,
        })
        .min()
}

fn is_validity_start(normalised: &str) -> bool {
    matches!(normalised, "validfrom" | "notbefore" | "issuedat")
}

/// Lower case without `_` and `-`: `expires_at`, `expiresAt` and `Expires-At` are one name.
fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn field_names_map_to_their_family() {
        let cases = [
            (
                Some("certificatedetails"),
                "validuntil",
                Some(ExpirySource::CertificateDetailsValidUntil),
            ),
            (
                Some("certificateDetails"),
                "validUntil",
                Some(ExpirySource::CertificateDetailsValidUntil),
            ),
            (None, "validuntil", Some(ExpirySource::ValidUntil)),
            (Some("oauth"), "valid_until", Some(ExpirySource::ValidUntil)),
            (None, "validTo", Some(ExpirySource::ValidUntil)),
            (None, "expires_at", Some(ExpirySource::ExpiresAt)),
            (None, "expiresAt", Some(ExpirySource::ExpiresAt)),
            (None, "Expires-At", Some(ExpirySource::ExpiresAt)),
            (None, "expires_on", Some(ExpirySource::ExpiresAt)),
            (None, "expiration", Some(ExpirySource::Expiration)),
            (None, "expiration_date", Some(ExpirySource::Expiration)),
            (None, "expirationTime", Some(ExpirySource::Expiration)),
            (None, "expiry", Some(ExpirySource::Expiry)),
            (None, "expiryDate", Some(ExpirySource::Expiry)),
            (None, "notAfter", Some(ExpirySource::NotAfter)),
            (None, "not_after", Some(ExpirySource::NotAfter)),
            (None, "expires_in", None),
            (None, "exp", None),
            (None, "createdate", None),
            (None, "clientsecret", None),
            (None, "validity", None),
        ];
        for (parent, key, want) in cases {
            assert_eq!(field_source(parent, key), want, "{parent:?} / {key}");
        }
    }

    #[test]
    fn paths_name_keys_and_indices() {
        let creds = json!({"a": [{"b": {"expiry": "soon"}}]});
        let x = extract(&creds);
        assert_eq!(
            x.errors,
            vec![ReadError::InvalidDate {
                path: "a[0].b.expiry".into()
            }]
        );
    }

    #[test]
    fn long_keys_are_cut_in_paths() {
        let long = "k".repeat(MAX_PATH_SEGMENT_CHARS + 50);
        let creds = json!({ long.clone(): {"expiry": false} });
        let x = extract(&creds);
        let want = format!("{}….expiry", &long[..MAX_PATH_SEGMENT_CHARS]);
        assert_eq!(x.errors[0].path(), want);
    }

    #[test]
    fn nesting_beyond_the_depth_limit_is_not_searched() {
        let mut deep = json!({"expires_at": 1_719_233_812});
        for _ in 0..MAX_DEPTH {
            deep = json!({ "n": deep });
        }
        assert!(extract(&deep).found.is_empty());

        let mut shallow = json!({"expires_at": 1_719_233_812});
        for _ in 0..MAX_DEPTH - 1 {
            shallow = json!({ "n": shallow });
        }
        assert_eq!(
            extract(&shallow).earliest().map(|f| f.expires_at),
            Some(datetime!(2024-06-24 12:56:52 UTC))
        );
    }

    #[test]
    fn findings_and_errors_are_capped() {
        let many: Vec<Value> = (0..MAX_FOUND + MAX_ERRORS + 10)
            .map(|i| json!({"expiry": 1_719_233_812 + i, "expiration": "bad"}))
            .collect();
        let x = extract(&Value::Array(many));
        assert_eq!(x.found.len(), MAX_FOUND);
        assert_eq!(x.errors.len(), MAX_ERRORS);
    }

    #[test]
    fn a_start_field_beside_the_expiry_gives_its_valid_from() {
        let creds = json!({
            "a": {"validUntil": 1_800_000_000_000i64, "validFrom": 1_700_000_000_000i64},
            "b": {"not_after": "2030-01-01T00:00:00Z", "not_before": "2029-01-01T00:00:00+01:00",
                  "issued_at": "2028-06-01T00:00:00Z"},
            "c": {"expires_at": 1_900_000_000, "issued_at": "no date"},
            "d": {"expires_at": 1_950_000_000, "nested": {"valid_from": 1_600_000_000}},
        });
        let x = extract(&creds);
        let from = |path: &str| {
            x.found
                .iter()
                .find(|f| f.path == path)
                .and_then(|f| f.valid_from)
        };
        // The earliest of several start fields, time zones honoured; unreadable starts are
        // ignored, and only siblings count.
        let expected = [
            ("a.validUntil", Some(datetime!(2023-11-14 22:13:20 UTC))),
            ("b.not_after", Some(datetime!(2028-06-01 00:00:00 UTC))),
            ("c.expires_at", None),
            ("d.expires_at", None),
        ];
        for (path, want) in expected {
            assert_eq!(from(path), want, "{path}");
        }
        assert!(x.errors.is_empty(), "{:?}", x.errors);
    }

    #[test]
    fn valid_from_falls_back_to_the_creation_time() {
        let found = |valid_from| Found {
            expires_at: datetime!(2030-01-01 00:00:00 UTC),
            source: ExpirySource::ExpiresAt,
            path: "expires_at".into(),
            certificate: None,
            valid_from,
        };
        let created = Some(1_800_000_000);
        assert_eq!(
            valid_from(&found(Some(datetime!(2029-01-01 00:00:00 UTC))), created),
            Some(1_861_920_000)
        );
        assert_eq!(valid_from(&found(None), created), created);
        // A start after the expiry is nonsense: the creation time instead.
        assert_eq!(
            valid_from(&found(Some(datetime!(2031-01-01 00:00:00 UTC))), created),
            created
        );
        assert_eq!(valid_from(&found(None), None), None);
    }

    #[test]
    fn source_is_none_without_findings() {
        assert_eq!(
            extract(&json!({"clientid": "x"})).source(),
            ExpirySource::None
        );
    }
}
