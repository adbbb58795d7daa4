//! Training parameters: raw ([`GbdtParams`]) and checked ([`ValidGbdtParams`]).

use serde::{Deserialize, Serialize};

use crate::GbdtError;

/// Metric watched by early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoppingMetric {
    /// Binary log loss (lower is better).
    LogLoss,
    /// ROC-AUC (higher is better).
    Auc,
}

/// Raw training parameters; LightGBM's names and defaults where they exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GbdtParams {
    /// Boosting rounds.
    pub num_iterations: usize,
    /// Shrinkage applied to every leaf output.
    pub learning_rate: f64,
    /// Maximum leaves per tree (leaf-wise growth).
    pub num_leaves: usize,
    /// Maximum depth (`None`: unlimited).
    pub max_depth: Option<usize>,
    /// Minimum training rows in a leaf.
    pub min_data_in_leaf: usize,
    /// Minimum hessian sum in a leaf.
    pub min_sum_hessian_in_leaf: f64,
    /// L1 regularisation of leaf outputs.
    pub lambda_l1: f64,
    /// L2 regularisation of leaf outputs.
    pub lambda_l2: f64,
    /// Minimum gain to split.
    pub min_gain_to_split: f64,
    /// Maximum bins per numeric feature (≤ 255; one more bin holds missing values).
    pub max_bin: usize,
    /// Learn a direction for missing values (false: NaN is read as 0.0, as LightGBM's `use_missing=false`).
    pub use_missing: bool,
    /// Fraction of features each tree may use.
    pub feature_fraction: f64,
    /// Fraction of rows each bag holds.
    pub bagging_fraction: f64,
    /// Re-bag every this many rounds (0: no bagging).
    pub bagging_freq: usize,
    /// Weight of positive rows' gradients.
    pub scale_pos_weight: f64,
    /// Per feature: +1 increasing, −1 decreasing, 0 free (empty: all free).
    pub monotone_constraints: Vec<i8>,
    /// Categorical features with at most this many categories split one-vs-rest.
    pub max_cat_to_onehot: usize,
    /// Most categories on the left of a many-vs-many categorical split.
    pub max_cat_threshold: usize,
    /// Smoothing added to the hessian when ordering categories.
    pub cat_smooth: f64,
    /// Extra L2 on categorical splits.
    pub cat_l2: f64,
    /// Rows each step of a many-vs-many categorical split must add (and the
    /// right side must keep): LightGBM's guard against fitting rare categories.
    pub min_data_per_group: usize,
    /// Stop after this many rounds without validation improvement (`None`: never).
    pub early_stopping_rounds: Option<usize>,
    /// Metric for early stopping.
    pub stopping_metric: StoppingMetric,
    /// The one seed of bagging, feature sampling and the stochastic rounding
    /// of quantized gradients.
    pub seed: u64,
    /// Train on gradients and hessians quantized to `num_grad_quant_bins`
    /// levels with stochastic rounding, summed in packed integer histograms
    /// (LightGBM's `use_quantized_grad`); leaf values are then renewed from
    /// the exact gradients of each leaf's rows.
    #[serde(default)]
    pub use_quantized_grad: bool,
    /// Levels of the quantized gradients (2..=64; LightGBM's default 4).
    #[serde(default = "default_quant_bins")]
    pub num_grad_quant_bins: usize,
    /// Rows sampled (from the one seed) to place the bin boundaries; every
    /// row is then binned by them. LightGBM's name and default: a larger
    /// table bins as LightGBM bins it, without sorting every value of
    /// every column.
    #[serde(default = "default_bin_construct_sample_cnt")]
    pub bin_construct_sample_cnt: usize,
}

fn default_quant_bins() -> usize {
    4
}

fn default_bin_construct_sample_cnt() -> usize {
    200_000
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            num_iterations: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: None,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            min_gain_to_split: 0.0,
            max_bin: 255,
            use_missing: true,
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            scale_pos_weight: 1.0,
            monotone_constraints: Vec::new(),
            max_cat_to_onehot: 4,
            max_cat_threshold: 32,
            cat_smooth: 10.0,
            cat_l2: 10.0,
            min_data_per_group: 100,
            early_stopping_rounds: None,
            stopping_metric: StoppingMetric::LogLoss,
            seed: 0,
            use_quantized_grad: false,
            num_grad_quant_bins: default_quant_bins(),
            bin_construct_sample_cnt: default_bin_construct_sample_cnt(),
        }
    }
}

/// Parameters that passed [`GbdtParams::check`]; only these reach training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidGbdtParams(pub(crate) GbdtParams);

impl ValidGbdtParams {
    /// The checked values.
    pub fn get(&self) -> &GbdtParams {
        &self.0
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> GbdtError {
    GbdtError::InvalidParam {
        name,
        reason: reason.into(),
    }
}

impl GbdtParams {
    /// Checks every range once, so training code can trust the values.
    pub fn check(self) -> Result<ValidGbdtParams, GbdtError> {
        let p = &self;
        if p.num_iterations == 0 {
            return Err(invalid("num_iterations", "must be at least 1"));
        }
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            return Err(invalid("learning_rate", "must be a positive number"));
        }
        if p.num_leaves < 2 || p.num_leaves > 131_072 {
            return Err(invalid("num_leaves", "must be in 2..=131072"));
        }
        if p.max_depth == Some(0) {
            return Err(invalid(
                "max_depth",
                "must be at least 1 (or unset for no limit)",
            ));
        }
        if p.min_data_in_leaf == 0 {
            return Err(invalid("min_data_in_leaf", "must be at least 1"));
        }
        for (name, value) in [
            ("min_sum_hessian_in_leaf", p.min_sum_hessian_in_leaf),
            ("lambda_l1", p.lambda_l1),
            ("lambda_l2", p.lambda_l2),
            ("min_gain_to_split", p.min_gain_to_split),
            ("cat_smooth", p.cat_smooth),
            ("cat_l2", p.cat_l2),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(invalid(name, "must be a finite number ≥ 0"));
            }
        }
        if !(2..=255).contains(&p.max_bin) {
            return Err(invalid("max_bin", "must be in 2..=255"));
        }
        for (name, value) in [
            ("feature_fraction", p.feature_fraction),
            ("bagging_fraction", p.bagging_fraction),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(invalid(name, "must be in (0, 1]"));
            }
        }
        if !(p.scale_pos_weight > 0.0 && p.scale_pos_weight.is_finite()) {
            return Err(invalid("scale_pos_weight", "must be a positive number"));
        }
        if p.monotone_constraints.iter().any(|c| !(-1..=1).contains(c)) {
            return Err(invalid("monotone_constraints", "each must be -1, 0 or 1"));
        }
        if p.max_cat_threshold == 0 {
            return Err(invalid("max_cat_threshold", "must be at least 1"));
        }
        if !(2..=64).contains(&p.num_grad_quant_bins) {
            return Err(invalid("num_grad_quant_bins", "must be in 2..=64"));
        }
        if p.early_stopping_rounds == Some(0) {
            return Err(invalid(
                "early_stopping_rounds",
                "must be at least 1 (or unset)",
            ));
        }
        Ok(ValidGbdtParams(self))
    }
}
