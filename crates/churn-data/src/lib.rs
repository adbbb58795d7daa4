//! Loading and validating a churn data directory.
//!
//! A data directory holds `learners`, `courses`, `events` and optionally
//! `assignments`, each as `<table>.csv` or `<table>.parquet`. [`load_dir`] reads
//! them with polars, checks every row against the data contract (DESIGN.md) and
//! returns the accepted rows as a typed [`Dataset`] together with a
//! [`ValidationReport`] holding every rejected row with its row number and reason.
//!
//! Nothing is dropped silently: for each table `read = accepted + rejected`,
//! and [`ValidationReport::write_rejects`] writes the rejected rows, values and
//! all, to `<out>/rejects/<table>.csv`. Only file-level problems (a missing file
//! or column, a column of the wrong type) are errors.

mod columns;
mod report;
mod validate;
mod write;

use std::path::{Path, PathBuf};

pub use churn_core::{Dataset, Table};
pub use report::{Reject, TableReport, ValidationReport};
pub use write::{Format, write_dataset};

/// A problem with a whole file or directory (row problems are rejects, not errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The data directory does not exist or is not a directory.
    #[error("data directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    /// A required table has neither a `.csv` nor a `.parquet` file.
    #[error("data directory {dir} has no {table}.csv or {table}.parquet")]
    MissingTable {
        /// The directory searched.
        dir: PathBuf,
        /// The missing table.
        table: Table,
    },
    /// A table has both a `.csv` and a `.parquet` file.
    #[error("data directory {dir} has both {table}.csv and {table}.parquet; keep one")]
    AmbiguousTable {
        /// The directory searched.
        dir: PathBuf,
        /// The table.
        table: Table,
    },
    /// The file could not be read as CSV / Parquet.
    #[error("cannot read {file}: {message}")]
    Read {
        /// The file.
        file: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// A required column is absent.
    #[error("{file}: missing required column {column:?} (columns found: {})", found.join(", "))]
    MissingColumn {
        /// The file.
        file: PathBuf,
        /// The missing column.
        column: String,
        /// The columns the file has.
        found: Vec<String>,
    },
    /// A column cannot hold the contract's type.
    #[error("{file}: column {column:?} should be {expected}, found {found}")]
    WrongType {
        /// The file.
        file: PathBuf,
        /// The column.
        column: String,
        /// The contract's type.
        expected: String,
        /// What was found instead.
        found: String,
    },
    /// Writing an output file failed.
    #[error("cannot write {file}: {message}")]
    Write {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// How to validate.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// The reference time (ms since epoch UTC): rows with a time after it are rejected.
    pub now: i64,
}

/// The accepted rows and the account of every row read.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Accepted rows, ids resolved.
    pub dataset: Dataset,
    /// Per-table counts and rejected rows.
    pub report: ValidationReport,
}

/// Finds the file of `table` in `dir`: `<table>.csv` or `<table>.parquet`.
pub fn table_file(dir: &Path, table: Table) -> Result<Option<PathBuf>, DataError> {
    let csv = dir.join(format!("{}.csv", table.name()));
    let parquet = dir.join(format!("{}.parquet", table.name()));
    match (csv.is_file(), parquet.is_file()) {
        (true, true) => Err(DataError::AmbiguousTable {
            dir: dir.to_owned(),
            table,
        }),
        (true, false) => Ok(Some(csv)),
        (false, true) => Ok(Some(parquet)),
        (false, false) if table.required() => Err(DataError::MissingTable {
            dir: dir.to_owned(),
            table,
        }),
        (false, false) => Ok(None),
    }
}

/// Reads and validates every table of a data directory.
pub fn load_dir(dir: &Path, options: &LoadOptions) -> Result<Loaded, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NotADirectory(dir.to_owned()));
    }
    let required = |table: Table| {
        table_file(dir, table)?.ok_or_else(|| DataError::MissingTable {
            dir: dir.to_owned(),
            table,
        })
    };
    let learners = required(Table::Learners)?;
    let courses = required(Table::Courses)?;
    let events = required(Table::Events)?;
    let assignments = table_file(dir, Table::Assignments)?;
    validate::validate(
        &learners,
        &courses,
        &events,
        assignments.as_deref(),
        options,
    )
}
