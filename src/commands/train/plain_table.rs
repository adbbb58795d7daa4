//! `churn train --features FILE --label COL`: any table of numeric and
//! categorical columns, split out of time by `--time-column`, else stratified
//! at random with the seed; with `--test`, exactly that test set.

use std::path::Path;

use anyhow::{Context, Result, bail};
use churn_data::plain_table::{ColumnKind, LabelledTable, read_labelled};
use churn_model::Kind;
use churn_train::{Split, Table, holdout};

use super::Prepared;
use super::settings::TrainSettings;
use crate::ui::{Ui, say};

/// Share of the rows held out for validation, and for test without `--test`.
const HOLDOUT: f64 = 0.2;

fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(churn_model::artifact::sha256_hex(&bytes))
}

/// Reads one table and writes its rejects to `<work>/rejects/<file stem>.csv`.
fn read(settings: &TrainSettings, path: &Path, label: &str) -> Result<LabelledTable> {
    let table = read_labelled(path, label, settings.time_column.as_deref(), &[])?;
    let name = path
        .file_stem()
        .map_or_else(|| "table".into(), |n| n.to_string_lossy().into_owned());
    let rejects = settings.work.join("rejects").join(format!("{name}.csv"));
    if let Some(dir) = rejects.parent() {
        churn_core::create_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    churn_data::write_rejects_file(&table.file_columns, &table.rejects, &rejects)?;
    say!(
        "{}: {} rows read, {} accepted, {} rejected (rejects: {})",
        path.display(),
        table.read,
        table.labels.len(),
        table.rejects.len(),
        rejects.display()
    )?;
    if table.labels.len() + table.rejects.len() != table.read {
        bail!(
            "internal error: the counts of {} do not reconcile",
            path.display()
        );
    }
    Ok(table)
}

pub fn prepare(ui: &Ui, settings: &TrainSettings, features: &Path) -> Result<Prepared> {
    let label = settings
        .label
        .as_deref()
        .context("--features needs --label COL")?;
    let spinner = ui.spinner("reading");
    let fit_part = read(settings, features, label)?;
    let test_part = settings
        .test
        .as_deref()
        .map(|path| read(settings, path, label))
        .transpose()?;
    spinner.finish_and_clear();
    if let Some(test) = &test_part
        && test.columns != fit_part.columns
    {
        let first = fit_part
            .columns
            .iter()
            .zip(&test.columns)
            .position(|(a, b)| a != b)
            .unwrap_or(fit_part.columns.len().min(test.columns.len()));
        bail!(
            "--test {}: its feature columns differ from {}'s; first difference at column {}: {:?} vs {:?}",
            test.file.display(),
            features.display(),
            first + 1,
            test.columns.get(first),
            fit_part.columns.get(first)
        );
    }

    let mut table = Table {
        features: fit_part
            .columns
            .iter()
            .map(|(name, kind)| {
                let kind = match kind {
                    ColumnKind::Numeric => Kind::Numeric,
                    ColumnKind::Categorical => Kind::Categorical,
                };
                (name.clone(), kind, format!("column {name}"))
            })
            .collect(),
        ..Table::default()
    };
    for part in std::iter::once(&fit_part).chain(test_part.as_ref()) {
        table.numeric.extend_from_slice(&part.numeric);
        table.categorical.extend(part.categorical.iter().cloned());
        table.labels.extend_from_slice(&part.labels);
        table.as_of.extend(
            part.times
                .clone()
                .unwrap_or_else(|| vec![0; part.labels.len()]),
        );
        let file = part.file.display().to_string();
        table
            .ids
            .extend(part.rows.iter().map(|r| format!("{file}:{r}")));
    }
    let times = settings
        .time_column
        .as_ref()
        .map(|_| table.as_of.as_slice());
    let fit_rows: Vec<usize> = (0..fit_part.labels.len()).collect();
    let (train, valid, test) = match &test_part {
        Some(test) => {
            let (train, valid) = holdout(&fit_rows, &table.labels, times, HOLDOUT, settings.seed)?;
            let first = fit_part.labels.len();
            (train, valid, (first..first + test.labels.len()).collect())
        }
        None => {
            let (rest, test) = holdout(&fit_rows, &table.labels, times, HOLDOUT, settings.seed)?;
            let share = HOLDOUT / (1.0 - HOLDOUT);
            let (train, valid) = holdout(&rest, &table.labels, times, share, settings.seed)?;
            (train, valid, test)
        }
    };
    let method = match (&test_part, &settings.time_column) {
        (Some(_), Some(c)) => {
            format!("test = --test file; validation = the latest 20% of the rest by {c}")
        }
        (Some(_), None) => {
            "test = --test file; validation = 20% of the rest, stratified by label".into()
        }
        (None, Some(c)) => {
            format!("out of time by {c}: test = the latest 20%, validation = the 20% before")
        }
        (None, None) => {
            "stratified by label at random (seed): 60% train, 20% validation, 20% test".into()
        }
    };
    for (part, rows) in [
        ("training", &train),
        ("validation", &valid),
        ("test", &test),
    ] {
        let positives = rows.iter().filter(|&&i| table.labels[i] == 1.0).count();
        if positives == 0 || positives == rows.len() {
            bail!(
                "the {part} part ({} rows) has a single label: give more rows or a different split",
                rows.len()
            );
        }
    }
    say!(
        "{} labelled rows: train {} / valid {} / test {} ({method})",
        table.rows(),
        train.len(),
        valid.len(),
        test.len()
    )?;
    let training = churn_model::Training::Table(churn_model::artifact::TableTraining {
        features: features.display().to_string(),
        features_sha256: file_sha256(features)?,
        test: settings.test.as_ref().map(|p| p.display().to_string()),
        test_sha256: settings.test.as_deref().map(file_sha256).transpose()?,
        label: label.to_owned(),
        time_column: settings.time_column.clone(),
        split: serde_json::json!({
            "method": method,
            "rows": {"train": train.len(), "valid": valid.len(), "test": test.len()},
            "rejected": fit_part.rejects.len() + test_part.as_ref().map_or(0, |t| t.rejects.len()),
        }),
        // Filled in when the fit is done.
        calibration: serde_json::Value::Null,
        settings: serde_json::Value::Null,
    });
    let context = vec![
        format!(
            "Table {} (label {label}{}), seed {}.",
            features.display(),
            settings
                .time_column
                .as_ref()
                .map_or_else(String::new, |c| format!(", time column {c}")),
            settings.seed
        ),
        format!(
            "{} labelled rows: train {}, validation {}, test {}; {method}.",
            table.rows(),
            train.len(),
            valid.len(),
            test.len()
        ),
    ];
    // Out of time by a column, without a test file: the rolling-origin
    // backtest, and the refit on every row.
    let (folds, refit_rows) = match (&test_part, times) {
        (None, Some(times)) => (
            crate::commands::train::degrading_folds(settings.backtest, |k| {
                churn_train::time_holdout_folds(&fit_rows, &table.labels, times, HOLDOUT, k)
            })?,
            Some(fit_rows.clone()),
        ),
        _ => (Vec::new(), None),
    };
    Ok(Prepared {
        table,
        split: Split::untimed(train, valid, test),
        training,
        context,
        folds,
        refit_rows,
    })
}
