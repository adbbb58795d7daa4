//! The inference side of churn models, shared by the CLI, the server and
//! `churn ab`: the model family (gbdt | logistic) behind one interface,
//! calibration, explanations, artifacts on disk and the playbook.
//!
//! No polars, no linfa, no training code: fitting lives in `churn-train`,
//! which produces a [`ChurnModel`]; this crate scores and explains it.

pub mod answer;
pub mod artifact;
pub mod batch;
pub mod calibration;
pub mod drift;
pub mod explanation;
pub mod import;
pub mod logistic;
pub mod logs;
mod model;
pub mod playbook;
pub mod policy;
pub mod predictions_csv;
pub mod schema;
pub mod uplift_policy;

use std::path::PathBuf;

pub use answer::{Answer, FactorView, Value, answer};
pub use artifact::{Artifact, CardInput, ModelCard, Training};
pub use calibration::Calibration;
pub use logistic::LogisticModel;
pub use model::{ChurnModel, Factor, Prediction, PreparedModel, Scorer};
pub use playbook::{Playbook, PlaybookFile, RiskBand, RiskBands};
pub use policy::{Case, Explore, Policy, Suggestion};
pub use schema::{Input, InputFeature, InputSchema, Kind};

/// What can go wrong with a model or an artifact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("invalid input schema: {0}")]
    Schema(String),
    #[error("feature schema mismatch: {0}")]
    SchemaMismatch(String),
    #[error("bad input row: {0}")]
    Input(String),
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("cannot encode the model: {0}")]
    Encode(String),
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: format version {found}, this program reads version {expected}; retrain or use a matching churn", path.display())]
    FormatVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{}: checksum mismatch ({bytes} bytes have SHA-256 {actual}, the model card says {expected}): the file was changed or truncated", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
        bytes: usize,
    },
    #[error("playbook {}: {reason}", path.display())]
    Playbook { path: PathBuf, reason: String },
    #[error("{} was not trained on churn's features: {source}", dir.display())]
    NotChurnFeatures {
        dir: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
}
