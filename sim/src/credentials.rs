//! Realistic `credentials` JSON for simulated service keys, one [`Shape`] per kind of key the
//! exporter meets on SAP BTP.
//!
//! Owns the look of simulated keys: field names and nesting modelled on real service keys
//! (Cloud Integration `integration-flow` / `api`, XSUAA x509 bindings, Cloud ALM, destination,
//! connectivity, XSUAA client secrets), with real X.509 certificates valid from `valid_from` to
//! `expires_at` (notBefore and notAfter, to the second). XSUAA's own x509 keys
//! ([`xsuaa_x509`], [`Shape::XsuaaX509Binding`]) carry an RSA certificate of the key length
//! asked for, and the matching private key ([`crate::rsa_keys`]). It must not do I/O or read the clock:
//! the output depends only on the arguments (certificate signatures aside, which are
//! randomised by ECDSA).
//!
//! # Validity
//! Every key is valid from `valid_from`: that is its certificate's notBefore, every
//! `createdate` field, and the Destination shape's `validFrom` (epoch milliseconds, beside its
//! `validUntil`). A simulated key's binding should be created at the same instant (the demo
//! does so), which is what the exporter falls back on when the credentials carry no start of
//! validity.
//!
//! Every secret-bearing field (client secrets, the text in front of a private key) holds the
//! caller's `secret`, so a test can grep any output of the exporter for it as a leak marker.
//!
//! # Cost
//! Measured in a release build: shapes without a certificate build a small JSON object in 2 to
//! 6 µs. Certificate shapes ([`Shape::CloudIntegrationApi`], [`Shape::XsuaaX509`]) sign one
//! ECDSA P-256 leaf certificate per call, 35 to 50 µs, so 20,000 of them take about a second;
//! debug builds are several times slower. The CA chain and the one key pair every leaf shares
//! are generated once per process and kept in a [`OnceLock`]; the first certificate call pays
//! for that (three key generations and two signatures). XSUAA x509 leaves take the embedded RSA
//! key of their length instead, and are signed by the same (ECDSA) CA.
//!
//! # Concurrency
//! Callable from any thread; the cached PKI is immutable once built.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use serde_json::{json, Value};
use time::{OffsetDateTime, UtcOffset};

pub use crate::rsa_keys::KeyLength;

/// The kinds of service key the simulated foundation hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Cloud Integration `integration-flow` key of type "External Certificate": `oauth` client
    /// data plus `certificatedetails.validuntil`. Carries no secret (the client owns its key).
    CloudIntegrationFlow,
    /// Cloud Integration `api` key of type "Certificate": `oauth.certificate` (leaf, intermediate
    /// and root) and `oauth.key`, an SAP-generated private key.
    CloudIntegrationApi,
    /// A service key embedding XSUAA x509 credentials: `uaa.certificate` chain, `uaa.key`,
    /// `uaa.credential-type = "x509"`.
    XsuaaX509,
    /// An XSUAA service key of `credential-type: "x509"` with XSUAA's default key length (RSA
    /// 2048): `certificate` (leaf and CA chain), `key` (the private key), `certurl`,
    /// `clientid` and the other XSUAA fields at the top level, as [`xsuaa_x509`] builds it.
    XsuaaX509Binding,
    /// SAP Cloud ALM API key: `endpoints` and `uaa{clientid, clientsecret, url}`, with the
    /// expiry in `uaa.expiration_date` (RFC 3339 with a numeric offset).
    CloudAlm,
    /// Destination service key (binding secret), expiry in `validUntil` as epoch milliseconds,
    /// plus a PEM `verificationkey` (a public key, which must not be taken for a certificate).
    Destination,
    /// Connectivity service key (binding secret), expiry in `expires_at` as epoch seconds.
    ConnectivityExpiresAt,
    /// Cloud Integration "ClientId/Secret" key: `oauth{clientid, clientsecret, ...}`, no expiry.
    Basic,
    /// XSUAA service key with the default `credential-type: "binding-secret"`: `clientid`,
    /// `clientsecret`, `url`, `uaadomain`, `xsappname` and a PEM `verificationkey` (a public
    /// key) at the top level. A client secret does not expire: only its age tells when a
    /// rotation is due.
    XsuaaClientSecret,
    /// [`Shape::CloudIntegrationFlow`] whose `validuntil` has no time zone, so it is ambiguous.
    MalformedDate,
    /// XSUAA x509 shape whose `uaa.certificate` is a truncated (unparseable) certificate.
    MalformedCertificate,
}

