//! The input schema of a model: which features it reads, in which order, and
//! how categories become numbers.
//!
//! An input row is a numeric part and a categorical part ([`Input`]), the shape
//! of `churn_features::FeatureRow`. A gbdt model reads categories as codes (the
//! index in the training vocabulary; an unseen or missing category is NaN, i.e.
//! missing); a logistic model one-hot encodes them.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Numeric or categorical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Numeric,
    Categorical,
}

/// One input feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFeature {
    pub name: String,
    pub kind: Kind,
    /// What a person reads next to its contribution.
    pub description: String,
    /// Categorical only: the training vocabulary, sorted; code = index.
    pub categories: Vec<String>,
}

/// The features a model reads: the numeric ones, then the categorical ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSchema {
    pub features: Vec<InputFeature>,
}

/// One input row: values of the schema's numeric features (NaN = missing), in
/// order, then of its categorical features (`None` = missing).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub numeric: &'a [f64],
    pub categorical: &'a [Option<&'a str>],
}

impl<'a> From<&'a churn_features::FeatureRow<'a>> for Input<'a> {
    fn from(row: &'a churn_features::FeatureRow<'a>) -> Self {
        Input {
            numeric: &row.numeric,
            categorical: &row.categorical,
        }
    }
}

impl InputSchema {
    /// The schema of churn's features (the registry's, then `set`'s) with
    /// the given vocabularies (one per categorical feature, in order).
    pub fn churn_features(
        set: &churn_features::FeatureSet,
        vocabularies: Vec<Vec<String>>,
    ) -> Result<Self, ModelError> {
        let features = set.features();
        let categorical = features
            .iter()
            .filter(|f| f.kind == churn_features::Kind::Categorical)
            .count();
        if vocabularies.len() != categorical {
            return Err(ModelError::Schema(format!(
                "{} vocabularies for {categorical} categorical features",
                vocabularies.len(),
            )));
        }
        let mut vocabularies = vocabularies.into_iter();
        let features = features
            .into_iter()
            .map(|f| {
                let (kind, categories) = match f.kind {
                    churn_features::Kind::Numeric => (Kind::Numeric, Vec::new()),
                    churn_features::Kind::Categorical => {
                        let mut v = vocabularies.next().unwrap_or_default();
                        v.sort();
                        v.dedup();
                        (Kind::Categorical, v)
                    }
                };
                InputFeature {
                    name: f.name,
                    kind,
                    description: f.description,
                    categories,
                }
            })
            .collect();
        Self::new(features)
    }

    /// A schema; numeric features must come before categorical ones.
    pub fn new(features: Vec<InputFeature>) -> Result<Self, ModelError> {
        let first_categorical = features
            .iter()
            .position(|f| f.kind == Kind::Categorical)
            .unwrap_or(features.len());
        if features[first_categorical..]
            .iter()
            .any(|f| f.kind == Kind::Numeric)
        {
            return Err(ModelError::Schema(
                "numeric features must come before categorical ones".into(),
            ));
        }
        for (i, f) in features.iter().enumerate() {
            if features[..i].iter().any(|g| g.name == f.name) {
                return Err(ModelError::Schema(format!("feature {:?} twice", f.name)));
            }
            if !f.categories.is_sorted_by(|a, b| a < b) {
                return Err(ModelError::Schema(format!(
                    "the categories of {:?} are not sorted and distinct",
                    f.name
                )));
            }
        }
        Ok(InputSchema { features })
    }

    /// Number of numeric features.
    pub fn numeric_len(&self) -> usize {
        self.features
            .iter()
            .filter(|f| f.kind == Kind::Numeric)
            .count()
    }

    /// Number of categorical features.
    pub fn categorical_len(&self) -> usize {
        self.features.len() - self.numeric_len()
    }

    /// Feature names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }

