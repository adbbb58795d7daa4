//! Any labelled table (CSV or Parquet): numeric and categorical feature
//! columns, a 0/1 label and an optional time column, for `churn train
//! --features`. Rows with a bad label or time are rejected with their row,
//! field and reason, never dropped silently.

use std::path::{Path, PathBuf};

use polars::prelude::DataType;

use crate::DataError;
use crate::columns::{Frame, NumCol, TextCol, TimeCol};
use crate::validation_report::Reject;

/// Kind of a feature column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

/// A labelled table: features (numeric columns first, then categorical, each
/// group in file order), labels and times of the accepted rows.
#[derive(Debug, Clone)]
pub struct LabelledTable {
    pub file: PathBuf,
    /// Every column of the file, in order (the header of its rejects file).
    pub file_columns: Vec<String>,
    pub columns: Vec<(String, ColumnKind)>,
    /// Row-major, one value per numeric column (NaN = missing).
    pub numeric: Vec<f64>,
    /// Row-major, one value per categorical column.
    pub categorical: Vec<Option<String>>,
    /// 0 or 1.
    pub labels: Vec<f64>,
    /// ms since epoch, when a time column was named.
    pub times: Option<Vec<i64>>,
    /// 1-based data row of each accepted row.
    pub rows: Vec<usize>,
    /// Rows read from the file.
    pub read: usize,
    pub rejects: Vec<Reject>,
}

/// A time column: timestamps, or integers (a period number, epoch seconds).
enum Time {
    Stamp(TimeCol),
    Number(NumCol),
}

impl Time {
    fn get(&self, row: usize) -> Result<Option<i64>, String> {
        match self {
            Time::Stamp(col) => col.get(row),
            Time::Number(col) => match col.get(row) {
                Ok(Some(v)) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Some(v as i64)),
                Ok(Some(v)) => Err(format!("time must be a timestamp or an integer, found {v}")),
                Ok(None) => Ok(None),
                Err(text) => Err(format!("not a time: {text:?}")),
            },
        }
    }
}

enum Feature {
    Numeric(NumCol),
    Categorical(TextCol),
}

