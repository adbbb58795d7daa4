//! The training side of churn models: the labelled table, the out-of-time
//! split, gbdt and logistic fits, calibration, metrics. Produces
//! `churn_model::ChurnModel`s and the numbers for their cards and reports.

pub mod fit;
pub mod overlay;
pub mod table;
pub mod training_report;

use std::collections::BTreeMap;

use churn_gbdt::{GbdtParams, StoppingMetric};
use churn_model::{ChurnModel, Kind, PreparedModel, Scorer};
use rayon::prelude::*;
use serde::Serialize;

use churn_metrics as metrics;
pub use churn_metrics::Metrics;
pub use table::{Split, SplitSizes, Table, holdout, out_of_time_split};

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
/// every test row.
pub const EXPLAINED_TEST_ROWS: usize = 20_000;

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
    let mut clock = PhaseClock::start();
    let schema = table.schema(&split.train)?;
    let mut bin_seconds = None;
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
    clock.lap("fit");
    if let Some(seconds) = bin_seconds {
        clock.carve("bin", seconds);
    }
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
    clock.lap("calibrate");
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
    // Every test row explained: its probabilities are the explanations'.
    // Otherwise every row is scored (the predictor's margin, without TreeSHAP).
    let test_p: Vec<f64> = if step == 1 {
        explained.iter().map(|p| p.probability).collect()
    } else {
        split
            .test
            .par_iter()
            .map(|&i| {
                let mut categories = Vec::new();
                prepared
                    .probability(&table.input(i, &mut categories))
                    .map_err(TrainError::Model)
            })
            .collect::<Result<_, _>>()?
    };
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
