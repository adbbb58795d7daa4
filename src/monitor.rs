//! `churn monitor`: the prediction log joined with the outcomes later events
//! reveal; realised accuracy, calibration and prediction drift per period,
//! model version and role; a non-zero exit when a `--fail-on` threshold is
//! crossed.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use churn_core::{DAY_MS, format_timestamp, parse_duration};
use churn_features::label::{LabelStatus, label_status};
use churn_monitor::{ModelPeriod, Monitoring, Observation, Outcome};
use churn_report::{Cell, Legend, LineChart, Page, Series, Style};

use crate::cli::MonitorArgs;
use crate::commands::{Ui, load_and_report, reference_time, write_json_and_html};

/// One `--fail-on` condition, e.g. `auc<0.7`.
#[derive(Debug, Clone, PartialEq)]
struct Threshold {
    metric: String,
    above: bool,
    limit: f64,
}

const METRICS: [&str; 6] = ["auc", "ap", "brier", "ece", "psi", "feature_psi"];

fn thresholds(text: &Option<String>) -> Result<Vec<Threshold>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|item| {
            let item = item.trim();
            let (at, above) = item
                .find('>')
                .map(|i| (i, true))
                .or_else(|| item.find('<').map(|i| (i, false)))
                .with_context(|| {
                    format!("--fail-on {item:?}: expected METRIC>LIMIT or METRIC<LIMIT")
                })?;
            let metric = item[..at].trim().to_lowercase();
            if !METRICS.contains(&metric.as_str()) {
                bail!(
                    "--fail-on {item:?}: unknown metric {metric:?} (one of {})",
                    METRICS.join(", ")
                );
            }
            let limit: f64 = item[at + 1..]
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .with_context(|| format!("--fail-on {item:?}: the limit must be a number"))?;
            Ok(Threshold {
                metric,
                above,
                limit,
            })
        })
        .collect()
}

fn value_of(m: &ModelPeriod, metric: &str) -> Option<f64> {
    match metric {
        "psi" => m.psi,
        "auc" => m.metrics.as_ref().map(|x| x.roc_auc.estimate),
        "ap" => m.metrics.as_ref().map(|x| x.average_precision),
        "brier" => m.metrics.as_ref().map(|x| x.brier),
        "ece" => m.metrics.as_ref().map(|x| x.ece),
        _ => None,
    }
}

/// The conditions crossed in each model's latest period that has the metric
/// (`ignored` features do not count for `feature_psi`).
fn breaches(report: &Monitoring, thresholds: &[Threshold], ignored: &[String]) -> Vec<String> {
    let mut models: Vec<(&str, &str)> = report
        .periods
        .iter()
        .flat_map(|p| p.models.iter().map(|m| (m.model.as_str(), m.role.as_str())))
        .collect();
    models.sort();
    models.dedup();
    let mut out = Vec::new();
    for t in thresholds.iter().filter(|t| t.metric == "feature_psi") {
        let mut names: Vec<&str> = report
            .feature_drift
            .iter()
            .map(|d| d.model.as_str())
            .collect();
        names.dedup();
        for model in names {
            let latest = report.feature_drift.iter().rev().find(|d| d.model == model);
            let top = latest.and_then(|d| {
                d.features
                    .iter()
                    .find(|f| !ignored.contains(&f.feature))
                    .map(|f| (d.start, f))
            });
            if let Some(top) = top
                && (if t.above {
                    top.1.psi > t.limit
                } else {
                    top.1.psi < t.limit
                })
            {
                out.push(format!(
                    "{model}, period from {}: feature_psi of {} = {:.4} {} {}",
                    format_timestamp(top.0),
                    top.1.feature,
                    top.1.psi,
                    if t.above { ">" } else { "<" },
                    t.limit
                ));
            }
        }
    }
    for t in thresholds.iter().filter(|t| t.metric != "feature_psi") {
        for &(model, role) in &models {
            let latest = report.periods.iter().rev().find_map(|p| {
                p.models
                    .iter()
                    .find(|m| m.model == model && m.role == role)
                    .and_then(|m| value_of(m, &t.metric).map(|v| (p.start, v)))
            });
            if let Some((start, v)) = latest
                && (if t.above { v > t.limit } else { v < t.limit })
            {
                out.push(format!(
                    "{model} ({role}), period from {}: {} = {v:.4} {} {}",
                    format_timestamp(start),
                    t.metric,
                    if t.above { ">" } else { "<" },
                    t.limit
                ));
            }
        }
    }
    out
}

