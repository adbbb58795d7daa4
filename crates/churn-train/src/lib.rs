//! The training side of churn models: the labelled table, the out-of-time
//! split, gbdt and logistic fits, calibration, metrics. Produces
//! `churn_model::ChurnModel`s and the numbers for their cards and reports.

pub mod fit;
pub mod newton;
pub mod overlay;
pub mod prepare;
pub mod settings;
pub mod shipping;
pub mod table;
pub mod training_report;
pub mod tune;

use std::collections::BTreeMap;

use churn_gbdt::{GbdtParams, StoppingMetric};
use churn_model::{ChurnModel, Kind, PreparedModel, Scorer};
use rayon::prelude::*;
use serde::Serialize;

use churn_metrics as metrics;
pub use churn_metrics::Metrics;
pub use table::{
    Split, SplitSizes, Table, backtest_splits, holdout, out_of_time_split, time_holdout_folds,
};

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
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
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
    /// The test rows' margins (log-odds before calibration).
    pub test_margins: Vec<f64>,
    /// Contributions of the explained test rows, row-major (rows ×
    /// features), for the importance and the SHAP summary.
    pub test_contributions: Vec<f64>,
    /// Which test rows those are: positions in `split.test`, ascending (every
    /// row up to [`EXPLAINED_TEST_ROWS`], else an evenly spaced sample).
    pub explained_rows: Vec<usize>,
    /// Wall time of each phase of the fit, in order: `fit`, `calibrate`,
    /// `explain` (every test row), `evaluate` (metrics, segments, importance).
    pub phases: Vec<churn_model::artifact::PhaseTime>,
}

/// Times the phases of one run, in order.
#[derive(Debug, Default)]
pub struct PhaseClock {
    phases: Vec<churn_model::artifact::PhaseTime>,
    since: Option<std::time::Instant>,
}

impl PhaseClock {
    /// Starts timing now.
    pub fn start() -> Self {
        PhaseClock {
            phases: Vec::new(),
            since: Some(std::time::Instant::now()),
        }
    }

    /// Ends the phase running since the last lap (or the start) as `phase`.
    pub fn lap(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        let seconds = self.since.map_or(0.0, |t| (now - t).as_secs_f64());
        self.phases.push(churn_model::artifact::PhaseTime {
            phase: phase.to_owned(),
            seconds,
        });
        self.since = Some(now);
    }

    /// Starts the next phase now (time since the last lap is not counted).
    pub fn restart(&mut self) {
        self.since = Some(std::time::Instant::now());
    }

    /// The phases timed so far.
    /// Splits the last phase: its first `seconds` become a phase `name`
    /// before it (what a callee timed inside it, e.g. the GBDT's binning).
    pub fn carve(&mut self, name: &str, seconds: f64) {
        if let Some(last) = self.phases.pop() {
            let seconds = seconds.clamp(0.0, last.seconds);
            self.phases.push(churn_model::artifact::PhaseTime {
                phase: name.to_owned(),
                seconds,
            });
            self.phases.push(churn_model::artifact::PhaseTime {
                phase: last.phase,
                seconds: last.seconds - seconds,
            });
        }
    }

    pub fn phases(&self) -> &[churn_model::artifact::PhaseTime] {
        &self.phases
    }

    pub fn into_phases(self) -> Vec<churn_model::artifact::PhaseTime> {
        self.phases
    }
}

/// At most this many test rows are explained (TreeSHAP) for the importance
/// and the report's beeswarm: an evenly spaced sample of a larger test set
/// gives the same picture at a fraction of the cost. The metrics always use
/// every test row. The importance is a mean of |contribution|, so its
/// sampling error shrinks as 1/√rows: on the 1M-row benchmark table
/// (`benches/train_vs_lightgbm.py`) 5,000 rows gave the same six leading
/// features as 20,000 and each of the top 20 within 3%, in a third of the
/// time (0.25 s against 0.74 s).
pub const EXPLAINED_TEST_ROWS: usize = 5_000;

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

/// A model fitted on a split's training rows, early-stopped (gbdt) and
/// calibrated on its validation rows.
struct Calibrated {
    model: ChurnModel,
    parameters: serde_json::Value,
    calibration_report: serde_json::Value,
    valid_p: Vec<f64>,
    valid_labels: Vec<f64>,
    best_iteration: Option<usize>,
}

