//! The training report: one HTML file comparing the fitted models on the
//! out-of-time test set (metrics with intervals, ROC, PR, reliability, gains,
//! importance, SHAP beeswarm, metrics by segment).

use churn_html::{
    BarChart, Beeswarm, BeeswarmRow, Cell, Legend, LineChart, Page, ReportError, Series, Style,
};
use churn_model::Kind;

use crate::{Fitted, Fold, Split, Table};
use churn_metrics::{self as metrics, Metrics};

/// A curve of predictions against labels (ROC, PR, gains).
type Curve = fn(&[f64], &[f64]) -> Vec<(f64, f64)>;

/// A fitted model as the report names it.
pub struct Reported<'a> {
    /// `name@version`.
    pub label: String,
    pub fitted: &'a Fitted,
    /// The rolling-origin backtest, oldest fold first (when one was run).
    pub backtest: Option<&'a [Fold]>,
}

/// Two models' backtests compared on the same folds.
pub struct Paired {
    /// The models, as `a − b`.
    pub a: String,
    pub b: String,
    /// Mean over folds of the ROC-AUC difference, with its paired bootstrap interval.
    pub auc_difference: metrics::Interval,
}

impl Reported<'_> {
    /// The name without the version, for legends.
    fn name(&self) -> &str {
        self.label.split('@').next().unwrap_or(&self.label)
    }
}

/// Features shown in the importance and beeswarm charts.
const TOP_FEATURES: usize = 15;
/// Features in the beeswarm.
const BEESWARM_FEATURES: usize = 12;
/// Test rows drawn per beeswarm row.
const BEESWARM_ROWS: usize = 300;

fn interval(m: &Metrics) -> String {
    format!(
        "{:.4} [{:.4}, {:.4}]",
        m.roc_auc.estimate, m.roc_auc.low, m.roc_auc.high
    )
}

fn metrics_row(label: &str, m: &Metrics, calibration: &str) -> Vec<Cell> {
    vec![
        Cell::from(label),
        Cell::Number(m.rows as f64, 0),
        Cell::Number(100.0 * m.churn_rate, 1),
        Cell::Text(interval(m)),
        Cell::Number(m.average_precision, 4),
        Cell::Number(m.log_loss, 4),
        Cell::Number(m.brier, 4),
        Cell::Number(m.ece, 4),
        Cell::Number(m.precision_at_10, 3),
        Cell::Number(m.lift_at_10, 2),
        Cell::Number(m.lift_at_20, 2),
        Cell::from(calibration),
    ]
}

const METRICS_HEADER: [&str; 12] = [
    "model",
    "rows",
    "churn %",
    "ROC-AUC [95% bootstrap]",
    "PR-AUC (AP)",
    "log loss",
    "Brier",
    "ECE",
    "precision@10%",
    "lift@10%",
    "lift@20%",
    "calibration",
];

