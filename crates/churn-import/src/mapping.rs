//! The mapping file: which source tables become which contract tables, and
//! how each contract field is made from a source row. Parsed once and checked
//! against the sources' columns before a row is read ([`crate::import`]), so
//! a mistake is one error naming the mapping key, its line and the column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::ImportError;

/// A whole mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Source tables by name.
    pub sources: BTreeMap<String, SourceSpec>,
    /// What the output's `contract.toml` says (label, custom activity types).
    #[serde(default)]
    pub contract: churn_data::Contract,
    /// How learners are made.
    pub learners: LearnersMapping,
    /// How courses are made (none: an empty courses table).
    pub courses: Option<CoursesMapping>,
    /// How events are made: one or more source tables.
    pub events: Vec<EventsMapping>,
    /// How course deadlines are made (none: no deadlines table).
    pub deadlines: Option<DeadlinesMapping>,
    /// The mapping file, its text (for line numbers) and directory (for paths).
    #[serde(skip)]
    pub(crate) path: PathBuf,
    #[serde(skip)]
    pub(crate) text: String,
    #[serde(skip)]
    pub(crate) dir: PathBuf,
}

/// Where a source table is: files, or a PostgreSQL query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A file or a glob, relative to the mapping file. `.gz`, `.zst` and
    /// `.xz` files are decompressed.
    pub path: Option<String>,
    /// `csv`, `tsv`, `jsonl` or `parquet`; default: from the extension.
    pub format: Option<String>,
    /// A PostgreSQL query, streamed with `COPY (query) TO STDOUT`.
    pub query: Option<String>,
    /// The connection string (`postgresql://user@host:port/db`).
    pub url: Option<String>,
    /// The environment variable holding the connection string instead
    /// (default `DATABASE_URL`).
    pub url_env: Option<String>,
    /// Another source's columns added to each row, matched by a key column
    /// both have (OULAD's submissions get their assessment's module and
    /// presentation).
    pub join: Option<SourceJoin>,
}

/// `sources.X.join`: a left join on one key column. The first row of a key
/// counts; a row whose key is not there gets the added columns empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceJoin {
    /// The source whose columns are added.
    pub source: String,
    /// The key column, in both sources.
    pub key: String,
    /// The columns to add (default: all of them but the key). A column the
    /// row already has keeps the row's value.
    pub columns: Option<Vec<String>>,
}

/// A contract field made from a source row: exactly one of `column`, `value`
/// or `join`, then optionally a `map` (or a `lookup` in another source), and
/// for times a `format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The source column.
    pub column: Option<Spanned<String>>,
    /// A constant.
    pub value: Option<String>,
    /// Several columns joined (ids such as OULAD's module + presentation + student).
    pub join: Option<Vec<Spanned<String>>>,
    /// The text between joined columns (default `-`).
    pub separator: Option<String>,
    /// Source value → contract value.
    pub map: Option<BTreeMap<String, String>>,
    /// Source value → contract value, read from another source's two columns
    /// (OULAD's `vle.csv`: site id → activity type).
    pub lookup: Option<Lookup>,
    /// A value that neither `map` nor `lookup` holds: `keep` it (default),
    /// `reject` the row, or a replacement value.
    pub other: Option<String>,
    /// Times: `rfc3339` (default), `epoch_s`, `epoch_ms`, `days` (a day
    /// number after `start`) or a strftime pattern (`%d/%m/%Y %H:%M`; read
    /// as UTC unless it has `%z`).
    pub format: Option<String>,
    /// For `days`: the date day 0 is (a field itself, e.g. a map of
    /// presentation codes to start dates).
    pub start: Option<Box<Field>>,
    /// Numbers: multiply by this (a score out of 100 → `scale = 0.01`).
    pub scale: Option<f64>,
}

/// Values looked up in another source: its `key` column (or columns, joined
/// by `separator`, default `-`) → its `value` column. The first row of a key
/// counts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    pub source: String,
    pub key: KeyColumns,
    pub separator: Option<String>,
    pub value: Spanned<String>,
}

/// One key column or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyColumns {
    One(String),
    Many(Vec<String>),
}

impl Lookup {
    /// The key columns.
    pub(crate) fn keys(&self) -> Vec<&str> {
        match &self.key {
            KeyColumns::One(c) => vec![c.as_str()],
            KeyColumns::Many(cs) => cs.iter().map(String::as_str).collect(),
        }
    }

    /// The separator between joined key columns.
    pub(crate) fn separator(&self) -> &str {
        self.separator.as_deref().unwrap_or("-")
    }

    /// What identifies the table this lookup reads.
    pub(crate) fn id(&self) -> (String, String, String) {
        let keys = self.keys();
        (
            self.source.clone(),
            format!("{}|{}", keys.join(","), self.separator()),
            self.value.get_ref().clone(),
        )
    }
}

