//! Which learners an experiment has, and each one's outcome: the assignments
//! of one experiment, checked (one assignment per learner, a control arm),
//! with the churn label at the assignment time (or the assignments' own
//! `churned` column) and the features at that time.

use std::collections::{BTreeMap, HashMap};

use churn_core::{DAY_MS, Dataset, LabelDefinition};
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
/// outcome (by the `label` definition, within `horizon` ms) and features at
/// assignment.
pub fn select<'d>(
    dataset: &'d mut Dataset,
    choice: &Choice,
    label: LabelDefinition,
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
            label,
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

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::{Assignment, Event, EventType, Learner};

    fn learner(id: &str) -> Learner {
        Learner {
            id: id.into(),
            signup_at: 0,
            plan: "monthly".into(),
            acquisition_channel: "organic".into(),
            device: None,
            ..Learner::default()
        }
    }

    fn assigned(experiment: &str, learner: u32, arm: &str, day: i64) -> Assignment {
        Assignment {
            experiment_id: experiment.into(),
            learner,
            arm: arm.into(),
            assigned_at: day * DAY_MS,
            propensity: None,
            risk_score: None,
            cost: None,
            churned: None,
        }
    }

    /// Four learners: A active on days 20, 45, 75 and 100 (the end of the
    /// data), B on 25 and 50, C on 28 only, D on day 0 only (so D is gone by
    /// day 30: no activity in the 30 days before it).
    fn dataset(assignments: Vec<Assignment>) -> Dataset {
        let login = |l: u32, day: i64| Event::new(day * DAY_MS, l, EventType::Login);
        Dataset {
            learners: ["A", "B", "C", "D"].map(learner).to_vec(),
            events: vec![
                login(0, 20),
                login(0, 45),
                login(0, 75),
                login(1, 25),
                login(1, 50),
                login(2, 28),
                login(3, 0),
                login(0, 100),
            ],
            assignments,
            ..Dataset::default()
        }
    }

    fn choice(experiment: Option<&str>) -> Choice {
        Choice {
            experiment: experiment.map(str::to_owned),
            control: "control".into(),
        }
    }

    #[test]
    fn outcomes_are_the_labels_at_assignment_and_the_gone_are_counted() {
        let mut data = dataset(vec![
            assigned("x", 0, "coupon", 30),
            assigned("x", 1, "control", 30),
            assigned("x", 2, "control", 30),
            assigned("x", 3, "coupon", 30),
        ]);
        let e = select(
            &mut data,
            &choice(None),
            LabelDefinition::Either,
            30 * DAY_MS,
        )
        .expect("selects");
        assert_eq!(e.id, "x");
        assert_eq!(e.names, ["control", "coupon"], "control first");
        assert_eq!((e.assigned, e.already_gone, e.horizon_past_data), (4, 1, 0));
        let outcomes: Vec<(usize, bool)> = e.units.iter().map(|u| (u.arm, u.churned)).collect();
        // Learner order within one assignment time: A (coupon, back), B
        // (control, back), C (control, gone after day 30).
        assert_eq!(outcomes, [(1, false), (0, false), (0, true)]);
        assert_eq!(e.assigned_at, [30 * DAY_MS]);
    }

    #[test]
    fn an_outcome_past_the_data_is_counted_not_guessed_and_a_given_one_is_used() {
        // C churned by its events, but the assignments say it stayed: the
        // given outcome wins. At day 80, A's horizon runs past the data and
        // B is already gone (last active on day 50).
        let mut given = assigned("x", 2, "coupon", 30);
        given.churned = Some(false);
        let mut data = dataset(vec![
            given,
            assigned("x", 0, "control", 80),
            assigned("x", 1, "coupon", 80),
        ]);
        let e = select(
            &mut data,
            &choice(None),
            LabelDefinition::Either,
            30 * DAY_MS,
        )
        .expect("selects");
        assert_eq!((e.assigned, e.already_gone, e.horizon_past_data), (3, 1, 1));
        let outcomes: Vec<(usize, bool)> = e.units.iter().map(|u| (u.arm, u.churned)).collect();
        assert_eq!(outcomes, [(1, false)]);
        assert_eq!(e.assigned_at, [30 * DAY_MS, 80 * DAY_MS]);
    }

    #[test]
    fn mistakes_in_the_assignments_are_named() {
        let refused = |assignments: Vec<Assignment>, experiment: Option<&str>| {
            let mut data = dataset(assignments);
            select(
                &mut data,
                &choice(experiment),
                LabelDefinition::Either,
                30 * DAY_MS,
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        assert!(refused(Vec::new(), None).contains("no assignments"));
        let two = vec![
            assigned("x", 0, "control", 30),
            assigned("y", 1, "control", 30),
        ];
        assert!(refused(two.clone(), None).contains("several experiments"));
        assert!(refused(two, Some("z")).contains("not in the assignments (found: x, y)"));
        let twice = vec![
            assigned("x", 0, "control", 30),
            assigned("x", 0, "coupon", 31),
        ];
        assert!(refused(twice, None).contains("learner A is assigned 2 times"));
        let no_control = vec![assigned("x", 0, "coupon", 30)];
        assert!(refused(no_control, None).contains("no \"control\" arm"));
    }
}
