//! Typed access to the columns of one table file.
//!
//! Parquet columns arrive typed; CSV columns are all read as text so that every
//! bad value becomes a row-level reject with its reason, instead of a reader
//! error for the whole file. A column that is missing, of a wrong Parquet type,
//! or text of which not one value parses, is a file-level [`DataError`].

use std::path::{Path, PathBuf};

use churn_core::{format_timestamp, parse_timestamp};
use polars::prelude::*;

use crate::DataError;

/// Where a table's rows come from: a CSV or Parquet file, or a frame
/// already in memory (the Python package's Arrow tables). Both are read by
/// the same rules; `name` is what messages and reports call the table.
#[derive(Clone)]
pub enum TableSource {
    /// A `.csv` or `.parquet` file.
    File(PathBuf),
    /// Columns in memory, typed as a Parquet file's would be (or all text, as CSV's).
    Frame {
        /// What errors and the validation report call it.
        name: PathBuf,
        /// The rows.
        frame: DataFrame,
    },
}

impl TableSource {
    /// The file, or the in-memory table's name.
    pub fn name(&self) -> &Path {
        match self {
            TableSource::File(file) => file,
            TableSource::Frame { name, .. } => name,
        }
    }

    /// Whether part of it can be read without reading all of it (Parquet, frames).
    pub(crate) fn sliceable(&self) -> bool {
        match self {
            TableSource::File(file) => file.extension().and_then(|e| e.to_str()) == Some("parquet"),
            TableSource::Frame { .. } => true,
        }
    }
}

/// One table read into memory.
pub(crate) struct Frame {
    pub(crate) file: PathBuf,
    pub(crate) df: DataFrame,
    /// 0-based row of the file where this frame starts (0 unless a slice).
    pub(crate) first_row: usize,
}

/// A text column; empty strings count as null.
pub(crate) struct TextCol(StringChunked);

/// A numeric column, typed or parsed per row from text.
pub(crate) enum NumCol {
    Typed(Float64Chunked),
    Text(StringChunked, fn(&str) -> Option<f64>),
}

/// A timestamp column: ms since epoch UTC, typed or parsed per row from text.
pub(crate) enum TimeCol {
    Typed(Int64Chunked),
    Text(StringChunked),
}

impl Frame {
    pub(crate) fn read(source: &TableSource) -> Result<Frame, DataError> {
        Self::read_slice(source, 0, usize::MAX)
    }

    /// Reads a whole file.
    pub(crate) fn read_file(file: &Path) -> Result<Frame, DataError> {
        Self::read(&TableSource::File(file.to_owned()))
    }

    /// The number of rows of a Parquet file, from its footer, or of a frame
    /// (`None` for CSV).
    pub(crate) fn known_rows(source: &TableSource) -> Result<Option<usize>, DataError> {
        let file = match source {
            TableSource::Frame { frame, .. } => return Ok(Some(frame.height())),
            TableSource::File(file) => file,
        };
        if file.extension().and_then(|e| e.to_str()) != Some("parquet") {
            return Ok(None);
        }
        let handle = std::fs::File::open(file).map_err(|source| DataError::Io {
            path: file.to_owned(),
            source,
        })?;
        ParquetReader::new(handle)
            .num_rows()
            .map(Some)
            .map_err(|e| DataError::Read {
                file: file.to_owned(),
                message: e.to_string(),
            })
    }

    /// Rows `first_row .. first_row + rows` of the file (fewer at its end).
    pub(crate) fn read_slice(
        source: &TableSource,
        first_row: usize,
        rows: usize,
    ) -> Result<Frame, DataError> {
        let file = match source {
            TableSource::File(file) => file,
            TableSource::Frame { name, frame } => {
                let offset = i64::try_from(first_row).unwrap_or(i64::MAX);
                let mut df = frame.slice(offset, rows);
                df.rechunk_mut();
                return Ok(Frame {
                    file: name.clone(),
                    df,
                    first_row,
                });
            }
        };
        let n_rows = (rows != usize::MAX).then_some(rows);
        let read_error = |source: PolarsError| DataError::Read {
            file: file.to_owned(),
            message: source.to_string(),
        };
        let df = match file.extension().and_then(|e| e.to_str()) {
            Some("csv") => CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .with_skip_rows_after_header(first_row)
                .with_n_rows(n_rows)
                .try_into_reader_with_file_path(Some(file.to_owned()))
                .and_then(|reader| reader.finish())
                .map_err(read_error)?,
            Some("parquet") => {
                let handle = std::fs::File::open(file).map_err(|source| DataError::Io {
                    path: file.to_owned(),
                    source,
                })?;
                ParquetReader::new(handle)
                    .with_slice(n_rows.map(|n| (first_row, n)))
                    .finish()
                    .map_err(read_error)?
            }
            _ => {
                return Err(DataError::Read {
                    file: file.to_owned(),
                    message: "unknown file type (expected .csv or .parquet)".into(),
                });
            }
        };
        let mut df = df;
        df.rechunk_mut();
        Ok(Frame {
            file: file.to_owned(),
            df,
            first_row,
        })
    }

