//! `churn monitor`: is the live model still right? From the server's
//! prediction log joined with the outcomes that later events reveal, per
//! period and per model version and role: realised ROC-AUC, PR-AUC, Brier and
//! calibration; how many predictions still wait for their outcome; and the
//! drift of the predicted probabilities against a reference (PSI, KS).
//!
//! [`join`] turns the server's logs into [`Observation`]s (each prediction
//! with the label its later events give), [`monitor`] and [`feature_drift`]
//! aggregate them, [`gate`] checks `--fail-on` thresholds and [`summary`]
//! says it to people.

pub use churn_model::drift;

pub mod gate;
pub mod join;
pub mod models;
pub mod summary;

use std::collections::BTreeMap;

use churn_metrics::{self as metrics, CalibrationBin, Interval, Metrics};
use serde::Serialize;

use crate::drift::{Ks, Reference, ks_2samp};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] churn_model::ModelError),
    #[error(transparent)]
    Report(#[from] churn_html::ReportError),
}

/// What became of a prediction's learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Churned,
    Stayed,
    /// The horizon runs past the data: not known yet (reported, not dropped).
    Pending,
    /// Already gone when predicted: not an example of the label.
    NotEligible,
}

/// One logged prediction with its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When the prediction applies (the instance's as-of time), ms.
    pub time: i64,
    /// `name@version`.
    pub model: String,
    /// `champion` or `challenger`.
    pub role: String,
    pub probability: f64,
    pub outcome: Outcome,
    /// Segment values (e.g. plan, channel, device), by segment name.
    pub segments: Vec<(String, String)>,
}

/// One model (version and role) in one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelPeriod {
    pub model: String,
    pub role: String,
    pub predictions: usize,
    pub pending: usize,
    pub not_eligible: usize,
    pub mean_predicted: f64,
    /// Over the labelled predictions; `None` with fewer than two classes.
    pub metrics: Option<Metrics>,
    /// Bootstrap 95% intervals of PR-AUC, Brier and ECE (the AUC's is in `metrics`).
    pub intervals: Option<MetricIntervals>,
    /// Reliability: 10 equal-mass bins of the labelled predictions.
    pub reliability: Vec<CalibrationBin>,
    /// Drift of the predicted probabilities against the reference.
    pub psi: Option<f64>,
    pub ks: Option<Ks>,
    /// Predictions whose as-of time the model learned labels from (a model
    /// refitted on every labelled example): its realised metrics there
    /// flatter it, so compare periods after its data end.
    pub learned_from: usize,
}

/// One period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// Start, ms (inclusive); the period runs for `every`.
    pub start: i64,
    pub models: Vec<ModelPeriod>,
}

/// Realised metrics of one segment value over all periods (labelled rows).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentMetrics {
    pub segment: String,
    pub value: String,
    pub model: String,
    pub metrics: Option<Metrics>,
}

/// The whole monitoring report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Monitoring {
    pub every: i64,
    pub periods: Vec<Period>,
    pub by_segment: Vec<SegmentMetrics>,
    /// What the drift is measured against.
    pub reference: String,
    /// Input drift from the feature log, per period and model.
    pub feature_drift: Vec<FeatureDriftPeriod>,
}

fn labelled(rows: &[&Observation]) -> (Vec<f64>, Vec<f64>) {
    rows.iter()
        .filter_map(|o| match o.outcome {
            Outcome::Churned => Some((o.probability, 1.0)),
            Outcome::Stayed => Some((o.probability, 0.0)),
            _ => None,
        })
        .unzip()
}

/// Percentile bootstrap intervals of the metrics that have no interval in [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricIntervals {
    pub average_precision: Interval,
    pub brier: Interval,
    pub ece: Interval,
}

/// Learners resampled 200 times (seeded); a replicate with one class is skipped.
fn intervals_of(rows: &[&Observation], seed: u64) -> Option<MetricIntervals> {
    let (p, y) = labelled(rows);
    let positives = y.iter().filter(|&&v| v == 1.0).count();
    if positives == 0 || positives == y.len() {
        return None;
    }
    let n = p.len();
    // SplitMix64 draws: no RNG state to share, the same replicates for every metric.
    let mut state = seed ^ 0x005E_ED0F_B007;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let mut replicates: [Vec<f64>; 3] = Default::default();
    let (mut ps, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..200 {
        ps.clear();
        ys.clear();
        for _ in 0..n {
            let i = next();
            ps.push(p[i]);
            ys.push(y[i]);
        }
        let k = ys.iter().filter(|&&v| v == 1.0).count();
        if k == 0 || k == n {
            continue;
        }
        replicates[0].push(metrics::average_precision(&ps, &ys));
        replicates[1].push(metrics::brier(&ps, &ys));
        replicates[2].push(metrics::ece(&ps, &ys));
    }
    let interval = |estimate: f64, values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Interval {
            estimate,
            low: at(0.025),
            high: at(0.975),
        }
    };
    if replicates[0].is_empty() {
        return None;
    }
    let [ap, brier, ece] = &mut replicates;
    Some(MetricIntervals {
        average_precision: interval(metrics::average_precision(&p, &y), ap),
        brier: interval(metrics::brier(&p, &y), brier),
        ece: interval(metrics::ece(&p, &y), ece),
    })
}

