//! Gradient-boosted decision trees for churn: prediction, exact TreeSHAP and
//! LightGBM import (training arrives next), in pure Rust.
//!
//! Trees keep LightGBM's layout and routing rules (f64 thresholds, missing
//! types, categorical bitsets), so a LightGBM model imported with
//! [`from_lightgbm_text`] predicts and explains exactly as LightGBM does.
//!
//! **Architecture invariant:** no polars, no native libraries; the crate takes
//! dense `f64` rows.

mod lightgbm;
mod model;
pub mod shap;
mod tree;

pub use lightgbm::from_lightgbm_text;
pub use model::{FeatureKind, Model};
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
    /// Input of the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
}
