//! `churn import`: a platform's own tables mapped to a contract data
//! directory by a declarative TOML file (DESIGN.md "Bring your own data").
//!
//! The mapping ([`Mapping`]) names the source tables (CSV/TSV, JSON lines,
//! Parquet; `.gz`/`.zst`/`.xz`; globs) and says how each contract field is made from
//! a source row: a column, a constant, several columns joined, a value map or
//! a lookup in another source, a time format (RFC 3339, strftime, epoch s/ms,
//! a day number after a start date), wide count columns made long, learners
//! or courses derived from the events, filters.
//!
//! Nothing is lost: for every source, `read = imported + filtered + rejected`,
//! each rejected row is written with its file, row, field, reason and values,
//! and `import.json` holds the counts. The output is read by
//! `churn_data::load_dir` like any data directory; the contract's own row
//! rules (unknown learners, negative amounts, ...) apply there.

mod batches;
mod field;
mod first_seen;
mod mapping;
mod source;
mod write;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use churn_core::parse_event_type;
use polars::prelude::*;
use serde::Serialize;

pub use mapping::{
    CoursesMapping, EventsMapping, Field, Filter, KeyColumns, LearnersMapping, Lookup, Mapping,
    SourceSpec,
};

use batches::for_each_row;
use field::{Compiled, Lookups};
use source::{Header, Row, RowAt, SourceFiles};

/// What can stop an import (bad rows never do: they are rejects).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The mapping is wrong: the message names the key, its line, the column.
    #[error("{file}: {message}")]
    Mapping { file: PathBuf, message: String },
    /// A source cannot be found or read as its format.
    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// One rejected source row.
#[derive(Debug, Clone, Serialize)]
pub struct Reject {
    pub file: PathBuf,
    /// 1-based data row (line for JSON lines) within the file.
    pub row: usize,
    /// The contract field at fault.
    pub field: String,
    pub reason: String,
    /// The row as read.
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// The account of one use of a source (a source mapped twice is counted twice).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    /// The mapping section that read it (`learners`, `events[0]`, ...).
    pub section: String,
    pub source: String,
    pub files: Vec<PathBuf>,
    pub read: usize,
    pub imported: usize,
    /// Rows a filter left out.
    pub filtered: usize,
    pub rejected: usize,
    /// Rows written to the contract table (wide rows make several events).
    pub rows_written: usize,
    #[serde(skip)]
    pub rejects: Vec<Reject>,
}

impl SourceReport {
    /// `read = imported + filtered + rejected`.
    pub fn reconciles(&self) -> bool {
        self.read == self.imported + self.filtered + self.rejected
    }
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub sections: Vec<SourceReport>,
    /// Rows written per contract table.
    pub tables: BTreeMap<String, usize>,
    /// The custom event types written, with their rows.
    pub custom_event_types: BTreeMap<String, usize>,
}

impl ImportReport {
    /// Every rejected row.
    pub fn total_rejected(&self) -> usize {
        self.sections.iter().map(|s| s.rejected).sum()
    }

    /// Whether every section reconciles (read = imported + filtered + rejected).
    pub fn reconciles(&self) -> bool {
        self.sections.iter().all(SourceReport::reconciles)
    }
}

impl std::fmt::Display for ImportReport {
    /// A line per section, then the custom event types with their rows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.sections {
            writeln!(
                f,
                "{:<10} {:<12} {} file(s): {} read = {} imported + {} filtered + {} rejected; {} rows written",
                s.section,
                s.source,
                s.files.len(),
                s.read,
                s.imported,
                s.filtered,
                s.rejected,
                s.rows_written
            )?;
        }
        if !self.custom_event_types.is_empty() {
            let listed: Vec<String> = self
                .custom_event_types
                .iter()
                .map(|(name, rows)| format!("{name} ({rows})"))
                .collect();
            writeln!(f, "custom event types: {}", listed.join(", "))?;
        }
        Ok(())
    }
}

/// Distinct texts numbered in order of first use: learner ids and event
/// types repeat millions of times, so a row keeps a number, not a copy.
///
/// The keys are `CompactString`s: a text of up to 24 bytes (any id of the
/// usual kind) lives inside the table's slot, so a lookup among hundreds of
/// thousands of learners compares without reaching into the heap (that
/// reach was a third of an import's time).
#[derive(Default)]
pub(crate) struct Interner {
    pub(crate) names: Vec<String>,
    index: HashMap<compact_str::CompactString, u32, foldhash::fast::RandomState>,
    /// The code returned last: exports are often grouped by learner, so the
    /// next row's id is usually the same and needs no lookup.
    last: Option<u32>,
}

impl Interner {
    /// The number of `text` and whether it is new.
    fn code(&mut self, text: &str) -> (u32, bool) {
        if let Some(last) = self.last
            && self.names[last as usize] == text
        {
            return (last, false);
        }
        if let Some(&code) = self.index.get(text) {
            self.last = Some(code);
            return (code, false);
        }
        let code = self.names.len() as u32;
        self.names.push(text.to_owned());
        self.index.insert(text.into(), code);
        self.last = Some(code);
        (code, true)
    }
}

