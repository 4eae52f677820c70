//! Reads one date value: an ISO 8601 / RFC 3339 string or a Unix epoch number.
//!
//! Owns the rules that decide whether a value is a date at all. It must never guess: a string
//! without a time zone, or a number that could be a duration, is not a date. Pure, no panics.

use serde_json::Number;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Epoch values below this are not dates: `3600` under `expiry` is far more likely a lifetime
/// than 1970-01-01T01:00:00Z. 10^9 seconds is 2001-09-09T01:46:40Z, older than any service key.
const SECONDS_MIN: u64 = 1_000_000_000;
/// 10^11 seconds is the year 5138; above that a number is read as milliseconds (if in range).
const SECONDS_END: u64 = 100_000_000_000;
/// Milliseconds cover the same span of time as seconds do: 2001-09-09 up to the year 5138.
/// The gap between [`SECONDS_END`] and this bound (years 5138..33658 in seconds, 1973..2001 in
/// milliseconds) is implausible either way and therefore an error.
const MILLIS_MIN: u64 = 1_000_000_000_000;
const MILLIS_END: u64 = 100_000_000_000_000;

/// Longest date string worth looking at; `2023-06-24T12:56:52.123456789+00:00` is 35 bytes.
const MAX_DATE_LEN: usize = 64;

/// Reads a JSON number as Unix time, seconds or milliseconds told apart by magnitude.
pub(super) fn from_epoch_number(n: &Number) -> Option<OffsetDateTime> {
    if let Some(u) = n.as_u64() {
        return from_epoch_integer(u);
    }
    // Negative integers fail `as_u64` and land here as negative floats, which are rejected.
    let f = n.as_f64()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    // Classify by the integer part, keep the fraction: 1719233812.5 is half a second later.
    let whole = f.trunc();
    if whole >= MILLIS_END as f64 {
        return None;
    }
    let whole_u64 = whole as u64;
    let nanos_per_unit: f64 = if (SECONDS_MIN..SECONDS_END).contains(&whole_u64) {
        1e9
    } else if (MILLIS_MIN..MILLIS_END).contains(&whole_u64) {
        1e6
    } else {
        return None;
    };
    OffsetDateTime::from_unix_timestamp_nanos((f * nanos_per_unit) as i128).ok()
}

/// Reads an unsigned integer as Unix time (see [`from_epoch_number`]).
fn from_epoch_integer(u: u64) -> Option<OffsetDateTime> {
    let nanos: i128 = if (SECONDS_MIN..SECONDS_END).contains(&u) {
        i128::from(u) * 1_000_000_000
    } else if (MILLIS_MIN..MILLIS_END).contains(&u) {
        i128::from(u) * 1_000_000
    } else {
        return None;
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// Reads a date string. Accepted, all with an explicit zone:
/// `YYYY-MM-DD` then `T`, `t` or one space, then `hh:mm`, optional `:ss`, optional `.fraction`
/// (1 to 9 digits, `,` also allowed as ISO 8601 permits), then `Z`, `z`, `UTC` (optionally after
/// one space) or an offset `±hh:mm`, `±hhmm`, `±hh`. A string of digits only is read as a Unix
/// epoch number. Everything else (no zone, date only, RFC 2822, week dates...) is `None`.
pub(super) fn from_str(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_DATE_LEN {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().and_then(from_epoch_integer);
    }
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };

    let year = c.digits(4)?;
    c.expect(b'-')?;
    let month = c.digits(2)?;
    c.expect(b'-')?;
    let day = c.digits(2)?;
    match c.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let hour = c.digits(2)?;
    c.expect(b':')?;
    let minute = c.digits(2)?;
    let mut second = 0;
    let mut nanos = 0;
    if c.peek() == Some(b':') {
        c.i += 1;
        second = c.digits(2)?;
        if matches!(c.peek(), Some(b'.' | b',')) {
            c.i += 1;
            nanos = c.fraction()?;
        }
    }
    let offset = c.zone()?;
    if c.i != c.b.len() {
        return None;
    }

    let date = Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    // Normalise to UTC; `checked_` because 9999-12-31T23:00-05:00 is past the last
    // representable instant and the plain conversion would panic.
    PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)
}