/// Reads `file`; `label` must be 0/1 (or true/false), `time` a timestamp.
/// Columns named in `exclude` are neither features nor checked.
pub fn read_labelled(
    file: &Path,
    label: &str,
    time: Option<&str>,
    exclude: &[&str],
) -> Result<LabelledTable, DataError> {
    let frame = Frame::read_file(file)?;
    let labels = frame.flag(label, true)?;
    let times = match time {
        Some(name) if column_kind(&frame, name)? == ColumnKind::Numeric => {
            frame.number(name, true)?.map(Time::Number)
        }
        Some(name) => frame.time(name, true)?.map(Time::Stamp),
        None => None,
    };
    let mut numeric_columns = Vec::new();
    let mut categorical_columns = Vec::new();
    for name in frame.column_names() {
        if name == label || Some(name.as_str()) == time || exclude.contains(&name.as_str()) {
            continue;
        }
        match column_kind(&frame, &name)? {
            ColumnKind::Numeric => {
                if let Some(col) = frame.number(&name, true)? {
                    numeric_columns.push((name, Feature::Numeric(col)));
                }
            }
            ColumnKind::Categorical => {
                if let Some(col) = frame.text(&name, true)? {
                    categorical_columns.push((name, Feature::Categorical(col)));
                }
            }
        }
    }
    if numeric_columns.is_empty() && categorical_columns.is_empty() {
        return Err(DataError::Read {
            file: file.to_owned(),
            message: format!("no feature columns besides the label {label:?}"),
        });
    }
    let mut table = LabelledTable {
        file: file.to_owned(),
        file_columns: frame.column_names(),
        columns: numeric_columns
            .iter()
            .map(|(n, _)| (n.clone(), ColumnKind::Numeric))
            .chain(
                categorical_columns
                    .iter()
                    .map(|(n, _)| (n.clone(), ColumnKind::Categorical)),
            )
            .collect(),
        numeric: Vec::new(),
        categorical: Vec::new(),
        labels: Vec::new(),
        times: times.as_ref().map(|_| Vec::new()),
        rows: Vec::new(),
        read: frame.height(),
        rejects: Vec::new(),
    };
    let Some(labels) = labels else {
        return Err(DataError::Read {
            file: file.to_owned(),
            message: format!("no label column {label:?}"),
        });
    };
    let mut numbers = Vec::with_capacity(numeric_columns.len());
    for row in 0..frame.height() {
        let mut faults: Vec<(String, String)> = Vec::new();
        let y = match labels.get(row) {
            Ok(Some(y)) if y == 0.0 || y == 1.0 => Some(y),
            Ok(Some(y)) => {
                faults.push((label.to_owned(), format!("label must be 0 or 1, found {y}")));
                None
            }
            Ok(None) => {
                faults.push((label.to_owned(), "missing label".into()));
                None
            }
            Err(text) => {
                faults.push((
                    label.to_owned(),
                    format!("label must be 0 or 1, found {text:?}"),
                ));
                None
            }
        };
        let t = match (&times, time) {
            (Some(col), Some(name)) => match col.get(row) {
                Ok(Some(t)) => Some(t),
                Ok(None) => {
                    faults.push((name.to_owned(), "missing time".into()));
                    None
                }
                Err(reason) => {
                    faults.push((name.to_owned(), reason));
                    None
                }
            },
            _ => None,
        };
        numbers.clear();
        for (name, col) in &numeric_columns {
            if let Feature::Numeric(col) = col {
                match col.get(row) {
                    Ok(v) => numbers.push(v.unwrap_or(f64::NAN)),
                    Err(text) => faults.push((name.clone(), format!("not a number: {text:?}"))),
                }
            }
        }
        if !faults.is_empty() {
            table.rejects.push(Reject {
                row: frame.first_row + row + 1,
                field: faults
                    .iter()
                    .map(|f| f.0.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                reason: faults
                    .iter()
                    .map(|f| f.1.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                values: frame.row_values(row),
            });
            continue;
        }
        table.labels.push(y.unwrap_or(0.0));
        if let (Some(times), Some(t)) = (&mut table.times, t) {
            times.push(t);
        }
        table.numeric.extend_from_slice(&numbers);
        for (_, col) in &categorical_columns {
            if let Feature::Categorical(col) = col {
                table.categorical.push(col.get(row).map(str::to_owned));
            }
        }
        table.rows.push(frame.first_row + row + 1);
    }
    Ok(table)
}

/// Typed numbers and booleans are numeric, text is categorical unless every
/// non-empty value is a number (a CSV column of numbers).
fn column_kind(frame: &Frame, name: &str) -> Result<ColumnKind, DataError> {
    let Ok(column) = frame.df.column(name) else {
        return Ok(ColumnKind::Categorical);
    };
    let dtype = column.dtype();
    if dtype.is_primitive_numeric() || dtype.is_bool() || dtype.is_null() {
        return Ok(ColumnKind::Numeric);
    }
    match dtype {
        DataType::String => {
            let Ok(strings) = column.str() else {
                return Ok(ColumnKind::Categorical);
            };
            let mut any = false;
            for value in strings.iter().flatten() {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                if value.parse::<f64>().is_err() {
                    return Ok(ColumnKind::Categorical);
                }
                any = true;
            }
            Ok(if any {
                ColumnKind::Numeric
            } else {
                ColumnKind::Categorical
            })
        }
        other => Err(DataError::WrongType {
            file: frame.file.clone(),
            column: name.to_owned(),
            expected: "a number, a boolean or text".into(),
            found: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_typed_and_bad_labels_rejected_with_row_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(
            &file,
            "id,x,plan,y,when\n\
             a,1.5,free,1,2026-01-01T00:00:00Z\n\
             b,,paid,0,2026-01-02T00:00:00Z\n\
             c,2,,2,2026-01-03T00:00:00Z\n\
             d,3,free,,2026-01-04T00:00:00Z\n\
             e,4,free,true,yesterday\n",
        )
        .unwrap();
        let t = read_labelled(&file, "y", Some("when"), &["id"]).unwrap();
        assert_eq!(
            t.columns,
            vec![
                ("x".to_owned(), ColumnKind::Numeric),
                ("plan".to_owned(), ColumnKind::Categorical)
            ]
        );
        assert_eq!(t.read, 5);
        assert_eq!(t.labels, vec![1.0, 0.0]);
        assert_eq!(t.rows, vec![1, 2]);
        assert_eq!(t.numeric[0], 1.5);
        assert!(t.numeric[1].is_nan());
        assert_eq!(
            t.categorical,
            vec![Some("free".into()), Some("paid".into())]
        );
        assert_eq!(t.times.as_ref().map(Vec::len), Some(2));
        let rejects: Vec<(usize, &str)> = t
            .rejects
            .iter()
            .map(|r| (r.row, r.field.as_str()))
            .collect();
        assert_eq!(rejects, vec![(3, "y"), (4, "y"), (5, "when")]);
        assert!(
            t.rejects[0].reason.contains("0 or 1"),
            "{}",
            t.rejects[0].reason
        );
        assert_eq!(t.labels.len() + t.rejects.len(), t.read, "counts reconcile");

        let err = read_labelled(&file, "churned", None, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.csv") && err.contains("churned"), "{err}");
    }
}
