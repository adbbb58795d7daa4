//! `churn monitor`: the prediction log joined with the outcomes later events
//! reveal; realised accuracy, calibration and prediction drift per period,
//! model version and role; exit code 3 when a `--fail-on` threshold is
//! crossed. The join, the metrics, the gate and the report are
//! churn-monitor's; this module wires flags, files and output.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::MonitorArgs;
use crate::flags::{duration, reference_time};
use crate::loading::load_and_report;
use crate::output::{write_json_and_html, write_log_rejects};
use crate::ui::{Ui, print_text, say};

pub fn monitor(ui: &Ui, args: &MonitorArgs) -> Result<ExitCode> {
    let thresholds = match &args.fail_on {
        Some(text) => churn_monitor::gate::thresholds(text)?,
        None => Vec::new(),
    };
    let every = duration("--every", &args.every)?;
    let horizon = duration("--horizon", &args.horizon)?;
    let loaded = load_and_report(ui, &args.data, &args.out, reference_time(&args.now)?)?;
    let label = crate::flags::label(&args.label, &loaded.contract)?;
    let mut dataset = loaded.dataset;
    let log = churn_model::logs::read_predictions(&args.log, &dataset)?;
    let rejects_path = write_log_rejects(&args.out, "prediction_log", &log.rejects)?;
    let logged: Vec<_> = log
        .read
        .into_iter()
        .map(|(l, _)| l)
        .filter(|l| match &args.model {
            Some(name) => l.line.model.name == *name || l.line.model.label() == *name,
            None => true,
        })
        .collect();
    say!(
        "prediction log: {} lines = {} read{} + {} rejected (written to {})",
        log.lines,
        logged.len(),
        if args.model.is_some() {
            " for --model"
        } else {
            ""
        },
        log.rejects.len(),
        rejects_path.display()
    )?;
    if logged.is_empty() {
        bail!("no prediction to monitor");
    }
    let observations = churn_monitor::join::observations(&mut dataset, &logged, label, horizon);
    let features = read_features(args)?;
    let models = churn_monitor::models::LoggedModels::read(
        observations
            .iter()
            .map(|o| o.model.as_str())
            .chain(features.iter().map(|f| f.model.as_str())),
        &args.models,
    );
    for note in &models.notes {
        say!("{note}")?;
    }
    let references = models.references;
    if let Some(unknown) =
        churn_monitor::gate::unknown_feature(&args.gate_ignores, references.values())
    {
        bail!("--gate-ignores {unknown:?}: not a feature of the registry or of the logged models");
    }
    let start = churn_monitor::first_day(
        observations
            .iter()
            .map(|o| o.time)
            .chain(features.iter().map(|f| f.time)),
    )
    .unwrap_or(0);
    let prediction_references = references
        .iter()
        .map(|(k, r)| (k.clone(), r.predictions.clone()))
        .collect();
    let mut report = churn_monitor::monitor(
        &observations,
        start,
        every,
        &prediction_references,
        &models.learned_through,
        args.seed,
    )?;
    report.feature_drift = churn_monitor::feature_drift(&features, start, every, &references)?;
    print_text(&churn_monitor::summary::terminal(&report))?;
    let html = churn_monitor::summary::html(&report)?;
    write_json_and_html(&args.out, "monitor", &report, &html)?;
    let crossed = churn_monitor::gate::breaches(&report, &thresholds, &args.gate_ignores);
    if crossed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for line in &crossed {
        eprintln!("FAIL: {line}");
    }
    Ok(ExitCode::from(3))
}

/// The feature log's rows; refused lines are counted and written to
/// `<out>/rejects/feature_log.csv`.
fn read_features(args: &MonitorArgs) -> Result<Vec<churn_monitor::FeatureObservation>> {
    if args.features.is_empty() {
        return Ok(Vec::new());
    }
    let log = churn_model::logs::read_features(&args.features)?;
    let rows: Vec<_> = log
        .read
        .iter()
        .map(|(l, _)| churn_monitor::join::feature_observation(l))
        .collect();
    let rejects_path = write_log_rejects(&args.out, "feature_log", &log.rejects)?;
    say!(
        "feature log: {} lines = {} read + {} rejected (written to {})",
        log.lines,
        rows.len(),
        log.rejects.len(),
        rejects_path.display()
    )?;
    Ok(rows)
}
