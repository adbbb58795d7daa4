//! `churn ab --prediction-log`: the server's prediction log as an experiment.
//! Each logged suggestion is an assignment: the policy is the experiment, the
//! action is the arm (`none` = control), the logged propensity is the
//! probability of that arm, the probability served is the risk score, and the
//! outcome is read from the events after the raw instance's `as_of` (else the
//! time of the prediction).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use churn_core::{Assignment, Dataset, parse_timestamp};
use churn_data::Reject;
use serde_json::Value;

/// The assignments read from the log, and what was left out.
pub struct FromLog {
    pub assignments: Vec<Assignment>,
    pub lines: usize,
    /// Later predictions for a learner already assigned under the same policy.
    pub repeats: usize,
    pub rejected: usize,
    pub rejects_path: PathBuf,
}

fn text<'a>(line: &'a Value, pointer: &str) -> Result<&'a str, String> {
    line.pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing or not a string: {pointer}"))
}

fn number(line: &Value, pointer: &str) -> Result<f64, String> {
    line.pointer(pointer)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("missing or not a number: {pointer}"))
}

/// One log line as an assignment (the learner as an index into `ids`).
fn assignment(
    line: &str,
    ids: &HashMap<&str, u32>,
    control: &str,
) -> Result<Assignment, (String, String)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| ("line".to_owned(), format!("not JSON: {e}")))?;
    let field = |pointer: &str| pointer.trim_start_matches('/').replace('/', ".");
    let get = |pointer: &str| text(&value, pointer).map_err(|e| (field(pointer), e));
    let learner_id = get("/learner_id")?;
    let learner = *ids.get(learner_id).ok_or_else(|| {
        (
            "learner_id".to_owned(),
            format!("unknown learner {learner_id:?}"),
        )
    })?;
    let when = match value.get("as_of").and_then(Value::as_str) {
        Some(as_of) => ("as_of", as_of),
        None => ("time", get("/time")?),
    };
    let assigned_at =
        parse_timestamp(when.1).map_err(|e| (when.0.to_owned(), format!("{:?}: {e}", when.1)))?;
    let action = get("/suggested_action/action")?;
    let policy = get("/suggested_action/policy")?;
    let propensity = number(&value, "/suggested_action/propensity")
        .map_err(|e| ("suggested_action.propensity".to_owned(), e))?;
    if !(propensity > 0.0 && propensity <= 1.0) {
        return Err((
            "suggested_action.propensity".into(),
            format!("{propensity} is not in (0, 1]"),
        ));
    }
    let risk =
        number(&value, "/churn_probability").map_err(|e| ("churn_probability".to_owned(), e))?;
    Ok(Assignment {
        experiment_id: policy.to_owned(),
        learner,
        arm: if action == churn_model::policy::NO_ACTION {
            control.to_owned()
        } else {
            action.to_owned()
        },
        assigned_at,
        propensity: Some(propensity),
        risk_score: Some(risk),
        cost: None,
        churned: None,
    })
}

/// Reads the log files; bad lines and repeats are counted and written to
/// `<out>/rejects/prediction_log.csv`.
pub fn assignments_from_log(
    paths: &[PathBuf],
    dataset: &Dataset,
    control: &str,
    out: &Path,
) -> Result<FromLog> {
    let ids: HashMap<&str, u32> = dataset
        .learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i as u32))
        .collect();
    let mut rejects = Vec::new();
    let mut candidates: Vec<(Assignment, Reject)> = Vec::new();
    let mut lines = 0;
    for path in paths {
        let content = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in content
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            lines += 1;
            let record = |field: String, reason: String| Reject {
                row: i + 1,
                field,
                reason,
                values: vec![path.display().to_string(), line.to_owned()],
            };
            match assignment(line, &ids, control) {
                Ok(a) => candidates.push((a, record(String::new(), String::new()))),
                Err((field, reason)) => rejects.push(record(field, reason)),
            }
        }
    }
    // The first prediction per (policy, learner) is the assignment.
    candidates.sort_by(|a, b| {
        (&a.0.experiment_id, a.0.learner, a.0.assigned_at).cmp(&(
            &b.0.experiment_id,
            b.0.learner,
            b.0.assigned_at,
        ))
    });
    let mut assignments: Vec<Assignment> = Vec::new();
    let mut repeats = 0;
    for (a, mut record) in candidates {
        match assignments.last() {
            Some(last) if last.experiment_id == a.experiment_id && last.learner == a.learner => {
                repeats += 1;
                record.field = "learner_id".into();
                record.reason = "a later prediction for a learner already assigned under this policy (the first is analysed)".into();
                rejects.push(record);
            }
            _ => assignments.push(a),
        }
    }
    let rejected = rejects.len() - repeats;
    let dir = out.join("rejects");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let rejects_path = dir.join("prediction_log.csv");
    churn_data::write_rejects_file(
        &["file".into(), "line_text".into()],
        &rejects,
        &rejects_path,
    )?;
    Ok(FromLog {
        assignments,
        lines,
        repeats,
        rejected,
        rejects_path,
    })
}
