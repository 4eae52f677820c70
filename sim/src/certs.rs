//! Certificates made to order, for the exporter's tests: CAs, intermediates and leaves with a
//! chosen validity (what the expiry reader is tested on), and server and client certificates
//! for the TLS endpoints. One factory; the simulated brokers' own chains (with SAP's names and
//! seeded keys) are built by [`crate::credentials`].

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A CA that signs, and its certificate (PEM).
pub struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// A certificate of `cn` (organisation `Test Org`, serial `0x0ABCD1`) valid for the 30 days
/// up to `not_after`.
fn expiring(cn: &str, not_after: OffsetDateTime, ca: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Test Org");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.not_before = not_after - Duration::days(30);
    p.not_after = not_after;
    p.serial_number = Some(SerialNumber::from(vec![0x0A, 0xBC, 0xD1]));
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}

fn key() -> KeyPair {
    KeyPair::generate().expect("a key pair")
}

impl Ca {
    /// A self-signed CA named `cn`, valid as long as rcgen's default (for TLS tests).
    pub fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca::self_signed(params)
    }

    /// A self-signed CA named `cn` valid for the 30 days up to `not_after` (see [`expiring`]).
    pub fn expiring(cn: &str, not_after: OffsetDateTime) -> Ca {
        Ca::self_signed(expiring(cn, not_after, true))
    }

    fn self_signed(params: CertificateParams) -> Ca {
        let key = key();
        let pem = params.self_signed(&key).expect("a self-signed CA").pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// An intermediate CA named `cn` signed by this one, valid for the 30 days up to
    /// `not_after`.
    pub fn intermediate(&self, cn: &str, not_after: OffsetDateTime) -> Ca {
        let key = key();
        let params = expiring(cn, not_after, true);
        let pem = params
            .signed_by(&key, &self.issuer)
            .expect("an intermediate")
            .pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate (PEM) named `cn` signed by this CA, valid for the 30 days up to
    /// `not_after`.
    pub fn leaf(&self, cn: &str, not_after: OffsetDateTime) -> String {
        expiring(cn, not_after, false)
            .signed_by(&key(), &self.issuer)
            .expect("a leaf")
            .pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1, with its key.
    pub fn server(&self) -> Leaf {
        self.endpoint("localhost", ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate named `name`, with its key.
    pub fn client(&self, name: &str) -> Leaf {
        self.endpoint(name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn endpoint(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = key();
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("a DNS name");
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("a leaf");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A self-signed certificate (PEM) named `cn`, valid for the 30 days up to `not_after`.
pub fn self_signed(cn: &str, not_after: OffsetDateTime) -> String {
    Ca::expiring(cn, not_after).pem
}

/// A fresh private key, PEM (PKCS#8).
pub fn private_key_pem() -> String {
    key().serialize_pem()
}
