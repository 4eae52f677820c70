//! What a key's credentials show about how it was created: its [`Shape`].
//!
//! Read from the credentials at the moment their expiry is read, and kept with the reading
//! instead of them: only a kind and a number (the RSA key length of an x509 key's certificate),
//! never a credential value, never any text copied from the credentials. The successor's
//! parameters are derived from it where the broker does not return them
//! ([`crate::report::rotate::parameters`]), and fetched parameters are checked against it.
//!
//! What is recognised (field names as SAP's brokers write them):
//! - `credential-type` at the top level (XSUAA and the services built on its bindings:
//!   `x509`, `binding-secret`, `instance-secret`); for `x509`, the RSA key length of the first
//!   certificate in `certificate`;
//! - `credential-type` only inside a nested object (`uaa`: a service that wraps XSUAA, whose
//!   own parameters say how);
//! - a Cloud Integration certificate key: `certificatedetails`, or an `oauth` object with a
//!   `certificate`;
//! - a client id and secret with no credential type (`clientsecret` in the credentials, an
//!   `oauth` or a `uaa` object).
//!
//! Pure; a hostile value costs at most one bounded certificate parse.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey;

/// Certificates longer than this are not parsed for their key length.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// An XSUAA credential type, as the `credential-type` parameter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum CredentialType {
    /// `x509`: a certificate, with its RSA key length when it could be read.
    X509 {
        rsa_bits: Option<u32>,
    },
    BindingSecret,
    InstanceSecret,
}

impl CredentialType {
    /// The parameter value (`x509`, `binding-secret`, `instance-secret`).
    pub fn name(self) -> &'static str {
        match self {
            CredentialType::X509 { .. } => "x509",
            CredentialType::BindingSecret => "binding-secret",
            CredentialType::InstanceSecret => "instance-secret",
        }
    }
}

/// How a key was created, as far as its credentials show. Kept in the cache file with the
/// reading (`{"kind": "typed", "type": "x509", "rsa_bits": 2048}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    /// `credential-type` at the top level.
    Typed(CredentialType),
    /// A `credential-type` inside a nested object only: a service wrapping XSUAA.
    NestedType,
    /// A Cloud Integration certificate key.
    IntegrationCertificate,
    /// A client id and secret, no credential type.
    ClientSecret,
    /// None of the above.
    Unknown,
}

impl Shape {
    /// A short description for people (`x509 certificate, RSA 2048 bits`).
    pub fn describe(self) -> String {
        match self {
            Shape::Typed(CredentialType::X509 {
                rsa_bits: Some(bits),
            }) => format!("credential-type x509, certificate with an RSA {bits}-bit key"),
            Shape::Typed(CredentialType::X509 { rsa_bits: None }) => {
                "credential-type x509, certificate key length unknown".to_owned()
            }
            Shape::Typed(t) => format!("credential-type {}", t.name()),
            Shape::NestedType => "a credential-type inside a nested object".to_owned(),
            Shape::IntegrationCertificate => "a Cloud Integration certificate key".to_owned(),
            Shape::ClientSecret => "a client id and secret without a credential-type".to_owned(),
            Shape::Unknown => "no credential-type, certificate or client secret".to_owned(),
        }
    }
}