pub fn monitor(ui: &Ui, args: &MonitorArgs) -> Result<ExitCode> {
    let thresholds = thresholds(&args.fail_on)?;
    if let Some(unknown) = args
        .gate_ignores
        .iter()
        .find(|f| churn_features::registry::find(f).is_none())
    {
        bail!("--gate-ignores {unknown:?}: not a feature");
    }
    let every = parse_duration(&args.every)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--every {:?}", args.every))?;
    let horizon = parse_duration(&args.horizon)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--horizon {:?}", args.horizon))?;
    let (mut dataset, _) = load_and_report(ui, &args.data, &args.out, reference_time(&args.now)?)?;
    let (logged, rejects, lines) = crate::prediction_log::read(&args.log, &dataset)?;
    let rejects_path = crate::prediction_log::write_rejects(&args.out, "prediction_log", &rejects)?;
    let logged: Vec<_> = match &args.model {
        Some(name) => logged
            .into_iter()
            .filter(|l| l.model.split('@').next() == Some(name.as_str()) || l.model == *name)
            .collect(),
        None => logged,
    };
    println!(
        "prediction log: {lines} lines = {} read{} + {} rejected (written to {})",
        logged.len(),
        if args.model.is_some() {
            " for --model"
        } else {
            ""
        },
        rejects.len(),
        rejects_path.display()
    );
    if logged.is_empty() {
        bail!("no prediction to monitor");
    }
    let data_end = dataset.last_event_time().unwrap_or(i64::MIN);
    let grouped = churn_table::Grouped::new(&mut dataset);
    let dataset = grouped.dataset();
    let observations: Vec<Observation> = logged
        .iter()
        .map(|l| {
            let learner = &dataset.learners[l.learner as usize];
            let events = grouped.events_of(l.learner);
            let outcome = match label_status(learner.signup_at, events, l.at, horizon, data_end) {
                LabelStatus::Labelled { churned: true } => Outcome::Churned,
                LabelStatus::Labelled { churned: false } => Outcome::Stayed,
                LabelStatus::Unlabelled => Outcome::Pending,
                LabelStatus::NotEligible(_) => Outcome::NotEligible,
            };
            Observation {
                time: l.at,
                model: l.model.clone(),
                role: l.role.clone(),
                probability: l.probability,
                outcome,
                segments: vec![
                    ("plan".into(), learner.plan.as_str().to_owned()),
                    ("channel".into(), learner.acquisition_channel.clone()),
                    (
                        "device".into(),
                        learner.device.clone().unwrap_or_else(|| "(missing)".into()),
                    ),
                ],
            }
        })
        .collect();
    let features = read_features(&args.features, &args.out)?;
    let mut labels: Vec<&str> = observations
        .iter()
        .map(|o| o.model.as_str())
        .chain(features.iter().map(|f| f.model.as_str()))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let mut references = std::collections::BTreeMap::new();
    for label in labels {
        let found = churn_model::artifact::resolve(label, &args.models)
            .and_then(|dir| churn_model::artifact::load(&dir));
        match found {
            Ok(artifact) => {
                if let Some(r) = artifact.reference {
                    references.insert(label.to_owned(), r);
                } else {
                    println!(
                        "note: {label} has no reference.json: drift is measured against its first period"
                    );
                }
            }
            Err(e) => println!("note: {label}: {e}; drift is measured against its first period"),
        }
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
        args.seed,
    )?;
    report.feature_drift = churn_monitor::feature_drift(&features, start, every, &references)?;
    print(&report);
    write_json_and_html(&args.out, "monitor", &report, &html(&report)?)?;
    let crossed = breaches(&report, &thresholds, &args.gate_ignores);
    if crossed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for line in &crossed {
        eprintln!("FAIL: {line}");
    }
    Ok(ExitCode::from(3))
}

