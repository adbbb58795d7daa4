//! Which learners an experiment has, and each one's outcome: the assignments
//! of one experiment, checked (one assignment per learner, a control arm),
//! with the churn label at the assignment time (or the assignments' own
//! `churned` column) and the features at that time.

use std::collections::{BTreeMap, HashMap};

use churn_core::{DAY_MS, Dataset};
use churn_features::{FeatureRow, Grouped, SnapshotSpec};

use crate::AbError;

macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err(AbError::Invalid(format!($($arg)*)))
    };
}

/// Which experiment to read, and which arm is control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// `None`: the only experiment of the data (an error when there are several).
    pub experiment: Option<String>,
    pub control: String,
}

/// One analysed learner.
pub struct Unit<'d> {
    pub arm: usize,
    pub churned: bool,
    pub propensity: Option<f64>,
    pub risk_score: Option<f64>,
    pub cost: Option<f64>,
    pub features: FeatureRow<'d>,
}

/// The learners of one experiment with an outcome, and those left out.
pub struct Experiment<'d> {
    pub id: String,
    /// Control first, then the treated arms by name.
    pub names: Vec<String>,
    pub units: Vec<Unit<'d>>,
    pub assigned: usize,
    pub already_gone: usize,
    pub horizon_past_data: usize,
    pub assigned_at: Vec<i64>,
}

/// Chooses the experiment, checks its assignments and computes each learner's
/// outcome and features at assignment.
pub fn select<'d>(
    dataset: &'d mut Dataset,
    choice: &Choice,
    horizon: i64,
) -> Result<Experiment<'d>, AbError> {
    if dataset.assignments.is_empty() {
        invalid!("the data has no assignments table: there is no experiment to read");
    }
    let mut experiments: BTreeMap<String, usize> = BTreeMap::new();
    for a in &dataset.assignments {
        *experiments.entry(a.experiment_id.clone()).or_default() += 1;
    }
    let listed = || experiments.keys().cloned().collect::<Vec<_>>().join(", ");
    let id = match (&choice.experiment, experiments.len()) {
        (Some(id), _) if experiments.contains_key(id) => id.clone(),
        (Some(id), _) => invalid!(
            "--experiment {id:?}: not in the assignments (found: {})",
            listed()
        ),
        (None, 1) => experiments.keys().next().cloned().unwrap_or_default(),
        (None, _) => invalid!(
            "several experiments: choose one with --experiment ({})",
            listed()
        ),
    };
    let data_end = dataset.last_event_time().unwrap_or(i64::MIN);
    let grouped = Grouped::new(dataset);
    let dataset = grouped.dataset();
    let rows: Vec<_> = dataset
        .assignments
        .iter()
        .filter(|a| a.experiment_id == id)
        .collect();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for a in &rows {
        *seen.entry(a.learner).or_default() += 1;
    }
    if let Some((&learner, &times)) = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .min_by_key(|(l, _)| **l)
    {
        invalid!(
            "experiment {id}: learner {} is assigned {times} times ({} learners assigned more than once); one assignment per learner is needed",
            dataset.learners[learner as usize].id,
            seen.values().filter(|n| **n > 1).count()
        );
    }
    let mut arm_names: Vec<String> = rows.iter().map(|a| a.arm.clone()).collect();
    arm_names.sort();
    arm_names.dedup();
    if !arm_names.contains(&choice.control) {
        invalid!(
            "experiment {id}: no {:?} arm (arms: {}); name the control arm with --control",
            choice.control,
            arm_names.join(", ")
        );
    }
    let mut names = vec![choice.control.clone()];
    names.extend(arm_names.into_iter().filter(|n| *n != choice.control));
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();

    // One snapshot plan per assignment time.
    let mut by_time: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (r, a) in rows.iter().enumerate() {
        by_time.entry(a.assigned_at).or_default().push(r);
    }
    let mut units = Vec::with_capacity(rows.len());
    let (mut already_gone, mut horizon_past_data) = (0, 0);
    for (&t, members) in &by_time {
        let plan = SnapshotSpec {
            from: Some(t),
            to: Some(t),
            every: DAY_MS,
            horizon,
            data_end: Some(data_end),
        }
        .resolve_for_span(Some((t, data_end.max(t))))
        .map_err(|e| AbError::Invalid(e.to_string()))?;
        let learners: Vec<u32> = members.iter().map(|&r| rows[r].learner).collect();
        for (&r, examples) in members.iter().zip(grouped.examples(&learners, &plan)) {
            let a = rows[r];
            let Some(example) = examples.into_iter().next() else {
                already_gone += 1;
                continue;
            };
            let Some(churned) = a.churned.or(example.churned) else {
                horizon_past_data += 1;
                continue;
            };
            units.push(Unit {
                arm: index[a.arm.as_str()],
                churned,
                propensity: a.propensity,
                risk_score: a.risk_score,
                cost: a.cost,
                features: example.features,
            });
        }
    }
    if units.is_empty() {
        invalid!("experiment {id}: no assigned learner has an outcome yet");
    }
    Ok(Experiment {
        id,
        names,
        units,
        assigned: rows.len(),
        already_gone,
        horizon_past_data,
        assigned_at: by_time.keys().copied().collect(),
    })
}