fn metrics_of(rows: &[&Observation], seed: u64) -> Option<Metrics> {
    let (p, y) = labelled(rows);
    let positives = y.iter().filter(|&&v| v == 1.0).count();
    (positives > 0 && positives < y.len()).then(|| metrics::metrics(&p, &y, seed))
}

/// The start of the first period: the day of the earliest time.
pub fn first_day(times: impl Iterator<Item = i64>) -> Option<i64> {
    const DAY: i64 = 86_400_000;
    times.min().map(|t| t.div_euclid(DAY) * DAY)
}

/// Aggregates observations into periods of `every` ms from `start`. The drift
/// of each model's predictions is measured against `references[model]` (the
/// quantiles of its test predictions, from its training reference) when
/// present, else against the model's first period. `learned_through[model]`
/// is the latest as-of time a model learned labels from (its card's refit).
pub fn monitor(
    observations: &[Observation],
    start: i64,
    every: i64,
    references: &BTreeMap<String, Vec<f64>>,
    learned_through: &BTreeMap<String, i64>,
    seed: u64,
) -> Result<Monitoring, MonitorError> {
    if every <= 0 {
        return Err(MonitorError::Invalid("the period must be positive".into()));
    }
    if observations.is_empty() {
        return Err(MonitorError::Invalid("no predictions to monitor".into()));
    }
    if let Some(o) = observations
        .iter()
        .find(|o| !(0.0..=1.0).contains(&o.probability))
    {
        return Err(MonitorError::Invalid(format!(
            "a prediction of {} for model {}: not a probability",
            o.probability, o.model
        )));
    }
    let first = start;
    let mut grouped: BTreeMap<(i64, &str, &str), Vec<&Observation>> = BTreeMap::new();
    for o in observations {
        let period = (o.time - first).div_euclid(every);
        grouped
            .entry((period, o.model.as_str(), o.role.as_str()))
            .or_default()
            .push(o);
    }
    // Per model: its first period's predictions, the reference when it has none.
    let mut first_seen: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut periods: Vec<Period> = Vec::new();
    for ((period, model, role), rows) in &grouped {
        let probabilities: Vec<f64> = rows.iter().map(|o| o.probability).collect();
        let baseline: &[f64] = match references.get(*model) {
            Some(r) if !r.is_empty() => r,
            _ => first_seen
                .entry(model)
                .or_insert_with(|| probabilities.clone()),
        };
        let psi = Some(Reference::from_values(baseline, 10)?.psi(&probabilities)?);
        let ks = Some(ks_2samp(&probabilities, baseline)?);
        let entry = ModelPeriod {
            model: (*model).to_owned(),
            role: (*role).to_owned(),
            predictions: rows.len(),
            pending: rows
                .iter()
                .filter(|o| o.outcome == Outcome::Pending)
                .count(),
            not_eligible: rows
                .iter()
                .filter(|o| o.outcome == Outcome::NotEligible)
                .count(),
            mean_predicted: probabilities.iter().sum::<f64>() / probabilities.len() as f64,
            metrics: metrics_of(rows, seed),
            intervals: intervals_of(rows, seed),
            reliability: {
                let (p, y) = labelled(rows);
                metrics::reliability(&p, &y, 10)
            },
            psi,
            ks,
            learned_from: learned_through.get(*model).map_or(0, |&through| {
                rows.iter().filter(|o| o.time <= through).count()
            }),
        };
        let start = first + period * every;
        match periods.last_mut() {
            Some(p) if p.start == start => p.models.push(entry),
            _ => periods.push(Period {
                start,
                models: vec![entry],
            }),
        }
    }
    let mut segments: BTreeMap<(&str, &str, &str), Vec<&Observation>> = BTreeMap::new();
    for o in observations {
        for (name, value) in &o.segments {
            segments
                .entry((name.as_str(), value.as_str(), o.model.as_str()))
                .or_default()
                .push(o);
        }
    }
    let by_segment = segments
        .into_iter()
        .map(|((segment, value, model), rows)| SegmentMetrics {
            segment: segment.to_owned(),
            value: value.to_owned(),
            model: model.to_owned(),
            metrics: metrics_of(&rows, seed),
        })
        .collect();
    Ok(Monitoring {
        every,
        periods,
        by_segment,
        reference: if references.is_empty() {
            "each model's first period (no training reference found)".into()
        } else {
            "the model's test-set predictions in training (reference.json)".into()
        },
        feature_drift: Vec::new(),
    })
}

/// One logged row of served features.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureObservation {
    pub time: i64,
    pub model: String,
    pub numeric: BTreeMap<String, f64>,
    pub categorical: BTreeMap<String, Option<String>>,
}

/// One feature's drift in one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
    /// KS statistic against the training quantiles (numeric features).
    pub ks: Option<f64>,
}

/// A model's input drift in one period, the most drifting features first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDriftPeriod {
    pub start: i64,
    pub model: String,
    pub rows: usize,
    pub features: Vec<FeatureDrift>,
}