fn fit_calibrated(
    table: &Table,
    split: &Split,
    family: Family,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize),
    clock: &mut PhaseClock,
) -> Result<Calibrated, TrainError> {
    let schema = table.schema(&split.train)?;
    let mut bin_seconds = None;
    let mut best_iteration = None;
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
            bin_seconds = Some(log.bin_seconds);
            best_iteration = Some(model.trees.len());
            (Scorer::Gbdt(model), parameters)
        }
        Family::Logistic => {
            let model = fit::fit_logistic(table, &schema, &split.train, config.logistic_c)?;
            let parameters = logistic_parameters(config.logistic_c, &model);
            (Scorer::Logistic(model), parameters)
        }
    };
    clock.lap("fit");
    if let Some(seconds) = bin_seconds {
        clock.carve("bin", seconds);
    }
    let valid_margins = margins_of(
        ChurnModel {
            schema: schema.clone(),
            scorer: scorer.clone(),
            calibration: churn_model::Calibration::None,
        },
        table,
        &split.valid,
    )?;
    let valid_labels: Vec<f64> = split.valid.iter().map(|&i| table.labels[i]).collect();
    let (calibration, calibration_report) = fit::fit_calibration(&valid_margins, &valid_labels);
    let valid_p: Vec<f64> = valid_margins
        .iter()
        .map(|&m| calibration.probability(m))
        .collect();
    clock.lap("calibrate");
    Ok(Calibrated {
        model: ChurnModel {
            schema,
            scorer,
            calibration,
        },
        parameters,
        calibration_report,
        valid_p,
        valid_labels,
        best_iteration,
    })
}

/// What the card says of a logistic fit.
fn logistic_parameters(c: f64, model: &churn_model::LogisticModel) -> serde_json::Value {
    serde_json::json!({
        "C": c,
        "solver": "Newton's method (churn-train newton.rs), to a relative step of 1e-12",
        "preprocessing": "median imputation + missing indicators, one-hot categories (training vocabulary), every column standardised",
        "design_columns": model.columns.len(),
    })
}

/// `model`'s margins (log-odds before calibration, which they do not
/// depend on) on `rows`.
fn margins_of(model: ChurnModel, table: &Table, rows: &[usize]) -> Result<Vec<f64>, TrainError> {
    margins(
        &PreparedModel::new(model).map_err(TrainError::Model)?,
        table,
        rows,
    )
}

/// The prepared model's margins on `rows`.
fn margins(model: &PreparedModel, table: &Table, rows: &[usize]) -> Result<Vec<f64>, TrainError> {
    rows.par_iter()
        .map(|&i| {
            let mut categories = Vec::new();
            model
                .margin(&table.input(i, &mut categories))
                .map_err(TrainError::Model)
        })
        .collect()
}

/// One fold of a backtest: the fold's model scored on the fold's test rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fold {
    /// The fold's training, validation and test as-of times (RFC 3339).
    pub train_as_of: Vec<String>,
    pub valid_as_of: Vec<String>,
    pub test_as_of: Vec<String>,
    pub train_rows: usize,
    pub valid_rows: usize,
    /// Boosting rounds kept by early stopping (gbdt).
    pub trees: Option<usize>,
    pub test: Metrics,
    /// The test rows (table indices) and the fold model's calibrated
    /// probabilities on them, for paired comparisons.
    #[serde(skip)]
    pub test_rows: Vec<usize>,
    #[serde(skip)]
    pub test_probabilities: Vec<f64>,
    #[serde(skip)]
    pub test_labels: Vec<f64>,
    /// The fold model's margins (log-odds before calibration) on the test
    /// rows: out-of-fold scores a refit's calibrator can learn from.
    #[serde(skip)]
    pub test_margins: Vec<f64>,
    /// The fold model's calibrator (fitted on the fold's validation rows).
    #[serde(skip)]
    pub calibration: churn_model::Calibration,
    /// The refit procedure scored on this fold, when the model shipped is a
    /// refit ([`backtest_refits`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refit: Option<RefitFold>,
}