/// Rows of a source kept: a column equal to (or among) values, or not empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub column: Spanned<String>,
    pub equals: Option<String>,
    #[serde(rename = "in")]
    pub among: Option<Vec<String>>,
    pub not_empty: Option<bool>,
}

/// `[learners]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnersMapping {
    /// The source table; absent with `from_events`.
    pub source: Option<String>,
    /// No learners table: one learner per learner id of the events, signed up
    /// at their first event; `plan` and `acquisition_channel` must be `value`s.
    #[serde(default)]
    pub from_events: bool,
    pub learner_id: Option<Field>,
    pub signup_at: Option<Field>,
    pub plan: Field,
    pub acquisition_channel: Field,
    pub device: Option<Field>,
    /// Learner attributes by name: exactly the ones `[contract.learners]`
    /// declares (numeric ones must read as numbers; empty is missing).
    #[serde(default)]
    pub attributes: BTreeMap<String, Field>,
    #[serde(default)]
    pub filter: Vec<Filter>,
}

/// `[courses]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoursesMapping {
    pub source: Option<String>,
    /// One course per course id of the events; `level` and `lessons` must be `value`s.
    #[serde(default)]
    pub from_events: bool,
    pub course_id: Option<Field>,
    pub level: Field,
    pub lessons: Field,
    /// When the course ends (a time field): learners whose courses have all
    /// ended are finished, not churned.
    pub ends_at: Option<Field>,
    /// When the course starts (a time field).
    pub starts_at: Option<Field>,
    #[serde(default)]
    pub filter: Vec<Filter>,
}

/// `[deadlines]`: something due in a course by a time, met by an event of a
/// known type (OULAD's assessments, met by a submission).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinesMapping {
    pub source: String,
    pub course_id: Field,
    pub due_at: Field,
    pub event_type: Field,
    #[serde(default)]
    pub filter: Vec<Filter>,
}

/// One `[[events]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsMapping {
    pub source: String,
    pub learner_id: Field,
    pub ts: Field,
    /// The event type (known or custom); exactly one of this and `counts`.
    pub event_type: Option<Field>,
    /// Wide → long: source column → event type; one event per non-empty,
    /// non-zero cell, its value the `count`.
    pub counts: Option<BTreeMap<String, String>>,
    pub count: Option<Field>,
    pub course_id: Option<Field>,
    pub duration_s: Option<Field>,
    pub score: Option<Field>,
    pub amount: Option<Field>,
    pub latency_ms: Option<Field>,
    pub stalls: Option<Field>,
    #[serde(default)]
    pub filter: Vec<Filter>,
}

