//! The RSA key pairs behind simulated XSUAA x509 keys, one per key length XSUAA offers (2048,
//! 4096 and 8192 bits).
//!
//! Owns the key material only: [`KeyLength`] and, per length, the private key as XSUAA hands it
//! out (PKCS #1 PEM, `-----BEGIN RSA PRIVATE KEY-----`) and the public key a certificate is
//! issued for. Generating an 8192-bit RSA key takes long (and `ring`, the crypto provider
//! here, cannot generate RSA keys at all), so the pairs were generated once with OpenSSL and
//! are embedded: every simulated key of one length shares its private key, while each key's
//! certificate is its own. Regenerate with
//! `openssl genrsa -traditional -out rsa-N.key.pem N` and
//! `openssl rsa -in rsa-N.key.pem -RSAPublicKey_out -out rsa-N.pub.pem` in `src/rsa_keys/`.
//! These keys protect nothing: they exist only in the simulator.
//!
//! # Concurrency
//! Callable from any thread; each public key is decoded once, on first use, into a
//! [`OnceLock`].

use std::sync::OnceLock;

use base64::Engine as _;
use rcgen::{PublicKeyData, SignatureAlgorithm, PKCS_RSA_SHA256};

/// An RSA key length that XSUAA accepts in `x509.key-length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyLength {
    /// XSUAA's default.
    #[default]
    Rsa2048,
    Rsa4096,
    Rsa8192,
}

impl KeyLength {
    /// Every length, shortest first.
    pub const ALL: [KeyLength; 3] = [KeyLength::Rsa2048, KeyLength::Rsa4096, KeyLength::Rsa8192];

    /// The modulus length in bits.
    pub fn bits(self) -> u64 {
        match self {
            KeyLength::Rsa2048 => 2048,
            KeyLength::Rsa4096 => 4096,
            KeyLength::Rsa8192 => 8192,
        }
    }

    /// The length with this many bits, if XSUAA offers it.
    pub fn from_bits(bits: u64) -> Option<KeyLength> {
        KeyLength::ALL.into_iter().find(|l| l.bits() == bits)
    }

    fn pems(self) -> (&'static str, &'static str) {
        match self {
            KeyLength::Rsa2048 => (
                include_str!("rsa_keys/rsa-2048.key.pem"),
                include_str!("rsa_keys/rsa-2048.pub.pem"),
            ),
            KeyLength::Rsa4096 => (
                include_str!("rsa_keys/rsa-4096.key.pem"),
                include_str!("rsa_keys/rsa-4096.pub.pem"),
            ),
            KeyLength::Rsa8192 => (
                include_str!("rsa_keys/rsa-8192.key.pem"),
                include_str!("rsa_keys/rsa-8192.pub.pem"),
            ),
        }
    }

    /// The private key, PKCS #1 PEM.
    pub(crate) fn private_key_pem(self) -> &'static str {
        self.pems().0
    }

    /// The public key, for a certificate's subjectPublicKeyInfo.
    pub(crate) fn public_key(self) -> &'static RsaPublicKey {
        static KEYS: [OnceLock<RsaPublicKey>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let slot = match self {
            KeyLength::Rsa2048 => &KEYS[0],
            KeyLength::Rsa4096 => &KEYS[1],
            KeyLength::Rsa8192 => &KEYS[2],
        };
        slot.get_or_init(|| RsaPublicKey(pem_body(self.pems().1)))
    }
}

/// A PKCS #1 `RSAPublicKey` (DER), which is what an RSA subjectPublicKeyInfo carries as its
/// bit string.
#[derive(Debug)]
pub(crate) struct RsaPublicKey(Vec<u8>);

impl PublicKeyData for RsaPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    // The subjectPublicKeyInfo algorithm of every RSA signature algorithm is rsaEncryption.
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_RSA_SHA256
    }
}

/// The bytes of the one PEM block in `pem`. The embedded files are known to be well formed,
/// which a unit test checks for each of them.
fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DER header length and the content of the first INTEGER inside a SEQUENCE starting at
    /// `der[at..]`, for the modulus checks below (test code: the inputs are the embedded keys).
    fn integer(der: &[u8], at: usize) -> (usize, &[u8]) {
        assert_eq!(der[at], 0x02, "an INTEGER");
        let (len, header) = match der[at + 1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let bytes = (n & 0x7f) as usize;
                let len = der[at + 2..at + 2 + bytes]
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | *b as usize);
                (len, 2 + bytes)
            }
        };
        (header + len, &der[at + header..at + header + len])
    }

    fn sequence_content_start(der: &[u8]) -> usize {
        assert_eq!(der[0], 0x30, "a SEQUENCE");
        match der[1] {
            n if n < 0x80 => 2,
            n => 2 + (n & 0x7f) as usize,
        }
    }

    #[test]
    fn each_private_key_belongs_to_its_public_key_and_has_its_length() {
        for length in KeyLength::ALL {
            let private = pem_body(length.private_key_pem());
            assert!(length
                .private_key_pem()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
            // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
            let start = sequence_content_start(&private);
            let (version_len, version) = integer(&private, start);
            assert_eq!(version, [0]);
            let (_, private_modulus) = integer(&private, start + version_len);
            // RSAPublicKey ::= SEQUENCE { modulus, publicExponent }
            let public = length.public_key().der_bytes();
            let (_, public_modulus) = integer(public, sequence_content_start(public));
            assert_eq!(private_modulus, public_modulus, "{length:?}");
            // A positive INTEGER: a leading zero byte before a set top bit.
            let bits = (public_modulus.len() as u64 - 1) * 8;
            assert_eq!(bits, length.bits(), "{length:?}");
        }
    }

    #[test]
    fn lengths_are_found_by_their_bits() {
        assert_eq!(KeyLength::from_bits(4096), Some(KeyLength::Rsa4096));
        assert_eq!(KeyLength::from_bits(1024), None);
        assert_eq!(KeyLength::default().bits(), 2048);
    }
}