/// The report as an HTML document. `context` lines (data, period, seed) go
/// under the title.
pub fn training_report(
    title: &str,
    context: &[String],
    models: &[Reported<'_>],
    table: &Table,
    split: &Split,
    paired: Option<&Paired>,
) -> Result<String, ReportError> {
    let mut page = Page::new(title);
    for line in context {
        page.note(line);
    }

    page.heading("Out-of-time test metrics");
    page.note(&format!(
        "Test = the {} labelled examples at the latest labelled as-of time; validation (early stopping and calibration) and training lie a label horizon before it, so no label window overlaps. Intervals: 200 bootstrap resamples of the test rows. ECE over 10 equal-mass bins.",
        split.test.len()
    ));
    let mut rows = Vec::new();
    for m in models {
        let calibration = m.fitted.model.calibration.name();
        rows.push(metrics_row(
            &format!("{} (test)", m.label),
            &m.fitted.test,
            calibration,
        ));
        rows.push(metrics_row(
            &format!("{} (validation)", m.label),
            &m.fitted.valid,
            calibration,
        ));
    }
    page.table(&METRICS_HEADER, &rows);

    if models.iter().any(|m| m.backtest.is_some()) {
        backtest_section(&mut page, models, paired)?;
    }

    page.heading("Ranking and calibration");
    let series = |curve: Curve, name: &dyn Fn(&Fitted) -> String| {
        models
            .iter()
            .map(|m| Series {
                name: format!("{} {}", m.name(), name(m.fitted)),
                points: curve(&m.fitted.test_probabilities, &m.fitted.test_labels),
                markers: false,
            })
            .collect::<Vec<_>>()
    };
    let base_rate = models.first().map_or(0.0, |m| m.fitted.test.churn_rate);
    let roc = LineChart {
        title: "ROC curve (test)".into(),
        x_label: "false positive rate".into(),
        y_label: "true positive rate".into(),
        x_range: (0.0, 1.0),
        y_range: (0.0, 1.0),
        series: series(metrics::roc_curve, &|f| {
            format!("AUC {:.3}", f.test.roc_auc.estimate)
        }),
        reference: Some(("random".into(), vec![(0.0, 0.0), (1.0, 1.0)])),
        legend: Legend::LowerRight,
        style: Style::default(),
    };
    let pr = LineChart {
        title: "Precision–recall (test)".into(),
        x_label: "recall".into(),
        y_label: "precision".into(),
        x_range: (0.0, 1.0),
        y_range: (0.0, 1.0),
        series: series(metrics::pr_curve, &|f| {
            format!("AP {:.3}", f.test.average_precision)
        }),
        reference: Some((
            format!("base rate {:.1}%", 100.0 * base_rate),
            vec![(0.0, base_rate), (1.0, base_rate)],
        )),
        legend: Legend::UpperRight,
        style: Style::default(),
    };
    let reliability_series: Vec<Series> = models
        .iter()
        .map(|m| Series {
            name: format!("{} ECE {:.3}", m.name(), m.fitted.test.ece),
            points: metrics::reliability(&m.fitted.test_probabilities, &m.fitted.test_labels, 10)
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| (b.mean_predicted, b.observed_rate))
                .collect(),
            markers: true,
        })
        .collect();
    let top = reliability_series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.0, p.1]))
        .fold(0.05_f64, f64::max)
        .min(1.0);
    let reliability = LineChart {
        title: "Reliability (test, 10 equal-mass bins)".into(),
        x_label: "mean predicted probability".into(),
        y_label: "observed churn rate".into(),
        x_range: (0.0, top * 1.05),
        y_range: (0.0, top * 1.05),
        series: reliability_series,
        reference: Some(("perfect".into(), vec![(0.0, 0.0), (1.0, 1.0)])),
        legend: Legend::UpperLeft,
        style: Style::default(),
    };
    let gains = LineChart {
        title: "Cumulative gains (test)".into(),
        x_label: "share of learners contacted, riskiest first".into(),
        y_label: "share of churners reached".into(),
        x_range: (0.0, 1.0),
        y_range: (0.0, 1.0),
        series: series(metrics::gains_curve, &|f| {
            format!("lift@10% {:.2}", f.test.lift_at_10)
        }),
        reference: Some(("random".into(), vec![(0.0, 0.0), (1.0, 1.0)])),
        legend: Legend::LowerRight,
        style: Style::default(),
    };
    let lift = LineChart {
        title: "Lift (test)".into(),
        x_label: "share of learners contacted, riskiest first".into(),
        y_label: "churn rate reached / base rate".into(),
        x_range: (0.0, 1.0),
        y_range: (0.0, lift_ceiling(models)),
        series: series(metrics::gains_curve, &|_| String::new())
            .into_iter()
            .map(|mut s| {
                s.points = s
                    .points
                    .iter()
                    .filter(|p| p.0 >= 0.02)
                    .map(|&(x, y)| (x, y / x))
                    .collect();
                s.name = s.name.trim_end().to_owned();
                s
            })
            .collect(),
        reference: Some(("random".into(), vec![(0.0, 1.0), (1.0, 1.0)])),
        legend: Legend::UpperRight,
        style: Style::default(),
    };
    page.charts(&[
        (roc.svg()?, "Ranking quality: the higher and further left, the better."),
        (pr.svg()?, "Precision among the learners flagged, by share of churners found."),
        (
            reliability.svg()?,
            "Predicted vs observed churn: points on the diagonal mean the probabilities can be taken at face value.",
        ),
        (
            gains.svg()?,
            "How many of the churners a campaign reaches when it contacts the riskiest learners first.",
        ),
        (lift.svg()?, "How much richer in churners the riskiest slice is than a random one."),
    ]);

    page.heading("What drives the predictions");
    page.note("Contributions are in log-odds on the margin scale (exact TreeSHAP for gbdt; coefficient × standardised deviation from the training mean for logistic); they sum with the base value to each prediction's margin.");
    let mut charts = Vec::new();
    for m in models {
        charts.push((
            importance_chart(m)?,
            format!("{}: mean |contribution| over the test rows.", m.label),
        ));
        charts.push((
            beeswarm(m, table, split)?,
            format!("{}: each dot is a test learner; colour is the feature's value (blue low, red high, grey missing or categorical).", m.label),
        ));
    }
    let borrowed: Vec<(String, &str)> = charts
        .iter()
        .map(|(s, c)| (s.clone(), c.as_str()))
        .collect();
    page.charts(&borrowed);

    page.heading("Test metrics by segment");
    for segment in crate::SEGMENT_FEATURES {
        let mut rows = Vec::new();
        for m in models {
            let Some(groups) = m.fitted.by_segment.get(segment) else {
                continue;
            };
            for (value, metrics) in groups {
                rows.push(vec![
                    Cell::Text(format!("{segment} = {value}")),
                    Cell::from(m.name()),
                    Cell::Number(metrics.rows as f64, 0),
                    Cell::Number(100.0 * metrics.churn_rate, 1),
                    Cell::Text(interval(metrics)),
                    Cell::Number(metrics.average_precision, 4),
                    Cell::Number(metrics.log_loss, 4),
                    Cell::Number(metrics.ece, 4),
                ]);
            }
        }
        if !rows.is_empty() {
            page.table(
                &[
                    "segment",
                    "model",
                    "rows",
                    "churn %",
                    "ROC-AUC [95%]",
                    "AP",
                    "log loss",
                    "ECE",
                ],
                &rows,
            );
        }
    }
    Ok(page.finish())
}