/// The events table being built: each batch of source rows is written as a
/// Parquet row group as soon as it is merged, in the batches' order. Only
/// the columns read again afterwards are kept in memory.
pub(crate) struct EventRows {
    pub(crate) sink: write::EventSink,
    /// The columns the learners or courses are made from (when the mapping
    /// makes them from the events), a chunk per batch.
    kept: Option<DataFrame>,
    keep: Vec<&'static str>,
    /// Rows written per event type name.
    pub(crate) rows_of_type: BTreeMap<String, usize>,
    rows: usize,
}

impl EventRows {
    fn new(path: &Path, keep: Vec<&'static str>) -> Result<Self, ImportError> {
        Ok(EventRows {
            sink: write::EventSink::create(path)?,
            kept: None,
            keep,
            rows_of_type: BTreeMap::new(),
            rows: 0,
        })
    }

    fn append(&mut self, made: MadeEvents) -> Result<(), ImportError> {
        for (name, rows) in made.rows_of_type {
            *self.rows_of_type.entry(name).or_default() += rows;
        }
        self.rows += made.frame.height();
        self.sink.write(&made.frame)?;
        match (&mut self.kept, made.kept) {
            (_, None) => {}
            (None, Some(kept)) => self.kept = Some(kept),
            (Some(all), Some(kept)) => {
                all.vstack_mut_owned(kept).map_err(|e| ImportError::Io {
                    path: self.sink.path().to_owned(),
                    message: e.to_string(),
                })?;
            }
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// The kept columns of the events (`None` when there are no events).
    pub(crate) fn kept(&self) -> Option<&DataFrame> {
        self.kept.as_ref()
    }

    /// A kept column of the events as text.
    fn text_column(&self, name: &str) -> Result<Option<StringChunked>, String> {
        let Some(frame) = &self.kept else {
            return Ok(None);
        };
        let column = frame.column(name).map_err(|e| e.to_string())?;
        column.str().cloned().map(Some).map_err(|e| e.to_string())
    }
}

/// The measure columns of the events, in the contract's order.
const MEASURES: [&str; 5] = ["duration_s", "score", "amount", "latency_ms", "stalls"];

/// The events one batch of source rows makes, column by column.
struct EventBatch<'f> {
    learner_id: StringChunkedBuilder,
    ts: Vec<i64>,
    /// Codes into `types`.
    event_type: Vec<u32>,
    types: Interner,
    /// Per type code: why its name is no event type, if it is not.
    type_errors: Vec<Option<String>>,
    /// `None` when the section maps no course.
    course_id: Option<StringChunkedBuilder>,
    count: Vec<i64>,
    /// Per measure: `None` when the section does not map it.
    measures: [Option<Vec<Option<f64>>>; 5],
    /// The batch's counts and rejects (rows numbered within the batch).
    account: SourceReport,
    /// A wide row's (type, count) pairs and a row's type codes, kept from
    /// row to row so that a row allocates nothing.
    wide: Vec<(&'f str, i64)>,
    codes: Vec<u32>,
}

/// What a batch made: its events, the columns kept,
/// its account and its rows per event type.
struct MadeEvents {
    frame: DataFrame,
    kept: Option<DataFrame>,
    account: SourceReport,
    rows_of_type: Vec<(String, usize)>,
}

impl<'f> EventBatch<'f> {
    fn new(fields: &EventFields<'f>) -> Self {
        Self::with_columns(
            fields.course_id.is_some(),
            std::array::from_fn(|k| fields.measures[k].is_some()),
        )
    }

    /// A batch whose section maps a course or not, and which measures.
    fn with_columns(course_id: bool, measures: [bool; 5]) -> Self {
        EventBatch {
            learner_id: StringChunkedBuilder::new("learner_id".into(), 0),
            ts: Vec::new(),
            event_type: Vec::new(),
            types: Interner::default(),
            type_errors: Vec::new(),
            course_id: course_id.then(|| StringChunkedBuilder::new("course_id".into(), 0)),
            count: Vec::new(),
            measures: measures.map(|mapped| mapped.then(Vec::new)),
            account: SourceReport::default(),
            wide: Vec::new(),
            codes: Vec::new(),
        }
    }

    /// Maps one source row (counted, filtered, made into events or rejected).
    fn add(&mut self, fields: &EventFields<'f>, at: &RowAt<'_>, row: &dyn Row) {
        self.account.read += 1;
        if !filters_pass(&fields.filters, row) {
            self.account.filtered += 1;
            return;
        }
        let made = event_rows(fields, row, &mut self.wide).and_then(|(shared, kinds)| {
            // Each distinct type name is checked once, when first seen; a
            // row's events are all written or, at a bad type, none.
            self.codes.clear();
            let names: &mut dyn Iterator<Item = &str> = match &kinds {
                Kinds::One(name, _) => &mut std::iter::once(name.as_ref()),
                Kinds::Wide => &mut self.wide.iter().map(|(name, _)| *name),
            };
            for name in names {
                let (code, new) = self.types.code(name);
                if new {
                    self.type_errors
                        .push(parse_event_type(name).err().map(|e| e.to_string()));
                }
                // (Indexed, not `get`: `Row::get` is implemented for this Vec type.)
                if let Some(error) = &self.type_errors[code as usize] {
                    return Err(("event_type", error.clone()));
                }
                self.codes.push(code);
            }
            Ok((shared, kinds))
        });
        let (shared, kinds) = match made {
            Ok(made) => made,
            Err((field, reason)) => return reject(&mut self.account, at, row, field, reason),
        };
        self.account.imported += 1;
        self.account.rows_written += self.codes.len();
        let counts: &mut dyn Iterator<Item = i64> = match kinds {
            Kinds::One(_, count) => &mut std::iter::once(count),
            Kinds::Wide => &mut self.wide.iter().map(|(_, count)| *count),
        };
        for (&code, count) in self.codes.iter().zip(counts) {
            self.learner_id.append_value(shared.learner_id.as_ref());
            self.ts.push(shared.ts);
            self.event_type.push(code);
            self.count.push(count);
            if let Some(column) = &mut self.course_id {
                column.append_option(shared.course_id.as_deref());
            }
            for (column, value) in self.measures.iter_mut().zip(shared.measures) {
                if let Some(column) = column {
                    column.push(value);
                }
            }
        }
    }

    /// The batch's events encoded, with the columns `keep` kept.
    fn finish(mut self, keep: &[&'static str]) -> Result<MadeEvents, String> {
        let account = std::mem::take(&mut self.account);
        let (frame, rows_of_type) = self.into_frame()?;
        let kept = if keep.is_empty() {
            None
        } else {
            Some(
                frame
                    .select(keep.iter().copied())
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(MadeEvents {
            frame,
            kept,
            account,
            rows_of_type,
        })
    }

    fn into_frame(self) -> Result<(DataFrame, Vec<(String, usize)>), String> {
        let len = self.ts.len();
        let mut rows = vec![0usize; self.types.names.len()];
        for &code in &self.event_type {
            rows[code as usize] += 1;
        }
        let event_type: StringChunked = self
            .event_type
            .iter()
            .map(|&c| self.types.names.get(c as usize).map(String::as_str))
            .collect();
        let mut columns = vec![
            self.learner_id.finish().into_column(),
            write::time_column("ts", self.ts),
            event_type.with_name("event_type".into()).into_column(),
            match self.course_id {
                Some(c) => c.finish().into_column(),
                None => Column::full_null("course_id".into(), len, &DataType::String),
            },
            Column::new("count".into(), self.count),
        ];
        for (name, values) in MEASURES.into_iter().zip(self.measures) {
            columns.push(match values {
                Some(v) => Column::new(name.into(), v),
                None => Column::full_null(name.into(), len, &DataType::Float64),
            });
        }
        let frame = DataFrame::new(len, columns).map_err(|e| e.to_string())?;
        Ok((frame, self.types.names.into_iter().zip(rows).collect()))
    }
}

/// The events table of an import that made no event.
pub(crate) fn no_events() -> Result<DataFrame, String> {
    EventBatch::with_columns(false, [false; 5])
        .into_frame()
        .map(|(frame, _)| frame)
}

/// An events section compiled against one file's header.
struct EventFields<'f> {
    learner_id: Compiled,
    ts: Compiled,
    event_type: Option<Compiled>,
    counts: Vec<(usize, &'f str)>,
    count: Option<Compiled>,
    course_id: Option<Compiled>,
    measures: Vec<Option<Compiled>>,
    filters: Vec<(usize, &'f Filter)>,
}

/// What every event of a source row shares.
struct SharedFields<'r> {
    learner_id: Cow<'r, str>,
    ts: i64,
    course_id: Option<Cow<'r, str>>,
    measures: [Option<f64>; 5],
}

/// The events of a source row: one type and count, or (a wide row) the
/// non-zero count columns, listed in the caller's buffer.
enum Kinds<'r> {
    One(Cow<'r, str>, i64),
    Wide,
}

/// The events of one source row, or the field at fault and why.
fn event_rows<'r, 'f>(
    f: &'r EventFields<'f>,
    row: &'r dyn Row,
    wide: &mut Vec<(&'f str, i64)>,
) -> Result<(SharedFields<'r>, Kinds<'r>), (&'static str, String)> {
    let learner_id = f.learner_id.required_text(row, "learner_id")?;
    let ts = f.ts.required_time(row, "ts")?;
    let course_id = match &f.course_id {
        None => None,
        Some(c) => c.text(row).map_err(|r| ("course_id", r))?,
    };
    let mut measures = [None; 5];
    for (k, (m, name)) in f.measures.iter().zip(MEASURES).enumerate() {
        if let Some(m) = m {
            measures[k] = m.number(row).map_err(|r| (name, r))?;
        }
    }
    let shared = SharedFields {
        learner_id,
        ts,
        course_id,
        measures,
    };
    let whole = |v: f64| v >= 1.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX);
    if let Some(t) = &f.event_type {
        let event_type = t.required_text(row, "event_type")?;
        let count = match &f.count {
            None => 1.0,
            Some(c) => match c.number(row).map_err(|r| ("count", r))? {
                None => 1.0,
                Some(v) if whole(v) => v,
                Some(v) => {
                    return Err((
                        "count",
                        format!("count must be a whole number ≥ 1, got {v}"),
                    ));
                }
            },
        };
        return Ok((shared, Kinds::One(event_type, count as i64)));
    }
    wide.clear();
    for &(column, event_type) in &f.counts {
        let Some(text) = row.get(column) else {
            continue;
        };
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| ("count", format!("{text:?} is not a count")))?;
        if value == 0.0 {
            continue;
        }
        if !whole(value) {
            return Err((
                "count",
                format!("count must be a whole number ≥ 0, got {value}"),
            ));
        }
        wide.push((event_type, value as i64));
    }
    Ok((shared, Kinds::Wide))
}

/// The learners table being built.
#[derive(Default)]
pub(crate) struct LearnerRows {
    pub(crate) learner_id: Vec<String>,
    pub(crate) signup_at: Vec<i64>,
    pub(crate) plan: Vec<String>,
    pub(crate) channel: Vec<String>,
    pub(crate) device: Vec<Option<String>>,
    /// The contract's learner attributes, numeric ones first, one column each.
    pub(crate) attributes: Vec<(String, AttributeColumn)>,
}

/// One learner attribute column being built.
pub(crate) enum AttributeColumn {
    Numeric(Vec<Option<f64>>),
    Categorical(Vec<Option<String>>),
}

impl LearnerRows {
    fn new(declared: &churn_core::LearnerAttributes) -> Self {
        let numeric = declared
            .numeric
            .iter()
            .map(|n| (n.clone(), AttributeColumn::Numeric(Vec::new())));
        let categorical = declared
            .categorical
            .iter()
            .map(|n| (n.clone(), AttributeColumn::Categorical(Vec::new())));
        LearnerRows {
            attributes: numeric.chain(categorical).collect(),
            ..LearnerRows::default()
        }
    }
}

/// A learner attribute's value read from a row.
enum AttributeValue {
    Number(Option<f64>),
    Category(Option<String>),
}

impl AttributeColumn {
    fn push(&mut self, value: AttributeValue) {
        match (self, value) {
            (AttributeColumn::Numeric(v), AttributeValue::Number(x)) => v.push(x),
            (AttributeColumn::Categorical(v), AttributeValue::Category(x)) => v.push(x),
            // Values are read in the columns' own order and kinds.
            (AttributeColumn::Numeric(v), AttributeValue::Category(_)) => v.push(None),
            (AttributeColumn::Categorical(v), AttributeValue::Number(_)) => v.push(None),
        }
    }
}

/// The deadlines table being built.
#[derive(Default)]
pub(crate) struct DeadlineRows {
    pub(crate) course_id: Vec<String>,
    pub(crate) due_at: Vec<i64>,
    pub(crate) event_type: Vec<String>,
}

/// The courses table being built.
#[derive(Default)]
pub(crate) struct CourseRows {
    pub(crate) course_id: Vec<String>,
    pub(crate) level: Vec<String>,
    pub(crate) lessons: Vec<i64>,
    pub(crate) ends_at: Vec<Option<i64>>,
    pub(crate) starts_at: Vec<Option<i64>>,
}

fn filters_pass(filters: &[(usize, &Filter)], row: &dyn Row) -> bool {
    filters.iter().all(|(i, f)| {
        let value = row.get(*i).map(str::trim);
        f.equals.as_ref().is_none_or(|e| value == Some(e.as_str()))
            && f.among
                .as_ref()
                .is_none_or(|list| value.is_some_and(|v| list.iter().any(|x| x == v)))
            && (f.not_empty != Some(true) || value.is_some())
    })
}

fn compile_filters<'m>(
    filters: &'m [Filter],
    key: &str,
    mapping: &Mapping,
    header: &Header,
    file: &Path,
) -> Result<Vec<(usize, &'m Filter)>, ImportError> {
    filters
        .iter()
        .enumerate()
        .map(|(k, f)| {
            header
                .position(f.column.get_ref())
                .map(|i| (i, f))
                .ok_or_else(|| {
                    mapping_error(
                        mapping,
                        field::column_error(
                            mapping,
                            &format!("{key}.filter[{k}]"),
                            &f.column,
                            header,
                            file,
                        ),
                    )
                })
        })
        .collect()
}

fn mapping_error(mapping: &Mapping, message: String) -> ImportError {
    ImportError::Mapping {
        file: mapping.path.clone(),
        message,
    }
}

/// The columns a section reads: its fields', its filters' and wide counts'.
fn wanted(
    fields: Vec<&Field>,
    filters: &[Filter],
    counts: Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    let mut out: Vec<String> = fields.into_iter().flat_map(Field::columns).collect();
    out.extend(filters.iter().map(|f| f.column.get_ref().clone()));
    out.extend(counts.into_iter().flat_map(|c| c.keys().cloned()));
    out
}

/// Every field of the mapping with a lookup, for reading the lookups first.
fn lookups_needed(mapping: &Mapping) -> Vec<&Lookup> {
    fn walk<'a>(field: &'a Field, out: &mut Vec<&'a Lookup>) {
        if let Some(l) = &field.lookup {
            out.push(l);
        }
        if let Some(s) = &field.start {
            walk(s, out);
        }
    }
    let mut out = Vec::new();
    let sections = mapping
        .learners
        .fields()
        .into_iter()
        .chain(mapping.courses.iter().flat_map(|c| c.fields()))
        .chain(mapping.events.iter().flat_map(|e| e.fields()))
        .chain(mapping.deadlines.iter().flat_map(|d| d.fields()));
    for f in sections {
        walk(f, &mut out);
    }
    out
}

struct Importer<'m> {
    mapping: &'m Mapping,
    files: BTreeMap<String, SourceFiles>,
    lookups: Lookups,
}

impl<'m> Importer<'m> {
    fn new(mapping: &'m Mapping) -> Result<Self, ImportError> {
        let mut files = BTreeMap::new();
        for (name, spec) in &mapping.sources {
            let source = match (&spec.path, &spec.query) {
                (Some(path), _) => {
                    SourceFiles::find(name, &mapping.dir, path, spec.format.as_deref())?
                }
                (None, Some(query)) => {
                    SourceFiles::query(name, query, spec.url.as_deref(), spec.url_env.as_deref())?
                }
                (None, None) => {
                    return Err(mapping_error(
                        mapping,
                        format!("sources.{name}: give a path or a query"),
                    ));
                }
            };
            files.insert(name.clone(), source);
        }
        // Joins read their other source once, before any row is made.
        for (name, spec) in &mapping.sources {
            if let Some(join) = &spec.join {
                let other = files.get(&join.source).ok_or_else(|| ImportError::Source {
                    source_name: join.source.clone(),
                    message: "not among the mapping's sources".into(),
                })?;
                let joined = source::Joined::read(other, &join.key, join.columns.as_deref())?;
                if let Some(files) = files.get_mut(name) {
                    files.joined = Some(joined);
                }
            }
        }
        let mut importer = Importer {
            mapping,
            files,
            lookups: HashMap::new(),
        };
        for l in lookups_needed(mapping) {
            let key = l.id();
            if importer.lookups.contains_key(&key) {
                continue;
            }
            let table = importer.read_lookup(l)?;
            importer.lookups.insert(key, table);
        }
        Ok(importer)
    }

