//! The answer about one learner, as every front end gives it: probability,
//! risk band, top factors in words and the suggested intervention.
//!
//! `churn predict`, `churn explain` and `churn serve` all build it here, so
//! the CSV, the terminal and the HTTP response cannot disagree.

use serde::Serialize;

use crate::ModelError;
use crate::model::{Prediction, PreparedModel};
use crate::playbook::{RiskBand, RiskBands};
use crate::policy::{Case, Policy, Suggestion};
use crate::schema::{Input, Kind};

/// A feature's value as the learner has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Category(String),
    /// NaN or an absent category (`null` in JSON).
    Missing,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(v) => write!(f, "{v}"),
            Value::Category(c) => f.write_str(c),
            Value::Missing => f.write_str(""),
        }
    }
}

/// One top factor, readable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactorView {
    pub feature: String,
    pub value: Value,
    /// Log-odds contribution (positive raises the churn risk).
    pub contribution: f64,
    pub description: String,
}

/// Everything said about one learner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub churn_probability: f64,
    pub risk_band: RiskBand,
    pub margin: f64,
    pub base_value: f64,
    /// Always `log_odds`: contributions are on the margin scale, before calibration.
    pub contribution_scale: &'static str,
    pub top_factors: Vec<FactorView>,
    pub suggested_action: Suggestion,
    /// Every contribution, in schema order (not serialised: for callers
    /// that show or aggregate all of them).
    #[serde(skip)]
    pub prediction: Prediction,
}

/// The value of schema feature `j` in `input`.
pub fn value_of(model: &PreparedModel, input: &Input<'_>, j: usize) -> Value {
    let schema = model.schema();
    match schema.features[j].kind {
        Kind::Numeric => {
            let v = input.numeric[j];
            if v.is_nan() {
                Value::Missing
            } else {
                Value::Number(v)
            }
        }
        Kind::Categorical => match input.categorical[j - schema.numeric_len()] {
            Some(c) => Value::Category(c.to_owned()),
            None => Value::Missing,
        },
    }
}

/// Scores, explains and asks `policy` about one input.
pub fn answer(
    model: &PreparedModel,
    policy: &dyn Policy,
    bands: RiskBands,
    input: &Input<'_>,
    top_k: usize,
) -> Result<Answer, ModelError> {
    let prediction = model.explain(input)?;
    let schema = model.schema();
    let top_factors = prediction
        .top_factors(top_k)
        .into_iter()
        .map(|f| FactorView {
            feature: schema.features[f.feature].name.clone(),
            value: value_of(model, input, f.feature),
            contribution: f.contribution,
            description: schema.features[f.feature].description.clone(),
        })
        .collect();
    let suggested_action = policy.suggest(&Case {
        schema,
        input: *input,
        prediction: &prediction,
    });
    Ok(Answer {
        churn_probability: prediction.probability,
        risk_band: bands.band(prediction.probability),
        margin: prediction.margin,
        base_value: prediction.base_value,
        contribution_scale: "log_odds",
        top_factors,
        suggested_action,
        prediction,
    })
}
