//! Gradient-boosted decision trees for churn: histogram training, prediction,
//! exact fast TreeSHAP and LightGBM import, in pure Rust.
//!
//! Trees keep LightGBM's layout and routing rules (f64 thresholds, missing
//! types, categorical bitsets), so a LightGBM model imported with
//! [`from_lightgbm_text`] predicts and explains exactly as LightGBM does.
//!
//! **Architecture invariant:** no polars, no native libraries; the crate takes
//! dense `f64` rows.

mod binning;
mod boosting;
mod compiled;
mod grower;
mod lightgbm;
pub mod metric;
mod model;
mod objective;
mod params;
mod prefetch;
mod quantize;
pub mod shap;
mod tree;

pub use binning::BinMapper;
pub use boosting::{MAX_CATEGORY, Schema, TrainData, TrainLog, train, train_with_progress};
pub use compiled::Predictor;
pub use lightgbm::from_lightgbm_text;
pub use model::{FeatureImportance, FeatureKind, Model};
pub use objective::{BinaryLogLoss, Objective};
pub use params::{GbdtParams, StoppingMetric, ValidGbdtParams};
pub use shap::Explainer;
pub use tree::{MissingType, Split, Tree, ZERO_THRESHOLD};

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GbdtError {
    /// A LightGBM model file that cannot be imported.
    #[error("LightGBM model, line {line}: {message}")]
    Import {
        /// 1-based line of the model text (0 when not tied to a line).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A model whose structure is inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A training parameter outside its range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam {
        /// Which parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// Training data that cannot be learned from.
    #[error("invalid training data: {0}")]
    InvalidData(String),
    /// Input of the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
}
