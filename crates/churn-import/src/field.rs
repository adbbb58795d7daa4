//! A mapping [`Field`] compiled against one file's header: column positions
//! resolved, maps and lookups ready, the time format parsed.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use churn_core::{DAY_MS, parse_timestamp};

use crate::mapping::{Field, Mapping};
use crate::source::{Header, Row};

/// Lookup tables by (source, key column, value column).
/// Lookup tables by (source, key, value column): key → value, `None` where
/// the key's row has an empty value (a known key with a missing value).
pub(crate) type Lookups = HashMap<(String, String, String), HashMap<String, Option<String>>>;

enum Input {
    Column(usize),
    Value(String),
    Join(Vec<usize>, String),
}

enum Other {
    Keep,
    Reject,
    Replace(String),
}

enum TimeFormat {
    Rfc3339,
    EpochS,
    EpochMs,
    Days(Box<Compiled>),
    Pattern {
        pattern: String,
        zoned: bool,
        date_only: bool,
    },
}

/// A field ready to read rows of one file.
pub(crate) struct Compiled {
    input: Input,
    map: Option<BTreeMap<String, String>>,
    lookup: Option<HashMap<String, Option<String>>>,
    other: Other,
    time: TimeFormat,
    scale: f64,
}

/// Why a field could not be compiled: the key, its line, the column.
pub(crate) fn column_error(
    mapping: &Mapping,
    key: &str,
    column: &toml::Spanned<String>,
    header: &Header,
    file: &std::path::Path,
) -> String {
    format!(
        "{key} (line {}): column {:?} is not in {} (columns: {})",
        mapping.line_of(column.span().start),
        column.get_ref(),
        file.display(),
        header.names.join(", ")
    )
}

impl Compiled {
    pub(crate) fn new(
        field: &Field,
        key: &str,
        mapping: &Mapping,
        header: &Header,
        file: &std::path::Path,
        lookups: &Lookups,
    ) -> Result<Self, String> {
        field.check(key)?;
        let position = |column: &toml::Spanned<String>| {
            header
                .position(column.get_ref())
                .ok_or_else(|| column_error(mapping, key, column, header, file))
        };
        let input = match (&field.column, &field.value, &field.join) {
            (Some(c), _, _) => Input::Column(position(c)?),
            (_, Some(v), _) => Input::Value(v.clone()),
            (_, _, Some(columns)) => Input::Join(
                columns.iter().map(position).collect::<Result<_, _>>()?,
                field.separator.clone().unwrap_or_else(|| "-".into()),
            ),
            _ => return Err(format!("{key}: give exactly one of column, value and join")),
        };
        let lookup = match &field.lookup {
            None => None,
            Some(l) => Some(
                lookups
                    .get(&l.id())
                    .cloned()
                    .ok_or_else(|| format!("{key}.lookup: source {:?} was not read", l.source))?,
            ),
        };
        let other = match field.other.as_deref() {
            None | Some("keep") => Other::Keep,
            Some("reject") => Other::Reject,
            Some(v) => Other::Replace(v.to_owned()),
        };
        let time = match field.format.as_deref() {
            None | Some("rfc3339") => TimeFormat::Rfc3339,
            Some("epoch_s") => TimeFormat::EpochS,
            Some("epoch_ms") => TimeFormat::EpochMs,
            Some("days") => {
                let start = field
                    .start
                    .as_deref()
                    .ok_or_else(|| format!("{key}: format = \"days\" needs a start"))?;
                TimeFormat::Days(Box::new(Compiled::new(
                    start,
                    &format!("{key}.start"),
                    mapping,
                    header,
                    file,
                    lookups,
                )?))
            }
            Some(p) if p.contains('%') => TimeFormat::Pattern {
                pattern: p.to_owned(),
                zoned: p.contains("%z") || p.contains("%:z"),
                date_only: !["%H", "%M", "%S", "%T", "%R", "%s"]
                    .iter()
                    .any(|t| p.contains(t)),
            },
            Some(other) => {
                return Err(format!(
                    "{key}: format {other:?} is not rfc3339, epoch_s, epoch_ms, days or a strftime pattern"
                ));
            }
        };
        let scale = field.scale.unwrap_or(1.0);
        if !scale.is_finite() || scale <= 0.0 {
            return Err(format!("{key}.scale must be a positive number"));
        }
        Ok(Compiled {
            input,
            map: field.map.clone(),
            lookup,
            other,
            time,
            scale,
        })
    }