    fn source(&self, name: &str) -> Result<&SourceFiles, ImportError> {
        self.files.get(name).ok_or_else(|| ImportError::Source {
            source_name: name.to_owned(),
            message: "not among the mapping's sources".into(),
        })
    }

    fn read_lookup(&self, l: &Lookup) -> Result<HashMap<String, Option<String>>, ImportError> {
        let mut table = HashMap::new();
        let mapping = self.mapping;
        let mut wanted_columns: Vec<String> = l.keys().iter().map(|k| (*k).to_owned()).collect();
        wanted_columns.push(l.value.get_ref().clone());
        let separator = l.separator();
        for_each_row(
            self.source(&l.source)?,
            &wanted_columns,
            |file, header| {
                let at = |c: &toml::Spanned<String>| {
                    header.position(c.get_ref()).ok_or_else(|| {
                        mapping_error(
                            mapping,
                            field::column_error(mapping, "lookup", c, header, file),
                        )
                    })
                };
                let keys = l
                    .keys()
                    .into_iter()
                    .map(|k| {
                        header.position(k).ok_or_else(|| {
                            mapping_error(
                                mapping,
                                format!(
                                    "lookup in {} (line {}): key column {k:?} is not in {} (columns: {})",
                                    l.source,
                                    mapping.line_of(l.value.span().start),
                                    file.display(),
                                    header.names.join(", ")
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((keys, at(&l.value)?))
            },
            |(keys, v), _, row| {
                let parts: Option<Vec<&str>> =
                    keys.iter().map(|&k| row.get(k).map(str::trim)).collect();
                if let Some(parts) = parts {
                    let value = row
                        .get(*v)
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned);
                    table.entry(parts.join(separator)).or_insert(value);
                }
                Ok(())
            },
        )?;
        Ok(table)
    }

    fn compile(
        &self,
        field: &Field,
        key: &str,
        header: &Header,
        file: &Path,
    ) -> Result<Compiled, ImportError> {
        Compiled::new(field, key, self.mapping, header, file, &self.lookups)
            .map_err(|m| mapping_error(self.mapping, m))
    }

    fn events(
        &self,
        index: usize,
        batch_bytes: usize,
        out: &mut EventRows,
    ) -> Result<SourceReport, ImportError> {
        let e = &self.mapping.events[index];
        let section = format!("events[{index}]");
        let files = self.source(&e.source)?;
        let mut report = SourceReport {
            section: section.clone(),
            source: e.source.clone(),
            files: files.files.clone(),
            ..SourceReport::default()
        };
        let optional = |f: &Option<Field>, name: &str, header: &Header, file: &Path| {
            f.as_ref()
                .map(|f| self.compile(f, &format!("{section}.{name}"), header, file))
                .transpose()
        };
        let columns = wanted(e.fields(), &e.filter, e.counts.as_ref());
        let keep = out.keep.clone();
        batches::for_each_batch(
            files,
            &columns,
            batch_bytes,
            |file, header| {
                let counts = match &e.counts {
                    None => Vec::new(),
                    Some(c) => c
                        .iter()
                        .map(|(column, t)| {
                            header.position(column).map(|i| (i, t.as_str())).ok_or_else(|| {
                                mapping_error(
                                    self.mapping,
                                    format!(
                                        "{section}.counts: column {column:?} is not in {} (columns: {})",
                                        file.display(),
                                        header.names.join(", ")
                                    ),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                };
                Ok(EventFields {
                    learner_id: self.compile(
                        &e.learner_id,
                        &format!("{section}.learner_id"),
                        header,
                        file,
                    )?,
                    ts: self.compile(&e.ts, &format!("{section}.ts"), header, file)?,
                    event_type: optional(&e.event_type, "event_type", header, file)?,
                    counts,
                    count: optional(&e.count, "count", header, file)?,
                    course_id: optional(&e.course_id, "course_id", header, file)?,
                    measures: vec![
                        optional(&e.duration_s, "duration_s", header, file)?,
                        optional(&e.score, "score", header, file)?,
                        optional(&e.amount, "amount", header, file)?,
                        optional(&e.latency_ms, "latency_ms", header, file)?,
                        optional(&e.stalls, "stalls", header, file)?,
                    ],
                    filters: compile_filters(&e.filter, &section, self.mapping, header, file)?,
                })
            },
            |fields, batch| {
                let mut made = EventBatch::new(fields);
                let rows = batch.rows(0, |at, row| {
                    made.add(fields, at, row);
                    Ok(())
                })?;
                let made = made.finish(&keep).map_err(|message| {
                    batches::BatchError::Import(ImportError::Io {
                        path: batch.file.path.clone(),
                        message,
                    })
                })?;
                Ok((made, rows))
            },
            |mut made, placed| {
                let account = std::mem::take(&mut made.account);
                report.read += account.read;
                report.imported += account.imported;
                report.filtered += account.filtered;
                report.rejected += account.rejected;
                report.rows_written += account.rows_written;
                report
                    .rejects
                    .extend(account.rejects.into_iter().map(|mut r| {
                        r.row += placed.rows_before;
                        r
                    }));
                out.append(made)
            },
        )?;
        Ok(report)
    }

    fn learners(
        &self,
        events: &EventRows,
        out: &mut LearnerRows,
    ) -> Result<Option<SourceReport>, ImportError> {
        let l = &self.mapping.learners;
        let Some(source_name) = &l.source else {
            // One learner per id of the events, signed up at the first event.
            // Learner codes are numbered in order of first use, so the
            // learners come out in that order.
            let value = |f: &Field| f.value.clone().unwrap_or_default();
            let first = first_seen::learners(events).map_err(|message| ImportError::Io {
                path: self.mapping.path.clone(),
                message: format!("the learners of the events: {message}"),
            })?;
            for (name, signup_at) in first {
                out.learner_id.push(name);
                out.signup_at.push(signup_at);
                out.plan.push(value(&l.plan));
                out.channel.push(value(&l.acquisition_channel));
                out.device
                    .push(l.device.as_ref().and_then(|d| d.value.clone()));
                for (name, column) in &mut out.attributes {
                    let value = l.attributes.get(name).and_then(|f| f.value.clone());
                    column.push(match column {
                        AttributeColumn::Numeric(_) => {
                            AttributeValue::Number(value.and_then(|v| v.trim().parse().ok()))
                        }
                        AttributeColumn::Categorical(_) => AttributeValue::Category(value),
                    });
                }
            }
            return Ok(None);
        };
        let files = self.source(source_name)?;
        let mut report = SourceReport {
            section: "learners".into(),
            source: source_name.clone(),
            files: files.files.clone(),
            ..SourceReport::default()
        };
        let required = |f: &Option<Field>| f.clone().unwrap_or_else(|| l.plan.clone());
        let declared = &self.mapping.contract.learners;
        let attribute_fields: Vec<(&str, bool, &Field)> = declared
            .numeric
            .iter()
            .map(|n| (n, true))
            .chain(declared.categorical.iter().map(|n| (n, false)))
            .filter_map(|(name, numeric)| {
                l.attributes.get(name).map(|f| (name.as_str(), numeric, f))
            })
            .collect();
        let columns = wanted(l.fields(), &l.filter, None);
        for_each_row(
            files,
            &columns,
            |file, header| {
                Ok((
                    self.compile(
                        &required(&l.learner_id),
                        "learners.learner_id",
                        header,
                        file,
                    )?,
                    self.compile(&required(&l.signup_at), "learners.signup_at", header, file)?,
                    self.compile(&l.plan, "learners.plan", header, file)?,
                    self.compile(
                        &l.acquisition_channel,
                        "learners.acquisition_channel",
                        header,
                        file,
                    )?,
                    l.device
                        .as_ref()
                        .map(|d| self.compile(d, "learners.device", header, file))
                        .transpose()?,
                    compile_filters(&l.filter, "learners", self.mapping, header, file)?,
                    attribute_fields
                        .iter()
                        .map(|(name, numeric, f)| {
                            let key = format!("learners.attributes.{name}");
                            Ok((*numeric, self.compile(f, &key, header, file)?))
                        })
                        .collect::<Result<Vec<_>, ImportError>>()?,
                ))
            },
            |(id, signup, plan, channel, device, filters, attributes), at, row| {
                report.read += 1;
                if !filters_pass(filters, row) {
                    report.filtered += 1;
                    return Ok(());
                }
                let made = (|| {
                    let learner_id = id.required_text(row, "learner_id")?.into_owned();
                    let signup_at = signup.required_time(row, "signup_at")?;
                    let plan = plan.required_text(row, "plan")?.into_owned();
                    let channel = channel
                        .required_text(row, "acquisition_channel")?
                        .into_owned();
                    let device = match device {
                        None => None,
                        Some(d) => d
                            .text(row)
                            .map_err(|r| ("device", r))?
                            .map(|c| c.into_owned()),
                    };
                    let mut values = Vec::with_capacity(attributes.len());
                    for (k, (numeric, field)) in attributes.iter().enumerate() {
                        let name = attribute_fields[k].0;
                        values.push(if *numeric {
                            AttributeValue::Number(field.number(row).map_err(|r| (name, r))?)
                        } else {
                            AttributeValue::Category(
                                field
                                    .text(row)
                                    .map_err(|r| (name, r))?
                                    .map(|c| c.into_owned()),
                            )
                        });
                    }
                    Ok((learner_id, signup_at, plan, channel, device, values))
                })();
                match made {
                    Ok((learner_id, signup_at, plan, channel, device, values)) => {
                        for ((_, column), value) in out.attributes.iter_mut().zip(values) {
                            column.push(value);
                        }
                        report.imported += 1;
                        report.rows_written += 1;
                        out.learner_id.push(learner_id);
                        out.signup_at.push(signup_at);
                        out.plan.push(plan);
                        out.channel.push(channel);
                        out.device.push(device);
                    }
                    Err((field, reason)) => reject(&mut report, at, row, field, reason),
                }
                Ok(())
            },
        )?;
        Ok(Some(report))
    }

    fn courses(
        &self,
        events: &EventRows,
        out: &mut CourseRows,
    ) -> Result<Option<SourceReport>, ImportError> {
        let Some(c) = &self.mapping.courses else {
            return Ok(None);
        };
        let Some(source_name) = &c.source else {
            let value = |f: &Field| f.value.clone().unwrap_or_default();
            let lessons: i64 = value(&c.lessons).trim().parse().map_err(|_| {
                mapping_error(
                    self.mapping,
                    "courses.lessons: a whole number is needed".into(),
                )
            })?;
            let mut seen = std::collections::HashSet::new();
            let ids = events
                .text_column("course_id")
                .map_err(|message| mapping_error(self.mapping, message))?;
            for id in ids.iter().flat_map(|c| c.iter()).flatten() {
                if seen.insert(id) {
                    out.course_id.push(id.to_owned());
                    out.level.push(value(&c.level));
                    out.lessons.push(lessons);
                    out.ends_at.push(None);
                    out.starts_at.push(None);
                }
            }
            return Ok(None);
        };
        let files = self.source(source_name)?;
        let mut report = SourceReport {
            section: "courses".into(),
            source: source_name.clone(),
            files: files.files.clone(),
            ..SourceReport::default()
        };
        let id_field = c.course_id.clone().unwrap_or_else(|| c.level.clone());
        let columns = wanted(c.fields(), &c.filter, None);
        for_each_row(
            files,
            &columns,
            |file, header| {
                Ok((
                    self.compile(&id_field, "courses.course_id", header, file)?,
                    self.compile(&c.level, "courses.level", header, file)?,
                    self.compile(&c.lessons, "courses.lessons", header, file)?,
                    c.ends_at
                        .as_ref()
                        .map(|f| self.compile(f, "courses.ends_at", header, file))
                        .transpose()?,
                    c.starts_at
                        .as_ref()
                        .map(|f| self.compile(f, "courses.starts_at", header, file))
                        .transpose()?,
                    compile_filters(&c.filter, "courses", self.mapping, header, file)?,
                ))
            },
            |(id, level, lessons, ends, starts, filters), at, row| {
                report.read += 1;
                if !filters_pass(filters, row) {
                    report.filtered += 1;
                    return Ok(());
                }
                let made = (|| {
                    let id = id.required_text(row, "course_id")?.into_owned();
                    let level = level.required_text(row, "level")?.into_owned();
                    let n = lessons.required_number(row, "lessons")?;
                    let end = match ends {
                        None => None,
                        Some(e) => e.time(row).map_err(|r| ("ends_at", r))?,
                    };
                    let start = match starts {
                        None => None,
                        Some(s) => s.time(row).map_err(|r| ("starts_at", r))?,
                    };
                    Ok::<_, (&'static str, String)>((id, level, n, end, start))
                })();
                match made {
                    Ok((id, level, n, end, start)) => {
                        report.imported += 1;
                        report.rows_written += 1;
                        out.course_id.push(id);
                        out.level.push(level);
                        out.lessons.push(n.round() as i64);
                        out.ends_at.push(end);
                        out.starts_at.push(start);
                    }
                    Err((field, reason)) => reject(&mut report, at, row, field, reason),
                }
                Ok(())
            },
        )?;
        Ok(Some(report))
    }
}

impl Importer<'_> {
    fn deadlines(&self, out: &mut DeadlineRows) -> Result<Option<SourceReport>, ImportError> {
        let Some(d) = &self.mapping.deadlines else {
            return Ok(None);
        };
        let files = self.source(&d.source)?;
        let mut report = SourceReport {
            section: "deadlines".into(),
            source: d.source.clone(),
            files: files.files.clone(),
            ..SourceReport::default()
        };
        let columns = wanted(d.fields(), &d.filter, None);
        for_each_row(
            files,
            &columns,
            |file, header| {
                Ok((
                    self.compile(&d.course_id, "deadlines.course_id", header, file)?,
                    self.compile(&d.due_at, "deadlines.due_at", header, file)?,
                    self.compile(&d.event_type, "deadlines.event_type", header, file)?,
                    compile_filters(&d.filter, "deadlines", self.mapping, header, file)?,
                ))
            },
            |(course, due, kind, filters), at, row| {
                report.read += 1;
                if !filters_pass(filters, row) {
                    report.filtered += 1;
                    return Ok(());
                }
                let made = (|| {
                    let course = course.required_text(row, "course_id")?.into_owned();
                    let due_at = due.required_time(row, "due_at")?;
                    let kind = kind.required_text(row, "event_type")?;
                    if churn_core::EventType::parse(&kind).is_err() {
                        return Err((
                            "event_type",
                            format!(
                                "{kind:?}: a deadline is met by one of the 13 known event types"
                            ),
                        ));
                    }
                    Ok((course, due_at, kind.into_owned()))
                })();
                match made {
                    Ok((course, due_at, kind)) => {
                        report.imported += 1;
                        report.rows_written += 1;
                        out.course_id.push(course);
                        out.due_at.push(due_at);
                        out.event_type.push(kind);
                    }
                    Err((field, reason)) => reject(&mut report, at, row, field, reason),
                }
                Ok(())
            },
        )?;
        Ok(Some(report))
    }
}

fn reject(report: &mut SourceReport, at: &RowAt<'_>, row: &dyn Row, field: &str, reason: String) {
    report.rejected += 1;
    report.rejects.push(Reject {
        file: at.file.to_owned(),
        row: at.row,
        field: field.to_owned(),
        reason,
        values: row.values(at.header),
    });
}

/// How an import reads; what it writes does not depend on these.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// Bytes of CSV or JSON lines per batch of event rows (each batch is
    /// parsed by one thread of the pool, and batches are merged in order).
    pub batch_bytes: usize,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            batch_bytes: batches::DEFAULT_BATCH_BYTES,
        }
    }
}

/// Imports the mapping's sources into the contract data directory `out`:
/// `learners`, `courses`, `events` as Parquet, `contract.toml`,
/// `rejects/<section>.csv` and `import.json`.
pub fn import(mapping: &Mapping, out: &Path) -> Result<ImportReport, ImportError> {
    import_with(mapping, out, &ImportSettings::default())
}

/// [`import`] with settings of how to read.
pub fn import_with(
    mapping: &Mapping,
    out: &Path,
    settings: &ImportSettings,
) -> Result<ImportReport, ImportError> {
    let importer = Importer::new(mapping)?;
    churn_core::create_dir_all(out).map_err(|e| ImportError::Io {
        path: out.to_owned(),
        message: e.to_string(),
    })?;
    // The learners or courses made from the events read these columns again.
    let mut keep = Vec::new();
    if mapping.learners.source.is_none() {
        keep.extend(["learner_id", "ts"]);
    }
    if mapping.courses.as_ref().is_some_and(|c| c.source.is_none()) {
        keep.push("course_id");
    }
    let mut events = EventRows::new(&out.join("events.parquet"), keep)?;
    let mut sections = Vec::new();
    for i in 0..mapping.events.len() {
        sections.push(importer.events(i, settings.batch_bytes, &mut events)?);
    }
    let mut learners = LearnerRows::new(&mapping.contract.learners);
    if let Some(r) = importer.learners(&events, &mut learners)? {
        sections.insert(0, r);
    }
    let mut courses = CourseRows::default();
    if let Some(r) = importer.courses(&events, &mut courses)? {
        sections.insert(1.min(sections.len()), r);
    }
    let mut deadlines = DeadlineRows::default();
    if let Some(r) = importer.deadlines(&mut deadlines)? {
        sections.push(r);
    }
    let mut custom_event_types = BTreeMap::new();
    for (name, &rows) in &events.rows_of_type {
        if rows > 0 && matches!(parse_event_type(name), Ok(Err(_))) {
            custom_event_types.insert(name.clone(), rows);
        }
    }
    let tables = BTreeMap::from([
        ("learners".to_owned(), learners.learner_id.len()),
        ("courses".to_owned(), courses.course_id.len()),
        ("events".to_owned(), events.len()),
        ("deadlines".to_owned(), deadlines.due_at.len()),
    ]);
    let report = ImportReport {
        sections,
        tables,
        custom_event_types,
    };
    write::write_all(out, mapping, &report, learners, courses, events, deadlines)?;
    Ok(report)
}
