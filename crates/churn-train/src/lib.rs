//! The training side of churn models: the labelled table, the out-of-time
//! split, gbdt and logistic fits, calibration, metrics. Produces
//! `churn_model::ChurnModel`s and the numbers for their cards and reports.

pub mod fit;
pub mod table;
pub mod training_report;

use std::collections::BTreeMap;

use churn_gbdt::{GbdtParams, StoppingMetric};
use churn_model::{ChurnModel, Kind, PreparedModel, Scorer};
use rayon::prelude::*;
use serde::Serialize;

use churn_metrics as metrics;
pub use churn_metrics::Metrics;
pub use table::{Split, Table, holdout, out_of_time_split};

/// What can go wrong in training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error("cannot split the data: {0}")]
    Split(String),
    #[error("invalid parameter: {0}")]
    Param(String),
    #[error("fitting failed: {0}")]
    Fit(String),
    #[error(transparent)]
    Gbdt(churn_gbdt::GbdtError),
    #[error(transparent)]
    Model(churn_model::ModelError),
    #[error(transparent)]
    Report(#[from] churn_html::ReportError),
}

/// Which model family to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Gbdt,
    Logistic,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Gbdt => "gbdt",
            Family::Logistic => "logistic",
        }
    }
}

/// Fitting parameters of both families.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub gbdt: GbdtParams,
    /// scikit-learn's `C` (inverse L2 strength) of the logistic model.
    pub logistic_c: f64,
    /// The one seed: gbdt bagging / feature sampling and the bootstrap intervals.
    pub seed: u64,
}

impl TrainConfig {
    /// Defaults for churn tables: 0.05 learning rate, up to 1000 rounds with
    /// early stopping after 50 on validation log loss, 31 leaves, ≥ 50 rows per leaf.
    pub fn with_seed(seed: u64) -> Self {
        TrainConfig {
            gbdt: GbdtParams {
                num_iterations: 1000,
                learning_rate: 0.05,
                num_leaves: 31,
                min_data_in_leaf: 50,
                feature_fraction: 0.9,
                bagging_fraction: 0.9,
                bagging_freq: 1,
                lambda_l2: 1.0,
                early_stopping_rounds: Some(50),
                stopping_metric: StoppingMetric::LogLoss,
                seed,
                ..GbdtParams::default()
            },
            logistic_c: 1.0,
            seed,
        }
    }
}

/// A fitted, calibrated model and how it did.
pub struct Fitted {
    pub family: Family,
    pub model: ChurnModel,
    pub parameters: serde_json::Value,
    pub calibration: serde_json::Value,
    pub valid: Metrics,
    pub test: Metrics,
    /// Test metrics by segment: feature (plan, acquisition_channel, device) → value → metrics.
    pub by_segment: BTreeMap<String, BTreeMap<String, Metrics>>,
    /// Mean |contribution| of each feature over the test rows, in schema order.
    pub importance: Vec<(String, f64)>,
    /// Test predictions (calibrated) and labels, for charts.
    pub test_probabilities: Vec<f64>,
    pub test_labels: Vec<f64>,
    /// Test contributions, row-major (rows × features), for the SHAP summary.
    pub test_contributions: Vec<f64>,
}

/// Segments reported separately when the table has them.
pub const SEGMENT_FEATURES: [&str; 3] = ["plan", "acquisition_channel", "device"];

/// Metrics of the predictions `p` of `rows` by value of each segment feature
/// (plan, acquisition_channel, device) the table has: feature → value → metrics.
pub fn metrics_by_segment(
    table: &Table,
    rows: &[usize],
    p: &[f64],
    seed: u64,
) -> BTreeMap<String, BTreeMap<String, Metrics>> {
    let mut by_segment = BTreeMap::new();
    let n = table.numeric_len();
    let c = table.categorical_len();
    for (j, feature) in table.features.iter().enumerate() {
        if feature.1 != Kind::Categorical || !SEGMENT_FEATURES.contains(&feature.0.as_str()) {
            continue;
        }
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (r, &i) in rows.iter().enumerate() {
            let value = table.categorical[i * c + (j - n)]
                .clone()
                .unwrap_or_else(|| "(missing)".into());
            groups.entry(value).or_default().push(r);
        }
        let segment: BTreeMap<String, Metrics> = groups
            .into_iter()
            .map(|(value, members)| {
                let p: Vec<f64> = members.iter().map(|&r| p[r]).collect();
                let y: Vec<f64> = members.iter().map(|&r| table.labels[rows[r]]).collect();
                (value, metrics::metrics(&p, &y, seed))
            })
            .collect();
        by_segment.insert(feature.0.clone(), segment);
    }
    by_segment
}

