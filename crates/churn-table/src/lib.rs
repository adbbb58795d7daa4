//! The training table: every (learner, as-of time) example of a dataset with
//! its features and label, for rolling as-of times, in one pass over the events.
//!
//! The numbers come from `churn-features` (the same function the server runs
//! for one learner); this crate only groups events by learner, runs those
//! definitions per learner in parallel and writes the rows with polars, in
//! chunks of learners so the output never has to fit in memory at once.

mod write;

use std::path::{Path, PathBuf};

use churn_core::Dataset;
use churn_features::FeatureSet;
use churn_features::examples::{Example, Grouped, SnapshotError, SnapshotPlan};
use polars::prelude::DataFrame;

pub use write::TableFormat;

/// Learners per written chunk: bounds the rows held in memory.
const LEARNERS_PER_CHUNK: usize = 8192;

/// What can go wrong building a table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// Counts of what a table holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSummary {
    pub rows: usize,
    pub labelled: usize,
    pub churned: usize,
    pub learners: usize,
    pub snapshots: usize,
    /// Prediction points at which the learner was not an example (not
    /// signed up yet, already gone, finished): no row.
    pub points_not_examples: usize,
}

/// Writes a table, one dataset (or one partition of learners) at a time.
pub struct TableWriter {
    writer: write::ChunkWriter,
    features: FeatureSet,
    summary: TableSummary,
}

impl TableWriter {
    /// Creates `out` (`.parquet` or `.csv`) and its directory; its feature
    /// columns are the registry's and `features`'.
    pub fn create(out: &Path, features: FeatureSet) -> Result<Self, TableError> {
        Ok(TableWriter {
            writer: write::ChunkWriter::create(out, &features)?,
            features,
            summary: TableSummary::default(),
        })
    }

    /// Appends the examples of every learner of `dataset` at the plan's as-of
    /// times, ordered by learner then as-of time. `progress` receives the
    /// number of learners done after each chunk.
    pub fn append(
        &mut self,
        dataset: &mut Dataset,
        plan: &SnapshotPlan,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TableError> {
        let grouped = Grouped::new(dataset).with_features(&self.features);
        let dataset = grouped.dataset();
        let summary = &mut self.summary;
        summary.snapshots = plan.times().len();
        let learners: Vec<u32> = (0..dataset.learners.len() as u32).collect();
        for chunk in learners.chunks(LEARNERS_PER_CHUNK) {
            let per_learner = grouped.examples(chunk, plan);
            summary.learners += per_learner.iter().filter(|rows| !rows.is_empty()).count();
            let examples: Vec<Example<'_>> = per_learner.into_iter().flatten().collect();
            summary.rows += examples.len();
            summary.labelled += examples.iter().filter(|e| e.churned.is_some()).count();
            summary.churned += examples.iter().filter(|e| e.churned == Some(true)).count();
            self.writer.write(dataset, &examples)?;
            progress(chunk.len() as u64);
        }
        Ok(())
    }

    /// Appends the examples of `dataset` at prediction points (learner
    /// index, as-of time), in the order given; a point at which the learner
    /// is not an example gives no row (counted in the summary). The plan
    /// gives the horizon, the end of the data and the label.
    pub fn append_points(
        &mut self,
        dataset: &mut Dataset,
        points: &[(u32, i64)],
        plan: &SnapshotPlan,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TableError> {
        let grouped = Grouped::new(dataset).with_features(&self.features);
        let dataset = grouped.dataset();
        let mut learners = std::collections::HashSet::new();
        let mut times = std::collections::HashSet::new();
        for chunk in points.chunks(LEARNERS_PER_CHUNK * 8) {
            let found = grouped.examples_at(chunk, plan);
            let summary = &mut self.summary;
            summary.points_not_examples += found.iter().filter(|e| e.is_none()).count();
            let examples: Vec<Example<'_>> = found.into_iter().flatten().collect();
            for e in &examples {
                learners.insert(e.learner);
                times.insert(e.as_of);
            }
            summary.rows += examples.len();
            summary.labelled += examples.iter().filter(|e| e.churned.is_some()).count();
            summary.churned += examples.iter().filter(|e| e.churned == Some(true)).count();
            self.writer.write(dataset, &examples)?;
            progress(chunk.len() as u64);
        }
        self.summary.learners += learners.len();
        self.summary.snapshots = times.len();
        Ok(())
    }

    /// A writer that keeps the table in memory (the columns and types of a
    /// Parquet table), for [`TableWriter::finish_in_memory`].
    pub fn in_memory(features: FeatureSet) -> Self {
        TableWriter {
            writer: write::ChunkWriter::in_memory(&features),
            features,
            summary: TableSummary::default(),
        }
    }

    /// Finishes the file and says what it holds.
    pub fn finish(self) -> Result<TableSummary, TableError> {
        self.writer.finish()?;
        Ok(self.summary)
    }

    /// The table of a writer made by [`TableWriter::in_memory`], and what it holds.
    pub fn finish_in_memory(self) -> Result<(DataFrame, TableSummary), TableError> {
        let frame = self.writer.finish()?.unwrap_or_default();
        Ok((frame, self.summary))
    }
}

/// Computes the table of `dataset` at the plan's as-of times and writes it to
/// `out` (`.parquet` or `.csv`), rows ordered by learner then as-of time,
/// with the registry's features and `features`'.
pub fn write_table(
    dataset: &mut Dataset,
    plan: &SnapshotPlan,
    features: FeatureSet,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<TableSummary, TableError> {
    let mut writer = TableWriter::create(out, features)?;
    writer.append(dataset, plan, progress)?;
    writer.finish()
}
