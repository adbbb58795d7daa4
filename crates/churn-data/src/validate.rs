//! The row rules of the data contract, table by table.

use std::collections::HashMap;

use rayon::prelude::*;
use std::collections::hash_map::Entry;
use std::path::Path;

use churn_core::{
    Assignment, Course, Dataset, Event, EventKind, Learner, NO_COURSE, Table, format_timestamp,
    parse_category, parse_event_type,
};

use crate::columns::{Frame, NumCol, TableSource, TextCol, TimeCol};
use crate::validation_report::{Reject, TableReport, ValidationReport};
use crate::{Contract, DataError, LoadOptions, Loaded, Tables};

/// The problems found in one row.
#[derive(Default)]
struct RowProblems {
    fields: Vec<String>,
    reasons: Vec<String>,
}

impl RowProblems {
    fn add(&mut self, field: &str, reason: impl Into<String>) {
        if !self.fields.iter().any(|f| f == field) {
            self.fields.push(field.to_owned());
        }
        self.reasons.push(reason.into());
    }

    fn is_empty(&self) -> bool {
        self.reasons.is_empty()
    }

    fn into_reject(self, frame: &Frame, row: usize) -> Reject {
        Reject {
            row: frame.first_row + row + 1,
            field: self.fields.join(","),
            reason: self.reasons.join("; "),
            values: frame.row_values(row),
        }
    }
}

/// Keeps the first row of each id; later rows with the same id are duplicates.
/// References from other tables resolve to the first row's accepted value.
struct IdIndex<T> {
    table: Table,
    field: &'static str,
    /// id → (1-based first row, the accepted value; `None` while unaccepted).
    ids: HashMap<String, (usize, Option<T>), foldhash::fast::RandomState>,
}

impl<T: Copy> IdIndex<T> {
    fn new(table: Table, field: &'static str) -> Self {
        IdIndex {
            table,
            field,
            ids: HashMap::default(),
        }
    }

    /// Claims `id` for 1-based `row`; `Err(first_row)` when it is a duplicate.
    fn claim(&mut self, id: &str, row: usize) -> Result<(), usize> {
        match self.ids.entry(id.to_owned()) {
            Entry::Occupied(first) => Err(first.get().0),
            Entry::Vacant(slot) => {
                slot.insert((row, None));
                Ok(())
            }
        }
    }

    /// Marks the row that claimed `id` as accepted with `value`.
    fn accept(&mut self, id: &str, value: T) {
        if let Some(entry) = self.ids.get_mut(id) {
            entry.1 = Some(value);
        }
    }

    /// Resolves a reference, or explains why it does not resolve.
    fn resolve(&self, id: &str) -> Result<T, String> {
        match self.ids.get(id) {
            Some((_, Some(value))) => Ok(*value),
            Some((row, None)) => Err(format!(
                "{} {id:?} was rejected in {} (row {row})",
                self.field, self.table
            )),
            None => Err(format!(
                "unknown {} {id:?} (not in {})",
                self.field, self.table
            )),
        }
    }
}

/// Rows of a Parquet events file read at once: bounds the polars frame in memory.
const EVENT_ROWS_PER_SLICE: usize = 1 << 21;

/// Rows of the events file validated per parallel task.
const EVENT_ROWS_PER_TASK: usize = 1 << 18;

/// What validating some rows found.
struct FoundEvents {
    events: Vec<Event>,
    rejects: Vec<Reject>,
    accepted: usize,
    span: Option<(i64, i64)>,
    /// The custom event types met, in order of first use: the `index` of
    /// these events' custom kinds, until [`Profiles::scan_events`] renames
    /// them into the file's list.
    custom: Vec<String>,
}

/// The custom event types of an events file: names and their indexes.
#[derive(Default)]
struct CustomTypes {
    names: Vec<String>,
    index: HashMap<String, u16, foldhash::fast::RandomState>,
}

impl CustomTypes {
    fn index_of(&mut self, name: &str, file: &Path) -> Result<u16, DataError> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        let i = u16::try_from(self.names.len())
            .ok()
            .filter(|&i| i < u16::MAX)
            .ok_or_else(|| DataError::TooManyCustomEventTypes {
                file: file.to_owned(),
                max: usize::from(u16::MAX),
                example: name.to_owned(),
            })?;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        Ok(i)
    }
}

