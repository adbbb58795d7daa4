//! `churn train --features FILE --label COL`: reads the table (and `--test`),
//! writes each file's rejects, and hands the rows to
//! [`churn_train::prepare::plain_table`] to split.

use std::path::Path;

use anyhow::{Context, Result, bail};
use churn_data::plain_table::{ColumnKind, LabelledTable, read_labelled};
use churn_model::Kind;
use churn_train::prepare::{PlainTableSpec, Prepared, TablePart};

use super::settings::TrainSettings;
use crate::ui::{Ui, say};

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

fn part(table: LabelledTable) -> TablePart {
    TablePart {
        file: table.file,
        columns: table
            .columns
            .into_iter()
            .map(|(name, kind)| {
                let kind = match kind {
                    ColumnKind::Numeric => Kind::Numeric,
                    ColumnKind::Categorical => Kind::Categorical,
                };
                (name, kind)
            })
            .collect(),
        numeric: table.numeric,
        categorical: table.categorical,
        labels: table.labels,
        times: table.times,
        rows: table.rows,
        rejected: table.rejects.len(),
    }
}

pub fn prepare(ui: &Ui, settings: &TrainSettings, features: &Path) -> Result<Prepared> {
    let label = settings
        .label
        .as_deref()
        .context("--features needs --label COL")?;
    let spinner = ui.spinner("reading");
    // The files' fingerprints for the card, on a thread of their own while
    // the tables are read.
    let (hashes, parts) = std::thread::scope(|scope| {
        let hashes = scope.spawn(|| -> Result<_> {
            let features_sha256 = churn_data::file_sha256(features)?;
            let test_sha256 = settings
                .test
                .as_deref()
                .map(churn_data::file_sha256)
                .transpose()?;
            Ok((features_sha256, test_sha256))
        });
        let parts = read(settings, features, label).and_then(|fit| {
            let test = settings
                .test
                .as_deref()
                .map(|path| read(settings, path, label))
                .transpose()?;
            Ok((fit, test))
        });
        let hashes = hashes
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("hashing the tables failed")));
        (hashes, parts)
    });
    let (fit_part, test_part) = parts?;
    let (features_sha256, test_sha256) = hashes?;
    spinner.finish_and_clear();
    let spec = PlainTableSpec {
        features,
        features_sha256,
        test: settings.test.as_deref().zip(test_sha256),
        label,
        time_column: settings.time_column.as_deref(),
        seed: settings.seed,
        backtest: settings.backtest,
    };
    let prepared = churn_train::prepare::plain_table(part(fit_part), test_part.map(part), &spec)?;
    for note in &prepared.notes {
        say!("{note}")?;
    }
    Ok(prepared)
}
