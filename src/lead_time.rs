//! An owner's warning lead time: the value of the `--lead-time-annotation` Cloud Foundry
//! annotation on a key, its service instance, its space or its org (the nearest wins, as for
//! owner labels), e.g. `60d` for a certificate a partner must install in time.
//!
//! The value is a humantime duration from [`MIN`] to [`MAX`]. Anything else is
//! [`LeadTime::Invalid`]: the default lead applies to that key, `/metrics` says so, and the
//! refresher logs it once. The value is untrusted text written by anyone who may annotate, so
//! an invalid one is kept only as a short [excerpt](InvalidLead::excerpt) with control
//! characters escaped, for that log line. Pure: no I/O, no clock.

use std::sync::Arc;
use std::time::Duration;

/// The shortest lead accepted: less would sit inside a refresh interval and an alert's `for:`.
pub const MIN: Duration = Duration::from_secs(3600);
/// The longest lead accepted: humantime's `2y` (a year is 365.25 days there). More would keep
/// every key of the usual lifetimes (a year at most) warning from its creation.
pub const MAX: Duration = Duration::from_secs(2 * 31_557_600);
/// Longer values are not parsed at all: no duration needs this many characters.
const MAX_VALUE_CHARS: usize = 64;
/// Characters of an invalid value kept for the log line.
const EXCERPT_CHARS: usize = 32;

/// A key's lead time, as the nearest annotation says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LeadTime {
    /// Not configured, or not set (or empty) on the key and all above it.
    #[default]
    Unset,
    /// Whole seconds, within [`MIN`]..=[`MAX`].
    Valid(u64),
    /// Set, but not a usable duration: the default lead applies.
    Invalid(Arc<InvalidLead>),
}

/// Why a lead-time value was refused, and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLead {
    /// The level the nearest value was found at: `key`, `service instance`, `space` or `org`.
    pub level: &'static str,
    /// A short reason, never containing the value.
    pub reason: &'static str,
    /// At most the first 32 characters of the value, control and invisible characters escaped
    /// (`\n`, `\u{202e}`), `…` when cut: safe for one log line.
    pub excerpt: String,
}

impl LeadTime {
    /// Reads a value found at `level`.
    pub fn parse(value: &str, level: &'static str) -> LeadTime {
        let invalid = |reason| {
            LeadTime::Invalid(Arc::new(InvalidLead {
                level,
                reason,
                excerpt: excerpt(value),
            }))
        };
        if value.chars().count() > MAX_VALUE_CHARS {
            return invalid("too long to be a duration");
        }
        match humantime::parse_duration(value.trim()) {
            Err(_) => invalid("not a duration (write e.g. 60d or 8w)"),
            Ok(d) if d < MIN => invalid("shorter than 1h"),
            Ok(d) if d > MAX => invalid("longer than 2y"),
            Ok(d) => LeadTime::Valid(d.as_secs()),
        }
    }

    /// The lead in seconds, when valid.
    pub fn seconds(&self) -> Option<u64> {
        match self {
            LeadTime::Valid(s) => Some(*s),
            _ => None,
        }
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, LeadTime::Invalid(_))
    }
}

/// The start of an untrusted value, fit for one log line.
fn excerpt(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(EXCERPT_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(value: &str) -> InvalidLead {
        match LeadTime::parse(value, "key") {
            LeadTime::Invalid(i) => InvalidLead::clone(&i),
            other => panic!("{value:?} read as {other:?}"),
        }
    }

    #[test]
    fn humantime_durations_within_the_bounds_are_read_in_seconds() {
        assert_eq!(LeadTime::parse("60d", "key"), LeadTime::Valid(5_184_000));
        assert_eq!(LeadTime::parse(" 8w ", "org"), LeadTime::Valid(4_838_400));
        assert_eq!(LeadTime::parse("1h", "key"), LeadTime::Valid(3600));
        assert_eq!(LeadTime::parse("2y", "key").seconds(), Some(63_115_200));
        assert_eq!(
            LeadTime::parse("30 days", "space"),
            LeadTime::Valid(2_592_000)
        );
    }

    #[test]
    fn anything_else_is_invalid_with_a_reason_that_never_holds_the_value() {
        assert_eq!(
            invalid("60").reason,
            "not a duration (write e.g. 60d or 8w)"
        );
        assert_eq!(
            invalid("soon").reason,
            "not a duration (write e.g. 60d or 8w)"
        );
        assert_eq!(invalid("").reason, "not a duration (write e.g. 60d or 8w)");
        assert_eq!(invalid("59m").reason, "shorter than 1h");
        assert_eq!(invalid("0s").reason, "shorter than 1h");
        assert_eq!(invalid("3y").reason, "longer than 2y");
        assert_eq!(invalid(&"9".repeat(65)).reason, "too long to be a duration");
        assert_eq!(invalid("x").level, "key");
    }

    #[test]
    fn an_excerpt_is_short_and_escapes_what_could_forge_or_hide_a_log_line() {
        assert_eq!(invalid("60 dys").excerpt, "60 dys");
        let forged = "1d\nINFO refresh completed\u{1b}[2J\u{202e}";
        let e = invalid(forged).excerpt;
        assert!(!e.chars().any(|c| c.is_control()), "{e}");
        assert!(
            e.contains("\\n") && e.contains("\\u{1b}") && e.contains("\\u{202e}"),
            "{e}"
        );
        let long = invalid(&"a".repeat(60)).excerpt;
        assert_eq!(long, format!("{}…", "a".repeat(32)));
    }
}