/// The feature log's rows; bad lines are counted and written to
/// `<out>/rejects/feature_log.csv`.
fn read_features(
    paths: &[std::path::PathBuf],
    out: &std::path::Path,
) -> Result<Vec<churn_monitor::FeatureObservation>> {
    use serde_json::Value;
    let (rows, rejects, lines) = crate::prediction_log::read_lines(paths, |line, _| {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| ("line".to_owned(), format!("not JSON: {e}")))?;
        let when = value
            .get("as_of")
            .and_then(Value::as_str)
            .or_else(|| value.get("time").and_then(Value::as_str))
            .ok_or_else(|| ("time".to_owned(), "no as_of or time".to_owned()))?;
        let time =
            churn_core::parse_timestamp(when).map_err(|e| ("time".to_owned(), e.to_string()))?;
        let model = match (
            value.pointer("/model/name").and_then(Value::as_str),
            value.pointer("/model/version").and_then(Value::as_str),
        ) {
            (Some(n), Some(v)) => format!("{n}@{v}"),
            _ => return Err(("model".into(), "missing model name or version".into())),
        };
        let map = value
            .get("features")
            .and_then(Value::as_object)
            .ok_or_else(|| ("features".to_owned(), "missing or not an object".to_owned()))?;
        let mut observation = churn_monitor::FeatureObservation {
            time,
            model,
            numeric: Default::default(),
            categorical: Default::default(),
        };
        for (name, v) in map {
            match v {
                Value::Number(n) => {
                    observation
                        .numeric
                        .insert(name.clone(), n.as_f64().unwrap_or(f64::NAN));
                }
                Value::String(s) => {
                    observation
                        .categorical
                        .insert(name.clone(), Some(s.clone()));
                }
                Value::Null => {
                    observation.numeric.insert(name.clone(), f64::NAN);
                    observation.categorical.insert(name.clone(), None);
                }
                _ => {
                    return Err((
                        format!("features.{name}"),
                        "not a number, string or null".into(),
                    ));
                }
            }
        }
        Ok(observation)
    })?;
    if !paths.is_empty() {
        let rejects_path = crate::prediction_log::write_rejects(out, "feature_log", &rejects)?;
        println!(
            "feature log: {lines} lines = {} read + {} rejected (written to {})",
            rows.len(),
            rejects.len(),
            rejects_path.display()
        );
    }
    Ok(rows)
}

fn interval_text(i: Option<churn_train::metrics::Interval>, digits: usize) -> String {
    i.map_or("–".into(), |i| {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            i.estimate,
            i.low,
            i.high,
            d = digits
        )
    })
}

fn auc_text(m: &ModelPeriod) -> String {
    m.metrics.as_ref().map_or("–".into(), |x| {
        format!(
            "{:.3} [{:.3}, {:.3}]",
            x.roc_auc.estimate, x.roc_auc.low, x.roc_auc.high
        )
    })
}

fn print(report: &Monitoring) {
    println!(
        "\n{:<22} {:<40} {:<10} {:>6} {:>7} {:>6} {:>22} {:>7} {:>7} {:>7}",
        "period from",
        "model",
        "role",
        "n",
        "pending",
        "churn",
        "ROC-AUC [95%]",
        "Brier",
        "ECE",
        "PSI"
    );
    for p in &report.periods {
        for m in &p.models {
            println!(
                "{:<22} {:<40} {:<10} {:>6} {:>7} {:>6} {:>22} {:>7} {:>7} {:>7}",
                format_timestamp(p.start),
                m.model,
                m.role,
                m.predictions,
                m.pending,
                m.metrics
                    .as_ref()
                    .map_or("–".into(), |x| format!("{:.1}%", 100.0 * x.churn_rate)),
                auc_text(m),
                m.metrics
                    .as_ref()
                    .map_or("–".into(), |x| format!("{:.4}", x.brier)),
                m.metrics
                    .as_ref()
                    .map_or("–".into(), |x| format!("{:.4}", x.ece)),
                m.psi.map_or("–".into(), |v| format!("{v:.3}")),
            );
        }
    }
    println!(
        "(PSI of the predicted probabilities against {})",
        report.reference
    );
}

type Metric = fn(&ModelPeriod) -> Option<f64>;

/// Days from the first period's start, and the axis label that says so.
fn days_axis(report: &Monitoring) -> (i64, String) {
    let first = report.periods.first().map_or(0, |p| p.start);
    (first, format!("days since {}", format_timestamp(first)))
}

