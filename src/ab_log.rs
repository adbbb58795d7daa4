//! `churn ab --prediction-log`: the server's prediction log as an experiment.
//! Each logged suggestion is an assignment: the policy is the experiment, the
//! action is the arm (`none` = control), the logged propensity is the
//! probability of that arm, the probability served is the risk score, and the
//! outcome is read from the events after the raw instance's `as_of` (else the
//! time of the prediction).

use std::path::{Path, PathBuf};

use anyhow::Result;
use churn_core::{Assignment, Dataset};

/// The assignments read from the log, and what was left out.
pub struct FromLog {
    pub assignments: Vec<Assignment>,
    pub lines: usize,
    /// Later predictions for a learner already assigned under the same policy.
    pub repeats: usize,
    pub rejected: usize,
    pub rejects_path: PathBuf,
}

/// Reads the log files; bad lines and repeats are counted and written to
/// `<out>/rejects/prediction_log.csv`.
pub fn assignments_from_log(
    paths: &[PathBuf],
    dataset: &Dataset,
    control: &str,
    out: &Path,
) -> Result<FromLog> {
    let (mut logged, mut rejects, lines) = crate::prediction_log::read(paths, dataset)?;
    let rejected = rejects.len();
    // The first prediction per (policy, learner) is the assignment.
    logged.sort_by(|a, b| (&a.policy, a.learner, a.at).cmp(&(&b.policy, b.learner, b.at)));
    let mut assignments: Vec<Assignment> = Vec::new();
    let mut repeats = 0;
    for l in logged {
        if assignments
            .last()
            .is_some_and(|last| last.experiment_id == l.policy && last.learner == l.learner)
        {
            repeats += 1;
            rejects.push(churn_data::Reject {
                field: "learner_id".into(),
                reason: "a later prediction for a learner already assigned under this policy (the first is analysed)".into(),
                ..l.source
            });
            continue;
        }
        assignments.push(Assignment {
            experiment_id: l.policy,
            learner: l.learner,
            arm: if l.action == churn_model::policy::NO_ACTION {
                control.to_owned()
            } else {
                l.action
            },
            assigned_at: l.at,
            propensity: Some(l.propensity),
            risk_score: Some(l.probability),
            cost: None,
            churned: None,
        });
    }
    let rejects_path = crate::prediction_log::write_rejects(out, "prediction_log", &rejects)?;
    Ok(FromLog {
        assignments,
        lines,
        repeats,
        rejected,
        rejects_path,
    })
}
