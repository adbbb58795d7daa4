//! The `--fail-on` gate: thresholds on the latest period's metrics, so a
//! scheduled `churn monitor` can fail a pipeline when the model stops being
//! right.

use churn_core::format_timestamp;

use crate::{ModelPeriod, MonitorError, Monitoring};

/// One `--fail-on` condition, e.g. `auc<0.7`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: String,
    /// `>`: crossed above the limit; `<`: below.
    pub above: bool,
    pub limit: f64,
}

/// The metrics a threshold may name.
pub const METRICS: [&str; 6] = ["auc", "ap", "brier", "ece", "psi", "feature_psi"];

/// Parses `METRIC>LIMIT` / `METRIC<LIMIT` items separated by commas.
pub fn thresholds(text: &str) -> Result<Vec<Threshold>, MonitorError> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            let (at, above) = item
                .find('>')
                .map(|i| (i, true))
                .or_else(|| item.find('<').map(|i| (i, false)))
                .ok_or_else(|| {
                    MonitorError::Invalid(format!(
                        "--fail-on {item:?}: expected METRIC>LIMIT or METRIC<LIMIT"
                    ))
                })?;
            let metric = item[..at].trim().to_lowercase();
            if !METRICS.contains(&metric.as_str()) {
                return Err(MonitorError::Invalid(format!(
                    "--fail-on {item:?}: unknown metric {metric:?} (one of {})",
                    METRICS.join(", ")
                )));
            }
            let limit: f64 = item[at + 1..]
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| {
                    MonitorError::Invalid(format!("--fail-on {item:?}: the limit must be a number"))
                })?;
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

/// The first of `ignored` that is no feature: neither the registry's nor
/// one of the references' (a model's custom types and learner attributes).
pub fn unknown_feature<'a, 'r>(
    ignored: &'a [String],
    references: impl Iterator<Item = &'r churn_model::drift::TrainingReference> + Clone,
) -> Option<&'a str> {
    ignored
        .iter()
        .find(|f| {
            churn_features::registry::find(f).is_none()
                && !references.clone().any(|r| {
                    r.numeric.iter().any(|n| &n.feature == *f)
                        || r.categorical.iter().any(|c| &c.feature == *f)
                })
        })
        .map(String::as_str)
}

/// The conditions crossed in each model's latest period that has the metric
/// (`ignored` features do not count for `feature_psi`).
pub fn breaches(report: &Monitoring, thresholds: &[Threshold], ignored: &[String]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::model_period;
    use crate::{FeatureDrift, FeatureDriftPeriod, Period};

    #[test]
    fn thresholds_parse_and_name_what_is_wrong() {
        assert_eq!(
            thresholds("auc<0.7, PSI>0.25").expect("parses"),
            [
                Threshold {
                    metric: "auc".into(),
                    above: false,
                    limit: 0.7
                },
                Threshold {
                    metric: "psi".into(),
                    above: true,
                    limit: 0.25
                },
            ]
        );
        for (text, says) in [
            ("recall<0.5", "unknown metric"),
            ("auc=0.5", "expected METRIC>LIMIT"),
            ("auc<high", "must be a number"),
            ("auc<inf", "must be a number"),
        ] {
            let err = thresholds(text).expect_err(text).to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn only_the_latest_period_of_each_model_is_gated() {
        let report = Monitoring {
            every: 7,
            periods: vec![
                Period {
                    start: 0,
                    models: vec![model_period("m@1", "champion", 0.9)],
                },
                Period {
                    start: 7,
                    models: vec![model_period("m@1", "champion", 0.05)],
                },
            ],
            by_segment: Vec::new(),
            reference: String::new(),
            feature_drift: vec![FeatureDriftPeriod {
                start: 7,
                model: "m@1".into(),
                rows: 10,
                features: vec![
                    FeatureDrift {
                        feature: "tenure_days".into(),
                        psi: 0.8,
                        ks: None,
                    },
                    FeatureDrift {
                        feature: "logins_7d".into(),
                        psi: 0.3,
                        ks: None,
                    },
                ],
            }],
        };
        let psi = thresholds("psi>0.25").expect("parses");
        assert!(
            breaches(&report, &psi, &[]).is_empty(),
            "the old period's 0.9 does not count"
        );
        let lower = thresholds("psi>0.01").expect("parses");
        assert_eq!(breaches(&report, &lower, &[]).len(), 1);
        let features = thresholds("feature_psi>0.5").expect("parses");
        let crossed = breaches(&report, &features, &[]);
        assert!(
            crossed.len() == 1 && crossed[0].contains("tenure_days"),
            "{crossed:?}"
        );
        // Ignoring the drifting feature leaves the next one, under the limit.
        assert!(breaches(&report, &features, &["tenure_days".into()]).is_empty());
    }
}
