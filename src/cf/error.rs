//! Typed errors of the Cloud Foundry and UAA clients.
//!
//! Every error names the endpoint (as a route template, never a raw URL with guids) and keeps
//! what Cloud Foundry said (`code`, `title`, `detail`). No error ever carries a token, password,
//! client secret or credential value: bodies are only read into these types through the parsed
//! CF/UAA error fields.

use std::fmt;
use std::time::Duration;

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

    #[error("{endpoint}: invalid response (HTTP {status}, {content_type}): {message}")]
    Decode {
        endpoint: &'static str,
        status: u16,
        content_type: String,
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

    #[error("{0}")]
    Config(String),
}

impl CfError {
    /// A bounded label value for `details_errors_total{reason}` and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CfError::Transport {
                kind: TransportKind::Timeout,
                ..
            } => "timeout",
            CfError::Transport { .. } => "connection",
            CfError::Status { status: 401, .. } => "unauthorized",
            CfError::Status { status: 403, .. } => "forbidden",
            CfError::Status { status: 404, .. } => "not_found",
            CfError::Status { status: 429, .. } => "rate_limited",
            CfError::Status { status, .. } if *status >= 500 => "http_5xx",
            CfError::Status { .. } => "http_4xx",
            CfError::Decode { .. } => "invalid_json",
            CfError::BodyTooLarge { .. } => "body_too_large",
            CfError::ForeignOrigin { .. } => "foreign_origin",
            CfError::Pagination { .. } => "pagination",
            CfError::Login { .. } => "login",
            CfError::Config(_) => "config",
        }
    }

    /// Worth another try soon: no answer, a 429, or a gateway/unavailable error.
    pub fn is_transient(&self) -> bool {
        match self {
            CfError::Transport { .. } => true,
            CfError::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
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

    /// A 401 from the API: the token is no longer accepted.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, CfError::Status { status: 401, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::ReadError;
    use crate::metrics::DETAILS_ERROR_REASONS;

    /// Every reason a key's details can fail with has its series created at 0.
    #[test]
    fn every_details_error_reason_is_pre_created() {
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
        for reason in errors
            .iter()
            .map(CfError::reason)
            .chain(reads.iter().map(ReadError::reason))
        {
            assert!(
                DETAILS_ERROR_REASONS.contains(&reason),
                "{reason} is not pre-created"
            );
        }
    }
}
