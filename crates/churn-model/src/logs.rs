//! The server's two logs, as one set of types for the writer (`churn-serve`)
//! and the readers (`churn ab --prediction-log`, `churn monitor`): a line that
//! lacks a field, or has one of the wrong type, is refused with the field's
//! name, never read as a default.
//!
//! - The prediction log: one [`PredictionLine`] per served prediction (the
//!   learner, the as-of time, the model, the probability, the top factors and
//!   the suggested action with its propensity).
//! - The feature log: one [`FeatureLine`] per sampled prediction (the model's
//!   input values, no learner id), for input drift.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use churn_core::{Dataset, parse_timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::playbook::RiskBand;
use crate::policy::Suggestion;

/// The model that answered, as both logs name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedModel {
    pub name: String,
    pub version: String,
    /// `champion` or `challenger`.
    pub role: String,
}

impl LoggedModel {
    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// One top factor as logged (the value and description are in the answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedFactor {
    pub feature: String,
    pub contribution: f64,
}

/// One line of the prediction log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionLine {
    /// When the server answered (RFC 3339).
    pub time: String,
    pub request_id: String,
    pub learner_id: String,
    /// The raw instance's as-of time; `null` for a feature-map instance.
    pub as_of: Option<String>,
    pub model: LoggedModel,
    pub churn_probability: f64,
    pub risk_band: RiskBand,
    pub top_factors: Vec<LoggedFactor>,
    pub suggested_action: Suggestion,
}

/// A logged feature value: a number, a category, or `null` for missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LoggedValue {
    Number(f64),
    Category(String),
}

/// One line of the feature log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureLine {
    /// When the server answered (RFC 3339).
    pub time: String,
    /// The raw instance's as-of time; `null` for a feature-map instance.
    pub as_of: Option<String>,
    pub model: LoggedModel,
    /// Every input feature of the model, `null` when missing.
    pub features: BTreeMap<String, Option<LoggedValue>>,
}

/// When a logged line applies: its `as_of` when it has one, else the `time`
/// of the answer (ms), or the field that does not parse.
fn applies_at(as_of: &Option<String>, time: &str) -> Result<i64, LineFault> {
    let (field, text) = match as_of {
        Some(as_of) => ("as_of", as_of.as_str()),
        None => ("time", time),
    };
    parse_timestamp(text).map_err(|e| LineFault::new(field, format!("{text:?}: {e}")))
}

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSource {
    pub file: PathBuf,
    /// 1-based line number in the file.
    pub line: usize,
    pub text: String,
}

/// A refused line, with the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReject {
    pub source: LineSource,
    pub field: String,
    pub reason: String,
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFault {
    pub field: String,
    pub reason: String,
}

impl LineFault {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        LineFault {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A JSON or type error, with the field serde names (`missing field
    /// \`x\``, `unknown variant` …) when it names one.
    fn from_json(error: &serde_json::Error) -> Self {
        let message = error.to_string();
        let field = if error.is_syntax() || error.is_eof() {
            "line".to_owned()
        } else {
            message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("missing field"))
                .unwrap_or("line")
                .to_owned()
        };
        let reason = if error.is_syntax() || error.is_eof() {
            format!("not JSON: {message}")
        } else {
            message
        };
        LineFault { field, reason }
    }
}

/// The lines of some log files that were read, those refused, and how many
/// non-empty lines there were (`read + rejected = lines`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLines<T> {
    pub read: Vec<(T, LineSource)>,
    pub rejects: Vec<LineReject>,
    pub lines: usize,
}

/// Every non-empty line of `paths` as a `T`, checked by `check`.
pub fn read_lines<T: DeserializeOwned, U>(
    paths: &[PathBuf],
    mut check: impl FnMut(T) -> Result<U, LineFault>,
) -> Result<LogLines<U>, ModelError> {
    let mut out = LogLines {
        read: Vec::new(),
        rejects: Vec::new(),
        lines: 0,
    };
    for path in paths {
        let content = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        for (i, text) in content.lines().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            out.lines += 1;
            let source = LineSource {
                file: path.clone(),
                line: i + 1,
                text: text.to_owned(),
            };
            let parsed = serde_json::from_str::<T>(text)
                .map_err(|e| LineFault::from_json(&e))
                .and_then(&mut check);
            match parsed {
                Ok(value) => out.read.push((value, source)),
                Err(fault) => out.rejects.push(LineReject {
                    source,
                    field: fault.field,
                    reason: fault.reason,
                }),
            }
        }
    }
    Ok(out)
}

