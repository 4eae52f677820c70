//! The successor naming scheme: a key's successor is named after it with a date suffix that
//! replaces an earlier one (`it-sender-20260101` → `it-sender-20261204`, `it-sender` →
//! `it-sender-20261204`).
//!
//! The suffix is a [`time` format description](https://time-rs.github.io/book/api/format-description.html)
//! of a date (`--successor-name-suffix`, default [`DEFAULT_SUFFIX`]): `-[year][month][day]`,
//! `_v[year][month][day]`, `-[year]-[month]-[day]`. It must name the year, month and day and
//! have a fixed width, so that a name's suffix is found by reading its last characters back as
//! a date. A key's **base** is its name without such a suffix; two keys with the same base are
//! the same consumer's keys from different days. Pure: no clock (the caller says which day).

use time::format_description::OwnedFormatItem;
use time::macros::date;
use time::Date;

/// The default suffix: `-` and the date as `YYYYMMDD`.
pub const DEFAULT_SUFFIX: &str = "-[year][month][day]";

/// A successor naming scheme, from its suffix format.
#[derive(Debug, Clone)]
pub struct NameScheme {
    text: String,
    format: OwnedFormatItem,
    /// Length of every suffix, in bytes (fixed, checked by [`NameScheme::parse`]).
    width: usize,
}

impl PartialEq for NameScheme {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for NameScheme {}

impl Default for NameScheme {
    fn default() -> Self {
        NameScheme::parse(DEFAULT_SUFFIX).expect("the default suffix is valid")
    }
}

impl std::fmt::Display for NameScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl NameScheme {
    /// Checks a suffix format: it must parse, write a date of one fixed width, and read that
    /// date back (so it names the year, month and day).
    pub fn parse(text: &str) -> Result<NameScheme, String> {
        let format = time::format_description::parse_owned::<2>(text)
            .map_err(|e| format!("`{text}` is not a date format description ({e})"))?;
        let samples = [date!(2001 - 05 - 03), date!(2999 - 12 - 31)];
        let mut widths = Vec::new();
        for sample in samples {
            let written = sample
                .format(&format)
                .map_err(|e| format!("`{text}` cannot write a date ({e})"))?;
            match Date::parse(&written, &format) {
                Ok(read) if read == sample => {}
                _ => {
                    return Err(format!(
                        "`{text}` must name the year, month and day (e.g. {DEFAULT_SUFFIX}): `{written}` does not read back as {sample}"
                    ))
                }
            }
            if written.chars().any(char::is_whitespace) || written.is_empty() {
                return Err(format!("`{text}` writes whitespace or nothing"));
            }
            widths.push(written.len());
        }
        if widths.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!(
                "`{text}` must write every date with the same width (e.g. {DEFAULT_SUFFIX})"
            ));
        }
        Ok(NameScheme {
            text: text.to_owned(),
            format,
            width: widths[0],
        })
    }

    /// The name without its date suffix, and that date; the name itself when it has none (or
    /// when nothing would be left of it).
    pub fn split<'a>(&self, name: &'a str) -> (&'a str, Option<Date>) {
        let Some(cut) = name.len().checked_sub(self.width) else {
            return (name, None);
        };
        if cut == 0 || !name.is_char_boundary(cut) {
            return (name, None);
        }
        match Date::parse(&name[cut..], &self.format) {
            Ok(d) => (&name[..cut], Some(d)),
            Err(_) => (name, None),
        }
    }

    /// The name without its date suffix.
    pub fn base<'a>(&self, name: &'a str) -> &'a str {
        self.split(name).0
    }

    /// The successor's name on `day`: the base with that day's suffix.
    pub fn successor_name(&self, name: &str, day: Date) -> String {
        let suffix = day.format(&self.format).unwrap_or_else(|_| day.to_string());
        format!("{}{suffix}", self.base(name))
    }

    /// `new` is named as a successor of `old`: `old`'s base with a date suffix, and not `old`.
    pub fn names_successor(&self, old: &str, new: &str) -> bool {
        if old == new {
            return false;
        }
        match self.split(new) {
            (base, Some(_)) => base == self.base(old),
            (_, None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_suffix_replaces_an_earlier_one() {
        let s = NameScheme::default();
        let day = date!(2026 - 12 - 04);
        assert_eq!(
            s.successor_name("it-sender-20260101", day),
            "it-sender-20261204"
        );
        assert_eq!(s.successor_name("it-sender", day), "it-sender-20261204");
        assert_eq!(
            s.split("it-sender-20260101"),
            ("it-sender", Some(date!(2026 - 01 - 01)))
        );
        // Not a date: part of the name.
        assert_eq!(s.base("partner-20261399"), "partner-20261399");
        assert_eq!(s.base("-20260101"), "-20260101");
        assert_eq!(s.base("ü-20260101"), "ü");
        assert_eq!(s.base("x"), "x");
    }

    #[test]
    fn successors_share_the_base_and_carry_a_suffix() {
        let s = NameScheme::default();
        assert!(s.names_successor("it-sender-20260101", "it-sender-20261204"));
        assert!(s.names_successor("it-sender", "it-sender-20261204"));
        assert!(!s.names_successor("it-sender-20261204", "it-sender"));
        assert!(!s.names_successor("it-sender-20261204", "it-sender-20261204"));
        assert!(!s.names_successor("it-sender-20260101", "it-receiver-20261204"));
        assert!(!s.names_successor("s4-inbound", "partner-edi"));
        assert!(!s.names_successor("jobs-x509-fresh", "jobs-x509-rotated"));
    }

    #[test]
    fn other_fixed_width_formats_work_and_the_rest_is_refused() {
        let s = NameScheme::parse("_v[year]-[month]-[day]").unwrap();
        let day = date!(2026 - 12 - 04);
        assert_eq!(s.successor_name("k_v2025-01-31", day), "k_v2026-12-04");
        assert!(s.names_successor("k", "k_v2026-12-04"));
        for bad in [
            "[year][month]",
            "-[hour]",
            "-[year][month][day",
            "-[year repr:last_two][month][day]",
            "-[month repr:long][day][year]",
            "",
        ] {
            assert!(NameScheme::parse(bad).is_err(), "{bad}");
        }
    }
}