impl Mapping {
    /// Reads a mapping file; paths in it are relative to its directory.
    pub fn read(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ImportError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut mapping: Mapping = toml::from_str(&text).map_err(|e| ImportError::Mapping {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        mapping.text = text;
        mapping.path = path.to_owned();
        mapping.dir = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        mapping.check().map_err(|message| ImportError::Mapping {
            file: path.to_owned(),
            message,
        })?;
        Ok(mapping)
    }

    /// The 1-based line of a byte offset of the mapping text.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    /// Checks what can be checked without the sources.
    fn check(&self) -> Result<(), String> {
        let source = |key: &str, name: &str| {
            if self.sources.contains_key(name) {
                Ok(())
            } else {
                Err(format!(
                    "{key}: no source named {name:?} (sources: {})",
                    self.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
        };
        for (name, spec) in &self.sources {
            match (&spec.path, &spec.query) {
                (Some(_), None) => {}
                (None, Some(_)) => {
                    if spec.format.is_some() {
                        return Err(format!("sources.{name}: a query has no format"));
                    }
                }
                _ => {
                    return Err(format!(
                        "sources.{name}: give exactly one of path and query"
                    ));
                }
            }
            if let Some(join) = &spec.join {
                source(&format!("sources.{name}.join.source"), &join.source)?;
                let joined = &self.sources[&join.source];
                if join.source == *name || joined.join.is_some() {
                    return Err(format!(
                        "sources.{name}.join: the joined source {:?} must be another source without a join of its own",
                        join.source
                    ));
                }
            }
        }
        let l = &self.learners;
        match (&l.source, l.from_events) {
            (Some(s), false) => {
                source("learners.source", s)?;
                for (key, field) in [("learner_id", &l.learner_id), ("signup_at", &l.signup_at)] {
                    if field.is_none() {
                        return Err(format!("learners.{key} is required with learners.source"));
                    }
                }
            }
            (None, true) => {
                for (key, field) in [
                    ("plan", &l.plan),
                    ("acquisition_channel", &l.acquisition_channel),
                ] {
                    if field.value.is_none() {
                        return Err(format!(
                            "learners.{key} must be a value with learners.from_events (there is no learner row to read it from)"
                        ));
                    }
                }
            }
            _ => return Err("learners: give exactly one of source and from_events = true".into()),
        }
        let declared = &self.contract.learners;
        for name in declared.numeric.iter().chain(&declared.categorical) {
            match l.attributes.get(name) {
                None => {
                    return Err(format!(
                        "contract.learners declares the attribute {name:?}: give learners.attributes.{name}"
                    ));
                }
                Some(f) if l.from_events && f.value.is_none() => {
                    return Err(format!(
                        "learners.attributes.{name} must be a value with learners.from_events"
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(name) = l
            .attributes
            .keys()
            .find(|name| !declared.numeric.contains(name) && !declared.categorical.contains(name))
        {
            return Err(format!(
                "learners.attributes.{name} is not declared: list it in contract.learners.numeric or contract.learners.categorical"
            ));
        }
        if let Some(c) = &self.courses {
            match (&c.source, c.from_events) {
                (Some(s), false) => {
                    source("courses.source", s)?;
                    if c.course_id.is_none() {
                        return Err("courses.course_id is required with courses.source".into());
                    }
                }
                (None, true) => {
                    if c.level.value.is_none() || c.lessons.value.is_none() {
                        return Err("courses.level and courses.lessons must be values with courses.from_events".into());
                    }
                }
                _ => {
                    return Err("courses: give exactly one of source and from_events = true".into());
                }
            }
        }
        if let Some(d) = &self.deadlines {
            source("deadlines.source", &d.source)?;
        }
        if self.events.is_empty() {
            return Err("at least one [[events]] table is needed".into());
        }
        for (i, e) in self.events.iter().enumerate() {
            source(&format!("events[{i}].source"), &e.source)?;
            match (&e.event_type, &e.counts) {
                (Some(_), None) => {}
                (None, Some(counts)) => {
                    if e.count.is_some() {
                        return Err(format!(
                            "events[{i}]: counts gives each event its count; drop count"
                        ));
                    }
                    for (column, event_type) in counts {
                        let _known_or_custom = churn_core::parse_event_type(event_type)
                            .map_err(|err| format!("events[{i}].counts.{column}: {err}"))?;
                    }
                }
                _ => {
                    return Err(format!(
                        "events[{i}]: give exactly one of event_type and counts"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl LearnersMapping {
    /// Every field of the section (for the columns it reads and its lookups).
    pub(crate) fn fields(&self) -> Vec<&Field> {
        [
            self.learner_id.as_ref(),
            self.signup_at.as_ref(),
            Some(&self.plan),
            Some(&self.acquisition_channel),
            self.device.as_ref(),
        ]
        .into_iter()
        .flatten()
        .chain(self.attributes.values())
        .collect()
    }
}

impl CoursesMapping {
    /// Every field of the section.
    pub(crate) fn fields(&self) -> Vec<&Field> {
        [
            self.course_id.as_ref(),
            Some(&self.level),
            Some(&self.lessons),
            self.ends_at.as_ref(),
            self.starts_at.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl EventsMapping {
    /// Every field of the section.
    pub(crate) fn fields(&self) -> Vec<&Field> {
        [
            Some(&self.learner_id),
            Some(&self.ts),
            self.event_type.as_ref(),
            self.count.as_ref(),
            self.course_id.as_ref(),
            self.duration_s.as_ref(),
            self.score.as_ref(),
            self.amount.as_ref(),
            self.latency_ms.as_ref(),
            self.stalls.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl DeadlinesMapping {
    /// Every field of the section.
    pub(crate) fn fields(&self) -> Vec<&Field> {
        vec![&self.course_id, &self.due_at, &self.event_type]
    }
}

impl Field {
    /// The source columns the field reads (with its start date's).
    pub(crate) fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = self.column.iter().map(|c| c.get_ref().clone()).collect();
        out.extend(self.join.iter().flatten().map(|c| c.get_ref().clone()));
        if let Some(start) = &self.start {
            out.extend(start.columns());
        }
        out
    }

    /// Whether exactly one of `column`, `value`, `join` is given.
    pub(crate) fn check(&self, key: &str) -> Result<(), String> {
        let given = [
            self.column.is_some(),
            self.value.is_some(),
            self.join.is_some(),
        ]
        .into_iter()
        .filter(|&g| g)
        .count();
        if given != 1 {
            return Err(format!("{key}: give exactly one of column, value and join"));
        }
        if let Some(other) = &self.other
            && self.map.is_none()
            && self.lookup.is_none()
        {
            return Err(format!("{key}: other = {other:?} without a map or lookup"));
        }
        if self.format.as_deref() == Some("days") && self.start.is_none() {
            return Err(format!("{key}: format = \"days\" needs a start"));
        }
        Ok(())
    }
}
