//! Timestamps are `i64` milliseconds since the Unix epoch, UTC.
//!
//! One integer type keeps comparisons exact (the "events ≤ t" rule of the
//! feature definitions must never depend on float rounding) and makes the
//! representation identical in CSV, Parquet and in memory.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A timestamp text that is not RFC 3339 / ISO 8601.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparsable timestamp {text:?} (expected RFC 3339, e.g. 2026-01-31T08:00:00Z)")]
pub struct TimestampError {
    /// The text as it was given.
    pub text: String,
}

/// The wall clock in ms since the epoch, UTC (0 for a clock set before
/// 1970): what "now" means for stamps and "the future" in validation.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parses RFC 3339 (`2026-01-31T08:00:00Z`, `…+02:00`, fractional seconds), or an
/// ISO 8601 date-time without offset (`2026-01-31T08:00:00`, `2026-01-31 08:00:00`,
/// taken as UTC as the data contract says), or a plain date (`2026-01-31`, midnight UTC).
pub fn parse_timestamp(text: &str) -> Result<i64, TimestampError> {
    let trimmed = text.trim();
    if let Some(ms) = parse_common(trimmed) {
        return Ok(ms);
    }
    parse_with_chrono(text, trimmed)
}

/// The general parser; [`parse_common`] agrees with it where it answers.
fn parse_with_chrono(text: &str, trimmed: &str) -> Result<i64, TimestampError> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(dt.with_timezone(&Utc).timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(naive.and_utc().timestamp_millis());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(TimestampError {
        text: text.to_owned(),
    })
}

/// The usual shapes (`2026-01-31`, `2026-01-31T08:00:00`, with `T`, `t` or
/// a space, up to nine fraction digits, and `Z`, `z` or `±hh:mm`) read
/// without chrono, which took a quarter of an import's parsing of 10M rows.
/// `None` for anything else, which goes to chrono: leap seconds, years
/// before 1000, longer fractions, other separators, out-of-range fields.
fn parse_common(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        b.get(from..to)?.iter().try_fold(0i64, |value, &c| {
            c.is_ascii_digit().then(|| value * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    if year < 1000 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * DAY_MS;
    if b.len() == 10 {
        return Some(date_ms);
    }
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 {
            return None;
        }
        // Truncated to milliseconds, as chrono's `timestamp_millis` does.
        millis = (0..3).fold(0, |value, k| {
            value * 10
                + if k < digits {
                    i64::from(b[at + 1 + k] - b'0')
                } else {
                    0
                }
        });
        at += 1 + digits;
    }
    let offset_minutes = match &b[at..] {
        // Without an offset, the contract's UTC (chrono's naive forms, with
        // `T` or a space; a space before an offset is left to chrono).
        [] if b[10] != b't' => 0,
        [b'Z' | b'z'] if b[10] != b' ' => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] if b[10] != b' ' => {
            let (hours, minutes) = (number(at + 1, at + 3)?, number(at + 4, at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    Some(date_ms + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Formats as RFC 3339 in UTC with a `Z`, with milliseconds only when they are not zero.
pub fn format_timestamp(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(dt) if ms % 1000 == 0 => dt.to_rfc3339_opts(SecondsFormat::Secs, true),
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("<out-of-range timestamp {ms} ms>"),
    }
}

/// Parses a duration such as `30d`, `14d`, `12h`, `90m` or `45s` into milliseconds.
/// Used by every `--horizon` / `--every` flag so they all accept the same forms.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} has no unit (use d, h, m or s, e.g. 30d)"))?;
    let (number, unit) = trimmed.split_at(split);
    let value: i64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a whole number"))?;
    let unit_ms = match unit {
        "d" => DAY_MS,
        "h" => HOUR_MS,
        "m" => 60_000,
        "s" => 1_000,
        _ => {
            return Err(format!(
                "duration {text:?} has unknown unit {unit:?} (use d, h, m or s)"
            ));
        }
    };
    if value <= 0 {
        return Err(format!("duration {text:?} must be positive"));
    }
    value
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_of_the_contract() {
        // 2026-01-31T08:00:00Z = 1769846400000 ms (date -d @1769846400 -u).
        let expected = 1_769_846_400_000;
        assert_eq!(parse_timestamp("2026-01-31T08:00:00Z"), Ok(expected));
        assert_eq!(parse_timestamp("2026-01-31T10:00:00+02:00"), Ok(expected));
        assert_eq!(parse_timestamp("2026-01-31T08:00:00"), Ok(expected));
        assert_eq!(parse_timestamp("2026-01-31 08:00:00"), Ok(expected));
        assert_eq!(
            parse_timestamp("2026-01-31T08:00:00.250Z"),
            Ok(expected + 250)
        );
        assert_eq!(parse_timestamp("2026-01-31"), Ok(expected - 8 * HOUR_MS));
    }

    #[test]
    fn the_fast_path_answers_the_usual_shapes() {
        for text in [
            "2026-01-31T08:00:00Z",
            "2026-01-31T10:00:00+02:00",
            "2026-01-31t08:00:00.123456789z",
            "2026-01-31 08:00:00",
            "2026-01-31",
            "1969-12-31T23:59:59.999-00:30",
            "2000-02-29T00:00:00Z",
        ] {
            assert_eq!(
                parse_common(text).map(Ok),
                Some(parse_with_chrono(text, text)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30T00:00:00Z",
            "1769846400",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * DAY_MS));
        assert_eq!(parse_duration("12h"), Ok(12 * HOUR_MS));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("d").is_err());
    }

    /// Texts near the usual shapes: every field drawn from valid and invalid
    /// values, separators and offsets of every kind.
    fn near_timestamps() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(1970i64), 0i64..10_000],
            0i64..14,
            0i64..33,
            prop_oneof![Just("T"), Just("t"), Just(" "), Just("x"), Just("")],
            (0i64..26, 0i64..61, 0i64..62),
            prop_oneof![Just(String::new()), "\\.[0-9]{0,11}"],
            prop_oneof![
                Just(String::new()),
                Just("Z".to_owned()),
                Just("z".to_owned()),
                "[+-][0-2][0-9]:[0-6][0-9]",
                "[+-][0-9]{4}",
            ],
            any::<bool>(),
        )
            .prop_map(|(y, mo, d, sep, (h, mi, s), frac, offset, date_only)| {
                if date_only {
                    format!("{y:04}-{mo:02}-{d:02}")
                } else {
                    format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{offset}")
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn the_fast_path_agrees_with_chrono(text in near_timestamps()) {
            let slow = parse_with_chrono(&text, &text);
            // Declining (None) is always allowed: chrono then decides.
            if let Some(fast) = parse_common(&text) {
                prop_assert_eq!(Ok(fast), slow, "{}", text);
            }
        }

        #[test]
        fn format_then_parse_is_identity(ms in -2_000_000_000_000i64..5_000_000_000_000i64) {
            prop_assert_eq!(parse_timestamp(&format_timestamp(ms)), Ok(ms));
        }
    }
}