fn lift_ceiling(models: &[Reported<'_>]) -> f64 {
    let rate = models.first().map_or(0.5, |m| m.fitted.test.churn_rate);
    if rate > 0.0 {
        (1.0 / rate).min(20.0) * 1.05
    } else {
        2.0
    }
}

/// Indices of the `k` most important features, most important first.
fn top_features(fitted: &Fitted, k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..fitted.importance.len()).collect();
    order.sort_by(|&a, &b| fitted.importance[b].1.total_cmp(&fitted.importance[a].1));
    order.truncate(k);
    order
}

fn importance_chart(m: &Reported<'_>) -> Result<String, ReportError> {
    let bars = top_features(m.fitted, TOP_FEATURES)
        .into_iter()
        .map(|j| m.fitted.importance[j].clone())
        .collect();
    BarChart {
        title: format!("Importance: {}", m.name()),
        x_label: "mean |contribution| (log-odds)".into(),
        bars,
        style: Style {
            width: 560,
            height: 460,
        },
    }
    .svg()
}

/// Rank in [0, 1] of each value among the finite ones (ties share the lower rank).
fn ranks(values: &[f64]) -> Vec<Option<f64>> {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let last = finite.len().saturating_sub(1).max(1) as f64;
    values
        .iter()
        .map(|v| {
            v.is_finite()
                .then(|| finite.partition_point(|x| x < v) as f64 / last)
        })
        .collect()
}

