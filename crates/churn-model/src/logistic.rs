//! The logistic model at inference time: a dot product over a standardised
//! design row, and its exact per-feature decomposition.
//!
//! Design columns: per numeric feature its value (missing → the training
//! median) and, when it was ever missing in training, a missing indicator; per
//! categorical feature one indicator per training category (unseen → all 0).
//! Every column is standardised with the training mean and standard deviation
//! (population, as scikit-learn's `StandardScaler`; a constant column keeps
//! scale 1). So the training mean row has margin = intercept = base value, and
//! the contribution of a feature is Σ over its columns of coefficient × z.

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::schema::{Input, InputSchema, Kind};

/// Where a design column's raw value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The numeric value, missing replaced by the training median.
    Value,
    /// 1 when the numeric value is missing.
    Missing,
    /// 1 when the category is the vocabulary's entry `code`.
    Category(u32),
}

/// One design column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesignColumn {
    /// Index into the schema's features.
    pub feature: u32,
    pub source: Source,
}

/// A fitted logistic model (fitting lives in churn-train).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// Training median of each numeric feature (the imputed value).
    pub medians: Vec<f64>,
    pub columns: Vec<DesignColumn>,
    /// Training mean of each raw design column.
    pub means: Vec<f64>,
    /// Training standard deviation of each raw design column (1 if constant).
    pub scales: Vec<f64>,
    /// One per design column, on the standardised scale.
    pub coefficients: Vec<f64>,
    pub intercept: f64,
}

impl LogisticModel {
    /// Checks the model against its schema, so inference cannot index out of range.
    pub fn validate(&self, schema: &InputSchema) -> Result<(), ModelError> {
        let n = self.columns.len();
        if self.means.len() != n || self.scales.len() != n || self.coefficients.len() != n {
            return Err(ModelError::Invalid(
                "logistic model: column, mean, scale and coefficient counts differ".into(),
            ));
        }
        if self.medians.len() != schema.numeric_len() {
            return Err(ModelError::Invalid(
                "logistic model: one median per numeric feature expected".into(),
            ));
        }
        for c in &self.columns {
            let Some(feature) = schema.features.get(c.feature as usize) else {
                return Err(ModelError::Invalid(format!(
                    "logistic model: column of feature {} beyond the schema",
                    c.feature
                )));
            };
            let fits = match c.source {
                Source::Value | Source::Missing => feature.kind == Kind::Numeric,
                Source::Category(code) => {
                    feature.kind == Kind::Categorical && (code as usize) < feature.categories.len()
                }
            };
            if !fits {
                return Err(ModelError::Invalid(format!(
                    "logistic model: column {:?} does not fit feature {:?}",
                    c.source, feature.name
                )));
            }
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !(finite(&self.medians)
            && finite(&self.means)
            && finite(&self.coefficients)
            && self.scales.iter().all(|s| s.is_finite() && *s > 0.0)
            && self.intercept.is_finite())
        {
            return Err(ModelError::Invalid(
                "logistic model: non-finite or non-positive numbers".into(),
            ));
        }
        Ok(())
    }

    /// The raw (unstandardised) value of one design column for `input`.
    pub fn raw_value(&self, schema: &InputSchema, column: DesignColumn, input: &Input<'_>) -> f64 {
        let f = column.feature as usize;
        match column.source {
            Source::Value => {
                let x = input.numeric[f];
                if x.is_nan() { self.medians[f] } else { x }
            }
            Source::Missing => f64::from(u8::from(input.numeric[f].is_nan())),
            Source::Category(code) => {
                let j = f - schema.numeric_len();
                f64::from(u8::from(
                    schema.code(j, input.categorical[j]) == f64::from(code),
                ))
            }
        }
    }

    /// The margin and the contribution of each schema feature (they sum to
    /// `margin − intercept`).
    pub fn explain(&self, schema: &InputSchema, input: &Input<'_>) -> (f64, Vec<f64>) {
        let mut contributions = vec![0.0; schema.features.len()];
        let mut margin = self.intercept;
        for (i, &column) in self.columns.iter().enumerate() {
            let z = (self.raw_value(schema, column, input) - self.means[i]) / self.scales[i];
            let term = self.coefficients[i] * z;
            contributions[column.feature as usize] += term;
            margin += term;
        }
        (margin, contributions)
    }
}