/// The shape of one key's credentials.
pub fn read(credentials: &Value) -> Shape {
    let Some(top) = credentials.as_object() else {
        return Shape::Unknown;
    };
    match top.get("credential-type").and_then(Value::as_str) {
        Some("x509") => {
            let rsa_bits = top
                .get("certificate")
                .and_then(Value::as_str)
                .and_then(rsa_bits);
            return Shape::Typed(CredentialType::X509 { rsa_bits });
        }
        Some("binding-secret") => return Shape::Typed(CredentialType::BindingSecret),
        Some("instance-secret") => return Shape::Typed(CredentialType::InstanceSecret),
        // A type this exporter does not know: not derivable.
        Some(_) => return Shape::Unknown,
        None => {}
    }
    let nested = |field: &str| top.get(field).and_then(Value::as_object);
    if ["uaa", "oauth", "xsuaa"]
        .iter()
        .filter_map(|f| nested(f))
        .any(|o| o.contains_key("credential-type"))
    {
        return Shape::NestedType;
    }
    if top.contains_key("certificatedetails")
        || nested("oauth").is_some_and(|o| o.contains_key("certificate"))
    {
        return Shape::IntegrationCertificate;
    }
    let has_secret = |o: &serde_json::Map<String, Value>| o.contains_key("clientsecret");
    if has_secret(top)
        || nested("oauth").is_some_and(has_secret)
        || nested("uaa").is_some_and(has_secret)
    {
        return Shape::ClientSecret;
    }
    Shape::Unknown
}

/// The RSA key length of the first certificate in a PEM string.
fn rsa_bits(pem: &str) -> Option<u32> {
    if pem.len() > MAX_CERTIFICATE_BYTES {
        return None;
    }
    let block = Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")?;
    let certificate = block.parse_x509().ok()?;
    match certificate.public_key().parsed().ok()? {
        PublicKey::RSA(rsa) => u32::try_from(rsa.key_size()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cf_sim::credentials::{credentials, xsuaa_x509, KeyLength, Shape as Sim};
    use serde_json::json;
    use time::macros::datetime;
    use time::Duration;

    const NOW: time::OffsetDateTime = datetime!(2026-01-31 10:00:00 UTC);

    fn sim(shape: Sim) -> Value {
        credentials(shape, NOW, NOW + Duration::days(365), "S").unwrap()
    }

    #[test]
    fn xsuaa_x509_keys_show_their_rsa_key_length() {
        for length in [KeyLength::Rsa2048, KeyLength::Rsa4096] {
            let c = xsuaa_x509(NOW, NOW + Duration::days(7), length, "S").unwrap();
            assert_eq!(
                read(&c),
                Shape::Typed(CredentialType::X509 {
                    rsa_bits: Some(length.bits() as u32)
                })
            );
        }
        let broken = json!({"credential-type": "x509", "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"});
        assert_eq!(
            read(&broken),
            Shape::Typed(CredentialType::X509 { rsa_bits: None })
        );
    }

    #[test]
    fn every_simulated_kind_of_key_has_its_shape() {
        let cases = [
            (
                Sim::XsuaaClientSecret,
                Shape::Typed(CredentialType::BindingSecret),
            ),
            (
                Sim::Destination,
                Shape::Typed(CredentialType::BindingSecret),
            ),
            (
                Sim::ConnectivityExpiresAt,
                Shape::Typed(CredentialType::BindingSecret),
            ),
            (Sim::XsuaaX509, Shape::NestedType),
            (Sim::MalformedCertificate, Shape::NestedType),
            (Sim::CloudIntegrationFlow, Shape::IntegrationCertificate),
            (Sim::CloudIntegrationApi, Shape::IntegrationCertificate),
            (Sim::MalformedDate, Shape::IntegrationCertificate),
            (Sim::Basic, Shape::ClientSecret),
            (Sim::CloudAlm, Shape::ClientSecret),
        ];
        for (kind, shape) in cases {
            assert_eq!(read(&sim(kind)), shape, "{kind:?}");
        }
        assert_eq!(read(&json!({"credential-type": "magic"})), Shape::Unknown);
        assert_eq!(read(&json!({"url": "x"})), Shape::Unknown);
        assert_eq!(read(&json!("text")), Shape::Unknown);
    }

    #[test]
    fn a_description_never_quotes_the_credentials() {
        let c = xsuaa_x509(NOW, NOW + Duration::days(7), KeyLength::Rsa2048, "MARKER").unwrap();
        let text = format!("{:?} {}", read(&c), read(&c).describe());
        assert!(!text.contains("MARKER"), "{text}");
        assert!(text.contains("2048"), "{text}");
    }
}
