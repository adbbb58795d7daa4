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

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in -2_000_000_000_000i64..5_000_000_000_000i64) {
            prop_assert_eq!(parse_timestamp(&format_timestamp(ms)), Ok(ms));
        }
    }
}