/// Renames the custom kinds of `events` through `map` (old index → new).
pub(crate) fn rename_custom(events: &mut [Event], map: &[u16]) {
    for e in events {
        if let EventKind::Custom { index, activity } = e.event_type {
            e.event_type = EventKind::Custom {
                index: map[usize::from(index)],
                activity,
            };
        }
    }
}

/// The columns of the events file.
struct EventColumns {
    learner_ids: TextCol,
    ts: TimeCol,
    types: TextCol,
    course_ids: Option<TextCol>,
    counts: Option<NumCol>,
    duration: Option<NumCol>,
    score: Option<NumCol>,
    amount: Option<NumCol>,
    latency: Option<NumCol>,
    stalls: Option<NumCol>,
}

impl EventColumns {
    /// Validates `rows`: the accepted events and the rejects, in row order.
    fn validate_rows(
        &self,
        frame: &Frame,
        rows: std::ops::Range<usize>,
        profiles: &Profiles,
    ) -> FoundEvents {
        let mut found = FoundEvents {
            events: Vec::with_capacity(rows.len()),
            rejects: Vec::new(),
            accepted: 0,
            span: None,
            custom: Vec::new(),
        };
        let Profiles {
            learner_index,
            course_index,
            now,
            contract,
            ..
        } = profiles;
        let now = *now;
        let mut custom: HashMap<String, EventKind, foldhash::fast::RandomState> =
            HashMap::default();
        for row in rows {
            let mut p = RowProblems::default();
            let learner = text(&self.learner_ids, row, "learner_id", &mut p).and_then(|id| {
                learner_index
                    .resolve(id)
                    .map_err(|r| p.add("learner_id", r))
                    .ok()
            });
            let ts = time(&self.ts, row, "ts", now, &mut p);
            if let (Some((_, signup_at)), Some(ts)) = (learner, ts)
                && ts < signup_at
            {
                p.add(
                    "ts",
                    format!(
                        "ts {} is before the learner's signup_at {}",
                        format_timestamp(ts),
                        format_timestamp(signup_at)
                    ),
                );
            }
            let event_type = text(&self.types, row, "event_type", &mut p).and_then(|v| {
                match parse_event_type(v) {
                    Ok(Ok(known)) => Some(EventKind::Known(known)),
                    Ok(Err(name)) => Some(match custom.get(name) {
                        Some(&kind) => kind,
                        None => {
                            let kind = EventKind::Custom {
                                index: found.custom.len() as u16,
                                activity: contract.is_activity(name),
                            };
                            found.custom.push(name.to_owned());
                            custom.insert(name.to_owned(), kind);
                            kind
                        }
                    }),
                    Err(e) => {
                        p.add("event_type", e.to_string());
                        None
                    }
                }
            });
            let count = match number(self.counts.as_ref(), row, "count", &mut p) {
                None => 1,
                Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX) => n as u32,
                Some(n) => {
                    p.add(
                        "count",
                        format!("count must be a whole number ≥ 1, got {n}"),
                    );
                    1
                }
            };
            let course = match self.course_ids.as_ref().and_then(|c| c.get(row)) {
                None => Some(NO_COURSE),
                Some(id) => course_index
                    .resolve(id)
                    .map_err(|r| p.add("course_id", r))
                    .ok(),
            };
            let duration_s = non_negative(
                number(self.duration.as_ref(), row, "duration_s", &mut p),
                "duration_s",
                &mut p,
            );
            let score = match number(self.score.as_ref(), row, "score", &mut p) {
                Some(s) if !(0.0..=1.0).contains(&s) => {
                    p.add("score", format!("score {s} is outside [0, 1]"));
                    f64::NAN
                }
                Some(s) => s,
                None => f64::NAN,
            };
            let amount = non_negative(
                number(self.amount.as_ref(), row, "amount", &mut p),
                "amount",
                &mut p,
            );
            let latency_ms = non_negative(
                number(self.latency.as_ref(), row, "latency_ms", &mut p),
                "latency_ms",
                &mut p,
            );
            let stalls = non_negative(
                number(self.stalls.as_ref(), row, "stalls", &mut p),
                "stalls",
                &mut p,
            );
            if stalls.fract() != 0.0 && stalls.is_finite() {
                p.add(
                    "stalls",
                    format!("stalls must be a whole number, got {stalls}"),
                );
            }
            match (learner, ts, event_type, course) {
                (Some((learner, _)), Some(ts), Some(event_type), Some(course)) if p.is_empty() => {
                    let event = Event {
                        ts,
                        learner,
                        course,
                        event_type,
                        count,
                        duration_s,
                        score,
                        amount,
                        latency_ms,
                        stalls,
                    };
                    found.accepted += 1;
                    found.span = Some(found.span.map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))));
                    found.events.push(event);
                }
                _ => found.rejects.push(p.into_reject(frame, row)),
            }
        }
        found
    }
}