    pub(crate) fn height(&self) -> usize {
        self.df.height()
    }

    pub(crate) fn column_names(&self) -> Vec<String> {
        self.df
            .get_column_names()
            .into_iter()
            .map(|n| n.to_string())
            .collect()
    }

    fn column(&self, name: &str, required: bool) -> Result<Option<&Column>, DataError> {
        match self.df.column(name) {
            Ok(column) => Ok(Some(column)),
            Err(_) if !required => Ok(None),
            Err(_) => Err(DataError::MissingColumn {
                file: self.file.clone(),
                column: name.to_owned(),
                found: self.column_names(),
            }),
        }
    }

    fn wrong_type(&self, column: &str, expected: &str, found: String) -> DataError {
        DataError::WrongType {
            file: self.file.clone(),
            column: column.to_owned(),
            expected: expected.to_owned(),
            found,
        }
    }

    fn cast(&self, column: &Column, dtype: &DataType) -> Result<Series, DataError> {
        column
            .as_materialized_series()
            .cast(dtype)
            .map_err(|e| self.wrong_type(column.name(), &dtype.to_string(), e.to_string()))
    }

    pub(crate) fn text(&self, name: &str, required: bool) -> Result<Option<TextCol>, DataError> {
        let Some(column) = self.column(name, required)? else {
            return Ok(None);
        };
        let dtype = column.dtype();
        let series = match dtype {
            DataType::String => column.as_materialized_series().clone(),
            // Categories (pandas `category`, polars `Categorical`, Arrow
            // dictionaries) are text by their values.
            d if d.is_integer() || d.is_null() || d.is_categorical() || d.is_enum() => {
                self.cast(column, &DataType::String)?
            }
            other => return Err(self.wrong_type(name, "text", other.to_string())),
        };
        let strings = series
            .str()
            .map_err(|e| self.wrong_type(name, "text", e.to_string()))?
            .clone();
        Ok(Some(TextCol(strings)))
    }

    pub(crate) fn number(&self, name: &str, required: bool) -> Result<Option<NumCol>, DataError> {
        self.numeric(name, required, "a number", parse_number)
    }

    /// A 0/1 column; text may also say `true` / `false`.
    pub(crate) fn flag(&self, name: &str, required: bool) -> Result<Option<NumCol>, DataError> {
        self.numeric(name, required, "0/1", parse_flag)
    }

    fn numeric(
        &self,
        name: &str,
        required: bool,
        expected: &str,
        parse: fn(&str) -> Option<f64>,
    ) -> Result<Option<NumCol>, DataError> {
        let Some(column) = self.column(name, required)? else {
            return Ok(None);
        };
        let dtype = column.dtype();
        if dtype.is_primitive_numeric() || dtype.is_bool() || dtype.is_null() {
            let series = self.cast(column, &DataType::Float64)?;
            let values = series
                .f64()
                .map_err(|e| self.wrong_type(name, expected, e.to_string()))?
                .clone();
            return Ok(Some(NumCol::Typed(values)));
        }
        if !matches!(dtype, DataType::String) {
            return Err(self.wrong_type(name, expected, dtype.to_string()));
        }
        let strings = column
            .str()
            .map_err(|e| self.wrong_type(name, expected, e.to_string()))?
            .clone();
        self.require_some_parse(name, expected, &strings, |s| parse(s).is_some())?;
        Ok(Some(NumCol::Text(strings, parse)))
    }