    /// Checks that `input` has the schema's shape.
    pub fn check(&self, input: &Input<'_>) -> Result<(), ModelError> {
        if input.numeric.len() != self.numeric_len()
            || input.categorical.len() != self.categorical_len()
        {
            return Err(ModelError::Input(format!(
                "expected {} numeric and {} categorical values, got {} and {}",
                self.numeric_len(),
                self.categorical_len(),
                input.numeric.len(),
                input.categorical.len()
            )));
        }
        Ok(())
    }

    /// The code of a category of categorical feature `j` (0-based among the
    /// categorical ones): its vocabulary index, or NaN when missing or unseen.
    pub fn code(&self, j: usize, value: Option<&str>) -> f64 {
        let feature = &self.features[self.numeric_len() + j];
        value
            .and_then(|v| {
                feature
                    .categories
                    .binary_search_by(|c| c.as_str().cmp(v))
                    .ok()
            })
            .map_or(f64::NAN, |i| i as f64)
    }

    /// The categories of `input` that the training vocabulary does not hold:
    /// (feature name, value) pairs. The model reads them as missing; an answer
    /// says which they were, so an unseen plan or device is visible, not an
    /// error.
    pub fn unseen<'a>(&'a self, input: &Input<'a>) -> Vec<(&'a str, &'a str)> {
        let numeric = self.numeric_len();
        input
            .categorical
            .iter()
            .enumerate()
            .filter_map(|(j, value)| {
                let value = (*value)?;
                let feature = self.features.get(numeric + j)?;
                let known = feature
                    .categories
                    .binary_search_by(|c| c.as_str().cmp(value))
                    .is_ok();
                (!known).then_some((feature.name.as_str(), value))
            })
            .collect()
    }

    /// This schema as churn-gbdt's trainer reads it (names and kinds).
    pub fn gbdt_schema(&self) -> churn_gbdt::Schema {
        churn_gbdt::Schema {
            names: self.names().map(str::to_owned).collect(),
            kinds: self
                .features
                .iter()
                .map(|f| match f.kind {
                    Kind::Numeric => churn_gbdt::FeatureKind::Numeric,
                    Kind::Categorical => churn_gbdt::FeatureKind::Categorical,
                })
                .collect(),
        }
    }

    /// The dense row a gbdt model reads: numbers, then category codes.
    pub fn encode_codes(&self, input: &Input<'_>, out: &mut Vec<f64>) {
        out.clear();
        out.extend_from_slice(input.numeric);
        out.extend(
            input
                .categorical
                .iter()
                .enumerate()
                .map(|(j, v)| self.code(j, *v)),
        );
    }

    /// Checks that this schema reads exactly the features named, in order, with
    /// the kinds given: what a caller that builds its inputs from another source
    /// (e.g. the feature registry) must verify before trusting a model.
    pub fn require(&self, expected: &[(&str, Kind)]) -> Result<(), ModelError> {
        let found: Vec<(&str, Kind)> = self
            .features
            .iter()
            .map(|f| (f.name.as_str(), f.kind))
            .collect();
        if found != expected {
            let first = found
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(found.len().min(expected.len()));
            return Err(ModelError::SchemaMismatch(format!(
                "the model reads {} features, this program provides {}; first difference at position {first}: model {:?}, program {:?}",
                found.len(),
                expected.len(),
                found.get(first),
                expected.get(first)
            )));
        }
        Ok(())
    }

    /// Whether this schema reads exactly churn's own features with `set`'s
    /// (so inputs can be computed from raw events by `churn_features::compute`).
    pub fn reads_churn_features(&self, set: &churn_features::FeatureSet) -> bool {
        let expected = Self::churn_features_of(set);
        let expected: Vec<(&str, Kind)> = expected.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        self.require(&expected).is_ok()
    }

    /// The (name, kind) list of churn's features with `set`'s, for
    /// [`Self::require`].
    pub fn churn_features_of(set: &churn_features::FeatureSet) -> Vec<(String, Kind)> {
        set.features()
            .into_iter()
            .map(|f| {
                let kind = match f.kind {
                    churn_features::Kind::Numeric => Kind::Numeric,
                    churn_features::Kind::Categorical => Kind::Categorical,
                };
                (f.name, kind)
            })
            .collect()
    }
}
