//! Reading the server's prediction log (JSON lines) back: for `churn ab
//! --prediction-log` and `churn monitor`. Bad lines are returned as rejects
//! (file, line, field, reason), never dropped.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use churn_core::{Dataset, parse_timestamp};
use churn_data::Reject;
use serde_json::Value;

/// One logged prediction.
pub struct Logged {
    /// Index into `dataset.learners`.
    pub learner: u32,
    /// The instance's `as_of` when it had one, else the time of the prediction (ms).
    pub at: i64,
    /// `name@version`.
    pub model: String,
    pub role: String,
    pub probability: f64,
    pub action: String,
    pub policy: String,
    pub propensity: f64,
    /// Where it came from, for the rejects file.
    pub source: Reject,
}

fn text<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, (String, String)> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            (
                pointer.trim_start_matches('/').replace('/', "."),
                format!("missing or not a string: {pointer}"),
            )
        })
}

fn number(value: &Value, pointer: &str) -> Result<f64, (String, String)> {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .ok_or_else(|| {
            (
                pointer.trim_start_matches('/').replace('/', "."),
                format!("missing or not a number: {pointer}"),
            )
        })
}

fn parse(line: &str, ids: &HashMap<&str, u32>, source: Reject) -> Result<Logged, (String, String)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| ("line".to_owned(), format!("not JSON: {e}")))?;
    let learner_id = text(&value, "/learner_id")?;
    let learner = *ids.get(learner_id).ok_or_else(|| {
        (
            "learner_id".to_owned(),
            format!("unknown learner {learner_id:?}"),
        )
    })?;
    let (field, when) = match value.get("as_of").and_then(Value::as_str) {
        Some(as_of) => ("as_of", as_of),
        None => ("time", text(&value, "/time")?),
    };
    let at = parse_timestamp(when).map_err(|e| (field.to_owned(), format!("{when:?}: {e}")))?;
    let probability = number(&value, "/churn_probability")?;
    if !(0.0..=1.0).contains(&probability) {
        return Err((
            "churn_probability".into(),
            format!("{probability} is not a probability"),
        ));
    }
    let propensity = number(&value, "/suggested_action/propensity")?;
    if !(propensity > 0.0 && propensity <= 1.0) {
        return Err((
            "suggested_action.propensity".into(),
            format!("{propensity} is not in (0, 1]"),
        ));
    }
    Ok(Logged {
        learner,
        at,
        model: format!(
            "{}@{}",
            text(&value, "/model/name")?,
            text(&value, "/model/version")?
        ),
        role: text(&value, "/model/role")?.to_owned(),
        probability,
        action: text(&value, "/suggested_action/action")?.to_owned(),
        policy: text(&value, "/suggested_action/policy")?.to_owned(),
        propensity,
        source,
    })
}

/// Every non-empty line of the files through `parse`: what it read (with
/// where it came from), the lines it refused as rejects, and the line count.
pub fn read_lines<T>(
    paths: &[PathBuf],
    mut parse: impl FnMut(&str, Reject) -> Result<T, (String, String)>,
) -> Result<(Vec<T>, Vec<Reject>, usize)> {
    let (mut read, mut rejects, mut lines) = (Vec::new(), Vec::new(), 0);
    for path in paths {
        let content = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in content
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            lines += 1;
            let source = Reject {
                row: i + 1,
                field: String::new(),
                reason: String::new(),
                values: vec![path.display().to_string(), line.to_owned()],
            };
            match parse(line, source.clone()) {
                Ok(value) => read.push(value),
                Err((field, reason)) => rejects.push(Reject {
                    field,
                    reason,
                    ..source
                }),
            }
        }
    }
    Ok((read, rejects, lines))
}

/// Every logged prediction of the files: those read, the lines rejected, and the line count.
pub fn read(paths: &[PathBuf], dataset: &Dataset) -> Result<(Vec<Logged>, Vec<Reject>, usize)> {
    let ids: HashMap<&str, u32> = dataset
        .learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i as u32))
        .collect();
    read_lines(paths, |line, source| parse(line, &ids, source))
}

/// Writes the rejected lines to `<out>/rejects/<name>.csv`.
pub fn write_rejects(out: &std::path::Path, name: &str, rejects: &[Reject]) -> Result<PathBuf> {
    let dir = out.join("rejects");
    churn_core::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.csv"));
    churn_data::write_rejects_file(&["file".into(), "line_text".into()], rejects, &path)?;
    Ok(path)
}
