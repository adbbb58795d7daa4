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
use crate::commands::{Ui, load_and_report, reference_time, write_atomically};

/// One `--fail-on` condition, e.g. `auc<0.7`.
#[derive(Debug, Clone, PartialEq)]
struct Threshold {
    metric: String,
    above: bool,
    limit: f64,
}

const METRICS: [&str; 5] = ["auc", "ap", "brier", "ece", "psi"];

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

/// The conditions crossed in each model's latest period that has the metric.
fn breaches(report: &Monitoring, thresholds: &[Threshold]) -> Vec<String> {
    let mut models: Vec<(&str, &str)> = report
        .periods
        .iter()
        .flat_map(|p| p.models.iter().map(|m| (m.model.as_str(), m.role.as_str())))
        .collect();
    models.sort();
    models.dedup();
    let mut out = Vec::new();
    for t in thresholds {
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
    let data_end = dataset
        .events
        .iter()
        .map(|e| e.ts)
        .max()
        .unwrap_or(i64::MIN);
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
    let report = churn_monitor::monitor(&observations, every, None, args.seed)?;
    print(&report);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let json_path = args.out.join("monitor.json");
    write_atomically(&json_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &report)?;
        Ok(std::io::Write::write_all(w, b"\n")?)
    })?;
    let html_path = args.out.join("monitor.html");
    let html = html(&report)?;
    write_atomically(&html_path, |w| {
        Ok(std::io::Write::write_all(w, html.as_bytes())?)
    })?;
    println!("wrote {} and {}", json_path.display(), html_path.display());
    let crossed = breaches(&report, &thresholds);
    if crossed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for line in &crossed {
        eprintln!("FAIL: {line}");
    }
    Ok(ExitCode::from(3))
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

fn series_of(report: &Monitoring, value: impl Fn(&ModelPeriod) -> Option<f64>) -> Vec<Series> {
    let mut names: Vec<String> = report
        .periods
        .iter()
        .flat_map(|p| p.models.iter().map(|m| format!("{} ({})", m.model, m.role)))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| Series {
            points: report
                .periods
                .iter()
                .filter_map(|p| {
                    let m = p
                        .models
                        .iter()
                        .find(|m| format!("{} ({})", m.model, m.role) == name)?;
                    Some((p.start as f64 / DAY_MS as f64, value(m)?))
                })
                .collect(),
            name,
            markers: true,
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn chart(
    report: &Monitoring,
    title: &str,
    y_label: &str,
    value: impl Fn(&ModelPeriod) -> Option<f64>,
) -> Result<Option<String>> {
    let series = series_of(report, value);
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
            x_label: "period start (days since 1970-01-01)".into(),
            y_label: y_label.into(),
            x_range: (x0 - xpad, x1 + xpad),
            y_range: ((y0 - ypad).max(0.0), y1 + ypad),
            series,
            reference: None,
            legend: Legend::LowerRight,
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
    let mut charts = Vec::new();
    for (title, label, f) in [
        (
            "Realised ROC-AUC by period",
            "ROC-AUC",
            (|m: &ModelPeriod| m.metrics.as_ref().map(|x| x.roc_auc.estimate))
                as fn(&ModelPeriod) -> Option<f64>,
        ),
        ("Calibration error (ECE) by period", "ECE", |m| {
            m.metrics.as_ref().map(|x| x.ece)
        }),
        ("Drift of predictions (PSI) by period", "PSI", |m| m.psi),
        (
            "Mean predicted vs realised churn",
            "mean predicted probability",
            |m| Some(m.mean_predicted),
        ),
    ] {
        if let Some(svg) = chart(report, title, label, f)? {
            charts.push((svg, title));
        }
    }
    page.heading("Over time");
    page.charts(&charts);
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
                    Cell::Number(
                        m.metrics.as_ref().map_or(f64::NAN, |x| x.average_precision),
                        3,
                    ),
                    Cell::Number(m.metrics.as_ref().map_or(f64::NAN, |x| x.brier), 4),
                    Cell::Number(m.metrics.as_ref().map_or(f64::NAN, |x| x.ece), 4),
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
            "PR-AUC",
            "Brier",
            "ECE",
            "PSI",
            "KS",
        ],
        &rows,
    );
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