    pub(crate) fn time(&self, name: &str, required: bool) -> Result<Option<TimeCol>, DataError> {
        let Some(column) = self.column(name, required)? else {
            return Ok(None);
        };
        let expected = "a timestamp";
        match column.dtype() {
            DataType::String => {
                let strings = column
                    .str()
                    .map_err(|e| self.wrong_type(name, expected, e.to_string()))?
                    .clone();
                self.require_some_parse(name, expected, &strings, |s| parse_timestamp(s).is_ok())?;
                Ok(Some(TimeCol::Text(strings)))
            }
            DataType::Datetime(_, _) | DataType::Date => {
                // A time-zone-aware column stores UTC instants; a naive one is
                // UTC by the data contract. Either way the physical value is it.
                let ms = self.cast(column, &DataType::Datetime(TimeUnit::Milliseconds, None))?;
                let physical = self.cast(&ms.into_column(), &DataType::Int64)?;
                let values = physical
                    .i64()
                    .map_err(|e| self.wrong_type(name, expected, e.to_string()))?
                    .clone();
                Ok(Some(TimeCol::Typed(values)))
            }
            DataType::Null => Ok(Some(TimeCol::Typed(Int64Chunked::full_null(
                name.into(),
                self.height(),
            )))),
            other => Err(self.wrong_type(name, expected, other.to_string())),
        }
    }

    /// A text column none of whose non-empty values parses is the wrong column,
    /// not a file full of bad rows: say so once.
    fn require_some_parse(
        &self,
        name: &str,
        expected: &str,
        strings: &StringChunked,
        parses: impl Fn(&str) -> bool,
    ) -> Result<(), DataError> {
        let mut first_bad = None;
        for (row, value) in strings.iter().enumerate() {
            let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            if parses(value) {
                return Ok(());
            }
            first_bad.get_or_insert((row, value.to_owned()));
        }
        match first_bad {
            None => Ok(()),
            Some((row, value)) => Err(self.wrong_type(
                name,
                expected,
                format!(
                    "no value parses, e.g. {value:?} at row {}",
                    self.first_row + row + 1
                ),
            )),
        }
    }

    /// The row as text, for the rejects file: every column of the file, in order.
    pub(crate) fn row_values(&self, row: usize) -> Vec<String> {
        self.df
            .columns()
            .iter()
            .map(|column| match column.get(row) {
                Ok(AnyValue::Null) | Err(_) => String::new(),
                Ok(AnyValue::String(s)) => s.to_owned(),
                Ok(AnyValue::StringOwned(s)) => s.to_string(),
                Ok(AnyValue::Datetime(v, unit, _)) => format_timestamp(to_ms(v, unit)),
                Ok(AnyValue::DatetimeOwned(v, unit, _)) => format_timestamp(to_ms(v, unit)),
                Ok(other) => other.to_string(),
            })
            .collect()
    }
}

fn to_ms(value: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Nanoseconds => value.div_euclid(1_000_000),
        TimeUnit::Microseconds => value.div_euclid(1_000),
        TimeUnit::Milliseconds => value,
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

fn parse_flag(text: &str) -> Option<f64> {
    match text.trim() {
        "0" | "false" | "FALSE" | "False" => Some(0.0),
        "1" | "true" | "TRUE" | "True" => Some(1.0),
        _ => None,
    }
}

impl TextCol {
    /// The value, or `None` when null or empty.
    pub(crate) fn get(&self, row: usize) -> Option<&str> {
        self.0.get(row).filter(|v| !v.trim().is_empty())
    }
}

impl NumCol {
    /// `Ok(None)` for null; `Err` with the offending text when it does not parse.
    pub(crate) fn get(&self, row: usize) -> Result<Option<f64>, String> {
        match self {
            NumCol::Typed(values) => Ok(values.get(row)),
            NumCol::Text(strings, parse) => match strings.get(row).map(str::trim) {
                None | Some("") => Ok(None),
                Some(text) => parse(text).map(Some).ok_or_else(|| text.to_owned()),
            },
        }
    }
}

impl TimeCol {
    /// `Ok(None)` for null; `Err` with the reason when the text does not parse.
    pub(crate) fn get(&self, row: usize) -> Result<Option<i64>, String> {
        match self {
            TimeCol::Typed(values) => Ok(values.get(row)),
            TimeCol::Text(strings) => match strings.get(row).map(str::trim) {
                None | Some("") => Ok(None),
                Some(text) => parse_timestamp(text).map(Some).map_err(|e| e.to_string()),
            },
        }
    }
}
