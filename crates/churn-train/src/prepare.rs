//! From read data to a table ready to fit: the rows, the split, the
//! backtest's folds, the rows a refit learns from, and what the card and the
//! report say about them. Two sources: churn's features of a data directory
//! (the table built by [`Table::from_dataset`] and its kin) and any plain
//! table of numeric and categorical columns with a 0/1 label.

use std::path::{Path, PathBuf};

use churn_model::Kind;

use crate::{Split, SplitSizes, Table, TrainError, holdout, time_holdout_folds};

/// Share of a plain table's rows held out for validation, and for test
/// without a test table.
pub const HOLDOUT: f64 = 0.2;

/// A labelled table ready to fit, and what the card and report say about it.
pub struct Prepared {
    pub table: Table,
    pub split: Split,
    /// The card's `training` section (its fit filled in per family).
    pub training: churn_model::Training,
    /// Lines under the report's title.
    pub context: Vec<String>,
    /// The backtest's folds, oldest first; the last is `split` (none: no backtest).
    pub folds: Vec<Split>,
    /// The rows a refit learns from (none: this kind of data is not refitted).
    pub refit_rows: Option<Vec<usize>>,
    /// What the caller should tell its user, in order: the split's account
    /// and, when the data allow fewer backtest folds than asked, that.
    pub notes: Vec<String>,
}

/// The rolling-origin folds `asked` for, or as many as the data allow, or
/// none; `folds(k)` makes k of them. The note says when fewer were made.
pub fn degrading_folds(
    asked: usize,
    folds: impl Fn(usize) -> Result<Vec<Split>, TrainError>,
) -> (Vec<Split>, Option<String>) {
    for k in (2..=asked).rev() {
        if let Ok(splits) = folds(k) {
            let note =
                (k < asked).then(|| format!("backtest: the data allow {k} folds, not {asked}"));
            return (splits, note);
        }
    }
    let note = (asked > 1).then(|| {
        "backtest: the data allow no second fold; metrics are the single split's".to_owned()
    });
    (Vec::new(), note)
}

/// Where churn's feature table came from, for the card and the report.
pub struct ChurnDataSource<'a> {
    /// The prediction points' file and count, when points replaced the
    /// rolling as-of times.
    pub points: Option<(&'a Path, usize)>,
    pub seed: u64,
    pub split: SplitSizes,
    /// Backtest folds asked for.
    pub backtest: usize,
    /// The card's `training` section (data, fingerprint, spacing, horizon,
    /// label), its split and fit not yet filled in.
    pub training: churn_model::artifact::ChurnDataTraining,
}

/// Churn's features of a data directory: the out-of-time split with its
/// purge gaps, the backtest's folds and the refit on every labelled example.
pub fn churn_data(
    table: Table,
    horizon: i64,
    source: ChurnDataSource,
) -> Result<Prepared, TrainError> {
    let split = crate::out_of_time_split(&table.as_of, horizon, source.split)?;
    let as_of = |times: &[i64]| {
        let first = times.first().map(|&t| churn_core::format_timestamp(t));
        format!(", as-of {}", first.unwrap_or_default())
    };
    refuse_single_label(
        &table.labels,
        [
            ("training", &split.train, &as_of(&split.train_times)),
            ("validation", &split.valid, &as_of(&split.valid_times)),
            ("test", &split.test, &as_of(&split.test_times)),
        ],
    )?;
    let t = &source.training;
    let mut notes = vec![format!(
        "{} labelled examples: train {} / valid {} / test {} (out of time, purge gap {})",
        table.rows(),
        split.train.len(),
        split.valid.len(),
        split.test.len(),
        t.horizon
    )];
    let context = vec![
        format!(
            "Data {} (SHA-256 {}), {} with a {} label horizon ({} label), seed {}.",
            t.data,
            &t.data_sha256[..12.min(t.data_sha256.len())],
            match source.points {
                Some((file, n)) => format!("{n} prediction points from {}", file.display()),
                None => format!("as-of times every {}", t.every),
            },
            t.horizon,
            t.label,
            source.seed
        ),
        split.account(table.rows()),
    ];
    let training = churn_model::Training::ChurnData(churn_model::artifact::ChurnDataTraining {
        split: split.describe(horizon),
        ..source.training
    });
    // A fold whose part holds a single label cannot be scored: the data
    // then allow fewer folds.
    let (folds, note) = degrading_folds(source.backtest, |k| {
        let splits = crate::backtest_splits(&table.as_of, horizon, source.split, k)?;
        for fold in &splits {
            refuse_single_label(
                &table.labels,
                [
                    ("training", &fold.train, ""),
                    ("validation", &fold.valid, ""),
                    ("test", &fold.test, ""),
                ],
            )?;
        }
        Ok(splits)
    });
    notes.extend(note);
    let refit_rows = Some((0..table.rows()).collect());
    Ok(Prepared {
        table,
        split,
        training,
        context,
        folds,
        refit_rows,
        notes,
    })
}

