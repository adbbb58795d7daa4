//! Writes examples chunk by chunk: Parquet row groups or CSV lines.
//!
//! Columns: `learner_id`, `as_of` (UTC timestamp), `churned` (0/1, null when
//! unlabelled), then every feature in order (the registry's, then the feature
//! set's; see `churn_features::FeatureSet::features`). Missing numbers are
//! NaN, missing categories null.

use std::fs::File;
use std::path::{Path, PathBuf};

use churn_core::{Dataset, format_timestamp};
use churn_features::{FeatureSet, Kind};
use polars::prelude::*;

use crate::{Example, TableError};

/// The file format of a table, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Parquet,
    Csv,
}

impl TableFormat {
    /// The format of `path` by extension.
    pub fn of(path: &Path) -> Result<Self, TableError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => Ok(TableFormat::Parquet),
            Some("csv") => Ok(TableFormat::Csv),
            _ => Err(TableError::Write {
                path: path.to_owned(),
                message: "unknown table format (use a .parquet or .csv file name)".into(),
            }),
        }
    }
}

enum Sink {
    Parquet(Box<polars::io::parquet::write::BatchedWriter<File>>),
    Csv {
        file: File,
        header_written: bool,
    },
    /// Nothing written yet: the Parquet writer needs the first chunk's schema.
    PendingParquet(File),
    /// Kept in memory, chunk by chunk, with a Parquet table's column types.
    Memory(Vec<DataFrame>),
}

/// Streams chunks into a hidden file beside the table, published as the
/// table only when [`ChunkWriter::finish`] succeeds.
pub(crate) struct ChunkWriter {
    path: PathBuf,
    temp: PathBuf,
    format: TableFormat,
    /// Feature column names: numeric ones, then categorical ones.
    numeric: Vec<String>,
    categorical: Vec<String>,
    sink: Sink,
}

impl ChunkWriter {
    pub(crate) fn create(path: &Path, features: &FeatureSet) -> Result<Self, TableError> {
        let format = TableFormat::of(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            churn_core::create_dir_all(dir).map_err(|e| write_error(path, e))?;
        }
        let temp = churn_core::temporary_sibling(path);
        let file = File::create(&temp).map_err(|e| write_error(path, e))?;
        let sink = match format {
            TableFormat::Parquet => Sink::PendingParquet(file),
            TableFormat::Csv => Sink::Csv {
                file,
                header_written: false,
            },
        };
        Ok(Self::with_sink(path, temp, format, features, sink))
    }

    /// Keeps the chunks in memory; [`ChunkWriter::finish`] returns them as one frame.
    pub(crate) fn in_memory(features: &FeatureSet) -> Self {
        let name = PathBuf::from("the training table (in memory)");
        let sink = Sink::Memory(Vec::new());
        Self::with_sink(&name, name.clone(), TableFormat::Parquet, features, sink)
    }

    fn with_sink(
        path: &Path,
        temp: PathBuf,
        format: TableFormat,
        features: &FeatureSet,
        sink: Sink,
    ) -> Self {
        let (numeric, categorical): (Vec<_>, Vec<_>) = features
            .features()
            .into_iter()
            .partition(|f| f.kind == Kind::Numeric);
        ChunkWriter {
            path: path.to_owned(),
            temp,
            format,
            numeric: numeric.into_iter().map(|f| f.name).collect(),
            categorical: categorical.into_iter().map(|f| f.name).collect(),
            sink,
        }
    }

    pub(crate) fn write(
        &mut self,
        dataset: &Dataset,
        examples: &[Example<'_>],
    ) -> Result<(), TableError> {
        let mut df = frame(
            dataset,
            examples,
            self.format,
            &self.numeric,
            &self.categorical,
        )
        .map_err(|e| write_error(&self.path, e))?;
        let path = &self.path;
        match &mut self.sink {
            Sink::PendingParquet(file) => {
                let file = file.try_clone().map_err(|e| write_error(path, e))?;
                let mut writer = ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Zstd(None))
                    .batched(df.schema())
                    .map_err(|e| write_error(path, e))?;
                writer.write_batch(&df).map_err(|e| write_error(path, e))?;
                self.sink = Sink::Parquet(Box::new(writer));
            }
            Sink::Parquet(writer) => writer.write_batch(&df).map_err(|e| write_error(path, e))?,
            Sink::Memory(frames) => {
                if examples.is_empty() && !frames.is_empty() {
                    return Ok(());
                }
                frames.push(df);
            }
            Sink::Csv {
                file,
                header_written,
            } => {
                if examples.is_empty() && *header_written {
                    return Ok(());
                }
                CsvWriter::new(&mut *file)
                    .include_header(!*header_written)
                    .finish(&mut df)
                    .map_err(|e| write_error(path, e))?;
                *header_written = true;
            }
        }
        Ok(())
    }

    /// Publishes the file; an in-memory table is returned instead.
    pub(crate) fn finish(mut self) -> Result<Option<DataFrame>, TableError> {
        if matches!(self.sink, Sink::PendingParquet(_))
            || matches!(&self.sink, Sink::Memory(frames) if frames.is_empty())
        {
            // No chunk at all: still a valid, empty table.
            self.write(&Dataset::default(), &[])?;
        }
        if let Sink::Memory(frames) = &mut self.sink {
            let mut chunks = std::mem::take(frames).into_iter();
            let mut table = chunks.next().unwrap_or_default();
            for chunk in chunks {
                table
                    .vstack_mut_owned(chunk)
                    .map_err(|e| write_error(&self.path, e))?;
            }
            table.rechunk_mut();
            return Ok(Some(table));
        }
        if let Sink::Parquet(writer) = &mut self.sink {
            writer.finish().map_err(|e| write_error(&self.path, e))?;
        }
        let Self {
            path, temp, sink, ..
        } = self;
        drop(sink);
        churn_core::commit_file(&temp, &path).map_err(|e| write_error(&path, e))?;
        Ok(None)
    }
}

fn write_error(path: &Path, error: impl ToString) -> TableError {
    TableError::Write {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

fn frame(
    dataset: &Dataset,
    examples: &[Example<'_>],
    format: TableFormat,
    numeric: &[String],
    categorical: &[String],
) -> PolarsResult<DataFrame> {
    let mut columns = Vec::with_capacity(3 + numeric.len() + categorical.len());
    columns.push(Column::new(
        "learner_id".into(),
        examples
            .iter()
            .map(|e| dataset.learners[e.learner as usize].id.as_str())
            .collect::<Vec<_>>(),
    ));
    let as_of: Vec<i64> = examples.iter().map(|e| e.as_of).collect();
    columns.push(match format {
        TableFormat::Parquet => Int64Chunked::from_vec("as_of".into(), as_of)
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column(),
        TableFormat::Csv => Column::new(
            "as_of".into(),
            as_of.into_iter().map(format_timestamp).collect::<Vec<_>>(),
        ),
    });
    columns.push(Column::new(
        "churned".into(),
        examples
            .iter()
            .map(|e| e.churned.map(i32::from))
            .collect::<Vec<_>>(),
    ));
    for (i, name) in numeric.iter().enumerate() {
        columns.push(Column::new(
            name.into(),
            examples
                .iter()
                .map(|e| e.features.numeric[i])
                .collect::<Vec<f64>>(),
        ));
    }
    for (i, name) in categorical.iter().enumerate() {
        columns.push(Column::new(
            name.into(),
            examples
                .iter()
                .map(|e| e.features.categorical[i])
                .collect::<Vec<Option<&str>>>(),
        ));
    }
    DataFrame::new(examples.len(), columns)
}