/// The refit procedure scored on one backtest fold: the family fitted as a
/// refit is (no validation part; gbdt for the rounds the fold's early
/// stopping chose) on every row whose label was known by the fold's test
/// period ([`Split::refit`]), and scored on the fold's test rows. A shipped
/// refit learns from every label known at its time, as this model did at
/// the fold's, and a fold model learns from less (the validation part and
/// the purge gaps are kept out): this, not the fold model, is the estimate
/// for the refit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefitFold {
    pub rows: usize,
    pub trees: Option<usize>,
    pub test: Metrics,
    /// How the test probabilities were calibrated.
    pub calibration: &'static str,
    #[serde(skip)]
    pub test_probabilities: Vec<f64>,
    /// Margins before calibration: the out-of-fold scores the shipped
    /// refit's calibrator learns from.
    #[serde(skip)]
    pub test_margins: Vec<f64>,
}

impl Fold {
    /// The fold of `split` from its fit by [`fit_family`] (the newest fold
    /// of a backtest is the single split: no second fit).
    pub fn of_fitted(split: &Split, fitted: &Fitted) -> Fold {
        Fold {
            train_as_of: times(&split.train_times),
            valid_as_of: times(&split.valid_times),
            test_as_of: times(&split.test_times),
            train_rows: split.train.len(),
            valid_rows: split.valid.len(),
            trees: match &fitted.model.scorer {
                Scorer::Gbdt(model) => Some(model.trees.len()),
                Scorer::Logistic(_) => None,
            },
            test: fitted.test.clone(),
            test_rows: split.test.clone(),
            test_probabilities: fitted.test_probabilities.clone(),
            test_labels: fitted.test_labels.clone(),
            test_margins: fitted.test_margins.clone(),
            calibration: fitted.model.calibration.clone(),
            refit: None,
        }
    }
}

impl Fold {
    /// The test probabilities of the refit procedure when `refit` and it
    /// was scored, else of the fold model.
    fn probabilities(&self, refit: bool) -> &[f64] {
        match &self.refit {
            Some(r) if refit => &r.test_probabilities,
            _ => &self.test_probabilities,
        }
    }
}

fn times(times: &[i64]) -> Vec<String> {
    times
        .iter()
        .map(|&t| churn_core::format_timestamp(t))
        .collect()
}

/// What the card says of a backtest: every fold, and the mean and sample
/// standard deviation over folds of ROC-AUC, PR-AUC, log loss, Brier and
/// ECE; the same of the refit procedure when the folds scored it.
pub fn backtest_summary(folds: &[Fold]) -> serde_json::Value {
    let tests: Vec<&Metrics> = folds.iter().map(|f| &f.test).collect();
    let mut summary = spread(&tests);
    summary["method"] = "rolling origin: each of the latest folds' test as-of times in turn, with training and validation before it under the same purge rule".into();
    summary["folds"] = serde_json::json!(folds);
    let refits: Vec<&Metrics> = folds
        .iter()
        .filter_map(|f| f.refit.as_ref().map(|r| &r.test))
        .collect();
    if !refits.is_empty() && refits.len() == folds.len() {
        let mut refit = spread(&refits);
        refit["method"] = REFIT_PROCEDURE.into();
        summary["refit_procedure"] = refit;
    }
    summary
}

const REFIT_PROCEDURE: &str = "the refit procedure on each fold: fitted on every row whose label was known by the fold's test period (training, validation and the purge gap between them; gbdt for the fold's early-stopped rounds), scored on the fold's test rows, calibrated by a calibrator fitted on the other folds' out-of-fold margins (a single fold: its fold model's calibrator)";

/// The mean and sample standard deviation over `metrics` of ROC-AUC, PR-AUC,
/// log loss, Brier and ECE.
fn spread(metrics: &[&Metrics]) -> serde_json::Value {
    let stat = |get: &dyn Fn(&Metrics) -> f64| {
        let values: Vec<f64> = metrics.iter().map(|m| get(m)).collect();
        let (mean, sd) = mean_and_sd(&values);
        serde_json::json!({ "mean": mean, "sd": if sd.is_nan() { serde_json::Value::Null } else { sd.into() } })
    };
    serde_json::json!({
        "roc_auc": stat(&|m| m.roc_auc.estimate),
        "average_precision": stat(&|m| m.average_precision),
        "log_loss": stat(&|m| m.log_loss),
        "brier": stat(&|m| m.brier),
        "ece": stat(&|m| m.ece),
    })
}

/// The mean and sample standard deviation of `values` (NaN below two).
pub(crate) fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    (mean, sd)
}

