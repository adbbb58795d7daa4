//! Writing a [`Dataset`] as a data directory (used by the simulator and tests).

use std::path::Path;

use churn_core::{Assignment, Dataset, Event, Learner, Table, format_timestamp};
use polars::prelude::*;

use crate::DataError;

/// File format of a written data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<table>.csv`, timestamps as RFC 3339 text.
    Csv,
    /// `<table>.parquet`, timestamps as UTC `timestamp[ms]`, zstd compressed.
    Parquet,
}

impl Format {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// Writes the tables of `dataset` into `dir` (created if needed). The
/// assignments table is written only when it has rows; its optional columns
/// only when some row has a value. Output bytes depend only on the dataset.
pub fn write_dataset(dataset: &Dataset, dir: &Path, format: Format) -> Result<(), DataError> {
    let mut writer = DatasetWriter::create(dir, format, dataset)?;
    writer.write_chunk(0, &dataset.learners, &dataset.events, &dataset.assignments)?;
    writer.finish()
}

/// A data directory written chunk by chunk of consecutive learners, for
/// datasets larger than memory (the simulator's): each chunk becomes one
/// Parquet row group (or more CSV rows) of `learners`, `events` and
/// `assignments`. Courses and deadlines are written at creation.
///
/// Optional columns (`count`, the assignments' `propensity`, `risk_score`,
/// `cost`, `churned`) are chosen by the first chunk that has rows of the
/// table, as [`write_dataset`] chooses them for the whole; a later chunk
/// with a value in a column not chosen is an error, never dropped. Each file
/// appears complete at [`DatasetWriter::finish`] or not at all.
pub struct DatasetWriter {
    dir: std::path::PathBuf,
    format: Format,
    /// Courses, custom event types and attributes: what names a row.
    names: Dataset,
    learners: TableFile,
    events: TableFile,
    assignments: TableFile,
    event_count_column: Option<bool>,
    assignment_columns: Option<[bool; 4]>,
}

impl DatasetWriter {
    /// Starts a data directory in `dir` (created if needed); `names` gives
    /// the courses and deadlines (written now), the custom event types and the
    /// learner attributes (its learners and events are not written).
    pub fn create(dir: &Path, format: Format, names: &Dataset) -> Result<Self, DataError> {
        churn_core::create_dir_all(dir).map_err(|source| DataError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let names = Dataset {
            courses: names.courses.clone(),
            custom_event_types: names.custom_event_types.clone(),
            attributes: names.attributes.clone(),
            deadlines: names.deadlines.clone(),
            ..Dataset::default()
        };
        let table = |table: Table| TableFile::new(dir, table, format);
        let writer = DatasetWriter {
            learners: table(Table::Learners),
            events: table(Table::Events),
            assignments: table(Table::Assignments),
            dir: dir.to_owned(),
            format,
            names,
            event_count_column: None,
            assignment_columns: None,
        };
        writer.write_courses()?;
        writer.write_deadlines()?;
        Ok(writer)
    }

    fn write_courses(&self) -> Result<(), DataError> {
        let format = self.format;
        let c = &self.names.courses;
        let mut courses = vec![
            Column::new(
                "course_id".into(),
                c.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "level".into(),
                c.iter().map(|x| x.level.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "lessons".into(),
                c.iter().map(|x| i64::from(x.lessons)).collect::<Vec<_>>(),
            ),
        ];
        // `ends_at` and `starts_at` are optional: written only when some
        // course has one.
        let optional_times = |name: &str, times: Vec<Option<i64>>| match format {
            Format::Csv => Column::new(
                name.into(),
                times
                    .iter()
                    .map(|t| t.map(format_timestamp))
                    .collect::<Vec<_>>(),
            ),
            Format::Parquet => Int64Chunked::from_iter_options(name.into(), times.into_iter())
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
        };
        if c.iter().any(|x| x.ends_at.is_some()) {
            courses.push(optional_times(
                "ends_at",
                c.iter().map(|x| x.ends_at).collect(),
            ));
        }
        if c.iter().any(|x| x.starts_at.is_some()) {
            courses.push(optional_times(
                "starts_at",
                c.iter().map(|x| x.starts_at).collect(),
            ));
        }
        write_table(&self.dir, Table::Courses, format, c.len(), courses)
    }

    /// The deadlines table, only when there are deadlines.
    fn write_deadlines(&self) -> Result<(), DataError> {
        let deadlines = &self.names.deadlines;
        if deadlines.is_empty() {
            return Ok(());
        }
        let courses = &self.names.courses;
        let course_name = |c: u32| courses.get(c as usize).map(|x| x.id.as_str());
        let columns = vec![
            Column::new(
                "course_id".into(),
                deadlines
                    .iter()
                    .map(|x| course_name(x.course))
                    .collect::<Vec<_>>(),
            ),
            time_column(
                self.format,
                "due_at",
                deadlines.iter().map(|x| x.due_at).collect(),
            ),
            Column::new(
                "event_type".into(),
                deadlines
                    .iter()
                    .map(|x| x.event_type.as_str())
                    .collect::<Vec<_>>(),
            ),
        ];
        write_table(
            &self.dir,
            Table::Deadlines,
            self.format,
            deadlines.len(),
            columns,
        )
    }

    /// Appends consecutive learners, the first being learner index
    /// `first_learner`, with their events and assignments (which may name
    /// only these learners).
    pub fn write_chunk(
        &mut self,
        first_learner: u32,
        learners: &[Learner],
        events: &[Event],
        assignments: &[Assignment],
    ) -> Result<(), DataError> {
        let format = self.format;
        let outside = |table: Table, learner: u32| DataError::Write {
            file: self
                .dir
                .join(format!("{}.{}", table.name(), format.extension())),
            message: format!(
                "row of learner index {learner} in a chunk of learners {first_learner}..{}",
                first_learner as usize + learners.len()
            ),
        };
        let id_of = |table: Table, learner: u32| {
            learner
                .checked_sub(first_learner)
                .and_then(|i| learners.get(i as usize))
                .map(|l| l.id.as_str())
                .ok_or_else(|| outside(table, learner))
        };
        let event_ids = events
            .iter()
            .map(|e| id_of(Table::Events, e.learner))
            .collect::<Result<Vec<_>, _>>()?;
        let assignment_ids = assignments
            .iter()
            .map(|a| id_of(Table::Assignments, a.learner))
            .collect::<Result<Vec<_>, _>>()?;

        let columns = learner_columns(format, learners, &self.names.attributes);
        self.learners.append(learners.len(), columns)?;

        if !events.is_empty() {
            let needs_count = events.iter().any(|x| x.count != 1);
            let count_column = *self.event_count_column.get_or_insert(needs_count);
            if needs_count && !count_column {
                return Err(self.events.late_column("count"));
            }
            let columns = event_columns(format, &self.names, events, event_ids, count_column);
            self.events.append(events.len(), columns)?;
        }

        if !assignments.is_empty() {
            let has = [
                assignments.iter().any(|x| x.propensity.is_some()),
                assignments.iter().any(|x| x.risk_score.is_some()),
                assignments.iter().any(|x| x.cost.is_some()),
                assignments.iter().any(|x| x.churned.is_some()),
            ];
            let chosen = *self.assignment_columns.get_or_insert(has);
            if let Some(late) = (0..4).find(|&i| has[i] && !chosen[i]) {
                return Err(self.assignments.late_column(ASSIGNMENT_OPTIONALS[late]));
            }
            let columns = assignment_columns(format, assignments, assignment_ids, chosen);
            self.assignments.append(assignments.len(), columns)?;
        }
        Ok(())
    }

    /// Publishes `learners` and `events` (empty tables when no chunk had
    /// rows) and `assignments` when some chunk had one.
    pub fn finish(mut self) -> Result<(), DataError> {
        if !self.learners.started() {
            let columns = learner_columns(self.format, &[], &self.names.attributes);
            self.learners.append(0, columns)?;
        }
        if !self.events.started() {
            let columns = event_columns(self.format, &self.names, &[], Vec::new(), false);
            self.events.append(0, columns)?;
        }
        self.learners.finish()?;
        self.events.finish()?;
        if self.assignments.started() {
            self.assignments.finish()?;
        }
        Ok(())
    }
}

/// `ParquetWriter`'s default row group size (rows).
const PARQUET_ROW_GROUP_ROWS: usize = 512 * 512;

/// The optional columns of `assignments`, in the order [`assignment_columns`] takes them.
const ASSIGNMENT_OPTIONALS: [&str; 4] = ["propensity", "risk_score", "cost", "churned"];

fn time_column(format: Format, name: &str, values: Vec<i64>) -> Column {
    match format {
        Format::Csv => Column::new(
            name.into(),
            values.into_iter().map(format_timestamp).collect::<Vec<_>>(),
        ),
        Format::Parquet => Int64Chunked::from_vec(name.into(), values)
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column(),
    }
}

/// A measure column: NaN (absent) is null.
fn measure(name: &str, values: Vec<f64>) -> Column {
    let values: Vec<Option<f64>> = values
        .into_iter()
        .map(|v| (!v.is_nan()).then_some(v))
        .collect();
    Column::new(name.into(), values)
}

fn learner_columns(
    format: Format,
    l: &[Learner],
    attributes: &churn_core::LearnerAttributes,
) -> Vec<Column> {
    let mut learners = vec![
        Column::new(
            "learner_id".into(),
            l.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ),
        time_column(format, "signup_at", l.iter().map(|x| x.signup_at).collect()),
        Column::new(
            "plan".into(),
            l.iter().map(|x| x.plan.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "acquisition_channel".into(),
            l.iter()
                .map(|x| x.acquisition_channel.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "device".into(),
            l.iter().map(|x| x.device.as_deref()).collect::<Vec<_>>(),
        ),
    ];
    for (j, name) in attributes.numeric.iter().enumerate() {
        learners.push(measure(
            name,
            l.iter()
                .map(|x| x.numeric_attributes.get(j).copied().unwrap_or(f64::NAN))
                .collect(),
        ));
    }
    for (j, name) in attributes.categorical.iter().enumerate() {
        learners.push(Column::new(
            name.into(),
            l.iter()
                .map(|x| x.categorical_attributes.get(j).and_then(|v| v.as_deref()))
                .collect::<Vec<_>>(),
        ));
    }
    learners
}

fn event_columns(
    format: Format,
    names: &Dataset,
    e: &[Event],
    learner_ids: Vec<&str>,
    count_column: bool,
) -> Vec<Column> {
    let c = &names.courses;
    let mut events = vec![
        Column::new("learner_id".into(), learner_ids),
        time_column(format, "ts", e.iter().map(|x| x.ts).collect()),
        Column::new(
            "event_type".into(),
            e.iter()
                .map(|x| names.event_type_name(x.event_type))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "course_id".into(),
            e.iter()
                .map(|x| {
                    x.course()
                        .and_then(|i| c.get(i as usize))
                        .map(|c| c.id.as_str())
                })
                .collect::<Vec<_>>(),
        ),
        measure("duration_s", e.iter().map(|x| x.duration_s).collect()),
        measure("score", e.iter().map(|x| x.score).collect()),
        measure("amount", e.iter().map(|x| x.amount).collect()),
        measure("latency_ms", e.iter().map(|x| x.latency_ms).collect()),
        Column::new(
            "stalls".into(),
            e.iter()
                .map(|x| (!x.stalls.is_nan()).then_some(x.stalls as i64))
                .collect::<Vec<_>>(),
        ),
    ];
    // `count` is optional (default 1): written only when some row needs it,
    // so data of single occurrences keeps the original columns.
    if count_column {
        events.push(Column::new(
            "count".into(),
            e.iter().map(|x| i64::from(x.count)).collect::<Vec<_>>(),
        ));
    }
    events
}

fn assignment_columns(
    format: Format,
    a: &[Assignment],
    learner_ids: Vec<&str>,
    optional: [bool; 4],
) -> Vec<Column> {
    let mut columns = vec![
        Column::new(
            "experiment_id".into(),
            a.iter()
                .map(|x| x.experiment_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("learner_id".into(), learner_ids),
        Column::new(
            "arm".into(),
            a.iter().map(|x| x.arm.as_str()).collect::<Vec<_>>(),
        ),
        time_column(
            format,
            "assigned_at",
            a.iter().map(|x| x.assigned_at).collect(),
        ),
    ];
    let values: [Vec<Option<f64>>; 3] = [
        a.iter().map(|x| x.propensity).collect(),
        a.iter().map(|x| x.risk_score).collect(),
        a.iter().map(|x| x.cost).collect(),
    ];
    for ((name, values), wanted) in ASSIGNMENT_OPTIONALS.iter().zip(values).zip(optional) {
        if wanted {
            columns.push(Column::new((*name).into(), values));
        }
    }
    if optional[3] {
        let churned: Vec<Option<i64>> = a.iter().map(|x| x.churned.map(i64::from)).collect();
        columns.push(Column::new("churned".into(), churned));
    }
    columns
}

/// One table of a [`DatasetWriter`]: its file opened at the first rows (whose
/// columns fix the schema), written to a temporary sibling and renamed into
/// place at [`TableFile::finish`]; removed if never finished.
struct TableFile {
    path: std::path::PathBuf,
    temp: std::path::PathBuf,
    format: Format,
    sink: Option<TableSink>,
    published: bool,
}

enum TableSink {
    Parquet(Box<polars::io::parquet::write::BatchedWriter<std::fs::File>>),
    Csv(polars::io::csv::write::BatchedWriter<std::fs::File>),
}

impl TableFile {
    fn new(dir: &Path, table: Table, format: Format) -> TableFile {
        let path = dir.join(format!("{}.{}", table.name(), format.extension()));
        TableFile {
            temp: churn_core::temporary_sibling(&path),
            path,
            format,
            sink: None,
            published: false,
        }
    }

    fn started(&self) -> bool {
        self.sink.is_some()
    }

    fn error(&self, message: String) -> DataError {
        DataError::Write {
            file: self.path.clone(),
            message,
        }
    }

    fn late_column(&self, column: &str) -> DataError {
        self.error(format!(
            "column {column} is needed by a later chunk but was not in the first one; \
             write the table whole (write_dataset) instead"
        ))
    }

    fn append(&mut self, height: usize, columns: Vec<Column>) -> Result<(), DataError> {
        let mut frame = DataFrame::new(height, columns).map_err(|e| self.error(e.to_string()))?;
        if self.sink.is_none() {
            let file = std::fs::File::create(&self.temp).map_err(|e| self.error(e.to_string()))?;
            let schema = frame.schema().as_ref().clone();
            let sink = match self.format {
                Format::Parquet => ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Zstd(None))
                    .batched(&schema)
                    .map(|w| TableSink::Parquet(Box::new(w))),
                Format::Csv => CsvWriter::new(file)
                    .include_header(true)
                    .batched(&schema)
                    .map(TableSink::Csv),
            };
            self.sink = Some(sink.map_err(|e| self.error(e.to_string()))?);
        }
        let written = match self.sink.as_mut() {
            // Row groups as `ParquetWriter::finish` cuts them, so a table
            // written in one chunk is the same file as one written whole.
            Some(TableSink::Parquet(w)) => {
                polars::frame::chunk_df_for_writing(&mut frame, PARQUET_ROW_GROUP_ROWS)
                    .and_then(|groups| w.write_batch(&groups))
            }
            Some(TableSink::Csv(w)) => w.write_batch(&frame),
            None => Ok(()),
        };
        written.map_err(|e| self.error(e.to_string()))
    }

    fn finish(mut self) -> Result<(), DataError> {
        let finished = match self.sink.take() {
            Some(TableSink::Parquet(w)) => w.finish().map(|_| ()),
            Some(TableSink::Csv(mut w)) => w.finish(),
            None => return Err(self.error("no rows and no columns to write".into())),
        };
        finished.map_err(|e| self.error(e.to_string()))?;
        churn_core::commit_file(&self.temp, &self.path).map_err(|e| self.error(e.to_string()))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for TableFile {
    fn drop(&mut self) {
        if !self.published && self.sink.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn write_table(
    dir: &Path,
    table: Table,
    format: Format,
    height: usize,
    columns: Vec<Column>,
) -> Result<(), DataError> {
    let path = dir.join(format!("{}.{}", table.name(), format.extension()));
    let write_error = |message: String| DataError::Write {
        file: path.clone(),
        message,
    };
    let mut df = DataFrame::new(height, columns).map_err(|e| write_error(e.to_string()))?;
    churn_core::write_atomically(&path, |file| {
        let written = match format {
            Format::Csv => CsvWriter::new(file).include_header(true).finish(&mut df),
            Format::Parquet => ParquetWriter::new(file)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(&mut df)
                .map(|_| ()),
        };
        written.map_err(std::io::Error::other)
    })
    .map_err(|e| write_error(e.to_string()))
}
