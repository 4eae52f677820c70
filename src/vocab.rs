//! The vocabulary the producers ([`crate::cf`], [`crate::expiry`]) and the consumers
//! ([`crate::metrics`], [`crate::cache`], [`crate::report`]) share: why a key's details could not
//! be read ([`Reason`]), what Cloud Foundry's rate limit said ([`RateLimit`]), and the events the
//! transport reports ([`ApiEvent`], [`Telemetry`]). It depends on nothing else in the crate, so
//! the producers need not know who listens and the listeners need not know the producers.

use std::fmt;

/// Why fetching or reading a key's details failed: the `reason` label of
/// `cf_service_key_exporter_details_errors_total`, the cache file's failure reason and the
/// report's error column. [`Reason::as_str`] is the only place the label text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Timeout,
    Connection,
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    Http5xx,
    Http4xx,
    InvalidJson,
    BodyTooLarge,
    ForeignOrigin,
    Pagination,
    Login,
    Config,
    Tls,
    /// A credential field that looked like a certificate but is none.
    InvalidCertificate,
    /// A credential field that looked like a date but is none.
    InvalidDate,
}

impl Reason {
    /// Every reason, in the order the series are created.
    pub const ALL: [Reason; 17] = [
        Reason::Timeout,
        Reason::Connection,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::NotFound,
        Reason::RateLimited,
        Reason::Http5xx,
        Reason::Http4xx,
        Reason::InvalidJson,
        Reason::BodyTooLarge,
        Reason::ForeignOrigin,
        Reason::Pagination,
        Reason::Login,
        Reason::Config,
        Reason::Tls,
        Reason::InvalidCertificate,
        Reason::InvalidDate,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Connection => "connection",
            Reason::Unauthorized => "unauthorized",
            Reason::Forbidden => "forbidden",
            Reason::NotFound => "not_found",
            Reason::RateLimited => "rate_limited",
            Reason::Http5xx => "http_5xx",
            Reason::Http4xx => "http_4xx",
            Reason::InvalidJson => "invalid_json",
            Reason::BodyTooLarge => "body_too_large",
            Reason::ForeignOrigin => "foreign_origin",
            Reason::Pagination => "pagination",
            Reason::Login => "login",
            Reason::Config => "config",
            Reason::Tls => "tls",
            Reason::InvalidCertificate => "invalid_certificate",
            Reason::InvalidDate => "invalid_date",
        }
    }

    /// The reason whose label value is `text`.
    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a key's expiry was read: the `expiry_source` label, the cache file's and the report's
/// `expiry_source`. [`ExpirySource::as_str`] is the only place the label text is written (the
/// fields each is read from: [`crate::expiry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpirySource {
    /// `validuntil` inside `certificatedetails`, as SAP Cloud Integration writes it.
    CertificateDetailsValidUntil,
    /// The notAfter of a PEM certificate found anywhere in the credentials.
    Certificate,
    /// A field named `expires_at` / `expiresAt` / `expires_on`.
    ExpiresAt,
    /// A field named `expiration` / `expiration_date` / `expiration_time`.
    Expiration,
    /// A field named `expiry` / `expiry_date` / `expiry_time`.
    Expiry,
    /// A field named `valid_until` / `validUntil` / `valid_to` outside `certificatedetails`.
    ValidUntil,
    /// A field named `not_after` / `notAfter`.
    NotAfter,
    /// Read, and nothing readable in it expires.
    None,
    /// The details were never read successfully.
    Unread,
}

impl ExpirySource {
    /// The sources an expiry can be read from (neither `none` nor `unread`).
    pub const READ: [ExpirySource; 7] = [
        ExpirySource::CertificateDetailsValidUntil,
        ExpirySource::Certificate,
        ExpirySource::ExpiresAt,
        ExpirySource::Expiration,
        ExpirySource::Expiry,
        ExpirySource::ValidUntil,
        ExpirySource::NotAfter,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpirySource::CertificateDetailsValidUntil => "certificatedetails.validuntil",
            ExpirySource::Certificate => "certificate",
            ExpirySource::ExpiresAt => "expires_at",
            ExpirySource::Expiration => "expiration",
            ExpirySource::Expiry => "expiry",
            ExpirySource::ValidUntil => "valid_until",
            ExpirySource::NotAfter => "not_after",
            ExpirySource::None => "none",
            ExpirySource::Unread => "unread",
        }
    }

    /// The source an expiry read from the label value `text` has.
    pub fn parse_read(text: &str) -> Option<ExpirySource> {
        ExpirySource::READ.into_iter().find(|s| s.as_str() == text)
    }
}

/// What Cloud Foundry's rate limit said last (`X-RateLimit-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    /// Floored to tenths of the limit by Cloud Foundry.
    pub remaining: u64,
    /// When the window resets, Unix seconds.
    pub reset: i64,
}

/// What the transport of one foundation reports as it talks to Cloud Foundry and UAA, and its
/// refresher as it reads keys' details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiEvent<'a> {
    /// One request ended: `code` is the HTTP status, or `error` when no usable answer came.
    /// `endpoint` is a route template, never a URL with guids.
    Request {
        endpoint: &'static str,
        code: &'a str,
    },
    /// An answer announced the rate limit.
    RateLimit(RateLimit),
    /// Fetching or reading a key's details failed.
    DetailsError(Reason),
}

/// Who listens to a foundation's [`ApiEvent`]s (the metrics, or nobody).
pub trait Telemetry: Send + Sync + fmt::Debug {
    fn record(&self, event: ApiEvent<'_>);
}

/// Nobody listens: a single refresh (`report`) serves no metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {
    fn record(&self, _: ApiEvent<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason has its own label value, and reads back from it (the cache file stores it).
    #[test]
    fn reasons_have_distinct_labels_that_parse_back() {
        let labels: std::collections::HashSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::parse("tea"), None);
    }

    /// Every source an expiry is read from has its own label value, and reads back from it;
    /// `none` and `unread` are no such source.
    #[test]
    fn read_sources_have_distinct_labels_that_parse_back() {
        let labels: std::collections::HashSet<&str> =
            ExpirySource::READ.iter().map(|s| s.as_str()).collect();
        assert_eq!(labels.len(), ExpirySource::READ.len());
        for source in ExpirySource::READ {
            assert_eq!(ExpirySource::parse_read(source.as_str()), Some(source));
        }
        assert_eq!(ExpirySource::parse_read("none"), None);
        assert_eq!(ExpirySource::parse_read("unread"), None);
    }
}