impl Shape {
    /// Every shape, for tests and demo data that want one of each.
    pub const ALL: [Shape; 11] = [
        Shape::CloudIntegrationFlow,
        Shape::CloudIntegrationApi,
        Shape::XsuaaX509,
        Shape::XsuaaX509Binding,
        Shape::CloudAlm,
        Shape::Destination,
        Shape::ConnectivityExpiresAt,
        Shape::Basic,
        Shape::XsuaaClientSecret,
        Shape::MalformedDate,
        Shape::MalformedCertificate,
    ];

    /// The `expiry_source` the exporter must report for a key of this shape.
    pub fn expected_source(self) -> &'static str {
        match self {
            Shape::CloudIntegrationFlow => "certificatedetails.validuntil",
            Shape::CloudIntegrationApi | Shape::XsuaaX509 | Shape::XsuaaX509Binding => {
                "certificate"
            }
            Shape::CloudAlm => "expiration",
            Shape::Destination => "valid_until",
            Shape::ConnectivityExpiresAt => "expires_at",
            Shape::Basic
            | Shape::XsuaaClientSecret
            | Shape::MalformedDate
            | Shape::MalformedCertificate => "none",
        }
    }

    /// The `reason` of the read error the exporter must count for this shape, if any.
    pub fn expected_error_reason(self) -> Option<&'static str> {
        match self {
            Shape::MalformedDate => Some("invalid_date"),
            Shape::MalformedCertificate => Some("invalid_certificate"),
            _ => None,
        }
    }
}