fn required<T>(frame: &Frame, name: &str, column: Option<T>) -> Result<T, DataError> {
    column.ok_or_else(|| DataError::MissingColumn {
        file: frame.file.clone(),
        column: name.to_owned(),
        found: frame.column_names(),
    })
}

fn report(table: Table, frame: &Frame, rejects: Vec<Reject>) -> TableReport {
    TableReport {
        table,
        file: frame.file.clone(),
        columns: frame.column_names(),
        read: frame.height(),
        accepted: frame.height() - rejects.len(),
        rejects,
    }
}

/// A required, non-empty text value.
fn text<'a>(
    col: &'a TextCol,
    row: usize,
    field: &'static str,
    p: &mut RowProblems,
) -> Option<&'a str> {
    let value = col.get(row);
    if value.is_none() {
        p.add(field, format!("{field} is empty"));
    }
    value
}

/// A required open-vocabulary category: trimmed, not blank.
fn category<'a>(
    col: &'a TextCol,
    row: usize,
    field: &'static str,
    p: &mut RowProblems,
) -> Option<&'a str> {
    let value = text(col, row, field, p)?;
    let trimmed = parse_category(value);
    if trimmed.is_none() {
        p.add(field, format!("{field} is blank"));
    }
    trimmed
}

/// A required timestamp, not later than `now`.
fn time(
    col: &TimeCol,
    row: usize,
    field: &'static str,
    now: i64,
    p: &mut RowProblems,
) -> Option<i64> {
    match col.get(row) {
        Ok(Some(ts)) if ts > now => {
            p.add(
                field,
                format!(
                    "{field} {} is later than the reference time {} (--now)",
                    format_timestamp(ts),
                    format_timestamp(now)
                ),
            );
            None
        }
        Ok(Some(ts)) => Some(ts),
        Ok(None) => {
            p.add(field, format!("{field} is empty"));
            None
        }
        Err(reason) => {
            p.add(field, format!("{field}: {reason}"));
            None
        }
    }
}

/// An optional finite number (`None` when null or when a problem was recorded).
fn number(col: Option<&NumCol>, row: usize, field: &str, p: &mut RowProblems) -> Option<f64> {
    match col?.get(row) {
        Ok(Some(v)) if v.is_finite() => Some(v),
        Ok(Some(v)) => {
            p.add(field, format!("{field} must be a finite number, got {v}"));
            None
        }
        Ok(None) => None,
        Err(text) => {
            p.add(field, format!("{field} is not a number: {text:?}"));
            None
        }
    }
}

fn non_negative(value: Option<f64>, field: &'static str, p: &mut RowProblems) -> f64 {
    match value {
        Some(v) if v < 0.0 => {
            p.add(field, format!("negative {field}: {v}"));
            f64::NAN
        }
        Some(v) => v,
        None => f64::NAN,
    }
}

/// Learners, courses and the id indexes that events and assignments resolve against.
pub(crate) struct Profiles {
    pub(crate) dataset: Dataset,
    pub(crate) tables: Vec<TableReport>,
    learner_index: IdIndex<(u32, i64)>,
    course_index: IdIndex<u32>,
    now: i64,
    contract: Contract,
    custom: std::sync::Mutex<CustomTypes>,
}