/// Mean over folds of `AUC(a) − AUC(b)` for two models backtested on the
/// same folds, with a paired bootstrap interval (rows resampled within each
/// fold, both models on the same draws; 1,000 resamples from `seed`). When
/// every fold of both scored the refit procedure, the refit procedure's
/// probabilities are compared (what ships), else the fold models'.
pub fn paired_difference(
    a: &[Fold],
    b: &[Fold],
    seed: u64,
) -> Result<metrics::Interval, TrainError> {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.test_rows != y.test_rows) {
        return Err(TrainError::Split(
            "paired comparison of backtests on different folds".into(),
        ));
    }
    let refits = a.iter().chain(b).all(|f| f.refit.is_some());
    let periods: Vec<metrics::PairedPeriod<'_>> = a
        .iter()
        .zip(b)
        .map(|(x, y)| metrics::PairedPeriod {
            a: x.probabilities(refits),
            b: y.probabilities(refits),
            y: &x.test_labels,
        })
        .collect();
    Ok(metrics::paired_auc_difference(&periods, 1_000, seed))
}

/// Fits `family` on every fold (each as [`fit_family`] fits the single
/// split: early stopping and calibration on the fold's validation rows) and
/// scores it on the fold's test rows. `progress` hears each fold done.
pub fn backtest(
    table: &Table,
    folds: &[Split],
    family: Family,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Fold>, TrainError> {
    folds
        .iter()
        .enumerate()
        .map(|(k, split)| {
            let mut clock = PhaseClock::start();
            let fitted = fit_calibrated(table, split, family, config, &mut |_| {}, &mut clock)?;
            let calibration = fitted.model.calibration.clone();
            let test_margins = margins_of(fitted.model, table, &split.test)?;
            let test_p: Vec<f64> = test_margins
                .iter()
                .map(|&m| calibration.probability(m))
                .collect();
            let test_y: Vec<f64> = split.test.iter().map(|&i| table.labels[i]).collect();
            progress(k + 1);
            Ok(Fold {
                train_as_of: times(&split.train_times),
                valid_as_of: times(&split.valid_times),
                test_as_of: times(&split.test_times),
                train_rows: split.train.len(),
                valid_rows: split.valid.len(),
                trees: fitted.best_iteration,
                test: metrics::metrics(&test_p, &test_y, config.seed),
                test_rows: split.test.clone(),
                test_probabilities: test_p,
                test_labels: test_y,
                test_margins,
                calibration,
                refit: None,
            })
        })
        .collect()
}

/// Scores the refit procedure on every fold (`splits[k]` is the split of
/// `folds[k]`): see [`RefitFold`]. Each fold's refit is calibrated by a
/// calibrator fitted on the other folds' refit margins (leave one fold out,
/// as the shipped refit's calibrator is fitted on all of them); a single
/// fold borrows its fold model's calibrator. `progress` hears each fold done.
pub fn backtest_refits(
    table: &Table,
    splits: &[&Split],
    folds: &mut [Fold],
    family: Family,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<(), TrainError> {
    if splits.len() != folds.len() {
        return Err(TrainError::Split(
            "the refit backtest needs one split per fold".into(),
        ));
    }
    let mut fitted = Vec::with_capacity(folds.len());
    for (k, (split, fold)) in splits.iter().zip(folds.iter()).enumerate() {
        if split.test != fold.test_rows {
            return Err(TrainError::Split(
                "a backtest fold was scored on other rows than its split's test part".into(),
            ));
        }
        let rounds = fold.trees.unwrap_or(config.gbdt.num_iterations);
        let (schema, scorer) =
            fit_without_validation(table, &split.refit, family, config, rounds, &mut |_| {})?;
        let trees = match &scorer {
            Scorer::Gbdt(model) => Some(model.trees.len()),
            Scorer::Logistic(_) => None,
        };
        let model = ChurnModel {
            schema,
            scorer,
            calibration: churn_model::Calibration::None,
        };
        fitted.push((
            split.refit.len(),
            trees,
            margins_of(model, table, &split.test)?,
        ));
        progress(k + 1);
    }
    let single = folds.len() == 1;
    for k in 0..folds.len() {
        let (calibration, how) = if single {
            (folds[k].calibration.clone(), "the fold model's calibrator")
        } else {
            let others = || (0..folds.len()).filter(move |&j| j != k);
            let margins: Vec<f64> = others().flat_map(|j| fitted[j].2.iter().copied()).collect();
            let labels: Vec<f64> = others()
                .flat_map(|j| folds[j].test_labels.iter().copied())
                .collect();
            (
                fit::fit_calibration(&margins, &labels).0,
                "fitted on the other folds' out-of-fold margins",
            )
        };
        let (rows, trees, test_margins) = std::mem::take(&mut fitted[k]);
        let p: Vec<f64> = test_margins
            .iter()
            .map(|&m| calibration.probability(m))
            .collect();
        folds[k].refit = Some(RefitFold {
            rows,
            trees,
            test: metrics::metrics(&p, &folds[k].test_labels, config.seed),
            calibration: how,
            test_probabilities: p,
            test_margins,
        });
    }
    Ok(())
}

/// `family` fitted on `rows` with no validation part (gbdt: exactly
/// `rounds` boosting rounds), with the input schema of those rows.
fn fit_without_validation(
    table: &Table,
    rows: &[usize],
    family: Family,
    config: &TrainConfig,
    rounds: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<(churn_model::InputSchema, Scorer), TrainError> {
    let schema = table.schema(rows)?;
    let scorer = match family {
        Family::Gbdt => Scorer::Gbdt(
            fit::fit_gbdt_rounds(table, &schema, rows, &config.gbdt, rounds, progress)?.0,
        ),
        Family::Logistic => {
            Scorer::Logistic(fit::fit_logistic(table, &schema, rows, config.logistic_c)?)
        }
    };
    Ok((schema, scorer))
}

/// The model to ship, refitted on every labelled row.
pub struct Refitted {
    pub model: ChurnModel,
    pub parameters: serde_json::Value,
    /// How the calibrator was chosen (as [`Fitted::calibration`]).
    pub calibration: serde_json::Value,
    /// What the card says of the refit (`metrics.refit`).
    pub summary: serde_json::Value,
    /// The refit procedure on the newest fold: the refit's estimate.
    pub estimate: RefitFold,
}

/// `family` fitted on `rows` (every labelled row up to the end of the data)
/// with the number of boosting rounds the backtest chose (the median of the
/// folds' early-stopped counts) and a calibrator fitted on the refit
/// procedure's out-of-fold margins on every fold ([`backtest_refits`] scores
/// them first), each from a model that never trained on that row
/// (cross-fitting: the refit model is applied to new rows, as those were).
/// The newest fold's refit procedure is the card's estimate.
pub fn refit_family(
    table: &Table,
    rows: &[usize],
    family: Family,
    config: &TrainConfig,
    folds: &[Fold],
    progress: &mut dyn FnMut(usize),
) -> Result<Refitted, TrainError> {
    let scored: Vec<&RefitFold> = folds.iter().filter_map(|f| f.refit.as_ref()).collect();
    let Some(&newest) = scored.last() else {
        return Err(TrainError::Split(
            "a refit needs at least one fold with the refit procedure scored".into(),
        ));
    };
    if rows.is_empty() || scored.len() != folds.len() {
        return Err(TrainError::Split(
            "a refit needs labelled rows and the refit procedure scored on every fold".into(),
        ));
    }
    let mut counts: Vec<usize> = folds.iter().filter_map(|f| f.trees).collect();
    counts.sort_unstable();
    let rounds = counts
        .get(counts.len() / 2)
        .copied()
        .unwrap_or(config.gbdt.num_iterations);
    let (schema, scorer) = fit_without_validation(table, rows, family, config, rounds, progress)?;
    let mut parameters = match &scorer {
        Scorer::Gbdt(model) => {
            let mut parameters =
                serde_json::to_value(&config.gbdt).map_err(|e| TrainError::Fit(e.to_string()))?;
            parameters["trees"] = serde_json::json!(model.trees.len());
            parameters["trees_by_fold"] =
                serde_json::json!(folds.iter().map(|f| f.trees).collect::<Vec<_>>());
            parameters
        }
        Scorer::Logistic(model) => logistic_parameters(config.logistic_c, model),
    };
    let out_of_fold: Vec<f64> = scored
        .iter()
        .flat_map(|r| r.test_margins.iter().copied())
        .collect();
    let labels: Vec<f64> = folds
        .iter()
        .flat_map(|f| f.test_labels.iter().copied())
        .collect();
    let (calibration, calibration_report) = fit::fit_calibration(&out_of_fold, &labels);
    parameters["refit"] = serde_json::json!(true);
    let summary = serde_json::json!({
        "rows": rows.len(),
        "calibration_rows": out_of_fold.len(),
        "estimate": newest.test,
        "estimate_rows": newest.rows,
        "note": "refitted on every labelled example up to the end of the data. Its estimate is the refit procedure's on the newest backtest fold: the same family fitted on every example whose label was known by that fold's test period, scored there (metrics.backtest.refit_procedure has every fold). The test and validation metrics above are the split's fold model, which learned from less. The calibrator was fitted on the folds' refit procedure's out-of-fold margins, never on rows a model trained on",
    });
    Ok(Refitted {
        model: ChurnModel {
            schema,
            scorer,
            calibration,
        },
        parameters,
        calibration: calibration_report,
        summary,
        estimate: newest.clone(),
    })
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
    let mut clock = PhaseClock::start();
    let Calibrated {
        model,
        parameters,
        calibration_report,
        valid_p,
        valid_labels,
        ..
    } = fit_calibrated(table, split, family, config, progress, &mut clock)?;
    let prepared = PreparedModel::new(model.clone()).map_err(TrainError::Model)?;
    let step = split.test.len().div_ceil(EXPLAINED_TEST_ROWS).max(1);
    let explained_rows: Vec<usize> = (0..split.test.len()).step_by(step).collect();
    let explained: Vec<churn_model::Prediction> = explained_rows
        .par_iter()
        .map(|&r| {
            let mut categories = Vec::new();
            prepared
                .explain(&table.input(split.test[r], &mut categories))
                .map_err(TrainError::Model)
        })
        .collect::<Result<_, _>>()?;
    clock.lap("explain");
    // Scored by the predictor, as a backtest fold's are (an explanation's
    // probability sums the contributions: the same number up to rounding).
    let test_margins = margins(&prepared, table, &split.test)?;
    let test_p: Vec<f64> = test_margins
        .iter()
        .map(|&m| model.calibration.probability(m))
        .collect();
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

    // Three independent evaluations (each bootstrap draws from its own seeded
    // stream), side by side.
    let (by_segment, (valid, test)) = rayon::join(
        || metrics_by_segment(table, &split.test, &test_p, config.seed),
        || {
            rayon::join(
                || metrics::metrics(&valid_p, &valid_labels, config.seed),
                || metrics::metrics(&test_p, &test_y, config.seed),
            )
        },
    );
    clock.lap("evaluate");

    Ok(Fitted {
        family,
        parameters,
        calibration: calibration_report,
        valid,
        test,
        phases: clock.into_phases(),
        by_segment,
        importance,
        test_probabilities: test_p,
        test_labels: test_y,
        test_margins,
        test_contributions,
        explained_rows,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_keeps_phases_in_order_and_skips_what_a_restart_leaves_out() {
        let mut clock = PhaseClock::start();
        std::thread::sleep(std::time::Duration::from_millis(20));
        clock.lap("first");
        clock.lap("second");
        std::thread::sleep(std::time::Duration::from_millis(20));
        clock.restart();
        clock.lap("third");
        let phases = clock.into_phases();
        let names: Vec<&str> = phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(names, ["first", "second", "third"]);
        assert!(phases[0].seconds >= 0.02, "{phases:?}");
        assert!(phases[1].seconds < 0.02, "a lap right after a lap is short");
        assert!(
            phases[2].seconds < 0.02,
            "the gap before the restart is not counted"
        );
    }

    #[test]
    fn a_carved_phase_comes_before_the_rest_of_its_lap() {
        let mut clock = PhaseClock::start();
        std::thread::sleep(std::time::Duration::from_millis(30));
        clock.lap("fit");
        let total = clock.phases()[0].seconds;
        clock.carve("bin", 0.01);
        let phases = clock.into_phases();
        let names: Vec<&str> = phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(names, ["bin", "fit"]);
        assert_eq!(phases[0].seconds, 0.01);
        assert!((phases[0].seconds + phases[1].seconds - total).abs() < 1e-12);
        // A callee cannot claim more than the lap.
        let mut clock = PhaseClock::start();
        clock.lap("fit");
        clock.carve("bin", 1e9);
        let phases = clock.into_phases();
        assert_eq!(phases[1].seconds, 0.0);
    }
}
