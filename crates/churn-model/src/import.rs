//! A LightGBM `model.txt` as a churn model: same trees, same predictions and
//! the same TreeSHAP contributions as LightGBM, behind our artifact and API.
//!
//! Category names come from the `pandas_categorical` line LightGBM writes when
//! it was trained on a pandas DataFrame with category columns: category code
//! `k` is the k-th name, which is our vocabulary order when the names are
//! sorted (pandas sorts them by default). Numeric features are moved before
//! categorical ones, as our schema wants, by renumbering the tree splits.

use churn_gbdt::{FeatureKind, from_lightgbm_text};

use crate::ModelError;
use crate::calibration::Calibration;
use crate::model::{ChurnModel, Scorer};
use crate::schema::{InputFeature, InputSchema, Kind};

/// The category names LightGBM recorded, one list per categorical feature.
fn pandas_categorical(text: &str) -> Result<Option<Vec<Vec<String>>>, ModelError> {
    let Some(line) = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("pandas_categorical:"))
    else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| ModelError::Invalid(format!("pandas_categorical: {e}")))?;
    let Some(lists) = value.as_array() else {
        return Ok(None);
    };
    lists
        .iter()
        .map(|list| {
            list.as_array()
                .ok_or_else(|| ModelError::Invalid("pandas_categorical: not a list of lists".into()))?
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    other => Err(ModelError::Invalid(format!(
                        "pandas_categorical: category {other} is not text; only text categories can be named in requests"
                    ))),
                })
                .collect()
        })
        .collect::<Result<Vec<Vec<String>>, _>>()
        .map(Some)
}

/// Converts a LightGBM text model. `describe` gives each feature's
/// description (e.g. from the feature registry), or `None` for its name.
pub fn from_lightgbm(
    text: &str,
    describe: impl Fn(&str) -> Option<String>,
) -> Result<ChurnModel, ModelError> {
    let mut model = from_lightgbm_text(text).map_err(|e| ModelError::Invalid(e.to_string()))?;
    let categorical: Vec<usize> = (0..model.feature_kinds.len())
        .filter(|&j| model.feature_kinds[j] == FeatureKind::Categorical)
        .collect();
    let names = match pandas_categorical(text)? {
        Some(names) => names,
        None if categorical.is_empty() => Vec::new(),
        None => {
            return Err(ModelError::Invalid(format!(
                "categorical feature {:?} has no category names: train LightGBM on a pandas DataFrame with category columns, so that model.txt carries pandas_categorical",
                model.feature_names[categorical[0]]
            )));
        }
    };
    if names.len() != categorical.len() {
        return Err(ModelError::Invalid(format!(
            "pandas_categorical lists {} categorical features, the trees use {}",
            names.len(),
            categorical.len()
        )));
    }
    for (j, list) in categorical.iter().zip(&names) {
        if !list.is_sorted_by(|a, b| a < b) {
            return Err(ModelError::Invalid(format!(
                "the categories of {:?} are not in sorted order ({list:?}); make the pandas categories sorted before training",
                model.feature_names[*j]
            )));
        }
    }

    // New order: numeric features, then categorical, each in model order.
    let order: Vec<usize> = (0..model.feature_kinds.len())
        .filter(|&j| model.feature_kinds[j] == FeatureKind::Numeric)
        .chain(categorical.iter().copied())
        .collect();
    let mut new_index = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new as u32;
    }
    for tree in &mut model.trees {
        for feature in &mut tree.split_feature {
            *feature = new_index[*feature as usize];
        }
    }
    model.feature_names = order
        .iter()
        .map(|&j| model.feature_names[j].clone())
        .collect();
    model.feature_kinds = order.iter().map(|&j| model.feature_kinds[j]).collect();

    let mut vocabularies = names.into_iter();
    let features = model
        .feature_names
        .iter()
        .zip(&model.feature_kinds)
        .map(|(name, kind)| InputFeature {
            name: name.clone(),
            kind: match kind {
                FeatureKind::Numeric => Kind::Numeric,
                FeatureKind::Categorical => Kind::Categorical,
            },
            description: describe(name).unwrap_or_else(|| name.clone()),
            categories: match kind {
                FeatureKind::Numeric => Vec::new(),
                FeatureKind::Categorical => vocabularies.next().unwrap_or_default(),
            },
        })
        .collect();
    let calibration = if model.sigmoid == 1.0 {
        Calibration::None
    } else {
        // LightGBM's probability is σ(sigmoid · margin).
        Calibration::Platt {
            a: model.sigmoid,
            b: 0.0,
        }
    };
    let churn = ChurnModel {
        schema: InputSchema::new(features)?,
        scorer: Scorer::Gbdt(model),
        calibration,
    };
    churn.validate()?;
    Ok(churn)
}