/// The accepted rows of one plain table file (as churn-data's
/// `read_labelled` returns them; churn-train reads no files of data itself).
/// Owned: the fit part's columns become the table's without a copy.
pub struct TablePart {
    pub file: PathBuf,
    /// The feature columns, in order.
    pub columns: Vec<(String, Kind)>,
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
    /// Rows refused while reading.
    pub rejected: usize,
}

/// How a plain table is split and named on the card.
pub struct PlainTableSpec<'a> {
    pub features: &'a Path,
    /// SHA-256 of the features file (hex; `churn_data::file_sha256`, which
    /// the caller can run while it reads the file).
    pub features_sha256: String,
    /// The fixed test table and its SHA-256, when one was given.
    pub test: Option<(&'a Path, String)>,
    pub label: &'a str,
    /// Split out of time by this column (else stratified at random).
    pub time_column: Option<&'a str>,
    pub seed: u64,
    /// Backtest folds asked for (out of time without a test table only).
    pub backtest: usize,
}

/// Any table of numeric and categorical columns: split out of time by the
/// time column, else stratified at random with the seed; with a test table,
/// exactly that test set. Every part must hold both labels.
pub fn plain_table(
    fit_part: TablePart,
    test_part: Option<TablePart>,
    spec: &PlainTableSpec,
) -> Result<Prepared, TrainError> {
    if let Some(test) = &test_part
        && test.columns != fit_part.columns
    {
        let first = fit_part
            .columns
            .iter()
            .zip(&test.columns)
            .position(|(a, b)| a != b)
            .unwrap_or(fit_part.columns.len().min(test.columns.len()));
        return Err(TrainError::Split(format!(
            "--test {}: its feature columns differ from {}'s; first difference at column {}: {:?} vs {:?}",
            test.file.display(),
            spec.features.display(),
            first + 1,
            test.columns.get(first),
            fit_part.columns.get(first)
        )));
    }
    let n_fit = fit_part.labels.len();
    let has_test = test_part.is_some();
    let n_test = test_part.as_ref().map_or(0, |t| t.labels.len());
    let rejected = fit_part.rejected + test_part.as_ref().map_or(0, |t| t.rejected);
    // The fit part's columns are moved, not copied; a test part's are
    // appended (a large vector grows in place).
    let mut table = Table {
        features: fit_part
            .columns
            .iter()
            .map(|(name, kind)| (name.clone(), *kind, format!("column {name}")))
            .collect(),
        numeric: fit_part.numeric,
        categorical: fit_part.categorical,
        labels: fit_part.labels,
        as_of: Vec::with_capacity(n_fit + n_test),
        ids: Vec::with_capacity(n_fit + n_test),
    };
    let mut add_rows = |file: &Path, times: Option<Vec<i64>>, rows: &[usize]| {
        match times {
            Some(times) => table.as_of.extend_from_slice(&times),
            None => table.as_of.extend(std::iter::repeat_n(0, rows.len())),
        }
        let file = file.display().to_string();
        table.ids.extend(rows.iter().map(|r| format!("{file}:{r}")));
    };
    add_rows(&fit_part.file, fit_part.times, &fit_part.rows);
    if let Some(test) = test_part {
        add_rows(&test.file, test.times, &test.rows);
        table.numeric.extend_from_slice(&test.numeric);
        table.categorical.extend(test.categorical);
        table.labels.extend_from_slice(&test.labels);
    }
    let times = spec.time_column.map(|_| table.as_of.as_slice());
    let fit_rows: Vec<usize> = (0..n_fit).collect();
    let (train, valid, test) = if has_test {
        let (train, valid) = holdout(&fit_rows, &table.labels, times, HOLDOUT, spec.seed)?;
        (train, valid, (n_fit..n_fit + n_test).collect())
    } else {
        let (rest, test) = holdout(&fit_rows, &table.labels, times, HOLDOUT, spec.seed)?;
        let share = HOLDOUT / (1.0 - HOLDOUT);
        let (train, valid) = holdout(&rest, &table.labels, times, share, spec.seed)?;
        (train, valid, test)
    };
    let method = match (has_test, spec.time_column) {
        (true, Some(c)) => {
            format!("test = --test file; validation = the latest 20% of the rest by {c}")
        }
        (true, None) => {
            "test = --test file; validation = 20% of the rest, stratified by label".into()
        }
        (false, Some(c)) => {
            format!("out of time by {c}: test = the latest 20%, validation = the 20% before")
        }
        (false, None) => {
            "stratified by label at random (seed): 60% train, 20% validation, 20% test".into()
        }
    };
    refuse_single_label(
        &table.labels,
        [
            ("training", &train, ""),
            ("validation", &valid, ""),
            ("test", &test, ""),
        ],
    )?;
    let (n_train, n_valid, n_test) = (train.len(), valid.len(), test.len());
    let mut notes = vec![format!(
        "{} labelled rows: train {n_train} / valid {n_valid} / test {n_test} ({method})",
        table.rows(),
    )];
    let training = churn_model::Training::Table(churn_model::artifact::TableTraining {
        features: spec.features.display().to_string(),
        features_sha256: spec.features_sha256.clone(),
        test: spec.test.as_ref().map(|(p, _)| p.display().to_string()),
        test_sha256: spec.test.as_ref().map(|(_, sha)| sha.clone()),
        label: spec.label.to_owned(),
        time_column: spec.time_column.map(str::to_owned),
        split: serde_json::json!({
            "method": method,
            "rows": {"train": train.len(), "valid": valid.len(), "test": test.len()},
            "rejected": rejected,
        }),
        // Filled in when the fit is done.
        calibration: serde_json::Value::Null,
        settings: serde_json::Value::Null,
    });
    let context = vec![
        format!(
            "Table {} (label {}{}), seed {}.",
            spec.features.display(),
            spec.label,
            spec.time_column
                .map_or_else(String::new, |c| format!(", time column {c}")),
            spec.seed
        ),
        format!(
            "{} labelled rows: train {n_train}, validation {n_valid}, test {n_test}; {method}.",
            table.rows()
        ),
    ];
    // Out of time by a column, without a test table: the rolling-origin
    // backtest, and the refit on every row.
    let (folds, refit_rows) = match (has_test, times) {
        (false, Some(times)) => {
            let (folds, note) = degrading_folds(spec.backtest, |k| {
                time_holdout_folds(&fit_rows, &table.labels, times, HOLDOUT, k)
            });
            notes.extend(note);
            (folds, Some(fit_rows.clone()))
        }
        _ => (Vec::new(), None),
    };
    Ok(Prepared {
        table,
        split: Split::untimed(train, valid, test),
        training,
        context,
        folds,
        refit_rows,
        notes,
    })
}