pub(crate) fn validate(
    tables: &Tables,
    options: &LoadOptions,
    contract: Contract,
) -> Result<Loaded, DataError> {
    let mut profiles = validate_profiles(&tables.learners, &tables.courses, options, contract)?;
    // CSV cannot be read from the middle, so it is read whole; Parquet and
    // frames in slices.
    let slice = if tables.events.sliceable() {
        EVENT_ROWS_PER_SLICE
    } else {
        usize::MAX
    };
    // Reserved whole: growing by doubling would hold twice the events at
    // its last step.
    let mut events = Vec::with_capacity(Frame::known_rows(&tables.events)?.unwrap_or(0));
    let scan = profiles.scan_events(&tables.events, slice, &mut |mut part| {
        events.append(&mut part);
        Ok(())
    })?;
    profiles.sort_custom_event_types(&mut events);
    profiles.dataset.custom_event_types = profiles.custom_event_types();
    profiles.dataset.events = events;
    profiles.tables.push(scan.report);
    if let Some(source) = &tables.assignments {
        profiles.validate_assignments(source)?;
    }
    if let Some(source) = &tables.deadlines {
        profiles.validate_deadlines(source)?;
    }
    Ok(Loaded {
        contract: profiles.contract,
        dataset: profiles.dataset,
        report: ValidationReport {
            tables: profiles.tables,
        },
    })
}

pub(crate) fn validate_profiles(
    learners: &TableSource,
    courses: &TableSource,
    options: &LoadOptions,
    contract: Contract,
) -> Result<Profiles, DataError> {
    let now = options.now;
    let mut dataset = Dataset {
        attributes: contract.learners.clone(),
        ..Dataset::default()
    };
    let mut tables = Vec::new();

    // learners
    let frame = Frame::read(learners)?;
    let ids = required(&frame, "learner_id", frame.text("learner_id", true)?)?;
    let signup = required(&frame, "signup_at", frame.time("signup_at", true)?)?;
    let plans = required(&frame, "plan", frame.text("plan", true)?)?;
    let channels = required(
        &frame,
        "acquisition_channel",
        frame.text("acquisition_channel", true)?,
    )?;
    let devices = frame.text("device", false)?;
    let attributes = &contract.learners;
    let numeric_attributes = attributes
        .numeric
        .iter()
        .map(|name| required(&frame, name, frame.number(name, true)?))
        .collect::<Result<Vec<_>, _>>()?;
    let categorical_attributes = attributes
        .categorical
        .iter()
        .map(|name| required(&frame, name, frame.text(name, true)?))
        .collect::<Result<Vec<_>, _>>()?;
    let mut learner_index: IdIndex<(u32, i64)> = IdIndex::new(Table::Learners, "learner_id");
    let mut rejects = Vec::new();
    for row in 0..frame.height() {
        let mut p = RowProblems::default();
        let id = text(&ids, row, "learner_id", &mut p);
        if let Some(id) = id
            && let Err(first) = learner_index.claim(id, row + 1)
        {
            p.add("learner_id", duplicate("learner_id", id, first));
        }
        let signup_at = time(&signup, row, "signup_at", now, &mut p);
        let plan = category(&plans, row, "plan", &mut p);
        let channel = category(&channels, row, "acquisition_channel", &mut p);
        let numeric_values: Vec<f64> = numeric_attributes
            .iter()
            .zip(&attributes.numeric)
            .map(|(col, name)| number(Some(col), row, name, &mut p).unwrap_or(f64::NAN))
            .collect();
        match (id, signup_at, plan, channel) {
            (Some(id), Some(signup_at), Some(plan), Some(channel)) if p.is_empty() => {
                learner_index.accept(id, (dataset.learners.len() as u32, signup_at));
                dataset.learners.push(Learner {
                    id: id.to_owned(),
                    signup_at,
                    plan: plan.to_owned(),
                    acquisition_channel: channel.to_owned(),
                    device: devices
                        .as_ref()
                        .and_then(|d| d.get(row))
                        .and_then(parse_category)
                        .map(str::to_owned),
                    numeric_attributes: numeric_values,
                    categorical_attributes: categorical_attributes
                        .iter()
                        .map(|col| col.get(row).and_then(parse_category).map(str::to_owned))
                        .collect(),
                });
            }
            _ => rejects.push(p.into_reject(&frame, row)),
        }
    }
    tables.push(report(Table::Learners, &frame, rejects));

    // courses
    let frame = Frame::read(courses)?;
    let ids = required(&frame, "course_id", frame.text("course_id", true)?)?;
    let levels = required(&frame, "level", frame.text("level", true)?)?;
    let lessons = required(&frame, "lessons", frame.number("lessons", true)?)?;
    // Optional: when the course ends (a time in the future is fine).
    let ends = frame.time("ends_at", false)?;
    let starts = frame.time("starts_at", false)?;
    let mut course_index: IdIndex<u32> = IdIndex::new(Table::Courses, "course_id");
    let mut rejects = Vec::new();
    for row in 0..frame.height() {
        let mut p = RowProblems::default();
        let id = text(&ids, row, "course_id", &mut p);
        if let Some(id) = id
            && let Err(first) = course_index.claim(id, row + 1)
        {
            p.add("course_id", duplicate("course_id", id, first));
        }
        let level = category(&levels, row, "level", &mut p);
        let count = match number(Some(&lessons), row, "lessons", &mut p) {
            Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX) => Some(n as u32),
            Some(n) => {
                p.add(
                    "lessons",
                    format!("lessons must be a whole number > 0, got {n}"),
                );
                None
            }
            None if p.is_empty() => {
                p.add("lessons", "lessons is empty");
                None
            }
            None => None,
        };
        let mut optional_time =
            |column: &Option<TimeCol>, field: &str| match column.as_ref().map(|c| c.get(row)) {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(t))) => Some(t),
                Some(Err(reason)) => {
                    p.add(field, format!("{field}: {reason}"));
                    None
                }
            };
        let ends_at = optional_time(&ends, "ends_at");
        let starts_at = optional_time(&starts, "starts_at");
        if let (Some(start), Some(end)) = (starts_at, ends_at)
            && end < start
        {
            p.add("ends_at", "ends_at is before starts_at");
        }
        match (id, level, count) {
            (Some(id), Some(level), Some(lessons)) if p.is_empty() => {
                course_index.accept(id, dataset.courses.len() as u32);
                dataset.courses.push(Course {
                    id: id.to_owned(),
                    level: level.to_owned(),
                    lessons,
                    ends_at,
                    starts_at,
                });
            }
            _ => rejects.push(p.into_reject(&frame, row)),
        }
    }
    tables.push(report(Table::Courses, &frame, rejects));
    Ok(Profiles {
        dataset,
        tables,
        learner_index,
        course_index,
        now,
        contract,
        custom: Default::default(),
    })
}