/// Fits one family on `split.train`, early-stops and calibrates on
/// `split.valid`, evaluates on `split.test`. `progress` hears the boosting
/// rounds done (gbdt only; up to `config.gbdt.num_iterations`).
pub fn fit_family(
    table: &Table,
    split: &Split,
    family: Family,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Fitted, TrainError> {
    let schema = table.schema(&split.train)?;
    let (scorer, parameters) = match family {
        Family::Gbdt => {
            let (model, log) = fit::fit_gbdt(
                table,
                &schema,
                &split.train,
                &split.valid,
                &config.gbdt,
                progress,
            )?;
            let mut parameters =
                serde_json::to_value(&config.gbdt).map_err(|e| TrainError::Fit(e.to_string()))?;
            parameters["trees"] = serde_json::json!(model.trees.len());
            parameters["best_iteration"] = serde_json::json!(log.best_iteration);
            (Scorer::Gbdt(model), parameters)
        }
        Family::Logistic => {
            let model = fit::fit_logistic(table, &schema, &split.train, config.logistic_c)?;
            let parameters = serde_json::json!({
                "C": config.logistic_c,
                "solver": "L-BFGS (linfa-logistic 0.8), gradient tolerance 1e-8",
                "preprocessing": "median imputation + missing indicators, one-hot categories (training vocabulary), every column standardised",
                "design_columns": model.columns.len(),
            });
            (Scorer::Logistic(model), parameters)
        }
    };
    let uncalibrated = PreparedModel::new(ChurnModel {
        schema: schema.clone(),
        scorer: scorer.clone(),
        calibration: churn_model::Calibration::None,
    })
    .map_err(TrainError::Model)?;
    let margins = |rows: &[usize]| -> Result<Vec<f64>, TrainError> {
        rows.par_iter()
            .map(|&i| {
                let mut categories = Vec::new();
                uncalibrated
                    .margin(&table.input(i, &mut categories))
                    .map_err(TrainError::Model)
            })
            .collect()
    };
    let valid_margins = margins(&split.valid)?;
    let valid_labels: Vec<f64> = split.valid.iter().map(|&i| table.labels[i]).collect();
    let (calibration, calibration_report) = fit::fit_calibration(&valid_margins, &valid_labels);
    let model = ChurnModel {
        schema,
        scorer,
        calibration,
    };
    let prepared = PreparedModel::new(model.clone()).map_err(TrainError::Model)?;

    let valid_p: Vec<f64> = valid_margins
        .iter()
        .map(|&m| model.calibration.probability(m))
        .collect();
    let explained: Vec<churn_model::Prediction> = split
        .test
        .par_iter()
        .map(|&i| {
            let mut categories = Vec::new();
            prepared
                .explain(&table.input(i, &mut categories))
                .map_err(TrainError::Model)
        })
        .collect::<Result<_, _>>()?;
    let test_p: Vec<f64> = explained.iter().map(|p| p.probability).collect();
    let test_y: Vec<f64> = split.test.iter().map(|&i| table.labels[i]).collect();
    let width = model.schema.features.len();
    let test_contributions: Vec<f64> = explained
        .iter()
        .flat_map(|p| p.contributions.iter().copied())
        .collect();
    let importance = model
        .schema
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let mean = (0..explained.len())
                .map(|r| test_contributions[r * width + j].abs())
                .sum::<f64>()
                / explained.len().max(1) as f64;
            (f.name.clone(), mean)
        })
        .collect();

    let by_segment = metrics_by_segment(table, &split.test, &test_p, config.seed);

    Ok(Fitted {
        family,
        parameters,
        calibration: calibration_report,
        valid: metrics::metrics(&valid_p, &valid_labels, config.seed),
        test: metrics::metrics(&test_p, &test_y, config.seed),
        by_segment,
        importance,
        test_probabilities: test_p,
        test_labels: test_y,
        test_contributions,
        model,
    })
}
