//! Finds PEM certificates inside one credential string and reads their validity.
//!
//! Owns PEM framing (RFC 7468), the `\n`-escaped variant some tools produce, and the limits that
//! keep a hostile string cheap. It must never look inside a block that is not a certificate (a
//! private key is skipped by its markers, its body is not even decoded) and never return any
//! part of the input except the public facts of a certificate that parsed. Pure, no panics.

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CertificateInfo;

/// Strings longer than this are not scanned (and count as unreadable when they claim to hold a
/// certificate). Far above a real chain of certificates (docs/performance.md, "Figures the code
/// refers to").
pub(crate) const MAX_PEM_STRING_BYTES: usize = 256 * 1024;
/// A certificate chain longer than this in one string is unreadable rather than slow to read.
pub(crate) const MAX_CERTIFICATES_PER_STRING: usize = 16;
/// Caps the public facts copied out of a certificate, whatever its issuer put there.
const MAX_NAME_CHARS: usize = 256;

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Certificate block labels (RFC 7468 plus the legacy ones OpenSSL still writes).
const CERTIFICATE_LABELS: [&str; 3] = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];

/// Base64 as PEM uses it; padding is sometimes lost when a PEM is pasted around.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The certificate that expires first in one string.
#[derive(Debug)]
pub(super) struct Earliest {
    pub(super) not_after: OffsetDateTime,
    /// The same certificate's notBefore.
    pub(super) not_before: OffsetDateTime,
    pub(super) info: CertificateInfo,
}

/// What one string held.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// The earliest notAfter among the certificates that parsed.
    pub(super) earliest: Option<Earliest>,
    /// At least one certificate block could not be read (bad framing, base64 or DER, or a limit).
    pub(super) unreadable: bool,
    /// Certificate blocks looked at, readable or not; counts against the caller's budget.
    pub(super) certificates: usize,
}

/// Cheap test run on every string of the tree before any real work.
pub(super) fn may_hold_certificate(s: &str) -> bool {
    s.contains(BEGIN) && s.contains("CERTIFICATE-----")
}

/// Reads every certificate block in `s`, at most `budget` of them (and never more than
/// [`MAX_CERTIFICATES_PER_STRING`]); other blocks (private keys, CSRs...) are skipped.
pub(super) fn scan(s: &str, budget: usize) -> Scan {
    let budget = budget.min(MAX_CERTIFICATES_PER_STRING);
    let mut out = Scan::default();
    if s.len() > MAX_PEM_STRING_BYTES {
        out.unreadable = true;
        return out;
    }
    let text = unescape_newlines(s);
    let mut rest: &str = &text;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_len) = after_begin.find(DASHES) else {
            // "-----BEGIN " with no closing dashes: not a PEM boundary at all.
            break;
        };
        let label = &after_begin[..label_len];
        let body_and_rest = &after_begin[label_len + DASHES.len()..];
        let end_marker = [END, label, DASHES].concat();
        let is_certificate = CERTIFICATE_LABELS.contains(&label);
        let Some(body_len) = body_and_rest.find(&end_marker) else {
            // An unterminated certificate is unreadable; an unterminated anything else (a
            // truncated private key) is none of our business, and nothing after it can be framed.
            out.unreadable |= is_certificate;
            break;
        };
        rest = &body_and_rest[body_len + end_marker.len()..];
        if !is_certificate {
            continue;
        }
        if out.certificates == budget {
            out.unreadable = true;
            break;
        }
        out.certificates += 1;
        match read_certificate(&body_and_rest[..body_len]) {
            Some(found) => {
                if out
                    .earliest
                    .as_ref()
                    .is_none_or(|e| found.not_after < e.not_after)
                {
                    out.earliest = Some(found);
                }
            }
            None => out.unreadable = true,
        }
    }
    out
}

