//! `churn train`: settings → labelled table and split (churn data or any
//! table) → fitted, calibrated models → artifacts and the report.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::OutOfCoreArgs;
use crate::cli::TrainArgs;
use crate::flags::{reference_time, snapshot_spec};
use crate::loading::{load_and_report, load_partitioned_and_report};
use crate::output::write_file;
use crate::ui::{Ui, say};

pub(crate) mod plain_table;
pub mod settings;

use settings::TrainSettings;

use churn_train::prepare::Prepared;

pub fn train(ui: &Ui, args: &TrainArgs) -> Result<Vec<PathBuf>> {
    let settings = settings::resolve(args)?;
    let mut clock = churn_train::PhaseClock::start();
    let prepared = match (&settings.data, &settings.features) {
        (Some(data), _) => from_churn_data(ui, &settings, data, &args.out_of_core)?,
        (None, Some(features)) => plain_table::prepare(ui, &settings, features)?,
        (None, None) => anyhow::bail!("give --data DIR or --features FILE --label COL"),
    };
    // Reading, validating, the features or the table, and the split.
    clock.lap("prepare");
    fit_and_save(ui, &settings, prepared, clock)
}

pub(crate) fn from_churn_data(
    ui: &Ui,
    settings: &TrainSettings,
    data: &Path,
    out_of_core: &OutOfCoreArgs,
) -> Result<Prepared> {
    let now = reference_time(&settings.now)?;
    let (mut dataset, contract, partitioned) = // The training table is held whole (its rows are what training reads);
    // the budget covers the events.
    match out_of_core.split(0) {
        None => {
            let loaded = load_and_report(ui, data, &settings.work, now)?;
            (loaded.dataset, loaded.contract, None)
        }
        Some(split) => {
            if settings.points.is_some() {
                anyhow::bail!("--points reads every event at once: drop --memory and --partitions");
            }
            let spill_in = out_of_core.spill.as_deref().unwrap_or(&settings.work);
            let mut part =
                load_partitioned_and_report(ui, data, &settings.work, now, split, spill_in)?;
            let dataset = std::mem::take(&mut part.dataset);
            (dataset, part.contract.clone(), Some(part))
        }
    };
    let spec = snapshot_spec(&settings.snapshots, &contract, now)?;
    let (plan, feature_set) = match &partitioned {
        None => (
            spec.resolve(&dataset)?,
            churn_features::FeatureSet::choose(&dataset, settings.custom_types)?,
        ),
        Some(part) => (
            spec.resolve_for_span(part.event_span)?,
            churn_features::FeatureSet::choose_by_occurrences(
                &dataset.custom_event_types,
                part.custom_type_occurrences(),
                &dataset.attributes,
                settings.custom_types,
            )?,
        ),
    };
    crate::commands::features::say_feature_set(&feature_set)?;
    let points = match &settings.points {
        Some(file) => Some(crate::commands::features::read_points_reporting(
            file,
            &dataset,
            &settings.work,
        )?),
        None => None,
    };
    let spinner = ui.spinner("features");
    let table = match (&points, &partitioned) {
        (Some(points), _) => {
            churn_train::Table::from_points(&mut dataset, &points.pairs, &plan, &feature_set)
        }
        (None, Some(part)) => churn_train::Table::from_partitions(
            &mut dataset,
            &plan,
            &feature_set,
            part.partitions(),
            |k| part.events_of(k),
        )?,
        (None, None) => churn_train::Table::from_dataset(&mut dataset, &plan, &feature_set),
    };
    drop(partitioned);
    spinner.finish_and_clear();
    let training = churn_model::artifact::ChurnDataTraining {
        data: data.display().to_string(),
        data_sha256: churn_data::dir_sha256(data)?,
        every: settings.snapshots.every.clone(),
        horizon: settings.snapshots.horizon.clone(),
        // Filled in by the split and by the fit.
        split: serde_json::Value::Null,
        catalogue: churn_model::artifact::CourseCatalogue::of(&dataset),
        label: plan.label(),
        activity_types: contract.events.activity.iter().cloned().collect(),
        features: feature_set,
        calibration: serde_json::Value::Null,
        settings: serde_json::Value::Null,
    };
    let source = churn_train::prepare::ChurnDataSource {
        points: points
            .as_ref()
            .zip(settings.points.as_deref())
            .map(|(p, file)| (file, p.pairs.len())),
        seed: settings.seed,
        split: settings.split,
        backtest: settings.backtest,
        training,
    };
    let prepared = churn_train::prepare::churn_data(table, plan.horizon(), source)?;
    for note in &prepared.notes {
        say!("{note}")?;
    }
    Ok(prepared)
}

