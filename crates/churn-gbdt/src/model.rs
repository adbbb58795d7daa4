//! A fitted ensemble: raw margins and probabilities, one row or many.

use serde::{Deserialize, Serialize};

use crate::GbdtError;
use crate::tree::Tree;

/// What a feature column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureKind {
    /// Ordered numbers; NaN is missing.
    Numeric,
    /// Non-negative integer category codes; NaN is missing.
    Categorical,
}

/// Gain and split-count importance of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    /// Feature name.
    pub feature: String,
    /// Sum of the gains of the splits on it.
    pub gain: f64,
    /// Number of splits on it.
    pub splits: usize,
}

/// A binary classifier: the sum of the trees' outputs is the log-odds margin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Trees in boosting order (the first one includes the initial score).
    pub trees: Vec<Tree>,
    /// Feature names, in column order.
    pub feature_names: Vec<String>,
    /// Kind of each feature.
    pub feature_kinds: Vec<FeatureKind>,
    /// Probability = 1 / (1 + exp(−sigmoid · margin)); 1 for models we train.
    pub sigmoid: f64,
    /// Iteration chosen by early stopping, when it ran (trees beyond it were dropped).
    pub best_iteration: Option<usize>,
}

/// Rows in a row-major buffer of `values` numbers, `width` per row.
pub(crate) fn row_count(values: usize, width: usize) -> Result<usize, GbdtError> {
    if values.is_multiple_of(width) {
        Ok(values / width)
    } else {
        Err(GbdtError::Shape(format!(
            "{values} values is not a whole number of rows of {width} features"
        )))
    }
}

impl Model {
    /// Number of input features.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Checks that every tree is well formed for this feature count.
    pub fn validate(&self) -> Result<(), GbdtError> {
        if self.feature_kinds.len() != self.feature_names.len() {
            return Err(GbdtError::InvalidModel(
                "feature names and kinds differ in length".into(),
            ));
        }
        if !self.sigmoid.is_finite() || self.sigmoid <= 0.0 {
            return Err(GbdtError::InvalidModel(format!(
                "sigmoid {} must be positive",
                self.sigmoid
            )));
        }
        for (i, tree) in self.trees.iter().enumerate() {
            tree.validate(self.num_features())
                .map_err(|e| GbdtError::InvalidModel(format!("tree {i}: {e}")))?;
        }
        Ok(())
    }

    /// The log-odds margin of one row (`row.len()` should be `num_features`;
    /// absent trailing values read as missing).
    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        self.trees.iter().map(|t| t.predict(row)).sum()
    }

    /// The churn probability of one row.
    pub fn predict_proba(&self, row: &[f64]) -> f64 {
        self.probability(self.predict_raw(row))
    }

    /// Maps a margin to a probability.
    pub fn probability(&self, margin: f64) -> f64 {
        1.0 / (1.0 + (-self.sigmoid * margin).exp())
    }

    /// Margins of many rows, `rows` row-major with `num_features` columns
    /// (compiles a [`crate::Predictor`]; keep one to predict repeatedly).
    pub fn predict_raw_batch(&self, rows: &[f64]) -> Result<Vec<f64>, GbdtError> {
        crate::Predictor::new(self).predict_raw_batch(rows)
    }

    /// Per feature: total gain of its splits and how many splits use it.
    pub fn split_importance(&self) -> Vec<FeatureImportance> {
        let mut out: Vec<FeatureImportance> = self
            .feature_names
            .iter()
            .map(|name| FeatureImportance {
                feature: name.clone(),
                gain: 0.0,
                splits: 0,
            })
            .collect();
        for tree in &self.trees {
            for (&feature, &gain) in tree.split_feature.iter().zip(&tree.split_gain) {
                if let Some(slot) = out.get_mut(feature as usize) {
                    slot.gain += gain;
                    slot.splits += 1;
                }
            }
        }
        out
    }

    /// A human-readable JSON dump of the whole model.
    pub fn to_json(&self) -> Result<String, GbdtError> {
        serde_json::to_string_pretty(self).map_err(|e| GbdtError::InvalidModel(e.to_string()))
    }

    /// Mean margin over the training rows: the TreeSHAP base value.
    pub fn expected_value(&self) -> f64 {
        self.trees.iter().map(Tree::expected_value).sum()
    }
}