    /// The field's text for `row`: `Ok(None)` when absent, `Err(reason)` when
    /// a map says to reject it.
    pub(crate) fn text<'r>(&'r self, row: &'r dyn Row) -> Result<Option<Cow<'r, str>>, String> {
        let raw: Option<Cow<'r, str>> = match &self.input {
            Input::Column(i) => row.get(*i).map(|s| Cow::Borrowed(s.trim())),
            Input::Value(v) => Some(Cow::Borrowed(v.as_str())),
            Input::Join(columns, separator) => {
                let parts: Option<Vec<&str>> = columns.iter().map(|&i| row.get(i)).collect();
                parts.map(|p| Cow::Owned(p.join(separator)))
            }
        };
        let Some(raw) = raw else {
            return Ok(None);
        };
        if self.map.is_none() && self.lookup.is_none() {
            return Ok(Some(raw));
        }
        let looked_up = self.lookup.as_ref().and_then(|l| l.get(raw.as_ref()));
        if let Some(None) = looked_up {
            // The key is in the lookup table with an empty value: missing.
            return Ok(None);
        }
        let mapped = self
            .map
            .as_ref()
            .and_then(|m| m.get(raw.as_ref()))
            .or_else(|| looked_up.and_then(Option::as_ref));
        match (mapped, &self.other) {
            (Some(v), _) => Ok(Some(Cow::Borrowed(v.as_str()))),
            (None, Other::Keep) => Ok(Some(raw)),
            (None, Other::Replace(v)) => Ok(Some(Cow::Borrowed(v.as_str()))),
            (None, Other::Reject) => Err(format!("{raw:?} is not in the map")),
        }
    }

    /// The field's text, which must be there: the error names the field.
    pub(crate) fn required_text<'r>(
        &'r self,
        row: &'r dyn Row,
        name: &'static str,
    ) -> Result<Cow<'r, str>, (&'static str, String)> {
        required(self.text(row), name)
    }

    /// The field as a number, which must be there.
    pub(crate) fn required_number(
        &self,
        row: &dyn Row,
        name: &'static str,
    ) -> Result<f64, (&'static str, String)> {
        required(self.number(row), name)
    }

    /// The field as a time, which must be there.
    pub(crate) fn required_time(
        &self,
        row: &dyn Row,
        name: &'static str,
    ) -> Result<i64, (&'static str, String)> {
        required(self.time(row), name)
    }

    /// The field as a number.
    pub(crate) fn number(&self, row: &dyn Row) -> Result<Option<f64>, String> {
        match self.text(row)? {
            None => Ok(None),
            Some(t) => t
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|v| Some(v * self.scale))
                .ok_or_else(|| format!("{t:?} is not a number")),
        }
    }

    /// The field as a time (ms since epoch UTC).
    pub(crate) fn time(&self, row: &dyn Row) -> Result<Option<i64>, String> {
        let Some(text) = self.text(row)? else {
            return Ok(None);
        };
        let text = text.as_ref();
        let number = || {
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{text:?} is not a number"))
        };
        let ms = match &self.time {
            TimeFormat::Rfc3339 => parse_timestamp(text).map_err(|e| e.to_string())?,
            TimeFormat::EpochS => (number()? * 1000.0).round() as i64,
            TimeFormat::EpochMs => number()?.round() as i64,
            TimeFormat::Days(start) => {
                let Some(origin) = start.time(row)? else {
                    return Err("the start date is empty".into());
                };
                origin + (number()? * DAY_MS as f64).round() as i64
            }
            TimeFormat::Pattern {
                pattern,
                zoned,
                date_only,
            } => {
                let bad =
                    |e: chrono::ParseError| format!("{text:?} does not match {pattern:?}: {e}");
                if *zoned {
                    DateTime::parse_from_str(text, pattern)
                        .map_err(bad)?
                        .timestamp_millis()
                } else if *date_only {
                    NaiveDate::parse_from_str(text, pattern)
                        .map_err(bad)?
                        .and_hms_opt(0, 0, 0)
                        .map(|t| t.and_utc().timestamp_millis())
                        .ok_or_else(|| format!("{text:?}: no midnight"))?
                } else {
                    NaiveDateTime::parse_from_str(text, pattern)
                        .map_err(bad)?
                        .and_utc()
                        .timestamp_millis()
                }
            }
        };
        Ok(Some(ms))
    }
}

/// A field's value that must be there: a reject (the field and why) when it
/// is empty or unreadable.
fn required<T>(
    value: Result<Option<T>, String>,
    name: &'static str,
) -> Result<T, (&'static str, String)> {
    value
        .map_err(|r| (name, r))?
        .ok_or_else(|| (name, format!("{name} is empty")))
}
