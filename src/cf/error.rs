//! Typed errors of the Cloud Foundry and UAA clients.
//!
//! Every error names the endpoint (as a route template, never a raw URL with guids) and keeps
//! what Cloud Foundry said (`code`, `title`, `detail`). No error ever carries a token, password,
//! client secret or credential value: bodies are only read into these types through the parsed
//! CF/UAA error fields.

use std::fmt;
use std::time::Duration;

use crate::vocab::Reason;

/// An error body of the V3 API: `{"errors": [{"code": N, "title": "CF-...", "detail": "..."}]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiError {
    pub code: i64,
    pub title: String,
    pub detail: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.code, self.detail)
    }
}

/// Why a request got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Timeout,
    Connect,
    Other,
}

/// Errors talking to Cloud Foundry or UAA.
#[derive(Debug, thiserror::Error)]
pub enum CfError {
    #[error("{endpoint}: no response ({message})")]
    Transport {
        endpoint: &'static str,
        kind: TransportKind,
        message: String,
    },

    #[error("{endpoint}: HTTP {status}{}", .api.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Status {
        endpoint: &'static str,
        status: u16,
        api: Option<ApiError>,
        /// From `Retry-After` on a 429 or 503.
        retry_after: Option<Duration>,
    },

    /// A response whose body is not the JSON expected.
    #[error("{endpoint}: invalid response (HTTP {status}, {content_type}): {message}")]
    Decode {
        endpoint: &'static str,
        status: u16,
        content_type: String,
        message: String,
    },

    /// A well-formed response that does not say what it must (a link that is no URL, an API
    /// root document without a login server).
    #[error("{endpoint}: {message}")]
    Unusable {
        endpoint: &'static str,
        message: String,
    },

    #[error("{endpoint}: response body larger than {limit} bytes, cut off")]
    BodyTooLarge {
        endpoint: &'static str,
        limit: usize,
    },

    #[error("{endpoint}: refusing to follow a link to another origin ({origin}); the token is only sent to the API")]
    ForeignOrigin {
        endpoint: &'static str,
        origin: String,
    },

    #[error("{endpoint}: pagination stopped: {message}")]
    Pagination {
        endpoint: &'static str,
        message: String,
    },

    #[error("login as {who} at {uaa} failed: {message}")]
    Login {
        who: String,
        uaa: String,
        message: String,
    },

    /// A password or client secret could not be read from its file or variable.
    #[error("cannot read a secret for the login")]
    Secret(#[source] crate::config::ConfigError),

    #[error("cannot read the CA file {}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the CA file {} holds no usable PEM certificate", path.display())]
    CaCertificates {
        path: std::path::PathBuf,
        /// `None`: the file parsed but held no certificate.
        #[source]
        source: Option<reqwest::Error>,
    },

    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),

    /// UAA issued an access token that cannot travel in a header (its value is never shown).
    #[error("UAA issued an access token that is not a valid header value")]
    TokenNotAHeader,

    #[error("the API URL {url} cannot take a path")]
    ApiUrl { url: String },
}

impl CfError {
    /// A bounded label value for `details_errors_total{reason}` and logs.
    pub fn reason(&self) -> Reason {
        match self {
            CfError::Transport {
                kind: TransportKind::Timeout,
                ..
            } => Reason::Timeout,
            CfError::Transport { .. } => Reason::Connection,
            CfError::Status { status: 401, .. } => Reason::Unauthorized,
            CfError::Status { status: 403, .. } => Reason::Forbidden,
            CfError::Status { status: 404, .. } => Reason::NotFound,
            CfError::Status { status: 429, .. } => Reason::RateLimited,
            CfError::Status { status, .. } if *status >= 500 => Reason::Http5xx,
            CfError::Status { .. } => Reason::Http4xx,
            CfError::Decode { .. } | CfError::Unusable { .. } => Reason::InvalidJson,
            CfError::BodyTooLarge { .. } => Reason::BodyTooLarge,
            CfError::ForeignOrigin { .. } => Reason::ForeignOrigin,
            CfError::Pagination { .. } => Reason::Pagination,
            CfError::Login { .. } | CfError::TokenNotAHeader => Reason::Login,
            CfError::Secret(_) | CfError::ApiUrl { .. } | CfError::Client(_) => Reason::Config,
            CfError::CaFile { .. } | CfError::CaCertificates { .. } => Reason::Tls,
        }
    }

    /// Worth another try soon: no answer, a 429, or a gateway/unavailable error.
    pub fn is_transient(&self) -> bool {
        match self {
            CfError::Transport { .. } => true,
            CfError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// How long Cloud Foundry asked us to wait before the next request.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CfError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A status worth another try soon: 429, or a gateway/unavailable error.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Displays an error with every cause after it (`a: b: c`), for log lines and messages that
/// are the end of the road for the error.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::ReadError;

    /// Each kind of failure has its own reason.
    #[test]
    fn errors_map_to_their_reasons() {
        let status = |status| CfError::Status {
            endpoint: "/x",
            status,
            api: None,
            retry_after: None,
        };
        let errors = [
            CfError::Transport {
                endpoint: "/x",
                kind: TransportKind::Timeout,
                message: String::new(),
            },
            CfError::Transport {
                endpoint: "/x",
                kind: TransportKind::Connect,
                message: String::new(),
            },
            status(401),
            status(403),
            status(404),
            status(429),
            status(400),
            status(500),
            CfError::Decode {
                endpoint: "/x",
                status: 200,
                content_type: String::new(),
                message: String::new(),
            },
            CfError::BodyTooLarge {
                endpoint: "/x",
                limit: 1,
            },
            CfError::Login {
                who: String::new(),
                uaa: String::new(),
                message: String::new(),
            },
        ];
        let reads = [
            ReadError::InvalidCertificate {
                path: String::new(),
            },
            ReadError::InvalidDate {
                path: String::new(),
            },
        ];
        let reasons: Vec<Reason> = (errors.iter().map(CfError::reason))
            .chain(reads.iter().map(ReadError::reason))
            .collect();
        use Reason::*;
        assert_eq!(
            reasons,
            [
                Timeout,
                Connection,
                Unauthorized,
                Forbidden,
                NotFound,
                RateLimited,
                Http4xx,
                Http5xx,
                InvalidJson,
                BodyTooLarge,
                Login,
                InvalidCertificate,
                InvalidDate
            ]
        );
    }
}
