//! Prediction points: a table of (learner, as-of) pairs, for data whose
//! learners are each looked at at their own times (day 14 of each one's
//! course, the day before a renewal), besides rolling as-of times.
//!
//! The file is CSV or Parquet with `learner_id` and `as_of` columns (other
//! columns are ignored). A row whose learner is not in the dataset, or whose
//! time is missing or unreadable, is a reject; `read = accepted + rejected`.

use std::path::{Path, PathBuf};

use churn_core::Dataset;

use crate::DataError;
use crate::columns::Frame;
use crate::validation_report::Reject;

/// The accepted points and what was rejected.
#[derive(Debug, Clone, Default)]
pub struct Points {
    /// (learner index into `dataset.learners`, as-of ms), in file order.
    pub pairs: Vec<(u32, i64)>,
    /// Rows read.
    pub read: usize,
    /// The rows refused, with their reasons and values.
    pub rejects: Vec<Reject>,
    /// The file's column names (for the rejects file).
    pub columns: Vec<String>,
    /// The file read.
    pub file: PathBuf,
}

impl Points {
    /// Writes the rejects to `dir/rejects/points.csv`, when there are any;
    /// the file written.
    pub fn write_rejects(&self, dir: &Path) -> Result<Option<PathBuf>, DataError> {
        if self.rejects.is_empty() {
            return Ok(None);
        }
        let dir = dir.join("rejects");
        churn_core::create_dir_all(&dir).map_err(|e| DataError::Write {
            file: dir.clone(),
            message: e.to_string(),
        })?;
        let path = dir.join("points.csv");
        crate::write_rejects_file(&self.columns, &self.rejects, &path)?;
        Ok(Some(path))
    }

    /// Whether every row was accepted or rejected.
    pub fn reconciles(&self) -> bool {
        self.read == self.pairs.len() + self.rejects.len()
    }
}

/// Reads the points of `file` against the learners of `dataset`.
pub fn read_points(file: &Path, dataset: &Dataset) -> Result<Points, DataError> {
    let frame = Frame::read_file(file)?;
    let missing = |name: &str| DataError::MissingColumn {
        file: file.to_owned(),
        column: name.to_owned(),
        found: frame.column_names(),
    };
    let ids = frame
        .text("learner_id", true)?
        .ok_or_else(|| missing("learner_id"))?;
    let times = frame.time("as_of", true)?.ok_or_else(|| missing("as_of"))?;
    let index: std::collections::HashMap<&str, u32> = dataset
        .learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i as u32))
        .collect();
    let mut points = Points {
        read: frame.height(),
        columns: frame.column_names(),
        file: file.to_owned(),
        ..Points::default()
    };
    for row in 0..frame.height() {
        let reject = |field: &str, reason: String| Reject {
            row: row + 1,
            field: field.to_owned(),
            reason,
            values: frame.row_values(row),
        };
        let learner = match ids.get(row).map(str::trim) {
            None | Some("") => Err(reject("learner_id", "learner_id is empty".into())),
            Some(id) => index
                .get(id)
                .copied()
                .ok_or_else(|| reject("learner_id", format!("unknown learner {id:?}"))),
        };
        let at = match times.get(row) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(reject("as_of", "as_of is empty".into())),
            Err(reason) => Err(reject("as_of", format!("as_of: {reason}"))),
        };
        match (learner, at) {
            (Ok(l), Ok(t)) => points.pairs.push((l, t)),
            (Err(r), _) | (_, Err(r)) => points.rejects.push(r),
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::{Learner, parse_timestamp};

    #[test]
    fn reads_pairs_and_rejects_unknown_learners_and_bad_times() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("points.csv");
        std::fs::write(
            &file,
            "learner_id,as_of,note\nL2,2026-02-01T00:00:00Z,a\nL9,2026-02-01T00:00:00Z,b\nL1,yesterday,c\nL1,2026-03-01,d\n",
        )
        .unwrap();
        let dataset = Dataset {
            learners: ["L1", "L2"]
                .iter()
                .map(|id| Learner {
                    id: (*id).into(),
                    ..Learner::default()
                })
                .collect(),
            ..Dataset::default()
        };
        let points = read_points(&file, &dataset).unwrap();
        let feb = parse_timestamp("2026-02-01T00:00:00Z").unwrap();
        let march = parse_timestamp("2026-03-01T00:00:00Z").unwrap();
        assert_eq!(points.pairs, [(1, feb), (0, march)]);
        assert!(points.reconciles());
        assert_eq!(points.rejects.len(), 2);
        assert!(points.rejects[0].reason.contains("L9"));
        assert_eq!(points.rejects[1].field, "as_of");
    }
}
