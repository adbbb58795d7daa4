//! The account of a validation run: counts that reconcile and every rejected row.

use std::fmt;
use std::path::{Path, PathBuf};

use churn_core::Table;
use polars::prelude::*;

use crate::DataError;

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 1-based data row (the header is not counted; in a CSV file the line is `row + 1`).
    pub row: usize,
    /// The field(s) at fault, comma separated.
    pub field: String,
    /// Why the row was rejected; several reasons are joined by `; `.
    pub reason: String,
    /// The row's values as text, in the file's column order.
    pub values: Vec<String>,
}

/// What happened to one table.
#[derive(Debug, Clone)]
pub struct TableReport {
    /// Which table.
    pub table: Table,
    /// The file read.
    pub file: PathBuf,
    /// The file's columns, in order (the header of the rejects file).
    pub columns: Vec<String>,
    /// Rows read.
    pub read: usize,
    /// Rows accepted.
    pub accepted: usize,
    /// Rows rejected, in row order.
    pub rejects: Vec<Reject>,
}

impl TableReport {
    /// Whether `read = accepted + rejected` holds (it always should; tests check it).
    pub fn reconciles(&self) -> bool {
        self.read == self.accepted + self.rejects.len()
    }
}

/// Per-table reports, in the order the tables were validated.
#[derive(Debug, Clone, Default)]
pub struct ValidationReport {
    /// One report per table present.
    pub tables: Vec<TableReport>,
}

impl ValidationReport {
    /// Rows rejected over all tables.
    pub fn total_rejected(&self) -> usize {
        self.tables.iter().map(|t| t.rejects.len()).sum()
    }

    /// The report of one table, if it was present.
    pub fn table(&self, table: Table) -> Option<&TableReport> {
        self.tables.iter().find(|t| t.table == table)
    }

    /// Writes `<out>/rejects/<table>.csv` for every table present (an empty file
    /// with its header when nothing was rejected) and returns the paths written.
    /// Columns: `row`, `field`, `reason`, then the file's own columns.
    pub fn write_rejects(&self, out: &Path) -> Result<Vec<PathBuf>, DataError> {
        let dir = out.join("rejects");
        churn_core::create_dir_all(&dir).map_err(|source| DataError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut written = Vec::new();
        for report in &self.tables {
            let path = dir.join(format!("{}.csv", report.table.name()));
            write_rejects_file(&report.columns, &report.rejects, &path)?;
            written.push(path);
        }
        Ok(written)
    }

    /// The counts as JSON, for machines (`validation.json`).
    pub fn to_json(&self) -> serde_json::Value {
        let tables: Vec<serde_json::Value> = self
            .tables
            .iter()
            .map(|t| {
                serde_json::json!({
                    "table": t.table.name(),
                    "file": t.file.display().to_string(),
                    "read": t.read,
                    "accepted": t.accepted,
                    "rejected": t.rejects.len(),
                })
            })
            .collect();
        serde_json::json!({ "tables": tables, "total_rejected": self.total_rejected() })
    }
}

/// Writes rejected rows as CSV: `row`, `field`, `reason`, then the file's own
/// `columns` (an empty file with its header when nothing was rejected).
pub fn write_rejects_file(
    columns: &[String],
    rows: &[Reject],
    path: &Path,
) -> Result<(), DataError> {
    let write_error = |message: String| DataError::Write {
        file: path.to_owned(),
        message,
    };
    let file_columns = columns;
    let mut columns: Vec<Column> = vec![
        Column::new(
            "row".into(),
            rows.iter().map(|r| r.row as u64).collect::<Vec<_>>(),
        ),
        Column::new(
            "field".into(),
            rows.iter().map(|r| r.field.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "reason".into(),
            rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
        ),
    ];
    for (i, name) in file_columns.iter().enumerate() {
        // A file column named like one of ours keeps its data under a prefixed name.
        let name = if ["row", "field", "reason"].contains(&name.as_str()) {
            format!("value_{name}")
        } else {
            name.clone()
        };
        let values: Vec<&str> = rows
            .iter()
            .map(|r| r.values.get(i).map_or("", String::as_str))
            .collect();
        columns.push(Column::new(name.into(), values));
    }
    let mut df = DataFrame::new(rows.len(), columns).map_err(|e| write_error(e.to_string()))?;
    churn_core::write_atomically(path, |file| {
        CsvWriter::new(file)
            .include_header(true)
            .finish(&mut df)
            .map_err(std::io::Error::other)
    })
    .map_err(|e| write_error(e.to_string()))
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10}  file",
            "table", "read", "accepted", "rejected"
        )?;
        for t in &self.tables {
            writeln!(
                f,
                "{:<12} {:>10} {:>10} {:>10}  {}",
                t.table.name(),
                t.read,
                t.accepted,
                t.rejects.len(),
                t.file.display()
            )?;
        }
        Ok(())
    }
}