/// Refuses a part of a split whose rows hold a single label, by name (with
/// `where_`, e.g. its first as-of time): no fit, calibration or metric means
/// anything there.
fn refuse_single_label(
    labels: &[f64],
    parts: [(&str, &Vec<usize>, &str); 3],
) -> Result<(), TrainError> {
    for (part, rows, where_) in parts {
        let positives = rows.iter().filter(|&&i| labels[i] == 1.0).count();
        if positives == 0 || positives == rows.len() {
            return Err(TrainError::Split(format!(
                "the {part} part ({} rows{where_}) has a single label: give more rows or a different split",
                rows.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(file: &Path, labels: &[f64], times: Option<Vec<i64>>) -> TablePart {
        TablePart {
            file: file.to_owned(),
            columns: vec![("x".into(), Kind::Numeric)],
            numeric: (0..labels.len()).map(|i| i as f64).collect(),
            categorical: Vec::new(),
            labels: labels.to_vec(),
            times,
            rows: (1..=labels.len()).collect(),
            rejected: 0,
        }
    }

    fn spec<'a>(features: &'a Path, time_column: Option<&'a str>) -> PlainTableSpec<'a> {
        PlainTableSpec {
            features,
            features_sha256: String::new(),
            test: None,
            label: "y",
            time_column,
            seed: 7,
            backtest: 3,
        }
    }

    #[test]
    fn out_of_time_by_a_column_tests_the_latest_rows_and_backtests() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "x,y\n").unwrap();
        let labels: Vec<f64> = (0..100).map(|i| f64::from(i % 3 == 0)).collect();
        let fit = part(Path::new("t.csv"), &labels, Some((0..100).collect()));
        let p = plain_table(fit, None, &spec(&file, Some("t"))).unwrap();
        let oldest_test = p
            .split
            .test
            .iter()
            .map(|&i| p.table.as_of[i])
            .min()
            .unwrap();
        let newest_train = p
            .split
            .train
            .iter()
            .map(|&i| p.table.as_of[i])
            .max()
            .unwrap();
        assert!(newest_train < oldest_test);
        assert_eq!(p.split.test.len(), 20);
        assert_eq!(p.folds.len(), 3);
        assert_eq!(p.folds.last().map(|f| &f.test), Some(&p.split.test));
        assert_eq!(p.refit_rows.as_ref().map(Vec::len), Some(100));
        assert_eq!(p.table.ids[0], "t.csv:1");
    }

    #[test]
    fn a_churn_data_part_with_one_label_is_refused_with_its_as_of() {
        let labels = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0];
        let (train, valid, test) = (vec![0, 1], vec![2, 3], vec![4, 5, 6]);
        let err = refuse_single_label(
            &labels,
            [
                ("training", &train, ""),
                ("validation", &valid, ""),
                ("test", &test, ", as-of 2026-05-18T00:00:00Z"),
            ],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("the test part (3 rows, as-of 2026-05-18T00:00:00Z) has a single label"),
            "{err}"
        );
        let test = vec![3, 4, 5];
        assert!(
            refuse_single_label(
                &labels,
                [
                    ("training", &train, ""),
                    ("validation", &valid, ""),
                    ("test", &test, "")
                ]
            )
            .is_ok()
        );
    }

    #[test]
    fn a_part_with_one_label_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "x,y\n").unwrap();
        // Only the first rows are positive: the latest 20% (test) are all 0.
        let labels: Vec<f64> = (0..100).map(|i| f64::from(i < 10)).collect();
        let fit = part(Path::new("t.csv"), &labels, Some((0..100).collect()));
        let err = plain_table(fit, None, &spec(&file, Some("t")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("single label"), "{err}");
    }

    #[test]
    fn a_test_table_with_other_columns_is_refused_at_the_first_difference() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "x,y\n").unwrap();
        let labels: Vec<f64> = (0..50).map(|i| f64::from(i % 2 == 0)).collect();
        let fit = part(Path::new("t.csv"), &labels, None);
        let mut test = part(Path::new("u.csv"), &labels, None);
        test.columns[0].0 = "z".into();
        let err = plain_table(fit, Some(test), &spec(&file, None))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("column 1"), "{err}");
    }

    #[test]
    fn folds_degrade_to_what_the_data_allow_and_say_so() {
        let make = |k: usize| {
            if k <= 2 {
                Ok(vec![Split::untimed(vec![0], vec![1], vec![2]); k])
            } else {
                Err(TrainError::Split("too few".into()))
            }
        };
        let (folds, note) = degrading_folds(4, make);
        assert_eq!(folds.len(), 2);
        assert!(note.unwrap_or_default().contains("allow 2 folds, not 4"));
        let (folds, note) = degrading_folds(1, make);
        assert!(folds.is_empty() && note.is_none());
        let (folds, note) = degrading_folds(3, |_| Err(TrainError::Split("no".into())));
        assert!(folds.is_empty());
        assert!(note.unwrap_or_default().contains("no second fold"));
    }
}