/// A simulated certificate could not be generated (only for instants X.509 cannot encode).
#[derive(Debug, Clone, thiserror::Error)]
#[error("generating a simulated certificate")]
pub struct CredentialsError(#[from] rcgen::Error);

/// Builds the `credentials` object of a simulated key of `shape`, valid from `valid_from` and
/// expiring at `expires_at` (certificates honour both to the second), with `secret` in every
/// secret-bearing field.
///
/// [`Shape::Basic`] and [`Shape::XsuaaClientSecret`] ignore `expires_at`; the malformed shapes
/// use it only to look plausible.
pub fn credentials(
    shape: Shape,
    valid_from: OffsetDateTime,
    expires_at: OffsetDateTime,
    secret: &str,
) -> Result<Value, CredentialsError> {
    let ids = Ids::new(shape, valid_from, expires_at, secret);
    let created = valid_from;
    Ok(match shape {
        Shape::CloudIntegrationFlow => integration_flow(&ids, expires_at, created, true),
        Shape::MalformedDate => integration_flow(&ids, expires_at, created, false),
        Shape::CloudIntegrationApi => {
            let pki = pki()?;
            json!({
                "oauth": {
                    "clientid": ids.clientid,
                    "certificate": pki.chain(&ids, &pki.leaf_key, created, expires_at)?,
                    "key": private_key(pki, secret),
                    "url": format!("https://{}.it-cpi018.cfapps.eu10-003.hana.ondemand.com", ids.tenant),
                    "tokenurl": format!("https://{}.authentication.cert.eu10.hana.ondemand.com/oauth/token", ids.tenant),
                    "createdate": sap_millis(created),
                }
            })
        }
        Shape::XsuaaX509 => {
            let pki = pki()?;
            let certificate = pki.chain(&ids, &pki.leaf_key, created, expires_at)?;
            embedded_xsuaa_x509(&ids, certificate, private_key(pki, secret))
        }
        Shape::XsuaaX509Binding => {
            xsuaa_x509(valid_from, expires_at, KeyLength::default(), secret)?
        }
        Shape::MalformedCertificate => {
            let pki = pki()?;
            embedded_xsuaa_x509(&ids, pki.truncated_pem.clone(), private_key(pki, secret))
        }
        Shape::CloudAlm => json!({
            "endpoints": {
                "Api": format!("https://{}.eu10.alm.cloud.sap/api", ids.tenant),
            },
            "uaa": {
                "clientid": ids.clientid,
                "clientsecret": secret,
                "url": format!("https://{}.authentication.eu10.hana.ondemand.com", ids.tenant),
                "uaadomain": "authentication.eu10.hana.ondemand.com",
                "identityzone": ids.tenant,
                "tenantid": ids.guid,
                "xsappname": format!("{}!b2455|calm-api!b1097", ids.guid),
                "expiration_date": rfc3339_with_offset(expires_at),
            },
        }),
        Shape::Destination => {
            let verificationkey = pki()?.public_key_pem.clone();
            json!({
                "clientid": format!("sb-clone{}!b{}|destination-xsappname!b62", ids.guid, ids.n % 900_000),
                "clientsecret": secret,
                "credential-type": "binding-secret",
                "identityzone": ids.tenant,
                "instanceid": ids.guid,
                "subaccountid": ids.guid2,
                "tenantid": ids.guid2,
                "tenantmode": "dedicated",
                "uaadomain": "authentication.eu10.hana.ondemand.com",
                "uri": "https://destination-configuration.cfapps.eu10.hana.ondemand.com",
                "url": format!("https://{}.authentication.eu10.hana.ondemand.com", ids.tenant),
                "verificationkey": verificationkey,
                "xsappname": format!("clone{}!b{}|destination-xsappname!b62", ids.guid, ids.n % 900_000),
                "zoneid": ids.guid2,
                "validFrom": unix_millis(valid_from),
                "validUntil": unix_millis(expires_at),
            })
        }
        Shape::XsuaaClientSecret => json!({
            "apiurl": "https://api.authentication.eu10.hana.ondemand.com",
            "clientid": format!("sb-{}!b{}", ids.tenant, ids.n % 900_000),
            "clientsecret": secret,
            "credential-type": "binding-secret",
            "identityzone": ids.tenant,
            "identityzoneid": ids.guid2,
            "sburl": "https://internal-xsuaa.authentication.eu10.hana.ondemand.com",
            "serviceInstanceId": ids.guid,
            "subaccountid": ids.guid2,
            "tenantid": ids.guid2,
            "tenantmode": "dedicated",
            "uaadomain": "authentication.eu10.hana.ondemand.com",
            "url": format!("https://{}.authentication.eu10.hana.ondemand.com", ids.tenant),
            "verificationkey": pki()?.public_key_pem.clone(),
            "xsappname": format!("{}!b{}", ids.tenant, ids.n % 900_000),
            "zoneid": ids.guid2,
        }),
        Shape::ConnectivityExpiresAt => json!({
            "clientid": format!("sb-clone{}!b{}|connectivity!b17", ids.guid, ids.n % 900_000),
            "clientsecret": secret,
            "connectivity_service": {
                "CAs_path": "/api/v1/CAs",
                "CAs_signing_path": "/api/v1/CAs/signing",
                "api_path": "/api/v1",
                "tunnel_path": "/api/v1/tunnel",
                "url": "https://connectivity.cf.eu10.hana.ondemand.com",
            },
            "credential-type": "binding-secret",
            "onpremise_proxy_host": "connectivityproxy.internal.cf.eu10.hana.ondemand.com",
            "onpremise_proxy_http_port": "20003",
            "onpremise_proxy_ldap_port": "20001",
            "onpremise_proxy_port": "20003",
            "onpremise_proxy_rfc_port": "20001",
            "onpremise_socks5_proxy_port": "20004",
            "subaccount_id": ids.guid2,
            "token_service_domain": "authentication.eu10.hana.ondemand.com",
            "token_service_url": format!("https://{}.authentication.eu10.hana.ondemand.com", ids.tenant),
            "token_service_url_pattern": "https://{tenant}.authentication.eu10.hana.ondemand.com/oauth/token",
            "xsappname": format!("clone{}!b{}|connectivity!b17", ids.guid, ids.n % 900_000),
            "expires_at": expires_at.unix_timestamp(),
        }),
        Shape::Basic => json!({
            "oauth": {
                "clientid": ids.clientid,
                "clientsecret": secret,
                "url": format!("https://{}.it-cpi018-rt.cfapps.eu10-003.hana.ondemand.com", ids.tenant),
                "tokenurl": format!("https://{}.authentication.eu10.hana.ondemand.com/oauth/token", ids.tenant),
                "createdate": sap_millis(created),
            }
        }),
    })
}

/// The `credentials` of an XSUAA key created with `"credential-type": "x509"`: a fresh leaf
/// certificate valid from `valid_from` to `expires_at` for the RSA key of `key_length`, followed
/// by the CA chain, in `certificate`; that private key in `key` (after a line holding `secret`,
/// as every simulated private key has); `credential-type: "x509"`, `certurl` and XSUAA's other
/// fields at the top level, as XSUAA itself hands out x509 keys.
pub fn xsuaa_x509(
    valid_from: OffsetDateTime,
    expires_at: OffsetDateTime,
    key_length: KeyLength,
    secret: &str,
) -> Result<Value, CredentialsError> {
    let ids = Ids::new(Shape::XsuaaX509Binding, valid_from, expires_at, secret);
    let pki = pki()?;
    let certificate = pki.chain(&ids, key_length.public_key(), valid_from, expires_at)?;
    let key = format!(
        "Passphrase hint: {secret}\n{}",
        key_length.private_key_pem()
    );
    Ok(json!({
        "apiurl": "https://api.authentication.eu10.hana.ondemand.com",
        "certificate": certificate,
        "certurl": format!("https://{}.authentication.cert.eu10.hana.ondemand.com", ids.tenant),
        "clientid": format!("sb-{}!b{}", ids.tenant, ids.n % 900_000),
        "credential-type": "x509",
        "identityzone": ids.tenant,
        "identityzoneid": ids.guid2,
        "key": key,
        "sburl": "https://internal-xsuaa.authentication.eu10.hana.ondemand.com",
        "serviceInstanceId": ids.guid,
        "subaccountid": ids.guid2,
        "tenantid": ids.guid2,
        "tenantmode": "dedicated",
        "uaadomain": "authentication.eu10.hana.ondemand.com",
        "url": format!("https://{}.authentication.eu10.hana.ondemand.com", ids.tenant),
        "verificationkey": pki.public_key_pem.clone(),
        "xsappname": format!("{}!b{}", ids.tenant, ids.n % 900_000),
        "zoneid": ids.guid2,
    }))
}

/// Identifiers derived from the arguments, so one key's JSON is stable across calls and two
/// keys with different secrets or expiries get different client ids.
struct Ids {
    n: u64,
    guid: String,
    guid2: String,
    tenant: String,
    clientid: String,
}

impl Ids {
    fn new(
        shape: Shape,
        valid_from: OffsetDateTime,
        expires_at: OffsetDateTime,
        secret: &str,
    ) -> Self {
        let hash = |salt: u8| {
            // DefaultHasher::new() has fixed keys: deterministic, which is what we want here.
            let mut h = DefaultHasher::new();
            let instants = (
                valid_from.unix_timestamp_nanos(),
                expires_at.unix_timestamp_nanos(),
            );
            (salt, shape, instants, secret).hash(&mut h);
            h.finish()
        };
        let (a, b, c) = (hash(1), hash(2), hash(3));
        let guid = format_guid(a, b);
        let tenant = format!("sim-{:08x}", c as u32);
        Ids {
            n: a,
            clientid: format!("sb-{guid}!b{}|it-rt-{tenant}!b196", c % 900_000),
            guid2: format_guid(b, c),
            guid,
            tenant,
        }
    }
}

fn format_guid(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn integration_flow(
    ids: &Ids,
    expires_at: OffsetDateTime,
    created: OffsetDateTime,
    with_zone: bool,
) -> Value {
    let mut validuntil = sap_millis(expires_at);
    if !with_zone {
        // The mistake a hand-edited key makes: local time with no zone, which must not be read.
        validuntil.pop();
    }
    json!({
        "oauth": {
            "clientid": ids.clientid,
            "url": format!("https://{}.it-cpi018-rt.cfapps.eu10-003.hana.ondemand.com", ids.tenant),
            "tokenurl": format!("https://{}.authentication.cert.eu10.hana.ondemand.com/oauth/token", ids.tenant),
            "createdate": sap_millis(created),
        },
        "certificatedetails": {
            "issuerdn": "CN=SAP PKI Certificate Service Client CA (simulated),OU=SAP BTP Clients,O=SAP SE,L=cf-eu10,C=DE",
            "subjectdn": format!("CN={},L=sap-uaa,OU={},OU=SAP Cloud Platform Clients,O=SAP SE,C=DE", ids.guid, ids.guid2),
            "validuntil": validuntil,
            "serialnumber": format!("0x{:016X}", ids.n),
        }
    })
}

fn embedded_xsuaa_x509(ids: &Ids, certificate: String, key: String) -> Value {
    json!({
        "url": format!("https://{}-jobscheduler.cfapps.eu10.hana.ondemand.com", ids.tenant),
        "uaa": {
            "apiurl": "https://api.authentication.eu10.hana.ondemand.com",
            "certificate": certificate,
            "certurl": format!("https://{}.authentication.cert.eu10.hana.ondemand.com", ids.tenant),
            "clientid": ids.clientid,
            "credential-type": "x509",
            "identityzone": ids.tenant,
            "identityzoneid": ids.guid2,
            "key": key,
            "sburl": "https://internal-xsuaa.authentication.eu10.hana.ondemand.com",
            "subaccountid": ids.guid2,
            "tenantid": ids.guid2,
            "tenantmode": "dedicated",
            "uaadomain": "authentication.eu10.hana.ondemand.com",
            "url": format!("https://{}.authentication.eu10.hana.ondemand.com", ids.tenant),
            "xsappname": format!("{}!b{}|jobscheduler!b3", ids.guid, ids.n % 900_000),
            "zoneid": ids.guid2,
        }
    })
}

/// The private key as the service broker returns it, with the secret in RFC 7468 "explanatory
/// text" before the block, where a careless reader would copy it along.
fn private_key(pki: &Pki, secret: &str) -> String {
    format!("Passphrase hint: {secret}\n{}", pki.leaf_key_pem)
}

/// `2023-06-24T12:56:52.000Z`, the format of SAP's `validuntil` and `createdate`.
fn sap_millis(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// `2023-06-24T14:56:52+02:00`: the same instant shown in Central European Summer Time, so the
/// extractor's offset handling is exercised by every Cloud ALM key.
fn rfc3339_with_offset(at: OffsetDateTime) -> String {
    let offset = UtcOffset::from_hms(2, 0, 0).unwrap_or(UtcOffset::UTC);
    let local = at.checked_to_offset(offset).unwrap_or(at);
    let (h, m, _) = local.offset().as_hms();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+{:02}:{:02}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute(),
        local.second(),
        h,
        m
    )
}

fn unix_millis(at: OffsetDateTime) -> i64 {
    // Saturates rather than wraps; any representable date fits in i64 milliseconds anyway.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The simulated PKI: root and intermediate CA, one leaf key pair shared by every leaf.
struct Pki {
    intermediate: Issuer<'static, KeyPair>,
    /// Intermediate then root, appended after each leaf as SAP's x509 keys do.
    ca_chain_pem: String,
    leaf_key: KeyPair,
    leaf_key_pem: String,
    public_key_pem: String,
    /// A real certificate cut in half: base64 and framing fine, DER unreadable.
    truncated_pem: String,
}

/// CAs that outlive any simulated key (RFC 5280's "no well-defined expiration date"), so a
/// chain's earliest notAfter is the leaf's and `expires_at` is what the extractor reports.
const CA_NOT_AFTER: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);
const CA_NOT_BEFORE: OffsetDateTime = time::macros::datetime!(2020-01-01 00:00:00 UTC);

fn pki() -> Result<&'static Pki, CredentialsError> {
    // Generated once: key generation and CA signing are the slow part of a certificate shape.
    static PKI: OnceLock<Result<Pki, rcgen::Error>> = OnceLock::new();
    PKI.get_or_init(Pki::generate)
        .as_ref()
        .map_err(|e| CredentialsError(e.clone()))
}

impl Pki {
    fn generate() -> Result<Pki, rcgen::Error> {
        let root_key = KeyPair::generate()?;
        let root_params = ca_params("SAP Cloud Root CA (simulated)", None)?;
        let root_cert = root_params.self_signed(&root_key)?;
        let root = Issuer::new(root_params, root_key);

        let intermediate_key = KeyPair::generate()?;
        let intermediate_params = ca_params(
            "SAP PKI Certificate Service Client CA (simulated)",
            Some("SAP BTP Clients"),
        )?;
        let intermediate_cert = intermediate_params.signed_by(&intermediate_key, &root)?;
        let intermediate = Issuer::new(intermediate_params, intermediate_key);

        let leaf_key = KeyPair::generate()?;
        let der = intermediate_cert.der();
        let truncated = &der[..der.len() / 2];
        Ok(Pki {
            ca_chain_pem: format!("{}{}", intermediate_cert.pem(), root_cert.pem()),
            intermediate,
            leaf_key_pem: leaf_key.serialize_pem(),
            public_key_pem: leaf_key.public_key_pem(),
            leaf_key,
            truncated_pem: pem_wrap("CERTIFICATE", truncated),
        })
    }

    /// A fresh leaf for `public_key`, valid from `not_before` to `not_after`, followed by the CA
    /// chain.
    fn chain(
        &self,
        ids: &Ids,
        public_key: &impl PublicKeyData,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<String, CredentialsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = leaf_name(ids);
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from(ids.n));
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(public_key, &self.intermediate)?;
        Ok(format!("{}{}", leaf.pem(), self.ca_chain_pem))
    }
}

