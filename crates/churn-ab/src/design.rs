//! The uplift models' inputs: churn's own features of each assigned learner
//! at assignment, as the dense rows churn-gbdt reads (numbers, then
//! category codes in a vocabulary built from these learners).

use churn_features::FeatureRow;
use churn_model::{Input, InputSchema};

use crate::AbError;

/// The feature schema (with vocabularies) and the encoded rows.
#[derive(Debug, Clone)]
pub struct Design {
    pub schema: InputSchema,
    pub rows: Vec<f64>,
}

impl Design {
    /// Encodes `features`, one row per learner.
    pub fn new(features: &[FeatureRow<'_>]) -> Result<Design, AbError> {
        let categorical = churn_features::CATEGORICAL.len();
        let vocabularies: Vec<Vec<String>> = (0..categorical)
            .map(|j| {
                features
                    .iter()
                    .filter_map(|f| f.categorical.get(j).copied().flatten())
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        let schema = InputSchema::churn_features(churn_features::FeatureSet::none(), vocabularies)
            .map_err(|e| AbError::Invalid(format!("feature schema: {e}")))?;
        let mut rows = Vec::with_capacity(features.len() * schema.features.len());
        let mut row = Vec::new();
        for f in features {
            schema.encode_codes(&Input::from(f), &mut row);
            rows.extend_from_slice(&row);
        }
        Ok(Design { schema, rows })
    }
}