fn beeswarm(m: &Reported<'_>, table: &Table, split: &Split) -> Result<String, ReportError> {
    let fitted = m.fitted;
    let width = fitted.importance.len();
    // Positions among the explained rows (whose contributions are kept).
    let rows = fitted.explained_rows.len();
    let step = rows.div_ceil(BEESWARM_ROWS).max(1);
    let sample: Vec<usize> = (0..rows).step_by(step).collect();
    let numeric = table.numeric_len();
    let swarm_rows = top_features(fitted, BEESWARM_FEATURES)
        .into_iter()
        .map(|j| {
            let colours = if table.features[j].1 == Kind::Numeric {
                let values: Vec<f64> = sample
                    .iter()
                    .map(|&r| table.numeric[split.test[fitted.explained_rows[r]] * numeric + j])
                    .collect();
                ranks(&values)
            } else {
                vec![None; sample.len()]
            };
            BeeswarmRow {
                name: fitted.importance[j].0.clone(),
                points: sample
                    .iter()
                    .zip(colours)
                    .map(|(&r, colour)| (fitted.test_contributions[r * width + j], colour))
                    .collect(),
            }
        })
        .collect();
    Beeswarm {
        title: format!("Contributions: {}", m.name()),
        x_label: "contribution to the churn log-odds".into(),
        rows: swarm_rows,
        style: Style {
            width: 560,
            height: 460,
        },
    }
    .svg()
}

/// Every fold's test metrics, their mean and spread, AUC and ECE by fold,
/// and the paired comparison of two models.
fn backtest_section(
    page: &mut Page,
    models: &[Reported<'_>],
    paired: Option<&Paired>,
) -> Result<(), ReportError> {
    page.heading("Backtest (rolling origin)");
    page.note("Each of the latest labelled as-of times is the test period in turn, with training and validation before it under the same purge rule; the newest fold is the split above. When the shipped model is a refit, the refit procedure is scored on each fold too: the same family fitted on every row whose label was known by the fold's test period (as the refit learns from every label known at the end of the data), calibrated out of fold. Its newest fold is the shipped model's estimate. A difference between two models counts when its interval excludes 0; the spread over folds says how much one period's figure moves.");
    let mut rows = Vec::new();
    let mut auc_series = Vec::new();
    let mut ece_series = Vec::new();
    for m in models {
        let Some(folds) = m.backtest else { continue };
        let fold_models: Vec<ByFold<'_>> = folds
            .iter()
            .map(|f| ByFold {
                test_as_of: &f.test_as_of,
                metrics: &f.test,
                trees: f.trees,
            })
            .collect();
        let refits: Vec<ByFold<'_>> = folds
            .iter()
            .filter_map(|f| {
                f.refit.as_ref().map(|r| ByFold {
                    test_as_of: &f.test_as_of,
                    metrics: &r.test,
                    trees: r.trees,
                })
            })
            .collect();
        let mut kinds = vec![(m.name().to_owned(), fold_models)];
        if refits.len() == folds.len() {
            kinds.push((format!("{} refit procedure", m.name()), refits));
        }
        for (name, by_fold) in kinds {
            let (auc, ece) = fold_rows(&mut rows, &name, &by_fold);
            auc_series.push(auc);
            ece_series.push(ece);
        }
    }
    let mut header = METRICS_HEADER;
    header[11] = "trees";
    page.table(&header, &rows);
    if let Some(p) = paired {
        let d = &p.auc_difference;
        page.note(&format!(
            "ROC-AUC {} − {}, mean over folds: {:+.4} [{:+.4}, {:+.4}] (paired bootstrap, 1,000 resamples of each fold's test rows, both models on the same draws): {}.",
            p.a,
            p.b,
            d.estimate,
            d.low,
            d.high,
            if d.low > 0.0 {
                format!("{} ranks better", p.a)
            } else if d.high < 0.0 {
                format!("{} ranks better", p.b)
            } else {
                "no difference the folds can tell".to_owned()
            }
        ));
    }
    let folds = auc_series.first().map_or(1, |s| s.points.len()) as f64;
    let range = |series: &[Series], pad: f64| {
        let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if lo.is_finite() {
            ((lo - pad).max(0.0), hi + pad)
        } else {
            (0.0, 1.0)
        }
    };
    let by_fold = |title: &str, y_label: &str, series: Vec<Series>, pad: f64| LineChart {
        title: title.into(),
        x_label: "fold (oldest test period first)".into(),
        y_label: y_label.into(),
        x_range: (0.5, folds + 0.5),
        y_range: range(&series, pad),
        series,
        reference: None,
        legend: Legend::LowerRight,
        style: Style::default(),
    };
    page.charts(&[
        (
            by_fold("ROC-AUC by fold", "ROC-AUC", auc_series, 0.01).svg()?,
            "Ranking quality on each fold's test period.",
        ),
        (
            by_fold("Calibration error (ECE) by fold", "ECE", ece_series, 0.005).svg()?,
            "Expected calibration error on each fold's test period (10 equal-mass bins).",
        ),
    ]);
    Ok(())
}

/// One fold's test metrics of a fold model or of the refit procedure.
struct ByFold<'a> {
    test_as_of: &'a [String],
    metrics: &'a Metrics,
    trees: Option<usize>,
}