/// Turns the two-character sequences `\n` and `\r` into real line breaks. Some tools store a PEM
/// with its line breaks escaped twice, so the JSON string holds a backslash and an `n`.
fn unescape_newlines(s: &str) -> Cow<'_, str> {
    if s.contains("\\n") || s.contains("\\r") {
        Cow::Owned(s.replace("\\r", "").replace("\\n", "\n"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Decodes one certificate block body and reads its public facts.
fn read_certificate(body: &str) -> Option<Earliest> {
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = BASE64.decode(compact.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some(Earliest {
        not_after: cert.validity().not_after.to_datetime(),
        not_before: cert.validity().not_before.to_datetime(),
        info: CertificateInfo {
            subject: bounded(cert.subject().to_string()),
            issuer: bounded(cert.issuer().to_string()),
            serial: serial_hex(cert.raw_serial()),
        },
    })
}

/// The serial number as SAP's `certificatedetails.serialnumber` writes it: `0x` and upper-case
/// hex, without the leading zero byte DER adds to keep the number positive.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().take_while(|b| **b == 0).count();
    let digits = &raw[start.min(raw.len().saturating_sub(1))..];
    let mut out = String::with_capacity(2 + 2 * digits.len().min(MAX_NAME_CHARS / 2));
    out.push_str("0x");
    for b in digits.iter().take(MAX_NAME_CHARS / 2) {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

fn bounded(mut s: String) -> String {
    if let Some((cut, _)) = s.char_indices().nth(MAX_NAME_CHARS) {
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_drops_the_sign_byte_but_keeps_zero() {
        assert_eq!(serial_hex(&[0x00, 0xAB, 0xCD]), "0xABCD");
        assert_eq!(serial_hex(&[0x00]), "0x00");
        assert_eq!(serial_hex(&[0x12, 0x00]), "0x1200");
        assert_eq!(serial_hex(&[]), "0x");
    }

    #[test]
    fn private_key_blocks_are_skipped_without_being_decoded() {
        let s = "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----";
        let scan = scan(s, usize::MAX);
        assert!(scan.earliest.is_none());
        assert!(
            !scan.unreadable,
            "a private key is not an unreadable certificate"
        );
    }

    #[test]
    fn unterminated_certificate_is_unreadable() {
        let scan = scan("-----BEGIN CERTIFICATE-----\nMIIB", usize::MAX);
        assert!(scan.earliest.is_none());
        assert!(scan.unreadable);
    }

    #[test]
    fn bad_base64_and_bad_der_are_unreadable() {
        assert!(
            scan(
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
                usize::MAX
            )
            .unreadable
        );
        assert!(
            scan(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                usize::MAX
            )
            .unreadable
        );
        assert!(
            scan(
                "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----",
                usize::MAX
            )
            .unreadable
        );
    }

    #[test]
    fn the_budget_caps_certificate_blocks() {
        let block = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let s = block.repeat(3);
        assert_eq!(scan(&s, 2).certificates, 2);
        assert_eq!(scan(&s, usize::MAX).certificates, 3);
        let none = scan(&s, 0);
        assert_eq!(none.certificates, 0);
        assert!(none.unreadable);
        let many = block.repeat(MAX_CERTIFICATES_PER_STRING + 1);
        assert_eq!(
            scan(&many, usize::MAX).certificates,
            MAX_CERTIFICATES_PER_STRING
        );
    }

    #[test]
    fn oversized_strings_are_not_scanned() {
        let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
        s.push_str(&"A".repeat(MAX_PEM_STRING_BYTES));
        s.push_str("\n-----END CERTIFICATE-----");
        assert!(scan(&s, usize::MAX).unreadable);
    }

    #[test]
    fn escaped_newlines_become_line_breaks() {
        assert_eq!(unescape_newlines("a\\r\\nb\\nc"), "a\nb\nc");
        assert!(matches!(unescape_newlines("a\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_names_are_bounded_on_a_char_boundary() {
        let s = bounded("é".repeat(MAX_NAME_CHARS + 10));
        assert_eq!(s.chars().count(), MAX_NAME_CHARS + 1);
        assert!(s.ends_with('…'));
    }
}