/// A prediction-log line of a learner of the dataset, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedPrediction {
    /// Index into `dataset.learners`.
    pub learner: u32,
    /// When the prediction applies (its `as_of`, else its `time`), ms.
    pub at: i64,
    pub line: PredictionLine,
}

/// The prediction log of `paths` for the learners of `dataset`: a line is
/// refused when it is not a [`PredictionLine`], names an unknown learner, or
/// has a probability outside [0, 1] or a propensity outside (0, 1].
pub fn read_predictions(
    paths: &[PathBuf],
    dataset: &Dataset,
) -> Result<LogLines<LoggedPrediction>, ModelError> {
    let ids: HashMap<&str, u32> = dataset
        .learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i as u32))
        .collect();
    read_lines(paths, |line: PredictionLine| {
        let learner = *ids.get(line.learner_id.as_str()).ok_or_else(|| {
            LineFault::new(
                "learner_id",
                format!("unknown learner {:?}", line.learner_id),
            )
        })?;
        let at = applies_at(&line.as_of, &line.time)?;
        let probability = line.churn_probability;
        if !(0.0..=1.0).contains(&probability) {
            return Err(LineFault::new(
                "churn_probability",
                format!("{probability} is not a probability"),
            ));
        }
        let propensity = line.suggested_action.propensity;
        if !(propensity > 0.0 && propensity <= 1.0) {
            return Err(LineFault::new(
                "suggested_action.propensity",
                format!("{propensity} is not in (0, 1]"),
            ));
        }
        Ok(LoggedPrediction { learner, at, line })
    })
}

/// A feature-log line, checked: when it applies (ms) and the line.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedFeatures {
    pub at: i64,
    pub line: FeatureLine,
}

/// The feature log of `paths`.
pub fn read_features(paths: &[PathBuf]) -> Result<LogLines<LoggedFeatures>, ModelError> {
    read_lines(paths, |line: FeatureLine| {
        let at = applies_at(&line.as_of, &line.time)?;
        Ok(LoggedFeatures { at, line })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> serde_json::Value {
        serde_json::json!({
            "time": "2026-06-01T00:00:00Z", "request_id": "r1", "learner_id": "L1",
            "as_of": "2026-05-01T00:00:00Z",
            "model": {"name": "churn-gbdt", "version": "v1", "role": "champion"},
            "churn_probability": 0.25, "risk_band": "medium",
            "top_factors": [{"feature": "logins_7d", "contribution": 0.5}],
            "suggested_action": {"action": "none", "reason": "low risk", "policy": "playbook@default", "propensity": 1.0},
        })
    }

    #[test]
    fn a_written_line_reads_back_and_a_missing_field_is_named() {
        let parsed: PredictionLine = serde_json::from_value(line()).expect("reads");
        assert_eq!(serde_json::to_value(&parsed).expect("writes"), line());
        let dir = std::env::temp_dir().join(format!("churn-model-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("log.jsonl");
        let mut missing = line();
        missing
            .as_object_mut()
            .expect("object")
            .remove("churn_probability");
        let mut wrong = line();
        wrong["risk_band"] = serde_json::json!("extreme");
        std::fs::write(
            &path,
            format!("{}\n\n{missing}\nnot json\n{wrong}\n", line()),
        )
        .expect("write");
        let read = read_lines(&[path], |l: PredictionLine| Ok::<_, LineFault>(l)).expect("read");
        assert_eq!(read.lines, 4);
        assert_eq!(read.read.len(), 1);
        let faults: Vec<(&str, usize)> = read
            .rejects
            .iter()
            .map(|r| (r.field.as_str(), r.source.line))
            .collect();
        assert_eq!(faults, [("churn_probability", 3), ("line", 4), ("line", 5)]);
        assert!(read.rejects[1].reason.starts_with("not JSON"));
        assert!(read.rejects[2].reason.contains("extreme"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_line_applies_at_its_as_of_else_at_its_time() {
        assert_eq!(
            applies_at(&None, "1970-01-02T00:00:00Z"),
            Ok(churn_core::DAY_MS)
        );
        assert_eq!(
            applies_at(&Some("1970-01-03T00:00:00Z".into()), "x"),
            Ok(2 * churn_core::DAY_MS)
        );
        assert_eq!(
            applies_at(&Some("soon".into()), "x").map_err(|f| f.field),
            Err("as_of".into())
        );
    }
}
