//! The monitoring report for people: the terminal table and the page written
//! as `monitor.html` (metrics over time, reliability, input drift, segments).

use std::fmt::Write;

use churn_core::{DAY_MS, format_timestamp};
use churn_html::{Cell, Legend, LineChart, Page, Series, Style};

use crate::{ModelPeriod, MonitorError, Monitoring};

fn interval_text(i: Option<churn_metrics::Interval>, digits: usize) -> String {
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

/// The report for a terminal, as text.
pub fn terminal(report: &Monitoring) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_terminal(report, &mut out);
    out
}

fn write_terminal(report: &Monitoring, out: &mut String) -> std::fmt::Result {
    writeln!(
        out,
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
    )?;
    for p in &report.periods {
        for m in &p.models {
            writeln!(
                out,
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
            )?;
            if m.learned_from > 0 {
                writeln!(
                    out,
                    "{:<22} ↳ the model learned from the labels of {} of these predictions: its metrics here flatter it",
                    "", m.learned_from
                )?;
            }
        }
    }
    writeln!(
        out,
        "(PSI of the predicted probabilities against {})",
        report.reference
    )?;
    Ok(())
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
) -> Result<Option<String>, MonitorError> {
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

/// The page written as `monitor.html`.
pub fn html(report: &Monitoring) -> Result<String, MonitorError> {
    let mut page = Page::new("Is the model still right?");
    page.note(&format!(
        "Predictions from the server's log, joined with the outcome later events reveal (predictions whose horizon has not ended are pending, not dropped). Periods of {} days. Prediction drift: PSI and KS of the predicted probabilities against {}.",
        report.every / DAY_MS,
        report.reference
    ));
    let flattered: Vec<String> = report
        .periods
        .iter()
        .flat_map(|p| {
            p.models
                .iter()
                .filter(|m| m.learned_from > 0)
                .map(move |m| {
                    format!(
                        "{} from {} ({} of {})",
                        m.model,
                        format_timestamp(p.start),
                        m.learned_from,
                        m.predictions
                    )
                })
        })
        .collect();
    if !flattered.is_empty() {
        page.note(&format!(
            "A model refitted on every labelled example learned from the labels of some of these predictions, and its realised metrics there flatter it; compare the periods after its data end: {}.",
            flattered.join("; ")
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::model_period;
    use crate::{FeatureDrift, FeatureDriftPeriod, Period};

    #[test]
    fn both_summaries_show_every_period_model_and_drifting_feature() {
        let report = Monitoring {
            every: 7 * DAY_MS,
            periods: vec![
                Period {
                    start: 0,
                    models: vec![
                        model_period("churn-gbdt@1", "champion", 0.01),
                        model_period("churn-logistic@1", "challenger", 0.02),
                    ],
                },
                Period {
                    start: 7 * DAY_MS,
                    models: vec![model_period("churn-gbdt@1", "champion", 0.4)],
                },
            ],
            by_segment: Vec::new(),
            reference: "the training rows".into(),
            feature_drift: vec![FeatureDriftPeriod {
                start: 7 * DAY_MS,
                model: "churn-gbdt@1".into(),
                rows: 30,
                features: vec![FeatureDrift {
                    feature: "tenure_days".into(),
                    psi: 0.8,
                    ks: Some(0.3),
                }],
            }],
        };
        let text = terminal(&report);
        assert_eq!(
            text.lines().filter(|l| l.contains("churn-gbdt@1")).count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("1970-01-08T00:00:00Z") && text.contains("0.400"),
            "{text}"
        );
        assert!(text.contains("against the training rows"), "{text}");
        let html = html(&report).expect("a page");
        for needle in [
            "churn-logistic@1",
            "challenger",
            "tenure_days",
            "Input drift",
        ] {
            assert!(html.contains(needle), "{needle} in the page");
        }
    }
}