fn ca_params(cn: &str, ou: Option<&str>) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "DE");
    dn.push(DnType::OrganizationName, "SAP SE");
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = CA_NOT_BEFORE;
    params.not_after = CA_NOT_AFTER;
    Ok(params)
}

/// The subject SAP's client certificates carry (see `certificatedetails.subjectdn`).
fn leaf_name(ids: &Ids) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "DE");
    dn.push(DnType::OrganizationName, "SAP SE");
    dn.push(DnType::OrganizationalUnitName, "SAP Cloud Platform Clients");
    dn.push(DnType::LocalityName, "sap-uaa");
    dn.push(DnType::CommonName, ids.guid.as_str());
    dn
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // base64 output is ASCII, so 64-byte chunks are valid UTF-8.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// notBefore and notAfter (Unix seconds) of the first (leaf) certificate of a PEM chain:
/// the first two DER UTCTimes (tag 0x17, 13 bytes `YYMMDDhhmmssZ`) of its validity.
#[cfg(test)]
pub(crate) fn leaf_validity(pem: &str) -> (i64, i64) {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let times: Vec<i64> = der
        .windows(15)
        .filter(|w| w[0] == 0x17 && w[1] == 13 && w[14] == b'Z')
        .map(|w| {
            let text = std::str::from_utf8(&w[2..14]).expect("ASCII");
            let n = |i: usize| text[i..i + 2].parse::<u8>().expect("digits");
            let date = time::Date::from_calendar_date(
                2000 + i32::from(n(0)),
                time::Month::try_from(n(2)).expect("month"),
                n(4),
            )
            .expect("date");
            date.with_hms(n(6), n(8), n(10))
                .expect("time")
                .assume_utc()
                .unix_timestamp()
        })
        .collect();
    (times[0], times[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    // How the exporter reads each shape is tested on the exporter's side
    // (tests/it/simulator.rs), which owns the expiry rules.

    const FROM: OffsetDateTime = datetime!(2026-07-07 07:07:07 UTC);
    const UNTIL: OffsetDateTime = datetime!(2027-07-07 07:07:07 UTC);

    #[test]
    fn the_secret_is_in_every_secret_bearing_shape() {
        for shape in Shape::ALL {
            let text = credentials(shape, FROM, UNTIL, "SECRET-MARKER")
                .expect("creds")
                .to_string();
            let carries_secret =
                shape != Shape::CloudIntegrationFlow && shape != Shape::MalformedDate;
            assert_eq!(text.contains("SECRET-MARKER"), carries_secret, "{shape:?}");
        }
    }

    #[test]
    fn the_same_arguments_give_the_same_identifiers() {
        let a = credentials(Shape::Basic, FROM, UNTIL, "s1").expect("a");
        let b = credentials(Shape::Basic, FROM, UNTIL, "s1").expect("b");
        let c = credentials(Shape::Basic, FROM, UNTIL, "s2").expect("c");
        let d = credentials(Shape::Basic, FROM - Duration::DAY, UNTIL, "s1").expect("d");
        assert_eq!(a, b);
        assert_ne!(a["oauth"]["clientid"], c["oauth"]["clientid"]);
        assert_ne!(a["oauth"]["clientid"], d["oauth"]["clientid"]);
    }

    #[test]
    fn formats_match_what_sap_writes() {
        let at = datetime!(2023-06-24 12:56:52 UTC);
        assert_eq!(sap_millis(at), "2023-06-24T12:56:52.000Z");
        assert_eq!(rfc3339_with_offset(at), "2023-06-24T14:56:52+02:00");
        assert_eq!(unix_millis(at), 1_687_611_412_000);
    }

    #[test]
    fn certificates_are_valid_from_valid_from_to_expires_at() {
        // Sub-second parts are dropped: X.509 times have whole seconds.
        let from = FROM + Duration::milliseconds(600);
        let api = credentials(Shape::CloudIntegrationApi, from, UNTIL, "s").expect("api");
        let x509 = credentials(Shape::XsuaaX509, from, UNTIL, "s").expect("x509");
        for pem in [&api["oauth"]["certificate"], &x509["uaa"]["certificate"]] {
            assert_eq!(
                leaf_validity(pem.as_str().expect("a PEM string")),
                (FROM.unix_timestamp(), UNTIL.unix_timestamp())
            );
        }
    }

    #[test]
    fn createdate_and_valid_from_fields_say_valid_from() {
        let created = "2026-07-07T07:07:07.000Z";
        for shape in [
            Shape::CloudIntegrationFlow,
            Shape::CloudIntegrationApi,
            Shape::Basic,
        ] {
            let c = credentials(shape, FROM, UNTIL, "s").expect("creds");
            assert_eq!(c["oauth"]["createdate"], created, "{shape:?}");
        }
        let d = credentials(Shape::Destination, FROM, UNTIL, "s").expect("destination");
        assert_eq!(d["validFrom"], FROM.unix_timestamp() * 1000);
        assert_eq!(d["validUntil"], UNTIL.unix_timestamp() * 1000);
    }

    #[test]
    fn an_xsuaa_client_secret_key_has_no_expiry_and_the_secret_in_clientsecret() {
        let c = credentials(Shape::XsuaaClientSecret, FROM, UNTIL, "SECRET").expect("xsuaa");
        assert_eq!(c["clientsecret"], "SECRET");
        assert_eq!(c["credential-type"], "binding-secret");
        for field in [
            "clientid",
            "url",
            "uaadomain",
            "xsappname",
            "verificationkey",
        ] {
            assert!(c[field].is_string(), "{field}");
        }
        let text = c.to_string();
        assert!(
            !text.contains("2027"),
            "no date in a client-secret key: {text}"
        );
        assert!(!text.contains("CERTIFICATE"), "no certificate: {text}");
        assert_eq!(Shape::XsuaaClientSecret.expected_source(), "none");
        assert_eq!(Shape::XsuaaClientSecret.expected_error_reason(), None);
    }
}