/// A byte cursor over an ASCII date string; every method returns `None` instead of panicking.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }

    /// 1 to 9 fraction digits as nanoseconds.
    fn fraction(&mut self) -> Option<u32> {
        let start = self.i;
        let mut nanos = 0u32;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start == 9 {
                return None;
            }
            nanos = nanos * 10 + u32::from(c - b'0');
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 {
            return None;
        }
        Some(nanos * 10u32.pow((9 - len) as u32))
    }

    /// The zone designator; absent means local time of an unknown place, hence `None`.
    fn zone(&mut self) -> Option<UtcOffset> {
        let rest = &self.b[self.i..];
        let utc_word = match rest {
            [b'Z' | b'z'] => 1,
            [b'U', b'T', b'C'] => 3,
            [b' ', b'U', b'T', b'C'] => 4,
            _ => 0,
        };
        if utc_word > 0 {
            self.i += utc_word;
            return Some(UtcOffset::UTC);
        }
        let sign: i8 = match self.next()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let hours = self.digits(2)?;
        let minutes = match self.peek() {
            None => 0,
            Some(b':') => {
                self.i += 1;
                self.digits(2)?
            }
            Some(_) => self.digits(2)?,
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        // Both values are < 60, so the casts cannot truncate.
        UtcOffset::from_hms(sign * hours as i8, sign * minutes as i8, 0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn reads_sap_validuntil_format() {
        assert_eq!(
            from_str("2023-06-24T12:56:52.000Z"),
            Some(datetime!(2023-06-24 12:56:52 UTC))
        );
    }

    #[test]
    fn reads_rfc3339_variants_to_the_same_instant() {
        let want = Some(datetime!(2023-06-24 12:56:52 UTC));
        for s in [
            "2023-06-24T12:56:52Z",
            "2023-06-24T12:56:52+00:00",
            "2023-06-24T12:56:52-00:00",
            "2023-06-24T14:56:52+02:00",
            "2023-06-24T14:56:52+0200",
            "2023-06-24T14:56:52+02",
            "2023-06-24T07:26:52-05:30",
            "2023-06-24 12:56:52Z",
            "2023-06-24 12:56:52 UTC",
            "2023-06-24t12:56:52z",
            "  2023-06-24T12:56:52Z\n",
        ] {
            assert_eq!(from_str(s), want, "{s}");
        }
    }

    #[test]
    fn keeps_fractions_and_allows_missing_seconds() {
        assert_eq!(
            from_str("2023-06-24T12:56:52,5Z"),
            Some(datetime!(2023-06-24 12:56:52.5 UTC))
        );
        assert_eq!(
            from_str("2023-06-24T12:56:52.123456789Z"),
            Some(datetime!(2023-06-24 12:56:52.123456789 UTC))
        );
        assert_eq!(
            from_str("2023-06-24T12:56Z"),
            Some(datetime!(2023-06-24 12:56 UTC))
        );
    }

    #[test]
    fn rejects_ambiguous_or_impossible_strings() {
        for s in [
            "",
            "   ",
            "2023-06-24",                      // which time of day, which zone?
            "2023-06-24T12:56:52",             // local time of an unknown place
            "2023-06-24T12:56:52.000",         // same, with a fraction
            "24.06.2023 12:56:52",             // not ISO 8601
            "Sat, 24 Jun 2023 12:56:52 GMT",   // RFC 2822 is not accepted
            "2023-02-30T12:00:00Z",            // no such day
            "2023-06-24T24:00:00Z",            // 24:00 is not a time we accept
            "2023-06-24T12:56:60Z",            // leap seconds do not exist in Unix time
            "2023-06-24T12:56:52+24:00",       // no such offset
            "2023-06-24T12:56:52.Z",           // empty fraction
            "2023-06-24T12:56:52.1234567890Z", // more precision than nanoseconds
            "2023-06-24T12:56:52Zjunk",
            "2023-06-24T12:56:52ZZ",
            "+2023-06-24T12:56:52Z",
            "९९९९-06-24T12:56:52Z", // non-ASCII digits
            "never",
            "0",
            "3600",
        ] {
            assert_eq!(from_str(s), None, "{s:?}");
        }
    }

    #[test]
    fn does_not_panic_at_the_edge_of_the_representable_range() {
        assert_eq!(from_str("9999-12-31T23:00:00-05:00"), None);
        assert_eq!(
            from_str("0000-01-01T00:00:00Z"),
            Some(datetime!(0000-01-01 0:00 UTC))
        );
    }

    fn number(json: &str) -> Number {
        serde_json::from_str(json).expect("a JSON number")
    }

    #[test]
    fn epoch_seconds_and_milliseconds_are_told_apart_by_magnitude() {
        let at = datetime!(2024-06-24 12:56:52 UTC);
        assert_eq!(from_epoch_number(&number("1719233812")), Some(at));
        assert_eq!(from_epoch_number(&number("1719233812000")), Some(at));
        assert_eq!(
            from_epoch_number(&number("1719233812.5")),
            Some(datetime!(2024-06-24 12:56:52.5 UTC))
        );
        assert_eq!(from_str("1719233812000"), Some(at));
    }

    #[test]
    fn epoch_bounds_are_exact() {
        assert_eq!(from_epoch_number(&number("999999999")), None);
        assert_eq!(
            from_epoch_number(&number("1000000000")),
            Some(datetime!(2001-09-09 01:46:40 UTC))
        );
        assert!(from_epoch_number(&number("99999999999")).is_some());
        assert_eq!(from_epoch_number(&number("100000000000")), None);
        assert_eq!(from_epoch_number(&number("999999999999")), None);
        assert_eq!(
            from_epoch_number(&number("1000000000000")),
            Some(datetime!(2001-09-09 01:46:40 UTC))
        );
        assert!(from_epoch_number(&number("99999999999999")).is_some());
        assert_eq!(from_epoch_number(&number("100000000000000")), None);
    }

    #[test]
    fn durations_negatives_and_huge_numbers_are_not_dates() {
        for n in [
            "0",
            "3600",
            "-1719233812",
            "1e300",
            "-0.0",
            "18446744073709551615",
        ] {
            assert_eq!(from_epoch_number(&number(n)), None, "{n}");
        }
    }
}
