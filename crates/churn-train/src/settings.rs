//! `churn train`'s settings as one checked type: what the defaults, the
//! `--config` file, the flags and `--set` merge into (see the binary for the
//! merging), and what the model card records.

use std::path::PathBuf;

use churn_gbdt::GbdtParams;
use serde::{Deserialize, Serialize};

use crate::{Family, SplitSizes, TrainConfig, TrainError};

/// Which families `churn train` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Gbdt,
    Logistic,
    /// Both, as `<name>-gbdt` and `<name>-logistic`.
    Both,
}

/// The as-of times of a training table, as written (durations and times are
/// parsed where the data's contract is known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshots {
    /// First as-of time (default: the earliest with a horizon of history behind it).
    pub from: Option<String>,
    /// Last as-of time (default: the end of the data, at 00:00 UTC).
    pub to: Option<String>,
    /// Spacing of the as-of times.
    pub every: String,
    /// Label horizon: churned = no activity (or a cancellation) within it.
    pub horizon: String,
    /// Last time the data covers; later horizons are unlabelled (default: the latest event).
    pub data_end: Option<String>,
    /// What "churned" means: inactivity, cancellation or either (default:
    /// the data's contract.toml, else either).
    #[serde(default)]
    pub label: Option<String>,
}

impl Default for Snapshots {
    /// Every 14 days with a 30-day horizon, bounds from the data.
    fn default() -> Self {
        Snapshots {
            from: None,
            to: None,
            every: "14d".into(),
            horizon: "30d".into(),
            data_end: None,
            label: None,
        }
    }
}

/// Everything one training run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Data directory (learners, courses, events): the churn-feature mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// A table of features and a label: the tabular mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<PathBuf>,
    /// Tabular mode: the test table (default: split off `features`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Tabular mode: the 0/1 label column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Tabular mode: split out of time by this column (default: stratified at random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    pub kind: ModelKind,
    pub name: String,
    pub out: PathBuf,
    pub seed: u64,
    pub work: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    pub snapshots: Snapshots,
    /// Custom event types given features: the most frequent this many.
    pub custom_types: usize,
    /// Prediction points (learner_id, as_of) instead of rolling as-of times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PathBuf>,
    /// As-of times in the test and validation parts of the split.
    pub split: SplitSizes,
    /// Folds of the rolling-origin backtest (churn data): each of the latest
    /// this many test periods in turn; 1 is the single split alone.
    pub backtest: usize,
    /// Ship a model refitted on every labelled example (churn data), with the
    /// rounds the backtest chose and a calibrator fitted out of fold.
    pub refit: bool,
    pub logistic: LogisticSettings,
    pub gbdt: GbdtParams,
}

/// The logistic model's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticSettings {
    /// scikit-learn's C: inverse L2 strength.
    pub c: f64,
}

impl Default for TrainSettings {
    /// What `churn train` does when nothing is said: both families, seed 42,
    /// a 3-fold backtest and a refit, DESIGN.md's snapshots and split.
    fn default() -> Self {
        let config = TrainConfig::with_seed(42);
        TrainSettings {
            data: None,
            features: None,
            test: None,
            label: None,
            time_column: None,
            kind: ModelKind::Both,
            name: "churn".into(),
            out: "models".into(),
            seed: 42,
            work: "churn-out/train".into(),
            now: None,
            snapshots: Snapshots::default(),
            custom_types: churn_features::DEFAULT_CUSTOM_TYPES,
            points: None,
            split: SplitSizes::default(),
            backtest: 3,
            refit: true,
            logistic: LogisticSettings {
                c: config.logistic_c,
            },
            gbdt: config.gbdt,
        }
    }
}

impl TrainSettings {
    /// Makes merged settings whole: the one seed drives every random step,
    /// and the combinations and values no run can use are refused by name.
    pub fn checked(mut self) -> Result<TrainSettings, TrainError> {
        self.gbdt.seed = self.seed;
        let refuse = |why: &str| Err(TrainError::Param(why.to_owned()));
        match (&self.data, &self.features) {
            (Some(_), Some(_)) => {
                return refuse("give --data (churn data) or --features (a table), not both");
            }
            (None, None) => {
                return refuse(
                    "give --data DIR (churn data) or --features FILE --label COL (a table)",
                );
            }
            (Some(_), None)
                if self.label.is_some() || self.test.is_some() || self.time_column.is_some() =>
            {
                return refuse("--label, --test and --time-column go with --features, not --data");
            }
            (None, Some(_)) if self.label.is_none() => {
                return refuse("--features needs --label COL");
            }
            _ => {}
        }
        if self.backtest == 0 {
            return refuse("backtest must be at least 1 fold (1: the single split alone)");
        }
        if !(self.logistic.c.is_finite() && self.logistic.c > 0.0) {
            return refuse(&format!(
                "logistic.c must be a positive number, got {}",
                self.logistic.c
            ));
        }
        Ok(self)
    }

    /// The fitting parameters of both families.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            gbdt: self.gbdt.clone(),
            logistic_c: self.logistic.c,
            seed: self.seed,
        }
    }

    /// The families `kind` asks for, gbdt first.
    pub fn families(&self) -> Vec<Family> {
        match self.kind {
            ModelKind::Gbdt => vec![Family::Gbdt],
            ModelKind::Logistic => vec![Family::Logistic],
            ModelKind::Both => vec![Family::Gbdt, Family::Logistic],
        }
    }

    /// The artifact name of `family`'s model: `<name>-<family>` when both
    /// are fitted, else the name itself.
    pub fn model_name(&self, family: Family) -> String {
        match self.kind {
            ModelKind::Both => format!("{}-{}", self.name, family.name()),
            _ => self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut TrainSettings)) -> Result<TrainSettings, TrainError> {
        let mut s = TrainSettings {
            data: Some("data".into()),
            ..TrainSettings::default()
        };
        edit(&mut s);
        s.checked()
    }

    #[test]
    fn the_one_seed_reaches_the_gbdt() {
        let s = with(|s| s.seed = 9).unwrap();
        assert_eq!(s.gbdt.seed, 9);
    }

    #[test]
    fn unusable_combinations_are_refused_by_name() {
        let err = |edit: fn(&mut TrainSettings)| with(edit).unwrap_err().to_string();
        assert!(err(|s| s.features = Some("t.csv".into())).contains("not both"));
        assert!(err(|s| s.data = None).contains("--data DIR"));
        assert!(err(|s| s.label = Some("y".into())).contains("go with --features"));
        assert!(
            err(|s| {
                s.data = None;
                s.features = Some("t.csv".into());
            })
            .contains("needs --label")
        );
        assert!(err(|s| s.backtest = 0).contains("at least 1 fold"));
        assert!(err(|s| s.logistic.c = 0.0).contains("logistic.c"));
        assert!(err(|s| s.logistic.c = f64::NAN).contains("logistic.c"));
    }

    #[test]
    fn model_names_carry_the_family_only_when_both_are_fitted() {
        let both = with(|_| {}).unwrap();
        assert_eq!(both.model_name(Family::Logistic), "churn-logistic");
        let one = with(|s| s.kind = ModelKind::Gbdt).unwrap();
        assert_eq!(one.model_name(Family::Gbdt), "churn");
        assert_eq!(one.families(), vec![Family::Gbdt]);
    }
}