/// Input drift per period and model against each model's training
/// reference (models without one are skipped).
pub fn feature_drift(
    rows: &[FeatureObservation],
    start: i64,
    every: i64,
    references: &BTreeMap<String, churn_model::drift::TrainingReference>,
) -> Result<Vec<FeatureDriftPeriod>, MonitorError> {
    if every <= 0 {
        return Err(MonitorError::Invalid("the period must be positive".into()));
    }
    let mut grouped: BTreeMap<(i64, &str), Vec<&FeatureObservation>> = BTreeMap::new();
    for r in rows {
        grouped
            .entry(((r.time - start).div_euclid(every), r.model.as_str()))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((period, model), rows) in grouped {
        let Some(reference) = references.get(model) else {
            continue;
        };
        let mut features = Vec::new();
        for r in &reference.numeric {
            let values: Vec<f64> = rows
                .iter()
                .map(|o| o.numeric.get(&r.feature).copied().unwrap_or(f64::NAN))
                .collect();
            features.push(FeatureDrift {
                feature: r.feature.clone(),
                psi: r.psi(&values)?,
                ks: r.ks(&values).map(|k| k.statistic),
            });
        }
        for r in &reference.categorical {
            let values: Vec<Option<&str>> = rows
                .iter()
                .map(|o| o.categorical.get(&r.feature).and_then(|v| v.as_deref()))
                .collect();
            features.push(FeatureDrift {
                feature: r.feature.clone(),
                psi: r.psi(&values),
                ks: None,
            });
        }
        features.sort_by(|a, b| b.psi.total_cmp(&a.psi).then(a.feature.cmp(&b.feature)));
        out.push(FeatureDriftPeriod {
            start: start + period * every,
            model: model.to_owned(),
            rows: rows.len(),
            features,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn observation(day: i64, model: &str, role: &str, p: f64, outcome: Outcome) -> Observation {
        Observation {
            time: day * DAY + 3_600_000,
            model: model.into(),
            role: role.into(),
            probability: p,
            outcome,
            segments: vec![("plan".into(), "free".into())],
        }
    }

    #[test]
    fn champion_and_challenger_share_a_period_and_pending_outcomes_are_counted() {
        let mut rows = Vec::new();
        for day in 0..14 {
            for (k, p) in [0.1, 0.2, 0.7, 0.9].into_iter().enumerate() {
                let outcome = match (day, k) {
                    (13, _) => Outcome::Pending,
                    (_, 0) => Outcome::NotEligible,
                    (_, 1) => Outcome::Stayed,
                    _ => Outcome::Churned,
                };
                rows.push(observation(day, "a@1", "champion", p, outcome));
                rows.push(observation(day, "b@1", "challenger", 1.0 - p, outcome));
            }
        }
        let start = first_day(rows.iter().map(|o| o.time)).unwrap();
        // Model a learned labels through day 9: 10 of its 14 days' predictions.
        let learned = BTreeMap::from([("a@1".to_owned(), 9 * DAY + 3_600_000)]);
        let report = monitor(&rows, start, 7 * DAY, &BTreeMap::new(), &learned, 1).unwrap();
        let learned_from: Vec<Vec<usize>> = report
            .periods
            .iter()
            .map(|p| p.models.iter().map(|m| m.learned_from).collect())
            .collect();
        assert_eq!(learned_from, [[28, 0], [12, 0]]);
        assert_eq!(report.periods.len(), 2);
        let second = &report.periods[1];
        assert_eq!(second.start, 7 * DAY);
        let roles: Vec<&str> = second.models.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["champion", "challenger"]);
        let (a, b) = (&second.models[0], &second.models[1]);
        assert_eq!((a.predictions, a.pending, a.not_eligible), (28, 4, 6));
        // The champion ranks churners first, the challenger last.
        assert_eq!(a.metrics.as_ref().unwrap().roc_auc.estimate, 1.0);
        assert_eq!(b.metrics.as_ref().unwrap().roc_auc.estimate, 0.0);
        let intervals = a.intervals.unwrap();
        for i in [intervals.average_precision, intervals.brier, intervals.ece] {
            assert!(i.low <= i.estimate && i.estimate <= i.high, "{i:?}");
        }
        assert_eq!(a.reliability.iter().map(|b| b.count).sum::<usize>(), 18);
        // Without a reference, each model's first period is its own baseline.
        assert_eq!(report.periods[0].models[0].psi, Some(0.0));
        assert!(monitor(&rows, start, 0, &BTreeMap::new(), &BTreeMap::new(), 1).is_err());
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::ModelPeriod;

    /// A model's period with a prediction PSI and no labelled outcome yet.
    pub(crate) fn model_period(model: &str, role: &str, psi: f64) -> ModelPeriod {
        ModelPeriod {
            model: model.into(),
            role: role.into(),
            predictions: 120,
            pending: 7,
            not_eligible: 2,
            mean_predicted: 0.21,
            metrics: None,
            intervals: None,
            reliability: Vec::new(),
            psi: Some(psi),
            ks: None,
            learned_from: 0,
        }
    }
}