/// What a pass over the events file found.
pub(crate) struct EventScan {
    /// Counts and rejects (rejects only when asked to record them).
    pub(crate) report: TableReport,
    /// Earliest and latest accepted event time.
    pub(crate) span: Option<(i64, i64)>,
}

impl Profiles {
    /// Validates the events file `slice_rows` rows at a time and hands the
    /// accepted events to `sink`, in row order, a part at a time. Custom
    /// types carry their index in order of first use until
    /// [`Self::sort_custom_event_types`].
    pub(crate) fn scan_events(
        &self,
        source: &TableSource,
        slice_rows: usize,
        sink: &mut dyn FnMut(Vec<Event>) -> Result<(), DataError>,
    ) -> Result<EventScan, DataError> {
        let mut report = TableReport {
            table: Table::Events,
            file: source.name().to_owned(),
            columns: Vec::new(),
            read: 0,
            accepted: 0,
            rejects: Vec::new(),
        };
        let mut span: Option<(i64, i64)> = None;
        loop {
            let frame = Frame::read_slice(source, report.read, slice_rows)?;
            if report.read == 0 {
                report.columns = frame.column_names();
            }
            let columns = EventColumns {
                learner_ids: required(&frame, "learner_id", frame.text("learner_id", true)?)?,
                ts: required(&frame, "ts", frame.time("ts", true)?)?,
                types: required(&frame, "event_type", frame.text("event_type", true)?)?,
                course_ids: frame.text("course_id", false)?,
                counts: frame.number("count", false)?,
                duration: frame.number("duration_s", false)?,
                score: frame.number("score", false)?,
                amount: frame.number("amount", false)?,
                latency: frame.number("latency_ms", false)?,
                stalls: frame.number("stalls", false)?,
            };
            // Rows are independent once learners and courses are known: validate
            // fixed ranges in parallel and append them in row order.
            let height = frame.height();
            let ranges: Vec<std::ops::Range<usize>> = (0..height)
                .step_by(EVENT_ROWS_PER_TASK)
                .map(|a| a..(a + EVENT_ROWS_PER_TASK).min(height))
                .collect();
            let parts: Vec<FoundEvents> = ranges
                .into_par_iter()
                .map(|rows| columns.validate_rows(&frame, rows, self))
                .collect();
            for mut part in parts {
                report.accepted += part.accepted;
                report.rejects.extend(part.rejects);
                if !part.custom.is_empty() {
                    let map = self.custom_indexes(&part.custom, source.name())?;
                    rename_custom(&mut part.events, &map);
                }
                sink(part.events)?;
                span = match (span, part.span) {
                    (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                    (x, y) => x.or(y),
                };
            }
            report.read += height;
            if height < slice_rows {
                break;
            }
        }
        Ok(EventScan { report, span })
    }

    /// The file-wide indexes of a part's custom types (in its order), adding
    /// the new ones.
    fn custom_indexes(&self, names: &[String], file: &Path) -> Result<Vec<u16>, DataError> {
        let mut custom = self.custom.lock().unwrap_or_else(|e| e.into_inner());
        names
            .iter()
            .map(|name| custom.index_of(name, file))
            .collect()
    }

    /// Puts the custom event types in name order (the order is part of the
    /// canonical event order, so it must not depend on the file's) and renames
    /// the kinds of `events` to match; returns the renaming (old index → new),
    /// for events kept elsewhere.
    pub(crate) fn sort_custom_event_types(&mut self, events: &mut [Event]) -> Vec<u16> {
        let custom = self.custom.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut order: Vec<usize> = (0..custom.names.len()).collect();
        order.sort_by(|&a, &b| custom.names[a].cmp(&custom.names[b]));
        let mut map = vec![0u16; order.len()];
        for (new, &old) in order.iter().enumerate() {
            map[old] = new as u16;
        }
        rename_custom(events, &map);
        let names: Vec<String> = order.iter().map(|&i| custom.names[i].clone()).collect();
        custom.index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u16))
            .collect();
        custom.names = names;
        map
    }

    /// The custom event types met so far, by index.
    pub(crate) fn custom_event_types(&self) -> Vec<String> {
        self.custom
            .lock()
            .map(|c| c.names.clone())
            .unwrap_or_else(|e| e.into_inner().names.clone())
    }

    /// `deadlines`: `course_id` (a known course), `due_at` (a time; the
    /// future is fine) and `event_type` (a known type: what meets it).
    pub(crate) fn validate_deadlines(&mut self, source: &TableSource) -> Result<(), DataError> {
        let frame = Frame::read(source)?;
        let courses = required(&frame, "course_id", frame.text("course_id", true)?)?;
        let due = required(&frame, "due_at", frame.time("due_at", true)?)?;
        let types = required(&frame, "event_type", frame.text("event_type", true)?)?;
        let mut rejects = Vec::new();
        for row in 0..frame.height() {
            let mut p = RowProblems::default();
            let course = text(&courses, row, "course_id", &mut p).and_then(|id| {
                self.course_index
                    .resolve(id)
                    .map_err(|r| p.add("course_id", r))
                    .ok()
            });
            let due_at = match due.get(row) {
                Ok(Some(t)) => Some(t),
                Ok(None) => {
                    p.add("due_at", "due_at is empty");
                    None
                }
                Err(reason) => {
                    p.add("due_at", format!("due_at: {reason}"));
                    None
                }
            };
            let event_type = text(&types, row, "event_type", &mut p).and_then(|t| {
                match churn_core::EventType::parse(t.trim()) {
                    Ok(known) => Some(known),
                    Err(_) => {
                        p.add(
                            "event_type",
                            format!("{t:?}: a deadline is met by one of the 13 known event types"),
                        );
                        None
                    }
                }
            });
            match (course, due_at, event_type) {
                (Some(course), Some(due_at), Some(event_type)) if p.is_empty() => {
                    self.dataset.deadlines.push(churn_core::Deadline {
                        course,
                        due_at,
                        event_type,
                    });
                }
                _ => rejects.push(p.into_reject(&frame, row)),
            }
        }
        self.tables.push(report(Table::Deadlines, &frame, rejects));
        Ok(())
    }

    pub(crate) fn validate_assignments(&mut self, source: &TableSource) -> Result<(), DataError> {
        let now = self.now;
        let learner_index = &self.learner_index;
        let dataset = &mut self.dataset;
        let tables = &mut self.tables;
        let frame = Frame::read(source)?;
        let experiments = required(&frame, "experiment_id", frame.text("experiment_id", true)?)?;
        let learner_ids = required(&frame, "learner_id", frame.text("learner_id", true)?)?;
        let arms = required(&frame, "arm", frame.text("arm", true)?)?;
        let assigned = required(&frame, "assigned_at", frame.time("assigned_at", true)?)?;
        let propensity = frame.number("propensity", false)?;
        let risk = frame.number("risk_score", false)?;
        let cost = frame.number("cost", false)?;
        let churned = frame.flag("churned", false)?;
        let mut first_rows: HashMap<(String, u32), usize> = HashMap::new();
        let mut rejects = Vec::new();
        for row in 0..frame.height() {
            let mut p = RowProblems::default();
            let experiment = text(&experiments, row, "experiment_id", &mut p);
            let learner = text(&learner_ids, row, "learner_id", &mut p).and_then(|id| {
                learner_index
                    .resolve(id)
                    .map_err(|r| p.add("learner_id", r))
                    .ok()
            });
            let arm = text(&arms, row, "arm", &mut p);
            let assigned_at = time(&assigned, row, "assigned_at", now, &mut p);
            if let (Some((_, signup_at)), Some(at)) = (learner, assigned_at)
                && at < signup_at
            {
                p.add(
                    "assigned_at",
                    "assigned_at is before the learner's signup_at",
                );
            }
            if let (Some(experiment), Some((index, _))) = (experiment, learner) {
                match first_rows.entry((experiment.to_owned(), index)) {
                    Entry::Occupied(first) => p.add(
                        "learner_id",
                        format!(
                            "learner {:?} assigned twice in experiment {experiment:?} (first at row {})",
                            learner_ids.get(row).unwrap_or_default(),
                            first.get()
                        ),
                    ),
                    Entry::Vacant(slot) => {
                        slot.insert(row + 1);
                    }
                }
            }
            let propensity = number(propensity.as_ref(), row, "propensity", &mut p);
            if let Some(v) = propensity
                && !(v > 0.0 && v <= 1.0)
            {
                p.add("propensity", format!("propensity {v} is outside (0, 1]"));
            }
            let risk_score = number(risk.as_ref(), row, "risk_score", &mut p);
            let cost = number(cost.as_ref(), row, "cost", &mut p);
            if let Some(c) = cost
                && c < 0.0
            {
                p.add("cost", format!("negative cost: {c}"));
            }
            let churned = match churned.as_ref().map(|c| c.get(row)) {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(v))) if v == 0.0 || v == 1.0 => Some(v == 1.0),
                Some(Ok(Some(v))) => {
                    p.add("churned", format!("churned must be 0 or 1, got {v}"));
                    None
                }
                Some(Err(text)) => {
                    p.add("churned", format!("churned must be 0 or 1, got {text:?}"));
                    None
                }
            };
            match (experiment, learner, arm, assigned_at) {
                (Some(experiment), Some((learner, _)), Some(arm), Some(assigned_at))
                    if p.is_empty() =>
                {
                    dataset.assignments.push(Assignment {
                        experiment_id: experiment.to_owned(),
                        learner,
                        arm: arm.to_owned(),
                        assigned_at,
                        propensity,
                        risk_score,
                        cost,
                        churned,
                    });
                }
                _ => rejects.push(p.into_reject(&frame, row)),
            }
        }
        tables.push(report(Table::Assignments, &frame, rejects));
        Ok(())
    }
}

fn duplicate(field: &str, id: &str, first_row: usize) -> String {
    format!("duplicate {field} {id:?} (first at row {first_row})")
}
