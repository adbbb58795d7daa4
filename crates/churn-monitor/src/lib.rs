//! `churn monitor`: is the live model still right? From the server's
//! prediction log joined with the outcomes that later events reveal, per
//! period and per model version and role: realised ROC-AUC, PR-AUC, Brier and
//! calibration; how many predictions still wait for their outcome; and the
//! drift of the predicted probabilities against a reference (PSI, KS).
//!
//! The join (which learner, which label) is the caller's: this crate takes
//! [`Observation`]s and aggregates them.

pub use churn_model::drift;

use std::collections::BTreeMap;

use churn_train::metrics::{self, Metrics};
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
    /// Drift of the predicted probabilities against the reference.
    pub psi: Option<f64>,
    pub ks: Option<Ks>,
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

fn metrics_of(rows: &[&Observation], seed: u64) -> Option<Metrics> {
    let (p, y) = labelled(rows);
    let positives = y.iter().filter(|&&v| v == 1.0).count();
    (positives > 0 && positives < y.len()).then(|| metrics::metrics(&p, &y, seed))
}

/// Aggregates observations into periods of `every` ms starting at the first
/// observation's day. Drift is measured against `reference` (e.g. the
/// training distribution of predicted probabilities) when given, else
/// against each model's first period.
pub fn monitor(
    observations: &[Observation],
    every: i64,
    reference: Option<&[f64]>,
    seed: u64,
) -> Result<Monitoring, MonitorError> {
    const DAY: i64 = 86_400_000;
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
    let first = observations
        .iter()
        .map(|o| o.time)
        .min()
        .unwrap_or(0)
        .div_euclid(DAY)
        * DAY;
    let mut grouped: BTreeMap<(i64, &str, &str), Vec<&Observation>> = BTreeMap::new();
    for o in observations {
        let period = (o.time - first).div_euclid(every);
        grouped
            .entry((period, o.model.as_str(), o.role.as_str()))
            .or_default()
            .push(o);
    }
    let fixed = match reference {
        Some(values) => Some(Reference::from_values(values, 10)?),
        None => None,
    };
    // Per model: its first period's predictions, the reference when none is given.
    let mut first_seen: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut periods: Vec<Period> = Vec::new();
    for ((period, model, role), rows) in &grouped {
        let probabilities: Vec<f64> = rows.iter().map(|o| o.probability).collect();
        let baseline = first_seen
            .entry(model)
            .or_insert_with(|| probabilities.clone());
        let (psi, ks) = match &fixed {
            Some(r) => (
                Some(r.psi(&probabilities)?),
                Some(ks_2samp(&probabilities, reference.unwrap_or(&[]))?),
            ),
            None => (
                Some(Reference::from_values(baseline, 10)?.psi(&probabilities)?),
                Some(ks_2samp(&probabilities, baseline)?),
            ),
        };
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
            psi,
            ks,
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
        reference: if reference.is_some() {
            "the model card's distribution of predicted probabilities".into()
        } else {
            "each model's first period".into()
        },
    })
}