/// One series per model and role (and per `(suffix, value)` pair).
fn series_of(report: &Monitoring, values: &[(&str, Metric)]) -> Vec<Series> {
    let (first, _) = days_axis(report);
    let mut names: Vec<String> = report
        .periods
        .iter()
        .flat_map(|p| p.models.iter().map(|m| format!("{} ({})", m.model, m.role)))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .flat_map(|name| {
            values
                .iter()
                .map(move |(suffix, value)| (name.clone(), *suffix, *value))
        })
        .map(|(name, suffix, value)| Series {
            points: report
                .periods
                .iter()
                .filter_map(|p| {
                    let m = p
                        .models
                        .iter()
                        .find(|m| format!("{} ({})", m.model, m.role) == name)?;
                    Some(((p.start - first) as f64 / DAY_MS as f64, value(m)?))
                })
                .collect(),
            name: format!("{name}{suffix}"),
            markers: true,
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn chart(
    report: &Monitoring,
    title: &str,
    y_label: &str,
    values: &[(&str, Metric)],
) -> Result<Option<String>> {
    let series = series_of(report, values);
    let points = series.iter().flat_map(|s| s.points.iter());
    let (x0, x1, y0, y1) = points.fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), p| (a.min(p.0), b.max(p.0), c.min(p.1), d.max(p.1)),
    );
    if series.is_empty() {
        return Ok(None);
    }
    let (xpad, ypad) = (((x1 - x0) * 0.05).max(1.0), ((y1 - y0) * 0.1).max(1e-3));
    Ok(Some(
        LineChart {
            title: title.into(),
            x_label: days_axis(report).1,
            y_label: y_label.into(),
            x_range: (x0 - xpad, x1 + xpad),
            y_range: ((y0 - ypad).max(0.0), y1 + ypad),
            series,
            reference: None,
            legend: Legend::UpperLeft,
            style: Style::default(),
        }
        .svg()?,
    ))
}

fn html(report: &Monitoring) -> Result<String> {
    let mut page = Page::new("Is the model still right?");
    page.note(&format!(
        "Predictions from the server's log, joined with the outcome later events reveal (predictions whose horizon has not ended are pending, not dropped). Periods of {} days. Prediction drift: PSI and KS of the predicted probabilities against {}.",
        report.every / DAY_MS,
        report.reference
    ));
    let auc: Metric = |m| m.metrics.as_ref().map(|x| x.roc_auc.estimate);
    let ece: Metric = |m| m.metrics.as_ref().map(|x| x.ece);
    let psi: Metric = |m| m.psi;
    let predicted: Metric = |m| Some(m.mean_predicted);
    let realised: Metric = |m| m.metrics.as_ref().map(|x| x.churn_rate);
    let mut charts = Vec::new();
    for (title, label, values) in [
        ("Realised ROC-AUC by period", "ROC-AUC", vec![("", auc)]),
        ("Calibration error (ECE) by period", "ECE", vec![("", ece)]),
        (
            "Drift of predictions (PSI) by period",
            "PSI",
            vec![("", psi)],
        ),
        (
            "Mean predicted vs realised churn",
            "churn rate",
            vec![(" predicted", predicted), (" realised", realised)],
        ),
    ] {
        if let Some(svg) = chart(report, title, label, &values)? {
            charts.push((svg, title));
        }
    }
    page.heading("Over time");
    page.charts(&charts);
    // Reliability of each model in its latest period with outcomes.
    let mut latest: Vec<(String, &ModelPeriod)> = Vec::new();
    for p in report.periods.iter().rev() {
        for m in &p.models {
            let name = format!(
                "{} ({}) from {}",
                m.model,
                m.role,
                format_timestamp(p.start)
            );
            if !m.reliability.is_empty()
                && !latest
                    .iter()
                    .any(|(_, l)| l.model == m.model && l.role == m.role)
            {
                latest.push((name, m));
            }
        }
    }
    if !latest.is_empty() {
        let series: Vec<Series> = latest
            .iter()
            .map(|(name, m)| Series {
                name: name.clone(),
                points: m
                    .reliability
                    .iter()
                    .map(|b| (b.mean_predicted, b.observed_rate))
                    .collect(),
                markers: true,
            })
            .collect();
        let top = series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|p| [p.0, p.1]))
            .fold(0.05_f64, f64::max)
            .min(1.0);
        let reliability = LineChart {
            title: "Reliability in the latest period with outcomes (10 equal-mass bins)".into(),
            x_label: "mean predicted probability".into(),
            y_label: "realised churn rate".into(),
            x_range: (0.0, top * 1.05),
            y_range: (0.0, top * 1.05),
            series,
            reference: Some(("perfect".into(), vec![(0.0, 0.0), (1.0, 1.0)])),
            legend: Legend::UpperLeft,
            style: Style::default(),
        }
        .svg()?;
        page.charts(&[(
            reliability,
            "On the diagonal: the predicted churn is the churn that happened.",
        )]);
    }
    page.heading("By period, model and role");
    let rows: Vec<Vec<Cell>> = report
        .periods
        .iter()
        .flat_map(|p| {
            p.models.iter().map(move |m| {
                vec![
                    Cell::Text(format_timestamp(p.start)),
                    Cell::Text(m.model.clone()),
                    Cell::Text(m.role.clone()),
                    Cell::Number(m.predictions as f64, 0),
                    Cell::Number(m.pending as f64, 0),
                    Cell::Number(m.not_eligible as f64, 0),
                    Cell::Text(
                        m.metrics
                            .as_ref()
                            .map_or("–".into(), |x| format!("{:.1}%", 100.0 * x.churn_rate)),
                    ),
                    Cell::Number(100.0 * m.mean_predicted, 1),
                    Cell::Text(auc_text(m)),
                    Cell::Text(interval_text(m.intervals.map(|i| i.average_precision), 3)),
                    Cell::Text(interval_text(m.intervals.map(|i| i.brier), 4)),
                    Cell::Text(interval_text(m.intervals.map(|i| i.ece), 4)),
                    Cell::Number(m.psi.unwrap_or(f64::NAN), 3),
                    Cell::Number(m.ks.map_or(f64::NAN, |k| k.statistic), 3),
                ]
            })
        })
        .collect();
    page.table(
        &[
            "period from",
            "model",
            "role",
            "predictions",
            "pending",
            "gone",
            "churn",
            "mean predicted %",
            "ROC-AUC [95%]",
            "PR-AUC [95%]",
            "Brier [95%]",
            "ECE [95%]",
            "PSI",
            "KS",
        ],
        &rows,
    );
    if !report.feature_drift.is_empty() {
        page.heading("Input drift (feature log against the training rows)");
        page.note("PSI per feature over the reference's decile bins (plus a missing bin); above 0.25 is usually read as a large shift, 0.1–0.25 as moderate. KS against the training quantiles for numeric features.");
        let (first, axis) = days_axis(report);
        let mut top: Vec<&str> = Vec::new();
        if let Some(last) = report.feature_drift.last() {
            top = last
                .features
                .iter()
                .take(6)
                .map(|f| f.feature.as_str())
                .collect();
        }
        let series: Vec<Series> = top
            .iter()
            .map(|feature| Series {
                name: (*feature).to_owned(),
                points: report
                    .feature_drift
                    .iter()
                    .filter_map(|d| {
                        let f = d.features.iter().find(|f| f.feature == *feature)?;
                        Some(((d.start - first) as f64 / DAY_MS as f64, f.psi))
                    })
                    .collect(),
                markers: true,
            })
            .collect();
        let (x0, x1) = report
            .feature_drift
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), d| {
                let x = (d.start - first) as f64 / DAY_MS as f64;
                (a.min(x), b.max(x))
            });
        let top_psi = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.3_f64, f64::max);
        let chart = LineChart {
            title: "PSI of the most drifting features by period".into(),
            x_label: axis.clone(),
            y_label: "PSI".into(),
            x_range: (x0 - 1.0, x1 + 1.0),
            y_range: (0.0, top_psi * 1.1),
            series,
            reference: Some(("0.25".into(), vec![(x0 - 1.0, 0.25), (x1 + 1.0, 0.25)])),
            legend: Legend::UpperLeft,
            style: Style::default(),
        }
        .svg()?;
        page.charts(&[(
            chart,
            "The six features that drift most in the latest period.",
        )]);
        let rows: Vec<Vec<Cell>> = report
            .feature_drift
            .iter()
            .flat_map(|d| {
                d.features.iter().take(5).map(move |f| {
                    vec![
                        Cell::Text(format_timestamp(d.start)),
                        Cell::Text(d.model.clone()),
                        Cell::Number(d.rows as f64, 0),
                        Cell::Text(f.feature.clone()),
                        Cell::Number(f.psi, 3),
                        Cell::Number(f.ks.unwrap_or(f64::NAN), 3),
                    ]
                })
            })
            .collect();
        page.table(
            &[
                "period from",
                "model",
                "rows",
                "feature (top 5)",
                "PSI",
                "KS",
            ],
            &rows,
        );
    }
    page.heading("By segment (all periods, labelled predictions)");
    let rows: Vec<Vec<Cell>> = report
        .by_segment
        .iter()
        .map(|s| {
            vec![
                Cell::Text(s.segment.clone()),
                Cell::Text(s.value.clone()),
                Cell::Text(s.model.clone()),
                Cell::Number(s.metrics.as_ref().map_or(0.0, |m| m.rows as f64), 0),
                Cell::Number(
                    s.metrics.as_ref().map_or(f64::NAN, |m| m.roc_auc.estimate),
                    3,
                ),
                Cell::Number(s.metrics.as_ref().map_or(f64::NAN, |m| m.ece), 4),
            ]
        })
        .collect();
    page.table(
        &["segment", "value", "model", "labelled", "ROC-AUC", "ECE"],
        &rows,
    );
    Ok(page.finish())
}
