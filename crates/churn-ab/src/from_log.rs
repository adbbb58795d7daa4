//! The server's prediction log as an experiment (`churn ab --prediction-log`).
//! Each logged suggestion is an assignment: the policy is the experiment, the
//! action is the arm (`none` = control), the logged propensity is the
//! probability of that arm, the probability served is the risk score, and the
//! outcome is read from the events after the line's `as_of` (else its time).

use churn_core::Assignment;
use churn_model::logs::{LineReject, LineSource, LoggedPrediction};

/// The assignments read from a log, and the later predictions left out.
#[derive(Debug, Clone, PartialEq)]
pub struct FromLog {
    pub assignments: Vec<Assignment>,
    /// Later predictions for a learner already assigned under the same
    /// policy, as rejects (only the first is analysed).
    pub repeats: Vec<LineReject>,
}

/// The first prediction per (policy, learner) is that learner's assignment;
/// `control` names the arm of the `none` action.
pub fn assignments(mut logged: Vec<(LoggedPrediction, LineSource)>, control: &str) -> FromLog {
    logged.sort_by(|(a, _), (b, _)| {
        (&a.line.suggested_action.policy, a.learner, a.at).cmp(&(
            &b.line.suggested_action.policy,
            b.learner,
            b.at,
        ))
    });
    let mut assignments: Vec<Assignment> = Vec::new();
    let mut repeats = Vec::new();
    for (l, source) in logged {
        let action = l.line.suggested_action;
        if assignments
            .last()
            .is_some_and(|last| last.experiment_id == action.policy && last.learner == l.learner)
        {
            repeats.push(LineReject {
                source,
                field: "learner_id".into(),
                reason: "a later prediction for a learner already assigned under this policy (the first is analysed)".into(),
            });
            continue;
        }
        assignments.push(Assignment {
            experiment_id: action.policy,
            learner: l.learner,
            arm: if action.action == churn_model::policy::NO_ACTION {
                control.to_owned()
            } else {
                action.action
            },
            assigned_at: l.at,
            propensity: Some(action.propensity),
            risk_score: Some(l.line.churn_probability),
            cost: None,
            churned: None,
        });
    }
    FromLog {
        assignments,
        repeats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::logs::{LoggedModel, PredictionLine};
    use churn_model::{RiskBand, Suggestion};

    fn logged(learner: u32, at: i64, policy: &str, action: &str) -> (LoggedPrediction, LineSource) {
        let line = PredictionLine {
            time: String::new(),
            request_id: String::new(),
            learner_id: format!("L{learner}"),
            as_of: None,
            model: LoggedModel {
                name: "m".into(),
                version: "1".into(),
                role: "champion".into(),
            },
            churn_probability: 0.3,
            risk_band: RiskBand::Medium,
            top_factors: Vec::new(),
            suggested_action: Suggestion {
                action: action.into(),
                reason: String::new(),
                policy: policy.into(),
                propensity: 0.5,
            },
        };
        let source = LineSource {
            file: "log.jsonl".into(),
            line: at as usize,
            text: String::new(),
        };
        (LoggedPrediction { learner, at, line }, source)
    }

    #[test]
    fn the_first_prediction_per_policy_and_learner_is_the_assignment() {
        let read = assignments(
            vec![
                logged(2, 5, "p@1", "coupon"),
                logged(1, 3, "p@1", "none"),
                logged(1, 1, "p@1", "coupon"),
                logged(1, 2, "q@1", "none"),
            ],
            "control",
        );
        let got: Vec<(&str, u32, &str, i64)> = read
            .assignments
            .iter()
            .map(|a| {
                (
                    a.experiment_id.as_str(),
                    a.learner,
                    a.arm.as_str(),
                    a.assigned_at,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("p@1", 1, "coupon", 1),
                ("p@1", 2, "coupon", 5),
                ("q@1", 1, "control", 2)
            ]
        );
        assert_eq!(read.repeats.len(), 1);
        assert_eq!(read.repeats[0].source.line, 3);
        assert_eq!(read.assignments[0].propensity, Some(0.5));
        assert_eq!(read.assignments[0].risk_score, Some(0.3));
    }
}
