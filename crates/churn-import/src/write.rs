//! Writing an import: the contract tables as Parquet, `contract.toml`,
//! the rejects per mapping section and `import.json`, each file atomically.

use std::io::Write;
use std::path::Path;

use polars::io::parquet::write::BatchedWriter as ParquetBatches;
use polars::prelude::*;

use crate::{
    AttributeColumn, CourseRows, DeadlineRows, EventRows, ImportError, ImportReport, LearnerRows,
    Mapping,
};

fn io_error(path: &Path) -> impl Fn(String) -> ImportError + '_ {
    move |message| ImportError::Io {
        path: path.to_owned(),
        message,
    }
}

pub(crate) fn time_column(name: &str, values: Vec<i64>) -> Column {
    Int64Chunked::from_vec(name.into(), values)
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        .into_column()
}

fn parquet(path: &Path, height: usize, columns: Vec<Column>) -> Result<(), ImportError> {
    let mut frame = DataFrame::new(height, columns).map_err(|e| io_error(path)(e.to_string()))?;
    write_frame(path, &mut frame)
}

fn write_frame(path: &Path, frame: &mut DataFrame) -> Result<(), ImportError> {
    let error = io_error(path);
    churn_core::write_atomically(path, |file| {
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(frame)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
    .map_err(|e: std::io::Error| error(e.to_string()))
}

/// The Parquet writer of the events, with the options of every table.
fn events_writer<W: std::io::Write>(file: W) -> Result<ParquetBatches<W>, String> {
    let schema = crate::no_events()?.schema().as_ref().clone();
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .batched(&schema)
        .map_err(|e| e.to_string())
}

/// `events.parquet` being written, row group by row group, as the batches
/// of events are merged: to a temporary file, published at [`finish`]
/// (removed if the import stops before).
///
/// [`finish`]: EventSink::finish
pub(crate) struct EventSink {
    path: std::path::PathBuf,
    temp: std::path::PathBuf,
    writer: ParquetBatches<std::fs::File>,
    published: bool,
}

impl EventSink {
    pub(crate) fn create(path: &Path) -> Result<Self, ImportError> {
        let temp = churn_core::temporary_sibling(path);
        let error = io_error(path);
        let file = std::fs::File::create(&temp).map_err(|e| error(e.to_string()))?;
        Ok(EventSink {
            path: path.to_owned(),
            writer: events_writer(file).map_err(&error)?,
            temp,
            published: false,
        })
    }

    /// The file being written (its final name).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one batch's events as a row group.
    pub(crate) fn write(&mut self, frame: &DataFrame) -> Result<(), ImportError> {
        self.writer
            .write_batch(frame)
            .map_err(|e| io_error(&self.path)(e.to_string()))
    }

    /// Writes the footer and publishes the file (synced, renamed).
    pub(crate) fn finish(mut self) -> Result<(), ImportError> {
        let error = io_error(&self.path);
        self.writer.finish().map_err(|e| error(e.to_string()))?;
        churn_core::commit_file(&self.temp, &self.path).map_err(|e| error(e.to_string()))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn text_file(path: &Path, text: &str) -> Result<(), ImportError> {
    churn_core::write_atomically(path, |file| file.write_all(text.as_bytes()))
        .map_err(|e: std::io::Error| io_error(path)(e.to_string()))
}

pub(crate) fn write_all(
    out: &Path,
    mapping: &Mapping,
    report: &ImportReport,
    learners: LearnerRows,
    courses: CourseRows,
    events: EventRows,
    deadlines: DeadlineRows,
) -> Result<(), ImportError> {
    churn_core::create_dir_all(out).map_err(|e| io_error(out)(e.to_string()))?;
    for stale in [
        "learners.csv",
        "courses.csv",
        "events.csv",
        "assignments.csv",
        "assignments.parquet",
        "deadlines.csv",
        "deadlines.parquet",
    ] {
        // A contract directory holds one file per table: an earlier import's
        // CSV beside this Parquet would make the directory ambiguous.
        let path = out.join(stale);
        if path.is_file() {
            std::fs::remove_file(&path).map_err(|e| io_error(&path)(e.to_string()))?;
        }
    }
    let n = learners.learner_id.len();
    let mut columns = vec![
        Column::new("learner_id".into(), learners.learner_id),
        time_column("signup_at", learners.signup_at),
        Column::new("plan".into(), learners.plan),
        Column::new("acquisition_channel".into(), learners.channel),
        Column::new("device".into(), learners.device),
    ];
    for (name, column) in learners.attributes {
        columns.push(match column {
            AttributeColumn::Numeric(values) => Column::new(name.into(), values),
            AttributeColumn::Categorical(values) => Column::new(name.into(), values),
        });
    }
    parquet(&out.join("learners.parquet"), n, columns)?;
    let n = courses.course_id.len();
    parquet(
        &out.join("courses.parquet"),
        n,
        vec![
            Column::new("course_id".into(), courses.course_id),
            Column::new("level".into(), courses.level),
            Column::new("lessons".into(), courses.lessons),
            Int64Chunked::from_iter_options("ends_at".into(), courses.ends_at.into_iter())
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
            Int64Chunked::from_iter_options("starts_at".into(), courses.starts_at.into_iter())
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
        ],
    )?;
    if !deadlines.due_at.is_empty() {
        let n = deadlines.due_at.len();
        parquet(
            &out.join("deadlines.parquet"),
            n,
            vec![
                Column::new("course_id".into(), deadlines.course_id),
                time_column("due_at", deadlines.due_at),
                Column::new("event_type".into(), deadlines.event_type),
            ],
        )?;
    }
    events.sink.finish()?;
    text_file(
        &out.join(churn_data::CONTRACT_FILE),
        &mapping.contract.to_toml(),
    )?;

    let rejects_dir = out.join("rejects");
    churn_core::create_dir_all(&rejects_dir).map_err(|e| io_error(&rejects_dir)(e.to_string()))?;
    for section in &report.sections {
        let path = rejects_dir.join(format!(
            "{}.csv",
            section.section.replace("[", "-").replace("]", "")
        ));
        let mut writer = csv::Writer::from_writer(Vec::new());
        let error = io_error(&path);
        writer
            .write_record(["file", "row", "field", "reason", "values"])
            .map_err(|e| error(e.to_string()))?;
        for r in &section.rejects {
            writer
                .write_record([
                    r.file.display().to_string(),
                    r.row.to_string(),
                    r.field.clone(),
                    r.reason.clone(),
                    serde_json::Value::Object(r.values.clone()).to_string(),
                ])
                .map_err(|e| error(e.to_string()))?;
        }
        let bytes = writer.into_inner().map_err(|e| error(e.to_string()))?;
        churn_core::write_atomically(&path, |file| file.write_all(&bytes))
            .map_err(|e: std::io::Error| error(e.to_string()))?;
    }
    let json = serde_json::to_string_pretty(report).map_err(|e| io_error(out)(e.to_string()))?;
    text_file(&out.join("import.json"), &format!("{json}\n"))
}