/// The table rows of `name` on every fold and their mean ± sd, and its AUC
/// and ECE series by fold.
fn fold_rows(rows: &mut Vec<Vec<Cell>>, name: &str, folds: &[ByFold<'_>]) -> (Series, Series) {
    for (k, fold) in folds.iter().enumerate() {
        let mut row = metrics_row(
            &format!(
                "{name} fold {} (test {})",
                k + 1,
                fold.test_as_of.join(", ")
            ),
            fold.metrics,
            "",
        );
        row.pop();
        row.push(Cell::Text(
            fold.trees
                .map_or_else(String::new, |t| format!("{t} trees")),
        ));
        rows.push(row);
    }
    let stat = |get: &dyn Fn(&Metrics) -> f64| {
        crate::mean_and_sd(&folds.iter().map(|f| get(f.metrics)).collect::<Vec<f64>>())
    };
    let mean = |get: &dyn Fn(&Metrics) -> f64| stat(get).0;
    let sd = |get: &dyn Fn(&Metrics) -> f64| stat(get).1;
    let auc = |m: &Metrics| m.roc_auc.estimate;
    rows.push(vec![
        Cell::Text(format!("{name} mean ± sd over {} folds", folds.len())),
        Cell::Number(folds.iter().map(|f| f.metrics.rows as f64).sum::<f64>(), 0),
        Cell::Number(100.0 * mean(&|m| m.churn_rate), 1),
        Cell::Text(format!("{:.4} ± {:.4}", mean(&auc), sd(&auc))),
        Cell::Number(mean(&|m| m.average_precision), 4),
        Cell::Number(mean(&|m| m.log_loss), 4),
        Cell::Number(mean(&|m| m.brier), 4),
        Cell::Text(format!("{:.4} ± {:.4}", mean(&|m| m.ece), sd(&|m| m.ece))),
        Cell::Number(mean(&|m| m.precision_at_10), 3),
        Cell::Number(mean(&|m| m.lift_at_10), 2),
        Cell::Number(mean(&|m| m.lift_at_20), 2),
        Cell::from(""),
    ]);
    let series = |get: &dyn Fn(&Metrics) -> f64| Series {
        name: name.to_owned(),
        points: folds
            .iter()
            .enumerate()
            .map(|(k, f)| ((k + 1) as f64, get(f.metrics)))
            .collect(),
        markers: true,
    };
    (series(&auc), series(&|m| m.ece))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_spread_values_over_zero_to_one_and_skip_missing() {
        let r = ranks(&[3.0, f64::NAN, 1.0, 2.0, 3.0]);
        assert_eq!(
            r,
            vec![
                Some(2.0 / 3.0),
                None,
                Some(0.0),
                Some(1.0 / 3.0),
                Some(2.0 / 3.0)
            ]
        );
    }
}