fn fit_and_save(
    ui: &Ui,
    settings: &TrainSettings,
    prepared: Prepared,
    mut clock: churn_train::PhaseClock,
) -> Result<Vec<PathBuf>> {
    let Prepared {
        table,
        split,
        training,
        mut context,
        folds,
        refit_rows,
        notes: _,
    } = prepared;
    let config = settings.config();
    let families = settings.families();
    let settings_json = serde_json::to_value(settings)?;
    let name_of = |family: churn_train::Family| settings.model_name(family);
    // Fit every family (and its backtest) first: the cards carry the
    // paired comparison of their backtests.
    let refit = (settings.refit)
        .then_some(refit_rows.as_deref())
        .flatten()
        .map(|rows| churn_train::shipping::RefitRows {
            rows,
            as_of: settings.data.is_some(),
        });
    let mut shipped = Vec::new();
    for family in families {
        let mut bar: Option<(churn_train::shipping::Stage, indicatif::ProgressBar)> = None;
        let trained = churn_train::shipping::train_family(
            &table,
            &split,
            &folds,
            refit
                .as_ref()
                .map(|r| churn_train::shipping::RefitRows { ..*r }),
            family,
            &config,
            &mut |stage, done, total| {
                if bar.as_ref().is_none_or(|(s, _)| *s != stage) {
                    if let Some((_, old)) = bar.take() {
                        old.finish_and_clear();
                    }
                    bar = Some((
                        stage,
                        ui.progress(total as u64, &format!("{stage:?}").to_lowercase()),
                    ));
                }
                if let Some((_, b)) = &bar {
                    b.set_position(done as u64);
                }
            },
        )?;
        if let Some((_, b)) = bar {
            b.finish_and_clear();
        }
        shipped.push(trained);
    }
    let paired = churn_train::shipping::pair(&shipped, name_of, settings.seed)?;

    let mut written = Vec::new();
    let mut fits = Vec::new();
    for trained in shipped {
        let name = name_of(trained.family);
        let (model, parameters, calibration) = trained.model();
        let mut training = training.clone();
        training.set_fit(calibration.clone(), settings_json.clone());
        // The card's phases: what this model took (the shared preparation,
        // then its own fit), not the other family's.
        let mut phases = clock.phases().to_vec();
        phases.extend(trained.fitted.phases.iter().cloned());
        let card_input = churn_model::CardInput {
            training,
            seed: settings.seed,
            parameters: parameters.clone(),
            metrics: trained.metrics(&name, paired.as_ref()),
            created_at_ms: churn_core::now_ms(),
            reference: Some(trained.reference(&table, &split)?),
            phases,
        };
        let (card, dir) = churn_model::artifact::save(&settings.out, &name, model, card_input)?;
        let t = &trained.fitted.test;
        say!(
            "{name}@{}: test AUC {:.4} [{:.4}, {:.4}]  AP {:.4}  log loss {:.4}  Brier {:.4}  ECE {:.4}  lift@10% {:.2}  calibration {} -> {}",
            card.version,
            t.roc_auc.estimate,
            t.roc_auc.low,
            t.roc_auc.high,
            t.average_precision,
            t.log_loss,
            t.brier,
            t.ece,
            t.lift_at_10,
            card.calibration,
            dir.display()
        )?;
        if let Some(line) = trained.backtest_line() {
            say!("  {line}")?;
        }
        say!(
            "  time: {}",
            card.phases
                .iter()
                .map(|p| format!("{} {:.2} s", p.phase, p.seconds))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if let Some(line) = trained.refit_line(&card.calibration) {
            say!("  {line}")?;
        }
        fits.push((
            format!("{name}@{}", card.version),
            trained.fitted,
            trained.backtest,
        ));
        written.push(dir);
    }
    if let Some(r) = &refit {
        context.push(format!(
            "Each artifact is refitted on all {} labelled examples (the rounds the backtest chose, a calibrator fitted on out-of-fold predictions). Its estimate is the refit procedure's on the newest backtest fold (see the backtest section: the same family fitted on every example whose label was known by that fold's test period); the metrics and charts of the split below are its fold model, which learned from less.",
            r.rows.len()
        ));
    }
    if let Some(p) = &paired {
        let d = &p.auc_difference;
        say!(
            "backtest: AUC {} − {} = {:+.4} [{:+.4}, {:+.4}] (mean over folds, paired bootstrap)",
            p.a,
            p.b,
            d.estimate,
            d.low,
            d.high
        )?;
    }
    // Each family's own phases were timed inside its fit; the clock resumes
    // for what follows (the report).
    clock.restart();
    let spinner = ui.spinner("report");
    let reported: Vec<churn_train::training_report::Reported> = fits
        .iter()
        .map(
            |(label, fitted, backtest)| churn_train::training_report::Reported {
                label: label.clone(),
                fitted,
                backtest: backtest.as_deref(),
            },
        )
        .collect();
    let html = churn_train::training_report::training_report(
        &format!("churn training report: {}", settings.name),
        &context,
        &reported,
        &table,
        &split,
        paired.as_ref(),
    )?;
    spinner.finish_and_clear();
    for dir in &written {
        write_file(&dir.join("report.html"), |w| {
            Ok(std::io::Write::write_all(w, html.as_bytes())?)
        })?;
    }
    clock.lap("report");
    if let Some(dir) = written.first() {
        let report_seconds = clock.phases().last().map_or(0.0, |p| p.seconds);
        say!(
            "report: {} ({report_seconds:.2} s)",
            dir.join("report.html").display()
        )?;
    }
    Ok(written)
}
