//! Writing a [`Dataset`] as a data directory (used by the simulator and tests).

use std::path::Path;

use churn_core::{Dataset, Table, format_timestamp};
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
    churn_core::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let learner_id = |i: u32| dataset.learners[i as usize].id.as_str();
    let time_column = |name: &str, values: Vec<i64>| -> Column {
        match format {
            Format::Csv => Column::new(
                name.into(),
                values.into_iter().map(format_timestamp).collect::<Vec<_>>(),
            ),
            Format::Parquet => Int64Chunked::from_vec(name.into(), values)
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
        }
    };
    let measure = |name: &str, values: Vec<f64>| -> Column {
        let values: Vec<Option<f64>> = values
            .into_iter()
            .map(|v| (!v.is_nan()).then_some(v))
            .collect();
        Column::new(name.into(), values)
    };

    let l = &dataset.learners;
    let learners = vec![
        Column::new(
            "learner_id".into(),
            l.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ),
        time_column("signup_at", l.iter().map(|x| x.signup_at).collect()),
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
    let mut learners = learners;
    let attributes = &dataset.attributes;
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
    write_table(dir, Table::Learners, format, l.len(), learners)?;

    let c = &dataset.courses;
    let courses = vec![
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
    // `ends_at` and `starts_at` are optional: written only when some course
    // has one.
    let mut courses = courses;
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
    write_table(dir, Table::Courses, format, c.len(), courses)?;

    let e = &dataset.events;
    let mut events = vec![
        Column::new(
            "learner_id".into(),
            e.iter().map(|x| learner_id(x.learner)).collect::<Vec<_>>(),
        ),
        time_column("ts", e.iter().map(|x| x.ts).collect()),
        Column::new(
            "event_type".into(),
            e.iter()
                .map(|x| dataset.event_type_name(x.event_type))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "course_id".into(),
            e.iter()
                .map(|x| x.course().map(|i| c[i as usize].id.as_str()))
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
    if e.iter().any(|x| x.count != 1) {
        events.push(Column::new(
            "count".into(),
            e.iter().map(|x| i64::from(x.count)).collect::<Vec<_>>(),
        ));
    }
    write_table(dir, Table::Events, format, e.len(), events)?;

    let a = &dataset.assignments;
    if !a.is_empty() {
        let mut columns = vec![
            Column::new(
                "experiment_id".into(),
                a.iter()
                    .map(|x| x.experiment_id.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "learner_id".into(),
                a.iter().map(|x| learner_id(x.learner)).collect::<Vec<_>>(),
            ),
            Column::new(
                "arm".into(),
                a.iter().map(|x| x.arm.as_str()).collect::<Vec<_>>(),
            ),
            time_column("assigned_at", a.iter().map(|x| x.assigned_at).collect()),
        ];
        let optional: [(&str, Vec<Option<f64>>); 3] = [
            ("propensity", a.iter().map(|x| x.propensity).collect()),
            ("risk_score", a.iter().map(|x| x.risk_score).collect()),
            ("cost", a.iter().map(|x| x.cost).collect()),
        ];
        for (name, values) in optional {
            if values.iter().any(Option::is_some) {
                columns.push(Column::new(name.into(), values));
            }
        }
        if a.iter().any(|x| x.churned.is_some()) {
            let churned: Vec<Option<i64>> = a.iter().map(|x| x.churned.map(i64::from)).collect();
            columns.push(Column::new("churned".into(), churned));
        }
        write_table(dir, Table::Assignments, format, a.len(), columns)?;
    }
    let d = &dataset.deadlines;
    if !d.is_empty() {
        let course_name = |c: u32| dataset.courses.get(c as usize).map(|x| x.id.as_str());
        let columns = vec![
            Column::new(
                "course_id".into(),
                d.iter().map(|x| course_name(x.course)).collect::<Vec<_>>(),
            ),
            time_column("due_at", d.iter().map(|x| x.due_at).collect()),
            Column::new(
                "event_type".into(),
                d.iter().map(|x| x.event_type.as_str()).collect::<Vec<_>>(),
            ),
        ];
        write_table(dir, Table::Deadlines, format, d.len(), columns)?;
    }
    Ok(())
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
