//! The model family behind one interface: probability, margin, base value and
//! per-feature contributions (log-odds) that sum to the margin.

use churn_gbdt::{Explainer, FeatureKind};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::calibration::Calibration;
use crate::logistic::LogisticModel;
use crate::schema::{Input, InputSchema, Kind};

/// The fitted scorer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scorer {
    /// Gradient-boosted trees; categories are read as vocabulary codes.
    Gbdt(churn_gbdt::Model),
    /// L2 logistic regression over a standardised design.
    Logistic(LogisticModel),
}

/// Everything a model artifact holds: what it reads, how it scores, how the
/// score becomes a probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnModel {
    pub schema: InputSchema,
    pub scorer: Scorer,
    pub calibration: Calibration,
}

impl ChurnModel {
    /// `gbdt` or `logistic`.
    pub fn kind(&self) -> &'static str {
        match self.scorer {
            Scorer::Gbdt(_) => "gbdt",
            Scorer::Logistic(_) => "logistic",
        }
    }

    /// Checks internal consistency (what a deserialised model must pass before use).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.calibration.validate()?;
        match &self.scorer {
            Scorer::Gbdt(model) => {
                model
                    .validate()
                    .map_err(|e| ModelError::Invalid(e.to_string()))?;
                let kinds: Vec<Kind> = model
                    .feature_kinds
                    .iter()
                    .map(|k| match k {
                        FeatureKind::Numeric => Kind::Numeric,
                        FeatureKind::Categorical => Kind::Categorical,
                    })
                    .collect();
                let schema_kinds: Vec<Kind> = self.schema.features.iter().map(|f| f.kind).collect();
                if kinds != schema_kinds {
                    return Err(ModelError::Invalid(
                        "gbdt model: its feature kinds differ from the schema's".into(),
                    ));
                }
                Ok(())
            }
            Scorer::Logistic(model) => model.validate(&self.schema),
        }
    }
}

/// A model ready to score: validated, with the gbdt predictor and explainer built.
pub struct PreparedModel {
    model: ChurnModel,
    engine: Engine,
}

enum Engine {
    /// Boxed: its tables are megabytes behind a few hundred bytes of header.
    Gbdt(Box<Explainer>),
    Logistic(LogisticModel),
}

/// One scored row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Calibrated churn probability.
    pub probability: f64,
    /// The model's log-odds before calibration.
    pub margin: f64,
    /// The margin of the reference row (gbdt: the mean training margin;
    /// logistic: the training-mean row). `base_value + Σ contributions = margin`.
    pub base_value: f64,
    /// Log-odds contribution of each schema feature, in schema order.
    pub contributions: Vec<f64>,
}

/// A feature's share of one prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// Index into the schema's features.
    pub feature: usize,
    pub contribution: f64,
}

impl Prediction {
    /// The `k` features that push the risk up the most (positive contributions,
    /// largest first; ties by schema order).
    pub fn top_factors(&self, k: usize) -> Vec<Factor> {
        let mut factors: Vec<Factor> = self
            .contributions
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0.0)
            .map(|(feature, &contribution)| Factor {
                feature,
                contribution,
            })
            .collect();
        factors.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        factors.truncate(k);
        factors
    }
}

impl PreparedModel {
    /// Validates `model` and builds what scoring needs.
    pub fn new(model: ChurnModel) -> Result<Self, ModelError> {
        model.validate()?;
        let engine = match &model.scorer {
            Scorer::Gbdt(m) => Engine::Gbdt(Box::new(Explainer::new(m))),
            Scorer::Logistic(m) => Engine::Logistic(m.clone()),
        };
        Ok(PreparedModel { model, engine })
    }

    /// The model.
    pub fn model(&self) -> &ChurnModel {
        &self.model
    }

    /// The schema.
    pub fn schema(&self) -> &InputSchema {
        &self.model.schema
    }

    /// The margin (log-odds before calibration) of one row.
    pub fn margin(&self, input: &Input<'_>) -> Result<f64, ModelError> {
        self.model.schema.check(input)?;
        Ok(match &self.engine {
            Engine::Gbdt(explainer) => {
                let mut row = Vec::with_capacity(self.model.schema.features.len());
                self.model.schema.encode_codes(input, &mut row);
                explainer.predictor().predict_raw(&row)
            }
            Engine::Logistic(m) => m.explain(&self.model.schema, input).0,
        })
    }

    /// The calibrated probability of one row.
    pub fn probability(&self, input: &Input<'_>) -> Result<f64, ModelError> {
        Ok(self.model.calibration.probability(self.margin(input)?))
    }

    /// Probability, margin, base value and contributions of one row.
    pub fn explain(&self, input: &Input<'_>) -> Result<Prediction, ModelError> {
        self.model.schema.check(input)?;
        let (margin, base_value, contributions) = match &self.engine {
            Engine::Gbdt(explainer) => {
                let mut row = Vec::with_capacity(self.model.schema.features.len());
                self.model.schema.encode_codes(input, &mut row);
                let mut values = explainer.contributions(&row);
                let base = values.pop().unwrap_or(0.0);
                let margin = base + values.iter().sum::<f64>();
                (margin, base, values)
            }
            Engine::Logistic(m) => {
                let (margin, contributions) = m.explain(&self.model.schema, input);
                (margin, m.intercept, contributions)
            }
        };
        Ok(Prediction {
            probability: self.model.calibration.probability(margin),
            margin,
            base_value,
            contributions,
        })
    }
}
